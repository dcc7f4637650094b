//! The machine-readable result of one registration: a line of `--json`
//! output, and of the batch results file (`--output`).

use crate::error::Error;
use crate::pipeline::{Outcome, Record};
use crate::secret::Secret;
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
}

impl Report {
    /// What a finished pipeline run amounts to.
    pub fn of(rec: &Record, result: &Result<(), Error>) -> Report {
        let (status, error) = match result {
            Ok(()) => (
                match rec.outcome {
                    Some(Outcome::Exists) => Status::Exists,
                    Some(Outcome::DryRun) => Status::DryRun,
                    _ => Status::Registered,
                },
                None,
            ),
            Err(e) => (status_of(e), Some(e.to_string())),
        };
        Report {
            line: None,
            username: rec.username.clone(),
            user_id: rec.user_id.clone(),
            status,
            error,
            // Nobody but this report knows a generated password; a rejected
            // row or a dry run created no account, so there is nothing to keep.
            password: rec.password.clone().filter(|_| {
                rec.password_generated && !matches!(status, Status::Rejected | Status::DryRun)
            }),
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"status\":\"failed\",\"error\":\"{e}\"}}"))
    }
}

fn status_of(e: &Error) -> Status {
    match e {
        Error::Server(h) if h.errcode() == Some(crate::stages::submit::USER_IN_USE) => {
            Status::Exists
        }
        Error::Server(_) | Error::Output(_) => Status::Failed,
        Error::Again { cause, .. } | Error::Hinted { cause, .. } => status_of(cause),
        Error::AfterCreate { .. } => Status::Registered,
        Error::Input(_)
        | Error::Refused(_)
        | Error::Hook { .. }
        | Error::Config(_)
        | Error::Usage(_) => Status::Rejected,
    }
}
