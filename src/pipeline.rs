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
use std::time::Duration;

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
}

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
}

/// Something that runs between stages. The Lua engine is one; [`NoHooks`] is
/// the other.
pub trait Hooks {
    fn fire(&mut self, call: &HookCall<'_>, rec: &mut Record) -> Result<(), Error>;
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
}

/// Everything a stage may use besides the record.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub console: &'a Console,
    pub prompter: &'a mut dyn Prompter,
    pub resolved: Option<Arc<Resolved>>,
    /// `--dry-run`: nothing is sent to the server.
    pub dry_run: bool,
    /// How often a retryable failure is tried again (`--retries`).
    pub retries: u32,
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
        self.servers.get(&url).cloned().ok_or_else(|| {
            Error::Server(HsError::Body {
                url,
                cause: "no client".into(),
            })
        })
    }
}

/// The wait before retry number `attempt` (1, 2, ...): 0.25 s doubling, at most 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5).saturating_sub(1)))
        .min(Duration::from_secs(8))
}

/// Runs stages in order over one record, firing hooks before and after each.
pub struct Runner<'h> {
    hooks: &'h mut dyn Hooks,
    dry_run: bool,
}

impl<'h> Runner<'h> {
    pub fn new(hooks: &'h mut dyn Hooks, dry_run: bool) -> Self {
        Runner { hooks, dry_run }
    }

    pub fn run(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Error> {
        let mut step = String::new();
        let result = self.run_stages(stages, rec, ctx, &mut step);
        let result = match result {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = match (&rec.user_id, err) {
                    (_, e @ Error::AfterCreate { .. }) => e,
                    (Some(user_id), e) if rec.outcome == Some(Outcome::Registered) => {
                        Error::AfterCreate {
                            user_id: user_id.clone(),
                            step: step.clone(),
                            cause: e.to_string(),
                        }
                    }
                    (_, e) => e,
                };
                let call = HookCall {
                    point: HookPoint::OnError,
                    server_url: rec.server_url.as_deref(),
                    dry_run: self.dry_run,
                    error: Some(err.to_string()),
                };
                let mut scratch = rec.clone();
                if let Err(hook_err) = self.hooks.fire(&call, &mut scratch) {
                    ctx.console
                        .warn(&format!("on_error hook failed too: {hook_err}"));
                }
                Err(err)
            }
        };
        // A session asked for by hooks never outlives the run.
        if let Err(e) = stages::post::end_session(rec, ctx) {
            ctx.console.warn(&e.to_string());
        }
        result
    }

    fn run_stages(
        &mut self,
        stages: &[Stage],
        rec: &mut Record,
        ctx: &mut Ctx<'_>,
        step: &mut String,
    ) -> Result<(), Error> {
        let mut attempt = 0;
        let mut i = 0;
        while let Some(&stage) = stages.get(i) {
            self.fire(HookPoint::Before(stage), rec, step)?;
            *step = format!("the {stage} stage");
            match stage.run(rec, ctx) {
                Ok(()) => {}
                Err(Error::Again { from, wait, cause }) if attempt < ctx.retries => {
                    attempt += 1;
                    let wait = wait.unwrap_or_else(|| backoff(attempt));
                    ctx.console.verbose(&format!(
                        "{}: {cause}; trying again from the {from} stage in {:.1} s ({attempt}/{})",
                        rec.username.as_deref().unwrap_or("?"),
                        wait.as_secs_f64(),
                        ctx.retries
                    ));
                    std::thread::sleep(wait);
                    i = stages.iter().position(|s| *s == from).unwrap_or(i);
                    continue;
                }
                Err(Error::Again { cause, .. }) => return Err(*cause),
                Err(e) => return Err(e),
            }
            self.fire(HookPoint::After(stage), rec, step)?;
            i += 1;
        }
        Ok(())
    }

    fn fire(&mut self, point: HookPoint, rec: &mut Record, step: &mut String) -> Result<(), Error> {
        *step = format!("the {point} hook");
        let server_url = rec.server_url.clone();
        let call = HookCall {
            point,
            server_url: server_url.as_deref(),
            dry_run: self.dry_run,
            error: None,
        };
        self.hooks.fire(&call, rec)
    }
}
