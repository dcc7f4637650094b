//! The edges where the tool once broke its word, each found against a real
//! Synapse: a generated password lost with its answer, passwords shown for
//! accounts that never got them, a rerun hiding an account, ambiguous
//! password sources, a status line said twice.

use crate::faults::{Fault, proxy_to};
use crate::{Test, fresh, synapse};
use serde_json::Value;

fn register_only(line: &str) -> bool {
    line.starts_with("POST /_synapse/admin/v1/register")
}

#[test]
fn a_generated_password_survives_a_lost_register_answer() {
    // A lost answer is settled by a login from the proxy's one address: on
    // the faults server, whose login limit per address is raised for that.
    let s = crate::faults::server();
    let p = proxy_to(s, 1000, 1, register_only, Some(Fault::CutAfterCommit));
    let u = fresh("lostpw");
    let hook = crate::rig::root().join("hooks/generate-password.lua");
    let run = Test::new()
        .args(["-u", &u, "--no-admin", "--hook", hook.to_str().unwrap()])
        .args(["-k", &s.secret, &p.url])
        .run();
    run.code(0);
    let pw = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Generated password: "))
        .unwrap_or_else(|| panic!("no password handed out: {run:?}"));
    assert!(
        run.stdout
            .starts_with("Sending registration request...\nSuccess!\n"),
        "{run:?}"
    );
    assert!(
        s.login(&u, pw).is_some(),
        "the handed-out password does not log in"
    );
    assert!(s.devices(&u).len() <= 1);
}

/// A given password settles a lost answer as a batch does: one login, and
/// the account it opens is this run's, with no device left behind.
#[test]
fn a_given_password_settles_a_lost_register_answer() {
    let s = crate::faults::server();
    let p = proxy_to(s, 1000, 5, register_only, Some(Fault::CutAfterCommit));
    let u = fresh("lostgiven");
    Test::new()
        .args(["-u", &u, "-p", "a-long-password-11", "--no-admin"])
        .args(["-k", &s.secret, &p.url])
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.user(&u).is_some());
    assert!(s.devices(&u).is_empty(), "the settling login left a device");
    // A rerun finds it taken, as the original says.
    Test::new()
        .args(["-u", &u, "-p", "a-long-password-11", "--no-admin"])
        .args(["-k", &s.secret, &s.url])
        .run()
        .code(1)
        .stdout_has("User ID already taken.");
}

/// The first register request only.
fn first_register(line: &str) -> bool {
    static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    register_only(line) && SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
}

#[test]
fn the_request_is_announced_once_however_often_it_is_tried() {
    // As above: the lost answer costs a login from the proxy's address.
    let s = crate::faults::server();
    let p = proxy_to(s, 1000, 2, first_register, Some(Fault::CutAfterCommit));
    let u = fresh("once");
    Test::new()
        .args([
            "-u",
            &u,
            "-p",
            "a-long-password-7",
            "--no-admin",
            "--retries",
            "3",
        ])
        .args(["-k", &s.secret, &p.url])
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
}

#[test]
fn rows_that_got_no_password_show_none() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let taken = fresh("taken");
    s.register_directly(&taken, "a-long-password-8", false);
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("username\n{taken}\n")).unwrap();
    let run = Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "--exists-ok",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run();
    run.code(0);
    assert!(!run.stdout.contains("Generated password"), "{run:?}");
    let json = Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "--exists-ok",
            "--json",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run();
    let line: Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["status"], "exists");
    assert!(line.get("password").is_none(), "{line}");

    // A row that failed before anything reached a server was never registered.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let run = Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "--retries",
            "0",
            "-k",
            &s.secret,
            &url,
        ])
        .run();
    run.code(1);
    assert!(!run.stdout.contains("Generated password"), "{run:?}");
}

#[test]
fn a_refused_rerun_keeps_a_pending_row_and_its_password() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("pend");
    s.register_directly(&u, "Recorded-pw-123", false);
    let out = dir.path().join("out.jsonl");
    std::fs::write(
        &out,
        format!(
            "{{\"username\":\"{u}\",\"status\":\"pending\",\"password\":\"Recorded-pw-123\"}}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let hook = dir.path().join("refuse.lua");
    std::fs::write(
        &hook,
        "return { before_validate = function() error(\"closed today\") end }\n",
    )
    .unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("username\n{u}\n")).unwrap();
    let run = Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--hook", hook.to_str().unwrap(), "-k", &s.secret, &s.url])
        .run();
    run.code(1);
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["status"], "pending", "{last}");
    assert_eq!(last["password"], "Recorded-pw-123", "{last}");
    assert!(
        last["error"].as_str().unwrap().contains("closed today"),
        "{last}"
    );
}

#[test]
fn one_password_for_a_whole_batch_is_refused() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, "username\nnobody1\n").unwrap();
    Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "-p",
            "same-for-all",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(2)
        .stderr_has("password column");
    Test::new()
        .args([
            "--batch",
            "-",
            "--password-file",
            "-",
            "-k",
            &s.secret,
            &s.url,
        ])
        .stdin("username\nnobody2\n")
        .run()
        .code(2)
        .stderr_has("both read standard input");
    assert!(s.user("nobody1").is_none() && s.user("nobody2").is_none());
}

#[test]
fn the_rigs_config_is_private_so_the_demo_warns_of_nothing() {
    let s = synapse();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&s.config).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the rig's config is readable by others: {mode:o}"
    );
    let run = Test::new()
        .args([
            "-c",
            s.config.to_str().unwrap(),
            "-u",
            &fresh("demo"),
            "--admin",
        ])
        .args(["--password-file", "-"])
        .stdin("a-demo-password-1")
        .run();
    run.code(0);
    assert!(!run.stderr.contains("warning"), "{run:?}");
}

#[test]
fn a_single_registration_waits_out_a_rate_limit_and_says_for_how_long() {
    let s = synapse();
    let p = proxy_to(s, 1000, 3, first_register_429, Some(Fault::RateLimit));
    let u = fresh("wait429");
    let run = Test::new()
        .args(["-u", &u, "-p", "a-long-password-10", "--no-admin"])
        .args(["-k", &s.secret, &p.url])
        .run();
    run.code(0)
        .stdout("Sending registration request...\nSuccess!\n")
        .stderr_has("waits at most 1 h 0 min in all (--deadline); Ctrl-C stops it");
    assert!(s.user(&u).is_some());
    // --max-wait still bounds it: the server asks for 50 ms, and 0.01 s is less.
    let p = proxy_to(s, 1000, 4, register_only, Some(Fault::RateLimit));
    Test::new()
        .args([
            "-u",
            &fresh("wait429b"),
            "-p",
            "a-long-password-10",
            "--no-admin",
        ])
        .args(["--max-wait", "0.01", "-k", &s.secret, &p.url])
        .run()
        .code(1)
        .stderr_has("longer than --max-wait")
        // The original's own line for the answer it ended on.
        .stdout_has("ERROR! Received 429 Too Many Requests\n");
}

/// The first register request only (a second counter).
fn first_register_429(line: &str) -> bool {
    static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    register_only(line) && SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
}

fn welcome() -> String {
    crate::rig::root()
        .join("hooks/welcome.lua")
        .display()
        .to_string()
}

#[test]
fn a_bot_that_cannot_be_exempted_refuses_every_row_of_every_worker() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let bot = fresh("plainbot");
    s.register_directly(&bot, "a-long-bot-password", false);
    let token = s.login(&bot, "a-long-bot-password").unwrap();
    let users: Vec<String> = (0..12).map(|_| fresh("exq")).collect();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("username\n{}\n", users.join("\n"))).unwrap();
    let run = Test::new()
        .args([
            "--batch",
            file.to_str().unwrap(),
            "-j",
            "4",
            "--hook",
            &welcome(),
        ])
        .args(["-k", &s.secret, &s.url])
        .env("RNMU_WELCOME_TOKEN", &token)
        .env("RNMU_WELCOME_EXEMPT_BOT", "1")
        .run();
    run.code(1);
    assert!(
        run.stderr.contains("the bot must be a server admin"),
        "{run:?}"
    );
    for u in &users {
        assert!(s.user(u).is_none(), "{u} was registered past a refused bot");
    }
}

#[test]
fn a_squatted_direct_chat_alias_is_passed_over_and_the_user_welcomed_once() {
    use sha1::Digest;
    let s = synapse();
    let bot = fresh("sqbot");
    s.register_directly(&bot, "a-long-bot-password", false);
    let token = s.login(&bot, "a-long-bot-password").unwrap();
    let squatter = fresh("squatter");
    s.register_directly(&squatter, "a-long-squat-password", false);
    let sq_token = s.login(&squatter, "a-long-squat-password").unwrap();
    let user = fresh("sqnew");
    // The alias welcome.lua would claim for this bot and this future user.
    let digest = sha1::Sha1::new()
        .chain_update(s.user_id(&bot).as_bytes())
        .chain_update([0u8])
        .chain_update(s.user_id(&user).as_bytes())
        .finalize();
    let alias = format!("_rnmu_dm_{}", &hex::encode(digest)[..20]);
    let (status, body) = s.client(
        "POST",
        "/_matrix/client/v3/createRoom",
        &sq_token,
        Some(serde_json::json!({"preset": "public_chat", "room_alias_name": alias})),
    );
    assert_eq!(status, 200, "{body}");
    // The bot even joins the squatter's room: it is still not the bot's chat.
    let room = body["room_id"].as_str().unwrap();
    let (status, _) = s.client(
        "POST",
        &format!("/_matrix/client/v3/join/{}", crate::rig::enc(room)),
        &token,
        Some(serde_json::json!({})),
    );
    assert_eq!(status, 200);
    let run = Test::new()
        .args([
            "-u",
            &user,
            "-p",
            "a-long-password-11",
            "--no-admin",
            "--hook",
            &welcome(),
        ])
        .args(["-k", &s.secret, &s.url])
        .env("RNMU_WELCOME_TOKEN", &token)
        .run();
    run.code(0).stderr_has("(squatted)");
    s.assert_welcomed_once(&token, std::slice::from_ref(&user));
}

#[test]
fn the_pending_line_is_on_disk_before_the_register_request_leaves() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("username\n{}\n", fresh("durable"))).unwrap();
    let out = dir.path().join("out.jsonl");
    let trace = dir.path().join("trace");
    let status = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-s",
            "300",
            "-e",
            "trace=fdatasync,write,writev,sendto,sendmsg",
            "-o",
        ])
        .arg(&trace)
        .arg(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
        .args([
            "--batch",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-j",
            "1",
        ])
        .args(["-k", &s.secret, &s.url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace (scripts/test-deps.sh installs it)");
    assert!(status.success());
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let pending = lines
        .iter()
        .position(|l| l.contains("write(") && l.contains("\\\"status\\\":\\\"pending\\\""))
        .unwrap_or_else(|| panic!("no pending line written:\n{trace}"));
    // -y names each descriptor's file: the sync may be through another
    // descriptor of the same file.
    let results = out.to_str().unwrap();
    assert!(lines[pending].contains(results), "{}", lines[pending]);
    let sync = lines
        .iter()
        .position(|l| l.contains("fdatasync(") && l.contains(results))
        .unwrap_or_else(|| panic!("the results file was never synced:\n{trace}"));
    let post = lines
        .iter()
        .position(|l| l.contains("POST /_synapse/admin/v1/register"))
        .unwrap_or_else(|| panic!("no register request seen:\n{trace}"));
    assert!(
        pending < sync && sync < post,
        "pending {pending}, sync {sync}, POST {post}:\n{trace}"
    );
}

#[test]
fn every_load_error_names_file_and_line() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, usize, &str); 5] = [
        (
            "point",
            "local x = 1\nreturn {\n  before_lunch = function() end,\n}\n",
            3,
            "is not a hook point",
        ),
        (
            "value",
            "return {\n  before_input = 42,\n}\n",
            2,
            "before_input must be a function, not integer",
        ),
        (
            "nothing",
            "local x = 1\n\nreturn 7\n",
            3,
            "must return a table",
        ),
        ("none", "local x = 1\n", 1, "must return a table"),
        ("binary", "\x1bLuaT\0garbage", 1, "precompiled"),
    ];
    for (name, code, line, want) in cases {
        let file = dir.path().join(format!("{name}.lua"));
        std::fs::write(&file, code).unwrap();
        let run = Test::new()
            .args([
                "-u",
                &fresh("load"),
                "-p",
                "a-long-password-12",
                "--no-admin",
            ])
            .args(["--hook", file.to_str().unwrap(), "-k", &s.secret, &s.url])
            .run();
        run.code(1).one_clear_line();
        let prefix = format!("error: hook {}:{line} (load): ", file.display());
        assert!(
            run.stderr_unwarned().starts_with(&prefix) && run.stderr.contains(want),
            "{name}: want {prefix}...{want}: {run:?}"
        );
    }
}

#[test]
fn an_existing_account_has_its_user_id_after_submit() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("known");
    s.register_directly(&u, "a-long-password-13", false);
    let hook = dir.path().join("id.lua");
    std::fs::write(
        &hook,
        "return { after_submit = function(rec) rnmu.log.info(\"id=\" .. tostring(rec.user_id)) end }\n",
    )
    .unwrap();
    let run = Test::new()
        .args([
            "-c",
            s.config.to_str().unwrap(),
            "-u",
            &u,
            "--exists-ok",
            "--no-admin",
            "--json",
            "-v",
        ])
        .args(["--hook", hook.to_str().unwrap(), "--password-file", "-"])
        .stdin("a-long-password-13")
        .run();
    run.code(0)
        .stderr_has(&format!("hook info: id={}", s.user_id(&u)));
    let line: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["status"], "exists");
    assert_eq!(line["user_id"], s.user_id(&u));
}

/// A results file, private, holding `lines`.
fn results_file(dir: &std::path::Path, lines: &[String]) -> std::path::PathBuf {
    let out = dir.join("out.jsonl");
    std::fs::write(
        &out,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    out
}

#[test]
fn changed_input_on_a_rerun_is_said_row_by_row() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    // (a) A registered row whose field is now bad.
    let done = fresh("chg");
    s.register_directly(&done, "a-long-password-14", false);
    // (b) An incomplete row whose admin flag changed.
    let half = fresh("chg");
    s.register_directly(&half, "a-long-password-15", false);
    // (c) An incomplete row whose given password changed.
    let moved = fresh("chg");
    s.register_directly(&moved, "a-long-password-16", false);
    let out = results_file(
        dir.path(),
        &[
            format!(
                "{{\"username\":\"{done}\",\"status\":\"registered\",\"user_id\":\"{}\"}}",
                s.user_id(&done)
            ),
            format!(
                "{{\"username\":\"{half}\",\"status\":\"incomplete\",\"admin\":false,\"user_id\":\"{}\",\"undone\":{{\"from\":\"after_submit\"}}}}",
                s.user_id(&half)
            ),
            format!(
                "{{\"username\":\"{moved}\",\"status\":\"incomplete\",\"user_id\":\"{}\",\"undone\":{{\"from\":\"after_submit\",\"want_session\":true}}}}",
                s.user_id(&moved)
            ),
        ],
    );
    let input = dir.path().join("rows.jsonl");
    std::fs::write(
        &input,
        format!(
            "{{\"username\":\"{done}\",\"admin\":\"maybe\"}}\n{{\"username\":\"{half}\",\"admin\":true}}\n{{\"username\":\"{moved}\",\"password\":\"a-new-password-17\"}}\n"
        ),
    )
    .unwrap();
    let hook = dir.path().join("see.lua");
    std::fs::write(
        &hook,
        "return { after_submit = function(rec) rnmu.log.info(rec.username .. \" admin=\" .. tostring(rec.admin)) end }\n",
    )
    .unwrap();
    let run = Test::new()
        .args([
            "--batch",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-j",
            "1",
            "-v",
        ])
        .args(["--hook", hook.to_str().unwrap(), "-k", &s.secret, &s.url])
        .run();
    run.code(1)
        .stderr_has("warning: line 1: admin is \"maybe\"")
        .stderr_has("left as an earlier run recorded it")
        .stderr_has(&format!("hook info: {half} admin=false"))
        .stderr_has("admin is now yes, but the account was registered with no")
        .stderr_has("the row's password does not log in to the account");
    assert!(!s.is_admin(&half));
}

/// The first logout only.
fn first_logout(line: &str) -> bool {
    static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    line.contains("/logout") && SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
}

/// A single registration's hook session is ended even when the first
/// logout fails (it is tried again, within the run's bounds); when every
/// try fails, the exit-3 line says that a device stays, and how to end it.
#[test]
fn a_hook_session_is_ended_through_a_failed_logout_or_said_to_stay() {
    let s = crate::faults::server();
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("session.lua");
    std::fs::write(
        &hook,
        "return { before_submit = function(rec) rec.want_session = true end }",
    )
    .unwrap();
    let single = |u: &str, url: &str| {
        Test::new()
            .args(["-u", u, "-p", "a-long-password-12", "--no-admin", "--hook"])
            .arg(hook.to_str().unwrap())
            .args(["-k", &s.secret, url])
            .run()
    };
    let p = proxy_to(s, 1000, 8, first_logout, Some(Fault::Html503));
    let u = fresh("logout1");
    single(&u, &p.url)
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.devices(&u).is_empty(), "a device stays");
    let p = proxy_to(s, 1000, 9, |l| l.contains("/logout"), Some(Fault::Html503));
    let u = fresh("logout2");
    let run = single(&u, &p.url);
    run.code(3)
        .stderr_has("but ending the account's session failed: ");
    run.stderr_has(
        "(left undone: ending the session the tool opened on the account: a device with a live \
         access token stays on it (device ",
    );
    run.stderr_has(&format!(
        "DELETE /_synapse/admin/v2/users/{}/devices/",
        s.user_id(&u)
    ));
    assert_eq!(s.devices(&u).len(), 1);
}
