//! Synapse: accounts are created through the shared-secret endpoint (the
//! nonce, sign and submit stages), and read, changed and deactivated through
//! its admin API with an admin's token.

use super::{Backend, Failure, Mode};
use crate::error::HsError;
use crate::homeserver::Homeserver;
use crate::record::Stage;
use crate::secret::Secret;
use crate::state::{Account, Changes, added};
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
/// aliases resolved, so a file given to many users is uploaded once, even
/// by workers that reach it at the same moment (one uploads, the others
/// wait for its URI).
#[derive(Debug, Default)]
pub struct Shared {
    uploads: Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>,
    aliases: Mutex<HashMap<String, Option<String>>>,
    /// Rooms' canonical aliases, by room ID.
    canonical: Mutex<HashMap<String, Option<String>>>,
    /// The run's own secret files (device, inode), never read as avatars.
    pub secret_files: Vec<(u64, u64)>,
}

impl Shared {
    pub fn new(secret_files: Vec<(u64, u64)>) -> Self {
        Shared {
            secret_files,
            ..Shared::default()
        }
    }
}

/// How many accounts one page of the server's list holds.
pub const LIST_PAGE: usize = 250;

pub struct Synapse {
    hs: Homeserver,
    token: Secret,
    shared: Arc<Shared>,
}

impl Synapse {
    pub fn new(hs: Homeserver, token: Secret, shared: Arc<Shared>) -> Self {
        Synapse { hs, token, shared }
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

    fn read_image(&self, path: &str) -> Result<super::avatar::Image, Failure> {
        super::avatar::read(std::path::Path::new(path), &self.shared.secret_files)
            .map_err(|e| Failure::new("the avatar", e))
    }

    fn avatar_url(&self, given: &str) -> Result<String, Failure> {
        if given.starts_with("mxc://") {
            return Ok(given.to_string());
        }
        let image = self.read_image(given)?;
        let sha = sha256_hex(&image.bytes);
        let slot = lock(&self.shared.uploads).entry(sha).or_default().clone();
        // Held while uploading: a worker with the same file waits for the URI.
        let mut slot = lock(&slot);
        if let Some(mxc) = slot.as_ref() {
            return Ok(mxc.clone());
        }
        let name = std::path::Path::new(given)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "avatar".into());
        let mxc = self
            .hs
            .admin(&self.token)
            .upload(&image.bytes, image.content_type, &name)
            .map_err(|e| Failure::new(format!("uploading the avatar {given}"), e))?;
        *slot = Some(mxc.clone());
        Ok(mxc)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

    fn list(&self, from: Option<&str>) -> Result<crate::state::Page, HsError> {
        self.hs
            .admin(&self.token)
            .users_page(from.unwrap_or("0"), LIST_PAGE)
    }

    fn canonical_alias(&self, room_id: &str) -> Result<Option<String>, HsError> {
        if let Some(a) = lock(&self.shared.canonical).get(room_id) {
            return Ok(a.clone());
        }
        let alias = self.hs.admin(&self.token).canonical_alias(room_id)?;
        lock(&self.shared.canonical).insert(room_id.to_string(), alias.clone());
        Ok(alias)
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
        let sha = sha256_hex(&self.read_image(path)?.bytes);
        let theirs = self
            .hs
            .admin(&self.token)
            .media_sha256(current)
            .map_err(|e| Failure::new("reading the current avatar", e))?;
        Ok(theirs.as_deref() == Some(sha.as_str()))
    }

    fn email_owner(&self, _user_id: &str, address: &str) -> Result<Option<String>, Failure> {
        self.hs
            .admin(&self.token)
            .threepid_owner("email", address)
            .map_err(|e| Failure::new(format!("looking up who has {address}"), e))
    }

    fn external_id_owner(&self, _user_id: &str, value: &str) -> Result<Option<String>, Failure> {
        let (provider, id) = crate::state::split_external_id(value)
            .ok_or_else(|| Failure::new(format!("the external ID {value}"), "not provider:id"))?;
        self.hs
            .admin(&self.token)
            .external_id_owner(provider, id)
            .map_err(|e| Failure::new(format!("looking up who has the external ID {value}"), e))
    }

    fn reactivate(&self, user_id: &str, password: Option<&Secret>) -> Result<(), Failure> {
        let mut body = json!({"deactivated": false});
        if let Some(p) = password {
            body["password"] = json!(p.expose());
        }
        self.hs
            .admin(&self.token)
            .modify(user_id, &body)
            .map_err(|e| Failure::new(format!("reactivating {user_id}"), e))
    }

    fn apply(&self, user_id: &str, changes: &Changes, created: bool) -> Result<(), Failure> {
        let admin = self.hs.admin(&self.token);
        if changes
            .get("active")
            .is_some_and(|c| c.to == Value::Bool(false))
        {
            // Nothing else is worth changing on an account that goes.
            return admin
                .deactivate(user_id, changes.contains_key("erase"))
                .map_err(|e| Failure::new(format!("deactivating {user_id}"), e));
        }
        if changes
            .get("active")
            .is_some_and(|c| c.to == Value::Bool(true))
        {
            return Err(Failure::new(
                format!("reactivating {user_id}"),
                "an account is reactivated before its other fields change",
            ));
        }
        let mut body = serde_json::Map::new();
        for (field, c) in changes {
            if created && crate::state::SET_AT_REGISTRATION.contains(&field.as_str()) {
                continue;
            }
            match field.as_str() {
                // Synapse keeps an empty display name as none.
                "displayname" if c.to.is_null() => {
                    body.insert(field.clone(), json!(""));
                }
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
                    // The server replaces the whole list: the other kinds
                    // stay, as a read that succeeded just now says them.
                    let now = self
                        .lookup(user_id)
                        .map_err(|e| {
                            Failure::new(
                                format!(
                                    "reading {user_id}'s phone numbers before changing its emails"
                                ),
                                e,
                            )
                        })?
                        .ok_or_else(|| {
                            Failure::new(format!("reading {user_id}"), "it no longer exists")
                        })?;
                    all.extend(now.other_threepids);
                    body.insert("threepids".into(), Value::Array(all));
                }
                "external_ids" => {
                    let ids: Vec<Value> =
                        c.to.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| crate::state::split_external_id(v.as_str()?))
                            .map(|(p, id)| json!({"auth_provider": p, "external_id": id}))
                            .collect();
                    body.insert("external_ids".into(), Value::Array(ids));
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
            // Every room is tried; those that fail are named together.
            let failed: Vec<String> = added(c)
                .into_iter()
                .filter_map(|room| {
                    admin
                        .join(user_id, &room)
                        .err()
                        .map(|e| format!("{room} ({e})"))
                })
                .collect();
            if !failed.is_empty() {
                return Err(Failure::new(
                    format!("joining {user_id} to {} of its rooms", failed.len()),
                    failed.join("; "),
                ));
            }
        }
        Ok(())
    }

    fn deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError> {
        self.hs.admin(&self.token).deactivate(user_id, erase)
    }
}
