//! The Matrix Authentication Service's Admin API, for homeservers that
//! delegate authentication to it (MSC3861): an admin token from the
//! client-credentials grant (kept, and renewed before it expires), users
//! looked up, created, given a password and the admin flag, locked and
//! deactivated, personal sessions for Synapse's admin API, and a login at
//! MAS's compatibility endpoint.
//!
//! Every request follows the run's retry policy. Those that set a value
//! (password, admin flag, lock, deactivation) are safe to repeat; creating a
//! user and opening a personal session are sent again only when they surely
//! never left. The client secret and every token go to MAS's origin only.

use super::Homeserver;
use super::admin::segment;
use super::client::{Auth, Body};
use crate::error::HsError;
use crate::retry::Repeat;
use crate::secret::Secret;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The scope of the Admin API.
pub const ADMIN_SCOPE: &str = "urn:mas:admin";
/// The scope of a personal session that may use Synapse's admin API.
pub const SYNAPSE_ADMIN_SCOPE: &str = "urn:matrix:client:api:* urn:synapse:admin:*";
/// A token is renewed when less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The client that gets admin tokens, and the token it holds; shared by
/// every worker of a run.
#[derive(Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
    token: Mutex<Option<(Secret, Instant)>>,
}

impl Credentials {
    pub fn new(client_id: String, client_secret: Secret) -> Self {
        Credentials {
            client_id,
            client_secret,
            token: Mutex::new(None),
        }
    }
}

/// A MAS user, as the Admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its ULID.
    pub id: String,
    pub username: String,
    pub admin: bool,
    pub locked: bool,
    pub deactivated: bool,
}

/// An upstream OAuth link: a user's identity at an upstream provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    /// The provider's ULID.
    pub provider: String,
    pub subject: String,
    /// The user's ULID (none for a link not yet claimed).
    pub user: Option<String>,
}

/// One page of MAS's users, the ULID the next starts after (`None`: the
/// last page), and how many users there are when MAS says.
pub type UsersPage = (Vec<User>, Option<String>, Option<u64>);

/// What creating a user came to.
#[derive(Debug)]
pub enum Created {
    User(User),
    /// 409 "User already exists".
    Exists,
}

/// MAS's Admin API at one address, with one client's credentials.
pub struct Mas<'a> {
    pub hs: Homeserver,
    creds: &'a Credentials,
}

impl<'a> Mas<'a> {
    pub fn new(hs: Homeserver, creds: &'a Credentials) -> Self {
        Mas { hs, creds }
    }

    /// An Admin API token: the one held while it has a minute left, else a
    /// new one.
    pub fn token(&self) -> Result<Secret, HsError> {
        let mut held = self.creds.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, until)) = held.as_ref() {
            if Instant::now() + RENEW_BEFORE < *until {
                return Ok(t.clone());
            }
        }
        let path = "/oauth2/token";
        let form = [("grant_type", "client_credentials"), ("scope", ADMIN_SCOPE)];
        let (status, body) = self.hs.call(
            "POST",
            path,
            Auth::Basic(&self.creds.client_id, &self.creds.client_secret),
            Body::Form(&form),
            Repeat::Safe,
            None,
        )?;
        if status != 200 {
            let why = match body.get("error").and_then(Value::as_str) {
                Some("invalid_client") => {
                    "MAS refused the client's credentials (invalid_client): check \
                     --mas-client-id and --mas-client-secret-file"
                        .to_string()
                }
                _ => oauth_error(&body),
            };
            return Err(refused(&self.hs, path, status, Some(why)));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| HsError::Body {
                url: format!("{}{path}", self.hs.base_url()),
                cause: "no access_token".into(),
            })?;
        let secs = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(300);
        let token = Secret::new(token);
        *held = Some((token.clone(), Instant::now() + Duration::from_secs(secs)));
        Ok(token)
    }

    /// An Admin API call with the current token; a 401 (the token ended
    /// early) gets one more try with a new one.
    fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<(u16, Value), HsError> {
        let mut fresh = false;
        loop {
            let token = self.token()?;
            let body = body.map_or(Body::None, Body::Json);
            let (status, json) =
                self.hs
                    .call(method, path, Auth::Bearer(&token), body, repeat, None)?;
            if status == 401 && !fresh {
                *self.creds.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                fresh = true;
                continue;
            }
            return Ok((status, json));
        }
    }

    /// What MAS says of its own configuration: the server name, and the
    /// password complexity it demands (`None` each when this MAS has no
    /// `site-config` endpoint).
    pub fn site_config(&self) -> Result<(Option<String>, Option<u8>), HsError> {
        let path = "/api/admin/v1/site-config";
        let (status, body) = self.admin("GET", path, None, Repeat::Safe)?;
        match status {
            200 => Ok((
                body["server_name"].as_str().map(str::to_string),
                body["minimum_password_complexity"]
                    .as_u64()
                    .map(|n| n.min(4) as u8),
            )),
            404 => Ok((None, None)),
            _ => Err(refused(&self.hs, path, status, titles(&body))),
        }
    }

    /// The user `username` (MAS compares case-insensitively), or `None`.
    pub fn user_by_username(&self, username: &str) -> Result<Option<User>, HsError> {
        let path = format!("/api/admin/v1/users/by-username/{}", segment(username));
        let (status, body) = self.admin("GET", &path, None, Repeat::Safe)?;
        match status {
            200 => user_of(&self.hs, &path, &body).map(Some),
            404 => Ok(None),
            _ => Err(refused(&self.hs, &path, status, titles(&body))),
        }
    }

    /// Creates the user `username` (without a password).
    pub fn create_user(&self, username: &str) -> Result<Created, HsError> {
        let path = "/api/admin/v1/users";
        let (status, body) = self.admin(
            "POST",
            path,
            Some(&json!({ "username": username })),
            Repeat::IfUnsent,
        )?;
        match status {
            201 | 200 => user_of(&self.hs, path, &body).map(Created::User),
            409 if titles(&body).as_deref() == Some("User already exists") => Ok(Created::Exists),
            _ => Err(refused(&self.hs, path, status, titles(&body))),
        }
    }

    /// Sets the user's password; `skip_check` skips MAS's complexity check.
    pub fn set_password(
        &self,
        id: &str,
        password: &Secret,
        skip_check: bool,
    ) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/users/{}/set-password", segment(id));
        let mut body = json!({ "password": password.expose() });
        if skip_check {
            body["skip_password_check"] = json!(true);
        }
        self.expect(&path, Some(&body), &[204, 200])
    }

    pub fn set_admin(&self, id: &str, admin: bool) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/users/{}/set-admin", segment(id));
        self.expect(&path, Some(&json!({ "admin": admin })), &[200])
    }

    pub fn lock(&self, id: &str, locked: bool) -> Result<(), HsError> {
        let what = if locked { "lock" } else { "unlock" };
        let path = format!("/api/admin/v1/users/{}/{what}", segment(id));
        self.expect(&path, None, &[200])
    }

    /// Deactivates the user; MAS asks the homeserver to erase it unless
    /// told to skip that, so `skip_erase` is sent unless `erase`.
    pub fn deactivate(&self, id: &str, erase: bool) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/users/{}/deactivate", segment(id));
        self.expect(&path, Some(&json!({ "skip_erase": !erase })), &[200])
    }

    /// A personal session acting as `actor` with `scope`, for `secs`: its
    /// ID and its access token.
    pub fn personal_session(
        &self,
        actor: &str,
        scope: &str,
        secs: u64,
    ) -> Result<(String, Secret), HsError> {
        let path = "/api/admin/v1/personal-sessions";
        let body = json!({
            "actor_user_id": actor,
            "human_name": "register_new_matrix_user",
            "scope": scope,
            "expires_in": secs,
        });
        let (status, json) = self.admin("POST", path, Some(&body), Repeat::IfUnsent)?;
        if status != 201 && status != 200 {
            return Err(refused(&self.hs, path, status, titles(&json)));
        }
        let data = &json["data"];
        match (
            data["id"].as_str(),
            data["attributes"]["access_token"].as_str(),
        ) {
            (Some(id), Some(token)) => Ok((id.to_string(), Secret::new(token))),
            _ => Err(HsError::Body {
                url: format!("{}{path}", self.hs.base_url()),
                cause: "no session ID or access token".into(),
            }),
        }
    }

    /// Ends a personal session.
    pub fn revoke_personal_session(&self, id: &str) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/personal-sessions/{}/revoke", segment(id));
        self.expect(&path, None, &[200, 204])
    }

    /// One page of MAS's users after the ULID `after`: the users, and the
    /// ULID to page on from (`None`: the last page).
    pub fn users_page(&self, after: Option<&str>, first: usize) -> Result<UsersPage, HsError> {
        let mut path = format!("/api/admin/v1/users?page[first]={first}");
        if let Some(a) = after {
            path.push_str(&format!("&page[after]={}", segment(a)));
        }
        let (status, body) = self.admin("GET", &path, None, Repeat::Safe)?;
        if status != 200 {
            return Err(refused(&self.hs, &path, status, titles(&body)));
        }
        let data = body["data"].as_array().cloned().unwrap_or_default();
        let users = data
            .iter()
            .map(|d| user_of(&self.hs, &path, &json!({ "data": d })))
            .collect::<Result<Vec<_>, _>>()?;
        let next = (users.len() == first)
            .then(|| users.last().map(|u| u.id.clone()))
            .flatten();
        Ok((users, next, body["meta"]["count"].as_u64()))
    }

    /// Reactivates a deactivated user.
    pub fn reactivate(&self, id: &str) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/users/{}/reactivate", segment(id));
        self.expect(&path, None, &[200])
    }

    /// The user with ULID `id`, or `None`.
    pub fn user_by_id(&self, id: &str) -> Result<Option<User>, HsError> {
        let path = format!("/api/admin/v1/users/{}", segment(id));
        let (status, body) = self.admin("GET", &path, None, Repeat::Safe)?;
        match status {
            200 => user_of(&self.hs, &path, &body).map(Some),
            404 => Ok(None),
            _ => Err(refused(&self.hs, &path, status, titles(&body))),
        }
    }

    /// The upstream OAuth links a filter (`filter[user]=ULID`,
    /// `filter[provider]=ULID&filter[subject]=...`) selects, every page.
    pub fn links(&self, filter: &str) -> Result<Vec<Link>, HsError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/admin/v1/upstream-oauth-links?{filter}&page[first]=100");
            if let Some(a) = &after {
                path.push_str(&format!("&page[after]={}", segment(a)));
            }
            let (status, body) = self.admin("GET", &path, None, Repeat::Safe)?;
            if status != 200 {
                return Err(refused(&self.hs, &path, status, titles(&body)));
            }
            let data = body["data"].as_array().cloned().unwrap_or_default();
            for d in &data {
                let a = &d["attributes"];
                if let (Some(id), Some(p), Some(sub)) = (
                    d["id"].as_str(),
                    a["provider_id"].as_str(),
                    a["subject"].as_str(),
                ) {
                    out.push(Link {
                        id: id.to_string(),
                        provider: p.to_string(),
                        subject: sub.to_string(),
                        user: a["user_id"].as_str().map(str::to_string),
                    });
                }
            }
            match data.last().and_then(|d| d["id"].as_str()) {
                Some(last) if data.len() == 100 => after = Some(last.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Links the user `id` to `subject` at the upstream provider `provider`.
    pub fn add_link(&self, id: &str, provider: &str, subject: &str) -> Result<(), HsError> {
        let path = "/api/admin/v1/upstream-oauth-links";
        let body = json!({"user_id": id, "provider_id": provider, "subject": subject});
        let (status, json) = self.admin("POST", path, Some(&body), Repeat::IfUnsent)?;
        match status {
            200 | 201 => Ok(()),
            _ => Err(refused(&self.hs, path, status, titles(&json))),
        }
    }

    /// Removes the link `link`.
    pub fn remove_link(&self, link: &str) -> Result<(), HsError> {
        let path = format!("/api/admin/v1/upstream-oauth-links/{}", segment(link));
        let (status, json) = self.admin("DELETE", &path, None, Repeat::Safe)?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(refused(&self.hs, &path, status, titles(&json))),
        }
    }

    fn expect(&self, path: &str, body: Option<&Value>, ok: &[u16]) -> Result<(), HsError> {
        let (status, json) = self.admin("POST", path, body, Repeat::Safe)?;
        if ok.contains(&status) {
            Ok(())
        } else {
            Err(refused(&self.hs, path, status, titles(&json)))
        }
    }
}

fn user_of(hs: &Homeserver, path: &str, body: &Value) -> Result<User, HsError> {
    let data = &body["data"];
    let a = &data["attributes"];
    match (data["id"].as_str(), a["username"].as_str()) {
        (Some(id), Some(username)) => Ok(User {
            id: id.to_string(),
            username: username.to_string(),
            admin: a["admin"].as_bool().unwrap_or(false),
            locked: !a["locked_at"].is_null(),
            deactivated: !a["deactivated_at"].is_null(),
        }),
        _ => Err(HsError::Body {
            url: format!("{}{path}", hs.base_url()),
            cause: "not a user".into(),
        }),
    }
}

/// The titles of an Admin API error (`{"errors": [{"title": ...}]}`).
pub fn titles(body: &Value) -> Option<String> {
    let list: Vec<&str> = body["errors"]
        .as_array()?
        .iter()
        .filter_map(|e| e["title"].as_str())
        .collect();
    (!list.is_empty()).then(|| list.join("; "))
}

fn oauth_error(body: &Value) -> String {
    match (
        body.get("error").and_then(Value::as_str),
        body.get("error_description").and_then(Value::as_str),
    ) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.to_string(),
        _ => titles(body).unwrap_or_else(|| "no reason given".into()),
    }
}

/// A refusal, as the error every caller reports.
fn refused(hs: &Homeserver, path: &str, status: u16, why: Option<String>) -> HsError {
    let code = reqwest::StatusCode::from_u16(status).ok();
    HsError::Status {
        url: format!("{}{path}", hs.base_url()),
        status,
        reason: code.and_then(|c| c.canonical_reason()).unwrap_or(""),
        errcode: None,
        error: why,
        json: true,
        retry_after_ms: None,
        body: None,
    }
}

/// MAS's rule for a username: 1 to 255 characters of `a-z 0-9 = _ - . / +`,
/// not starting with `_`.
pub fn username_valid(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= 255
        && !username.starts_with('_')
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"=_-./+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_as_mas_judges_them() {
        for ok in ["alice", "a.b-c_d=e/f+g", "0", &"a".repeat(255)] {
            assert!(username_valid(ok), "{ok}");
        }
        // As recorded: uppercase, a space, a leading _, a full MXID, 256 characters.
        for bad in [
            "Alice",
            "not valid",
            "_svc",
            "@carol:test.local",
            &"a".repeat(256),
            "",
        ] {
            assert!(!username_valid(bad), "{bad}");
        }
    }

    #[test]
    fn error_titles_are_joined() {
        let body = serde_json::json!({"errors": [{"title": "Invalid type of access token"},
                                                 {"title": "invalid token format"}]});
        assert_eq!(
            titles(&body).as_deref(),
            Some("Invalid type of access token; invalid token format")
        );
        assert_eq!(titles(&serde_json::json!({"raw": "x"})), None);
    }
}
