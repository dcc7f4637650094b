//! From the parsed command line to an exit status: builds the console, the
//! record and the hooks, runs the pipeline, and reports what happened.

use crate::cli::Cli;
use crate::console::{Console, Level};
use crate::error::{Error, exit};
use crate::hooks::{HookOptions, LuaHooks};
use crate::pipeline::{Ctx, Outcome, Record, Resolved, Runner, Stage};
use crate::prompt::Terminal;
use crate::secret::Secret;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let args = crate::cli::expand_original_prefixes(std::env::args_os());
    // `--generate KIND` stands alone: taken before the rest is required.
    if let Some(code) = generate_if_asked(&args) {
        return code;
    }
    let cli = match Cli::try_parse_from(args) {
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
    let console = Console::new(Level::from_flags(cli.quiet, cli.verbose), cli.json);
    let result = match &cli.batch {
        Some(path) => crate::batch::run(&cli, path, &console),
        None => run(&cli, &console).map(|()| exit::OK),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.report(&console);
            ExitCode::from(e.exit_code())
        }
    }
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
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "register_new_matrix_user".into());
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

/// The record the command line describes, before any stage has run. The
/// password file is read here, so `before_input` hooks see its password.
pub fn record_from_cli(cli: &Cli, console: &Console) -> Result<Record, Error> {
    let password = match &cli.password_file {
        Some(path) => {
            if path.as_os_str() != "-" {
                crate::stages::config::warn_if_world_readable(path, "the password file", console);
            }
            Some(crate::stages::input::read_password_file(path)?)
        }
        None => {
            if cli.password.is_some() {
                console.warn(
                    "-p puts the password in the process list, where other local users can read it; \
                     prefer --password-file - (reads standard input)",
                );
            }
            cli.password.clone().map(Secret::new)
        }
    };
    Ok(Record {
        username: cli.user.clone(),
        password,
        displayname: cli.displayname.clone(),
        admin: match (cli.admin, cli.no_admin) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        user_type: cli.user_type.clone(),
        server_url: cli.server_url.clone(),
        ..Record::default()
    })
}

pub fn hook_options(cli: &Cli, level: Level) -> HookOptions {
    HookOptions {
        unsafe_libs: cli.hook_unsafe,
        timeout: cli.hook_timeout,
        memory: (cli.hook_memory as usize) << 20,
        level,
        ..HookOptions::default()
    }
}

/// Hooks from `--hook`, in command-line order.
pub fn cli_hooks(cli: &Cli, level: Level) -> Result<LuaHooks, Error> {
    let mut hooks = LuaHooks::new(&hook_options(cli, level))?;
    for f in &cli.hooks {
        hooks.load(f)?;
    }
    Ok(hooks)
}

/// Adds what the config stage resolved: the config's own hooks (after those
/// from `--hook`), `rnmu.config`, and the shared secret to mask in hook logs.
pub fn add_config_hooks(hooks: &mut LuaHooks, resolved: &Resolved) -> Result<(), Error> {
    hooks.add_redaction(&resolved.secret);
    hooks.set_password_policy(&resolved.password_policy);
    hooks.set_transport(&resolved.transport);
    hooks.set_config(&resolved.tool_config)?;
    for f in &resolved.config_hooks {
        hooks.load(f)?;
    }
    Ok(())
}

/// One registration from the command line. With `--json`, its result is
/// printed as a JSON line whatever happened.
pub fn run(cli: &Cli, console: &Console) -> Result<(), Error> {
    let mut rec = Record::default();
    let result = run_one(cli, console, &mut rec);
    if cli.json {
        let report = crate::report::Report::of(&rec, &result);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", report.to_json_line());
    }
    result
}

fn run_one(cli: &Cli, console: &Console, rec: &mut Record) -> Result<(), Error> {
    let mut hooks = cli_hooks(cli, console.level())?;
    let mut prompter = Terminal;
    let mut ctx = Ctx::new(cli, console, &mut prompter);
    ctx.start_deadline();
    *rec = record_from_cli(cli, console)?;

    Runner::new(&mut hooks, cli.dry_run).run(&[Stage::Config], rec, &mut ctx)?;
    let resolved = ctx.resolved()?;
    add_config_hooks(&mut hooks, &resolved)?;

    let stages: &[Stage] = if cli.dry_run {
        &Stage::DRY_RUN
    } else {
        &Stage::ALL
    };
    Runner::new(&mut hooks, cli.dry_run).run(&stages[1..], rec, &mut ctx)?;
    if cli.dry_run {
        rec.outcome = Some(Outcome::DryRun);
        console.status(&dry_run_report(rec)?);
    }
    Ok(())
}

/// What a dry run prints: where the request would go and its body, with the
/// password and the MAC masked.
pub fn dry_run_report(rec: &Record) -> Result<String, Error> {
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
