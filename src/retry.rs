//! The one retry policy for every request the tool makes: the nonce and
//! register calls, the settlement login and logout, and the hooks'
//! `rnmu.matrix.*` and `rnmu.http.request`.
//!
//! - A rate limit (429, `M_LIMIT_EXCEEDED`) waits what the server asks
//!   (`retry_after_ms`, or the `Retry-After` header), at most `max_wait` at a
//!   time; it does not use up the retries, since the server did nothing.
//! - A 5xx, a timeout or a lost connection backs off (0.25 s doubling, at
//!   most 8 s) and uses up one retry, and is repeated only where repeating
//!   is safe: the request is idempotent, or it never left this machine.
//! - Nothing waits past the row's deadline.
//!
//! [`Waits`] is told of every wait: it says the first rate limit of each
//! endpoint once, and any long wait, and shows on the progress line what
//! the run is waiting for.

use crate::error::{HsError, Verdict, verdict};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A wait longer than this is always said, at normal verbosity.
pub const LONG_WAIT: Duration = Duration::from_secs(5);
/// The default for `--max-wait`: above Synapse's login limit (one per 333 s).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);
/// The default for `--retries` in a batch (a single registration's is 0, as
/// the original's): enough that a batch through 15 % faults on every request
/// ends with every row done.
pub const BATCH_RETRIES: u32 = 10;

/// Whether a request may be sent again after its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Sending it twice does no more than sending it once (GET, PUT with a
    /// transaction ID, logout, login followed by logging out every session).
    Safe,
    /// Only when it surely never reached the server (the connection was
    /// refused), or the server refused it with a rate limit.
    IfUnsent,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Tries after the first, for failures that use them up.
    pub retries: u32,
    /// The longest one rate-limit wait may be (`--max-wait`).
    pub max_wait: Duration,
    /// Where waits are reported.
    pub waits: Arc<Waits>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: 0,
            max_wait: DEFAULT_MAX_WAIT,
            waits: Arc::new(Waits::default()),
        }
    }
}

/// Why a failed request is not tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// It is not worth another try (a refusal), or may not be repeated.
    Final,
    /// The retries are used up.
    Spent,
    /// The server asks for a longer wait than `--max-wait` allows.
    TooLong(Duration),
    /// The wait would end past the row's deadline.
    Deadline,
}

impl Policy {
    /// What to do after `attempt` (1, 2, ...) failed tries of one request:
    /// the wait before the next, or why there is none. `spent` counts the
    /// retries used up so far (rate limits do not count).
    pub fn decide(
        &self,
        e: &HsError,
        spent: u32,
        repeat: Repeat,
        deadline: Option<Instant>,
    ) -> Result<(Duration, bool), GiveUp> {
        let (wait, counts) = match verdict(e) {
            Verdict::RateLimited => (rate_limit_wait(e), false),
            Verdict::Transient if repeat == Repeat::Safe || unsent(e) => (backoff(spent + 1), true),
            Verdict::StaleNonce => (Duration::ZERO, true),
            _ => return Err(GiveUp::Final),
        };
        if counts && spent >= self.retries {
            return Err(GiveUp::Spent);
        }
        if wait > self.max_wait {
            return Err(GiveUp::TooLong(wait));
        }
        if deadline.is_some_and(|d| Instant::now() + wait > d) {
            return Err(GiveUp::Deadline);
        }
        Ok((wait, counts))
    }

    /// Runs `send` until it succeeds or the policy gives up; `what` names
    /// the request in messages (`POST /_matrix/client/v3/login`).
    pub fn run<T>(
        &self,
        what: &str,
        repeat: Repeat,
        deadline: Option<Instant>,
        who: &dyn Fn() -> Option<String>,
        mut send: impl FnMut() -> Result<T, HsError>,
    ) -> Result<T, HsError> {
        let mut spent = 0;
        loop {
            let e = match send() {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match self.decide(&e, spent, repeat, deadline) {
                Ok((wait, counts)) => {
                    spent += u32::from(counts);
                    self.waits.wait(what, &e, wait, who);
                }
                Err(why) => return Err(self.explain(e, why)),
            }
        }
    }

    /// The error to report when the policy gives up.
    pub fn explain(&self, e: HsError, why: GiveUp) -> HsError {
        match why {
            GiveUp::Final | GiveUp::Spent => e,
            GiveUp::TooLong(wait) => HsError::GaveUp {
                cause: Box::new(e),
                why: format!(
                    "the server asks to wait {}, longer than --max-wait ({})",
                    secs(wait),
                    secs(self.max_wait)
                ),
            },
            GiveUp::Deadline => HsError::GaveUp {
                cause: Box::new(e),
                why: "waiting longer would pass the registration's --deadline".into(),
            },
        }
    }
}

/// What a rate limit asks to wait: `retry_after_ms`, else `Retry-After`,
/// else one second.
pub fn rate_limit_wait(e: &HsError) -> Duration {
    match e {
        HsError::Status {
            retry_after_ms: Some(ms),
            ..
        } => Duration::from_millis(*ms),
        _ => Duration::from_secs(1),
    }
}

/// Whether the request surely never reached the server.
fn unsent(e: &HsError) -> bool {
    matches!(e, HsError::Connect { sent: false, .. })
}

/// The wait before retry number `n` (1, 2, ...): 0.25 s doubling, at most 8 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << n.clamp(1, 6).saturating_sub(1)))
        .min(Duration::from_secs(8))
}

/// Seconds for messages: `61.2 s`, `5 min 33 s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 * 48.0 {
        let s = s.round() as u64;
        if s < 3600 {
            format!("{} min {} s", s / 60, s % 60)
        } else {
            format!("{} h {} min", s / 3600, s % 3600 / 60)
        }
    } else {
        format!("{:.0} days", s / 86_400.0)
    }
}

/// Where notices go.
type Say = Box<dyn Fn(&str) + Send + Sync>;

/// Says what the run waits for. One per run, shared by every worker.
#[derive(Default)]
pub struct Waits {
    /// Endpoints whose rate limit has been explained already: the wait
    /// that was said first, and whether it was said again.
    told: Mutex<HashMap<String, (Duration, bool)>>,
    /// Whether each long wait gets a line of its own (a batch shows them on
    /// its progress line instead).
    quiet_waits: std::sync::atomic::AtomicBool,
    /// A single registration at a terminal: how long it may wait in all,
    /// said with the first wait.
    single_bound: Mutex<Option<Duration>>,
    /// Until when (ms since `start`) the run waits, and on what.
    until_ms: AtomicU64,
    what: Mutex<String>,
    start: std::sync::OnceLock<Instant>,
    say: Mutex<Option<Say>>,
}

impl std::fmt::Debug for Waits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waits")
    }
}

impl Waits {
    /// Where the notices go (standard error, or above the progress bar).
    pub fn set_output(&self, say: impl Fn(&str) + Send + Sync + 'static) {
        *self.say.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(say));
    }

    /// Long waits are shown elsewhere (the progress line): no line each.
    pub fn set_waits_shown_elsewhere(&self) {
        self.quiet_waits.store(true, Ordering::Relaxed);
    }

    /// The run is one registration, whose waits end by `deadline` in all.
    pub fn set_single(&self, deadline: Duration) {
        *self.single_bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }

    fn now_ms(&self) -> u64 {
        self.start.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn say(&self, line: &str) {
        match self.say.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(say) => say(line),
            None => eprintln!("{line}"),
        }
    }

    /// Sleeps `wait` after `e`, saying so where it should be said. `who`
    /// names the account the requests are sent as, when it is known; it is
    /// asked only for the first notice of an endpoint.
    pub fn wait(&self, what: &str, e: &HsError, wait: Duration, who: &dyn Fn() -> Option<String>) {
        let what = &endpoint(what);
        let rate_limited = verdict(e) == Verdict::RateLimited;
        // Said at the first rate limit of an endpoint, and once more if its
        // waits grow well past that (one request can meet several of the
        // server's limits: Synapse counts a new room against rc_message's
        // seconds, then rc_room_creation's minute).
        let tell = rate_limited && {
            let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
            match told.get_mut(what) {
                None => {
                    told.insert(what.to_string(), (wait, false));
                    true
                }
                Some((said, again)) if !*again && wait >= LONG_WAIT && wait >= *said * 4 => {
                    *again = true;
                    true
                }
                Some(_) => false,
            }
        };
        if tell {
            let setting = synapse_setting(what)
                .map(|s| format!(", in Synapse's {s}"))
                .unwrap_or_default();
            let mut line = format!(
                "warning: the server rate-limits {what} (429 M_LIMIT_EXCEEDED{setting}): waiting {}",
                secs(wait)
            );
            // No estimate of the time left: one wait tells neither the
            // limit's burst nor its rate, and a guess from it misleads.
            if let Some(hint) = exempt_hint(what, who) {
                line.push_str(&format!(". {hint}"));
            }
            if let Some(bound) = *self.single_bound.lock().unwrap_or_else(|p| p.into_inner()) {
                line.push_str(&format!(
                    ". This registration waits at most {} in all (--deadline); Ctrl-C stops it",
                    secs(bound)
                ));
            }
            self.say(&line);
        } else if wait >= LONG_WAIT && !self.quiet_waits.load(Ordering::Relaxed) {
            let cause = if rate_limited {
                "the server's rate limit on".to_string()
            } else {
                format!("{e}; trying again")
            };
            self.say(&format!("waiting {} ({cause} {what})", secs(wait)));
        }
        let until = self.now_ms() + wait.as_millis() as u64;
        if until > self.until_ms.load(Ordering::Relaxed) {
            *self.what.lock().unwrap_or_else(|p| p.into_inner()) = if rate_limited {
                format!("on a rate limit ({what})")
            } else {
                format!("to try again ({what}: {e})")
            };
            self.until_ms.store(until, Ordering::Relaxed);
        }
        std::thread::sleep(wait);
    }

    /// What the run is waiting for right now (`on a rate limit (ENDPOINT)`
    /// when the server said 429, else `to try again (ENDPOINT: CAUSE)`),
    /// and how much longer.
    pub fn waiting(&self) -> Option<(String, Duration)> {
        let until = self.until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now + 500).then(|| {
            (
                self.what.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                Duration::from_millis(until - now),
            )
        })
    }
}

/// A request named by its endpoint: `PUT /_matrix/client/v3/rooms/{roomId}
/// /send/m.room.message/{txnId}`, whatever the room and transaction.
pub fn endpoint(what: &str) -> String {
    let (method, path) = what.split_once(' ').unwrap_or(("", what));
    let path = path.split('?').next().unwrap_or(path);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let prev = |n: usize| i.checked_sub(n).and_then(|j| segments.get(j)).copied();
        let id = ["!", "@", "#", "$", "%21", "%40", "%23", "%24"]
            .iter()
            .any(|sigil| seg.starts_with(sigil));
        out.push(if prev(2) == Some("send") || prev(2) == Some("state") {
            "{key}"
        } else if id {
            "{id}"
        } else {
            seg
        });
    }
    format!("{method} {}", out.join("/"))
        .trim_start()
        .to_string()
}

/// The homeserver.yaml setting behind Synapse's limit on an endpoint.
fn synapse_setting(what: &str) -> Option<&'static str> {
    let path = what.split_once(' ').map_or(what, |(_, p)| p);
    Some(if path.ends_with("/login") {
        "rc_login"
    } else if path.ends_with("/createRoom") {
        "rc_room_creation and rc_message"
    } else if path.contains("/send/") {
        "rc_message"
    } else if path.ends_with("/invite") {
        "rc_invites"
    } else if path.contains("/join/") {
        "rc_joins"
    } else {
        return None;
    })
}

/// How an operator lifts a limit, by the kind of request: logins are
/// limited per client address; an account's requests can be exempted.
fn exempt_hint(what: &str, who: &dyn Fn() -> Option<String>) -> Option<String> {
    if what.ends_with("/login") {
        return Some(
            "Logins are limited per client address (rc_login.address in homeserver.yaml); \
             the run waits them out"
                .into(),
        );
    }
    let who = who()?;
    let exempt = format!(
        "a server admin can exempt {who} with Synapse's admin API: POST \
         /_synapse/admin/v1/users/{who}/override_ratelimit {{\"messages_per_second\": 0, \
         \"burst_count\": 0}}"
    );
    if what.contains("/join") {
        // The limited account is the one joining (for a new user, its own join).
        return Some(format!(
            "The account limited is {who}: joins are limited per account by rc_joins.local in \
             homeserver.yaml (raise it there), or {exempt}"
        ));
    }
    Some(format!("The account limited is {who}: {exempt}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, errcode: Option<&str>, after: Option<u64>) -> HsError {
        HsError::Status {
            url: "u".into(),
            status: code,
            reason: "",
            errcode: errcode.map(str::to_string),
            error: None,
            json: true,
            retry_after_ms: after,
            body: None,
        }
    }

    #[test]
    fn decisions() {
        let p = Policy {
            retries: 2,
            ..Policy::default()
        };
        let rl = status(429, Some("M_LIMIT_EXCEEDED"), Some(1500));
        // A rate limit waits what it asks and uses up nothing.
        assert_eq!(
            p.decide(&rl, 2, Repeat::IfUnsent, None),
            Ok((Duration::from_millis(1500), false))
        );
        // A thousand years is refused, and said.
        let forever = status(429, Some("M_LIMIT_EXCEEDED"), Some(31_536_000_000_000));
        assert!(matches!(
            p.decide(&forever, 0, Repeat::Safe, None),
            Err(GiveUp::TooLong(_))
        ));
        // A 5xx is repeated only where that is safe, and only so often.
        let bad = status(502, None, None);
        assert_eq!(
            p.decide(&bad, 0, Repeat::IfUnsent, None),
            Err(GiveUp::Final)
        );
        assert!(p.decide(&bad, 1, Repeat::Safe, None).is_ok());
        assert_eq!(p.decide(&bad, 2, Repeat::Safe, None), Err(GiveUp::Spent));
        // A refused connection never reached the server.
        let refused = HsError::Connect {
            url: "u".into(),
            cause: "refused".into(),
            sent: false,
        };
        assert!(p.decide(&refused, 0, Repeat::IfUnsent, None).is_ok());
        let cut = HsError::Connect {
            url: "u".into(),
            cause: "closed".into(),
            sent: true,
        };
        assert_eq!(
            p.decide(&cut, 0, Repeat::IfUnsent, None),
            Err(GiveUp::Final)
        );
        // Nothing waits past the deadline.
        let soon = Instant::now() + Duration::from_millis(100);
        assert_eq!(
            p.decide(&rl, 0, Repeat::Safe, Some(soon)),
            Err(GiveUp::Deadline)
        );
        // A refusal is final.
        let no = status(403, Some("M_FORBIDDEN"), None);
        assert_eq!(p.decide(&no, 0, Repeat::Safe, None), Err(GiveUp::Final));
    }

    #[test]
    fn limits_are_named_by_their_setting() {
        assert_eq!(
            synapse_setting("POST /_matrix/client/v3/createRoom"),
            Some("rc_room_creation and rc_message")
        );
        assert_eq!(
            synapse_setting("PUT /_matrix/client/v3/rooms/{id}/send/m.room.message/{key}"),
            Some("rc_message")
        );
        assert_eq!(synapse_setting("GET /_synapse/admin/v1/register"), None);
    }

    #[test]
    fn endpoints_hide_ids() {
        assert_eq!(
            endpoint("PUT /_matrix/client/v3/rooms/%21abc%3Ax/send/m.room.message/rnmu-1-2-3"),
            "PUT /_matrix/client/v3/rooms/{id}/send/m.room.message/{key}"
        );
        assert_eq!(
            endpoint("POST /_matrix/client/v3/join/%23general%3Ax?server_name=x"),
            "POST /_matrix/client/v3/join/{id}"
        );
        assert_eq!(
            endpoint("POST /_matrix/client/v3/createRoom"),
            "POST /_matrix/client/v3/createRoom"
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let w: Vec<u64> = (1..=8).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(w, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn long_times_read_well() {
        assert_eq!(secs(Duration::from_millis(61_200)), "1 min 1 s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(
            secs(Duration::from_millis(31_536_000_000_000)),
            "365000 days"
        );
    }
}
