//! The workers of a batch. Each pulls rows one at a time, runs them through
//! the pipeline with its own Lua state and HTTP client, and reports each
//! result to the results file, `--json` and the progress counts.

use super::journal::{self, Journal};
use super::progress::Progress;
use super::reader::{Fields, Row, Rows};
use super::seen::Seen;
use crate::console::{Console, Level};
use crate::error::Error;
use crate::hooks::LuaHooks;
use crate::hooks::{add_config_hooks, cli_hooks};
use crate::options::{Mode, Options};
use crate::prompt::NoPrompts;
use crate::record::{HookCall, HookPoint, Outcome, Record, Stage};
use crate::report::{Report, Status};
use crate::runner::{Hooks, Runner};
use crate::secret::Secret;
use crate::stages::{Ctx, Resolved};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What every worker shares.
pub struct Shared<'a> {
    pub cli: &'a Options,
    pub level: Level,
    pub resolved: Arc<Resolved>,
    /// The record the command line describes: the defaults for every row.
    pub template: Record,
    pub journal: Option<&'a Journal>,
    pub progress: &'a Progress,
    pub json: bool,
    pub rows: Mutex<RowSource>,
    /// Set when a worker hits an error that must end the whole batch.
    pub stop: AtomicBool,
}

/// The rows, with the usernames seen so far (to refuse duplicates), and
/// with `--ensure` the email addresses (an address belongs to one account).
pub struct RowSource {
    rows: Rows,
    seen: Seen,
    emails: Option<super::EmailLines>,
    /// Rows read, and those that could not be used (`--prune` needs none).
    pub read: u64,
    pub unreadable: u64,
}

impl RowSource {
    /// The rows, and how many there are when that is known ahead.
    pub fn new(rows: Rows, expected: Option<u64>, ensure: bool) -> Self {
        RowSource {
            rows,
            seen: expected.map_or_else(Seen::default, Seen::with_expected),
            emails: ensure.then(super::EmailLines::default),
            read: 0,
            unreadable: 0,
        }
    }

    /// Whether a row named the username `key`.
    pub fn named(&self, key: &str) -> bool {
        self.seen.contains(key)
    }

    /// The next row, its username when it has one, and the line of the
    /// earlier row whose username it repeats.
    fn next(&mut self) -> Option<(Row, Option<String>, Option<usize>)> {
        let mut row = self.rows.next()?;
        let key = row.username().map(journal::key);
        let mut duplicate_of = None;
        match &key {
            None if row.fields.is_ok() => row.fields = Err("has no username".into()),
            None => {}
            Some(k) => duplicate_of = self.seen.first_or_insert(k, row.line),
        }
        // Under --ensure a misspelt field must not become a hook's: fields
        // for hooks are named so (`x_...`).
        if let (Some(_), Ok(f)) = (&self.emails, &row.fields) {
            if let Some(k) = f.extra.keys().find(|k| !k.starts_with("x_")) {
                row.fields = Err(format!(
                    "{k:?} is not a field --ensure manages (username, password, {}); a field for \
                     hooks is named x_...",
                    crate::state::FIELDS.join(", ")
                ));
            }
        }
        if let (Some(emails), Ok(f), None) = (&mut self.emails, &row.fields, duplicate_of) {
            if let Some(why) = emails.add(row.line, f) {
                row.fields = Err(why);
            }
        }
        self.read += 1;
        if row.fields.is_err() {
            self.unreadable += 1;
        }
        Some((row, key, duplicate_of))
    }
}

pub fn run(shared: &Shared<'_>, jobs: usize) -> Result<(), Error> {
    // Told when the workers are done, so the progress thread ends at once
    // instead of finishing its sleep.
    let (done, ticks) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        // Pending lines reach the disk beside the rows' requests.
        if let Some(j) = shared.journal {
            scope.spawn(move || j.syncer());
        }
        // The progress line moves while every worker waits on the server.
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                ticks.recv_timeout(std::time::Duration::from_millis(250))
            {
                shared.progress.refresh();
            }
        });
        let workers: Vec<_> = (0..jobs).map(|_| scope.spawn(|| worker(shared))).collect();
        let mut first_err = None;
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Output("a batch worker crashed".into()));
                }
            }
        }
        drop(done);
        if let Some(j) = shared.journal {
            j.stop_syncer();
        }
        first_err.map_or(Ok(()), Err)
    })
}

/// The Lua hooks of a worker, plus the results file's `pending` line, written
/// just before the request is sent.
struct RowHooks<'a> {
    lua: LuaHooks,
    journal: Option<&'a Journal>,
    line: usize,
    key: String,
    pending_written: bool,
    /// The pending line's number, to wait for before the register request.
    pending_seq: Option<u64>,
}

impl Hooks for RowHooks<'_> {
    fn fire(&mut self, call: &HookCall<'_>, rec: &mut Record) -> Result<(), Error> {
        self.lua.fire(call, rec)?;
        // The pending line goes out as the row's creation starts (its fields
        // are validated and frozen), and is synced to disk while the nonce
        // is fetched; the register request waits until it is durable.
        // The first creating stage: the nonce on Synapse, the submit
        // stage through MAS.
        let creating = matches!(
            call.point,
            HookPoint::Before(Stage::Nonce) | HookPoint::Before(Stage::Submit)
        );
        if creating && !self.pending_written {
            if let Some(j) = self.journal {
                let mut pending = Report::of(rec, &Ok(()));
                pending.status = Status::Pending;
                pending.user_id = None;
                pending.username = Some(self.key.clone());
                pending.line = Some(self.line);
                self.pending_seq = Some(j.write_pending(&pending)?);
            }
            self.pending_written = true;
        }
        if call.point == HookPoint::Before(Stage::Submit) {
            if let (Some(j), Some(seq)) = (self.journal, self.pending_seq) {
                j.wait_durable(seq)?;
            }
        }
        Ok(())
    }
}

fn worker(shared: &Shared<'_>) -> Result<(), Error> {
    let cli = shared.cli;
    let console = Console::new(shared.level, true);
    console.silence_status();
    let mut lua = cli_hooks(cli, shared.level)?;
    add_config_hooks(&mut lua, &shared.resolved)?;
    let mut hooks = RowHooks {
        lua,
        journal: shared.journal,
        line: 0,
        key: String::new(),
        pending_written: false,
        pending_seq: None,
    };
    let mut prompter = NoPrompts;
    let mut ctx = Ctx::new(cli, &console, &mut prompter);
    ctx.resolved = Some(shared.resolved.clone());
    ctx.retries = cli.retries.unwrap_or(crate::retry::BATCH_RETRIES);
    ctx.generate_missing_password = true;
    ctx.reveal_generated = false;
    let stages = &ctx.stages()[1..];

    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let row = {
            let mut src = shared.rows.lock().unwrap_or_else(|p| p.into_inner());
            src.next()
        };
        let Some((row, username, duplicate_of)) = row else {
            return Ok(());
        };
        ctx.start_deadline();
        let (report, skipped) = match (duplicate_of, &username) {
            (Some(first), Some(key)) => (duplicate(row.line, key, first), false),
            _ => run_row(shared, row, username, &mut hooks, &mut ctx, stages),
        };
        if let Err(e) = finish(shared, &report, skipped) {
            // The results file failed: nothing more may be registered unrecorded.
            shared.stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
}

/// One row through the pipeline, or its earlier result: the report, and
/// whether an earlier run had done it.
fn run_row(
    shared: &Shared<'_>,
    row: Row,
    username: Option<String>,
    hooks: &mut RowHooks<'_>,
    ctx: &mut Ctx<'_>,
    stages: &[Stage],
) -> (Report, bool) {
    let cli = shared.cli;
    let line = row.line;
    // A rollback's rows are its own: what the file says of them made them.
    let prior = username
        .as_deref()
        .filter(|_| cli.rollback.is_none())
        .and_then(|k| shared.journal.and_then(|j| j.prior(k)));
    let prior = prior.as_ref();
    let ensure = matches!(ctx.mode, Mode::Ensure | Mode::Plan);
    // Done by an earlier run: left alone, whatever the row says now (with
    // --ensure, the account is read again and brought to what it says).
    if let Some(p) = prior.filter(|p| {
        !ensure && (p.status == Status::Registered || (p.status == Status::Exists && cli.exists_ok))
    }) {
        // Settled rows keep no user ID in memory: it is the username's.
        let user_id = p.user_id.clone().or_else(|| {
            let server = shared.resolved.server_name()?;
            Some(format!("@{}:{server}", username.as_deref()?))
        });
        let done = Report {
            line: Some(line),
            username,
            user_id,
            status: p.status,
            // The row changed into one that could not be registered: said,
            // and the account left as recorded.
            error: row
                .fields
                .as_ref()
                .err()
                .map(|why| format!("line {line}: {why}; left as an earlier run recorded it")),
            ..Report::empty()
        };
        return (done, true);
    }
    let fields = match row.fields {
        Ok(f) => f,
        Err(why) => {
            let mut r = rejected(line, username, format!("line {line}: {why}"));
            // The account is as an earlier run recorded it: this row cannot
            // change that, and its line must not read as the user's outcome.
            if let Some(p) = prior.filter(|p| p.status != Status::Rejected) {
                r.status = p.status;
                r.user_id = p.user_id.clone();
                r.undone = p.undone.clone();
                r.error = Some(format!(
                    "line {line}: {why}; left as an earlier run recorded it"
                ));
            }
            return (r, false);
        }
    };
    let key = journal::key(fields.username.as_deref().unwrap_or(""));
    let mut rec = record(&shared.template, fields, ensure);
    if let Some(p) = prior.filter(|p| {
        // With --ensure, a change left undone is planned again by a rerun;
        // hooks left undone, or a session, are finished as without it.
        p.status == Status::Incomplete
            && (!ensure
                || p.undone
                    .as_ref()
                    .is_some_and(|u| u.from.is_some() || u.live_session))
    }) {
        return (finish_incomplete(rec, p, line, key, hooks, ctx), false);
    }
    if let Some(p) = prior.filter(|p| matches!(p.status, Status::Pending | Status::Failed)) {
        // An earlier run may have sent it: reuse its password, and let
        // "user in use" be settled by a login.
        rec.maybe_sent = true;
        if let Some(pw) = &p.password {
            rec.password = Some(pw.clone());
            rec.password_generated = true;
        }
    }
    hooks.line = line;
    hooks.key = key.clone();
    hooks.pending_written = false;
    hooks.pending_seq = None;
    let result = Runner::new(hooks, cli.dry_run).run(stages, &mut rec, ctx);
    match (ctx.mode, result.is_ok()) {
        (Mode::DryRun, true) => rec.outcome = Some(Outcome::DryRun),
        (Mode::Plan, true) => rec.outcome = Some(Outcome::Planned),
        _ => {}
    }
    let mut r = Report::of(&rec, &result);
    // A prune's row is the server's, not a line of the file.
    r.line = (line > 0).then_some(line);
    r.username = Some(key);
    if let (Some(e), true) = (&mut r.error, line > 0) {
        *e = format!("line {line}: {e}");
    }
    // Refused this time, but an earlier attempt may have reached the server:
    // the row keeps that state and its password until a run settles it.
    if let Some(p) = prior.filter(|p| {
        r.status == Status::Rejected && matches!(p.status, Status::Pending | Status::Failed)
    }) {
        r.status = p.status;
        r.password = p.password.clone();
        if let Some(e) = &mut r.error {
            e.push_str("; left as an earlier run recorded it: its request may have reached the server, and its password is kept");
        }
    }
    (r, false)
}

/// Finishes a row an earlier run registered but left `incomplete`: its
/// hooks from the point that failed on, with a session as the new user where
/// the hooks asked for one, and the session left live ended. Nobody is
/// registered again.
fn finish_incomplete(
    mut rec: Record,
    prior: &journal::Prior,
    line: usize,
    key: String,
    hooks: &mut RowHooks<'_>,
    ctx: &mut Ctx<'_>,
) -> Report {
    let undone = prior.undone.clone().unwrap_or_default();
    rec.user_id = prior.user_id.clone();
    rec.outcome = Some(Outcome::Registered);
    rec.want_session = undone.want_session;
    // What differs from the recorded attempt is said, and the account's own
    // values stand: the hooks finishing it see the account as it is.
    let mut changed = Vec::new();
    if let (Some(was), Some(now)) = (prior.admin, rec.admin) {
        if was != now && ctx.mode != Mode::Ensure {
            changed.push(format!(
                "admin is now {}, but the account was registered with {}: its hooks see {}, as \
                 the account is (--ensure changes it)",
                yes_no(now),
                yes_no(was),
                yes_no(was)
            ));
            rec.admin = Some(was);
        }
    }
    let given_password = rec.password.is_some() && prior.password.is_none();
    if let Some(pw) = &prior.password {
        rec.password = Some(pw.clone());
        rec.password_generated = true;
    }
    ctx.rerun = true;
    let result = if ctx.mode == Mode::Ensure {
        // The account is read again, so the apply stage makes what is left.
        Runner::new(hooks, false)
            .run(&[Stage::Read], &mut rec, ctx)
            .and_then(|()| {
                rec.outcome = Some(Outcome::Registered);
                rerun_steps(&mut rec, &undone, hooks, ctx)
            })
    } else {
        rerun_steps(&mut rec, &undone, hooks, ctx)
    };
    ctx.rerun = false;
    let result = result.map_err(|e| match e {
        // The row's own password no longer logs in: most likely it changed.
        Error::Server(h)
            if given_password
                && matches!(&h, crate::error::HsError::Status { status: 403, .. }) =>
        {
            Error::Hinted {
                cause: Box::new(Error::Server(h)),
                hint: "the row's password does not log in to the account this file records as \
                       created: if it changed since, give the password the account was created with"
                    .into(),
            }
        }
        e => e,
    });
    let mut r = Report::of(&rec, &result);
    if !changed.is_empty() {
        let note = changed.join("; ");
        r.error = Some(match r.error.take() {
            Some(e) => format!("{e}; {note}"),
            None => note,
        });
    }
    if r.status != Status::Registered && r.status != Status::Incomplete {
        // A failure before any hook ran (the login for the session): the
        // account is as the earlier run left it.
        r.status = Status::Incomplete;
        r.undone = Some(undone);
    }
    r.line = Some(line);
    r.username = Some(key);
    if let Some(e) = &mut r.error {
        *e = format!("line {line}: {e}");
    }
    r
}

fn rerun_steps(
    rec: &mut Record,
    undone: &crate::record::Undone,
    hooks: &mut RowHooks<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<(), Error> {
    if !undone.account.is_empty() {
        // A MAS user left without its password or admin flag: set them first.
        if let Some(mas) = ctx.mas()? {
            let user_id = rec.user_id.clone().unwrap_or_default();
            let user = mas.user(&user_id)?.ok_or_else(|| {
                Error::Input(format!("cannot finish {user_id}: MAS has no such user"))
            })?;
            let steps: Vec<&str> = undone.account.iter().map(String::as_str).collect();
            crate::stages::submit::finish_mas(rec, ctx, &mas, &user.id, &steps, false)?;
        }
    }
    if undone.live_session || undone.want_session {
        let (Some(user), Some(password)) = (rec.username.clone(), rec.password.clone()) else {
            return Err(Error::Input(
                "cannot finish it: no password is known to log in with".into(),
            ));
        };
        let session = ctx.login_server(rec)?.login(&user, &password)?;
        rec.access_token = session.access_token;
        rec.device_id = session.device_id;
        // A session an earlier run left live is ended with every other.
        rec.created_here = undone.live_session;
    }
    hooks.pending_written = true;
    let from = undone
        .from
        .as_deref()
        .and_then(crate::record::HookPoint::parse);
    let after: &[Stage] = if ctx.mode == Mode::Ensure {
        &[Stage::Apply, Stage::Post]
    } else {
        &[Stage::Post]
    };
    let mut runner = Runner::new(hooks, false);
    match from {
        Some(p) => runner.resume(p, after, rec, ctx),
        None => runner.run(&after[..after.len() - 1], rec, ctx),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn rejected(line: usize, username: Option<String>, error: String) -> Report {
    Report {
        line: Some(line),
        username,
        status: Status::Rejected,
        error: Some(error),
        ..Report::empty()
    }
}

fn duplicate(line: usize, key: &str, first: usize) -> Report {
    Report {
        line: Some(line),
        username: Some(key.to_string()),
        status: Status::Duplicate,
        error: Some(format!(
            "line {line}: repeats the username {key:?} of line {first}; skipped"
        )),
        duplicate_of: Some(first),
        ..Report::empty()
    }
}

/// A row's record: the command line's defaults, overlaid by the row.
/// Without `--ensure`, its fields (emails, rooms, avatar, active) are
/// free-form columns for hooks, as any other.
fn record(template: &Record, f: Fields, ensure: bool) -> Record {
    if let Some(how) = f.pruned {
        // Nothing of the command line's fields: only the prune.
        let mut rec = Record {
            username: f.username,
            server_url: template.server_url.clone(),
            pruned: true,
            ..Record::default()
        };
        match how {
            crate::options::Prune::Deactivate => rec.active = Some(false),
            crate::options::Prune::Lock => rec.locked = Some(true),
        }
        return rec;
    }
    let mut rec = template.clone();
    rec.username = f.username;
    rec.recorded_user_id = f.user_id;
    if let Some(p) = f.password {
        rec.password = Some(Secret::new(p));
    }
    if f.displayname.is_some() {
        rec.displayname = f.displayname;
    }
    // Nobody can be asked in a batch: not an admin unless something says so
    // (with --ensure, an admin flag nothing gives is left as it is).
    rec.admin = f.admin.or(template.admin);
    if !ensure {
        rec.admin = rec.admin.or(Some(false));
    }
    if f.user_type.is_some() {
        rec.user_type = f.user_type;
    }
    rec.extra = f.extra;
    if let Some(raw) = f.ldap {
        rec.extra
            .insert("ldap".into(), serde_json::Value::Object(raw));
    }
    if ensure {
        rec.emails = f.emails.or(rec.emails);
        rec.rooms = f.rooms.or(rec.rooms);
        rec.avatar = f.avatar.or(rec.avatar);
        rec.active = f.active.or(rec.active);
        rec.locked = f.locked.or(rec.locked);
        rec.external_ids = f.external_ids.or(rec.external_ids);
        rec.erased_ok = f.erased_ok.unwrap_or(rec.erased_ok);
    } else {
        let free = [
            ("emails", f.emails.map(serde_json::Value::from)),
            ("rooms", f.rooms.map(serde_json::Value::from)),
            ("avatar", f.avatar.map(serde_json::Value::from)),
            ("active", f.active.map(serde_json::Value::from)),
            ("locked", f.locked.map(serde_json::Value::from)),
            ("external_ids", f.external_ids.map(serde_json::Value::from)),
            ("erased_ok", f.erased_ok.map(serde_json::Value::from)),
        ];
        for (k, v) in free {
            if let Some(v) = v {
                rec.extra.insert(k.into(), v);
            }
        }
    }
    rec
}

/// Reports a finished row everywhere it goes.
fn finish(shared: &Shared<'_>, report: &Report, skipped: bool) -> Result<(), Error> {
    if !skipped {
        if let Some(j) = shared.journal {
            j.write(report)?;
        }
    }
    if shared.json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", report.to_json_line());
    } else if report.status == Status::Plan {
        // What changes, at a glance; the rows left alone are counted in the
        // summary, and listed at -v.
        if report.would_change() || shared.level >= Level::Verbose {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", crate::report::plan_line(report));
        }
    } else if let (None, Some(pw)) = (shared.journal, &report.password) {
        // Neither a results file nor --json: standard output is the one
        // place a generated password can go, once.
        let who = report
            .user_id
            .as_deref()
            .or(report.username.as_deref())
            .unwrap_or("?");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Generated password for {who}: {}", pw.expose());
    }
    if let Some(e) = &report.error {
        match report.status {
            // Errors show even with -q; an existing user is none with --exists-ok.
            Status::Exists if shared.cli.exists_ok => {}
            Status::Rejected
            | Status::Failed
            | Status::Exists
            | Status::Incomplete
            | Status::Duplicate => shared.progress.println(&format!("error: {e}")),
            // A row an earlier run settled, whose input changed since: the
            // account stands as recorded, and the line says why.
            _ => shared.progress.println(&format!("warning: {e}")),
        }
    }
    shared.progress.add(report, skipped);
    Ok(())
}
