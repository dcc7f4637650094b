//! `register_new_matrix_user`: register users on a Matrix homeserver through
//! the shared-secret admin API, and keep existing accounts as an inventory
//! says.
//!
//! The modules, from the bottom up (each uses only those below it):
//! 1. the vocabulary: [`record`] (the record, stage and hook-point names),
//!    [`error`] (errors, exit statuses), [`secret`], [`options`],
//!    [`report`], [`console`], [`files`], [`policy`], [`prompt`];
//! 2. the transports and server clients: [`retry`], [`homeserver`] (the
//!    shared-secret endpoint, the client API and the admin API, each in its
//!    own file), [`backend`], the one interface a server kind offers, and
//!    [`interrupt`], which ends the run's sessions on SIGINT and SIGTERM;
//! 3. the stages, one file each, in [`stages`];
//! 4. the [`runner`], which fires [`hooks`] between the stages;
//! 5. [`batch`];
//! 6. [`app`] and [`cli`] on top.

pub mod app;
pub mod backend;
pub mod batch;
pub mod cli;
pub mod console;
pub mod error;
pub mod files;
pub mod homeserver;
pub mod hooks;
pub mod interrupt;
pub mod options;
pub mod policy;
pub mod prompt;
pub mod record;
pub mod report;
pub mod retry;
pub mod runner;
pub mod secret;
pub mod stages;
pub mod state;
pub mod yaml11;

/// The binary's entry point.
pub fn main() -> std::process::ExitCode {
    app::main()
}
