//! The HTTP client for the homeserver: one connection pool per server,
//! its transport settings, and the one way a request is sent and its answer
//! read. The endpoints live in files of their own: [`shared_secret`] (the
//! register endpoint), [`client`] (the client API: login, logout, whoami,
//! any request), [`admin`] (Synapse's admin API, with an admin's token),
//! [`mas`] (the Matrix Authentication Service's Admin API).
//!
//! Every failure comes back as a [`HsError`] that names the URL and the cause
//! in one line; none of them carries a secret. Every call but the register
//! POST (which the pipeline retries from the nonce stage) goes through the
//! run's [`crate::retry::Policy`]. Redirects are never followed: a request
//! and its secrets go to the configured origin or nowhere.

pub mod admin;
pub mod client;
pub mod mas;
pub mod sessions;
pub mod shared_secret;

pub use shared_secret::{REGISTER_PATH, RegisterRequest, Registered};

use crate::error::HsError;
use crate::retry::{Policy, Repeat};
use crate::secret::Secret;
use serde_json::Value;
use std::time::Duration;

/// How requests travel: the timeout, the TLS trust, and the retry policy.
#[derive(Debug, Clone)]
pub struct Transport {
    /// The longest one request may take, connecting included.
    pub timeout: Duration,
    /// Certificate authorities trusted besides the system's (`--cacert`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
    /// How failed requests are tried again.
    pub policy: Policy,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            timeout: Duration::from_secs(30),
            extra_roots: Vec::new(),
            insecure: false,
            policy: Policy::default(),
        }
    }
}

impl Transport {
    /// A client builder with these settings (for the homeserver and for hooks).
    pub fn builder(&self) -> reqwest::blocking::ClientBuilder {
        let mut b = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                "register_new_matrix_user/",
                env!("CARGO_PKG_VERSION")
            ));
        if !self.extra_roots.is_empty() {
            b = b.tls_certs_merge(self.extra_roots.iter().cloned());
        }
        if self.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b
    }
}

#[derive(Debug, Clone)]
pub struct Homeserver {
    /// What the user named: `https://host`, or `unix:/path/to.sock`.
    shown: String,
    /// Where requests go: for a unix socket, a placeholder authority.
    base: String,
    client: reqwest::blocking::Client,
    timeout: Duration,
    policy: Policy,
    /// No retry waits past this (the row's `--deadline`).
    deadline: Option<std::time::Instant>,
}

impl Homeserver {
    /// A client for `base_url`: `http://`, `https://`, or `unix:/path` for a
    /// listener bound to a unix socket.
    pub fn new(base_url: &str, transport: &Transport) -> Result<Self, HsError> {
        let shown = base_url.trim_end_matches('/').to_string();
        let timeout = transport.timeout;
        let mut builder = transport.builder();
        let base = match shown.strip_prefix("unix:") {
            Some(path) => {
                builder = builder.unix_socket(path);
                "http://localhost".to_string()
            }
            None => shown.clone(),
        };
        if !base.starts_with("https://") {
            // Plain HTTP (a unix socket included) never verifies a
            // certificate, and redirects are not followed: the system's
            // certificate store is not read, which would cost every run
            // milliseconds of reading and parsing each file in it.
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let client = builder.build().map_err(|e| HsError::Connect {
            url: shown.clone(),
            cause: root_cause(&e),
            sent: false,
        })?;
        Ok(Homeserver {
            shown,
            base,
            client,
            timeout,
            policy: transport.policy.clone(),
            deadline: None,
        })
    }

    /// The same client with no retries: one try of each request (what an
    /// interrupted run can still afford).
    pub fn once(mut self) -> Self {
        self.policy.retries = 0;
        self.policy.max_wait = Duration::ZERO;
        self
    }

    /// The same client, whose retries end by `deadline`.
    pub fn until(mut self, deadline: Option<std::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sends through the retry policy; `what` is `METHOD /path`.
    pub(super) fn retried<T>(
        &self,
        what: &str,
        repeat: Repeat,
        token: Option<&Secret>,
        send: impl FnMut() -> Result<T, HsError>,
    ) -> Result<T, HsError> {
        let who = || token.and_then(|t| self.whoami(t).ok());
        self.policy.run(what, repeat, self.deadline, &who, send)
    }

    /// The server as the user named it.
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The URL of `path` on this server, and only this server: a path that
    /// does not start with one `/`, or that would take the request to
    /// another scheme, host, port or user (`@host/x`, `//host/x`,
    /// `http://host/x`, a backslash, a control character), is refused
    /// before anything leaves.
    pub fn url_on_server(&self, path: &str) -> Result<String, HsError> {
        let refuse = |why: &str| HsError::Body {
            url: self.shown.clone(),
            cause: format!("the request path {path:?} {why}; it is not sent"),
        };
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(refuse("must start with a single /"));
        }
        if path
            .chars()
            .any(|c| c == '\\' || c == '#' || c.is_control() || c.is_whitespace())
        {
            return Err(refuse(
                "holds a backslash, a #, a space or a control character",
            ));
        }
        let url = self.url(path);
        let (Ok(base), Ok(joined)) = (reqwest::Url::parse(&self.base), reqwest::Url::parse(&url))
        else {
            return Err(refuse("does not make a URL on this server"));
        };
        let same = joined.scheme() == base.scheme()
            && joined.host_str() == base.host_str()
            && joined.port_or_known_default() == base.port_or_known_default()
            && joined.username().is_empty()
            && joined.password().is_none()
            && joined.path().starts_with(base.path().trim_end_matches('/'));
        if !same {
            return Err(refuse("names another server"));
        }
        Ok(url)
    }

    /// How a URL is named in messages: with the socket path for unix sockets.
    pub(super) fn shown(&self, url: &str) -> String {
        match url.strip_prefix(&self.base) {
            Some(path) if self.shown != self.base => format!("{}{}", self.shown, path),
            _ => url.to_string(),
        }
    }

    /// Sends a request once; the status, the `Retry-After` header in
    /// milliseconds, and the body, if it is JSON.
    fn exchange(
        &self,
        url: &str,
        rb: reqwest::blocking::RequestBuilder,
    ) -> Result<(u16, Option<u64>, Option<Value>), HsError> {
        let resp = rb.send().map_err(|e| self.transport_error(url, &e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = read_body(resp, url, self.timeout)?;
        let parsed = serde_json::from_str(&text).ok().or_else(|| {
            // Not JSON (a proxy's page): kept as text for whoever shows it.
            (status != 200 && !text.is_empty()).then_some(Value::String(text))
        });
        if (300..400).contains(&status) {
            // Never followed: the request (a password, a MAC, a token) would go
            // to whatever origin the answer names.
            let to = location.unwrap_or_else(|| "nowhere".into());
            let note = format!("redirects to {to}, which is not followed");
            return Ok((status, None, Some(serde_json::json!({ "error": note }))));
        }
        Ok((status, retry_after, parsed))
    }

    /// Sends a request once; it must answer 200 with JSON.
    pub(super) fn send(
        &self,
        url: &str,
        rb: reqwest::blocking::RequestBuilder,
    ) -> Result<Value, HsError> {
        let url = &self.shown(url);
        let (status, retry_after, parsed) = self.exchange(url, rb)?;
        if status == 200 {
            return parsed.ok_or_else(|| HsError::Body {
                url: url.to_string(),
                cause: "not JSON".into(),
            });
        }
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let code = reqwest::StatusCode::from_u16(status).ok();
        Err(HsError::Status {
            url: url.to_string(),
            status,
            reason: code.and_then(|c| c.canonical_reason()).unwrap_or(""),
            errcode: field("errcode"),
            error: field("error"),
            json: parsed.as_ref().is_some_and(Value::is_object),
            retry_after_ms: parsed
                .as_ref()
                .and_then(|v| v.get("retry_after_ms"))
                .and_then(Value::as_u64)
                .or(retry_after),
            body: parsed.map(Box::new),
        })
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> HsError {
        transport_error(url, e, self.timeout)
    }
}

/// The most of an answer's body the tool reads; a longer one is an error.
pub const MAX_BODY: u64 = 16 << 20;

/// Reads an answer's body, at most [`MAX_BODY`] bytes of it.
pub fn read_body(
    resp: reqwest::blocking::Response,
    url: &str,
    timeout: Duration,
) -> Result<String, HsError> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut limited = resp.take(MAX_BODY + 1);
    limited.read_to_end(&mut buf).map_err(|e| {
        let cause = root_cause(&e);
        if cause.contains("timed out") {
            HsError::Timeout {
                url: url.to_string(),
                secs: timeout.as_secs().max(1),
            }
        } else {
            HsError::Connect {
                url: url.to_string(),
                cause,
                sent: true,
            }
        }
    })?;
    if buf.len() as u64 > MAX_BODY {
        return Err(HsError::Body {
            url: url.to_string(),
            cause: format!("the answer is larger than {} MiB", MAX_BODY >> 20),
        });
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A failed request as an [`HsError`]: a timeout, or a connection that
/// failed (and whether the request may have left this machine).
pub fn transport_error(url: &str, e: &reqwest::Error, timeout: Duration) -> HsError {
    if e.is_timeout() {
        HsError::Timeout {
            url: url.to_string(),
            secs: timeout.as_secs().max(1),
        }
    } else {
        let mut cause = root_cause(e);
        if cause.contains("certificate") {
            cause.push_str(" (trust the server's CA with --cacert FILE)");
        }
        HsError::Connect {
            url: url.to_string(),
            cause,
            // A refused or failed connection carried nothing.
            sent: !e.is_connect(),
        }
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather
/// than "error sending request".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = cur.to_string();
    // reqwest's own message may include the URL, which the caller names already.
    msg.split(" for url (").next().unwrap_or(&msg).to_string()
}

/// A server URL the tool can use: `http://`, `https://` or `unix:`.
pub fn check_url(url: &str) -> Result<(), crate::error::Error> {
    let ok = url.starts_with("http://") || url.starts_with("https://") || url.starts_with("unix:");
    if !ok {
        return Err(crate::error::Error::Config(format!(
            "server URL {url:?} must start with http://, https:// or unix:"
        )));
    }
    Ok(())
}
