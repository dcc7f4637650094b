//! The tool's domain errors, and the one place that turns each into the words
//! printed and the exit status.

use crate::console::Console;
use crate::record::{Stage, Undone};
use serde_json::Value;

/// Exit statuses (documented in `--help`, the README and docs/failures.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The account exists on the server, but a later step failed.
    pub const AFTER_CREATE: u8 = 3;
    /// `--plan`: something would be created or changed.
    pub const CHANGES: u8 = 4;
    /// `--prune`: more accounts would be pruned than the bound allows, or
    /// the inventory did not read whole; nobody was pruned.
    pub const PRUNE_REFUSED: u8 = 5;
}

/// The errcode of a taken username.
pub const USER_IN_USE: &str = "M_USER_IN_USE";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation itself is wrong (exit 2, as a command-line error).
    #[error("{0}")]
    Usage(String),

    /// A config file or secret source is unusable.
    #[error("{0}")]
    Config(String),

    /// One of the original tool's own refusals, printed word for word on the
    /// status stream ("Password cannot be blank.").
    #[error("{0}")]
    Refused(&'static str),

    /// Input that cannot be registered, caught before anything is sent.
    #[error("{0}")]
    Input(String),

    /// The homeserver said no, or could not be reached.
    #[error(transparent)]
    Server(#[from] HsError),

    /// A hook raised an error, or misbehaved, before the account was created.
    #[error("hook {hook}: {message}")]
    Hook { hook: String, message: String },

    /// A failure worth trying again from an earlier stage: a rate limit, an
    /// expired nonce, a server restarting. The runner retries when the run
    /// allows it (`--retries`), and reports `cause` when it does not.
    #[error("{cause}")]
    Again { from: Stage, cause: Box<HsError> },

    /// An error with a second line that says what it most likely means.
    #[error("{cause}; {hint}")]
    Hinted { cause: Box<Error>, hint: String },

    /// The results file cannot be written.
    #[error("{0}")]
    Output(String),

    /// Something failed after the account was created; the account stays.
    #[error("the account {user_id} {}, but {step} failed: {cause}{}", if *.existed { "exists" } else { "was created" }, left_undone(.left))]
    AfterCreate {
        user_id: String,
        /// It existed before this run (`--ensure`), rather than being created.
        existed: bool,
        step: String,
        cause: String,
        /// What a rerun has to finish.
        undone: Box<Undone>,
        /// The same, in words.
        left: String,
    },
}

fn left_undone(left: &str) -> String {
    if left.is_empty() {
        String::new()
    } else {
        format!(" (left undone: {left})")
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            // An account that existed was not created: a plain failure.
            Error::AfterCreate { existed: true, .. } => exit::FAILED,
            Error::AfterCreate { .. } => exit::AFTER_CREATE,
            Error::Hinted { cause, .. } => cause.exit_code(),
            _ => exit::FAILED,
        }
    }

    /// Prints the error the way the original does where it has a way, else as
    /// one clear line on standard error.
    pub fn report(&self, console: &Console) {
        match self {
            Error::Again { cause, .. } => Error::Server((**cause).clone()).report(console),
            Error::Hinted { cause, hint } => {
                // The hint replaces the cause's own explanation on stderr.
                if !cause.status_lines(console) {
                    console.error(&cause.to_string());
                }
                console.error(hint);
            }
            // A redirect: never followed; the original's line, then why.
            Error::Server(HsError::Status {
                status: 300..=399,
                error: Some(note),
                url,
                ..
            }) => {
                self.status_lines(console);
                console.error(&format!("{url} {note}"));
            }
            Error::Server(HsError::Status {
                status,
                reason,
                json: false,
                url,
                ..
            }) => {
                self.status_lines(console);
                console.error(&format!(
                    "{url} answered {status} {reason} with a body that is not a Matrix JSON error \
                     (a proxy in front of the homeserver?)"
                ));
            }
            // Given up on: the original's lines for the last answer, then why.
            Error::Server(h @ HsError::GaveUp { .. }) => {
                self.status_lines(console);
                console.error(&h.to_string());
            }
            other => {
                if !other.status_lines(console) {
                    console.error(&other.to_string());
                }
            }
        }
    }

    /// Prints the original's own lines for this error, if it has any:
    /// `ERROR! Received ...` (and the server's text for a 4xx), or one of its
    /// refusals. Whether it printed anything.
    fn status_lines(&self, console: &Console) -> bool {
        match self {
            Error::Refused(line) => console.status_always(line),
            Error::Server(h) => {
                // A request given up on (past --max-wait or --deadline) ends
                // on the server's last answer, as the original's does.
                let mut h = h;
                while let HsError::GaveUp { cause, .. } = h {
                    h = cause;
                }
                let HsError::Status {
                    status,
                    reason,
                    error,
                    ..
                } = h
                else {
                    return false;
                };
                console.status_always(&format!("ERROR! Received {status} {reason}"));
                if (400..500).contains(status) {
                    if let Some(e) = error {
                        console.status_always(e);
                    }
                }
            }
            _ => return false,
        }
        true
    }
}

/// A request that failed: what the server answered, or why it could not
/// be reached. Every one names the URL and the cause in one line, and none
/// carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HsError {
    /// The server answered with a status other than 200.
    #[error("{url} answered {status} {reason}{}", detail(.errcode, .error))]
    Status {
        url: String,
        status: u16,
        reason: &'static str,
        errcode: Option<String>,
        error: Option<String>,
        /// Whether the body was JSON at all (a proxy may answer with HTML).
        json: bool,
        retry_after_ms: Option<u64>,
        /// The answer's JSON body, for callers that read more of it.
        body: Option<Box<Value>>,
    },
    #[error("cannot reach {url}: {cause}")]
    Connect {
        url: String,
        cause: String,
        /// Whether the request may have reached the server (the connection
        /// was made); false when it surely did not.
        sent: bool,
    },
    #[error("{url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url} answered 200 with an unexpected body: {cause}")]
    Body { url: String, cause: String },
    /// The retry policy stopped waiting.
    #[error("{cause} ({why})")]
    GaveUp { cause: Box<HsError>, why: String },
}

fn detail(errcode: &Option<String>, error: &Option<String>) -> String {
    match (errcode, error) {
        (Some(c), Some(e)) => format!(": {c}: {e}"),
        (None, Some(e)) => format!(": {e}"),
        (Some(c), None) => format!(": {c}"),
        (None, None) => String::new(),
    }
}

impl HsError {
    pub fn errcode(&self) -> Option<&str> {
        match self {
            HsError::Status { errcode, .. } => errcode.as_deref(),
            HsError::GaveUp { cause, .. } => cause.errcode(),
            _ => None,
        }
    }
}

/// What a failed request means, decided on the status and `errcode` where the
/// servers give one, and on the text only where none does (an unknown nonce,
/// registration turned off). Checked against the answers of Synapse,
/// Dendrite and tuwunel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `M_USER_IN_USE`: the localpart is taken.
    UserInUse,
    /// The nonce expired or was used: fetch another and sign again.
    StaleNonce,
    /// 429 / `M_LIMIT_EXCEEDED`: wait and try again.
    RateLimited,
    /// A 5xx, a timeout or a lost connection: try again later.
    Transient,
    /// 403: the MAC did not match (a wrong shared secret, or a MAC the
    /// server computes differently).
    BadMac,
    /// Shared-secret registration is turned off on the server.
    Disabled,
    /// 404 / `M_UNRECOGNIZED`: the endpoint is not served at this URL.
    NotServed,
    /// Anything else: final.
    Final,
}

pub fn verdict(e: &HsError) -> Verdict {
    let (status, errcode, text) = match e {
        HsError::Status {
            status,
            errcode,
            error,
            ..
        } => (
            *status,
            errcode.as_deref().unwrap_or(""),
            error.as_deref().unwrap_or("").to_ascii_lowercase(),
        ),
        HsError::Connect { .. } | HsError::Timeout { .. } => return Verdict::Transient,
        HsError::Body { .. } | HsError::GaveUp { .. } => return Verdict::Final,
    };
    if errcode == "M_USER_IN_USE" {
        Verdict::UserInUse
    } else if status == 429 || errcode == "M_LIMIT_EXCEEDED" {
        Verdict::RateLimited
    } else if status >= 500 {
        Verdict::Transient
    } else if (status == 400 || status == 403)
        && text.contains("nonce")
        && !text.contains("must be specified")
        && matches!(
            errcode,
            "" | "M_UNKNOWN" | "M_INVALID_PARAM" | "M_FORBIDDEN"
        )
    {
        Verdict::StaleNonce
    } else if text.contains("secret")
        && (text.contains("not enabled") || text.contains("not configured"))
    {
        Verdict::Disabled
    } else if status == 403 {
        Verdict::BadMac
    } else if status == 404 || errcode == "M_UNRECOGNIZED" {
        Verdict::NotServed
    } else {
        Verdict::Final
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, errcode: Option<&str>, error: &str) -> HsError {
        HsError::Status {
            url: "u".into(),
            status,
            reason: "",
            errcode: errcode.map(str::to_string),
            error: Some(error.into()),
            json: true,
            retry_after_ms: None,
            body: None,
        }
    }

    #[test]
    fn verdicts_for_synapse_dendrite_and_tuwunel() {
        use Verdict::*;
        let cases = [
            // Synapse
            (
                answer(400, Some("M_USER_IN_USE"), "User ID already taken."),
                UserInUse,
            ),
            (answer(403, Some("M_FORBIDDEN"), "HMAC incorrect"), BadMac),
            (
                answer(400, Some("M_UNKNOWN"), "unrecognised nonce"),
                StaleNonce,
            ),
            (
                answer(
                    400,
                    Some("M_UNKNOWN"),
                    "Shared secret registration is not enabled",
                ),
                Disabled,
            ),
            (answer(400, Some("M_UNKNOWN"), "Invalid user type"), Final),
            (
                answer(400, Some("M_BAD_JSON"), "nonce must be specified"),
                Final,
            ),
            (
                answer(
                    400,
                    Some("M_INVALID_USERNAME"),
                    "User ID can only contain characters a-z, 0-9, or '=_-./+'",
                ),
                Final,
            ),
            (
                answer(404, Some("M_UNRECOGNIZED"), "Unrecognized request"),
                NotServed,
            ),
            (
                answer(429, Some("M_LIMIT_EXCEEDED"), "Too Many Requests"),
                RateLimited,
            ),
            (answer(502, None, ""), Transient),
            // tuwunel
            (
                answer(400, Some("M_USER_IN_USE"), "User ID is not available"),
                UserInUse,
            ),
            (
                answer(403, Some("M_FORBIDDEN"), "HMAC check failed"),
                BadMac,
            ),
            (
                answer(
                    400,
                    Some("M_INVALID_PARAM"),
                    "Unrecognised or expired nonce",
                ),
                StaleNonce,
            ),
            (
                answer(403, Some("M_FORBIDDEN"), "Unrecognised or expired nonce"),
                StaleNonce,
            ),
            (
                answer(
                    400,
                    Some("M_UNKNOWN"),
                    "Shared-secret registration is not enabled",
                ),
                Disabled,
            ),
            (
                answer(
                    404,
                    Some("M_NOT_FOUND"),
                    "Shared-secret registration is not configured",
                ),
                Disabled,
            ),
            // Dendrite
            (answer(403, Some("M_FORBIDDEN"), "HMAC incorrect"), BadMac),
            (
                answer(
                    400,
                    Some("M_USER_IN_USE"),
                    "Desired user ID is already taken.",
                ),
                UserInUse,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(verdict(&e), want, "{e}");
        }
        let down = HsError::Connect {
            url: "u".into(),
            cause: "refused".into(),
            sent: false,
        };
        assert_eq!(verdict(&down), Transient);
        assert_eq!(
            verdict(&HsError::Timeout {
                url: "u".into(),
                secs: 1
            }),
            Transient
        );
    }
}
