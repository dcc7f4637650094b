//! The registration pipeline: the record that flows through it, the list of
//! stages, and the runner that executes them in order and fires hooks between
//! them.
//!
//! Stages know nothing of hooks; hooks attach here, to the runner, through the
//! [`Hooks`] trait. The runner also owns the two rules that hold for every
//! registration: an error after the account exists becomes
//! [`Error::AfterCreate`], and a session opened for hooks is always closed.

use crate::cli::Cli;
use crate::console::Console;
use crate::error::Error;
use crate::homeserver::{Homeserver, HsError};
use crate::prompt::Prompter;
use crate::secret::Secret;
use crate::stages;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// One registration, as it moves through the stages.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Set when the password was generated (by a hook), so it can be shown once.
    pub password_generated: bool,
    pub displayname: Option<String>,
    /// `None` until decided: by a flag, a hook, a batch row or the prompt.
    pub admin: Option<bool>,
    pub user_type: Option<String>,
    pub server_url: Option<String>,
    /// Free-form fields (batch columns beyond the known ones), for hooks.
    pub extra: Map<String, Value>,
    /// Ask the server for a session at registration, for hooks that act as the
    /// new user. The session is logged out when the post stage ends.
    pub want_session: bool,

    // Filled in by the stages.
    /// A registration request may have reached the server without its answer
    /// reaching us (a dropped connection, a 5xx): a later "user in use" is
    /// then settled by logging in with the password.
    pub maybe_sent: bool,
    pub nonce: Option<String>,
    pub mac: Option<String>,
    pub user_id: Option<String>,
    pub access_token: Option<Secret>,
    pub device_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// The account was created by this run (or an earlier attempt of it):
    /// every session it has is the tool's, and the post stage ends them all.
    pub created_here: bool,
    /// Ending the session failed (its token stays, so the session is known
    /// to be live); it is not tried again in this run.
    pub session_failed: bool,
}

/// What is left to do for an account that exists: the hooks from one point
/// on, and a session to end. Recorded in the results file, so a rerun with
/// the same file finishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Undone {
    /// The hook point that failed; it and every later one run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A session of the account could not be ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live_session: bool,
    /// The hooks asked for a session as the new user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub want_session: bool,
}

/// The steps after submit, in order: where a rerun picks up.
pub const AFTER_SUBMIT: [HookPoint; 3] = [
    HookPoint::After(Stage::Submit),
    HookPoint::Before(Stage::Post),
    HookPoint::After(Stage::Post),
];

/// How a registration ended on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Registered,
    /// The user existed already and `--exists-ok` was given.
    Exists,
    /// `--dry-run`: every stage up to and including sign, nothing sent.
    DryRun,
}

/// The stages, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Config,
    Input,
    Validate,
    Nonce,
    Sign,
    Submit,
    Post,
}

impl Stage {
    /// What `--dry-run` runs: everything before the request is sent.
    pub const DRY_RUN: [Stage; 5] = [
        Stage::Config,
        Stage::Input,
        Stage::Validate,
        Stage::Nonce,
        Stage::Sign,
    ];

    pub const ALL: [Stage; 7] = [
        Stage::Config,
        Stage::Input,
        Stage::Validate,
        Stage::Nonce,
        Stage::Sign,
        Stage::Submit,
        Stage::Post,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Input => "input",
            Stage::Validate => "validate",
            Stage::Nonce => "nonce",
            Stage::Sign => "sign",
            Stage::Submit => "submit",
            Stage::Post => "post",
        }
    }

    fn run(self, rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        match self {
            Stage::Config => stages::config::run(rec, ctx),
            Stage::Input => stages::input::run(rec, ctx),
            Stage::Validate => stages::validate::run(rec, ctx),
            Stage::Nonce => stages::nonce::run(rec, ctx),
            Stage::Sign => stages::sign::run(rec, ctx),
            Stage::Submit => stages::submit::run(rec, ctx),
            Stage::Post => stages::post::run(rec, ctx),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a hook fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    Before(Stage),
    After(Stage),
    OnError,
}

impl HookPoint {
    /// `before_input`, `after_submit`, `on_error`.
    pub fn parse(key: &str) -> Option<HookPoint> {
        if key == "on_error" {
            return Some(HookPoint::OnError);
        }
        let (when, stage) = key.split_once('_')?;
        let stage = Stage::ALL.into_iter().find(|s| s.name() == stage)?;
        match when {
            "before" => Some(HookPoint::Before(stage)),
            "after" => Some(HookPoint::After(stage)),
            _ => None,
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Before(s) => write!(f, "before_{s}"),
            HookPoint::After(s) => write!(f, "after_{s}"),
            HookPoint::OnError => f.write_str("on_error"),
        }
    }
}

/// What the runner tells a hook besides the record.
#[derive(Debug, Clone)]
pub struct HookCall<'a> {
    pub point: HookPoint,
    pub server_url: Option<&'a str>,
    pub dry_run: bool,
    /// With `on_error`: the error's message.
    pub error: Option<String>,
    /// The registration's deadline: no retry of a hook's request waits past it.
    pub deadline: Option<Instant>,
    /// The account was created by an earlier run; only the steps after
    /// submit run, to finish what that run left undone.
    pub rerun: bool,
}

/// Something that runs between stages. The Lua engine is one; [`NoHooks`] is
/// the other.
pub trait Hooks {
    fn fire(&mut self, call: &HookCall<'_>, rec: &mut Record) -> Result<(), Error>;

    /// The hook files that handle `point`, for saying what was left undone.
    fn handlers(&self, _point: HookPoint) -> Vec<String> {
        Vec::new()
    }
}

pub struct NoHooks;

impl Hooks for NoHooks {
    fn fire(&mut self, _: &HookCall<'_>, _: &mut Record) -> Result<(), Error> {
        Ok(())
    }
}

/// What the config stage resolves once per invocation and every registration
/// of the invocation shares.
#[derive(Debug)]
pub struct Resolved {
    pub secret: Secret,
    /// Hook files named by the config (`hooks:` in a `-c` file), in order.
    pub config_hooks: Vec<std::path::PathBuf>,
    /// The config's `register_new_matrix_user` section, for hooks.
    pub tool_config: Value,
    /// Timeouts and TLS trust for every request.
    pub transport: crate::homeserver::Transport,
    /// The server's password rules (`password_config.policy` of the `-c` files).
    pub password_policy: crate::policy::PasswordPolicy,
}

/// Everything a stage may use besides the record.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub console: &'a Console,
    pub prompter: &'a mut dyn Prompter,
    pub resolved: Option<Arc<Resolved>>,
    /// `--dry-run`: nothing is sent to the server.
    pub dry_run: bool,
    /// How often the register call (with a fresh nonce) is tried again
    /// after a 5xx, a lost connection or an expired nonce (`--retries`); 0
    /// also turns off waiting out a rate limit there, as the original does.
    pub retries: u32,
    /// When this registration must be over (`--deadline`), set when it starts.
    pub deadline: Option<Instant>,
    /// The account was created by an earlier run; only the steps after
    /// submit run, to finish what that run left undone (`ctx.rerun` for hooks).
    pub rerun: bool,
    /// Generate a password for a record that has none, instead of asking
    /// (batch rows).
    pub generate_missing_password: bool,
    /// Print a generated password once the account exists (single
    /// registrations; batch runs record it in the results file instead).
    pub reveal_generated: bool,
    servers: HashMap<String, Homeserver>,
}

impl<'a> Ctx<'a> {
    pub fn new(cli: &'a Cli, console: &'a Console, prompter: &'a mut dyn Prompter) -> Self {
        Ctx {
            cli,
            console,
            prompter,
            resolved: None,
            dry_run: cli.dry_run,
            retries: cli.retries.unwrap_or(0),
            deadline: None,
            rerun: false,
            generate_missing_password: false,
            reveal_generated: true,
            servers: HashMap::new(),
        }
    }

    /// The config stage's results; an internal error if it has not run.
    pub fn resolved(&self) -> Result<Arc<Resolved>, Error> {
        self.resolved
            .clone()
            .ok_or_else(|| Error::Config("the config stage has not run".into()))
    }

    /// The HTTP client for the record's server (one per URL, reused; a clone
    /// shares the connection pool).
    pub fn server(&mut self, rec: &Record) -> Result<Homeserver, Error> {
        let url = rec
            .server_url
            .clone()
            .ok_or_else(|| Error::Config("no server URL was resolved".into()))?;
        if !self.servers.contains_key(&url) {
            let hs = Homeserver::new(&url, &self.resolved()?.transport).map_err(Error::Server)?;
            self.servers.insert(url.clone(), hs);
        }
        let hs = self.servers.get(&url).cloned().ok_or_else(|| {
            Error::Server(HsError::Body {
                url,
                cause: "no client".into(),
            })
        })?;
        Ok(hs.until(self.deadline))
    }

    /// Starts the clock of one registration's `--deadline`.
    pub fn start_deadline(&mut self) {
        self.deadline = Some(Instant::now() + self.cli.deadline);
    }
}

/// Runs stages in order over one record, firing hooks before and after each.
pub struct Runner<'h> {
    hooks: &'h mut dyn Hooks,
    dry_run: bool,
    /// The hook point running now, if a hook runs.
    at: Option<HookPoint>,
    /// Fire hook points from this one on only (a rerun).
    skip_until: Option<HookPoint>,
}

impl<'h> Runner<'h> {
    pub fn new(hooks: &'h mut dyn Hooks, dry_run: bool) -> Self {
        Runner {
            hooks,
            dry_run,
            at: None,
            skip_until: None,
        }
    }

    /// Finishes an account an earlier run created: the hooks from `from`
    /// (a point after submit) on, and the post stage.
    pub fn resume(
        &mut self,
        from: HookPoint,
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        self.skip_until = Some(from);
        if from == HookPoint::After(Stage::Submit) {
            // The submit stage itself is done: only its after-point is fired.
            let mut step = String::new();
            let r = self.fire(from, rec, &mut step, ctx);
            self.skip_until = None;
            if let Err(e) = r {
                return self.finish(Err(e), rec, ctx, &step);
            }
        }
        self.run(&[Stage::Post], rec, ctx)
    }

    pub fn run(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        let mut step = String::new();
        let result = self.run_stages(stages, rec, ctx, &mut step);
        self.finish(result, rec, ctx, &step)
    }

    /// After the stages: what an error amounts to, the `on_error` hooks,
    /// and the session that never outlives the run.
    fn finish(
        &mut self,
        result: Result<(), Error>,
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
        step: &str,
    ) -> Result<(), Error> {
        let mut result = match result {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = match (&rec.user_id, err) {
                    (_, e @ Error::AfterCreate { .. }) => e,
                    (Some(user_id), e) if rec.outcome == Some(Outcome::Registered) => {
                        Error::AfterCreate {
                            user_id: user_id.clone(),
                            step: step.to_string(),
                            cause: e.to_string(),
                            undone: Box::new(Undone {
                                from: self.at.map(|p| p.to_string()),
                                live_session: false,
                                want_session: rec.want_session,
                            }),
                            left: String::new(),
                        }
                    }
                    (_, e) => e,
                };
                // A session asked for by hooks never outlives the run; one that
                // cannot be ended is named in what was left undone.
                if let Err(e) = stages::post::end_session(rec, ctx) {
                    ctx.console.verbose(&e.to_string());
                }
                let err = self.left_undone(err, rec);
                let call = HookCall {
                    point: HookPoint::OnError,
                    server_url: rec.server_url.as_deref(),
                    dry_run: self.dry_run,
                    error: Some(err.to_string()),
                    deadline: ctx.deadline,
                    rerun: ctx.rerun,
                };
                let mut scratch = rec.clone();
                if let Err(hook_err) = self.hooks.fire(&call, &mut scratch) {
                    ctx.console
                        .warn(&format!("on_error hook failed too: {hook_err}"));
                }
                Err(err)
            }
        };
        if result.is_ok() {
            if let Err(e) = stages::post::end_session(rec, ctx) {
                result = Err(self.left_undone(e, rec));
            }
        }
        result
    }

    /// Fills in what an account that exists was left without: the hook
    /// points from the failed one on, with their files, and a live session.
    fn left_undone(&self, err: Error, rec: &Record) -> Error {
        let Error::AfterCreate {
            user_id,
            step,
            cause,
            mut undone,
            ..
        } = err
        else {
            return err;
        };
        // A session that is still open (ending it failed) is live.
        undone.live_session |= rec.access_token.is_some();
        let from = undone.from.as_deref().and_then(HookPoint::parse);
        let mut left: Vec<String> = Vec::new();
        if let Some(from) = from {
            let start = AFTER_SUBMIT.iter().position(|p| *p == from).unwrap_or(0);
            for p in &AFTER_SUBMIT[start..] {
                let files = self.hooks.handlers(*p);
                if !files.is_empty() {
                    left.push(format!("the {p} hook of {}", files.join(", ")));
                }
            }
        }
        if undone.live_session {
            left.push("ending the session the tool opened on the account".into());
        }
        Error::AfterCreate {
            user_id,
            step,
            cause,
            undone,
            left: left.join("; "),
        }
    }

    fn run_stages(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
        step: &mut String,
    ) -> Result<(), Error> {
        let mut spent = 0;
        let mut i = 0;
        while let Some(&stage) = stages.get(i) {
            self.fire(HookPoint::Before(stage), rec, step, ctx)?;
            *step = format!("the {stage} stage");
            self.at = None;
            match stage.run(rec, ctx) {
                Ok(()) => {}
                Err(Error::Again { from, cause }) => {
                    let method = if stage == Stage::Nonce { "GET" } else { "POST" };
                    let Some(wait) = self.again(method, &cause, &mut spent, ctx)? else {
                        return Err(Error::Server(*cause));
                    };
                    ctx.console.verbose(&format!(
                        "{}: {cause}; trying again from the {from} stage in {:.1} s ({spent}/{})",
                        rec.username.as_deref().unwrap_or("?"),
                        wait.as_secs_f64(),
                        ctx.retries
                    ));
                    i = stages.iter().position(|s| *s == from).unwrap_or(i);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.fire(HookPoint::After(stage), rec, step, ctx)?;
            i += 1;
        }
        Ok(())
    }

    /// Whether, and after which wait (already waited), the register call is
    /// tried again after `e`: the run's retry policy with `--retries` as the
    /// budget; none at all with `--retries 0`.
    fn again(
        &self,
        method: &str,
        e: &HsError,
        spent: &mut u32,
        ctx: &Ctx<'_>,
    ) -> Result<Option<std::time::Duration>, Error> {
        if ctx.retries == 0 {
            return Ok(None);
        }
        let resolved = ctx.resolved()?;
        let policy = crate::retry::Policy {
            retries: ctx.retries,
            ..resolved.transport.policy.clone()
        };
        // Safe to repeat: a "user in use" after a lost answer is settled by a login.
        match policy.decide(e, *spent, crate::retry::Repeat::Safe, ctx.deadline) {
            Ok((wait, counts)) => {
                *spent += u32::from(counts);
                let what = format!("{method} {}", crate::homeserver::REGISTER_PATH);
                policy.waits.wait(&what, e, wait, &|| None);
                Ok(Some(wait))
            }
            Err(crate::retry::GiveUp::Final | crate::retry::GiveUp::Spent) => Ok(None),
            Err(why) => Err(Error::Server(policy.explain(e.clone(), why))),
        }
    }

    fn fire(
        &mut self,
        point: HookPoint,
        rec: &mut Record,
        step: &mut String,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        if let Some(from) = self.skip_until {
            if from != point {
                return Ok(());
            }
            self.skip_until = None;
        }
        self.at = Some(point);
        *step = format!("the {point} hook");
        let server_url = rec.server_url.clone();
        let call = HookCall {
            point,
            server_url: server_url.as_deref(),
            dry_run: self.dry_run,
            error: None,
            deadline: ctx.deadline,
            rerun: ctx.rerun,
        };
        let r = self.hooks.fire(&call, rec);
        if r.is_ok() {
            self.at = None;
        }
        r
    }
}
