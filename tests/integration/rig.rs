//! The real Synapse every test talks to: started once per test binary by
//! scripts/synapse_rig.py, stopped when the binary exits (the rig watches its
//! standard input, which closes with this process).
//!
//! It runs with Synapse's default rate limits, as admins run it. A test that
//! measures something other than a limit, and would only wait on it, may ask
//! for a server of its own with that limit changed ([`synapse_with`]), and
//! says there which limit and why.
//!
//! The tests' own checks (does this password log in?) stand for the many
//! different clients of a real server: each login comes from its own
//! loopback address, so the checks never spend the tool's login budget
//! (`rc_login.address`), which is keyed on the client's address.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

pub struct Synapse {
    pub url: String,
    pub socket: PathBuf,
    /// The same server over TLS, with a certificate from `ca`.
    pub tls_url: String,
    pub ca: PathBuf,
    pub secret: String,
    pub config: PathBuf,
    pub server_name: String,
    pub original: PathBuf,
    pub venv: PathBuf,
    pub admin_token: String,
    admin_token_file: OnceLock<(tempfile::TempDir, PathBuf)>,
    http: reqwest::blocking::Client,
    _rig: Mutex<Child>,
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

static SYNAPSE: OnceLock<Synapse> = OnceLock::new();
/// Servers with changed settings, by the name their test gave them.
static OTHERS: Mutex<Vec<(&'static str, &'static Synapse)>> = Mutex::new(Vec::new());

/// The server as shipped: Synapse's default rate limits.
pub fn synapse() -> &'static Synapse {
    SYNAPSE.get_or_init(|| start(&Value::Null))
}

/// A server of its own, with `overrides` (top-level config keys) merged over
/// the rig's config; started once per `name`. Only for tests that measure
/// something other than the limit they change.
pub fn synapse_with(name: &'static str, overrides: Value) -> &'static Synapse {
    let mut others = OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, s)) = others.iter().find(|(n, _)| *n == name) {
        return s;
    }
    let s: &'static Synapse = Box::leak(Box::new(start(&overrides)));
    others.push((name, s));
    s
}

/// The shared secrets of every server started so far.
pub fn secrets_of_started() -> Vec<String> {
    let mut out: Vec<String> = SYNAPSE
        .get()
        .map(|s| [s.secret.clone(), s.admin_token.clone()])
        .into_iter()
        .flatten()
        .collect();
    let others = OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    out.extend(
        others
            .iter()
            .flat_map(|(_, s)| [s.secret.clone(), s.admin_token.clone()]),
    );
    out
}

fn start(overrides: &Value) -> Synapse {
    let mut cmd = Command::new("python3");
    if !overrides.is_null() {
        cmd.env("RNMU_SYNAPSE_CONFIG_OVERRIDES", overrides.to_string());
    }
    let mut child = cmd
        .arg(root().join("scripts/synapse_rig.py"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start scripts/synapse_rig.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the rig's description");
    let info: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the rig did not start Synapse ({e}): {line:?}"));
    let s = |k: &str| info[k].as_str().unwrap().to_string();
    Synapse {
        url: s("url"),
        socket: s("socket").into(),
        tls_url: s("tls_url"),
        ca: s("ca").into(),
        secret: s("secret"),
        config: s("config").into(),
        server_name: s("server_name"),
        original: s("original").into(),
        venv: s("venv").into(),
        admin_token: s("admin_token"),
        admin_token_file: OnceLock::new(),
        http: reqwest::blocking::Client::new(),
        _rig: Mutex::new(child),
    }
}

/// Percent-encodes a path segment (user IDs hold `@`, `:` and maybe `/`).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A localpart no other test uses.
pub fn fresh(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Synapse {
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{}:{}", localpart.to_lowercase(), self.server_name)
    }

    fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{}", self.url, path))
            .bearer_auth(&self.admin_token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// A file (mode 0600) holding the rig admin's access token, for
    /// `--admin-token-file`.
    pub fn admin_token_file(&self) -> String {
        let (_, p) = self.admin_token_file.get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("admin-token");
            std::fs::write(&p, format!("{}\n", self.admin_token)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            (dir, p)
        });
        p.display().to_string()
    }

    /// A room made by the rig admin (who may invite to it): its ID, and an
    /// alias `#name:server`. With `space`, a space.
    pub fn make_room(&self, name: &str, space: bool) -> (String, String) {
        let mut body = json!({"preset": "private_chat", "room_alias_name": name, "name": name});
        if space {
            body["creation_content"] = json!({"type": "m.space"});
        }
        let (status, j) = self.client(
            "POST",
            "/_matrix/client/v3/createRoom",
            &self.admin_token,
            Some(body),
        );
        assert_eq!(status, 200, "createRoom: {j}");
        (
            j["room_id"].as_str().unwrap().to_string(),
            format!("#{name}:{}", self.server_name),
        )
    }

    /// The rooms a user has joined, by ID, as the admin API says.
    pub fn joined_rooms(&self, localpart: &str) -> Vec<String> {
        let j = self.admin(&format!(
            "/_synapse/admin/v1/users/{}/joined_rooms",
            enc(&self.user_id(localpart))
        ));
        j["joined_rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    }

    /// A user's email addresses, sorted, as the admin API says.
    pub fn emails(&self, localpart: &str) -> Vec<String> {
        let u = self.user(localpart).expect("user exists");
        let mut out: Vec<String> = u["threepids"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["medium"] == "email")
            .map(|t| t["address"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    }

    /// The admin API's view of a user, or None when there is no such user.
    pub fn user(&self, localpart: &str) -> Option<Value> {
        let (status, body) = self.admin_get(&format!(
            "/_synapse/admin/v2/users/{}",
            enc(&self.user_id(localpart))
        ));
        match status {
            200 => Some(body),
            404 => None,
            s => panic!("admin API answered {s}: {body}"),
        }
    }

    pub fn is_admin(&self, localpart: &str) -> bool {
        let u = self.user(localpart).expect("user exists");
        u["admin"] == json!(true) || u["admin"] == json!(1)
    }

    pub fn user_type(&self, localpart: &str) -> Option<String> {
        self.user(localpart).expect("user exists")["user_type"]
            .as_str()
            .map(str::to_string)
    }

    pub fn devices(&self, localpart: &str) -> Vec<Value> {
        let (status, body) = self.admin_get(&format!(
            "/_synapse/admin/v2/users/{}/devices",
            enc(&self.user_id(localpart))
        ));
        assert_eq!(status, 200, "{body}");
        body["devices"].as_array().cloned().unwrap_or_default()
    }

    /// Logs in with a password, as a client of its own (a loopback address
    /// no other check uses); the access token on success.
    pub fn login(&self, localpart: &str, password: &str) -> Option<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let from = std::net::Ipv4Addr::new(127, 77, (n / 250 % 250) as u8, (n % 250 + 2) as u8);
        let client = reqwest::blocking::Client::builder()
            .local_address(std::net::IpAddr::V4(from))
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/_matrix/client/v3/login", self.url))
            .json(&json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            }))
            .send()
            .unwrap();
        if r.status().as_u16() != 200 {
            return None;
        }
        let body: Value = r.json().unwrap();
        body["access_token"].as_str().map(str::to_string)
    }

    /// A client-API request as the holder of `token`.
    pub fn client(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.url, path))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The bytes of the media `mxc`, downloaded as the rig's admin.
    pub fn media(&self, mxc: &str) -> Vec<u8> {
        let rest = mxc.strip_prefix("mxc://").expect("an mxc:// URI");
        let r = self
            .http
            .get(format!(
                "{}/_matrix/client/v1/media/download/{rest}",
                self.url
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{mxc}");
        r.bytes().unwrap().to_vec()
    }

    /// A GET on the admin API as the rig's admin.
    pub fn admin(&self, path: &str) -> Value {
        let (status, body) = self.admin_get(path);
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Every room the holder of `bot_token` is in, with the users invited to
    /// or joined to it besides the bot, and the bodies of its messages:
    /// read through the admin API, so nobody joins anything to look.
    pub fn rooms_of(&self, bot_token: &str) -> Vec<(Vec<String>, Vec<String>)> {
        let (_, me) = self.client("GET", "/_matrix/client/v3/account/whoami", bot_token, None);
        let me = me["user_id"].as_str().unwrap().to_string();
        let (_, joined) = self.client("GET", "/_matrix/client/v3/joined_rooms", bot_token, None);
        let enc = |s: &str| {
            s.replace('!', "%21")
                .replace(':', "%3A")
                .replace('@', "%40")
        };
        let mut out = Vec::new();
        for room in joined["joined_rooms"].as_array().unwrap() {
            let room = room.as_str().unwrap();
            let state = self.admin(&format!("/_synapse/admin/v1/rooms/{}/state", enc(room)));
            let members: Vec<String> = state["state"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "m.room.member" && e["state_key"] != me.as_str())
                .filter(|e| matches!(e["content"]["membership"].as_str(), Some("invite" | "join")))
                .map(|e| e["state_key"].as_str().unwrap().to_string())
                .collect();
            let msgs = self.admin(&format!(
                "/_synapse/admin/v1/rooms/{}/messages?dir=b&limit=100",
                enc(room)
            ));
            let bodies: Vec<String> = msgs["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
                .collect();
            out.push((members, bodies));
        }
        out
    }

    /// Checks that each of `users` has exactly one direct chat with the bot,
    /// holding exactly one message.
    #[track_caller]
    pub fn assert_welcomed_once(&self, bot_token: &str, users: &[String]) {
        let rooms = self.rooms_of(bot_token);
        for u in users {
            let id = self.user_id(u);
            let theirs: Vec<_> = rooms
                .iter()
                .filter(|(members, _)| members.len() == 1 && members[0] == id)
                .collect();
            assert_eq!(
                theirs.len(),
                1,
                "{u}: direct chats with the bot: {theirs:?}"
            );
            assert_eq!(theirs[0].1.len(), 1, "{u}: messages: {:?}", theirs[0].1);
        }
    }

    /// Registers a user directly (as the test's own setup, not the tool).
    pub fn register_directly(&self, localpart: &str, password: &str, admin: bool) -> String {
        let code = crate::Test::new()
            .args([
                "-u",
                localpart,
                "-p",
                password,
                "-k",
                &self.secret,
                &self.url,
            ])
            .arg(if admin { "-a" } else { "--no-admin" })
            .run()
            .code;
        assert_eq!(code, 0, "setup registration of {localpart}");
        self.user_id(localpart)
    }
}
