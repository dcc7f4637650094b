//! Batch onboarding (`--batch FILE`): many registrations through the same
//! pipeline and hooks as one, concurrently, resumably, with machine-readable
//! results.
//!
//! - `reader`: CSV, JSON Lines and YAML rows, streamed.
//! - `pool`: the workers, each with its own Lua state and HTTP client.
//! - `journal`: the results file, and resuming from it.
//! - `progress`: the bar or the plain lines, and the summary.
//! - `seen`: the usernames seen so far, compactly, for refusing repeats.
//!
//! The config stage runs once for the whole batch; each row then runs from
//! the input stage on. Flags on the command line are defaults for every row.

pub mod export;
pub mod journal;
pub mod ldap;
mod pool;
pub mod priors;
pub mod progress;
pub mod reader;
pub mod rollback;
mod seen;

use crate::console::{Console, Level};
use crate::error::{Error, exit};
use crate::hooks::cli_hooks;
use crate::options::{Mode, Options};
use crate::prompt::NoPrompts;
use crate::runner::Runner;
use crate::stages::Ctx;
use crate::stages::input::record_from_options;
use reader::Format;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Runs the batch the command line names; the exit status.
pub fn run(cli: &Options, path: &Path, console: &Console) -> Result<u8, Error> {
    let spec = path.to_str().unwrap_or_default();
    if ldap::is_directory(spec) {
        let journal = results_file(cli, console)?;
        let spec = spec.to_string();
        let rows = move |resolved: &crate::stages::Resolved| {
            ldap::open(ldap::directory(&spec, &resolved.tool_config)?)
        };
        return run_rows(cli, rows, None, journal.as_ref(), console);
    }
    let format = match cli.batch_format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(Error::Usage(format!(
                "cannot tell the format of {} from its name: give --batch-format csv, jsonl or yaml",
                path.display()
            )));
        }
    };
    let rows = reader::open(path, format)?;
    // Counted ahead only when it is a regular file: a pipe or a FIFO can be
    // read once, and that one read is the batch's.
    let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
    let total = match (regular, Mode::of(cli)) {
        (false, _) => None,
        // That pass counts the rows too.
        (true, Mode::Ensure | Mode::Plan) => Some(no_shared_emails(path, format)?),
        (true, _) => count_rows(path, format),
    };
    let journal = results_file(cli, console)?;
    run_rows(cli, |_| Ok(rows), total, journal.as_ref(), console)
}

/// The results file `-o` names, when this run writes one.
fn results_file(cli: &Options, console: &Console) -> Result<Option<journal::Journal>, Error> {
    Ok(match (&cli.output, cli.dry_run || cli.plan) {
        (Some(p), false) => {
            let j = journal::Journal::open(p)?;
            if let Some(w) = j.damage_warning() {
                console.warn(&w);
            }
            Some(j)
        }
        (Some(_), true) => {
            console.warn(if cli.plan {
                "--plan leaves the --output file alone"
            } else {
                "--dry-run leaves the --output file alone"
            });
            None
        }
        (None, _) => None,
    })
}

/// Runs rows through the pipeline, concurrently: the config stage once,
/// then every row from the input stage on; the exit status.
pub fn run_rows(
    cli: &Options,
    rows: impl FnOnce(&crate::stages::Resolved) -> Result<reader::Rows, Error>,
    total: Option<u64>,
    journal: Option<&journal::Journal>,
    console: &Console,
) -> Result<u8, Error> {
    let (template, resolved) = configured(cli, console)?;
    let rows = rows(&resolved)?;
    let progress = std::sync::Arc::new(progress::Progress::new(
        console.level() == Level::Quiet,
        total,
        resolved.transport.policy.waits.clone(),
    ));
    resolved.transport.policy.waits.set_waits_shown_elsewhere();
    if console.level() > Level::Quiet {
        let out = progress.clone();
        resolved
            .transport
            .policy
            .waits
            .set_output(move |line| out.println(line));
    }

    let jobs = usize::from(cli.jobs.max(1));
    let shared = pool::Shared {
        cli,
        level: console.level(),
        resolved,
        template,
        journal,
        progress: &progress,
        json: cli.json,
        rows: std::sync::Mutex::new(pool::RowSource::new(
            rows,
            total,
            matches!(Mode::of(cli), Mode::Ensure | Mode::Plan),
        )),
        stop: std::sync::atomic::AtomicBool::new(false),
    };
    pool::run(&shared, jobs)?;
    let mut prune_refused = None;
    if let Some(how) = cli
        .prune
        .filter(|_| !shared.stop.load(std::sync::atomic::Ordering::Relaxed))
    {
        let source = shared.rows.lock().unwrap_or_else(|p| p.into_inner());
        match prune_rows(cli, how, &shared, &source, console)? {
            Ok(rows) => {
                drop(source);
                let prune = pool::Shared {
                    rows: std::sync::Mutex::new(pool::RowSource::new(rows, None, false)),
                    stop: std::sync::atomic::AtomicBool::new(false),
                    template: shared.template.clone(),
                    resolved: shared.resolved.clone(),
                    ..shared
                };
                pool::run(&prune, jobs)?;
            }
            Err(why) => prune_refused = Some(why),
        }
    }

    let (s, elapsed) = progress.finish();
    if console.level() >= Level::Normal {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let done = s.rows() - s.skipped;
        let mode = Mode::of(cli);
        let mut line = if mode == Mode::Plan {
            format!(
                "plan: {} rows in {:.1} s: {} to create, {} to change, {} unchanged, {} rejected, {} failed",
                s.rows(),
                secs,
                s.to_create,
                s.to_change,
                s.unchanged,
                s.rejected,
                s.failed
            )
        } else if cli.rollback.is_some() {
            format!(
                "rollback: {} accounts in {:.1} s: {} deactivated, {} already inactive or gone, {} refused, {} failed",
                s.rows(),
                secs,
                s.deactivated,
                s.already_inactive + s.unchanged,
                s.rejected,
                s.failed
            )
        } else {
            format!(
                "batch: {} rows in {:.1} s ({}/s): {} registered, {} exists, {} rejected, {} failed",
                s.rows(),
                secs,
                progress::rate(done as f64 / secs),
                s.registered,
                s.exists,
                s.rejected,
                s.failed
            )
        };
        if s.pruned > 0 {
            line.push_str(&format!(", {} pruned", s.pruned));
        }
        if s.to_prune > 0 {
            line.push_str(&format!(" ({} of them to prune)", s.to_prune));
        }
        if mode == Mode::Ensure && cli.rollback.is_none() {
            line.push_str(&format!(
                ", {} updated, {} unchanged",
                s.updated, s.unchanged
            ));
            if s.deactivated + s.already_inactive > 0 {
                line.push_str(&format!(
                    ", {} deactivated",
                    s.deactivated + s.already_inactive
                ));
            }
        }
        let created_incomplete = s.incomplete - s.incomplete_existing;
        if created_incomplete > 0 {
            line.push_str(&format!(
                ", {created_incomplete} incomplete (registered, a later step undone: run the same command again)"
            ));
        }
        if s.incomplete_existing > 0 {
            line.push_str(&format!(
                ", {} incomplete (existing accounts, a change undone: run the same command again)",
                s.incomplete_existing
            ));
        }
        if s.duplicate > 0 {
            line.push_str(&format!(", {} duplicate", s.duplicate));
        }
        if s.skipped > 0 {
            line.push_str(&format!(", {} done by an earlier run", s.skipped));
        }
        if s.dry_run > 0 {
            line.push_str(&format!(", {} dry-run", s.dry_run));
        }
        eprintln!("{line}");
    }
    if let Some(why) = prune_refused {
        eprintln!("error: {why}");
        return Ok(exit::PRUNE_REFUSED);
    }
    let exists_bad = s.exists > 0 && !cli.exists_ok;
    Ok(
        if s.rejected + s.failed + s.incomplete + s.duplicate > 0 || exists_bad {
            exit::FAILED
        } else if s.to_create + s.to_change > 0 {
            exit::CHANGES
        } else {
            exit::OK
        },
    )
}

/// The accounts `--prune` takes up, as rows; or why nobody is pruned.
fn prune_rows(
    cli: &Options,
    how: crate::options::Prune,
    shared: &pool::Shared<'_>,
    source: &pool::RowSource,
    console: &Console,
) -> Result<Result<reader::Rows, String>, Error> {
    if source.read == 0 {
        return Ok(Err(
            "the inventory has no rows: nobody is pruned (an empty inventory is taken for one \
             that failed to read)"
                .into(),
        ));
    }
    if source.unreadable > 0 {
        return Ok(Err(format!(
            "{} of the inventory's {} rows could not be read: nobody is pruned, since an \
             account of one of them would be",
            source.unreadable, source.read
        )));
    }
    let mut keep = cli.keep.clone();
    if let Some(list) = shared.resolved.tool_config.get("prune_keep") {
        match list.as_array() {
            Some(items) => keep.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_string)),
            None => {
                return Err(Error::Config(
                    "prune_keep in the config's register_new_matrix_user section must be a list \
                     of user IDs, localparts or globs"
                        .into(),
                ));
            }
        }
    }
    let mut np = NoPrompts;
    let mut ctx = worker_ctx(cli, console, &mut np, &shared.resolved);
    let backend = ctx.backend(&shared.template)?;
    let named = |localpart: &str| source.named(&journal::key(localpart));
    let found = crate::stages::prune::candidates(
        &*backend,
        how,
        &named,
        shared.resolved.admin_user.as_deref(),
        &keep,
        cli.prune_max,
    )?;
    let bound = crate::stages::prune::bound(cli.prune_max, found.active);
    if found.count > bound {
        return Ok(Err(format!(
            "--prune would take up {} accounts, more than this run may ({bound}: --prune-max {} \
             or a third of the server's {} active accounts, whichever is smaller): nobody is \
             pruned; check the inventory, or raise --prune-max",
            found.count, cli.prune_max, found.active
        )));
    }
    let rows = found.users.into_iter().map(move |user_id| {
        let localpart = crate::state::localpart(&user_id).to_string();
        reader::Row {
            line: 0,
            username: Some(localpart.clone()),
            fields: Ok(reader::Fields {
                username: Some(localpart),
                pruned: Some(how),
                ..reader::Fields::default()
            }),
        }
    });
    Ok(Ok(Box::new(rows)))
}

/// The config stage, once, with the hooks given by `--hook`: the record
/// the command line describes (every row's defaults), and what the stage
/// found.
pub fn configured(
    cli: &Options,
    console: &Console,
) -> Result<
    (
        crate::record::Record,
        std::sync::Arc<crate::stages::Resolved>,
    ),
    Error,
> {
    let mut template = record_from_options(cli, console)?;
    let mut no_prompts = NoPrompts;
    let mut ctx = Ctx::new(cli, console, &mut no_prompts);
    ctx.start_deadline();
    let mut hooks = cli_hooks(cli, console.level())?;
    Runner::new(&mut hooks, cli.dry_run).run(
        &crate::backend::stages(ctx.mode)[..1],
        &mut template,
        &mut ctx,
    )?;
    let resolved = ctx.resolved()?;
    Ok((template, resolved))
}

/// A worker's context, on what the config stage found, asking nobody.
pub fn worker_ctx<'a>(
    cli: &'a Options,
    console: &'a Console,
    prompter: &'a mut NoPrompts,
    resolved: &std::sync::Arc<crate::stages::Resolved>,
) -> Ctx<'a> {
    let mut ctx = Ctx::new(cli, console, prompter);
    ctx.resolved = Some(resolved.clone());
    ctx.retries = cli.retries.unwrap_or(crate::retry::BATCH_RETRIES);
    ctx
}

/// The email addresses the rows so far give, by the line that gave each
/// (a 96-bit hash of the address as the server keeps it, so memory stays
/// small).
#[derive(Default)]
pub struct EmailLines {
    lines: std::collections::HashMap<[u8; 12], usize>,
}

impl EmailLines {
    /// Records the row's addresses; why it is refused when one is an
    /// earlier row's.
    pub fn add(&mut self, line: usize, f: &reader::Fields) -> Option<String> {
        for e in f.emails.iter().flatten() {
            let canonical = crate::state::canonical_email(e);
            let first = *self.lines.entry(priors::hash(&canonical)).or_insert(line);
            if first != line {
                return Some(format!(
                    "gives the email address {canonical}, which line {first} gives too: an \
                     address belongs to one account"
                ));
            }
        }
        None
    }
}

/// An address two rows give would move between their accounts on every
/// run: refused before anything is sent (from a pipe, which is read once,
/// the later row is). The number of rows.
fn no_shared_emails(path: &Path, format: Format) -> Result<u64, Error> {
    let mut emails = EmailLines::default();
    let mut n = 0;
    for row in reader::open(path, format)? {
        n += 1;
        if let Some(why) = row
            .fields
            .as_ref()
            .ok()
            .and_then(|f| emails.add(row.line, f))
        {
            return Err(Error::Usage(format!(
                "{}: line {}: {why}",
                path.display(),
                row.line
            )));
        }
    }
    Ok(n)
}

/// How many rows a file holds, for the progress bar's ETA (a quick count of
/// lines; a CSV cell with a newline makes it a little high).
fn count_rows(path: &Path, format: Format) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    let mut n = 0u64;
    for line in BufReader::with_capacity(64 * 1024, f).split(b'\n') {
        let line = line.ok()?;
        let counts = match format {
            Format::Yaml => line.first() == Some(&b'-') && line.get(1).is_none_or(|c| *c == b' '),
            _ => !line.iter().all(u8::is_ascii_whitespace),
        };
        n += u64::from(counts);
    }
    Some(match format {
        Format::Csv => n.saturating_sub(1),
        _ => n,
    })
}
