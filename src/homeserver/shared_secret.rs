//! The shared-secret register endpoint (`/_synapse/admin/v1/register`):
//! a nonce, and the signed registration.

use super::Homeserver;
use crate::error::HsError;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const REGISTER_PATH: &str = "/_synapse/admin/v1/register";

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

impl Homeserver {
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
        let done: Registered = serde_json::from_value(body).map_err(|e| HsError::Body {
            url: self.shown(&url),
            cause: e.to_string(),
        })?;
        if let Some(t) = &done.access_token {
            super::sessions::opened(self, t, true);
        }
        Ok(done)
    }
}
