//! The machine-readable result of one registration: a line of `--json`
//! output, and of the batch results file (`--output`).

use crate::error::Error;
use crate::record::{Outcome, Record, Undone};
use crate::secret::Secret;
use crate::state::{Changes, describe};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written before the request is sent; a later line settles it.
    Pending,
    Registered,
    /// The user existed already.
    Exists,
    /// Refused before anything was sent: a bad row, validation, a hook.
    Rejected,
    /// The server refused, or could not be reached.
    Failed,
    /// `--dry-run`: nothing was sent.
    DryRun,
    /// The account exists (it was registered, its password works), but a
    /// step after registration did not finish: `undone` says which. Running
    /// the same batch again with the same results file finishes it.
    Incomplete,
    /// The row repeats the username of an earlier row (`duplicate_of`) and
    /// was skipped. Never a user's outcome: that is the last line for the
    /// username with any other status.
    Duplicate,
    /// `--ensure`: the account existed; `changes` says what changed.
    Updated,
    /// `--ensure`: the account existed and was as the input says.
    Unchanged,
    /// `--rollback` (or `active: false`): the account was deactivated.
    Deactivated,
    /// `--plan`: what would happen (`exists`, `changes`); nothing changed.
    Plan,
    /// `--prune`: the account is not in the inventory, and was deactivated
    /// or locked (`changes` says which).
    Pruned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The batch file's line the row starts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub username: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
    /// Only a password the tool or a hook generated: nobody else knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// With `incomplete`: what is left to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone: Option<Undone>,
    /// With `duplicate`: the line of the row whose username this repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<usize>,
    /// The admin flag the row was registered (or is being registered) with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    /// `--ensure`, `--plan`: whether the account existed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// `--ensure`, `--plan`: each field changed (or to change), `from` and `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// `true` on a `registered` or `incomplete` line whose account this run
    /// (or an earlier attempt of the same row) created: what `--rollback`
    /// may undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// `true` on the line of an account `--prune` took up: not in the
    /// inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<bool>,
}

impl Report {
    /// A report with nothing in it but a status, for filling in.
    pub fn empty() -> Report {
        Report {
            line: None,
            username: None,
            user_id: None,
            status: Status::Failed,
            error: None,
            password: None,
            undone: None,
            duplicate_of: None,
            admin: None,
            exists: None,
            changes: None,
            created: None,
            pruned: None,
        }
    }

    /// What a finished pipeline run amounts to.
    pub fn of(rec: &Record, result: &Result<(), Error>) -> Report {
        let (status, error) = match result {
            Ok(()) => (
                match rec.outcome {
                    Some(Outcome::Exists) => Status::Exists,
                    Some(Outcome::DryRun) => Status::DryRun,
                    Some(Outcome::Planned) => Status::Plan,
                    Some(Outcome::Unchanged) => Status::Unchanged,
                    Some(Outcome::Deactivated | Outcome::Updated) if rec.pruned => Status::Pruned,
                    Some(Outcome::Deactivated) => Status::Deactivated,
                    Some(Outcome::Updated) => Status::Updated,
                    _ => Status::Registered,
                },
                None,
            ),
            Err(e) => (status_of(e), Some(e.to_string())),
        };
        let undone = match result {
            Err(Error::AfterCreate { undone, .. }) => Some((**undone).clone()),
            _ => None,
        };
        Report {
            line: None,
            username: rec.username.clone(),
            user_id: rec.user_id.clone(),
            status,
            error,
            undone,
            duplicate_of: None,
            admin: matches!(status, Status::Registered | Status::Incomplete)
                .then_some(rec.admin)
                .flatten(),
            // A missing account declared inactive is not created: nothing to do.
            exists: rec.exists.filter(|e| *e || !rec.skips_creation()),
            changes: (rec.exists.is_some() && !rec.changes.is_empty()).then(|| rec.changes.clone()),
            created: (matches!(status, Status::Registered | Status::Incomplete)
                && rec.created_here)
                .then_some(true),
            pruned: rec.pruned.then_some(true),
            // Nobody but this report knows a generated password; a rejected
            // row or a dry run created no account, and an account that
            // existed keeps the password it had, so there is nothing to keep.
            password: rec.password.clone().filter(|_| {
                rec.password_generated && rec.reactivated && status == Status::Updated
                    || rec.password_generated
                    && !matches!(
                        status,
                        Status::Rejected
                            | Status::DryRun
                            | Status::Duplicate
                            | Status::Exists
                            | Status::Plan
                            | Status::Updated
                            | Status::Unchanged
                            | Status::Deactivated
                            | Status::Pruned
                    )
                    && !(status == Status::Incomplete
                        && rec.exists == Some(true)
                        && !rec.created_here)
                    // A failure that surely never reached the server created nothing.
                    && (status != Status::Failed || rec.maybe_sent)
            }),
        }
    }

    /// With `--plan`: whether anything would be created or changed.
    pub fn would_change(&self) -> bool {
        self.status == Status::Plan
            && (self.exists == Some(false) || self.changes.as_ref().is_some_and(|c| !c.is_empty()))
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"status\":\"failed\",\"error\":\"{e}\"}}"))
    }
}

fn status_of(e: &Error) -> Status {
    match e {
        Error::Server(h) if h.errcode() == Some(crate::error::USER_IN_USE) => Status::Exists,
        Error::Server(_) | Error::Output(_) => Status::Failed,
        Error::Again { .. } => Status::Failed,
        Error::Hinted { cause, .. } => status_of(cause),
        Error::AfterCreate { .. } => Status::Incomplete,
        Error::Input(_)
        | Error::Refused(_)
        | Error::Hook { .. }
        | Error::Config(_)
        | Error::Usage(_) => Status::Rejected,
    }
}

/// One line of a plan, read at a glance: `+` creates, `~` changes, `-`
/// deactivates, and a blank what stays as it is.
pub fn plan_line(r: &Report) -> String {
    let who = r
        .user_id
        .clone()
        .or_else(|| r.username.clone())
        .unwrap_or_else(|| "?".into());
    let changes = r.changes.clone().unwrap_or_default();
    let words: Vec<String> = changes.iter().map(|(f, c)| describe(f, c)).collect();
    let deactivate = changes
        .get("active")
        .is_some_and(|c| c.to == serde_json::Value::Bool(false));
    if r.pruned == Some(true) && !words.is_empty() {
        let how = if deactivate { "deactivate" } else { "lock" };
        return format!("- {who}: {how} (not in the inventory)");
    }
    match (r.exists, words.is_empty()) {
        (Some(false), true) => format!("+ {who}: create"),
        (Some(false), false) => format!("+ {who}: create with {}", words.join(", ")),
        (_, true) => format!("  {who}: nothing to change"),
        _ if deactivate && changes.contains_key("erase") => {
            format!("- {who}: deactivate and erase")
        }
        _ if deactivate => format!("- {who}: deactivate"),
        _ => format!("~ {who}: {}", words.join("; ")),
    }
}
