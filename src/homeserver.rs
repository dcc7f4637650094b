//! The HTTP client for the homeserver's endpoints: the shared-secret register
//! endpoint, and the few client-API calls around it (login, logout, whoami).
//!
//! Every failure comes back as a [`HsError`] that names the URL and the cause
//! in one line; none of them carries a secret. Every call but the register
//! POST (which the pipeline retries from the nonce stage) goes through the
//! run's [`crate::retry::Policy`]. Redirects are never followed: a request
//! and its secrets go to the configured origin or nowhere.

use crate::retry::{Policy, Repeat};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

pub const REGISTER_PATH: &str = "/_synapse/admin/v1/register";

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

/// What the register endpoint answers on success.
#[derive(Debug, Clone, Deserialize)]
pub struct Registered {
    pub user_id: String,
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub device_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegisterRequest<'a> {
    pub nonce: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub mac: &'a str,
    pub admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displayname: Option<&'a str>,
    pub inhibit_login: bool,
}

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

    /// The same client, whose retries end by `deadline`.
    pub fn until(mut self, deadline: Option<std::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sends through the retry policy; `what` is `METHOD /path`.
    fn retried<T>(
        &self,
        what: &str,
        repeat: Repeat,
        token: Option<&Secret>,
        send: impl FnMut() -> Result<T, HsError>,
    ) -> Result<T, HsError> {
        let who = || token.and_then(|t| self.whoami(t).ok());
        self.policy.run(what, repeat, self.deadline, &who, send)
    }

    /// `GET /_matrix/client/v3/account/whoami`, once, no retries.
    pub fn whoami(&self, token: &Secret) -> Result<String, HsError> {
        let url = self.url("/_matrix/client/v3/account/whoami");
        let body = self.send(&url, self.client.get(&url).bearer_auth(token.expose()))?;
        body.get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| HsError::Body {
                url: self.shown(&url),
                cause: "no user_id".into(),
            })
    }

    /// The server as the user named it.
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// How a URL is named in messages: with the socket path for unix sockets.
    fn shown(&self, url: &str) -> String {
        match url.strip_prefix(&self.base) {
            Some(path) if self.shown != self.base => format!("{}{}", self.shown, path),
            _ => url.to_string(),
        }
    }

    /// `GET /_synapse/admin/v1/register`: a fresh single-use nonce. Sent
    /// once: the pipeline retries the nonce and the register call together.
    pub fn nonce(&self) -> Result<String, HsError> {
        let url = self.url(REGISTER_PATH);
        let body = self.send(&url, self.client.get(&url))?;
        match body.get("nonce").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => Ok(n.to_string()),
            _ => Err(HsError::Body {
                url: self.shown(&url),
                cause: "no \"nonce\" string in the answer".into(),
            }),
        }
    }

    /// `POST /_synapse/admin/v1/register`.
    pub fn register(&self, req: &RegisterRequest<'_>) -> Result<Registered, HsError> {
        let url = self.url(REGISTER_PATH);
        let body = self.send(&url, self.client.post(&url).json(req))?;
        serde_json::from_value(body).map_err(|e| HsError::Body {
            url: self.shown(&url),
            cause: e.to_string(),
        })
    }

    /// `POST /_matrix/client/v3/login` with a password; the new session's
    /// token and device. Repeated after a lost answer, which may leave a
    /// session behind: callers end every session with [`Self::logout_all`].
    pub fn login(&self, user: &str, password: &Secret) -> Result<Registered, HsError> {
        let path = "/_matrix/client/v3/login";
        let url = self.url(path);
        let req = serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password.expose(),
            "initial_device_display_name": "register_new_matrix_user",
        });
        let body = self.retried(&format!("POST {path}"), Repeat::Safe, None, || {
            self.send(&url, self.client.post(&url).json(&req))
        })?;
        serde_json::from_value(body).map_err(|e| HsError::Body {
            url: self.shown(&url),
            cause: e.to_string(),
        })
    }

    /// `POST /_matrix/client/v3/logout`: ends the session and deletes its device.
    pub fn logout(&self, token: &Secret) -> Result<(), HsError> {
        self.post_token("/_matrix/client/v3/logout", token)
    }

    /// `POST /_matrix/client/v3/logout/all`: ends every session of the
    /// token's account, including any whose login answer was lost.
    pub fn logout_all(&self, token: &Secret) -> Result<(), HsError> {
        self.post_token("/_matrix/client/v3/logout/all", token)
    }

    fn post_token(&self, path: &str, token: &Secret) -> Result<(), HsError> {
        let url = self.url(path);
        let result = self.retried(&format!("POST {path}"), Repeat::Safe, None, || {
            self.send(
                &url,
                self.client
                    .post(&url)
                    .bearer_auth(token.expose())
                    .json(&serde_json::json!({})),
            )
        });
        match result {
            // A token whose session a lost answer already ended is logged out.
            Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Any client-API request, authenticated with `token` when given, with
    /// the retry policy (`repeat` says whether it may be sent twice): the
    /// status and the JSON body (`null` when the body is not JSON), whatever
    /// the final status. Rate limits and 5xx answers are retried first.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&Secret>,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<(u16, Value), HsError> {
        let url = self.url(path);
        let method =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                HsError::Body {
                    url: self.shown(&url),
                    cause: format!("{method:?} is not an HTTP method"),
                }
            })?;
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let attempt = || {
            let mut rb = self.client.request(method.clone(), &url);
            if let Some(t) = token {
                rb = rb.bearer_auth(t.expose());
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            self.send(&url, rb)
        };
        match self.retried(&what, repeat, token, attempt) {
            Ok(v) => Ok((200, v)),
            Err(HsError::Status {
                status, body: b, ..
            }) => Ok((status, b.map_or(Value::Null, |b| *b))),
            Err(HsError::GaveUp { cause, why }) => match *cause {
                HsError::Status {
                    status, body: b, ..
                } if status != 429 => Ok((status, b.map_or(Value::Null, |b| *b))),
                cause => Err(HsError::GaveUp {
                    cause: Box::new(cause),
                    why,
                }),
            },
            Err(e) => Err(e),
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
    fn send(&self, url: &str, rb: reqwest::blocking::RequestBuilder) -> Result<Value, HsError> {
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

impl Homeserver {
    /// Whether the server delegates authentication to the Matrix
    /// Authentication Service (MSC3861), which turns this endpoint off.
    pub fn delegates_auth(&self) -> bool {
        [
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
        ]
        .iter()
        .any(|path| {
            matches!(self.request("GET", path, None, None, Repeat::IfUnsent),
                Ok((200, body)) if body.get("issuer").is_some())
        })
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
