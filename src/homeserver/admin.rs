//! Synapse's admin API, with a server admin's access token: reading an
//! account, changing it, joining it to rooms, deactivating it, and the media
//! an avatar needs. Every call follows the run's retry policy, and every one
//! is safe to repeat: a PUT sets values, a join of a member changes nothing,
//! a deactivation of an inactive account neither.

use super::Homeserver;
use crate::error::HsError;
use crate::retry::Repeat;
use crate::secret::Secret;
use crate::state::{Account, Listed, Page, canonical_email};
use serde_json::{Value, json};

/// The admin API of one server, as one admin.
pub struct Admin<'a> {
    hs: &'a Homeserver,
    token: &'a Secret,
}

/// Why an admin token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the admin token is not valid: {0}")]
    Invalid(HsError),
    #[error("the admin token belongs to {0}, who is not a server admin")]
    NotAdmin(String),
    #[error("cannot check the admin token: {0}")]
    Unreachable(HsError),
    #[error(
        "cannot check the admin token: {0} answered with a redirect, which is not followed \
         (a token goes to the configured server only): give the server's own URL"
    )]
    Redirected(String),
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Homeserver {
    /// This server's admin API, authenticated with `token`.
    pub fn admin<'a>(&'a self, token: &'a Secret) -> Admin<'a> {
        Admin { hs: self, token }
    }
}

impl Admin<'_> {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), HsError> {
        self.hs
            .request(method, path, Some(self.token), body, Repeat::Safe)
    }

    /// A call that must answer 200.
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, HsError> {
        let (status, json) = self.call(method, path, body)?;
        if status == 200 {
            Ok(json)
        } else {
            Err(refusal(self.hs, path, status, json))
        }
    }

    /// Checks that the token is a server admin's, once: whose it is.
    pub fn check(&self) -> Result<String, TokenError> {
        let (status, json) = self
            .call("GET", "/_matrix/client/v3/account/whoami", None)
            .map_err(TokenError::Unreachable)?;
        if (300..400).contains(&status) {
            return Err(TokenError::Redirected(self.hs.base_url().to_string()));
        }
        if status != 200 {
            return Err(TokenError::Invalid(refusal(
                self.hs,
                "/_matrix/client/v3/account/whoami",
                status,
                json,
            )));
        }
        let Some(me) = json.get("user_id").and_then(Value::as_str) else {
            return Err(TokenError::Invalid(HsError::Body {
                url: self.hs.base_url().to_string(),
                cause: "whoami gave no user_id".into(),
            }));
        };
        let path = format!("/_synapse/admin/v2/users/{}", segment(me));
        match self.call("GET", &path, None) {
            Ok((200, _)) => Ok(me.to_string()),
            Ok((403, _)) => Err(TokenError::NotAdmin(me.to_string())),
            Ok((status, json)) => Err(TokenError::Invalid(refusal(self.hs, &path, status, json))),
            Err(e) => Err(TokenError::Unreachable(e)),
        }
    }

    /// The account `user_id`, with the rooms it has joined; `None` when
    /// there is no such account.
    pub fn account(&self, user_id: &str) -> Result<Option<Account>, HsError> {
        let path = format!("/_synapse/admin/v2/users/{}", segment(user_id));
        let (status, u) = self.call("GET", &path, None)?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(refusal(self.hs, &path, status, u));
        }
        let truthy = |k: &str| match u.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
            _ => false,
        };
        let text = |k: &str| u.get(k).and_then(Value::as_str).map(str::to_string);
        let mut emails = Vec::new();
        let mut other = Vec::new();
        for t in u
            .get("threepids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match (
                t.get("medium").and_then(Value::as_str),
                t.get("address").and_then(Value::as_str),
            ) {
                (Some("email"), Some(a)) => emails.push(canonical_email(a)),
                (Some(m), Some(a)) => other.push(json!({"medium": m, "address": a})),
                _ => {}
            }
        }
        emails.sort();
        let rooms_path = format!("/_synapse/admin/v1/users/{}/joined_rooms", segment(user_id));
        let rooms = self.ok("GET", &rooms_path, None)?;
        let rooms = rooms
            .get("joined_rooms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut external_ids: Vec<String> = u
            .get("external_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(format!(
                    "{}:{}",
                    e.get("auth_provider")?.as_str()?,
                    e.get("external_id")?.as_str()?
                ))
            })
            .collect();
        external_ids.sort();
        Ok(Some(Account {
            user_id: user_id.to_string(),
            external_ids,
            erased: truthy("erased"),
            appservice_id: text("appservice_id"),
            guest: truthy("is_guest"),
            admin: truthy("admin"),
            user_type: text("user_type"),
            displayname: text("displayname"),
            emails,
            avatar: text("avatar_url"),
            rooms,
            active: !truthy("deactivated"),
            locked: truthy("locked"),
            other_threepids: other,
        }))
    }

    /// Who has the third-party ID `address` of `medium` (`None`: nobody).
    pub fn threepid_owner(&self, medium: &str, address: &str) -> Result<Option<String>, HsError> {
        self.owner(&format!(
            "/_synapse/admin/v1/threepid/{}/users/{}",
            segment(medium),
            segment(address)
        ))
    }

    /// The `user_id` a lookup at `path` answers (`None`: a 404, nobody).
    fn owner(&self, path: &str) -> Result<Option<String>, HsError> {
        let (status, json) = self.call("GET", path, None)?;
        match status {
            200 => Ok(json
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(refusal(self.hs, path, status, json)),
        }
    }

    /// Who has the external ID `external_id` of `provider` (`None`: nobody).
    pub fn external_id_owner(
        &self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<String>, HsError> {
        self.owner(&format!(
            "/_synapse/admin/v1/auth_providers/{}/users/{}",
            segment(provider),
            segment(external_id)
        ))
    }

    /// One page of the server's local accounts, from `from` on, with
    /// deactivated ones and guests; the token of the next page.
    pub fn users_page(&self, from: &str, limit: usize) -> Result<Page, HsError> {
        let path = format!(
            "/_synapse/admin/v2/users?from={}&limit={limit}&guests=true&deactivated=true&locked=true&order_by=name",
            segment(from)
        );
        let page = self.ok("GET", &path, None)?;
        let users = page
            .get("users")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| {
                let flag = |k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
                Some(Listed {
                    user_id: u.get("name")?.as_str()?.to_string(),
                    guest: flag("is_guest"),
                    deactivated: flag("deactivated"),
                    locked: flag("locked"),
                })
            })
            .collect();
        let next = match page.get("next_token") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Page {
            users,
            next,
            total: page.get("total").and_then(Value::as_u64),
        })
    }

    /// A room's canonical alias, when it has one.
    pub fn canonical_alias(&self, room_id: &str) -> Result<Option<String>, HsError> {
        let path = format!("/_synapse/admin/v1/rooms/{}", segment(room_id));
        let (status, json) = self.call("GET", &path, None)?;
        match status {
            200 => Ok(json
                .get("canonical_alias")
                .and_then(Value::as_str)
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(refusal(self.hs, &path, status, json)),
        }
    }

    /// `PUT /_synapse/admin/v2/users/<id>` with the fields of `body`.
    pub fn modify(&self, user_id: &str, body: &Value) -> Result<(), HsError> {
        let path = format!("/_synapse/admin/v2/users/{}", segment(user_id));
        let (status, json) = self.call("PUT", &path, Some(body))?;
        match status {
            200 | 201 => Ok(()),
            _ => Err(refusal(self.hs, &path, status, json)),
        }
    }

    /// The room ID an alias names (`None`: it names none); an ID as it is.
    pub fn room_id(&self, room: &str) -> Result<Option<String>, HsError> {
        self.hs.resolve_alias(room, Some(self.token))
    }

    /// Joins `user_id` to `room` (an ID or an alias); the token's user must be
    /// in the room and allowed to invite.
    /// A member already is joined: a repeat whose first answer was lost
    /// ends here too.
    pub fn join(&self, user_id: &str, room: &str) -> Result<(), HsError> {
        let path = format!("/_synapse/admin/v1/join/{}", segment(room));
        let (status, json) = self.call("POST", &path, Some(&json!({ "user_id": user_id })))?;
        let already = status == 403
            && json
                .get("error")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains("already in the room"));
        if status == 200 || already {
            Ok(())
        } else {
            Err(refusal(self.hs, &path, status, json))
        }
    }

    /// Deactivates the account, erasing it when asked.
    pub fn deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError> {
        let path = format!("/_synapse/admin/v1/deactivate/{}", segment(user_id));
        self.ok("POST", &path, Some(&json!({ "erase": erase })))
            .map(|_| ())
    }

    /// The SHA-256 of a piece of this server's media, when the server knows it.
    pub fn media_sha256(&self, mxc: &str) -> Result<Option<String>, HsError> {
        let Some((server, id)) = mxc.strip_prefix("mxc://").and_then(|r| r.split_once('/')) else {
            return Ok(None);
        };
        let path = format!(
            "/_synapse/admin/v1/media/{}/{}",
            segment(server),
            segment(id)
        );
        let (status, json) = self.call("GET", &path, None)?;
        Ok(match status {
            200 => json
                .pointer("/media_info/sha256")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        })
    }

    /// Uploads `bytes` as the admin's media; its `mxc://` URI. Repeated only
    /// when it surely never arrived (a second copy would be harmless, but
    /// is not made without need).
    pub fn upload(&self, bytes: &[u8], content_type: &str, name: &str) -> Result<String, HsError> {
        let path = format!("/_matrix/media/v3/upload?filename={}", segment(name));
        let url = self.hs.url(&path);
        let json = self.hs.retried(
            "POST /_matrix/media/v3/upload",
            Repeat::IfUnsent,
            Some(self.token),
            || {
                self.hs.send(
                    &url,
                    self.hs
                        .client
                        .post(&url)
                        .bearer_auth(self.token.expose())
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(bytes.to_vec()),
                )
            },
        )?;
        json.get("content_uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| HsError::Body {
                url: self.hs.shown(&url),
                cause: "no content_uri".into(),
            })
    }
}

/// A refusal as an error naming the URL, the status and the server's words.
pub(super) fn refusal(hs: &Homeserver, path: &str, status: u16, json: Value) -> HsError {
    let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    HsError::Status {
        url: format!(
            "{}{}",
            hs.base_url(),
            path.split('?').next().unwrap_or(path)
        ),
        status,
        reason: reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or(""),
        errcode: field("errcode"),
        error: field("error"),
        json: json.is_object(),
        retry_after_ms: None,
        body: None,
    }
}
