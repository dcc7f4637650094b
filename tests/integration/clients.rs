//! What a person sees after onboarding, through a real client library:
//! `tests/clients/sees.mjs` logs in with matrix-js-sdk (the library Element
//! is built on, installed by `scripts/test-deps.sh`), syncs once and prints
//! each room as the client shows it. A Synapse of these tests' own, with
//! its default rate limits (each test logs in once as the person).

use crate::rig::Synapse;
use crate::{Test, fresh};
use serde_json::{Value, json};
use std::process::Command;

fn server() -> &'static Synapse {
    crate::synapse_with("clients", json!({}))
}

/// The rooms `user` sees on logging in with `password`, one JSON value
/// each (`room_id`, `name`, `membership`, `messages`).
fn sees(s: &Synapse, user: &str, password: &str) -> Vec<Value> {
    let dir = crate::rig::root().join("tests/clients");
    assert!(
        dir.join("node_modules/matrix-js-sdk").is_dir(),
        "matrix-js-sdk is not installed in tests/clients: run scripts/test-deps.sh"
    );
    let out = Command::new("node")
        .arg(dir.join("sees.mjs"))
        .args([&s.url, user, password])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "sees.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// welcome.lua, as shipped: on first login the person has joined the chat
/// with the bot, the client names it after the bot (not after an alias),
/// the welcome text is there to read, and no device is left behind.
#[test]
fn a_new_person_reads_the_welcome_in_a_chat_named_after_the_bot() {
    let s = server();
    let bot = fresh("greeter");
    s.register_directly(&bot, "pw-greeter-1", false);
    let bot_token = s.login(&bot, "pw-greeter-1").unwrap();
    let (status, _) = s.client(
        "PUT",
        &format!(
            "/_matrix/client/v3/profile/{}/displayname",
            crate::rig::enc(&s.user_id(&bot))
        ),
        &bot_token,
        Some(json!({"displayname": "Welcome Bot"})),
    );
    assert_eq!(status, 200);
    let u = fresh("person");
    Test::new()
        .args(["-u", &u, "-p", "pw-person-1", "--no-admin"])
        .args(["--displayname", "Olúwásẹ̀yí Adébáyọ̀", "--hook"])
        .arg(
            crate::rig::root()
                .join("hooks/welcome.lua")
                .to_str()
                .unwrap(),
        )
        .args(["-k", &s.secret, &s.url])
        .env("RNMU_WELCOME_TOKEN", &bot_token)
        .env("RNMU_WELCOME_MESSAGE", "Welcome, {displayname}!")
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.devices(&u).is_empty(), "the hook's session stayed");
    let rooms = sees(s, &u, "pw-person-1");
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let chat = &rooms[0];
    assert_eq!(chat["membership"], "join", "{chat}");
    assert_eq!(chat["name"], "Welcome Bot", "{chat}");
    assert_eq!(
        chat["messages"],
        json!(["Welcome, Olúwásẹ̀yí Adébáyọ̀!"]),
        "{chat}"
    );
    assert!(s.devices(&u).is_empty(), "the client's login stayed");
}
