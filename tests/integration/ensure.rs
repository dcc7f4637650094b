//! Accounts as desired state against the real server: `--ensure` creates
//! what is missing and brings what exists to what the input says, `--plan`
//! says so first and changes nothing, `--rollback` undoes what a batch
//! created. Every outcome is read back through the admin API.

use crate::{Test, fresh, synapse};
use serde_json::{Value, json};
use std::path::Path;

/// A results file's lines.
pub fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn write_jsonl(p: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(p, text).unwrap();
}

/// `--ensure` with the rig's config and admin token.
fn ensure() -> Test {
    let s = synapse();
    Test::new().args([
        "--ensure",
        "--admin-token-file",
        &s.admin_token_file(),
        "-k",
        &s.secret,
        &s.url,
    ])
}

/// `--ensure --batch INPUT -o OUT`, with the rig's config and admin token.
fn ensure_batch(input: &Path, out: &Path) -> Test {
    ensure().args([
        "--batch",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_batch_is_created_planned_changed_and_then_left_alone() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("ens");
    let (room, room_alias) = s.make_room(&format!("{tag}room"), false);
    let (space, _) = s.make_room(&format!("{tag}space"), true);
    let users: Vec<String> = (0..50).map(|i| format!("{tag}u{i}")).collect();
    let mut rows: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({
                "username": u,
                "admin": i % 10 == 0,
                "displayname": format!("User {i}"),
                "emails": [format!("{u}@example.org")],
                "rooms": [room_alias, space],
                "user_type": if i % 7 == 0 { Value::from("bot") } else { Value::Null },
            })
        })
        .collect();
    let input = dir.path().join("people.jsonl");
    let out = dir.path().join("results.jsonl");
    write_jsonl(&input, &rows);
    let batch = |extra: &[&str]| ensure_batch(&input, &out).args(extra.iter().copied()).run();

    batch(&[]).code(0);
    for (i, u) in users.iter().enumerate() {
        let acc = s.user(u).unwrap_or_else(|| panic!("{u} was not created"));
        assert_eq!(s.is_admin(u), i % 10 == 0, "{u} admin");
        assert_eq!(acc["displayname"], format!("User {i}"), "{u}");
        assert_eq!(s.emails(u), [format!("{u}@example.org")], "{u}");
        let joined = s.joined_rooms(u);
        assert!(
            joined.contains(&room) && joined.contains(&space),
            "{u}: {joined:?}"
        );
        assert_eq!(
            s.user_type(u).as_deref(),
            (i % 7 == 0).then_some("bot"),
            "{u}"
        );
        assert!(s.devices(u).is_empty(), "{u} has a device");
    }
    let first = lines(&out);
    let registered = first.iter().filter(|l| l["status"] == "registered").count();
    assert_eq!(registered, 50, "{first:?}");

    // Four rows edited: a promotion, a name, an email set, a room.
    let (extra_room, extra_alias) = s.make_room(&format!("{tag}extra"), false);
    rows[1]["admin"] = json!(true);
    rows[2]["displayname"] = json!("Renamed");
    rows[3]["emails"] = json!([format!("{}@example.org", users[3]), "second@example.org"]);
    rows[4]["rooms"] = json!([room_alias, space, extra_alias]);
    write_jsonl(&input, &rows);
    let edited: Vec<String> = (1..=4).map(|i| s.user_id(&users[i])).collect();

    let plan = batch(&["--plan", "--json"]);
    plan.code(4);
    let planned: Vec<Value> = plan
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changing: Vec<&str> = planned
        .iter()
        .filter(|l| l["changes"].as_object().is_some_and(|c| !c.is_empty()))
        .map(|l| l["user_id"].as_str().unwrap())
        .collect();
    let mut changing_sorted = changing.clone();
    changing_sorted.sort();
    let mut want = edited.clone();
    want.sort();
    assert_eq!(changing_sorted, want, "{planned:?}");
    // The plan changed nothing, and wrote nothing.
    assert!(!s.is_admin(&users[1]));
    assert!(!s.joined_rooms(&users[4]).contains(&extra_room));
    assert_eq!(lines(&out).len(), first.len());
    // Read at a glance without --json.
    let human = batch(&["--plan"]);
    human.code(4);
    assert!(
        human
            .stdout
            .contains(&format!("~ {}: admin no -> yes", edited[0])),
        "{human:?}"
    );
    assert!(
        human
            .stdout
            .contains(&format!("~ {}: rooms +{extra_alias}", edited[3])),
        "{human:?}"
    );
    // Only what changes is listed; the rest is counted, and listed at -v.
    assert_eq!(human.stdout.lines().count(), edited.len(), "{human:?}");
    assert!(!human.stdout.contains("nothing to change"), "{human:?}");
    assert!(
        human.stderr.contains(&format!(
            "{} to change, {} unchanged",
            edited.len(),
            50 - edited.len()
        )),
        "{human:?}"
    );
    let verbose = batch(&["--plan", "-v"]);
    assert_eq!(verbose.stdout.lines().count(), 50, "{verbose:?}");
    assert_eq!(
        verbose.stdout.matches(": nothing to change").count(),
        50 - edited.len(),
        "{verbose:?}"
    );

    batch(&[]).code(0);
    let second: Vec<Value> = lines(&out)[first.len()..].to_vec();
    for l in &second {
        let id = l["user_id"].as_str().unwrap();
        if edited.iter().any(|e| e == id) {
            assert_eq!(l["status"], "updated", "{l}");
            assert!(!l["changes"].as_object().unwrap().is_empty(), "{l}");
        } else {
            assert_eq!(l["status"], "unchanged", "{l}");
        }
        assert!(l.get("password").is_none(), "{l}");
    }
    assert_eq!(second.len(), 50);
    let promoted = second
        .iter()
        .find(|l| l["user_id"] == edited[0].as_str())
        .unwrap();
    assert_eq!(
        promoted["changes"]["admin"],
        json!({"from": false, "to": true})
    );
    assert!(s.is_admin(&users[1]));
    assert_eq!(s.user(&users[2]).unwrap()["displayname"], "Renamed");
    assert_eq!(s.emails(&users[3]).len(), 2);
    assert!(s.joined_rooms(&users[4]).contains(&extra_room));

    let third = batch(&[]);
    third.code(0);
    let third_lines = &lines(&out)[first.len() + 50..];
    assert!(
        third_lines.iter().all(|l| l["status"] == "unchanged"),
        "{third_lines:?}"
    );
    batch(&["--plan"]).code(0);
    for u in &users {
        assert!(s.devices(u).is_empty(), "{u} has a device");
    }
}

#[test]
fn an_existing_user_is_made_an_admin_with_the_original_flags() {
    let s = synapse();
    let u = fresh("promo");
    s.register_directly(&u, "a-long-password-1", false);
    let run = ensure().args(["-u", &u, "--admin"]).run();
    run.code(0);
    assert_eq!(
        run.stdout,
        format!("Updated {}: admin no -> yes\n", s.user_id(&u))
    );
    assert!(s.is_admin(&u));
    let again = ensure().args(["-u", &u, "--admin"]).run();
    again.code(0);
    assert_eq!(
        again.stdout,
        format!("Nothing to change for {}\n", s.user_id(&u))
    );
    // A single --plan: the drift status, and the same words.
    ensure()
        .args(["-u", &u, "--no-admin", "--plan"])
        .run()
        .code(4)
        .stdout(&format!("~ {}: admin yes -> no\n", s.user_id(&u)));
    assert!(s.is_admin(&u));
}

#[test]
fn a_missing_user_is_created_with_the_original_lines() {
    let s = synapse();
    let u = fresh("newens");
    let run = ensure()
        .args(["-u", &u, "-p", "a-long-password-2", "--no-admin"])
        .args(["--displayname", "New One", "--email", "new@example.org"])
        .run();
    run.code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert_eq!(s.user(&u).unwrap()["displayname"], "New One");
    assert_eq!(s.emails(&u), ["new@example.org"]);
    assert!(s.login(&u, "a-long-password-2").is_some());
    assert!(s.devices(&u).len() <= 1);
}

#[test]
fn without_ensure_exists_ok_stays_the_original() {
    let s = synapse();
    let u = fresh("dropin");
    s.register_directly(&u, "a-long-password-3", false);
    Test::new()
        .args([
            "-u",
            &u,
            "-p",
            "a-long-password-3",
            "--admin",
            "--exists-ok",
        ])
        .args(["-k", &s.secret, &s.url])
        .run()
        .code(0)
        .stdout("Sending registration request...\nUser already exists. Skipping.\n");
    assert!(!s.is_admin(&u));
}

#[test]
fn bad_admin_tokens_get_one_line_and_create_nobody() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "syt_not_a_token").unwrap();
    let u = fresh("badtok");
    let run = Test::new()
        .args(["--ensure", "--admin-token-file", wrong.to_str().unwrap()])
        .args(["-u", &u, "-p", "a-long-password-4", "-k", &s.secret, &s.url])
        .run();
    run.code(1).one_clear_line();
    run.stderr_has("the admin token is not valid");
    assert!(s.user(&u).is_none());

    // A real token of a user who is not a server admin.
    let plain = fresh("plain");
    s.register_directly(&plain, "a-long-password-5", false);
    let token = s.login(&plain, "a-long-password-5").unwrap();
    let not_admin = dir.path().join("not-admin");
    std::fs::write(&not_admin, &token).unwrap();
    let run = Test::new()
        .args([
            "--ensure",
            "--admin-token-file",
            not_admin.to_str().unwrap(),
        ])
        .args(["-u", &u, "-p", "a-long-password-4", "-k", &s.secret, &s.url])
        .run();
    run.code(1).one_clear_line();
    run.stderr_has(&format!(
        "the admin token belongs to {}, who is not a server admin",
        s.user_id(&plain)
    ));
    run.never_shows(&[token]);
    assert!(s.user(&u).is_none());

    // No token at all.
    Test::new()
        .args([
            "--ensure",
            "-u",
            &u,
            "-p",
            "a-long-password-4",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(2)
        .stderr_has("--admin-token-file");
}

#[test]
fn rollback_deactivates_exactly_what_a_batch_created() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("rb");
    let existing = format!("{tag}old");
    s.register_directly(&existing, "a-long-password-6", false);
    let mut rows: Vec<Value> = (0..5)
        .map(|i| json!({"username": format!("{tag}n{i}")}))
        .collect();
    rows.push(json!({"username": existing, "displayname": "Kept"}));
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(&input, &rows);
    ensure_batch(&input, &out).run().code(0);
    let rollback = |extra: &[&str]| {
        Test::new()
            .args(["--rollback", out.to_str().unwrap()])
            .args([
                "--admin-token-file",
                &s.admin_token_file(),
                "-k",
                &s.secret,
                &s.url,
            ])
            .args(extra.iter().copied())
            .run()
    };
    // Without a terminal it asks for --yes, and touches nothing.
    rollback(&[]).code(2).stderr_has("--yes");
    let plan = rollback(&["--plan"]);
    plan.code(4);
    assert_eq!(plan.stdout.matches(": deactivate").count(), 5, "{plan:?}");
    let deactivated = |u: &str| s.user(u).unwrap()["deactivated"] == json!(true);
    assert!(!deactivated(&format!("{tag}n0")));

    rollback(&["--yes"]).code(0);
    for i in 0..5 {
        assert!(deactivated(&format!("{tag}n{i}")), "{tag}n{i}");
        // Not erased without --erase.
        assert_eq!(
            s.user(&format!("{tag}n{i}")).unwrap()["erased"],
            json!(false)
        );
    }
    assert!(!deactivated(&existing));
    let recorded = lines(&out)
        .iter()
        .filter(|l| l["status"] == "deactivated")
        .count();
    assert_eq!(recorded, 5);
    // A second run deactivates nobody.
    let again = rollback(&["--yes"]);
    again.code(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
    assert_eq!(
        lines(&out)
            .iter()
            .filter(|l| l["status"] == "deactivated")
            .count(),
        5
    );
}

#[test]
fn rollback_erases_only_when_asked() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("erase");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(
        &input,
        &[json!({"username": u, "displayname": "Gone Soon"})],
    );
    ensure_batch(&input, &out).run().code(0);
    Test::new()
        .args(["--rollback", out.to_str().unwrap(), "--yes", "--erase"])
        .args([
            "--admin-token-file",
            &s.admin_token_file(),
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(0);
    let acc = s.user(&u).unwrap();
    assert_eq!(acc["deactivated"], json!(true));
    assert_eq!(acc["erased"], json!(true), "{acc}");
}

#[test]
fn the_admin_token_never_shows_at_any_verbosity() {
    let s = synapse();
    let u = fresh("quiet");
    s.register_directly(&u, "a-long-password-18", false);
    let token = std::fs::read_to_string(s.admin_token_file())
        .unwrap()
        .trim()
        .to_string();
    for v in ["-v", "-vv"] {
        ensure()
            .args(["-u", &u, "--admin", "--displayname", "Seen", v])
            .run()
            .code(0)
            .never_shows(std::slice::from_ref(&token));
        ensure()
            .args(["-u", &u, "--no-admin", "--plan", "--json", v])
            .run()
            .never_shows(std::slice::from_ref(&token));
    }
}

/// `locked` in a row locks an account (it cannot log in, and keeps its
/// data) and unlocks it; `--plan` shows it first.
#[test]
fn locked_locks_and_unlocks_an_account() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("lock");
    s.register_directly(&u, "pw-lock-1", false);
    let input = dir.path().join("lock.jsonl");
    write_jsonl(&input, &[json!({"username": u, "locked": true})]);
    let plan = ensure()
        .args(["--plan", "--batch", input.to_str().unwrap()])
        .run();
    plan.code(4).stdout_has("locked no -> yes");
    assert_eq!(s.user(&u).unwrap()["locked"], false);
    ensure()
        .args(["-q", "--batch", input.to_str().unwrap()])
        .run()
        .code(0);
    assert_eq!(s.user(&u).unwrap()["locked"], true);
    assert!(
        s.login(&u, "pw-lock-1").is_none(),
        "a locked account logged in"
    );
    write_jsonl(&input, &[json!({"username": u, "locked": false})]);
    ensure()
        .args(["-q", "--batch", input.to_str().unwrap()])
        .run()
        .code(0);
    assert_eq!(s.user(&u).unwrap()["locked"], false);
    assert!(s.login(&u, "pw-lock-1").is_some());
}

/// Every field of `changes` has one JSON type in every line of a results
/// file: a list stays a list (`[]` when empty) in the pending, registered and
/// updated lines alike, and the other fields are their type or null.
#[test]
fn each_field_of_changes_has_one_json_type_in_every_line() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("types");
    let (_, alias) = s.make_room(&format!("{tag}room"), false);
    let u = format!("{tag}u");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    let row = |email: &str, name: &str| {
        json!({"username": u, "password": "pw-types-1", "displayname": name,
               "emails": [email], "rooms": [alias], "admin": false})
    };
    // Created, then changed, into the same results file.
    for (email, name) in [
        (format!("{u}@example.org"), "One"),
        (format!("{u}.2@example.org"), "Two"),
    ] {
        write_jsonl(&input, &[row(&email, name)]);
        ensure_batch(&input, &out).run().code(0);
    }
    let lines = lines(&out);
    assert!(lines.len() >= 3, "{lines:?}");
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut seen: std::collections::BTreeMap<String, std::collections::BTreeSet<&str>> =
        Default::default();
    for l in &lines {
        for (field, c) in l["changes"].as_object().into_iter().flatten() {
            for end in ["from", "to"] {
                seen.entry(format!("{field}.{end}"))
                    .or_default()
                    .insert(kind(&c[end]));
            }
        }
    }
    for (field, kinds) in &seen {
        let real: Vec<_> = kinds.iter().filter(|k| **k != "null").collect();
        assert!(real.len() <= 1, "{field} has types {kinds:?}: {lines:#?}");
        if field.starts_with("emails") || field.starts_with("rooms") {
            assert_eq!(real, [&"array"], "{field}: {lines:#?}");
        }
    }
    assert!(seen.contains_key("emails.from") && seen.contains_key("rooms.to"));
}
