//! `register_new_matrix_user`: register users on a Matrix homeserver through
//! the shared-secret admin API.
//!
//! A registration is a [`pipeline::Record`] run through the stages in
//! [`stages`] by a [`pipeline::Runner`], which fires hooks between them.
//! [`app`] wires the command line to the pipeline and maps errors to exit
//! statuses in one place.

pub mod app;
pub mod batch;
pub mod cli;
pub mod console;
pub mod error;
pub mod files;
pub mod homeserver;
pub mod hooks;
pub mod pipeline;
pub mod policy;
pub mod prompt;
pub mod report;
pub mod retry;
pub mod secret;
pub mod stages;

/// The binary's entry point.
pub fn main() -> std::process::ExitCode {
    app::main()
}
