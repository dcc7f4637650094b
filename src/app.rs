//! From the parsed command line to an exit status: builds the console, the
//! record and the hooks, runs the pipeline, and reports what happened.

use crate::cli::Cli;
use crate::console::{Console, Level};
use crate::error::{Error, exit};
use crate::pipeline::{Ctx, NoHooks, Record, Runner, Stage};
use crate::prompt::Terminal;
use crate::secret::Secret;
use clap::Parser;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let console = Console::new(Level::from_flags(cli.quiet, cli.verbose), false);
    match run(&cli, &console) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            e.report(&console);
            ExitCode::from(e.exit_code())
        }
    }
}

/// The record the command line describes, before any stage has run.
pub fn record_from_cli(cli: &Cli) -> Record {
    Record {
        username: cli.user.clone(),
        password: cli.password.clone().map(Secret::new),
        displayname: cli.displayname.clone(),
        admin: match (cli.admin, cli.no_admin) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        user_type: cli.user_type.clone(),
        server_url: cli.server_url.clone(),
        ..Record::default()
    }
}

/// One registration from the command line.
pub fn run(cli: &Cli, console: &Console) -> Result<(), Error> {
    let mut prompter = Terminal;
    let mut ctx = Ctx::new(cli, console, &mut prompter);
    let mut hooks = NoHooks;
    let mut rec = record_from_cli(cli);
    Runner::new(&mut hooks, false).run(&Stage::ALL, &mut rec, &mut ctx)
}
