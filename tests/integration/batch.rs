//! Batch onboarding against the real server: formats, bad rows, hooks,
//! results, resuming after a kill.

use crate::{Run, Test, fresh, peak_kib, synapse};
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

/// Each username's outcome, by docs/batch.md's rule: the last line for the
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

/// A step after registration that fails leaves the row `incomplete`; the
/// same command run again finishes those steps once (with `ctx.rerun`, and a
/// session as the new user where the hooks asked for one), registers nobody
/// again, and a third run has nothing left to do.
#[test]
fn steps_after_registration_are_finished_by_a_rerun_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = write(
        dir.path(),
        "crm.lua",
        r#"return {
  before_submit = function(rec) rec.want_session = true end,
  after_submit = function(rec, ctx) rnmu.log.warn("after_submit " .. rec.username) end,
  before_post = function(rec, ctx)
    rnmu.log.warn("before_post " .. rec.username .. " rerun=" .. tostring(ctx.rerun)
      .. " session=" .. tostring(rnmu.matrix.whoami(rec.access_token) == rec.user_id))
    if rnmu.env("CRM_DOWN") == "1" then error("CRM is down") end
  end,
  after_post = function(rec, ctx) rnmu.log.warn("after_post " .. rec.username) end,
}"#,
    );
    let users: Vec<String> = (0..3).map(|_| fresh("crm")).collect();
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username\n{}\n", users.join("\n")),
    );
    let out = dir.path().join("out.jsonl");
    let run_batch = |down: bool| {
        let t = batch(&file).args([
            "-o",
            out.to_str().unwrap(),
            "--no-admin",
            "--hook",
            hook.to_str().unwrap(),
        ]);
        if down {
            t.env("CRM_DOWN", "1")
        } else {
            t.env_remove("CRM_DOWN")
        }
        .run()
    };
    let count = |run: &Run, what: &str| run.stderr.matches(what).count();

    let first = run_batch(true);
    assert_eq!(first.code, 1, "{first:#?}");
    assert!(first.stderr.contains("3 incomplete"), "{first:#?}");
    assert_eq!(count(&first, "rerun=false session=true"), 3, "{first:#?}");
    assert_eq!(count(&first, "after_post "), 0, "{first:#?}");
    let lines = results(&std::fs::read_to_string(&out).unwrap());
    let by_user = last_by_user(&lines);
    for u in &users {
        assert_eq!(by_user[u]["status"], "incomplete", "{u}");
        assert_eq!(by_user[u]["undone"]["from"], "before_post", "{u}");
        assert!(synapse().devices(u).is_empty(), "{u}: session left");
    }

    let second = run_batch(false);
    assert_eq!(second.code, 0, "{second:#?}");
    assert_eq!(count(&second, "after_submit "), 0, "{second:#?}");
    assert_eq!(count(&second, "rerun=true session=true"), 3, "{second:#?}");
    assert_eq!(count(&second, "after_post "), 3, "{second:#?}");
    assert!(second.stderr.contains("3 registered"), "{second:#?}");
    let lines = results(&std::fs::read_to_string(&out).unwrap());
    let by_user = last_by_user(&lines);
    for u in &users {
        assert_eq!(by_user[u]["status"], "registered", "{u}");
        let pending = lines
            .iter()
            .filter(|l| l["username"] == u.as_str() && l["status"] == "pending")
            .count();
        assert_eq!(pending, 1, "{u}: registered once");
        let pw = lines
            .iter()
            .find_map(|l| {
                (l["username"] == u.as_str())
                    .then(|| l["password"].as_str())
                    .flatten()
            })
            .unwrap();
        assert!(
            synapse().devices(u).is_empty(),
            "{u}: the rerun's session was ended"
        );
        assert!(synapse().login(u, pw).is_some());
    }

    let third = run_batch(false);
    assert_eq!(third.code, 0, "{third:#?}");
    assert_eq!(count(&third, "before_post "), 0, "{third:#?}");
    assert!(
        third.stderr.contains("3 done by an earlier run"),
        "{third:#?}"
    );
}

/// A row with a bad field is reported under its username; a later row
/// that repeats a registered username never becomes that user's outcome.
#[test]
fn results_follow_the_documented_rule() {
    let dir = tempfile::tempdir().unwrap();
    let [good, odd] = [fresh("rule"), fresh("rule")];
    let file = write(
        dir.path(),
        "u.csv",
        &format!(
            "username,password,admin\n{good},pw-rule-1,no\n{odd},pw-rule-2,maybe\n{good},pw-rule-3,no\n"
        ),
    );
    let run = batch(&file).arg("--json").run();
    run.code(1);
    let lines = results(&run.stdout);
    let bad = lines.iter().find(|l| l["line"] == 3).unwrap();
    assert_eq!(bad["username"], odd.as_str(), "{bad}");
    assert_eq!(bad["status"], "rejected", "{bad}");
    let by_user = last_by_user(&lines);
    assert_eq!(by_user[&good]["status"], "registered", "{lines:?}");
    registered(&good, "pw-rule-1", false);
    assert!(synapse().user(&odd).is_none());
}

/// A dry run over a million rows, the last repeating an early username:
/// the repeat is reported with both line numbers, and the rows' bookkeeping
/// stays within docs/limits.md's bound (24 bytes a row over the tool's own
/// start-up), from a counted file and from a pipe alike.
#[test]
fn a_million_row_dry_run_stays_small_and_still_finds_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let write_rows = |name: &str, n: usize| {
        let p = dir.path().join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        for i in 0..n {
            writeln!(
                f,
                "{{\"username\":\"mem{i}\",\"displayname\":\"Member {i}\"}}"
            )
            .unwrap();
        }
        writeln!(f, "{{\"username\":\"mem17\"}}").unwrap();
        f.flush().unwrap();
        p
    };
    use std::io::Write;
    let small = write_rows("small.jsonl", 1000);
    let big = write_rows("big.jsonl", 1_000_000);
    let dry = ["--dry-run", "-q", "-k", "x", "http://127.0.0.1:9"];
    let with = |file: &str, extra: &[&'static str]| -> Vec<String> {
        let mut a = vec!["--batch".to_string(), file.to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(dry.iter().map(|s| s.to_string()));
        a
    };
    let run = |args: Vec<String>, stdin: Option<&Path>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        peak_kib(&a, stdin)
    };
    let (code, err, base) = run(with(small.to_str().unwrap(), &[]), None);
    assert_eq!(code, 1, "{err}");
    for (args, stdin) in [
        (with(big.to_str().unwrap(), &[]), None),
        (with("-", &["--batch-format", "jsonl"]), Some(big.as_path())),
    ] {
        let (code, err, peak) = run(args, stdin);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("line 1000001: repeats the username \"mem17\" of line 18"),
            "{err}"
        );
        let grown = peak.saturating_sub(base);
        assert!(
            grown <= 24 * 1_000_000 / 1024,
            "a million rows took {grown} KiB over start-up ({base} KiB)"
        );
    }
}

/// Generated passwords always have a place to go: with neither `-o` nor
/// `--json`, each is printed once on standard output.
#[test]
fn generated_passwords_without_a_results_file_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let users = [fresh("gen"), fresh("gen")];
    let file = write(
        dir.path(),
        "u.csv",
        &format!("username\n{}\n{}\n", users[0], users[1]),
    );
    let run = batch(&file).arg("--no-admin").run();
    run.code(0);
    for u in &users {
        let id = synapse().user_id(u);
        let lines: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with(&format!("Generated password for {id}: ")))
            .collect();
        assert_eq!(lines.len(), 1, "{run:#?}");
        let pw = lines[0].rsplit(' ').next().unwrap();
        assert!(synapse().login(u, pw).is_some());
        assert!(!run.stderr.contains(pw));
    }
}

/// A row an earlier run left incomplete that now has a bad field keeps the
/// recorded state: its line does not turn the user's outcome into `rejected`.
#[test]
fn a_bad_field_on_a_rerun_does_not_hide_an_incomplete_account() {
    let dir = tempfile::tempdir().unwrap();
    let hook = write(
        dir.path(),
        "down.lua",
        "return { before_post = function() if rnmu.env('DOWN') == '1' then error('down') end end }",
    );
    let u = fresh("keep");
    let out = dir.path().join("out.jsonl");
    let good = write(
        dir.path(),
        "good.csv",
        &format!("username,password,admin\n{u},pw-keep,no\n"),
    );
    let bad = write(
        dir.path(),
        "bad.csv",
        &format!("username,password,admin\n{u},pw-keep,maybe\n"),
    );
    let hook_arg = [
        "--hook",
        hook.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    batch(&good).args(hook_arg).env("DOWN", "1").run().code(1);
    batch(&bad).args(hook_arg).run().code(1);
    let lines = results(&std::fs::read_to_string(&out).unwrap());
    let last = &last_by_user(&lines)[&u];
    assert_eq!(last["status"], "incomplete", "{lines:?}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("left as an earlier run recorded it")
    );
    // Fixed, it is finished.
    batch(&good).args(hook_arg).run().code(0);
    let lines = results(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(last_by_user(&lines)[&u]["status"], "registered");
}

/// Resuming a results file of a million lines (half a million rows, each a
/// `pending` line and its `registered` one) skips every row it records and
/// stays within docs/limits.md's bound: 40 MiB in all at its peak.
#[test]
fn resuming_a_million_line_results_file_stays_small() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let n = 500_000;
    let input = dir.path().join("rows.csv");
    let out = dir.path().join("out.jsonl");
    {
        let mut i = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut o = std::io::BufWriter::new(std::fs::File::create(&out).unwrap());
        writeln!(i, "username").unwrap();
        for k in 0..n {
            writeln!(i, "res{k}").unwrap();
            writeln!(
                o,
                "{{\"line\":{},\"username\":\"res{k}\",\"user_id\":null,\"status\":\"pending\",\"error\":null,\"password\":\"Pw-{k:016}\"}}",
                k + 2
            )
            .unwrap();
            writeln!(
                o,
                "{{\"line\":{},\"username\":\"res{k}\",\"user_id\":\"@res{k}:hs\",\"status\":\"registered\",\"error\":null,\"password\":\"Pw-{k:016}\"}}",
                k + 2
            )
            .unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = [
        "--batch",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-k",
        "x",
        "http://127.0.0.1:9",
    ];
    let (code, err, peak) = peak_kib(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{n} done by an earlier run")),
        "{err}"
    );
    assert!(peak <= 40 * 1024, "resuming took {peak} KiB at its peak");
}

/// Against a server nobody answers, the progress line says the run waits to
/// try again, and why; never that it waits on a rate limit no 429 set.
#[test]
fn an_unreachable_server_is_not_called_a_rate_limit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let rows = write(
        dir.path(),
        "rows.csv",
        "username,password\nnobody-a,pw-unreach-1\nnobody-b,pw-unreach-2\n",
    );
    let run = Test::new()
        .args([
            "--batch",
            rows.to_str().unwrap(),
            "-j",
            "1",
            "--retries",
            "4",
        ])
        .args(["-k", "a-secret", &format!("http://127.0.0.1:{port}")])
        .run();
    assert_ne!(run.code, 0, "{}", run.stderr);
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!progress.is_empty(), "no progress line: {}", run.stderr);
    assert!(
        progress.iter().any(|l| l.contains("to try again (")),
        "{progress:?}"
    );
    assert!(!run.stderr.contains("rate limit"), "{}", run.stderr);
}
