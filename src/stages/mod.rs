//! One module per pipeline stage, in pipeline order. Each exposes
//! `run(&mut Record, &mut Ctx) -> Result<(), Error>` and does one job.
//! [`Ctx`] is what a stage may use besides the record; [`Resolved`] is what
//! the config stage found, shared by every registration of a run.

pub mod answer;
pub mod apply;
pub mod config;
pub mod input;
pub mod mas_setup;
pub mod nonce;
pub mod post;
pub mod prune;
pub mod read;
pub mod sign;
pub mod submit;
pub mod validate;

use crate::backend::mas::MasBackend;
use crate::backend::synapse::Synapse;
use crate::backend::{Backend, Mode};
use crate::console::Console;
use crate::error::{Error, HsError};
use crate::homeserver::Homeserver;
use crate::options::Options;
use crate::prompt::Prompter;
use crate::record::{Record, Stage};
use crate::secret::Secret;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Runs one stage over the record.
pub fn run(stage: Stage, rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    match stage {
        Stage::Config => config::run(rec, ctx),
        Stage::Input => input::run(rec, ctx),
        Stage::Validate => validate::run(rec, ctx),
        Stage::Read => read::run(rec, ctx),
        Stage::Nonce => nonce::run(rec, ctx),
        Stage::Sign => sign::run(rec, ctx),
        Stage::Submit => submit::run(rec, ctx),
        Stage::Apply => apply::run(rec, ctx),
        Stage::Post => post::run(rec, ctx),
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
    /// A server admin's access token (`--admin-token-file`, `admin_token_path`).
    pub admin_token: Option<Secret>,
    /// Whose that token is, once checked (`@admin:server`).
    pub admin_user: Option<String>,
    /// What every record's backend shares (uploads, resolved aliases, and
    /// the run's own secret files, which no avatar may be).
    pub backend_shared: Arc<crate::backend::synapse::Shared>,
    /// The config's `server_name`, when a `-c` file gives it.
    pub config_server_name: Option<String>,
    /// The server name a registration's answer showed (`@x:server`).
    pub learned_server_name: std::sync::OnceLock<String>,
    /// The server delegates authentication to MAS, and the run has MAS's
    /// credentials: registrations go through its Admin API.
    pub mas: Option<Arc<crate::backend::mas::Setup>>,
    /// The user types the server knows: Synapse's own (`bot`, `support`)
    /// and the config's `user_types.extra_user_types`.
    pub user_types: Vec<String>,
    /// Why the config says passwords do not log in (`None`: they do).
    pub password_login_off: Option<&'static str>,
}

impl Resolved {
    /// The server name: as the checked admin token's user ID gives it, the
    /// config says, or a registration of this run showed.
    pub fn server_name(&self) -> Option<&str> {
        self.admin_user
            .as_deref()
            .and_then(|u| u.split_once(':').map(|(_, s)| s))
            .or(self.config_server_name.as_deref())
            .or(self.learned_server_name.get().map(String::as_str))
    }
}

/// Everything a stage may use besides the record.
pub struct Ctx<'a> {
    pub opts: &'a Options,
    pub console: &'a Console,
    pub prompter: &'a mut dyn Prompter,
    pub resolved: Option<Arc<Resolved>>,
    /// `--dry-run`: nothing is sent to the server.
    pub dry_run: bool,
    /// How often the register call (with a fresh nonce) is tried again
    /// after a 5xx, a lost connection or an expired nonce (`--retries`). A
    /// rate limit is waited out in any case.
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
    /// What the run does with each record.
    pub mode: Mode,
    servers: HashMap<String, Homeserver>,
}

impl<'a> Ctx<'a> {
    pub fn new(opts: &'a Options, console: &'a Console, prompter: &'a mut dyn Prompter) -> Self {
        Ctx {
            opts,
            console,
            prompter,
            resolved: None,
            dry_run: opts.dry_run,
            retries: opts.retries.unwrap_or(0),
            deadline: None,
            rerun: false,
            generate_missing_password: false,
            reveal_generated: true,
            mode: Mode::of(opts),
            servers: HashMap::new(),
        }
    }

    /// The config stage's results; an internal error if it has not run.
    pub fn resolved(&self) -> Result<Arc<Resolved>, Error> {
        self.resolved
            .clone()
            .ok_or_else(|| Error::Config("the config stage has not run".into()))
    }

    /// The stages of a record, for the kind of server the config stage found.
    pub fn stages(&self) -> &'static [Stage] {
        let mas = self.resolved.as_ref().is_some_and(|r| r.mas.is_some());
        crate::backend::stages_for(mas, self.mode)
    }

    /// The MAS backend, when the run registers through MAS.
    pub fn mas(&mut self) -> Result<Option<MasBackend>, Error> {
        let Some(setup) = self.resolved()?.mas.clone() else {
            return Ok(None);
        };
        let hs = self.server_at(&setup.url)?;
        Ok(Some(MasBackend::new(setup, hs)))
    }

    /// The HTTP client for the record's server (one per URL, reused; a clone
    /// shares the connection pool).
    pub fn server(&mut self, rec: &Record) -> Result<Homeserver, Error> {
        let url = rec
            .server_url
            .clone()
            .ok_or_else(|| Error::Config("no server URL was resolved".into()))?;
        self.server_at(&url)
    }

    /// Where the record's passwords log in and its sessions end: MAS's
    /// compatibility endpoint behind MAS, else the record's server.
    pub fn login_server(&mut self, rec: &Record) -> Result<Homeserver, Error> {
        match self.resolved()?.mas.clone() {
            Some(setup) => self.server_at(&setup.url),
            None => self.server(rec),
        }
    }

    /// The HTTP client for `url`.
    pub fn server_at(&mut self, url: &str) -> Result<Homeserver, Error> {
        let url = url.to_string();
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

    /// The record's server as a backend, with the admin token; an error
    /// naming what is missing when there is none.
    pub fn backend(&mut self, rec: &Record) -> Result<Box<dyn Backend>, Error> {
        if let Some(mut mas) = self.mas()? {
            if rec.external_ids.is_some() {
                mas = mas.with_links();
            }
            let synapse_fields = rec.user_type.is_some()
                || rec.displayname.is_some()
                || rec.emails.is_some()
                || rec.avatar.is_some()
                || rec.rooms.is_some();
            if !synapse_fields {
                return Ok(Box::new(mas));
            }
            let resolved = self.resolved()?;
            let side = crate::backend::mas::SynapseSide::new(
                self.server(rec)?,
                resolved.backend_shared.clone(),
                resolved.admin_token.clone(),
            );
            return Ok(Box::new(mas.with_synapse(side)));
        }
        let resolved = self.resolved()?;
        let Some(token) = resolved.admin_token.clone() else {
            return Err(Error::Usage(
                "this needs a server admin's access token: give --admin-token-file FILE \
                 (or admin_token_path in the config's register_new_matrix_user section)"
                    .into(),
            ));
        };
        let hs = self.server(rec)?;
        Ok(Box::new(Synapse::new(
            hs,
            token,
            resolved.backend_shared.clone(),
        )))
    }

    /// The record's user ID, on the server the admin token belongs to.
    pub fn user_id(&self, rec: &Record) -> Result<String, Error> {
        let resolved = self.resolved()?;
        let server = resolved
            .server_name()
            .ok_or_else(|| Error::Config("the server name is not known: no admin token".into()))?;
        Ok(format!(
            "@{}:{server}",
            rec.username.as_deref().unwrap_or("").trim().to_lowercase()
        ))
    }

    /// Starts the clock of one registration's `--deadline`.
    pub fn start_deadline(&mut self) {
        self.deadline = Some(Instant::now() + self.opts.deadline);
    }
}
