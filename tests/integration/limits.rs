//! Synapse's own rate limits, as shipped: the tool waits as long as the
//! server asks, says so, and finishes every row. These tests are slow on
//! purpose (minutes): the waits are the server's.

use crate::{Test, fresh, synapse, synapse_with};
use std::path::Path;

fn shipped(name: &str) -> String {
    crate::rig::root()
        .join("hooks")
        .join(name)
        .display()
        .to_string()
}

fn users_csv(dir: &Path, users: &[String]) -> std::path::PathBuf {
    let file = dir.join("users.csv");
    std::fs::write(&file, format!("username\n{}\n", users.join("\n"))).unwrap();
    file
}

/// A bot account of its own (its own rate-limit buckets), and its token.
fn new_bot(s: &crate::rig::Synapse, admin: bool) -> (String, String) {
    let bot = fresh("bot");
    s.register_directly(&bot, "bot-password", admin);
    let token = s.login(&bot, "bot-password").unwrap();
    (bot, token)
}

/// 13 users welcomed by a bot the server limits to 10 new rooms at once,
/// then one per 62.5 s: every user is welcomed once, the operator is told
/// once which limit holds and how to lift it, and the progress line shows
/// the wait.
#[test]
fn welcome_on_shipped_limits_reaches_everyone_once() {
    let s = synapse();
    let (bot, token) = new_bot(s, false);
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..13).map(|_| fresh("hello")).collect();
    let out = dir.path().join("out.jsonl");
    let run = Test::new()
        .args([
            "--batch",
            users_csv(dir.path(), &users).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--no-admin",
            "--hook",
            &shipped("welcome.lua"),
            "-k",
            &s.secret,
            &s.url,
        ])
        .env("RNMU_WELCOME_TOKEN", &token)
        .run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("13 registered"), "{run:#?}");
    s.assert_welcomed_once(&token, &users);
    // Told when the limit is first met, and once more when the wait grows
    // (createRoom meets rc_message's short waits, then rc_room_creation's
    // minute), not for every row that waits.
    let notices: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("rate-limits POST /_matrix/client/v3/createRoom"))
        .collect();
    assert!((1..=2).contains(&notices.len()), "{run:#?}");
    for n in &notices {
        assert!(
            n.contains("override_ratelimit")
                && n.contains(&s.user_id(&bot))
                && n.contains("in Synapse's rc_room_creation and rc_message"),
            "{n}"
        );
    }
    // No guess at the time left from one wait.
    assert!(
        !notices.iter().any(|n| n.contains("need about")),
        "{notices:?}"
    );
    assert!(
        run.stderr
            .contains("on a rate limit (POST /_matrix/client/v3/createRoom)"),
        "the progress line shows the wait: {run:#?}"
    );
    for u in &users {
        assert!(s.devices(u).is_empty(), "{u} keeps a device");
    }
}

/// With welcome.exempt_bot and a bot that is a server admin, the hook lifts
/// the bot's limits itself: no wait, and the override is on the server.
#[test]
fn welcome_exempts_an_admin_bot_when_asked() {
    let s = synapse();
    let (bot, token) = new_bot(s, true);
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..13).map(|_| fresh("fast")).collect();
    let run = Test::new()
        .args([
            "--batch",
            users_csv(dir.path(), &users).to_str().unwrap(),
            "--no-admin",
            "--json",
            "--hook",
            &shipped("welcome.lua"),
            "-k",
            &s.secret,
            &s.url,
        ])
        .env("RNMU_WELCOME_TOKEN", &token)
        .env("RNMU_WELCOME_EXEMPT_BOT", "1")
        .run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!run.stderr.contains("rate-limits"), "{run:#?}");
    s.assert_welcomed_once(&token, &users);
    let o = s.admin(&format!(
        "/_synapse/admin/v1/users/{}/override_ratelimit",
        s.user_id(&bot).replace('@', "%40").replace(':', "%3A")
    ));
    assert_eq!(o["messages_per_second"], 0, "{o}");

    // A bot that is no admin cannot be exempted: said before anyone is registered.
    let (_, plain) = new_bot(s, false);
    let nobody = fresh("nobody");
    Test::new()
        .args([
            "-u",
            &nobody,
            "-p",
            "pw-nobody",
            "--no-admin",
            "--hook",
            &shipped("welcome.lua"),
            "-k",
            &s.secret,
            &s.url,
        ])
        .env("RNMU_WELCOME_TOKEN", &plain)
        .env("RNMU_WELCOME_EXEMPT_BOT", "1")
        .run()
        .code(1)
        .stderr_has("the bot must be a server admin");
    assert!(s.user(&nobody).is_none());
}

/// Six rows whose accounts an earlier run may have created: each is settled
/// by a login, and logins are limited to 5 per client address, then one per
/// 333 s. The sixth waits that out, says so, and ends registered. On a
/// server of its own with the shipped limits, so no other test spends or
/// waits on this address's logins.
#[test]
fn settling_more_rows_than_the_login_limit_waits_it_out() {
    let s = synapse_with(
        "shipped-login-limit",
        serde_json::Value::Object(Default::default()),
    );
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..6).map(|_| fresh("settle")).collect();
    let out = dir.path().join("out.jsonl");
    let mut journal = String::new();
    for (i, u) in users.iter().enumerate() {
        let pw = format!("settle-password-{i}");
        // The earlier run's request reached the server; its answer did not.
        s.register_directly(u, &pw, false);
        journal.push_str(&format!(
            "{{\"username\":\"{u}\",\"status\":\"pending\",\"password\":\"{pw}\"}}\n"
        ));
    }
    std::fs::write(&out, journal).unwrap();
    let run = Test::new()
        .args([
            "--batch",
            users_csv(dir.path(), &users).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-j",
            "1",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("6 registered"), "{run:#?}");
    let notice = run
        .stderr
        .lines()
        .find(|l| l.contains("rate-limits POST /_matrix/client/v3/login"))
        .unwrap_or_else(|| panic!("the wait was not said: {run:#?}"));
    assert!(notice.contains("rc_login.address"), "{notice}");
    for (i, u) in users.iter().enumerate() {
        assert!(s.devices(u).is_empty(), "{u} keeps the settlement's device");
        assert!(s.login(u, &format!("settle-password-{i}")).is_some());
    }
}

/// The bounds of the command line's numbers: each value just past a bound
/// is a usage error naming the flag, and nothing is sent.
#[test]
fn numbers_past_their_bounds_are_usage_errors() {
    let s = crate::synapse();
    let u = crate::fresh("bounds");
    for (flag, bad) in [
        ("--jobs", "0"),
        ("--jobs", "257"),
        ("--hook-memory", "0"),
        ("--hook-memory", "4097"),
        ("--timeout", "0"),
        ("--timeout", "86401"),
        ("--hook-timeout", "-1"),
        ("--max-wait", "86400.5"),
        ("--deadline", "nan"),
    ] {
        crate::Test::new()
            // `=`: a value that starts with `-` is the flag's.
            .args(["-u", &u, "-p", "pw-bounds-1", "--no-admin"])
            .arg(format!("{flag}={bad}"))
            .args(["-k", &s.secret, &s.url])
            .run()
            .code(2)
            .stderr_has(flag.trim_start_matches('-'));
    }
    assert!(s.user(&u).is_none());
}
