//! The registration record as hooks see it: a Lua table with the record's
//! fields, and the rules for reading a hook's changes back.
//!
//! Hooks may change `username`, `password`, `displayname`, `admin`,
//! `user_type`, `server_url`, `extra`, `want_session`,
//! `password_generated`, and `--ensure`'s `emails`, `rooms`, `avatar` and
//! `active` (all of these up to `before_validate`), and `changes` (after
//! the read stage: the changes the apply stage makes). The fields the stages
//! fill in (`nonce`, `mac`, `user_id`, `access_token`, `device_id`,
//! `outcome`, `exists`, `current`) are shown but read-only: changing one is
//! an error naming it.

use super::convert::{json_to_lua, lua_to_json};
use crate::record::{Outcome, Record};
use crate::secret::Secret;
use mlua::{Lua, Table, Value};

/// The read-only fields, as the table shows them.
const READ_ONLY: [&str; 6] = [
    "nonce",
    "mac",
    "user_id",
    "access_token",
    "device_id",
    "outcome",
];

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Registered => "registered",
        Outcome::Exists => "exists",
        Outcome::DryRun => "dry_run",
        Outcome::Updated => "updated",
        Outcome::Unchanged => "unchanged",
        Outcome::Planned => "plan",
        Outcome::Deactivated => "deactivated",
    }
}

/// Copies the fields a hook returned in a table of its own into the record
/// table it was given: returned fields are merged, the rest stays.
pub fn merge_returned(given: &Table, returned: &Table) -> mlua::Result<()> {
    for pair in returned.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        given.raw_set(k, v)?;
    }
    Ok(())
}

pub fn to_lua(lua: &Lua, rec: &Record) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 16)?;
    t.raw_set("username", rec.username.as_deref())?;
    t.raw_set("password", rec.password.as_ref().map(Secret::expose))?;
    t.raw_set("password_generated", rec.password_generated)?;
    t.raw_set("displayname", rec.displayname.as_deref())?;
    t.raw_set("admin", rec.admin)?;
    t.raw_set("user_type", rec.user_type.as_deref())?;
    t.raw_set("server_url", rec.server_url.as_deref())?;
    let extra = lua.create_table_with_capacity(0, rec.extra.len())?;
    for (k, v) in &rec.extra {
        extra.raw_set(k.as_str(), super::to_lua_value(lua, v)?)?;
    }
    t.raw_set("extra", extra)?;
    t.raw_set("want_session", rec.want_session)?;
    t.raw_set("nonce", rec.nonce.as_deref())?;
    t.raw_set("mac", rec.mac.as_deref())?;
    t.raw_set("user_id", rec.user_id.as_deref())?;
    t.raw_set(
        "access_token",
        rec.access_token.as_ref().map(Secret::expose),
    )?;
    t.raw_set("device_id", rec.device_id.as_deref())?;
    t.raw_set("outcome", rec.outcome.map(outcome_name))?;
    let list = |l: &Option<Vec<String>>| -> mlua::Result<Value> {
        match l {
            None => Ok(Value::Nil),
            Some(items) => Ok(Value::Table(
                lua.create_sequence_from(items.iter().map(String::as_str))?,
            )),
        }
    };
    t.raw_set("emails", list(&rec.emails)?)?;
    t.raw_set("rooms", list(&rec.rooms)?)?;
    t.raw_set("external_ids", list(&rec.external_ids)?)?;
    t.raw_set("pruned", rec.pruned)?;
    t.raw_set("avatar", rec.avatar.as_deref())?;
    t.raw_set("active", rec.active)?;
    t.raw_set("locked", rec.locked)?;
    t.raw_set("exists", rec.exists)?;
    if let Some(a) = &rec.account {
        let json = serde_json::to_value(a).map_err(mlua::Error::external)?;
        t.raw_set("current", json_to_lua(lua, &json)?)?;
    }
    if rec.exists.is_some() {
        let json = serde_json::to_value(&rec.changes).map_err(mlua::Error::external)?;
        let changes = match json_to_lua(lua, &json)? {
            // An empty map reads as an empty table either way.
            Value::Table(c) => c,
            _ => lua.create_table()?,
        };
        t.raw_set("changes", changes)?;
    }
    Ok(t)
}

/// A JSON value as a Lua table shows it: a null, an empty list and an empty
/// map are all no key at all.
fn as_lua_shows(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(m) if m.is_empty() => J::Null,
        J::Object(m) => J::Object(
            m.into_iter()
                .map(|(k, v)| (k, as_lua_shows(v)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        J::Array(a) if a.is_empty() => J::Null,
        J::Array(a) => J::Array(a.into_iter().map(as_lua_shows).collect()),
        other => other,
    }
}

/// The changes a hook left, read back: a table of field name to
/// `{from = ..., to = ...}`; a field it removed is vetoed.
fn changes(t: &Table) -> Result<crate::state::Changes, String> {
    let v = get(t, "changes")?;
    let json = match &v {
        Value::Nil => return Ok(crate::state::Changes::new()),
        Value::Table(_) => {
            lua_to_json(&v).map_err(|e| format!("record.changes cannot be read: {e}"))?
        }
        other => return Err(wrong("changes", "a table", other)),
    };
    let map = match json {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Map::new(),
        _ => return Err("record.changes must be a table of field names".into()),
    };
    let mut out = crate::state::Changes::new();
    for (field, c) in map {
        if !crate::state::FIELDS.contains(&field.as_str()) && field != "erase" {
            return Err(format!(
                "record.changes.{field}: not a field --ensure manages ({}, or erase)",
                crate::state::FIELDS.join(", ")
            ));
        }
        let change: crate::state::Change = serde_json::from_value(c).map_err(|_| {
            format!("record.changes.{field} must be a table {{from = ..., to = ...}}")
        })?;
        out.insert(field, change);
    }
    Ok(out)
}

/// A list field (`emails`, `rooms`): nil or a sequence of strings.
fn list(t: &Table, key: &str) -> Result<Option<Vec<String>>, String> {
    match get(t, key)? {
        Value::Nil => Ok(None),
        v @ Value::Table(_) => match lua_to_json(&v) {
            Ok(serde_json::Value::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(format!("record.{key} must list strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Ok(serde_json::Value::Object(m)) if m.is_empty() => Ok(Some(Vec::new())),
            _ => Err(format!("record.{key} must be a list of strings")),
        },
        other => Err(wrong(key, "a list of strings or nil", &other)),
    }
}

/// The read-only field the hook changed, if it changed one.
fn changed_read_only(t: &Table, rec: &Record) -> Result<Option<&'static str>, String> {
    for key in READ_ONLY {
        let now = string(t, key)?;
        let was = match key {
            "nonce" => rec.nonce.clone(),
            "mac" => rec.mac.clone(),
            "user_id" => rec.user_id.clone(),
            "access_token" => rec.access_token.as_ref().map(|s| s.expose().to_string()),
            "device_id" => rec.device_id.clone(),
            _ => rec.outcome.map(|o| outcome_name(o).to_string()),
        };
        if now != was {
            return Ok(Some(key));
        }
    }
    let exists = match get(t, "exists")? {
        Value::Boolean(b) => Some(b),
        _ => None,
    };
    if exists != rec.exists {
        return Ok(Some("exists"));
    }
    let current = match get(t, "current")? {
        Value::Nil => None,
        v => Some(as_lua_shows(
            lua_to_json(&v).map_err(|e| format!("record.current: {e}"))?,
        )),
    };
    let was = rec
        .account
        .as_ref()
        .and_then(|a| serde_json::to_value(a).ok())
        .map(as_lua_shows);
    if current != was {
        return Ok(Some("current"));
    }
    Ok(None)
}

/// Reads the writable fields back; a field of the wrong type is an error.
///
/// With `validated`, the hook runs after the validate stage, and the fields
/// that stage judged must come back unchanged: no hook can slip a value past
/// validation.
pub fn from_lua(t: &Table, rec: &mut Record, validated: bool) -> Result<(), String> {
    if let Some(field) = changed_read_only(t, rec)? {
        return Err(format!(
            "changed record.{field}, which the stages fill in and hooks may only read"
        ));
    }
    let username = string(t, "username")?;
    let password = string(t, "password")?.map(Secret::new);
    let displayname = string(t, "displayname")?;
    let user_type = string(t, "user_type")?;
    let server_url = string(t, "server_url")?;
    let admin = match get(t, "admin")? {
        Value::Nil => None,
        Value::Boolean(b) => Some(b),
        other => return Err(wrong("admin", "a boolean or nil", &other)),
    };
    let emails = list(t, "emails")?;
    let rooms = list(t, "rooms")?;
    let external_ids = list(t, "external_ids")?;
    let avatar = string(t, "avatar")?;
    let active = match get(t, "active")? {
        Value::Nil => None,
        Value::Boolean(b) => Some(b),
        other => return Err(wrong("active", "a boolean or nil", &other)),
    };
    let locked = match get(t, "locked")? {
        Value::Nil => None,
        Value::Boolean(b) => Some(b),
        other => return Err(wrong("locked", "a boolean or nil", &other)),
    };
    if validated {
        let changed = [
            ("emails", emails != rec.emails),
            ("rooms", rooms != rec.rooms),
            ("external_ids", external_ids != rec.external_ids),
            ("avatar", avatar != rec.avatar),
            ("active", active != rec.active),
            ("locked", locked != rec.locked),
            ("username", username != rec.username),
            ("password", password != rec.password),
            ("displayname", displayname != rec.displayname),
            ("user_type", user_type != rec.user_type),
            ("server_url", server_url != rec.server_url),
            ("admin", admin != rec.admin),
        ];
        if let Some((field, _)) = changed.iter().find(|(_, c)| *c) {
            return Err(format!(
                "changed record.{field} after the validate stage; set it in a hook up to before_validate"
            ));
        }
    }
    if rec.exists.is_some() {
        rec.changes = changes(t)?;
    }
    rec.emails = emails;
    rec.rooms = rooms;
    rec.external_ids = external_ids;
    rec.avatar = avatar;
    rec.active = active;
    rec.locked = locked;
    rec.username = username;
    rec.password = password;
    rec.displayname = displayname;
    rec.user_type = user_type;
    rec.server_url = server_url;
    rec.admin = admin;
    rec.want_session = flag(t, "want_session")?;
    rec.password_generated = flag(t, "password_generated")?;
    rec.extra = match get(t, "extra")? {
        Value::Nil => serde_json::Map::new(),
        v @ Value::Table(_) => match super::convert::lua_to_json(&v) {
            Ok(serde_json::Value::Object(m)) => m,
            // An empty Lua table reads as an empty list.
            Ok(serde_json::Value::Array(a)) if a.is_empty() => serde_json::Map::new(),
            Ok(_) => return Err("record.extra must be a table with string keys".into()),
            Err(e) => return Err(format!("record.extra cannot be read: {e}")),
        },
        other => return Err(wrong("extra", "a table", &other)),
    };
    Ok(())
}

fn get(t: &Table, key: &str) -> Result<Value, String> {
    t.raw_get(key).map_err(|e| format!("record.{key}: {e}"))
}

fn string(t: &Table, key: &str) -> Result<Option<String>, String> {
    match get(t, key)? {
        Value::Nil => Ok(None),
        Value::String(s) => s
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| format!("record.{key} is not valid UTF-8")),
        other => Err(wrong(key, "a string or nil", &other)),
    }
}

fn flag(t: &Table, key: &str) -> Result<bool, String> {
    match get(t, key)? {
        Value::Nil => Ok(false),
        Value::Boolean(b) => Ok(b),
        other => Err(wrong(key, "a boolean", &other)),
    }
}

fn wrong(key: &str, want: &str, got: &Value) -> String {
    format!(
        "set record.{key} to a {}; it must be {want}",
        got.type_name()
    )
}
