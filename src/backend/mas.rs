//! Homeservers that delegate authentication to the Matrix Authentication
//! Service (MSC3861): accounts are MAS users, created, given their password
//! and admin flag, read, changed and deactivated through MAS's Admin API.
//! There is no shared secret, so no nonce or sign stage: the submit stage
//! creates the user and sets what registration sets.
//!
//! The fields that are Synapse's (display name, emails, avatar, rooms, user
//! type) go through Synapse's admin API as in [`super::synapse`], with a
//! token that has its admin scope: the operator's `--admin-token-file`, or
//! else a personal session MAS opens for the account itself, ended when the
//! backend is dropped.

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

/// A step of [`SET_PASSWORD`], [`SET_ADMIN`] left undone, in words.
pub fn step_left(step: &str) -> &str {
    match step {
        SET_PASSWORD => "its password (in MAS)",
        SET_ADMIN => "its admin flag (in MAS)",
        other => other,
    }
}

pub struct MasBackend {
    setup: Arc<Setup>,
    hs: Homeserver,
    /// Synapse, for the fields that are its own.
    synapse: Option<SynapseSide>,
    /// Reads the user's upstream links (its `external_ids`) with the rest.
    links: bool,
}

/// Synapse's admin API behind MAS.
pub struct SynapseSide {
    pub hs: Homeserver,
    pub shared: Arc<super::synapse::Shared>,
    /// The operator's admin token (`--admin-token-file`), if given.
    pub token: Option<Secret>,
    /// A personal session opened for this backend: its ID and token.
    opened: std::cell::RefCell<Option<(String, Secret)>>,
}

impl SynapseSide {
    pub fn new(hs: Homeserver, shared: Arc<super::synapse::Shared>, token: Option<Secret>) -> Self {
        SynapseSide {
            hs,
            shared,
            token,
            opened: std::cell::RefCell::new(None),
        }
    }
}

/// How long a personal session for Synapse's admin API lasts, at most.
const SESSION_SECS: u64 = 600;

impl MasBackend {
    /// `hs`: a client for MAS's URL.
    pub fn new(setup: Arc<Setup>, hs: Homeserver) -> Self {
        MasBackend {
            setup,
            hs,
            synapse: None,
            links: false,
        }
    }

    /// The same, reading the users' upstream links too (a request more per
    /// account, made only where `external_ids` are managed).
    pub fn with_links(mut self) -> Self {
        self.links = true;
        self
    }

    /// The same, managing Synapse's fields too.
    pub fn with_synapse(mut self, side: SynapseSide) -> Self {
        self.synapse = Some(side);
        self
    }

    /// Synapse's backend with an admin-scoped token: the operator's, or a
    /// personal session acting as `actor` (a MAS user ID), opened once.
    fn synapse(&self, actor: &str) -> Result<super::synapse::Synapse, Failure> {
        let side = self.synapse.as_ref().ok_or_else(|| {
            Failure::new("Synapse's fields", "no Synapse admin API for this backend")
        })?;
        let token = match &side.token {
            Some(t) => t.clone(),
            None => {
                let mut opened = side.opened.borrow_mut();
                match opened.as_ref() {
                    Some((_, t)) => t.clone(),
                    None => {
                        let (id, t) = self
                            .mas()
                            .personal_session(
                                actor,
                                crate::homeserver::mas::SYNAPSE_ADMIN_SCOPE,
                                SESSION_SECS,
                            )
                            .map_err(|e| {
                                Failure::new("opening a session for Synapse's admin API", e)
                            })?;
                        // An interrupted run revokes it too.
                        let (hs, setup, sid) = (self.hs.clone(), self.setup.clone(), id.clone());
                        crate::homeserver::sessions::opened_other(&t, move || {
                            Mas::new(hs.once(), &setup.creds)
                                .revoke_personal_session(&sid)
                                .is_ok()
                        });
                        *opened = Some((id, t.clone()));
                        t
                    }
                }
            }
        };
        Ok(super::synapse::Synapse::new(
            side.hs.clone(),
            token,
            side.shared.clone(),
        ))
    }

    /// The homeserver's name, as MAS's site config gives it.
    fn server_name(&self) -> Result<String, HsError> {
        let (name, _) = self.mas().site_config()?;
        name.ok_or_else(|| HsError::Body {
            url: self.setup.url.clone(),
            cause: "MAS's site config gives no server name".into(),
        })
    }

    pub fn mas(&self) -> Mas<'_> {
        Mas::new(self.hs.clone(), &self.setup.creds)
    }

    /// The MAS user of `user_id` (by its localpart).
    pub fn user(&self, user_id: &str) -> Result<Option<User>, HsError> {
        self.mas()
            .user_by_username(crate::state::localpart(user_id))
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

impl Backend for MasBackend {
    fn stages(&self, mode: Mode) -> &'static [Stage] {
        stages(mode)
    }

    fn lookup(&self, user_id: &str) -> Result<Option<Account>, HsError> {
        let Some(u) = self.user(user_id)? else {
            return Ok(None);
        };
        let mut account = Account {
            user_id: user_id.to_string(),
            admin: u.admin,
            user_type: None,
            displayname: None,
            emails: Vec::new(),
            avatar: None,
            rooms: Vec::new(),
            active: !u.deactivated,
            locked: u.locked,
            ..Account::default()
        };
        if self.links {
            let mut ids: Vec<String> = self
                .mas()
                .links(&format!(
                    "filter[user]={}",
                    crate::homeserver::admin::segment(&u.id)
                ))?
                .into_iter()
                .map(|l| format!("{}:{}", l.provider, l.subject))
                .collect();
            ids.sort();
            account.external_ids = ids;
        }
        if self.synapse.is_some() {
            let synapse = self.synapse(&u.id).map_err(|f| HsError::Body {
                url: self.setup.url.clone(),
                cause: f.to_string(),
            })?;
            // Synapse knows the account once MAS has provisioned it there.
            if let Some(s) = synapse.lookup(user_id)? {
                account.user_type = s.user_type;
                account.displayname = s.displayname;
                account.emails = s.emails;
                account.avatar = s.avatar;
                account.rooms = s.rooms;
                account.other_threepids = s.other_threepids;
            }
        }
        Ok(Some(account))
    }

    fn list(&self, from: Option<&str>) -> Result<crate::state::Page, HsError> {
        let (users, next, total) = self.mas().users_page(from, super::synapse::LIST_PAGE)?;
        let server = self.server_name()?;
        Ok(crate::state::Page {
            users: users
                .into_iter()
                .map(|u| crate::state::Listed {
                    user_id: format!("@{}:{server}", u.username),
                    guest: false,
                    deactivated: u.deactivated,
                    locked: u.locked,
                })
                .collect(),
            next,
            total,
        })
    }

    fn canonical_alias(&self, room_id: &str) -> Result<Option<String>, HsError> {
        let side = self.synapse.as_ref().ok_or_else(|| HsError::Body {
            url: self.setup.url.clone(),
            cause: "no Synapse admin API for this backend".into(),
        })?;
        match &side.token {
            Some(t) => {
                super::synapse::Synapse::new(side.hs.clone(), t.clone(), side.shared.clone())
                    .canonical_alias(room_id)
            }
            None => Ok(None),
        }
    }

    fn room_id(&self, room: &str) -> Result<Option<String>, HsError> {
        let side = self.synapse.as_ref().ok_or_else(|| HsError::Body {
            url: self.setup.url.clone(),
            cause: "no Synapse admin API for this backend".into(),
        })?;
        // Resolving an alias needs no token.
        side.hs.resolve_alias(room, None)
    }

    fn same_avatar(&self, account: &Account, path: &str) -> Result<bool, Failure> {
        let user = self
            .user(&account.user_id)
            .map_err(|e| Failure::new("reading the account in MAS", e))?
            .ok_or_else(|| Failure::new("reading the account in MAS", "no such user"))?;
        self.synapse(&user.id)?.same_avatar(account, path)
    }

    fn email_owner(&self, user_id: &str, address: &str) -> Result<Option<String>, Failure> {
        let user = self
            .user(user_id)
            .map_err(|e| Failure::new(format!("reading {user_id} in MAS"), e))?;
        let side = self.synapse.as_ref();
        match (user, side.and_then(|s| s.token.clone())) {
            (Some(u), _) => self.synapse(&u.id)?.email_owner(user_id, address),
            // Not created yet: the lookup is the operator's token's to make.
            (None, Some(token)) => match side {
                Some(s) => super::synapse::Synapse::new(s.hs.clone(), token, s.shared.clone())
                    .email_owner(user_id, address),
                None => Ok(None),
            },
            (None, None) => Ok(None),
        }
    }

    fn external_id_owner(&self, _user_id: &str, value: &str) -> Result<Option<String>, Failure> {
        let (provider, subject) = crate::state::split_external_id(value)
            .ok_or_else(|| Failure::new(format!("the external ID {value}"), "not provider:id"))?;
        let what = || format!("looking up who has the external ID {value} in MAS");
        let seg = crate::homeserver::admin::segment;
        let links = self
            .mas()
            .links(&format!(
                "filter[provider]={}&filter[subject]={}",
                seg(provider),
                seg(subject)
            ))
            .map_err(|e| Failure::new(what(), e))?;
        let Some(owner) = links.into_iter().find_map(|l| l.user) else {
            return Ok(None);
        };
        let user = self
            .mas()
            .user_by_id(&owner)
            .map_err(|e| Failure::new(what(), e))?;
        let server = _user_id.split_once(':').map_or("", |(_, s)| s);
        Ok(Some(match user {
            Some(u) => format!("@{}:{server}", u.username),
            None => format!("the MAS user {owner}"),
        }))
    }

    fn reactivate(&self, user_id: &str, _password: Option<&Secret>) -> Result<(), Failure> {
        let what = || format!("reactivating {user_id}");
        let user = self
            .user(user_id)
            .map_err(|e| Failure::new(what(), e))?
            .ok_or_else(|| Failure::new(what(), "MAS has no such user"))?;
        self.mas()
            .reactivate(&user.id)
            .map_err(|e| Failure::new(what(), e))
    }

    fn apply(&self, user_id: &str, changes: &Changes, created: bool) -> Result<(), Failure> {
        let user = self
            .user(user_id)
            .map_err(|e| Failure::new(format!("reading {user_id} in MAS"), e))?
            .ok_or_else(|| Failure::new(format!("reading {user_id} in MAS"), "no such user"))?;
        let mas = self.mas();
        // Synapse's fields, through its admin API (none of them is set when
        // a MAS user is created).
        let theirs: Changes = changes
            .iter()
            .filter(|(f, _)| SYNAPSE_FIELDS.contains(&f.as_str()))
            .map(|(f, c)| (f.clone(), c.clone()))
            .collect();
        let deactivating = changes
            .get("active")
            .is_some_and(|c| c.to == Value::Bool(false));
        if !theirs.is_empty() && !deactivating {
            let synapse = self.synapse(&user.id)?;
            if created {
                wait_until_provisioned(&synapse, user_id)?;
            }
            synapse.apply(user_id, &theirs, false)?;
        }
        for (field, c) in changes {
            match field.as_str() {
                f if SYNAPSE_FIELDS.contains(&f) => {}
                // Goes with the deactivation.
                "erase" => {}
                "active" if c.to == Value::Bool(false) => {
                    // Nothing else is worth changing on an account that goes.
                    return mas
                        .deactivate(&user.id, changes.contains_key("erase"))
                        .map_err(|e| Failure::new(format!("deactivating {user_id}"), e));
                }
                "active" => {
                    return Err(Failure::new(
                        format!("reactivating {user_id}"),
                        "an account is reactivated before its other fields change",
                    ));
                }
                "external_ids" => self.relink(&user.id, user_id, c)?,
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

impl MasBackend {
    /// Brings the user's upstream links to the change's `to`: the links
    /// it lacks added, the ones not named removed.
    fn relink(&self, id: &str, user_id: &str, c: &crate::state::Change) -> Result<(), Failure> {
        let mas = self.mas();
        let what = || format!("linking {user_id}'s external IDs in MAS");
        let have = mas
            .links(&format!(
                "filter[user]={}",
                crate::homeserver::admin::segment(id)
            ))
            .map_err(|e| Failure::new(what(), e))?;
        let want: Vec<&str> =
            c.to.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
        for value in &want {
            let Some((provider, subject)) = crate::state::split_external_id(value) else {
                continue;
            };
            if !have
                .iter()
                .any(|l| l.provider == provider && l.subject == subject)
            {
                mas.add_link(id, provider, subject)
                    .map_err(|e| Failure::new(what(), e))?;
            }
        }
        for l in &have {
            if !want.contains(&format!("{}:{}", l.provider, l.subject).as_str()) {
                mas.remove_link(&l.id)
                    .map_err(|e| Failure::new(what(), e))?;
            }
        }
        Ok(())
    }
}

/// The fields Synapse holds for an account behind MAS.
pub const SYNAPSE_FIELDS: [&str; 5] = ["user_type", "displayname", "emails", "avatar", "rooms"];

/// MAS provisions a new user in Synapse in the background: Synapse's
/// admin API knows it a moment after MAS does. Waits up to 30 s.
fn wait_until_provisioned(synapse: &super::synapse::Synapse, user_id: &str) -> Result<(), Failure> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        match synapse.lookup(user_id) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            Ok(None) => {
                return Err(Failure::new(
                    format!("changing {user_id} in Synapse"),
                    "MAS has not provisioned it in Synapse within 30 s",
                ));
            }
            Err(e) => return Err(Failure::new(format!("reading {user_id} in Synapse"), e)),
        }
    }
}

impl Drop for MasBackend {
    /// Ends the personal session opened for Synapse's admin API.
    fn drop(&mut self) {
        let opened = self
            .synapse
            .as_ref()
            .and_then(|s| s.opened.borrow_mut().take());
        if let Some((id, token)) = opened {
            // It ends by itself within SESSION_SECS if this is lost.
            if self.mas().revoke_personal_session(&id).is_ok() {
                crate::homeserver::sessions::closed(&token);
            }
        }
    }
}

/// Why a field is not managed here.
pub fn unsupported(what: &str) -> String {
    format!("{what}: not managed on MAS-backed servers by this tool")
}
