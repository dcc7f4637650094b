//! Synapse: accounts are created through the shared-secret endpoint (the
//! nonce, sign and submit stages), and read, changed and deactivated through
//! its admin API with an admin's token.

use super::{Backend, Failure, Mode};
use crate::error::HsError;
use crate::homeserver::Homeserver;
use crate::record::Stage;
use crate::secret::Secret;
use crate::state::{Account, Changes, rooms_to_join};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const REGISTER: [Stage; 7] = [
    Stage::Config,
    Stage::Input,
    Stage::Validate,
    Stage::Nonce,
    Stage::Sign,
    Stage::Submit,
    Stage::Post,
];
const DRY_RUN: [Stage; 5] = [
    Stage::Config,
    Stage::Input,
    Stage::Validate,
    Stage::Nonce,
    Stage::Sign,
];
const PLAN: [Stage; 4] = [Stage::Config, Stage::Input, Stage::Validate, Stage::Read];

/// What every record of a run shares: avatars uploaded (by SHA-256) and
/// aliases resolved, so a file given to many users is uploaded once.
#[derive(Debug, Default)]
pub struct Shared {
    uploads: Mutex<HashMap<String, String>>,
    aliases: Mutex<HashMap<String, Option<String>>>,
}

pub struct Synapse {
    hs: Homeserver,
    token: Secret,
    shared: Arc<Shared>,
    /// Deactivations also erase (`--erase`).
    erase: bool,
}

impl Synapse {
    pub fn new(hs: Homeserver, token: Secret, shared: Arc<Shared>, erase: bool) -> Self {
        Synapse {
            hs,
            token,
            shared,
            erase,
        }
    }

    /// The stages without an account to read (no admin token).
    pub fn stages_without_token(mode: Mode) -> &'static [Stage] {
        match mode {
            Mode::DryRun => &DRY_RUN,
            Mode::Plan => &PLAN,
            // Every stage: read and apply besides the creating ones.
            Mode::Ensure => &Stage::ALL,
            Mode::Register => &REGISTER,
        }
    }

    fn avatar_url(&self, given: &str) -> Result<String, Failure> {
        if given.starts_with("mxc://") {
            return Ok(given.to_string());
        }
        let bytes = read_image(given)?;
        let sha = sha256_hex(&bytes);
        let cached = lock(&self.shared.uploads).get(&sha).cloned();
        if let Some(mxc) = cached {
            return Ok(mxc);
        }
        let name = std::path::Path::new(given)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "avatar".into());
        let mxc = self
            .hs
            .admin(&self.token)
            .upload(&bytes, content_type(&bytes), &name)
            .map_err(|e| Failure::new(format!("uploading the avatar {given}"), e))?;
        lock(&self.shared.uploads).insert(sha, mxc.clone());
        Ok(mxc)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The largest avatar file read.
pub const AVATAR_MAX: u64 = 16 << 20;

fn read_image(path: &str) -> Result<Vec<u8>, Failure> {
    crate::files::read_regular(std::path::Path::new(path), AVATAR_MAX)
        .map_err(|e| Failure::new(format!("reading the avatar file {path}"), e))
}

/// The media type of an image, from its first bytes.
fn content_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF8") {
        "image/gif"
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Backend for Synapse {
    fn stages(&self, mode: Mode) -> &'static [Stage] {
        Synapse::stages_without_token(mode)
    }

    fn lookup(&self, user_id: &str) -> Result<Option<Account>, HsError> {
        self.hs.admin(&self.token).account(user_id)
    }

    fn room_id(&self, room: &str) -> Result<Option<String>, HsError> {
        if let Some(id) = lock(&self.shared.aliases).get(room) {
            return Ok(id.clone());
        }
        let id = self.hs.admin(&self.token).room_id(room)?;
        lock(&self.shared.aliases).insert(room.to_string(), id.clone());
        Ok(id)
    }

    fn same_avatar(&self, account: &Account, path: &str) -> Result<bool, Failure> {
        let Some(current) = &account.avatar else {
            return Ok(false);
        };
        let sha = sha256_hex(&read_image(path)?);
        let theirs = self
            .hs
            .admin(&self.token)
            .media_sha256(current)
            .map_err(|e| Failure::new("reading the current avatar", e))?;
        Ok(theirs.as_deref() == Some(sha.as_str()))
    }

    fn apply(&self, user_id: &str, changes: &Changes, created: bool) -> Result<(), Failure> {
        let admin = self.hs.admin(&self.token);
        if changes
            .get("active")
            .is_some_and(|c| c.to == Value::Bool(false))
        {
            // Nothing else is worth changing on an account that goes.
            return admin
                .deactivate(user_id, self.erase)
                .map_err(|e| Failure::new(format!("deactivating {user_id}"), e));
        }
        let mut body = serde_json::Map::new();
        for (field, c) in changes {
            if created && crate::state::SET_AT_REGISTRATION.contains(&field.as_str()) {
                continue;
            }
            match field.as_str() {
                "admin" | "user_type" | "displayname" | "locked" => {
                    body.insert(field.clone(), c.to.clone());
                }
                "emails" => {
                    let mut all: Vec<Value> =
                        c.to.as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| json!({"medium": "email", "address": a}))
                            .collect();
                    // The server replaces the whole list: other kinds stay.
                    if let Some(acc) = self.lookup(user_id).ok().flatten() {
                        all.extend(acc.other_threepids);
                    }
                    body.insert("threepids".into(), Value::Array(all));
                }
                "avatar" => {
                    let given = c.to.as_str().unwrap_or_default();
                    body.insert("avatar_url".into(), json!(self.avatar_url(given)?));
                }
                _ => {}
            }
        }
        if !body.is_empty() {
            admin
                .modify(user_id, &Value::Object(body))
                .map_err(|e| Failure::new(format!("changing {user_id}"), e))?;
        }
        if let Some(c) = changes.get("rooms") {
            for room in rooms_to_join(c) {
                admin
                    .join(user_id, &room)
                    .map_err(|e| Failure::new(format!("joining {user_id} to {room}"), e))?;
            }
        }
        if let Some(c) = changes.get("active") {
            if c.to == Value::Bool(true) {
                return Err(Failure::new(
                    format!("reactivating {user_id}"),
                    "not done by this tool: reactivate it with the admin API and a new password",
                ));
            }
        }
        Ok(())
    }

    fn deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError> {
        self.hs.admin(&self.token).deactivate(user_id, erase)
    }
}
