//! The tool's domain errors, and the one place that turns each into the words
//! printed and the exit status.

use crate::console::Console;
use crate::homeserver::HsError;
use crate::pipeline::Stage;

/// Exit statuses (documented in `--help` and the README).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The account exists on the server, but a later step failed.
    pub const AFTER_CREATE: u8 = 3;
}

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
    #[error("the account {user_id} was created, but {step} failed: {cause}{}", left_undone(.left))]
    AfterCreate {
        user_id: String,
        step: String,
        cause: String,
        /// What a rerun has to finish.
        undone: Box<crate::pipeline::Undone>,
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
            Error::Server(HsError::Status {
                status,
                reason,
                error,
                ..
            }) => {
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
