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
use super::convert::{json_to_lua, lua_to_json};
use crate::console::Level;
use crate::error::HsError;
use crate::homeserver::{Homeserver, Transport, read_body, transport_error};
use crate::record::Record;
use crate::retry::Repeat;
use crate::secret::{PASSWORD_ALPHABET, SYMBOLS, Secret};
use mlua::{Lua, Table, Value};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most JSON text a hook's decoding takes (`rnmu.json.decode`, and the
/// `json` of an answer): the decoded value is built outside the Lua state's
/// memory cap.
pub const MAX_JSON: usize = 4 << 20;

pub struct Host {
    /// The hook's deadline, which waiting on the network does not use up.
    limits: Rc<super::sandbox::Limits>,
    level: Level,
    transport: RefCell<Transport>,
    /// Secrets of the whole run (the shared secret).
    redactions: RefCell<Vec<Secret>>,
    /// Secrets of the record being handled (its password and token).
    record_secrets: RefCell<Vec<Secret>>,
    /// The record table of the hook call running now: what a hook has just
    /// set in it is masked too.
    live: RefCell<Option<Table>>,
    /// The passwords `rnmu.password` handed out lately.
    generated: RefCell<std::collections::VecDeque<Secret>>,
    server_url: RefCell<Option<String>>,
    server: RefCell<Option<Homeserver>>,
    http: RefCell<Option<reqwest::blocking::Client>>,
    /// Who each token belongs to, asked once per token.
    whoami: RefCell<Vec<(Secret, String)>>,
    /// No retry of a hook's request waits past this (the row's deadline).
    deadline: std::cell::Cell<Option<std::time::Instant>>,
    /// The server's password rules: `rnmu.password` satisfies them.
    policy: RefCell<crate::policy::PasswordPolicy>,
    /// A server admin's token, for `rnmu.matrix.request{admin = true}`:
    /// never handed to Lua.
    admin_token: RefCell<Option<Secret>>,
}

impl Host {
    pub fn new(opts: &HookOptions, limits: Rc<super::sandbox::Limits>) -> Self {
        Host {
            limits,
            level: opts.level,
            transport: RefCell::new(Transport {
                timeout: opts.http_timeout,
                ..Transport::default()
            }),
            redactions: RefCell::default(),
            record_secrets: RefCell::default(),
            live: RefCell::default(),
            generated: RefCell::default(),
            server_url: RefCell::default(),
            server: RefCell::default(),
            http: RefCell::default(),
            whoami: RefCell::default(),
            deadline: std::cell::Cell::default(),
            policy: RefCell::default(),
            admin_token: RefCell::default(),
        }
    }

    /// The admin token requests with `admin = true` carry; masked in logs.
    pub fn set_admin_token(&self, token: Option<&Secret>) {
        if let Some(t) = token {
            self.redact(t);
        }
        *self.admin_token.borrow_mut() = token.cloned();
    }

    pub fn set_password_policy(&self, policy: &crate::policy::PasswordPolicy) {
        *self.policy.borrow_mut() = policy.clone();
    }

    fn policy(&self) -> crate::retry::Policy {
        self.transport.borrow().policy.clone()
    }

    pub fn set_deadline(&self, deadline: Option<std::time::Instant>) {
        self.deadline.set(deadline);
    }

    /// The user ID `token` belongs to, asked of the server once per token.
    fn whoami(&self, token: &Secret) -> mlua::Result<String> {
        if let Some((_, id)) = self.whoami.borrow().iter().find(|(t, _)| t == token) {
            return Ok(id.clone());
        }
        let path = "/_matrix/client/v3/account/whoami";
        let id = str_field(&get_ok(self, path, token)?, "user_id").ok_or_else(|| {
            mlua::Error::runtime(format!("GET {path} answered without a user_id"))
        })?;
        self.whoami.borrow_mut().push((token.clone(), id.clone()));
        Ok(id)
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

    /// The record table of the hook call about to run (None after it).
    pub fn set_live(&self, t: Option<Table>) {
        *self.live.borrow_mut() = t;
    }

    fn remember_generated(&self, pw: &Secret) {
        let mut g = self.generated.borrow_mut();
        if g.len() >= 64 {
            g.pop_front();
        }
        g.push_back(pw.clone());
    }

    /// `msg` with every secret the tool knows replaced by `[redacted]`: the
    /// shared secret, the record's password and token as they were and as
    /// the running hook has just set them, and generated passwords.
    pub fn masked(&self, msg: &str) -> String {
        let mut live: Vec<Secret> = Vec::new();
        if let Some(t) = self.live.borrow().as_ref() {
            for key in ["password", "access_token"] {
                if let Ok(mlua::Value::String(v)) = t.raw_get::<mlua::Value>(key) {
                    live.push(Secret::new(v.to_string_lossy()));
                }
            }
        }
        let mut out = msg.to_string();
        let redactions = self.redactions.borrow();
        let record = self.record_secrets.borrow();
        let generated = self.generated.borrow();
        let mut all: Vec<&Secret> = redactions
            .iter()
            .chain(record.iter())
            .chain(live.iter())
            .chain(generated.iter())
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        for s in all {
            out = mask(&out, s.expose());
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
            return Ok(hs.clone().until(self.deadline.get()));
        }
        let url = self.server_url.borrow().clone().ok_or_else(|| {
            mlua::Error::runtime("no homeserver URL is known yet (before the config stage)")
        })?;
        let hs = Homeserver::new(&url, &self.transport.borrow())
            .map_err(|e| mlua::Error::runtime(e.to_string()))?;
        *self.server.borrow_mut() = Some(hs.clone());
        Ok(hs.until(self.deadline.get()))
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

    let h = host.clone();
    rnmu.set(
        "password",
        lua.create_function(move |_, opts: Option<Table>| {
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
            let pw = h
                .policy
                .borrow()
                .generate(length.unwrap_or(24), &alphabet)
                .map_err(mlua::Error::runtime)?;
            h.remember_generated(&Secret::new(pw.clone()));
            Ok(pw)
        })?,
    )?;

    rnmu.set(
        "env",
        lua.create_function(|_, name: String| Ok(std::env::var(name).ok()))?,
    )?;

    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|_, v: Value| {
            let j = lua_to_json(&v)
                .map_err(|e| mlua::Error::runtime(format!("rnmu.json.encode: {e}")))?;
            serde_json::to_string(&j).map_err(mlua::Error::runtime)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, s: String| {
            if s.len() > MAX_JSON {
                return Err(mlua::Error::runtime(format!(
                    "rnmu.json.decode: the text is {} bytes; it takes at most {} MiB",
                    s.len(),
                    MAX_JSON >> 20
                )));
            }
            let j: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| mlua::Error::runtime(format!("rnmu.json.decode: {e}")))?;
            json_to_lua(lua, &j)
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

    // `print` goes where `rnmu.log` goes, masked: never to standard output,
    // which may carry --json results.
    let h = host.clone();
    let tostring: mlua::Function = lua.globals().get("tostring")?;
    lua.globals().set(
        "print",
        lua.create_function(move |_, args: mlua::Variadic<Value>| {
            let mut parts = Vec::with_capacity(args.len());
            for v in args {
                parts.push(tostring.call::<String>(v)?);
            }
            h.log(Level::Normal, "print", &parts.join("\t"));
            Ok(())
        })?,
    )?;
    Ok(())
}

/// What an http(s) server answered a hook.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

fn http_request(lua: &Lua, host: &Host, req: Table) -> mlua::Result<Table> {
    let url: String = req.get("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(mlua::Error::runtime(format!(
            "rnmu.http.request: {url:?} is not an http(s) URL"
        )));
    }
    let method: Option<String> = req.get("method")?;
    let method_name = method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method_name.as_bytes())
        .map_err(|_| mlua::Error::runtime("rnmu.http.request: bad method"))?;
    let mut headers = Vec::new();
    if let Some(t) = req.get::<Option<Table>>("headers")? {
        for pair in t.pairs::<String, String>() {
            headers.push(pair?);
        }
    }
    let timeout = match req.get::<Option<f64>>("timeout")? {
        Some(secs) => Duration::from_secs_f64(secs.clamp(0.001, 300.0)),
        None => host.transport.borrow().timeout,
    };
    let json_body: Value = req.get("json")?;
    let (body, is_json) = if !json_body.is_nil() {
        let j = lua_to_json(&json_body)
            .map_err(|e| mlua::Error::runtime(format!("rnmu.http.request: json: {e}")))?;
        (
            Some(serde_json::to_vec(&j).map_err(mlua::Error::runtime)?),
            true,
        )
    } else if let Some(b) = req.get::<Option<mlua::String>>("body")? {
        (Some(b.as_bytes().to_vec()), false)
    } else {
        (None, false)
    };
    let repeat = match req.get::<Option<bool>>("repeat")? {
        Some(true) => Repeat::Safe,
        Some(false) => Repeat::IfUnsent,
        None => repeat_for(&method_name),
    };
    let client = host.http_client()?;
    let attempt = || -> Result<Answer, HsError> {
        let mut rb = client.request(method.clone(), &url).timeout(timeout);
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        if is_json {
            rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        if let Some(b) = &body {
            rb = rb.body(b.clone());
        }
        let resp = rb.send().map_err(|e| transport_error(&url, &e, timeout))?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let retry_after = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let text = read_body(resp, &url, timeout)?;
        if status == 429 || status >= 500 {
            // Handed to the retry policy; given back to the hook if it gives up.
            let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            return Err(HsError::Status {
                url: url.clone(),
                status,
                reason: "",
                errcode: None,
                error: None,
                json: json.is_some(),
                retry_after_ms: json
                    .as_ref()
                    .and_then(|j| j.get("retry_after_ms"))
                    .and_then(serde_json::Value::as_u64)
                    .or(retry_after),
                body: Some(Box::new(serde_json::Value::String(text))),
            });
        }
        Ok(Answer {
            status,
            headers,
            text,
        })
    };
    let what = format!("{method_name} {url}");
    let deadline = host.deadline.get();
    let policy = host.policy();
    let answer = match host
        .limits
        .off_the_clock(|| policy.run(&what, repeat, deadline, &|| None, attempt))
    {
        Ok(a) => a,
        Err(HsError::Status {
            status, body: b, ..
        }) => Answer {
            status,
            headers: Vec::new(),
            text: b
                .and_then(|b| b.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        Err(e) => {
            return Err(mlua::Error::runtime(format!(
                "rnmu.http.request: {}",
                host.masked(&e.to_string())
            )));
        }
    };
    let out = lua.create_table()?;
    out.set("status", answer.status)?;
    let headers = lua.create_table()?;
    for (k, v) in answer.headers {
        headers.set(k, v)?;
    }
    out.set("headers", headers)?;
    if answer.text.len() <= MAX_JSON {
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(&answer.text) {
            out.set("json", json_to_lua(lua, &j)?)?;
        }
    }
    out.set("body", answer.text)?;
    Ok(out)
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

/// Whether a request with this method may be sent twice.
fn repeat_for(method: &str) -> Repeat {
    match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" => Repeat::Safe,
        _ => Repeat::IfUnsent,
    }
}

/// A client-API call that must succeed: the JSON body, or a Lua error
/// naming the call.
fn call(
    host: &Host,
    method: &str,
    path: &str,
    token: &Secret,
    body: serde_json::Value,
    repeat: Repeat,
) -> mlua::Result<serde_json::Value> {
    match call_status(host, method, path, token, body, repeat)? {
        (200, json) => Ok(json),
        (status, json) => Err(answered(method, path, status, &json)),
    }
}

fn call_status(
    host: &Host,
    method: &str,
    path: &str,
    token: &Secret,
    body: serde_json::Value,
    repeat: Repeat,
) -> mlua::Result<(u16, serde_json::Value)> {
    let hs = host.homeserver()?;
    let body = (!body.is_null()).then_some(body);
    host.limits
        .off_the_clock(|| hs.request(method, path, Some(token), body.as_ref(), repeat))
        .map_err(|e| mlua::Error::runtime(host.masked(&e.to_string())))
}

/// A GET, which may always be sent again: the status and the body.
fn get(host: &Host, path: &str, token: &Secret) -> mlua::Result<(u16, serde_json::Value)> {
    call_status(
        host,
        "GET",
        path,
        token,
        serde_json::Value::Null,
        Repeat::Safe,
    )
}

/// A GET that must answer 200: its body.
fn get_ok(host: &Host, path: &str, token: &Secret) -> mlua::Result<serde_json::Value> {
    call(
        host,
        "GET",
        path,
        token,
        serde_json::Value::Null,
        Repeat::Safe,
    )
}

fn answered(method: &str, path: &str, status: u16, json: &serde_json::Value) -> mlua::Error {
    let code = json.get("errcode").and_then(|v| v.as_str()).unwrap_or("");
    let err = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
    mlua::Error::runtime(format!("{method} {path} answered {status} {code} {err}"))
}

/// The local part of the alias that marks the direct chat `bot` opened with
/// `user`: claimed atomically when the room is created, so a second
/// createRoom for the same pair (a retry after a lost answer, a rerun) finds
/// the first room instead of making another.
fn dm_alias(bot: &str, user: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::new()
        .chain_update(bot.as_bytes())
        .chain_update([0u8])
        .chain_update(user.as_bytes())
        .finalize();
    format!("_rnmu_dm_{}", &hex::encode(digest)[..20])
}

/// How many aliases a direct chat tries, when others hold the first ones.
const DM_ALIASES: usize = 5;

/// A direct chat with `user_id` as the token's owner: the one opened
/// before, or a new one. The room ID, and whether it existed already.
///
/// A chat found by its alias is taken only if the owner created it and is in
/// it: anyone can compute the alias and claim it first, and such a room is
/// passed over (with a warning) for the next alias of the pair.
fn dm(host: &Host, token: &Secret, user_id: &str) -> mlua::Result<(String, bool)> {
    let me = host.whoami(token)?;
    let server = me.split_once(':').map_or("", |(_, s)| s);
    let first = dm_alias(&me, user_id);
    for n in 0..DM_ALIASES {
        let alias_local = if n == 0 {
            first.clone()
        } else {
            format!("{first}_{n}")
        };
        let body = serde_json::json!({
            "is_direct": true,
            "invite": [user_id],
            "preset": "trusted_private_chat",
            "room_alias_name": alias_local,
        });
        let create = "/_matrix/client/v3/createRoom";
        // Safe to repeat: a second try for the same pair is refused with
        // M_ROOM_IN_USE, and the room is then found by its alias.
        let (status, j) = call_status(host, "POST", create, token, body, Repeat::Safe)?;
        if status == 200 {
            let room = str_field(&j, "room_id")
                .ok_or_else(|| mlua::Error::runtime("createRoom answered without a room_id"))?;
            unname(host, token, &room)?;
            return Ok((room, false));
        }
        if str_field(&j, "errcode").as_deref() != Some("M_ROOM_IN_USE") {
            return Err(answered("POST", create, status, &j));
        }
        let alias = format!("#{alias_local}:{server}");
        let path = format!("/_matrix/client/v3/directory/room/{}", segment(&alias));
        let j = get_ok(host, &path, token)?;
        let room = str_field(&j, "room_id")
            .ok_or_else(|| mlua::Error::runtime(format!("{alias} did not resolve to a room ID")))?;
        if own_room(host, token, &me, &room)? {
            return Ok((room, true));
        }
        host.log(
            Level::Normal,
            "warn",
            &format!(
                "the direct chat's alias {alias} was claimed by a room {me} did not create or is \
                 not in (squatted): passed over for the next alias"
            ),
        );
    }
    Err(mlua::Error::runtime(format!(
        "the first {DM_ALIASES} aliases of the direct chat between {me} and {user_id} are all \
         held by rooms {me} did not create"
    )))
}

/// Takes the alias off the room's name: createRoom makes the claimed alias
/// the room's canonical alias, which clients would show as the chat's name
/// (`#_rnmu_dm_...`). Without it a client names the chat after the other
/// person, as a direct chat reads; the alias stays in the directory, where
/// the chat is found again.
fn unname(host: &Host, token: &Secret, room: &str) -> mlua::Result<()> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.canonical_alias/",
        segment(room)
    );
    // Setting the same state twice is setting it once.
    let (status, j) = call_status(
        host,
        "PUT",
        &path,
        token,
        serde_json::json!({}),
        Repeat::Safe,
    )?;
    if status != 200 {
        return Err(answered("PUT", &path, status, &j));
    }
    Ok(())
}

/// Whether `me` created `room` and is joined to it.
fn own_room(host: &Host, token: &Secret, me: &str, room: &str) -> mlua::Result<bool> {
    let member = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        segment(room),
        segment(me)
    );
    match get(host, &member, token)? {
        (200, j) if str_field(&j, "membership").as_deref() == Some("join") => {}
        _ => return Ok(false),
    }
    let create = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.create/?format=event",
        segment(room)
    );
    Ok(match get(host, &create, token)? {
        (200, j) => str_field(&j, "sender").as_deref() == Some(me),
        _ => false,
    })
}

/// The ID of an `m.text` from `me` with exactly `text` among the room's
/// last 50 events, if there is one.
fn sent_before(
    host: &Host,
    token: &Secret,
    me: &str,
    room_id: &str,
    text: &str,
) -> mlua::Result<Option<String>> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        segment(room_id)
    );
    let j = get_ok(host, &path, token)?;
    let events = j.get("chunk").and_then(|c| c.as_array());
    Ok(events.into_iter().flatten().find_map(|ev| {
        let mine = ev.get("sender").and_then(|v| v.as_str()) == Some(me)
            && ev.get("type").and_then(|v| v.as_str()) == Some("m.room.message")
            && ev.pointer("/content/body").and_then(|v| v.as_str()) == Some(text);
        mine.then(|| str_field(ev, "event_id")).flatten()
    }))
}

fn matrix_module(lua: &Lua, host: &Rc<Host>) -> mlua::Result<Table> {
    let m = lua.create_table()?;

    let h = host.clone();
    m.set(
        "request",
        lua.create_function(move |lua, req: Table| {
            let method: Option<String> = req.get("method")?;
            let method = method.unwrap_or_else(|| "GET".into());
            let path: String = req.get("path")?;
            let token: Option<String> = req.get("token")?;
            let body: Value = req.get("body")?;
            let body: Option<serde_json::Value> =
                if body.is_nil() {
                    None
                } else {
                    Some(lua_to_json(&body).map_err(|e| {
                        mlua::Error::runtime(format!("rnmu.matrix.request: body: {e}"))
                    })?)
                };
            let repeat = match req.get::<Option<bool>>("repeat")? {
                Some(true) => Repeat::Safe,
                Some(false) => Repeat::IfUnsent,
                None => repeat_for(&method),
            };
            let admin: Option<bool> = req.get("admin")?;
            let token = match (token, admin.unwrap_or(false)) {
                (Some(_), true) => {
                    return Err(mlua::Error::runtime(
                        "rnmu.matrix.request: give either token or admin = true, not both",
                    ));
                }
                (None, true) => Some(h.admin_token.borrow().clone().ok_or_else(|| {
                    mlua::Error::runtime(
                        "rnmu.matrix.request{admin = true}: the run has no admin token \
                         (--admin-token-file, or admin_token_path in the config)",
                    )
                })?),
                (t, false) => t.map(Secret::new),
            };
            let hs = h.homeserver()?;
            let (status, json) = h
                .limits
                .off_the_clock(|| hs.request(&method, &path, token.as_ref(), body.as_ref(), repeat))
                .map_err(|e| mlua::Error::runtime(h.masked(&e.to_string())))?;
            let out = lua.create_table()?;
            out.set("status", status)?;
            // As rnmu.http.request answers: the text, and the JSON decoded.
            match &json {
                serde_json::Value::Null => out.set("body", "")?,
                serde_json::Value::String(text) => out.set("body", text.as_str())?,
                j => {
                    out.set("body", j.to_string())?;
                    out.set("json", json_to_lua(lua, j)?)?;
                }
            }
            Ok(out)
        })?,
    )?;

    let h = host.clone();
    m.set(
        "dm",
        lua.create_function(move |_, (token, user_id): (String, String)| {
            dm(&h, &Secret::new(token), &user_id)
        })?,
    )?;

    static TXN: AtomicU64 = AtomicU64::new(0);
    let h = host.clone();
    m.set(
        "send_text",
        lua.create_function(
            move |_, (token, room_id, text, opts): (String, String, String, Option<Table>)| {
                let token = Secret::new(token);
                let once: bool = match &opts {
                    Some(t) => t.get::<Option<bool>>("once")?.unwrap_or(false),
                    None => false,
                };
                if once {
                    let me = h.whoami(&token)?;
                    if let Some(id) = sent_before(&h, &token, &me, &room_id, &text)? {
                        return Ok(Some(id));
                    }
                }
                // One transaction ID for every try of this call: the server
                // keeps one event however often it is sent.
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
                let body = serde_json::json!({"msgtype": "m.text", "body": text});
                let j = call(&h, "PUT", &path, &token, body, Repeat::Safe)?;
                Ok(str_field(&j, "event_id"))
            },
        )?,
    )?;

    let h = host.clone();
    m.set(
        "join",
        lua.create_function(move |_, (token, room): (String, String)| {
            let path = format!("/_matrix/client/v3/join/{}", segment(&room));
            // Joining twice is joining once.
            let j = call(
                &h,
                "POST",
                &path,
                &Secret::new(token),
                serde_json::json!({}),
                Repeat::Safe,
            )?;
            Ok(str_field(&j, "room_id"))
        })?,
    )?;

    let h = host.clone();
    m.set(
        "invite",
        lua.create_function(move |_, (token, room, user_id): (String, String, String)| {
            let token = Secret::new(token);
            let room_id = if room.starts_with('#') {
                let path = format!("/_matrix/client/v3/directory/room/{}", segment(&room));
                let j = get_ok(&h, &path, &token)?;
                str_field(&j, "room_id").ok_or_else(|| {
                    mlua::Error::runtime(format!("{room} did not resolve to a room ID"))
                })?
            } else {
                room
            };
            let path = format!("/_matrix/client/v3/rooms/{}/invite", segment(&room_id));
            // Inviting an invited user again changes nothing.
            call(
                &h,
                "POST",
                &path,
                &token,
                serde_json::json!({"user_id": user_id}),
                Repeat::Safe,
            )?;
            Ok(room_id)
        })?,
    )?;

    let h = host.clone();
    m.set(
        "whoami",
        lua.create_function(move |_, token: String| h.whoami(&Secret::new(token)).map(Some))?,
    )?;
    Ok(m)
}

/// Secrets shorter than this are masked only where they stand as a whole
/// value (not inside a longer word: with `-k x`, "text" stays "text");
/// longer ones wherever they appear.
const WHOLE_WORD_BELOW: usize = 8;

/// `text` with `secret` replaced by `[redacted]`.
fn mask(text: &str, secret: &str) -> String {
    if secret.len() >= WHOLE_WORD_BELOW {
        return text.replace(secret, "[redacted]");
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    let starts = secret.chars().next().is_some_and(word);
    let ends = secret.chars().next_back().is_some_and(word);
    while let Some(at) = rest.find(secret) {
        let head = &rest[..at];
        let prev = head.chars().next_back().or(before);
        let after = rest[at + secret.len()..].chars().next();
        let whole = !(starts && prev.is_some_and(word) || ends && after.is_some_and(word));
        out.push_str(head);
        if whole {
            out.push_str("[redacted]");
        } else {
            out.push_str(secret);
        }
        before = secret.chars().next_back();
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod mask_tests {
    use super::mask;

    #[test]
    fn short_secrets_are_masked_as_whole_values_only() {
        assert_eq!(mask("text", "x"), "text");
        assert_eq!(mask("x", "x"), "[redacted]");
        assert_eq!(mask("key=x&y", "x"), "key=[redacted]&y");
        assert_eq!(mask("\"x\" and xx", "x"), "\"[redacted]\" and xx");
        assert_eq!(mask("a-long-secret!", "a-long-secret"), "[redacted]!");
        assert_eq!(
            mask("pre-a-long-secret-post", "a-long-secret"),
            "pre-[redacted]-post"
        );
        assert_eq!(
            mask("ab1secretpassword9", "secretpassword"),
            "ab1[redacted]9"
        );
    }
}
