//! A loopback stand-in for a Synapse that delegates authentication to MAS,
//! and for MAS itself, for the tests of the MAS backend: CI cannot run MAS
//! (it needs an OPA-compiled policy, PostgreSQL and a long build).
//!
//! It answers as the exchanges recorded against MAS 1.22 and Synapse 1.163.2
//! (`../shared/mas/exchanges.md`, `exchanges.jsonl`) do, status, body and
//! error titles alike: discovery, the client-credentials token (HTTP Basic
//! only), the Admin API's users, passwords (zxcvbn, as MAS judges them),
//! admin flag, lock and deactivation, personal sessions, login at MAS's
//! compatibility endpoint, and Synapse's 404 on the shared-secret endpoint.
//! What the recording does not show is answered as the real servers do:
//! MAS's `site-config` (its server name and password complexity), and
//! Synapse's `whoami`, room directory and admin API behind MAS (users,
//! joined rooms, joins), which accept a personal session's token with
//! Synapse's admin scope.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER_NAME: &str = "test.local";
pub const CLIENT_ID: &str = "000000000000000000000ADM00";

#[derive(Debug, Clone, Default)]
pub struct StubUser {
    pub id: String,
    pub username: String,
    pub admin: bool,
    pub password: Option<String>,
    pub locked: bool,
    pub deactivated: bool,
    /// Deactivated with erasure asked of the homeserver (`skip_erase` false).
    pub erased: bool,
    /// How often a create request for this name succeeded (must stay 1).
    pub created: usize,
    // What Synapse keeps of the account.
    pub displayname: Option<String>,
    pub emails: Vec<String>,
    pub rooms: Vec<String>,
}

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// "synapse" or "mas".
    pub server: &'static str,
    pub method: String,
    pub path: String,
    pub head: String,
    pub body: String,
}

/// A room made through the client API: its creator, who was invited, and
/// its messages by transaction ID.
type Chat = (String, Vec<String>, Vec<(String, String)>);

#[derive(Default)]
struct State {
    users: HashMap<String, StubUser>,
    next_id: u64,
    /// Admin tokens and when they end.
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    /// Admin API requests refused because their token had ended.
    expired_refused: usize,
    /// Compat and personal-session tokens, to the username.
    sessions: HashMap<String, String>,
    /// Personal sessions with Synapse's admin scope: ID to token.
    personal: HashMap<String, String>,
    personal_opened: usize,
    /// Rooms Synapse has: alias to ID.
    rooms: HashMap<String, String>,
    /// Rooms made through the client API: ID to (creator, invited, messages
    /// by transaction ID).
    chats: HashMap<String, Chat>,
    /// Upstream OAuth links: (link ID, user ULID, provider, subject).
    links: Vec<(String, String, String, String)>,
    seen: Vec<Seen>,
}

pub struct Stub {
    pub synapse_url: String,
    pub mas_url: String,
    pub secret: String,
    state: Arc<Mutex<State>>,
    /// The real MAS and Synapse these tests run against instead, when
    /// `RNMU_TEST_MAS_BIN` is set (`mas_real`).
    real: Option<&'static crate::mas_real::Real>,
    /// Put before every username, so tests sharing the real servers keep
    /// apart (empty for the stub, which each test has to itself).
    prefix: String,
}

impl Stub {
    /// The stub, or the real servers when `RNMU_TEST_MAS_BIN` is set.
    pub fn start() -> Stub {
        match crate::mas_real::real() {
            Some(r) => Stub {
                synapse_url: r.synapse.url.clone(),
                mas_url: r.mas_url.clone(),
                secret: r.secret.clone(),
                state: Arc::default(),
                real: Some(r),
                prefix: crate::fresh("m"),
            },
            None => Stub::stub_only(),
        }
    }

    /// The stub, always: for tests that look at what it saw.
    pub fn stub_only() -> Stub {
        Stub::with_token_lifetime(300)
    }

    /// A username of this test.
    pub fn name(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    pub fn server_name(&self) -> String {
        self.real
            .map_or(SERVER_NAME.to_string(), |r| r.server_name.clone())
    }

    /// A stub whose admin tokens last `secs` (MAS gives 300).
    pub fn with_token_lifetime(secs: u64) -> Stub {
        let state = Arc::new(Mutex::new(State::default()));
        let secret = format!("mas-client-secret-{}", std::process::id());
        let mas = TcpListener::bind("127.0.0.1:0").unwrap();
        let syn = TcpListener::bind("127.0.0.1:0").unwrap();
        let mas_url = format!("http://{}", mas.local_addr().unwrap());
        let synapse_url = format!("http://{}", syn.local_addr().unwrap());
        let ctx = Arc::new(Ctx {
            state: state.clone(),
            secret: secret.clone(),
            mas_url: mas_url.clone(),
            lifetime: Duration::from_secs(secs),
        });
        for (l, server) in [(mas, "mas"), (syn, "synapse")] {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let ctx = ctx.clone();
                    std::thread::spawn(move || serve(s, server, &ctx));
                }
            });
        }
        Stub {
            synapse_url,
            mas_url,
            secret,
            state,
            real: None,
            prefix: String::new(),
        }
    }

    pub fn user(&self, name: &str) -> Option<StubUser> {
        if let Some(r) = self.real {
            return real_user(r, name);
        }
        self.state.lock().unwrap().users.get(name).cloned()
    }

    /// Adds a user without a password, as a create whose run died before
    /// the next request leaves it.
    pub fn add_bare_user(&self, name: &str) {
        if let Some(r) = self.real {
            let token = crate::mas_real::admin_token(r);
            let (status, u) = request(
                &r.mas_url,
                "POST",
                "/api/admin/v1/users",
                Some(&token),
                &json!({"username": name}),
            );
            assert_eq!(status, 201, "{u}");
            return;
        }
        let mut st = self.state.lock().unwrap();
        let id = new_id(&mut st);
        st.users.insert(
            name.to_string(),
            StubUser {
                id,
                username: name.to_string(),
                created: 1,
                ..StubUser::default()
            },
        );
    }

    /// Adds a user as if made earlier (with a password, not an admin).
    pub fn add_user(&self, name: &str, password: &str) {
        if let Some(r) = self.real {
            let token = crate::mas_real::admin_token(r);
            let (status, u) = request(
                &r.mas_url,
                "POST",
                "/api/admin/v1/users",
                Some(&token),
                &json!({"username": name}),
            );
            assert_eq!(status, 201, "{u}");
            let id = u["data"]["id"].as_str().unwrap();
            let (status, _) = request(
                &r.mas_url,
                "POST",
                &format!("/api/admin/v1/users/{id}/set-password"),
                Some(&token),
                &json!({"password": password, "skip_password_check": true}),
            );
            assert_eq!(status, 204);
            return;
        }
        let mut st = self.state.lock().unwrap();
        let id = new_id(&mut st);
        st.users.insert(
            name.to_string(),
            StubUser {
                id,
                username: name.to_string(),
                password: Some(password.to_string()),
                created: 1,
                ..StubUser::default()
            },
        );
    }

    /// Sessions of `user` that are still live.
    pub fn live_sessions(&self, user: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .sessions
            .values()
            .filter(|u| *u == user)
            .count()
    }

    pub fn is_real(&self) -> bool {
        self.real.is_some()
    }

    /// What Synapse keeps of `name`: display name, emails, joined rooms.
    pub fn synapse_view(&self, name: &str) -> (Option<String>, Vec<String>, Vec<String>) {
        let Some(r) = self.real else {
            let u = self.user(name).unwrap();
            // As the stub's Synapse answers: a new account's name is its localpart.
            return (u.displayname.or(Some(name.to_string())), u.emails, u.rooms);
        };
        // A personal session with Synapse's admin scope, for this look only.
        let token = crate::mas_real::admin_token(r);
        let id = self.user(name).unwrap().id;
        let (status, s) = request(
            &r.mas_url,
            "POST",
            "/api/admin/v1/personal-sessions",
            Some(&token),
            &json!({"actor_user_id": id, "human_name": "test", "scope": "urn:matrix:client:api:* urn:synapse:admin:*", "expires_in": 60}),
        );
        assert_eq!(status, 201, "{s}");
        let pat = s["data"]["attributes"]["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let user_id = format!("@{name}:{}", r.server_name)
            .replace('@', "%40")
            .replace(':', "%3A");
        let (_, u) = request(
            &r.synapse.url,
            "GET",
            &format!("/_synapse/admin/v2/users/{user_id}"),
            Some(&pat),
            &Value::Null,
        );
        let (_, rooms) = request(
            &r.synapse.url,
            "GET",
            &format!("/_synapse/admin/v1/users/{user_id}/joined_rooms"),
            Some(&pat),
            &Value::Null,
        );
        let sid = s["data"]["id"].as_str().unwrap();
        request(
            &r.mas_url,
            "POST",
            &format!("/api/admin/v1/personal-sessions/{sid}/revoke"),
            Some(&token),
            &Value::Null,
        );
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        let emails = u["threepids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["address"].as_str().map(str::to_string))
            .collect();
        (
            u["displayname"].as_str().map(str::to_string),
            emails,
            strings(&rooms["joined_rooms"]),
        )
    }

    /// A public room Synapse has, by alias (`#local:server`): its ID.
    /// The links the stub's MAS has for `name`: `provider:subject`.
    pub fn links_of(&self, name: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        let Some(id) = st.users.get(name).map(|u| u.id.clone()) else {
            return Vec::new();
        };
        st.links
            .iter()
            .filter(|l| l.1 == id)
            .map(|l| format!("{}:{}", l.2, l.3))
            .collect()
    }

    pub fn add_room(&self, alias: &str) -> String {
        if let Some(r) = self.real {
            let owner = self.name("roomowner");
            self.add_user(&owner, "Room-Owner-Password-77");
            let token = self.login(&owner, "Room-Owner-Password-77").unwrap();
            let local = alias.trim_start_matches('#').split(':').next().unwrap();
            let (status, room) = request(
                &r.synapse.url,
                "POST",
                "/_matrix/client/v3/createRoom",
                Some(&token),
                &json!({"preset": "public_chat", "room_alias_name": local, "visibility": "public"}),
            );
            assert_eq!(status, 200, "{room}");
            return room["room_id"].as_str().unwrap().to_string();
        }
        let mut st = self.state.lock().unwrap();
        let id = format!("!room{}:{SERVER_NAME}", st.rooms.len() + 1);
        st.rooms.insert(alias.to_string(), id.clone());
        id
    }

    /// The direct chats the holder of `bot_token` made with `user_id`, each
    /// with its messages: from the stub's records, or, on the real servers,
    /// through the client API as the bot.
    pub fn chats_with(&self, bot_token: &str, user_id: &str) -> Vec<Vec<String>> {
        let Some(r) = self.real else {
            let st = self.state.lock().unwrap();
            return st
                .chats
                .values()
                .filter(|(_, invited, _)| invited == &vec![user_id.to_string()])
                .map(|(_, _, msgs)| msgs.iter().map(|(_, b)| b.clone()).collect())
                .collect();
        };
        let base = &r.synapse.url;
        let enc = |s: &str| {
            s.replace('!', "%21")
                .replace(':', "%3A")
                .replace('@', "%40")
        };
        let (_, joined) = request(
            base,
            "GET",
            "/_matrix/client/v3/joined_rooms",
            Some(bot_token),
            &Value::Null,
        );
        let mut out = Vec::new();
        for room in joined["joined_rooms"].as_array().unwrap() {
            let room = room.as_str().unwrap();
            let (_, members) = request(
                base,
                "GET",
                &format!("/_matrix/client/v3/rooms/{}/members", enc(room)),
                Some(bot_token),
                &Value::Null,
            );
            let others: Vec<String> = members["chunk"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| matches!(e["content"]["membership"].as_str(), Some("invite" | "join")))
                .filter_map(|e| e["state_key"].as_str().map(str::to_string))
                .filter(|m| m != user_id)
                .collect();
            let (_, msgs) = request(
                base,
                "GET",
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                    enc(room)
                ),
                Some(bot_token),
                &Value::Null,
            );
            let has_user = members["chunk"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["state_key"] == user_id);
            if has_user && others.len() == 1 {
                out.push(
                    msgs["chunk"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| e["type"] == "m.room.message")
                        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
                        .collect(),
                );
            }
        }
        out
    }

    /// Personal sessions opened, and those still live.
    pub fn personal_sessions(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap();
        (st.personal_opened, st.personal.len())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many Admin API requests came with a token that had ended.
    pub fn expired_refused(&self) -> usize {
        self.state.lock().unwrap().expired_refused
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.lock().unwrap().tokens_issued
    }

    /// A login at MAS with `password`: the token, which Synapse's `whoami`
    /// (here) accepts.
    pub fn login(&self, user: &str, password: &str) -> Option<String> {
        let body = json!({"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user}, "password": password});
        let (status, answer) = request(
            &self.mas_url,
            "POST",
            "/_matrix/client/v3/login",
            None,
            &body,
        );
        (status == 200).then(|| answer["access_token"].as_str().unwrap().to_string())
    }

    /// Synapse's `whoami` for a token.
    pub fn whoami(&self, token: &str) -> Option<String> {
        let (status, answer) = request(
            &self.synapse_url,
            "GET",
            "/_matrix/client/v3/account/whoami",
            Some(token),
            &Value::Null,
        );
        (status == 200).then(|| answer["user_id"].as_str().unwrap().to_string())
    }

    /// A file holding the client secret, for `--mas-client-secret-file`.
    pub fn secret_file(&self, dir: &std::path::Path) -> String {
        let p = dir.join("mas-client-secret");
        std::fs::write(&p, format!("{}\n", self.secret)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p.display().to_string()
    }
}

/// A user as the real MAS's Admin API shows it (what MAS does not show, a
/// password or an erasure, is left unset).
fn real_user(r: &crate::mas_real::Real, name: &str) -> Option<StubUser> {
    let token = crate::mas_real::admin_token(r);
    let (status, u) = request(
        &r.mas_url,
        "GET",
        &format!("/api/admin/v1/users/by-username/{name}"),
        Some(&token),
        &Value::Null,
    );
    if status == 404 {
        return None;
    }
    let a = &u["data"]["attributes"];
    Some(StubUser {
        id: u["data"]["id"].as_str().unwrap().to_string(),
        username: a["username"].as_str().unwrap().to_string(),
        admin: a["admin"].as_bool().unwrap(),
        locked: !a["locked_at"].is_null(),
        deactivated: !a["deactivated_at"].is_null(),
        created: 1,
        ..StubUser::default()
    })
}

struct Ctx {
    state: Arc<Mutex<State>>,
    secret: String,
    mas_url: String,
    lifetime: Duration,
}

fn new_id(st: &mut State) -> String {
    st.next_id += 1;
    // A ULID's shape: 26 characters of Crockford's base32.
    format!("01M8RDY5GW{:016}", st.next_id)
}

/// A request from the test itself (not through the tool).
fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut rb = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if !body.is_null() {
        rb = rb.json(body);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn serve(mut s: TcpStream, server: &'static str, ctx: &Ctx) {
    // Keep-alive, as the real servers do.
    while let Ok((head, body)) = crate::faults::read_message(&mut s) {
        let line = head.lines().next().unwrap_or("").to_string();
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let body = String::from_utf8_lossy(&body).into_owned();
        ctx.state.lock().unwrap().seen.push(Seen {
            server,
            method: method.clone(),
            path: path.clone(),
            head: head.clone(),
            body: body.clone(),
        });
        let (status, answer) = if server == "mas" {
            mas(ctx, &method, &path, &head, &body)
        } else {
            synapse(ctx, &method, &path, &head, &body)
        };
        let text = match &answer {
            Value::Null => String::new(),
            v => v.to_string(),
        };
        let reason = match status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            422 => "Unprocessable Entity",
            _ => "Error",
        };
        let ctype = if text.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        if write!(
            s,
            "HTTP/1.1 {status} {reason}\r\n{ctype}Content-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .is_err()
        {
            return;
        }
        if header(&head, "connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

fn unrecognized() -> (u16, Value) {
    (
        404,
        json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}),
    )
}

fn bearer(head: &str) -> Option<String> {
    header(head, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

fn synapse(ctx: &Ctx, method: &str, path: &str, head: &str, body: &str) -> (u16, Value) {
    let issuer = format!("{}/", ctx.mas_url);
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let decode = |s: &str| {
        s.replace("%40", "@")
            .replace("%3A", ":")
            .replace("%23", "#")
            .replace("%21", "!")
    };
    match (method, path) {
        ("GET", "/_matrix/client/v1/auth_metadata") => {
            return (
                200,
                json!({"issuer": issuer, "token_endpoint": format!("{issuer}oauth2/token"),
                       "account_management_uri": format!("{issuer}account/")}),
            );
        }
        ("GET", "/_matrix/key/v2/server") => return (200, json!({"server_name": SERVER_NAME})),
        ("GET", "/_matrix/client/v3/account/whoami") => {
            let st = ctx.state.lock().unwrap();
            return match bearer(head).and_then(|t| st.sessions.get(&t).cloned()) {
                Some(user) => (
                    200,
                    json!({"user_id": format!("@{user}:{SERVER_NAME}"), "is_guest": false}),
                ),
                None => (
                    401,
                    json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Token is not active", "soft_logout": false}),
                ),
            };
        }
        _ => {}
    }
    // Rooms a bot makes (welcome.lua's direct chats), and its messages.
    if (method, path) == ("POST", "/_matrix/client/v3/createRoom")
        || path.starts_with("/_matrix/client/v3/rooms/")
    {
        let mut st = ctx.state.lock().unwrap();
        let Some(me) = bearer(head).and_then(|t| st.sessions.get(&t).cloned()) else {
            return (
                401,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"}),
            );
        };
        if method == "POST" {
            let alias = json["room_alias_name"]
                .as_str()
                .map(|a| format!("#{a}:{SERVER_NAME}"));
            if alias.as_ref().is_some_and(|a| st.rooms.contains_key(a)) {
                return (
                    400,
                    json!({"errcode": "M_ROOM_IN_USE", "error": "Room alias already taken"}),
                );
            }
            let id = format!("!chat{}:{SERVER_NAME}", st.chats.len() + 1);
            let invited = json["invite"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            st.chats.insert(id.clone(), (me, invited, Vec::new()));
            if let Some(a) = alias {
                st.rooms.insert(a, id.clone());
            }
            return (200, json!({"room_id": id}));
        }
        // PUT /rooms/<id>/state/...: taken (the chat's canonical alias cleared).
        if path.contains("/state/") {
            return (200, json!({"event_id": "$state"}));
        }
        // PUT /rooms/<id>/send/m.room.message/<txn>
        let parts: Vec<String> = path.split('/').map(decode).collect();
        if let (Some(room), Some(txn)) = (parts.get(5), parts.get(8)) {
            let body = json["body"].as_str().unwrap_or("").to_string();
            if let Some(chat) = st.chats.get_mut(room) {
                if !chat.2.iter().any(|(t, _)| t == txn) {
                    chat.2.push((txn.clone(), body));
                }
                return (200, json!({"event_id": format!("$ev{txn}")}));
            }
        }
        return (
            404,
            json!({"errcode": "M_NOT_FOUND", "error": "Unknown room"}),
        );
    }
    // An invited user accepts a chat (welcome.lua, as the new user), and
    // keeps it as a direct chat.
    if let Some(room) = path.strip_prefix("/_matrix/client/v3/join/") {
        let st = ctx.state.lock().unwrap();
        let room = decode(room);
        let me = bearer(head).and_then(|t| st.sessions.get(&t).cloned());
        return match (me, st.chats.get(&room)) {
            (Some(me), Some((_, invited, _)))
                if invited.iter().any(|i| i == &format!("@{me}:{SERVER_NAME}")) =>
            {
                (200, json!({"room_id": room}))
            }
            (None, _) => (
                401,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"}),
            ),
            _ => (
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "You are not invited to this room."}),
            ),
        };
    }
    if method == "PUT"
        && path.starts_with("/_matrix/client/v3/user/")
        && path.ends_with("/account_data/m.direct")
    {
        return (200, json!({}));
    }
    if let Some(alias) = path.strip_prefix("/_matrix/client/v3/directory/room/") {
        let st = ctx.state.lock().unwrap();
        return match st.rooms.get(&decode(alias)) {
            Some(id) => (200, json!({"room_id": id, "servers": [SERVER_NAME]})),
            None => (
                404,
                json!({"errcode": "M_NOT_FOUND", "error": "Room alias not found"}),
            ),
        };
    }
    if !path.starts_with("/_synapse/admin/") || path.starts_with("/_synapse/admin/v1/register") {
        // The shared-secret endpoint, login, and the rest: not served under MAS.
        return unrecognized();
    }
    // Synapse's admin API: a token with its admin scope (a personal session).
    let mut st = ctx.state.lock().unwrap();
    let admin = bearer(head).is_some_and(|t| st.personal.values().any(|p| *p == t));
    if !admin {
        return (
            403,
            json!({"errcode": "M_FORBIDDEN", "error": "You are not a server admin"}),
        );
    }
    let localpart = |id: &str| {
        id.trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or("")
            .to_string()
    };
    if let Some(id) = path.strip_prefix("/_synapse/admin/v2/users/") {
        let name = localpart(&decode(id));
        let Some(u) = st.users.get_mut(&name) else {
            return if method == "PUT" {
                (
                    403,
                    json!({"errcode": "M_FORBIDDEN", "error": "User creation via the Admin API is not available when Synapse is delegating authentication to MAS. Create the user via MAS instead."}),
                )
            } else {
                (
                    404,
                    json!({"errcode": "M_NOT_FOUND", "error": "User not found"}),
                )
            };
        };
        if method == "PUT" {
            if let Some(d) = json["displayname"].as_str() {
                u.displayname = Some(d.to_string());
            }
            if let Some(t) = json["threepids"].as_array() {
                u.emails = t
                    .iter()
                    .filter_map(|t| t["address"].as_str().map(str::to_string))
                    .collect();
            }
        }
        let threepids: Vec<Value> = u
            .emails
            .iter()
            .map(|a| json!({"medium": "email", "address": a}))
            .collect();
        // As recorded: Synapse's own admin flag stays false, and a new
        // account's display name is its localpart.
        return (
            200,
            json!({"name": format!("@{name}:{SERVER_NAME}"), "admin": false,
                "deactivated": u.deactivated, "locked": u.locked, "user_type": null,
                "displayname": u.displayname.clone().unwrap_or_else(|| name.clone()),
                "avatar_url": null, "threepids": threepids, "erased": false}),
        );
    }
    if let Some(rest) = path.strip_prefix("/_synapse/admin/v1/users/") {
        let name = localpart(&decode(rest.trim_end_matches("/joined_rooms")));
        let rooms = st
            .users
            .get(&name)
            .map(|u| u.rooms.clone())
            .unwrap_or_default();
        return (200, json!({"joined_rooms": rooms, "total": rooms.len()}));
    }
    if let Some(room) = path.strip_prefix("/_synapse/admin/v1/join/") {
        let room = decode(room);
        let id = if room.starts_with('#') {
            st.rooms.get(&room).cloned()
        } else {
            Some(room.clone())
        };
        let Some(id) = id else {
            return (
                404,
                json!({"errcode": "M_NOT_FOUND", "error": "Room alias not found"}),
            );
        };
        let name = localpart(json["user_id"].as_str().unwrap_or(""));
        let Some(u) = st.users.get_mut(&name) else {
            return (
                404,
                json!({"errcode": "M_NOT_FOUND", "error": "User not found"}),
            );
        };
        if !u.rooms.contains(&id) {
            u.rooms.push(id.clone());
        }
        return (200, json!({"room_id": id}));
    }
    unrecognized()
}

fn user_json(u: &StubUser) -> Value {
    json!({"type": "user", "id": u.id, "attributes": {
        "username": u.username, "created_at": "2026-12-01T09:10:56.284733Z",
        "locked_at": if u.locked { json!("2026-12-01T09:11:00Z") } else { Value::Null },
        "deactivated_at": if u.deactivated { json!("2026-12-01T09:11:00Z") } else { Value::Null },
        "admin": u.admin, "legacy_guest": false},
        "links": {"self": format!("/api/admin/v1/users/{}", u.id)}})
}

fn single(u: &StubUser, path: &str) -> Value {
    json!({"data": user_json(u), "links": {"self": path}})
}

fn link_json((id, user, provider, subject): &(String, String, String, String)) -> Value {
    json!({"type": "upstream-oauth-link", "id": id,
           "attributes": {"user_id": user, "provider_id": provider, "subject": subject,
                          "human_account_name": null},
           "links": {"self": format!("/api/admin/v1/upstream-oauth-links/{id}")}})
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3)) {
            (b'%', Some(h))
                if u8::from_str_radix(std::str::from_utf8(h).unwrap_or("x"), 16).is_ok() =>
            {
                out.push(u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap());
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn errors(title: &str) -> Value {
    json!({"errors": [{"title": title}]})
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn mas_username_valid(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 255
        && !u.starts_with('_')
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"=_-./+".contains(&b))
}

fn mas(ctx: &Ctx, method: &str, path: &str, head: &str, body: &str) -> (u16, Value) {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if (method, path) == ("POST", "/oauth2/token") {
        let basic = header(head, "authorization")
            .and_then(|a| a.strip_prefix("Basic ").map(str::to_string))
            .and_then(|b| base64_decode(&b))
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if basic != Some(format!("{CLIENT_ID}:{}", ctx.secret)) {
            return (
                401,
                json!({"error": "invalid_client", "error_description": "Client authentication failed."}),
            );
        }
        let scope = if body.contains("scope=urn%3Amas%3Aadmin") {
            "urn:mas:admin"
        } else {
            "openid"
        };
        let mut st = ctx.state.lock().unwrap();
        st.tokens_issued += 1;
        let token = format!("mat_{:040}", st.tokens_issued);
        if scope == "urn:mas:admin" {
            st.tokens
                .insert(token.clone(), Instant::now() + ctx.lifetime);
        }
        return (
            200,
            json!({"access_token": token, "token_type": "Bearer",
                            "expires_in": ctx.lifetime.as_secs(), "scope": scope}),
        );
    }
    if (method, path) == ("POST", "/_matrix/client/v3/login") {
        let user = json["identifier"]["user"]
            .as_str()
            .or(json["user"].as_str())
            .unwrap_or("");
        let user = user
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or("")
            .to_lowercase();
        let password = json["password"].as_str().unwrap_or("");
        let mut st = ctx.state.lock().unwrap();
        let ok = st.users.get(&user).is_some_and(|u| {
            u.password.as_deref() == Some(password) && !u.locked && !u.deactivated
        });
        if !ok {
            return (
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "Invalid username/password"}),
            );
        }
        let n = st.sessions.len() + 1;
        let token = format!("mct_{n:040}");
        st.sessions.insert(token.clone(), user.clone());
        return (
            200,
            json!({"access_token": token, "device_id": format!("DEV{n}"),
                            "user_id": format!("@{user}:{SERVER_NAME}")}),
        );
    }
    if (method, path) == ("POST", "/_matrix/client/v3/logout") {
        let mut st = ctx.state.lock().unwrap();
        return match bearer(head).and_then(|t| st.sessions.remove(&t)) {
            Some(_) => (200, json!({})),
            None => (
                401,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"}),
            ),
        };
    }
    let Some(rest) = path.strip_prefix("/api/admin/v1/") else {
        return (404, Value::Null);
    };
    // The Admin API: an admin token, alive.
    let Some(token) = bearer(head) else {
        return (400, errors("Missing authorization header"));
    };
    let mut st = ctx.state.lock().unwrap();
    match st.tokens.get(&token).copied() {
        Some(until) if until > Instant::now() => {}
        Some(_) => {
            st.expired_refused += 1;
            return (401, errors("Access token has expired"));
        }
        None => {
            return (
                401,
                json!({"errors": [{"title": "Invalid type of access token"}, {"title": "invalid token format"}]}),
            );
        }
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = percent_decode(query);
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let segs: Vec<&str> = rest.split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["upstream-oauth-links"]) => {
            let (user, provider, subject) = (
                param("filter[user]"),
                param("filter[provider]"),
                param("filter[subject]"),
            );
            let data: Vec<Value> = st
                .links
                .iter()
                .filter(|(_, u, p, s)| {
                    user.as_ref().is_none_or(|x| x == u)
                        && provider.as_ref().is_none_or(|x| x == p)
                        && subject.as_ref().is_none_or(|x| x == s)
                })
                .map(link_json)
                .collect();
            (200, json!({"meta": {"count": data.len()}, "data": data}))
        }
        ("POST", ["upstream-oauth-links"]) => {
            let (Some(user), Some(provider), Some(subject)) = (
                json["user_id"].as_str(),
                json["provider_id"].as_str(),
                json["subject"].as_str(),
            ) else {
                return (422, Value::Null);
            };
            if !st.users.values().any(|u| u.id == user) {
                return (404, errors(&format!("User ID {user} not found")));
            }
            if st
                .links
                .iter()
                .any(|(_, _, p, s)| p == provider && s == subject)
            {
                return (409, errors("Upstream OAuth 2.0 Link already exists"));
            }
            let id = new_id(&mut st);
            let link = (
                id,
                user.to_string(),
                provider.to_string(),
                subject.to_string(),
            );
            let answer = json!({"data": link_json(&link)});
            st.links.push(link);
            (201, answer)
        }
        ("DELETE", ["upstream-oauth-links", id]) => {
            let before = st.links.len();
            st.links.retain(|l| l.0 != *id);
            if st.links.len() < before {
                (204, Value::Null)
            } else {
                (404, errors("Upstream OAuth 2.0 Link not found"))
            }
        }
        ("GET", ["users"]) => {
            let first: usize = param("page[first]")
                .and_then(|f| f.parse().ok())
                .unwrap_or(10);
            let after = param("page[after]").unwrap_or_default();
            let mut all: Vec<&StubUser> = st.users.values().filter(|u| u.id > after).collect();
            all.sort_by(|a, b| a.id.cmp(&b.id));
            let data: Vec<Value> = all.iter().take(first).map(|u| user_json(u)).collect();
            (
                200,
                json!({"meta": {"count": st.users.len()}, "data": data}),
            )
        }
        ("GET", ["users", id]) => match st.users.values().find(|u| u.id == *id) {
            Some(u) => (200, single(u, path)),
            None => (404, errors(&format!("User ID {id} not found"))),
        },
        // MAS's own configuration (its Admin API; not among the recordings).
        ("GET", ["site-config"]) => (
            200,
            json!({"server_name": SERVER_NAME, "password_login_enabled": true,
                   "password_registration_enabled": false, "minimum_password_complexity": 3}),
        ),
        ("GET", ["users", "by-username", name]) => {
            let name = name.to_lowercase();
            match st.users.get(&name) {
                Some(u) => (200, single(u, path)),
                None => (
                    404,
                    errors(&format!("User with username \"{name}\" not found")),
                ),
            }
        }
        ("POST", ["users"]) => {
            let Some(name) = json["username"].as_str() else {
                return (422, Value::Null);
            };
            if !mas_username_valid(name) {
                return (400, errors("Username is not valid"));
            }
            if name.starts_with("bridge-") {
                return (409, errors("Username is reserved by the homeserver"));
            }
            if st.users.contains_key(name) {
                return (409, errors("User already exists"));
            }
            let id = new_id(&mut st);
            let u = StubUser {
                id: id.clone(),
                username: name.to_string(),
                created: 1,
                ..StubUser::default()
            };
            let answer = single(&u, &format!("/api/admin/v1/users/{id}"));
            st.users.insert(name.to_string(), u);
            (201, answer)
        }
        ("POST", ["users", id, action]) => {
            let Some(u) = st.users.values_mut().find(|u| u.id == *id) else {
                return (404, errors(&format!("User ID {id} not found")));
            };
            match *action {
                "set-password" => {
                    let pw = json["password"].as_str().unwrap_or("");
                    let skip = json["skip_password_check"].as_bool().unwrap_or(false);
                    if !skip && u8::from(zxcvbn::zxcvbn(pw, &[]).score()) < 3 {
                        return (400, errors("Password is too weak"));
                    }
                    u.password = Some(pw.to_string());
                    (204, Value::Null)
                }
                "set-admin" => {
                    let Some(a) = json["admin"].as_bool() else {
                        return (422, Value::Null);
                    };
                    u.admin = a;
                    (200, single(u, path))
                }
                "lock" => {
                    u.locked = true;
                    (200, single(u, path))
                }
                "unlock" => {
                    u.locked = false;
                    (200, single(u, path))
                }
                "reactivate" => {
                    u.deactivated = false;
                    (200, single(u, path))
                }
                "deactivate" => {
                    u.deactivated = true;
                    u.erased = !json["skip_erase"].as_bool().unwrap_or(false);
                    (200, single(u, path))
                }
                _ => (404, Value::Null),
            }
        }
        ("POST", ["personal-sessions"]) => {
            st.personal_opened += 1;
            let n = st.personal_opened;
            let token = format!("mpt_{n:040}");
            let actor = json["actor_user_id"].as_str().unwrap_or("").to_string();
            let Some(user) = st
                .users
                .values()
                .find(|u| u.id == actor)
                .map(|u| u.username.clone())
            else {
                return (404, errors("User not found"));
            };
            st.sessions.insert(token.clone(), user);
            let id = format!("01M8RDY67W{n:016}");
            if json["scope"]
                .as_str()
                .is_some_and(|s| s.contains("urn:synapse:admin:*"))
            {
                st.personal.insert(id.clone(), token.clone());
            }
            (
                201,
                json!({"data": {"type": "personal-session", "id": id,
                "attributes": {"access_token": token, "actor_user_id": actor,
                               "scope": json["scope"]}}}),
            )
        }
        ("POST", ["personal-sessions", id, "revoke"]) => {
            let id = id.to_string();
            match st.personal.remove(&id) {
                Some(token) => {
                    st.sessions.remove(&token);
                    (200, json!({"data": {"type": "personal-session", "id": id}}))
                }
                None => (404, errors("Personal session not found")),
            }
        }
        _ => (404, Value::Null),
    }
}
