//! Batch onboarding against the real server: formats, bad rows, hooks,
//! results, resuming after a kill.

use crate::{Run, Test, fresh, synapse};
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn batch(file: &Path) -> Test {
    let s = synapse();
    Test::new().args([
        "--batch",
        file.to_str().unwrap(),
        "-k",
        s.secret.as_str(),
        s.url.as_str(),
    ])
}

/// The JSON lines of a results file or of --json output.
fn results(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Each username's outcome, by the README's rule: the last line for the
/// username whose status is not `duplicate`.
pub fn last_by_user(lines: &[Value]) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for l in lines {
        if let (Some(u), false) = (l["username"].as_str(), l["status"] == "duplicate") {
            m.insert(u.to_string(), l.clone());
        }
    }
    m
}

/// Checks a registered row: the account exists and `password` logs in.
#[track_caller]
fn registered(user: &str, password: &str, admin: bool) {
    let s = synapse();
    assert!(s.user(user).is_some(), "{user} not registered");
    assert_eq!(s.is_admin(user), admin, "admin flag of {user}");
    assert!(s.login(user, password).is_some(), "{user} cannot log in");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn mixed_rows_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "jsonl", "yaml"] {
        let [a, b, c] = [fresh("ba"), fresh("bb"), fresh("bc")];
        let text = match format {
            "csv" => format!(
                "username,password,admin,user_type,displayname,team\n{a},pw-a,yes,,Ann,red\n{b},,no,bot,,blue\n{c},pw-c,,,,\nbad name,x,,,,\n{a},dup,,,,\n,nameless,,,,\n"
            ),
            "jsonl" => format!(
                "{{\"username\":\"{a}\",\"password\":\"pw-a\",\"admin\":true,\"displayname\":\"Ann\",\"team\":\"red\"}}\n\
                 {{\"username\":\"{b}\",\"user_type\":\"bot\",\"admin\":false}}\n\
                 {{\"username\":\"{c}\",\"password\":\"pw-c\"}}\n\
                 {{\"username\":\"bad name\",\"password\":\"x\"}}\n\
                 {{\"username\":\"{a}\",\"password\":\"dup\"}}\n\
                 {{\"password\":\"nameless\"}}\n"
            ),
            _ => format!(
                "- username: {a}\n  password: pw-a\n  admin: true\n  displayname: Ann\n  team: red\n\
                 - username: {b}\n  user_type: bot\n  admin: false\n\
                 - username: {c}\n  password: pw-c\n\
                 - username: bad name\n  password: x\n\
                 - username: {a}\n  password: dup\n\
                 - password: nameless\n"
            ),
        };
        let file = write(dir.path(), &format!("users.{format}"), &text);
        let out = dir.path().join(format!("results-{format}.jsonl"));
        let run = batch(&file)
            .args(["-o", out.to_str().unwrap(), "--json", "-j", "3"])
            .run();
        run.code(1);
        let lines = results(&run.stdout);
        assert_eq!(lines.len(), 6, "{format}: {run:#?}");
        let by_user = last_by_user(&lines);
        registered(&a, "pw-a", true);
        registered(&c, "pw-c", false);
        // No password given: one was generated and reported.
        let pw_b = by_user[&b]["password"]
            .as_str()
            .expect("generated password reported");
        registered(&b, pw_b, false);
        assert_eq!(synapse().user_type(&b).as_deref(), Some("bot"));
        assert_eq!(synapse().user(&a).unwrap()["displayname"], "Ann");
        assert!(
            by_user[&a]["password"].is_null(),
            "a given password is never reported"
        );
        let statuses: Vec<(u64, &str)> = {
            let mut v: Vec<_> = lines
                .iter()
                .map(|l| (l["line"].as_u64().unwrap(), l["status"].as_str().unwrap()))
                .collect();
            v.sort();
            v
        };
        let first = if format == "yaml" {
            [1, 6, 9, 11, 13, 15]
        } else if format == "csv" {
            [2, 3, 4, 5, 6, 7]
        } else {
            [1, 2, 3, 4, 5, 6]
        };
        let want: Vec<(u64, &str)> = first
            .iter()
            .copied()
            .zip([
                "registered",
                "registered",
                "registered",
                "rejected",
                "duplicate",
                "rejected",
            ])
            .collect();
        assert_eq!(statuses, want, "{format}");
        // The repeated row never becomes the user's outcome.
        assert_eq!(by_user[&a]["status"], "registered", "{format}");
        let dup = lines.iter().find(|l| l["status"] == "duplicate").unwrap();
        assert_eq!(dup["username"], a.as_str(), "{format}");
        assert_eq!(dup["duplicate_of"], first[0], "{format}");
        for l in lines
            .iter()
            .filter(|l| l["status"] == "rejected" || l["status"] == "duplicate")
        {
            let e = l["error"].as_str().unwrap();
            assert!(e.starts_with(&format!("line {}: ", l["line"])), "{e}");
        }
        assert!(run.stderr.contains("repeats the username"), "{run:#?}");
        assert!(run.stderr.contains("has no username"), "{run:#?}");
        assert!(
            run.stderr.contains("invalid localpart \"bad name\""),
            "{run:#?}"
        );
        assert!(
            run.stderr
                .contains("3 registered, 0 exists, 2 rejected, 0 failed, 1 duplicate"),
            "{run:#?}"
        );
        // The results file: mode 0600; a pending line before each final one.
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let journal = results(&std::fs::read_to_string(&out).unwrap());
        for u in [&a, &b, &c] {
            let seq: Vec<&str> = journal
                .iter()
                .filter(|l| l["username"] == u.as_str())
                .map(|l| l["status"].as_str().unwrap())
                .collect();
            assert_eq!(
                seq.iter()
                    .filter(|s| **s != "rejected" && **s != "duplicate")
                    .collect::<Vec<_>>(),
                [&"pending", &"registered"],
                "{u}"
            );
        }
        assert!(!run.stderr.contains(pw_b) && !run.stderr.contains("pw-a"));
    }
}

#[test]
fn all_good_exits_0_and_stdin_works() {
    let s = synapse();
    let users: Vec<String> = (0..5).map(|_| fresh("stdin")).collect();
    let text: String = users
        .iter()
        .map(|u| format!("{{\"username\":\"{u}\",\"password\":\"pw-{u}\"}}\n"))
        .collect();
    let run = Test::new()
        .args([
            "--batch",
            "-",
            "--batch-format",
            "jsonl",
            "-c",
            s.config.to_str().unwrap(),
            "-t",
            "bot",
            "-q",
        ])
        .stdin(text)
        .run();
    run.code(0).stdout("");
    assert_eq!(run.stderr, "", "-q prints nothing on success");
    for u in &users {
        registered(u, &format!("pw-{u}"), false);
        assert_eq!(
            s.user_type(u).as_deref(),
            Some("bot"),
            "-t is a default for every row"
        );
    }
}

#[test]
fn existing_users_and_exists_ok() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let old = fresh("old");
    s.register_directly(&old, "old-pw", false);
    let new = fresh("new");
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username,password\n{old},x\n{new},pw-new\n"),
    );
    let run = batch(&file).arg("--json").run();
    run.code(1);
    let by_user = last_by_user(&results(&run.stdout));
    assert_eq!(by_user[&old]["status"], "exists");
    assert_eq!(by_user[&new]["status"], "registered");
    let run = batch(&file).args(["--json", "--exists-ok"]).run();
    run.code(0);
    assert!(
        s.login(&old, "old-pw").is_some(),
        "an existing account is left alone"
    );
}

#[test]
fn hooks_see_extra_columns() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let hook = write(
        dir.path(),
        "extra.lua",
        "return { before_validate = function(rec)\n  rec.displayname = rec.extra.first .. ' ' .. rec.extra.last .. ' (' .. rec.extra.team .. ')'\nend }\n",
    );
    let u = fresh("extra");
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username,password,first,last,team\n{u},pw,Grace,Hopper,navy\n"),
    );
    batch(&file)
        .args(["--hook", hook.to_str().unwrap()])
        .run()
        .code(0);
    assert_eq!(s.user(&u).unwrap()["displayname"], "Grace Hopper (navy)");
}

#[test]
fn dry_run_batch_registers_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("drybatch");
    let file = write(
        dir.path(),
        "u.jsonl",
        &format!("{{\"username\":\"{u}\"}}\n{{\"username\":\"x y\"}}\n"),
    );
    let run = batch(&file).args(["--dry-run", "--json"]).run();
    let lines = results(&run.stdout);
    assert_eq!(last_by_user(&lines)[&u]["status"], "dry_run", "{run:#?}");
    assert_eq!(last_by_user(&lines)["x y"]["status"], "rejected");
    assert!(synapse().user(&u).is_none());
}

#[test]
fn single_registration_json() {
    let s = synapse();
    let u = fresh("json1");
    let run = Test::new()
        .args([
            "-u",
            &u,
            "-p",
            "pw",
            "--no-admin",
            "-k",
            &s.secret,
            &s.url,
            "--json",
        ])
        .run();
    run.code(0);
    assert_eq!(
        run.stderr_unwarned(),
        "Sending registration request...\nSuccess!\n"
    );
    let r = &results(&run.stdout)[0];
    assert_eq!(r["status"], "registered");
    assert_eq!(r["user_id"], s.user_id(&u));
    let run = Test::new()
        .args([
            "-u",
            &u,
            "-p",
            "pw",
            "--no-admin",
            "-k",
            &s.secret,
            &s.url,
            "--json",
        ])
        .run();
    run.code(1);
    let r = &results(&run.stdout)[0];
    assert_eq!(r["status"], "exists");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("User ID already taken")
    );
}

/// A results file left by a run that crashed after sending (the account
/// exists, the journal says pending) or before (it does not): both settle.
#[test]
fn pending_rows_are_settled() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let (sent, unsent) = (fresh("sent"), fresh("unsent"));
    s.register_directly(&sent, "recorded-pw", false);
    let out = write(
        dir.path(),
        "out.jsonl",
        &format!(
            "{{\"line\":2,\"username\":\"{sent}\",\"status\":\"pending\",\"password\":\"recorded-pw\"}}\n\
             {{\"line\":3,\"username\":\"{unsent}\",\"status\":\"pending\",\"password\":\"recorded-pw2\"}}\n\
             {{\"line\":4,\"username\":\"torn"
        ),
    );
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username\n{sent}\n{unsent}\n"),
    );
    let run = batch(&file).args(["-o", out.to_str().unwrap()]).run();
    run.code(0);
    registered(&sent, "recorded-pw", false);
    registered(&unsent, "recorded-pw2", false);
    let by_user = last_by_user(&results(
        &std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("torn"))
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    assert_eq!(by_user[&sent]["status"], "registered");
    assert_eq!(by_user[&sent]["password"], "recorded-pw");
    assert_eq!(by_user[&unsent]["status"], "registered");
    assert_eq!(
        s.devices(&sent).len(),
        1,
        "only the test's login; the settling session was closed"
    );
}

/// Kills the tool midway through a batch, runs it again, and checks that
/// every user ends registered exactly once with a recorded password that logs in.
#[test]
fn resume_after_kill() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..40).map(|_| fresh("kill")).collect();
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username\n{}\n", users.join("\n")),
    );
    let out = dir.path().join("out.jsonl");
    // A hook that takes a while per row, so the kill lands midway.
    let slow = write(
        dir.path(),
        "slow.lua",
        "return { before_nonce = function() local t = os.clock() while os.clock() - t < 0.05 do end end }",
    );
    let args = |t: Test| {
        t.args([
            "--batch",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-j",
            "2",
            "-k",
            &s.secret,
            &s.url,
        ])
        .args(["--hook", slow.to_str().unwrap()])
    };
    let child =
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
            .args([
                "--batch",
                file.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "-j",
                "2",
                "-k",
                &s.secret,
                &s.url,
            ])
            .args(["--hook", slow.to_str().unwrap(), "-q"])
            .spawn()
            .unwrap();
    crate::kill_midway(child, &out, 8);
    let first = std::fs::read_to_string(&out).unwrap();
    let done_first = first.matches("\"registered\"").count();
    assert!(
        done_first < users.len(),
        "the kill came too late to test anything"
    );

    let run: Run = args(Test::new()).run();
    run.code(0);
    assert!(run.stderr.contains("done by an earlier run"), "{run:#?}");
    let journal = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by_user = last_by_user(&lines);
    for u in &users {
        let r = &by_user[u];
        assert_eq!(r["status"], "registered", "{u}: {r}");
        let registered_lines = lines
            .iter()
            .filter(|l| l["username"] == u.as_str() && l["status"] == "registered")
            .count();
        assert_eq!(registered_lines, 1, "{u} registered once");
        let pw = lines
            .iter()
            .filter(|l| l["username"] == u.as_str())
            .find_map(|l| l["password"].as_str())
            .expect("password recorded");
        assert!(
            s.login(u, pw).is_some(),
            "{u}: the recorded password logs in"
        );
    }
}

#[test]
fn a_failed_step_after_registration_is_reported_and_fails_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let hook = write(
        dir.path(),
        "late.lua",
        "return { after_submit = function() error('CRM is down') end }",
    );
    let u = fresh("late");
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username,password\n{u},pw-late\n"),
    );
    let run = batch(&file)
        .args(["--json", "--hook", hook.to_str().unwrap()])
        .run();
    run.code(1);
    let r = &results(&run.stdout)[0];
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["undone"]["from"], "after_submit");
    assert!(r["error"].as_str().unwrap().contains("CRM is down"), "{r}");
    assert!(run.stderr.contains("1 incomplete"), "{run:#?}");
    registered(&u, "pw-late", false);
}
