//! Desired state that cannot hurt, against the real server: rollback undoes
//! only what its results file proves a run created on this server; the
//! admin token's own account is never deactivated, locked, demoted or
//! erased; no field takes what belongs to another account; nothing is
//! written from a read that failed; values converge; no file and no token
//! leaves by a side door; each field means what it says.

use crate::ensure::lines;
use crate::rig::enc;
use crate::{Test, fresh, synapse};
use serde_json::{Value, json};
use std::path::Path;

fn write_jsonl(p: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(p, text).unwrap();
    set_private(p);
}

fn set_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The tool against the rig with `token_file` as the admin token.
fn as_admin(token_file: &str) -> Test {
    let s = synapse();
    Test::new().args(["--admin-token-file", token_file, "-k", &s.secret, &s.url])
}

fn ensure() -> Test {
    as_admin(&synapse().admin_token_file()).arg("--ensure")
}

/// A server admin of this test's own, and a file with its token: tests
/// that try to hurt the token's account never touch the rig's admin.
fn own_admin(dir: &Path, tag: &str) -> (String, String) {
    let s = synapse();
    let name = format!("{tag}adm");
    let id = s.register_directly(&name, "pw-own-admin-1", true);
    let token = s.login(&name, "pw-own-admin-1").expect("admin login");
    let file = dir.join("own-admin.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    set_private(&file);
    (id, file.display().to_string())
}

fn deactivated(u: &str) -> bool {
    synapse().user(u).unwrap()["deactivated"] == json!(true)
}

fn rollback(results: &Path, extra: &[&str]) -> crate::Run {
    as_admin(&synapse().admin_token_file())
        .args(["--rollback", results.to_str().unwrap()])
        .args(extra.iter().copied())
        .run()
}

/// Items 1 and 3: an apply that fails on an existing account (the token's
/// own among them) makes no rollback candidate, and the token's account is
/// never deactivated, locked or demoted, one line per row.
#[test]
fn rollback_and_ensure_leave_existing_accounts_and_the_tokens_own() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe1");
    let (admin_id, token) = own_admin(dir.path(), &tag);
    let victim = format!("{tag}victim");
    s.register_directly(&victim, "pw-victim-1", false);
    let typo = format!("#{tag}typo:{}", s.server_name);
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(
        &input,
        &[
            json!({"username": victim, "rooms": [typo]}),
            json!({"username": format!("{tag}adm"), "rooms": [typo]}),
        ],
    );
    let run = as_admin(&token)
        .args(["--ensure", "--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run();
    run.code(1)
        .stderr_has("2 incomplete (existing accounts, a change undone");
    assert!(!run.stderr.contains("registered, a later step"), "{run:?}");
    let again = as_admin(&token)
        .args(["--rollback", out.to_str().unwrap(), "--yes"])
        .run();
    again.code(0).stdout_has("nothing to do");
    assert!(!deactivated(&victim));
    assert!(!deactivated(&format!("{tag}adm")));

    // Rows that would take the token away: refused, one line each, and the
    // rows after them still run with the token.
    let after = format!("{tag}after");
    for (harm, field) in [
        (json!({"active": false}), "deactivated"),
        (json!({"locked": true}), "locked"),
        (json!({"admin": false}), "demoted"),
    ] {
        let mut row = json!({"username": format!("{tag}adm")});
        row.as_object_mut()
            .unwrap()
            .extend(harm.as_object().unwrap().clone());
        write_jsonl(
            &input,
            &[row, json!({"username": after, "password": "pw-after-1"})],
        );
        let run = as_admin(&token)
            .args(["--ensure", "--batch", input.to_str().unwrap()])
            .run();
        run.code(1).stderr_has(&format!(
            "{admin_id} is the account whose admin token this run uses"
        ));
        assert!(run.stderr.contains(&format!("would be {field}")), "{run:?}");
        assert!(s.user(&after).is_some(), "the next row did not run");
    }
    let me = s.user(&format!("{tag}adm")).unwrap();
    assert_eq!(
        (&me["deactivated"], &me["locked"], &me["admin"]),
        (&json!(false), &json!(false), &json!(true))
    );
}

/// Item 2 and the done-when: a results file with one line of each kind
/// (created, existed, another server's, torn, claimed by hand) rolls back
/// exactly the accounts of this server it proves created.
#[test]
fn rollback_deactivates_exactly_the_created_accounts_of_this_server() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe2");
    let n = |x: &str| format!("{tag}{x}");
    // Made by a real run: one created, one that existed.
    s.register_directly(&n("old"), "pw-old-1", false);
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(
        &input,
        &[
            json!({"username": n("made"), "password": "pw-made-1"}),
            json!({"username": n("old"), "displayname": "Old"}),
        ],
    );
    ensure()
        .args(["--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run()
        .code(0);
    // Accounts the hand-written lines name, all of them real and active.
    for x in ["carol", "dave", "torn", "hand"] {
        s.register_directly(&n(x), "pw-local-1", false);
    }
    let mut text = std::fs::read_to_string(&out).unwrap();
    let torn = format!(
        "{{\"username\":\"{}\",\"user_id\":\"{}\",\"status\":\"regis",
        n("torn"),
        s.user_id(&n("torn"))
    );
    text.push_str(&format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        json!({"username": n("carol"), "status": "pending"}),
        json!({"username": n("carol"), "user_id": format!("@{}:staging.example.org", n("carol")), "status": "registered", "created": true}),
        json!({"username": format!(" {} ", n("DAVE")), "status": "incomplete"}),
        json!({"username": n("hand"), "user_id": s.user_id(&n("hand")), "status": "registered"}),
        json!({"username": n("torn"), "status": "pending"}),
        // Cut short by a crash.
        torn,
    ));
    std::fs::write(&out, text).unwrap();
    let plan = rollback(&out, &["--plan"]);
    // The created account; the other server's line is refused.
    assert_eq!(plan.stdout.matches(": deactivate").count(), 1, "{plan:?}");
    let run = rollback(&out, &["--yes"]);
    run.code(1)
        .stderr_has(&format!("records @{}:staging.example.org", n("carol")))
        .stderr_has(&format!(
            "{}{}",
            n("dave").to_lowercase(),
            " is recorded as created"
        ))
        .stderr_has(&format!("{} is recorded as created", n("hand")));
    assert!(deactivated(&n("made")));
    for x in ["old", "carol", "dave", "torn", "hand"] {
        assert!(!deactivated(&n(x)), "{x} was deactivated");
    }
}

/// Items 4 and 6: accounts an interrupted rollback deactivated without
/// recording it are recorded by the rerun, every deactivation is counted
/// and recorded `deactivated` (an `incomplete` creation too), and a second
/// run deactivates nobody and asks nothing.
#[test]
fn a_rerun_finishes_an_interrupted_rollback_and_records_every_deactivation() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe4");
    let users: Vec<String> = (0..4).map(|i| format!("{tag}u{i}")).collect();
    let mut rows: Vec<Value> = users
        .iter()
        .map(|u| json!({"username": u, "password": "pw-rb-1"}))
        .collect();
    // One created, then a step undone: recorded `incomplete`.
    rows[3]["rooms"] = json!([format!("#{tag}none:{}", s.server_name)]);
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(&input, &rows);
    ensure()
        .args(["--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run()
        .code(1);
    // The rows run at once: their lines come in any order.
    let last = lines(&out)
        .into_iter()
        .rfind(|l| l["username"] == json!(users[3]))
        .unwrap();
    assert_eq!(last["status"], "incomplete");
    // What a rollback stopped by a signal leaves: two deactivated on the
    // server, and nothing of it in the file.
    for u in &users[..2] {
        let (status, _) = s.client(
            "POST",
            &format!("/_synapse/admin/v1/deactivate/{}", enc(&s.user_id(u))),
            std::fs::read_to_string(s.admin_token_file())
                .unwrap()
                .trim(),
            Some(json!({"erase": false})),
        );
        assert_eq!(status, 200);
    }
    let run = rollback(&out, &["--yes"]);
    run.code(0).stderr_has("rollback: 4 accounts in");
    assert!(
        run.stderr
            .contains("2 deactivated, 2 already inactive or gone, 0 refused, 0 failed"),
        "{run:?}"
    );
    for u in &users {
        assert!(deactivated(u), "{u}");
    }
    let recorded = lines(&out)
        .iter()
        .filter(|l| l["status"] == "deactivated")
        .count();
    assert_eq!(recorded, 4);
    assert!(
        !lines(&out)
            .iter()
            .any(|l| l["status"] == "registered" && l.get("line").is_none())
    );
    rollback(&out, &["--yes"])
        .code(0)
        .stdout_has("nothing to do");
    // Nothing to ask either, so no --yes is needed.
    rollback(&out, &[]).code(0).stdout_has("nothing to do");
}

/// Item 5: a results file that does not exist is an error, and nothing is
/// made.
#[test]
fn rollback_of_a_missing_file_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.jsonl");
    rollback(&missing, &["--yes"])
        .code(2)
        .one_clear_line()
        .stderr_has("does not exist");
    assert!(!missing.exists());
}

/// Item 7: an address another account has is never moved to the row's,
/// and two rows of one input that give one address are refused before
/// anything is sent.
#[test]
fn an_email_address_of_another_account_is_never_taken() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe7");
    let irene = format!("{tag}irene");
    let jack = format!("{tag}jack");
    s.register_directly(&irene, "pw-irene-1", false);
    s.register_directly(&jack, "pw-jack-1", false);
    let shared = format!("{tag}@x.org");
    let token = std::fs::read_to_string(s.admin_token_file()).unwrap();
    let (status, _) = s.client(
        "PUT",
        &format!("/_synapse/admin/v2/users/{}", enc(&s.user_id(&irene))),
        token.trim(),
        Some(json!({"threepids": [{"medium": "email", "address": shared}]})),
    );
    assert_eq!(status, 200);
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &[json!({"username": jack, "emails": [shared]})]);
    let want = format!(
        "the email address {shared} belongs to {}",
        s.user_id(&irene)
    );
    ensure()
        .args(["--plan", "--batch", input.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has(&want);
    ensure()
        .args(["--batch", input.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has(&want);
    assert_eq!(s.emails(&irene), std::slice::from_ref(&shared));
    assert!(s.emails(&jack).is_empty());

    // Two rows, one address (as the server keeps it): a usage error, and
    // the new account of the first row is not made.
    let first = format!("{tag}first");
    write_jsonl(
        &input,
        &[
            json!({"username": first, "password": "pw-first-1", "emails": [format!("{tag}@Y.org")]}),
            json!({"username": jack, "emails": [format!("{tag}@y.org")]}),
        ],
    );
    ensure()
        .args(["--batch", input.to_str().unwrap()])
        .run()
        .code(2)
        .one_clear_line()
        .stderr_has("which line 1 gives too");
    assert!(s.user(&first).is_none());
}

/// Item 8: the emails are written only with the phone numbers a read that
/// succeeded just now gave; when it fails, nothing is written.
#[test]
fn no_list_is_written_from_a_read_that_failed() {
    let s = crate::faults::server();
    let dir = tempfile::tempdir().unwrap();
    let hank = fresh("safe8hank");
    s.register_directly(&hank, "pw-hank-1", false);
    let token = s.admin_token_file();
    let (status, _) = s.client(
        "PUT",
        &format!("/_synapse/admin/v2/users/{}", enc(&s.user_id(&hank))),
        std::fs::read_to_string(&token).unwrap().trim(),
        Some(json!({"threepids": [
            {"medium": "email", "address": format!("{hank}@old.org")},
            {"medium": "msisdn", "address": "447700900123"},
        ]})),
    );
    assert_eq!(status, 200);
    // Every read of the account's rooms after the first answers 502: the
    // read stage's succeeds, the apply stage's re-read fails.
    fn second_rooms_read_fails(line: &str) -> bool {
        static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        line.contains("safe8hank")
            && line.contains("/joined_rooms")
            && SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1
    }
    let proxy = crate::faults::proxy_to(
        s,
        1000,
        1,
        second_rooms_read_fails,
        Some(crate::faults::Fault::Html502),
    );
    let input = dir.path().join("in.jsonl");
    write_jsonl(
        &input,
        &[json!({"username": hank, "emails": [format!("{hank}@new.org")]})],
    );
    let run = Test::new()
        .args(["--ensure", "--admin-token-file", &token, "-k", &s.secret])
        .args(["--retries", "0", "--batch", input.to_str().unwrap()])
        .arg(&proxy.url)
        .run();
    run.code(1).stderr_has("phone numbers");
    assert!(proxy.injected() > 0);
    let u = s.user(&hank).unwrap();
    let kept: Vec<&str> = u["threepids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["address"].as_str().unwrap())
        .collect();
    assert!(kept.contains(&"447700900123"), "{u}");
    assert!(kept.contains(&format!("{hank}@old.org").as_str()), "{u}");
}

/// Item 9: values are compared as the server keeps them, so a rerun plans
/// nothing.
#[test]
fn values_converge_as_the_server_keeps_them() {
    let s = synapse();
    let u = fresh("safe9");
    s.register_directly(&u, "pw-nine-1", false);
    ensure()
        .args([
            "-u",
            &u,
            "--displayname",
            "",
            "--email",
            "Straße@Example.org",
        ])
        .run()
        .code(0);
    assert_eq!(s.emails(&u), ["strasse@example.org"]);
    ensure()
        .args([
            "-u",
            &u,
            "--displayname",
            "",
            "--email",
            "Straße@Example.org",
        ])
        .args(["--plan"])
        .run()
        .code(0)
        .stdout_has("nothing to change");
    ensure()
        .args(["-u", &u, "--displayname", "  Spaced  "])
        .run()
        .code(0);
    ensure()
        .args(["-u", &u, "--displayname", "  Spaced  ", "--plan"])
        .run()
        .code(0);
}

/// The media the rig's admin has uploaded.
fn admin_media_count() -> usize {
    let s = synapse();
    let token = std::fs::read_to_string(s.admin_token_file()).unwrap();
    let (_, me) = s.client(
        "GET",
        "/_matrix/client/v3/account/whoami",
        token.trim(),
        None,
    );
    let j = s.admin(&format!(
        "/_synapse/admin/v1/users/{}/media?limit=1000",
        enc(me["user_id"].as_str().unwrap())
    ));
    j["total"].as_u64().unwrap() as usize
}

/// A 1x1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

/// Item 10: an avatar file is an image by its content, a regular file, and
/// none of the run's secret files; a new image for many users is uploaded
/// once, whatever the workers do.
#[test]
fn only_images_are_uploaded_as_avatars_and_each_once() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe10");
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "secret: hunter2\n").unwrap();
    // An image by its first bytes, one byte past the bound.
    let huge = dir.path().join("huge.png");
    let mut big = PNG.to_vec();
    big.resize((16 << 20) + 1, 0);
    std::fs::write(&huge, big).unwrap();
    let before = admin_media_count();
    let files = [
        s.admin_token_file(),
        s.config.display().to_string(),
        "/proc/self/environ".to_string(),
        text.display().to_string(),
        "/dev/zero".to_string(),
        huge.display().to_string(),
    ];
    let rows: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let u = format!("{tag}d{i}");
            s.register_directly(&u, "pw-avatar-1", false);
            json!({"username": u, "avatar": f})
        })
        .collect();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &rows);
    let run = ensure().args(["--batch", input.to_str().unwrap()]).run();
    run.code(1);
    for want in [
        "one of this run's secret files",
        "not a PNG, JPEG, GIF or WebP image",
        "is empty",
        "not a regular file",
        "larger than 16 MiB",
    ] {
        assert!(run.stderr.contains(want), "{want}: {run:?}");
    }
    assert_eq!(admin_media_count(), before, "something was uploaded");
    for i in 0..files.len() {
        assert!(s.user(&format!("{tag}d{i}")).unwrap()["avatar_url"].is_null());
    }

    // One new image for eight existing users, four workers: one upload.
    let png = dir.path().join("face.png");
    std::fs::write(&png, PNG).unwrap();
    let users: Vec<String> = (0..8).map(|i| format!("{tag}p{i}")).collect();
    let rows: Vec<Value> = users
        .iter()
        .map(|u| {
            s.register_directly(u, "pw-avatar-2", false);
            json!({"username": u, "avatar": png.display().to_string()})
        })
        .collect();
    write_jsonl(&input, &rows);
    let before = admin_media_count();
    ensure()
        .args(["-j", "4", "--batch", input.to_str().unwrap()])
        .run()
        .code(0);
    assert_eq!(admin_media_count(), before + 1);
    let urls: std::collections::HashSet<String> = users
        .iter()
        .map(|u| {
            s.user(u).unwrap()["avatar_url"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(urls.len(), 1, "{urls:?}");
}

/// Item 11: a hook's request path cannot take the admin token to another
/// host: every trick is refused before anything leaves.
#[test]
fn a_hooks_request_never_leaves_the_server() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    echo.set_nonblocking(true).unwrap();
    let tricks = [
        format!("@127.0.0.1:{port}/x"),
        format!("//127.0.0.1:{port}/x"),
        format!("http://127.0.0.1:{port}/x"),
        format!("\\\\127.0.0.1:{port}/x"),
        format!("/\\@127.0.0.1:{port}/x"),
        format!(":{port}/x"),
        format!("/x#@127.0.0.1:{port}"),
        format!(".127.0.0.1:{port}/x"),
    ];
    let list: Vec<String> = tricks.iter().map(|t| format!("{t:?}")).collect();
    let hook = dir.path().join("exfil.lua");
    std::fs::write(
        &hook,
        format!(
            "return {{ after_submit = function()\n\
               local out = {{}}\n\
               for _, p in ipairs({{{}}}) do\n\
                 local ok, e = pcall(rnmu.matrix.request, {{path = p, admin = true}})\n\
                 out[#out + 1] = (ok and 'SENT ' or 'REFUSED ') .. tostring(e)\n\
               end\n\
               rnmu.log.warn(table.concat(out, ' | '))\n\
             end }}",
            list.join(", ")
        ),
    )
    .unwrap();
    let token = std::fs::read_to_string(s.admin_token_file())
        .unwrap()
        .trim()
        .to_string();
    let run = Test::new()
        .args(["-u", &fresh("safe11"), "-p", "pw-hook-11", "--no-admin"])
        .args(["--admin-token-file", &s.admin_token_file(), "--hook"])
        .arg(hook.to_str().unwrap())
        .args(["-k", &s.secret, &s.url])
        .run();
    run.code(0).never_shows(std::slice::from_ref(&token));
    assert_eq!(
        run.stderr.matches("REFUSED").count(),
        tricks.len(),
        "{run:?}"
    );
    assert!(!run.stderr.contains("SENT"), "{run:?}");
    assert!(echo.accept().is_err(), "a request reached the other host");
}

/// Item 12: a deactivated account is changed as a whole or not at all.
#[test]
fn a_deactivated_account_is_never_changed_in_part() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let erin = fresh("safe12");
    s.register_directly(&erin, "pw-erin-1", false);
    let token = std::fs::read_to_string(s.admin_token_file()).unwrap();
    s.client(
        "POST",
        &format!("/_synapse/admin/v1/deactivate/{}", enc(&s.user_id(&erin))),
        token.trim(),
        Some(json!({"erase": true})),
    );
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(
        &input,
        &[json!({"username": erin, "active": true, "admin": true, "displayname": "Back"})],
    );
    ensure()
        .args(["--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run()
        .code(1)
        .stderr_has("erased_ok");
    write_jsonl(
        &input,
        &[json!({"username": erin, "admin": true, "displayname": "Back"})],
    );
    ensure()
        .args(["--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run()
        .code(0);
    let u = s.user(&erin).unwrap();
    assert_eq!(
        (&u["admin"], &u["deactivated"]),
        (&json!(false), &json!(true))
    );
    assert_ne!(u["displayname"], "Back");
    assert!(!lines(&out).iter().any(|l| l["status"] == "incomplete"));
    rollback(&out, &["--yes"])
        .code(0)
        .stdout_has("nothing to do");
}

/// Item 13: `--erase` and `--yes` belong to `--rollback`, whose plan says
/// when it erases.
#[test]
fn erase_and_yes_go_with_rollback_only() {
    let s = synapse();
    let u = fresh("safe13");
    for flag in ["--erase", "--yes"] {
        ensure()
            .args(["-u", &u, "-p", "pw-thirteen-1", flag])
            .run()
            .code(2)
            .stderr_has("goes with --rollback");
    }
    assert!(s.user(&u).is_none());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    write_jsonl(
        &input,
        &[json!({"username": u, "password": "pw-thirteen-1"})],
    );
    ensure()
        .args(["--batch", input.to_str().unwrap(), "-o"])
        .arg(out.to_str().unwrap())
        .run()
        .code(0);
    rollback(&out, &["--plan", "--erase"])
        .code(4)
        .stdout_has(&format!("- {}: deactivate and erase", s.user_id(&u)));
}

/// Item 14: every room is tried; those that fail are named, and the row
/// is `incomplete`.
#[test]
fn every_room_is_tried() {
    let s = synapse();
    let tag = fresh("safe14");
    let u = format!("{tag}u");
    s.register_directly(&u, "pw-rooms-1", false);
    let (room, alias) = s.make_room(&format!("{tag}ok"), false);
    let missing = format!("!doesnotexist{tag}:{}", s.server_name);
    let run = ensure()
        .args(["-u", &u, "--room", &missing, "--room", &alias])
        .run();
    run.code(1).stderr_has(&missing);
    assert!(s.joined_rooms(&u).contains(&room));
}

/// Item 15: a hook may remove a planned change or change its `to`; it may
/// not add one, and what it sets is checked as a row's value is.
#[test]
fn hooks_cannot_add_changes_or_send_unchecked_values() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("safe15");
    s.register_directly(&u, "pw-hooks-1", false);
    let cases = [
        (
            "rec.changes.admin = {from = false, to = true}",
            "a hook added a change of admin",
            json!({"username": u}),
        ),
        (
            "rec.changes.displayname.to = 12345",
            "changes.displayname.to",
            json!({"username": u, "displayname": "Valid"}),
        ),
        (
            "rec.changes.emails.to = {'not-an-email'}",
            "is not an email address",
            json!({"username": u, "emails": [format!("{u}@ok.org")]}),
        ),
    ];
    for (body, want, row) in cases {
        let hook = dir.path().join("add.lua");
        std::fs::write(
            &hook,
            format!("return {{ after_read = function(rec) {body} return rec end }}"),
        )
        .unwrap();
        let input = dir.path().join("in.jsonl");
        write_jsonl(&input, &[row]);
        ensure()
            .args(["--batch", input.to_str().unwrap(), "--hook"])
            .arg(hook.to_str().unwrap())
            .run()
            .code(1)
            .stderr_has(want);
    }
    let acc = s.user(&u).unwrap();
    assert_eq!(acc["admin"], json!(false));
    assert_ne!(acc["displayname"], "12345");
    assert!(s.emails(&u).is_empty());
}

/// Item 16: values an existing account is given are checked as a new
/// account's are, before anything is sent.
#[test]
fn values_for_existing_accounts_are_validated_first() {
    let s = synapse();
    let u = fresh("safe16");
    s.register_directly(&u, "pw-valid-1", false);
    let long = "n".repeat(300);
    ensure()
        .args(["-u", &u, "--displayname", &long])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("at most 256");
    ensure()
        .args(["-u", &u, "-t", "wizard"])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("not one the server knows");
    assert!(s.user_type(&u).is_none());
}

/// Item 18: each says what is true.
#[test]
fn the_words_say_what_is_true() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("safe18");
    let u = format!("{tag}x");
    s.register_directly(&u, "pw-words-1", false);
    // A failed change of an existing account is a plain failure (1), not
    // "created" (3).
    ensure()
        .args(["-u", &u, "--room", &format!("#{tag}none:{}", s.server_name)])
        .run()
        .code(1)
        .stderr_has("exists, but");
    // A plan names a new account by its user ID.
    ensure()
        .args(["-u", &format!("{tag}new"), "-p", "pw-words-2", "--plan"])
        .run()
        .code(4)
        .stdout(&format!("+ {}: create\n", s.user_id(&format!("{tag}new"))));
    // --exists-ok means nothing with --ensure.
    ensure()
        .args(["-u", &u, "--exists-ok"])
        .run()
        .code(2)
        .stderr_has("--exists-ok has no meaning with --ensure");
    // A misspelt field is refused; a field for hooks is named x_.
    let input = dir.path().join("in.jsonl");
    write_jsonl(
        &input,
        &[
            json!({"username": u, "admni": true}),
            json!({"username": u, "x_team": "red"}),
        ],
    );
    let run = ensure().args(["--batch", input.to_str().unwrap()]).run();
    run.code(1)
        .stderr_has("\"admni\" is not a field --ensure manages");
    // A token file with a line break inside.
    let bad = dir.path().join("two-lines.token");
    std::fs::write(&bad, "syt_first\nsyt_second\n").unwrap();
    set_private(&bad);
    as_admin(bad.to_str().unwrap())
        .args(["--ensure", "-u", &u])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("holds more than one token");
    // A redirect on the token check is said as one.
    let redirect = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", redirect.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in redirect.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    Test::new()
        .args(["--admin-token-file", &s.admin_token_file(), "-k", &s.secret])
        .args(["--ensure", "-u", &u, &url])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("answered with a redirect");
}
