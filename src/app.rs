//! From the parsed command line to an exit status: builds the console, the
//! record and the hooks, runs the pipeline, and reports what happened.

use crate::cli::Cli;
use crate::console::{Console, Level};
use crate::error::{Error, exit};
use crate::hooks::{add_config_hooks, cli_hooks};
use crate::options::{Mode, Options};
use crate::prompt::Terminal;
use crate::record::{Outcome, Record};
use crate::runner::Runner;
use crate::stages::Ctx;
use crate::stages::input::record_from_options;
use std::io::Write;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let args = crate::cli::expand_original_prefixes(std::env::args_os());
    // `--generate KIND` stands alone: taken before the rest is required.
    if let Some(code) = generate_if_asked(&args) {
        return code;
    }
    let cli = match crate::cli::parse(args, &invoked_name()) {
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
    if cli.output.is_some() && cli.batch.is_none() {
        let e = clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--output records the rows of a --batch; for one registration, use --json\n",
        );
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    if let Some(why) = ambiguous_passwords(&cli) {
        let e = clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, format!("{why}\n"));
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    if cli.plan && !cli.ensure && cli.rollback.is_none() {
        let e = clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--plan shows what --ensure or --rollback would do: give one of them\n",
        );
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    if let Some(why) = misplaced(&cli) {
        let e = clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, format!("{why}\n"));
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    let console = Console::new(Level::from_flags(cli.quiet, cli.verbose), cli.json);
    let opts = cli.options();
    crate::interrupt::install();
    let result = match (&opts.batch, &opts.rollback) {
        _ if opts.export.is_some() => {
            let path = opts.export.clone().unwrap_or_default();
            crate::batch::export::run(&opts, &path, &console)
        }
        (Some(path), _) => crate::batch::run(&opts, path, &console),
        (None, Some(results)) => crate::batch::rollback::run(&opts, results, &console),
        (None, None) => run(&opts, &console),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.report(&console);
            ExitCode::from(e.exit_code())
        }
    }
}

/// A flag that would do nothing, or something no plan says, where it is.
fn misplaced(cli: &Cli) -> Option<&'static str> {
    if cli.rollback.is_none() && cli.erase {
        return Some("--erase goes with --rollback: it erases the accounts a rollback deactivates");
    }
    if cli.rollback.is_none() && cli.yes {
        return Some("--yes goes with --rollback: it answers the rollback's question");
    }
    if cli.ensure && cli.exists_ok {
        return Some(
            "--exists-ok has no meaning with --ensure, which brings an existing account to what \
             the input says: leave it out",
        );
    }
    None
}

/// A password source that cannot mean what it says with `--batch`.
fn ambiguous_passwords(cli: &Cli) -> Option<&'static str> {
    let batch = cli.batch.as_ref()?;
    if cli.password.is_some() || cli.password_file.is_some() {
        if batch.as_os_str() == "-"
            && cli
                .password_file
                .as_ref()
                .is_some_and(|p| p.as_os_str() == "-")
        {
            return Some(
                "--batch - and --password-file - would both read standard input: give the batch \
                 as a file, and the passwords in its password column",
            );
        }
        return Some(
            "-p and --password-file give one password, and a batch has many accounts: put each \
             row's password in the batch file's password column, or leave it out and the row \
             gets a generated password",
        );
    }
    None
}

/// The name the command was run as: the package installs it under two.
fn invoked_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "register_new_matrix_user".into())
}

/// Prints what `--generate KIND` asks for, when the command line is just that.
fn generate_if_asked(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    use clap::ValueEnum;
    let args: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().unwrap_or(""))
        .collect();
    let value = match args.as_slice() {
        ["--generate", v] => *v,
        [one] => one.strip_prefix("--generate=")?,
        _ => return None,
    };
    let kind = crate::cli::Generate::from_str(value, false).ok()?;
    // For the name the command was run as (a package may install it as another).
    let name = invoked_name();
    Some(
        match crate::cli::generate(kind, &name, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("error: cannot write it: {e}");
                ExitCode::from(exit::FAILED)
            }
        },
    )
}

/// One registration from the command line. With `--json`, its result is
/// printed as a JSON line whatever happened. The exit status: 0, or with
/// `--plan`, [`exit::CHANGES`] when something would change.
pub fn run(opts: &Options, console: &Console) -> Result<u8, Error> {
    let mut rec = Record::default();
    let result = run_one(opts, console, &mut rec);
    let report = crate::report::Report::of(&rec, &result);
    if opts.json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", report.to_json_line());
    }
    result?;
    if opts.plan {
        if !opts.json {
            console.status_always(&crate::report::plan_line(&report));
        }
        if report.would_change() {
            return Ok(exit::CHANGES);
        }
    }
    Ok(exit::OK)
}

fn run_one(opts: &Options, console: &Console, rec: &mut Record) -> Result<(), Error> {
    let mut hooks = cli_hooks(opts, console.level())?;
    let mut prompter = Terminal;
    let mut ctx = Ctx::new(opts, console, &mut prompter);
    ctx.start_deadline();
    *rec = record_from_options(opts, console)?;

    let stages = crate::backend::stages(ctx.mode);
    Runner::new(&mut hooks, opts.dry_run).run(&stages[..1], rec, &mut ctx)?;
    let resolved = ctx.resolved()?;
    resolved.transport.policy.waits.set_single(opts.deadline);
    add_config_hooks(&mut hooks, &resolved)?;

    // The config stage has said which kind of server this is.
    let stages = ctx.stages();
    Runner::new(&mut hooks, opts.dry_run).run(&stages[1..], rec, &mut ctx)?;
    match ctx.mode {
        Mode::DryRun => {
            rec.outcome = Some(Outcome::DryRun);
            console.status(&dry_run_report(rec)?);
        }
        Mode::Plan => rec.outcome = Some(Outcome::Planned),
        _ => {}
    }
    Ok(())
}

/// What a dry run prints: where the request would go and its body, with the
/// password and the MAC masked.
pub fn dry_run_report(rec: &Record) -> Result<String, Error> {
    if rec.mac.is_none() {
        // Through MAS: no request body is signed.
        return Ok(format!(
            "Dry run: nothing was sent. Would create {} in MAS{}",
            rec.username.as_deref().unwrap_or("?").trim().to_lowercase(),
            if rec.admin == Some(true) {
                ", set its password and make it an admin"
            } else {
                " and set its password"
            }
        ));
    }
    let req = crate::stages::submit::request(rec)?;
    let mut body = serde_json::to_value(&req).map_err(|e| Error::Input(e.to_string()))?;
    body["password"] = "********".into();
    body["mac"] = "********".into();
    Ok(format!(
        "Dry run: nothing was sent. Would POST to {}{}:\n{}",
        rec.server_url
            .as_deref()
            .unwrap_or("?")
            .trim_end_matches('/'),
        crate::homeserver::REGISTER_PATH,
        body
    ))
}
