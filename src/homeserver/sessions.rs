//! The sessions this run holds open on the server: every access token a
//! registration or a login handed the tool, until it is logged out. An
//! interrupted run ends them all ([`end_all`]) before it exits, so no
//! account keeps a device the tool opened.

use super::Homeserver;
use crate::secret::Secret;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Open {
    token: Secret,
    end: End,
}

enum End {
    /// A logout at `hs`; `all`: the account is one this run registered, so
    /// every session of it is the tool's, and all of them end (`/logout/all`).
    Logout { hs: Homeserver, all: bool },
    /// Some other way (revoking a MAS personal session): whether it ended.
    Other(Box<dyn FnOnce() -> bool + Send>),
}

static OPEN: Mutex<Vec<Open>> = Mutex::new(Vec::new());

fn open() -> std::sync::MutexGuard<'static, Vec<Open>> {
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session the tool now holds.
pub fn opened(hs: &Homeserver, token: &Secret, all: bool) {
    open().push(Open {
        token: token.clone(),
        end: End::Logout {
            hs: hs.clone(),
            all,
        },
    });
}

/// A session that ends some other way than a logout (`end`, tried once).
pub fn opened_other(token: &Secret, end: impl FnOnce() -> bool + Send + 'static) {
    open().push(Open {
        token: token.clone(),
        end: End::Other(Box::new(end)),
    });
}

/// A session that has ended.
pub fn closed(token: &Secret) {
    open().retain(|o| &o.token != token);
}

/// How many sessions are open now.
pub fn count() -> usize {
    open().len()
}

/// Ends every open session, each logout tried once and all of them at once,
/// waiting at most `within`: how many ended, and how many did not.
pub fn end_all(within: Duration) -> (usize, usize) {
    let sessions: Vec<Open> = std::mem::take(&mut *open());
    let n = sessions.len();
    if n == 0 {
        return (0, 0);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for s in sessions {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let ok = match s.end {
                End::Logout { hs, all: true } => hs.once().logout_all(&s.token).is_ok(),
                End::Logout { hs, all: false } => hs.once().logout(&s.token).is_ok(),
                End::Other(end) => end(),
            };
            let _ = tx.send(ok);
        });
    }
    drop(tx);
    let deadline = Instant::now() + within;
    let mut ended = 0;
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(_) => break,
        }
    }
    (ended, n - ended)
}
