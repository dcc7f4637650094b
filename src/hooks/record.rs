//! The registration record as hooks see it: a Lua table with the record's
//! fields, and the rules for reading a hook's changes back.
//!
//! Hooks may change `username`, `password`, `displayname`, `admin`,
//! `user_type`, `server_url`, `extra`, `want_session` and
//! `password_generated`. The fields the stages fill in (`nonce`, `mac`,
//! `user_id`, `access_token`, `device_id`, `outcome`) are shown but
//! read-only: changing one is an error naming it.

use crate::pipeline::{Outcome, Record};
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
    Ok(t)
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
    if validated {
        let changed = [
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
