//! Homeservers that delegate authentication to the Matrix Authentication
//! Service (MSC3861): accounts are MAS users, created, given their password
//! and admin flag, read, changed and deactivated through MAS's Admin API.
//! There is no shared secret, so no nonce or sign stage: the submit stage
//! creates the user and sets what registration sets.

use super::{Backend, Failure, Mode};
use crate::error::HsError;
use crate::homeserver::Homeserver;
use crate::homeserver::mas::{Credentials, Mas, User};
use crate::record::Stage;
use crate::secret::Secret;
use crate::state::{Account, Changes};
use serde_json::Value;
use std::sync::Arc;

const REGISTER: [Stage; 5] = [
    Stage::Config,
    Stage::Input,
    Stage::Validate,
    Stage::Submit,
    Stage::Post,
];
const DRY_RUN: [Stage; 3] = [Stage::Config, Stage::Input, Stage::Validate];
const PLAN: [Stage; 4] = [Stage::Config, Stage::Input, Stage::Validate, Stage::Read];
const ENSURE: [Stage; 7] = [
    Stage::Config,
    Stage::Input,
    Stage::Validate,
    Stage::Read,
    Stage::Submit,
    Stage::Apply,
    Stage::Post,
];

/// The stages a record runs through on a MAS-backed server.
pub fn stages(mode: Mode) -> &'static [Stage] {
    match mode {
        Mode::DryRun => &DRY_RUN,
        Mode::Plan => &PLAN,
        Mode::Ensure => &ENSURE,
        Mode::Register => &REGISTER,
    }
}

/// What the config stage found for MAS, shared by every record of a run.
#[derive(Debug)]
pub struct Setup {
    /// MAS's base URL (the Admin API, the token and login endpoints).
    pub url: String,
    pub creds: Credentials,
    /// zxcvbn's score a password must reach (`passwords.minimum_complexity`).
    pub minimum_complexity: u8,
}

/// The steps registration takes after creating the user, by name (what an
/// `incomplete` row's `undone.account` lists).
pub const SET_PASSWORD: &str = "password";
pub const SET_ADMIN: &str = "admin";

pub struct MasBackend {
    setup: Arc<Setup>,
    hs: Homeserver,
    erase: bool,
}

impl MasBackend {
    /// `hs`: a client for MAS's URL.
    pub fn new(setup: Arc<Setup>, hs: Homeserver, erase: bool) -> Self {
        MasBackend { setup, hs, erase }
    }

    pub fn mas(&self) -> Mas<'_> {
        Mas::new(self.hs.clone(), &self.setup.creds)
    }

    /// The MAS user of `user_id` (by its localpart).
    pub fn user(&self, user_id: &str) -> Result<Option<User>, HsError> {
        self.mas().user_by_username(localpart(user_id))
    }

    /// Sets what registration sets on a user that exists: the password,
    /// and the admin flag when asked; on failure, the step that failed and
    /// those left after it.
    pub fn finish(
        &self,
        id: &str,
        steps: &[&str],
        password: &Secret,
        admin: bool,
        skip_check: bool,
    ) -> Result<(), Box<(usize, HsError)>> {
        let mas = self.mas();
        for (i, step) in steps.iter().enumerate() {
            let r = match *step {
                SET_PASSWORD => mas.set_password(id, password, skip_check),
                SET_ADMIN if admin => mas.set_admin(id, true),
                _ => Ok(()),
            };
            r.map_err(|e| Box::new((i, e)))?;
        }
        Ok(())
    }
}

fn localpart(user_id: &str) -> &str {
    let s = user_id.strip_prefix('@').unwrap_or(user_id);
    s.split_once(':').map_or(s, |(l, _)| l)
}

impl Backend for MasBackend {
    fn stages(&self, mode: Mode) -> &'static [Stage] {
        stages(mode)
    }

    fn lookup(&self, user_id: &str) -> Result<Option<Account>, HsError> {
        Ok(self.user(user_id)?.map(|u| Account {
            user_id: user_id.to_string(),
            admin: u.admin,
            user_type: None,
            displayname: None,
            emails: Vec::new(),
            avatar: None,
            rooms: Vec::new(),
            active: !u.deactivated,
            locked: u.locked,
            other_threepids: Vec::new(),
        }))
    }

    fn room_id(&self, _room: &str) -> Result<Option<String>, HsError> {
        Err(HsError::Body {
            url: self.setup.url.clone(),
            cause: unsupported("rooms"),
        })
    }

    fn same_avatar(&self, _account: &Account, _path: &str) -> Result<bool, Failure> {
        Err(Failure::new("the avatar", unsupported("avatars")))
    }

    fn apply(&self, user_id: &str, changes: &Changes, created: bool) -> Result<(), Failure> {
        let user = self
            .user(user_id)
            .map_err(|e| Failure::new(format!("reading {user_id} in MAS"), e))?
            .ok_or_else(|| Failure::new(format!("reading {user_id} in MAS"), "no such user"))?;
        let mas = self.mas();
        for (field, c) in changes {
            match field.as_str() {
                "active" if c.to == Value::Bool(false) => {
                    // Nothing else is worth changing on an account that goes.
                    return mas
                        .deactivate(&user.id, self.erase)
                        .map_err(|e| Failure::new(format!("deactivating {user_id}"), e));
                }
                "active" => {
                    return Err(Failure::new(
                        format!("reactivating {user_id}"),
                        "not done by this tool: reactivate it with MAS's Admin API",
                    ));
                }
                "locked" => mas
                    .lock(&user.id, c.to == Value::Bool(true))
                    .map_err(|e| Failure::new(format!("locking {user_id}"), e))?,
                "admin" if created => {}
                "admin" => mas
                    .set_admin(&user.id, c.to == Value::Bool(true))
                    .map_err(|e| Failure::new(format!("setting {user_id}'s admin flag"), e))?,
                other => {
                    return Err(Failure::new(
                        format!("changing {user_id}'s {other}"),
                        unsupported(other),
                    ));
                }
            }
        }
        Ok(())
    }

    fn deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError> {
        match self.user(user_id)? {
            Some(u) if u.deactivated => Ok(()),
            Some(u) => self.mas().deactivate(&u.id, erase),
            None => Ok(()),
        }
    }
}

/// Why a field is not managed here.
pub fn unsupported(what: &str) -> String {
    format!(
        "{what}: not managed on MAS-backed servers by this tool, which manages the admin flag \
         and deactivation there"
    )
}
