//! The client API around a registration: who a token belongs to, a login,
//! logging out, any request a hook makes, and whether authentication is
//! delegated.

use super::Homeserver;
use super::shared_secret::Registered;
use crate::error::HsError;
use crate::retry::Repeat;
use crate::secret::Secret;
use serde_json::Value;

/// The least number of retries of a logout.
const LOGOUT_RETRIES: u32 = 3;

impl Homeserver {
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
        let session: Registered = serde_json::from_value(body).map_err(|e| HsError::Body {
            url: self.shown(&url),
            cause: e.to_string(),
        })?;
        if let Some(t) = &session.access_token {
            super::sessions::opened(self, t, false);
        }
        Ok(session)
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
        // A logout that fails leaves a live token: it is tried again at
        // least LOGOUT_RETRIES times, within --max-wait and the deadline,
        // even where --retries is 0 (a single registration); a client made
        // `once()` (an interrupted run) still tries once.
        let mut policy = self.policy.clone();
        if policy.max_wait > std::time::Duration::ZERO {
            policy.retries = policy.retries.max(LOGOUT_RETRIES);
        }
        let result = policy.run(
            &format!("POST {path}"),
            Repeat::Safe,
            self.deadline,
            &|| None,
            || {
                self.send(
                    &url,
                    self.client
                        .post(&url)
                        .bearer_auth(token.expose())
                        .json(&serde_json::json!({})),
                )
            },
        );
        let result = match result {
            // A token whose session a lost answer already ended is logged out.
            Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") => Ok(()),
            other => other.map(|_| ()),
        };
        if result.is_ok() {
            super::sessions::closed(token);
        }
        result
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
        let auth = token.map_or(Auth::None, Auth::Bearer);
        let body = body.map_or(Body::None, Body::Json);
        self.call(method, path, auth, body, repeat, token)
    }

    /// A request with any kind of credentials and body, under the retry
    /// policy: the status and the JSON body (`null` when there is none),
    /// whatever the final status. `who` is the token whose account a rate
    /// limit's hint names.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Body<'_>,
        repeat: Repeat,
        who: Option<&Secret>,
    ) -> Result<(u16, Value), HsError> {
        // Credentials go to the configured server only, whatever the path says.
        let url = self.url_on_server(path)?;
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
            rb = match auth {
                Auth::None => rb,
                Auth::Bearer(t) => rb.bearer_auth(t.expose()),
                Auth::Basic(user, secret) => rb.basic_auth(user, Some(secret.expose())),
            };
            rb = match body {
                Body::None => rb,
                Body::Json(b) => rb.json(b),
                Body::Form(f) => rb
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form(f)),
            };
            self.send(&url, rb)
        };
        match self.retried(&what, repeat, who, attempt) {
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

    /// Whether the server delegates authentication to the Matrix
    /// Authentication Service (MSC3861), which turns this endpoint off.
    pub fn delegates_auth(&self) -> bool {
        self.auth_issuer().is_some()
    }

    /// The issuer a server that delegates authentication names (its auth
    /// metadata), if it does.
    pub fn auth_issuer(&self) -> Option<String> {
        [
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
        ]
        .iter()
        .find_map(
            |path| match self.request("GET", path, None, None, Repeat::IfUnsent) {
                Ok((200, body)) => body
                    .get("issuer")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            },
        )
    }

    /// The room ID an alias names (`None`: it names none), from the room
    /// directory (which needs no token; `token` is sent when given); an ID
    /// as it is.
    pub fn resolve_alias(
        &self,
        room: &str,
        token: Option<&Secret>,
    ) -> Result<Option<String>, HsError> {
        if !room.starts_with('#') {
            return Ok(Some(room.to_string()));
        }
        let path = format!(
            "/_matrix/client/v3/directory/room/{}",
            super::admin::segment(room)
        );
        let (status, json) = self.request("GET", &path, token, None, Repeat::Safe)?;
        match status {
            200 => Ok(json
                .get("room_id")
                .and_then(Value::as_str)
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(super::admin::refusal(self, &path, status, json)),
        }
    }

    /// The server's name, as its federation key endpoint gives it.
    pub fn server_name(&self) -> Result<String, HsError> {
        let path = "/_matrix/key/v2/server";
        let (status, body) = self.request("GET", path, None, None, Repeat::Safe)?;
        match body.get("server_name").and_then(Value::as_str) {
            Some(name) if status == 200 => Ok(name.to_string()),
            _ => Err(HsError::Body {
                url: format!("{}{path}", self.base_url()),
                cause: format!("no server_name (status {status})"),
            }),
        }
    }
}

/// How a request proves who sends it.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a Secret),
    /// HTTP Basic: a client's ID and secret (OAuth 2.0 `client_secret_basic`).
    Basic(&'a str, &'a Secret),
}

/// A request's body.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// `application/x-www-form-urlencoded`.
    Form(&'a [(&'a str, &'a str)]),
}

/// Form-encodes pairs (percent-encoded as path segments are).
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = super::admin::segment;
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
