//! The proof of `external_ids` is a real login: a real OpenID Connect
//! provider on loopback (`scripts/oidc_provider.py`, authlib's), a Synapse
//! of these tests' own with `oidc_providers` pointed at it, and the whole
//! SSO flow without a browser: Synapse's redirect, the provider's login
//! form, the callback, then `m.login.token`. A person pre-created with
//! `--ensure` and their external ID lands on that account; without the
//! link, the same login makes a second one.

use crate::rig::Synapse;
use crate::{Test, fresh};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where Synapse sends the login token: a client's address, never opened.
const CLIENT_REDIRECT: &str = "http://127.0.0.1:1/done";

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    _child: std::sync::Mutex<std::process::Child>,
}

/// The people the provider knows: username, password, subject.
const PEOPLE: [(&str, &str, &str); 2] = [
    ("ssoalice", "pw-sso-alice-1", "sub-alice-0001"),
    ("ssobob", "pw-sso-bob-1", "sub-bob-0001"),
];

fn provider() -> &'static Provider {
    static P: OnceLock<Provider> = OnceLock::new();
    P.get_or_init(|| {
        let venv = Command::new("bash")
            .arg(crate::rig::root().join("scripts/synapse-venv.sh"))
            .output()
            .expect("the rig's virtualenv");
        let venv = String::from_utf8_lossy(&venv.stdout)
            .lines()
            .last()
            .unwrap()
            .to_string();
        let users: serde_json::Map<String, Value> = PEOPLE
            .iter()
            .map(|(u, pw, sub)| (u.to_string(), json!({"password": pw, "sub": sub})))
            .collect();
        let mut child = Command::new(format!("{venv}/bin/python"))
            .arg(crate::rig::root().join("scripts/oidc_provider.py"))
            .arg(Value::Object(users).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OIDC provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the OIDC provider did not start ({e}): {line:?}"));
        Provider {
            issuer: info["issuer"].as_str().unwrap().into(),
            client_id: info["client_id"].as_str().unwrap().into(),
            client_secret: info["client_secret"].as_str().unwrap().into(),
            _child: std::sync::Mutex::new(child),
        }
    })
}

/// A Synapse that logs people in through the provider (idp `rig`, so the
/// auth provider is `oidc-rig`), mapping its `preferred_username` to the
/// localpart as sites do; no rate limit changed.
fn server() -> &'static Synapse {
    let p = provider();
    crate::synapse_with(
        "sso",
        json!({
            "public_baseurl": "auto",
            "oidc_providers": [{
                "idp_id": "rig",
                "idp_name": "Rig",
                "issuer": p.issuer,
                "client_id": p.client_id,
                "client_secret": p.client_secret,
                "scopes": ["openid", "profile"],
                "skip_verification": true,
                "user_mapping_provider": {"config": {
                    "localpart_template": "{{ user.preferred_username }}",
                }},
            }],
            "sso": {"client_whitelist": ["http://127.0.0.1:1/"]},
        }),
    )
}

/// Logs in as `username` through the whole SSO flow; the user ID Synapse
/// gives the session.
fn sso_login(s: &Synapse, username: &str, password: &str) -> String {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = http
        .get(format!(
            "{}/_matrix/client/v3/login/sso/redirect/oidc-rig?redirectUrl={}",
            s.url,
            crate::rig::enc(CLIENT_REDIRECT)
        ))
        .send()
        .unwrap();
    assert_eq!(start.status().as_u16(), 302, "{:?}", start.text());
    let cookies: Vec<String> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.starts_with(&provider().issuer), "{authorize}");
    let form = http.get(&authorize).send().unwrap();
    assert_eq!(form.status().as_u16(), 200);
    assert!(form.text().unwrap().contains("<form"));
    let signed_in = http
        .post(&authorize)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username={}&password={}",
            crate::rig::enc(username),
            crate::rig::enc(password)
        ))
        .send()
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 302, "{:?}", signed_in.text());
    let callback = signed_in.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        callback.contains("/_synapse/client/oidc/callback"),
        "{callback}"
    );
    let done = http
        .get(&callback)
        .header("cookie", cookies.join("; "))
        .send()
        .unwrap();
    let status = done.status().as_u16();
    let location = done
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(status, 302, "{location} {:?}", done.text());
    let token = location
        .split("loginToken=")
        .nth(1)
        .unwrap_or_else(|| panic!("no login token: {location}"))
        .split('&')
        .next()
        .unwrap();
    let (status, body) = s.client(
        "POST",
        "/_matrix/client/v3/login",
        "",
        Some(json!({"type": "m.login.token", "token": token})),
    );
    assert_eq!(status, 200, "{body}");
    body["user_id"].as_str().unwrap().to_string()
}

#[test]
fn a_pre_created_account_with_its_external_id_is_where_sso_lands() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let [(alice, alice_pw, alice_sub), (bob, bob_pw, _)] = PEOPLE;
    // Alice pre-created with her external ID, as an inventory does it.
    let input = dir.path().join("people.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n",
            json!({"username": alice, "password": fresh("pw-"), "displayname": "Alice",
                   "external_ids": [format!("oidc-rig:{alice_sub}")]})
        ),
    )
    .unwrap();
    let run = Test::new()
        .args(["--admin-token-file", &s.admin_token_file(), "-k", &s.secret])
        .args(["--ensure", "--batch", input.to_str().unwrap(), &s.url])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sso_login(s, alice, alice_pw), s.user_id(alice));
    let second = format!("{alice}1");
    assert!(s.user(&second).is_none(), "a second account was made");
    // Again: still hers.
    assert_eq!(sso_login(s, alice, alice_pw), s.user_id(alice));

    // Bob pre-created without the link: his first SSO login makes another.
    s.register_directly(bob, "pw-bob-local-1", false);
    let landed = sso_login(s, bob, bob_pw);
    assert_ne!(landed, s.user_id(bob));
    assert_eq!(landed, s.user_id(&format!("{bob}1")));
}
