//! The vocabulary every layer shares: the record a registration carries
//! through the pipeline, the names of the stages and hook points, what a
//! hook is told, and what is left undone when a step after creation fails.
//!
//! Nothing here does anything: the stages ([`crate::stages`]) fill the record
//! in, the runner ([`crate::runner`]) moves it along and fires hooks.

use crate::secret::Secret;
use serde_json::{Map, Value};
use std::fmt;
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
    /// `--ensure`: the user's exact set of email addresses (`None`: not managed).
    pub emails: Option<Vec<String>>,
    /// `--ensure`: an `mxc://` URI or a local image file.
    pub avatar: Option<String>,
    /// `--ensure`: rooms, spaces or aliases the user must have joined.
    pub rooms: Option<Vec<String>>,
    /// `--ensure`: `false` deactivates the account.
    pub active: Option<bool>,
    /// `--ensure`: `true` locks the account (it cannot log in), `false`
    /// unlocks it.
    pub locked: Option<bool>,
    /// `--ensure`: the exact set of SSO identities, as
    /// `auth_provider:external_id` (`None`: not managed).
    pub external_ids: Option<Vec<String>>,
    /// `--ensure`: an erased account may be reactivated.
    pub erased_ok: bool,
    /// The apply stage reactivated the account (with the record's password,
    /// which a generated one's report then keeps).
    pub reactivated: bool,
    /// `--prune`: the account is not in the inventory, and is deactivated
    /// or locked (as `active` or `locked` say).
    pub pruned: bool,
    /// `--rollback`: the user ID the results file recorded; a row whose
    /// user ID on this server differs is refused.
    pub recorded_user_id: Option<String>,

    // Filled in by the stages.
    /// The read stage's finding: whether the account existed (`None`: not read).
    pub exists: Option<bool>,
    /// The account as the server had it, when it existed.
    pub account: Option<crate::state::Account>,
    /// What the apply stage is to change (hooks may change or veto entries
    /// up to `before_apply`).
    pub changes: crate::state::Changes,
    /// The changes as the read stage planned them, before any hook: the
    /// apply stage refuses an entry a hook added, and checks a value a
    /// hook changed as it checks the row's.
    pub planned: crate::state::Changes,
    /// A registration request may have reached the server without its answer
    /// reaching us (a dropped connection, a 5xx): a later "user in use" is
    /// then settled by logging in with the password.
    pub maybe_sent: bool,
    /// `Sending registration request...` was said (once per record).
    pub announced: bool,
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

impl Record {
    /// Whether the stages that create an account are passed over: the read
    /// stage found it, or it is missing and declared inactive.
    pub fn skips_creation(&self) -> bool {
        match self.exists {
            Some(true) => true,
            Some(false) => self.active == Some(false),
            None => false,
        }
    }
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
    /// What registration sets that a MAS user was left without
    /// (`password`, `admin`): a rerun sets it first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub account: Vec<String>,
}

/// The steps after submit, in order: where a rerun picks up.
pub const AFTER_SUBMIT: [HookPoint; 5] = [
    HookPoint::After(Stage::Submit),
    HookPoint::Before(Stage::Apply),
    HookPoint::After(Stage::Apply),
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
    /// `--ensure`: the account existed and was changed.
    Updated,
    /// `--ensure`: the account existed and was as the input says.
    Unchanged,
    /// `--plan`: read, and nothing changed.
    Planned,
    /// `--ensure`, `--rollback`: the account was deactivated (now, or
    /// before: by an earlier run whose record of it was lost).
    Deactivated,
}

/// The stages, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Config,
    Input,
    Validate,
    /// Reads the account's state (`--ensure`, `--plan`).
    Read,
    Nonce,
    Sign,
    Submit,
    /// Makes the changes the read stage planned (`--ensure`).
    Apply,
    Post,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Config,
        Stage::Input,
        Stage::Validate,
        Stage::Read,
        Stage::Nonce,
        Stage::Sign,
        Stage::Submit,
        Stage::Apply,
        Stage::Post,
    ];

    /// The stages that create an account: skipped for one that exists.
    pub fn creates(self) -> bool {
        matches!(self, Stage::Nonce | Stage::Sign | Stage::Submit)
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Input => "input",
            Stage::Validate => "validate",
            Stage::Read => "read",
            Stage::Nonce => "nonce",
            Stage::Sign => "sign",
            Stage::Submit => "submit",
            Stage::Apply => "apply",
            Stage::Post => "post",
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
