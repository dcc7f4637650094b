//! The `rnmu` module: everything a hook may ask of the tool.
//!
//! - `rnmu.log.error|warn|info|debug(msg)`: on standard error, at the levels
//!   -q and -v select; every secret the tool knows is masked in the text.
//! - `rnmu.password{length=24, alphabet=..., symbols=false}`: a password from
//!   the operating system's secure random source.
//! - `rnmu.env(name)`: an environment variable, or nil.
//! - `rnmu.json.encode(value)`, `rnmu.json.decode(text)`.
//! - `rnmu.http.request{url=, method=, headers=, body=, json=, timeout=}`:
//!   `{status=, body=, json=, headers=}`.
//! - `rnmu.matrix`: client-API calls on the record's homeserver with an access
//!   token: `request{method=, path=, token=, body=}`, `dm(token, user_id)`,
//!   `send_text(token, room_id, text)`, `join(token, room)`,
//!   `invite(token, room_id_or_alias, user_id)`, `whoami(token)`.
//! - `rnmu.config`: the config's `register_new_matrix_user` section.
//! - `rnmu.version`.

use super::HookOptions;
use crate::console::Level;
use crate::homeserver::{Homeserver, Transport};
use crate::pipeline::Record;
use crate::secret::{PASSWORD_ALPHABET, SYMBOLS, Secret, generate_password};
use mlua::{Lua, LuaSerdeExt, Table, Value};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Host {
    level: Level,
    transport: RefCell<Transport>,
    /// Secrets of the whole run (the shared secret).
    redactions: RefCell<Vec<Secret>>,
    /// Secrets of the record being handled (its password and token).
    record_secrets: RefCell<Vec<Secret>>,
    server_url: RefCell<Option<String>>,
    server: RefCell<Option<Homeserver>>,
    http: RefCell<Option<reqwest::blocking::Client>>,
}

impl Host {
    pub fn new(opts: &HookOptions) -> Self {
        Host {
            level: opts.level,
            transport: RefCell::new(Transport {
                timeout: opts.http_timeout,
                ..Transport::default()
            }),
            redactions: RefCell::default(),
            record_secrets: RefCell::default(),
            server_url: RefCell::default(),
            server: RefCell::default(),
            http: RefCell::default(),
        }
    }

    pub fn redact(&self, secret: &Secret) {
        if !secret.is_empty() {
            self.redactions.borrow_mut().push(secret.clone());
        }
    }

    pub fn set_record_secrets(&self, rec: &Record) {
        let mut s = self.record_secrets.borrow_mut();
        s.clear();
        s.extend(rec.password.iter().cloned());
        s.extend(rec.access_token.iter().cloned());
    }

    /// The TLS trust of the run, with the hooks' own timeout.
    pub fn set_transport(&self, t: &Transport) {
        let mut cur = self.transport.borrow_mut();
        *cur = Transport {
            timeout: cur.timeout,
            ..t.clone()
        };
        *self.server.borrow_mut() = None;
        *self.http.borrow_mut() = None;
    }

    pub fn set_server(&self, url: Option<&str>) {
        let mut cur = self.server_url.borrow_mut();
        if cur.as_deref() != url {
            *cur = url.map(str::to_string);
            *self.server.borrow_mut() = None;
        }
    }

    pub fn masked(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        for s in self
            .redactions
            .borrow()
            .iter()
            .chain(self.record_secrets.borrow().iter())
        {
            if !s.is_empty() {
                out = out.replace(s.expose(), "[redacted]");
            }
        }
        out
    }

    fn log(&self, at: Level, tag: &str, msg: &str) {
        if self.level >= at {
            let _ = writeln!(std::io::stderr().lock(), "hook {tag}: {}", self.masked(msg));
        }
    }

    fn homeserver(&self) -> mlua::Result<Homeserver> {
        if let Some(hs) = self.server.borrow().as_ref() {
            return Ok(hs.clone());
        }
        let url = self.server_url.borrow().clone().ok_or_else(|| {
            mlua::Error::runtime("no homeserver URL is known yet (before the config stage)")
        })?;
        let hs = Homeserver::new(&url, &self.transport.borrow())
            .map_err(|e| mlua::Error::runtime(e.to_string()))?;
        *self.server.borrow_mut() = Some(hs.clone());
        Ok(hs)
    }

    fn http_client(&self) -> mlua::Result<reqwest::blocking::Client> {
        if let Some(c) = self.http.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .transport
            .borrow()
            .builder()
            .build()
            .map_err(|e| mlua::Error::runtime(format!("cannot start an HTTP client: {e}")))?;
        *self.http.borrow_mut() = Some(c.clone());
        Ok(c)
    }
}

pub fn install(lua: &Lua, host: &Rc<Host>, opts: &HookOptions) -> mlua::Result<()> {
    let rnmu = lua.create_table()?;
    rnmu.set("version", env!("CARGO_PKG_VERSION"))?;
    rnmu.set("config", super::to_lua_value(lua, &opts.tool_config)?)?;

    let log = lua.create_table()?;
    for (name, level) in [
        ("error", Level::Quiet),
        ("warn", Level::Normal),
        ("info", Level::Verbose),
        ("debug", Level::Debug),
    ] {
        let h = host.clone();
        log.set(
            name,
            lua.create_function(move |_, msg: String| {
                h.log(level, name, &msg);
                Ok(())
            })?,
        )?;
    }
    rnmu.set("log", log)?;

    rnmu.set(
        "password",
        lua.create_function(|_, opts: Option<Table>| {
            let length: Option<usize> = opts
                .as_ref()
                .map(|t| t.get("length"))
                .transpose()?
                .flatten();
            let alphabet: Option<String> = opts
                .as_ref()
                .map(|t| t.get("alphabet"))
                .transpose()?
                .flatten();
            let symbols: Option<bool> = opts
                .as_ref()
                .map(|t| t.get("symbols"))
                .transpose()?
                .flatten();
            let alphabet = alphabet.unwrap_or_else(|| {
                let mut a = PASSWORD_ALPHABET.to_string();
                if symbols.unwrap_or(false) {
                    a.push_str(SYMBOLS);
                }
                a
            });
            generate_password(length.unwrap_or(24), &alphabet).map_err(mlua::Error::runtime)
        })?,
    )?;

    rnmu.set(
        "env",
        lua.create_function(|_, name: String| Ok(std::env::var(name).ok()))?,
    )?;

    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let j: serde_json::Value = lua.from_value(v)?;
            serde_json::to_string(&j).map_err(mlua::Error::runtime)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, s: String| {
            let j: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| mlua::Error::runtime(format!("rnmu.json.decode: {e}")))?;
            super::to_lua_value(lua, &j)
        })?,
    )?;
    rnmu.set("json", json)?;

    let http = lua.create_table()?;
    let h = host.clone();
    http.set(
        "request",
        lua.create_function(move |lua, req: Table| http_request(lua, &h, req))?,
    )?;
    rnmu.set("http", http)?;

    rnmu.set("matrix", matrix_module(lua, host)?)?;
    lua.globals().set("rnmu", rnmu)?;
    Ok(())
}

fn http_request(lua: &Lua, host: &Host, req: Table) -> mlua::Result<Table> {
    let url: String = req.get("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(mlua::Error::runtime(format!(
            "rnmu.http.request: {url:?} is not an http(s) URL"
        )));
    }
    let method: Option<String> = req.get("method")?;
    let method = reqwest::Method::from_bytes(
        method
            .as_deref()
            .unwrap_or("GET")
            .to_ascii_uppercase()
            .as_bytes(),
    )
    .map_err(|_| mlua::Error::runtime("rnmu.http.request: bad method"))?;
    let mut rb = host.http_client()?.request(method, &url);
    if let Some(headers) = req.get::<Option<Table>>("headers")? {
        for pair in headers.pairs::<String, String>() {
            let (k, v) = pair?;
            rb = rb.header(k, v);
        }
    }
    if let Some(secs) = req.get::<Option<f64>>("timeout")? {
        rb = rb.timeout(Duration::from_secs_f64(secs.clamp(0.001, 300.0)));
    }
    let json_body: Value = req.get("json")?;
    if !json_body.is_nil() {
        let j: serde_json::Value = lua.from_value(json_body)?;
        rb = rb.json(&j);
    } else if let Some(body) = req.get::<Option<mlua::String>>("body")? {
        rb = rb.body(body.as_bytes().to_vec());
    }
    let resp = rb.send().map_err(|e| {
        mlua::Error::runtime(format!(
            "rnmu.http.request {url}: {}",
            host.masked(&cause(&e))
        ))
    })?;
    let out = lua.create_table()?;
    out.set("status", resp.status().as_u16())?;
    let headers = lua.create_table()?;
    for (k, v) in resp.headers() {
        headers.set(k.as_str(), v.to_str().unwrap_or(""))?;
    }
    out.set("headers", headers)?;
    let text = resp
        .text()
        .map_err(|e| mlua::Error::runtime(format!("rnmu.http.request {url}: {}", cause(&e))))?;
    if let Ok(j) = serde_json::from_str::<serde_json::Value>(&text) {
        out.set("json", super::to_lua_value(lua, &j)?)?;
    }
    out.set("body", text)?;
    Ok(out)
}

fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A string field of a JSON answer.
fn str_field(j: &serde_json::Value, key: &str) -> Option<String> {
    j.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// Percent-encodes one URL path segment (room IDs and aliases contain `!#:`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn matrix_module(lua: &Lua, host: &Rc<Host>) -> mlua::Result<Table> {
    let m = lua.create_table()?;

    // A call that must succeed: the JSON body, or a Lua error naming the call.
    fn call(
        host: &Host,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> mlua::Result<serde_json::Value> {
        let hs = host.homeserver()?;
        let token = Secret::new(token);
        let body = (!body.is_null()).then_some(body);
        let (status, json) = hs
            .request(method, path, Some(&token), body.as_ref())
            .map_err(|e| mlua::Error::runtime(host.masked(&e.to_string())))?;
        if status != 200 {
            let code = json.get("errcode").and_then(|v| v.as_str()).unwrap_or("");
            let err = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
            return Err(mlua::Error::runtime(format!(
                "{method} {path} answered {status} {code} {err}"
            )));
        }
        Ok(json)
    }

    let h = host.clone();
    m.set(
        "request",
        lua.create_function(move |lua, req: Table| {
            let method: Option<String> = req.get("method")?;
            let path: String = req.get("path")?;
            let token: Option<String> = req.get("token")?;
            let body: Value = req.get("body")?;
            let body: Option<serde_json::Value> = if body.is_nil() {
                None
            } else {
                Some(lua.from_value(body)?)
            };
            let token = token.map(Secret::new);
            let (status, json) = h
                .homeserver()?
                .request(
                    method.as_deref().unwrap_or("GET"),
                    &path,
                    token.as_ref(),
                    body.as_ref(),
                )
                .map_err(|e| mlua::Error::runtime(h.masked(&e.to_string())))?;
            let out = lua.create_table()?;
            out.set("status", status)?;
            out.set("body", super::to_lua_value(lua, &json)?)?;
            Ok(out)
        })?,
    )?;

    let h = host.clone();
    m.set(
        "dm",
        lua.create_function(move |_, (token, user_id): (String, String)| {
            let body = serde_json::json!({"is_direct": true, "invite": [user_id], "preset": "trusted_private_chat"});
            let j = call(&h, "POST", "/_matrix/client/v3/createRoom", &token, body)?;
            str_field(&j, "room_id")
                .ok_or_else(|| mlua::Error::runtime("createRoom answered without a room_id"))
        })?,
    )?;

    static TXN: AtomicU64 = AtomicU64::new(0);
    let h = host.clone();
    m.set(
        "send_text",
        lua.create_function(move |_, (token, room_id, text): (String, String, String)| {
            let txn = format!(
                "rnmu-{}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                TXN.fetch_add(1, Ordering::Relaxed)
            );
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                segment(&room_id)
            );
            let j = call(
                &h,
                "PUT",
                &path,
                &token,
                serde_json::json!({"msgtype": "m.text", "body": text}),
            )?;
            Ok(str_field(&j, "event_id"))
        })?,
    )?;

    let h = host.clone();
    m.set(
        "join",
        lua.create_function(move |_, (token, room): (String, String)| {
            let j = call(
                &h,
                "POST",
                &format!("/_matrix/client/v3/join/{}", segment(&room)),
                &token,
                serde_json::json!({}),
            )?;
            Ok(str_field(&j, "room_id"))
        })?,
    )?;

    let h = host.clone();
    m.set(
        "invite",
        lua.create_function(move |_, (token, room, user_id): (String, String, String)| {
            let room_id = if room.starts_with('#') {
                let path = format!("/_matrix/client/v3/directory/room/{}", segment(&room));
                let j = call(&h, "GET", &path, &token, serde_json::Value::Null)?;
                str_field(&j, "room_id").ok_or_else(|| {
                    mlua::Error::runtime(format!("{room} did not resolve to a room ID"))
                })?
            } else {
                room
            };
            let path = format!("/_matrix/client/v3/rooms/{}/invite", segment(&room_id));
            call(
                &h,
                "POST",
                &path,
                &token,
                serde_json::json!({"user_id": user_id}),
            )?;
            Ok(room_id)
        })?,
    )?;

    let h = host.clone();
    m.set(
        "whoami",
        lua.create_function(move |_, token: String| {
            let hs = h.homeserver()?;
            let (status, j) = hs
                .request(
                    "GET",
                    "/_matrix/client/v3/account/whoami",
                    Some(&Secret::new(token)),
                    None,
                )
                .map_err(|e| mlua::Error::runtime(h.masked(&e.to_string())))?;
            if status != 200 {
                return Err(mlua::Error::runtime(format!("whoami answered {status}")));
            }
            Ok(str_field(&j, "user_id"))
        })?,
    )?;
    Ok(m)
}
