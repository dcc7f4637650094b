//! The hook contract, and the three shipped hooks, against the real server.

use crate::{Test, fresh, synapse};
use std::path::PathBuf;

/// A hook file in a temporary directory.
struct HookFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn hook(code: &str) -> HookFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test-hook.lua");
    std::fs::write(&path, code).unwrap();
    HookFile { _dir: dir, path }
}

impl HookFile {
    fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

fn shipped(name: &str) -> String {
    crate::rig::root()
        .join("hooks")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// This tool, registering `user` on the rig's server.
fn register(user: &str) -> Test {
    let s = synapse();
    Test::new().args(["-u", user, "-k", s.secret.as_str(), s.url.as_str()])
}

const ALL_POINTS: [&str; 14] = [
    "before_config",
    "after_config",
    "before_input",
    "after_input",
    "before_validate",
    "after_validate",
    "before_nonce",
    "after_nonce",
    "before_sign",
    "after_sign",
    "before_submit",
    "after_submit",
    "before_post",
    "after_post",
];

fn recorder() -> HookFile {
    let mut code = String::from("local h = {}\n");
    for p in ALL_POINTS.iter().chain(["on_error"].iter()) {
        code.push_str(&format!(
            "h.{p} = function(rec, ctx) rnmu.log.warn('fired ' .. ctx.point .. ' stage=' .. tostring(ctx.stage) .. ' dry=' .. tostring(ctx.dry_run)) end\n"
        ));
    }
    code.push_str("return h\n");
    hook(&code)
}

fn fired(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("hook warn: fired "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_point_fires_in_pipeline_order() {
    let h = recorder();
    let user = fresh("order");
    let run = register(&user)
        .args(["-p", "pw", "--no-admin", "--hook", &h.arg()])
        .run();
    run.code(0);
    assert_eq!(fired(&run.stderr), ALL_POINTS, "{run:#?}");
    assert!(
        run.stderr
            .contains("fired before_nonce stage=nonce dry=false")
    );
}

#[test]
fn record_changes_flow_into_the_registration() {
    let s = synapse();
    let user = fresh("flow");
    let h = hook(&format!(
        r#"return {{
            before_input = function(rec) rec.password = "pw-from-hook"; rec.admin = true end,
            before_validate = function(rec) rec.username = "{user}"; rec.displayname = "Set By Hook"; rec.user_type = "bot" end,
        }}"#
    ));
    // Asked for nothing: the hook answered before input was gathered.
    register("placeholder")
        .args(["--hook", &h.arg()])
        .run()
        .code(0);
    let u = s.user(&user).expect("the hook's username was registered");
    assert_eq!(u["displayname"], "Set By Hook");
    assert!(s.is_admin(&user));
    assert_eq!(s.user_type(&user).as_deref(), Some("bot"));
    assert!(s.login(&user, "pw-from-hook").is_some());
    assert!(s.user("placeholder").is_none());
}

#[test]
fn a_rejection_stops_before_any_request() {
    let s = synapse();
    let user = fresh("rejected");
    let h = hook("return {\n  before_nonce = function(rec)\n    error('not today')\n  end,\n}\n");
    let run = register(&user)
        .args(["-p", "pw", "--no-admin", "--hook", &h.arg()])
        .run();
    run.code(1)
        .stdout("")
        .one_clear_line()
        .stderr_has(&format!("hook {}:3 (before_nonce): not today", h.arg()));
    assert!(s.user(&user).is_none());
}

#[test]
fn validation_judges_the_final_values() {
    let s = synapse();
    // Set before validation: the built-in check still refuses it.
    let early =
        hook("return { before_validate = function(rec) rec.username = 'no spaces allowed' end }");
    register(&fresh("v"))
        .args(["-p", "pw", "--no-admin", "--hook", &early.arg()])
        .run()
        .code(1)
        .stderr_has("invalid localpart");
    // Changed after validation: refused too.
    for point in ["after_validate", "before_sign", "before_submit"] {
        let user = fresh("late");
        let late = hook(&format!(
            "return {{ {point} = function(rec) rec.username = rec.username .. 'x'; rec.admin = true end }}"
        ));
        register(&user)
            .args(["-p", "pw", "--no-admin", "--hook", &late.arg()])
            .run()
            .code(1)
            .one_clear_line()
            .stderr_has("after the validate stage");
        assert!(s.user(&user).is_none() && s.user(&format!("{user}x")).is_none());
    }
}

#[test]
fn hostile_hooks_end_with_a_clear_error() {
    let cases = [
        (
            "endless loop",
            "return { before_input = function() while true do end end }",
            "did not finish within 1 s",
        ),
        (
            "endless loop in a coroutine",
            "return { before_input = function() coroutine.wrap(function() while true do end end)() end }",
            "did not finish within 1 s",
        ),
        (
            "endless loop at load",
            "while true do end",
            "did not finish within 1 s",
        ),
        (
            "memory bomb",
            "return { before_input = function() local t = {} while true do t[#t+1] = string.rep('x', 1000000) .. #t end end }",
            "ran out of memory",
        ),
        (
            "syntax error",
            "return { before_input = function( end }",
            "syntax error",
        ),
        (
            "runtime error",
            "return { before_input = function(rec) local x = nil; x.y = 1 end }",
            "attempt to index a nil value",
        ),
        (
            "garbage returned",
            "return { before_input = function() return 42 end }",
            "returned a number",
        ),
        (
            "garbage field",
            "return { before_input = function(rec) rec.admin = 'yes' end }",
            "set record.admin to a string",
        ),
        ("not a table", "return 7", "must return a table"),
        (
            "unknown point",
            "return { before_lunch = function() end }",
            "not a hook point",
        ),
        (
            "os.execute",
            "return { before_input = function() os.execute('true') end }",
            "attempt to call a nil value (field 'execute')",
        ),
        (
            "io.popen",
            "return { before_input = function() io.popen('true') end }",
            "attempt to index a nil value (global 'io')",
        ),
        (
            "debug",
            "return { before_input = function() debug.sethook() end }",
            "attempt to index a nil value (global 'debug')",
        ),
        (
            "require",
            "return { before_input = function() require('os') end }",
            "attempt to call a nil value (global 'require')",
        ),
        (
            "binary via load",
            "return { before_input = function() assert(load('\\27Lua')) end }",
            "attempt to load a binary chunk",
        ),
    ];
    let s = synapse();
    for (what, code, want) in cases {
        let user = fresh("hostile");
        let h = hook(code);
        let run = register(&user)
            .args([
                "-p",
                "pw",
                "--no-admin",
                "--hook-timeout",
                "1",
                "--hook-memory",
                "16",
                "--hook",
                &h.arg(),
            ])
            .run();
        assert_eq!(run.code, 1, "{what}: {run:#?}");
        assert!(
            run.stderr.contains(want),
            "{what}: want {want:?} in {run:#?}"
        );
        assert!(
            run.stderr_unwarned().starts_with("error: hook "),
            "{what}: {run:#?}"
        );
        run.one_clear_line();
        assert!(s.user(&user).is_none(), "{what}");
    }
}

#[test]
fn precompiled_hook_files_are_refused() {
    let h = hook("\x1bLuaT\0garbage");
    register(&fresh("bin"))
        .args(["-p", "pw", "--no-admin", "--hook", &h.arg()])
        .run()
        .code(1)
        .stderr_has("precompiled");
}

#[test]
fn hook_unsafe_opens_the_standard_library() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let h = hook(&format!(
        "return {{ before_input = function() os.execute('touch {}') end }}",
        marker.display()
    ));
    let user = fresh("unsafe");
    register(&user)
        .args(["-p", "pw", "--no-admin", "--hook", &h.arg()])
        .run()
        .code(1);
    assert!(!marker.exists(), "os.execute ran without --hook-unsafe");
    register(&user)
        .args([
            "-p",
            "pw",
            "--no-admin",
            "--hook-unsafe",
            "--hook",
            &h.arg(),
        ])
        .run()
        .code(0);
    assert!(marker.exists());
}

#[test]
fn on_error_sees_the_failure() {
    let h = hook(
        "return { on_error = function(rec, ctx) rnmu.log.warn('on_error saw: ' .. ctx.error) end }",
    );
    let s = synapse();
    Test::new()
        .args([
            "-u",
            &fresh("oe"),
            "-p",
            "pw",
            "--no-admin",
            "-k",
            "wrong-secret",
            s.url.as_str(),
        ])
        .args(["--hook", &h.arg()])
        .run()
        .code(1)
        .stdout("Sending registration request...\nERROR! Received 403 Forbidden\nHMAC incorrect\n")
        .stderr_has("on_error saw: ")
        .stderr_has("HMAC incorrect");
}

#[test]
fn a_failure_after_the_account_exists_says_so() {
    let s = synapse();
    let user = fresh("after");
    let h = hook("return { after_submit = function(rec) error('could not notify HR') end }");
    let run = register(&user)
        .args(["-p", "pw", "--no-admin", "--hook", &h.arg()])
        .run();
    run.code(3)
        .stdout("Sending registration request...\nSuccess!\n")
        .one_clear_line()
        .stderr_has(&format!("the account {} was created", s.user_id(&user)))
        .stderr_has("after_submit hook failed")
        .stderr_has("could not notify HR");
    assert!(s.user(&user).is_some());
}

#[test]
fn a_session_for_hooks_is_logged_out_afterwards() {
    let s = synapse();
    let user = fresh("session");
    let h = hook(
        r#"return {
            before_submit = function(rec) rec.want_session = true end,
            after_submit = function(rec)
                assert(rec.access_token and rec.device_id, "no session")
                local me = rnmu.matrix.whoami(rec.access_token)
                rnmu.log.warn("acting as " .. me .. " with token " .. rec.access_token)
            end,
            after_post = function(rec) rnmu.log.warn("token after post: " .. tostring(rec.access_token)) end,
        }"#,
    );
    let run = register(&user)
        .args(["-p", "pw-session", "--no-admin", "--hook", &h.arg()])
        .run();
    run.code(0)
        .stderr_has(&format!(
            "acting as {} with token [redacted]",
            s.user_id(&user)
        ))
        .stderr_has("token after post: nil");
    assert_eq!(
        s.devices(&user).len(),
        0,
        "the hook's session was not logged out"
    );
}

#[test]
fn dry_run_fires_hooks_up_to_sign_and_registers_nobody() {
    let h = recorder();
    let user = fresh("dry");
    let run = register(&user)
        .args(["-p", "secret-pw", "-a", "--dry-run", "--hook", &h.arg()])
        .run();
    run.code(0);
    assert_eq!(fired(&run.stderr), ALL_POINTS[..10], "{run:#?}");
    assert!(run.stderr.contains("dry=true"));
    assert!(
        run.stdout.starts_with("Dry run: nothing was sent."),
        "{run:#?}"
    );
    assert!(run.stdout.contains(&format!("\"username\":\"{user}\"")));
    assert!(run.stdout.contains("\"admin\":true"));
    assert!(!run.stdout.contains("secret-pw") && !run.stderr.contains("secret-pw"));
    assert!(synapse().user(&user).is_none());
}

#[test]
fn hook_logs_follow_verbosity_and_mask_secrets() {
    let s = synapse();
    let h = hook(&format!(
        r#"return {{ before_submit = function(rec)
            rnmu.log.error("e " .. rec.password) rnmu.log.warn("w") rnmu.log.info("i") rnmu.log.debug("d {}")
        end }}"#,
        s.secret
    ));
    let levels = [("-q", "e"), ("-u", "ew"), ("-v", "ewi"), ("-vv", "ewid")];
    for (flag, want) in levels {
        let user = fresh("lv");
        let mut t = register(&user).args(["-p", "hunter22", "--no-admin", "--hook", &h.arg()]);
        if flag != "-u" {
            t = t.arg(flag);
        }
        let run = t.run();
        run.code(0);
        let got: String = run
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("hook "))
            .map(|l| l.split(':').nth(1).unwrap().trim().chars().next().unwrap())
            .collect();
        assert_eq!(got, want, "{flag}: {run:#?}");
        assert!(
            !run.stderr.contains("hunter22") && !run.stderr.contains(&s.secret),
            "{run:#?}"
        );
    }
}

#[test]
fn site_policy_from_the_config() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("site.yaml");
    std::fs::write(
        &policy,
        format!(
            "register_new_matrix_user:\n  hooks: [{}, {}]\n  username_policy:\n    also_reserved: [ceo]\n    min_length: 4\n    pattern: \"^[a-z]\"\n  generate_password:\n    length: 32\n",
            shipped("username-policy.lua"),
            shipped("generate-password.lua"),
        ),
    )
    .unwrap();
    let cfg = |t: Test| {
        t.args([
            "-c",
            s.config.to_str().unwrap(),
            "-c",
            policy.to_str().unwrap(),
            "--no-admin",
        ])
    };
    // The homeserver config still gives the secret and the listener.
    for (name, why) in [
        ("ceo", "reserved"),
        ("Admin", "reserved"),
        ("abc", "shorter than 4"),
        ("9lives", "pattern"),
    ] {
        cfg(Test::new())
            .args(["-u", name])
            .run()
            .code(1)
            .one_clear_line()
            .stderr_has(why);
        assert!(s.user(name).is_none());
    }
    let user = fresh("policy");
    let run = cfg(Test::new())
        .args(["-u", &format!("  {}  ", user.to_uppercase())])
        .run();
    run.code(0);
    let pw = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Generated password: "))
        .expect("the generated password is shown");
    assert_eq!(pw.len(), 32);
    assert_eq!(run.stdout.matches(pw).count(), 1, "shown exactly once");
    assert!(!run.stderr.contains(pw));
    assert!(
        s.login(&user, pw).is_some(),
        "the generated password logs in"
    );
}

#[test]
fn generate_password_keeps_a_given_password() {
    let s = synapse();
    let user = fresh("given");
    let run = register(&user)
        .args([
            "-p",
            "my-own-pw",
            "--no-admin",
            "--hook",
            &shipped("generate-password.lua"),
        ])
        .run();
    run.code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.login(&user, "my-own-pw").is_some());
}

#[test]
fn welcome_message_arrives_and_rooms_are_joined() {
    let s = synapse();
    let bot = fresh("welcomebot");
    s.register_directly(&bot, "bot-pw", false);
    let bot_token = s.login(&bot, "bot-pw").unwrap();
    let (status, room) = s.client(
        "POST",
        "/_matrix/client/v3/createRoom",
        &bot_token,
        Some(serde_json::json!({"preset": "public_chat", "room_alias_name": fresh("general")})),
    );
    assert_eq!(status, 200, "{room}");
    let room_id = room["room_id"].as_str().unwrap().to_string();

    let user = fresh("newbie");
    register(&user)
        .args([
            "-p",
            "newbie-pw",
            "--no-admin",
            "--displayname",
            "New Bie",
            "--hook",
            &shipped("welcome.lua"),
        ])
        .env("RNMU_WELCOME_TOKEN", &bot_token)
        .env(
            "RNMU_WELCOME_MESSAGE",
            "Hello {displayname}, you are {user_id}",
        )
        .env("RNMU_WELCOME_ROOMS", &room_id)
        // The chat left as an invite (accepting it for the user is
        // clients::a_new_person_reads_the_welcome_in_a_chat_named_after_the_bot).
        .env("RNMU_WELCOME_ACCEPT_INVITE", "0")
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");

    // As the new user: the invite to a direct chat is there, and the message in it.
    let token = s.login(&user, "newbie-pw").unwrap();
    let (_, sync) = s.client("GET", "/_matrix/client/v3/sync", &token, None);
    let invites = sync["rooms"]["invite"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(invites.len(), 1, "{sync}");
    let (dm, _) = invites.into_iter().next().unwrap();
    let (status, _) = s.client(
        "POST",
        &format!(
            "/_matrix/client/v3/join/{}",
            dm.replace('!', "%21").replace(':', "%3A")
        ),
        &token,
        Some(serde_json::json!({})),
    );
    assert_eq!(status, 200);
    let (_, msgs) = s.client(
        "GET",
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20",
            dm.replace('!', "%21").replace(':', "%3A")
        ),
        &token,
        None,
    );
    let bodies: Vec<&str> = msgs["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        [format!("Hello New Bie, you are {}", s.user_id(&user))],
        "{msgs}"
    );
    // Joined to the listed room; the session used for it was logged out.
    let (_, joined) = s.client("GET", "/_matrix/client/v3/joined_rooms", &token, None);
    assert!(
        joined["joined_rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &room_id),
        "{joined}"
    );
    assert_eq!(
        s.devices(&user).len(),
        1,
        "only the test's own login remains"
    );

    // Without a token the hook refuses before anything is created.
    let other = fresh("notoken");
    register(&other)
        .args(["-p", "pw", "--no-admin", "--hook", &shipped("welcome.lua")])
        .env_remove("RNMU_WELCOME_TOKEN")
        .run()
        .code(1)
        .stderr_has("needs the bot's access token");
    assert!(s.user(&other).is_none());
}

#[test]
fn hooks_run_in_command_line_order_then_the_configs() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let mark = |name: &str| {
        let p = dir.path().join(format!("{name}.lua"));
        std::fs::write(
            &p,
            format!("return {{ before_validate = function(rec) rec.displayname = (rec.displayname or '') .. '{name}' end }}"),
        )
        .unwrap();
        p
    };
    let (a, b) = (mark("A"), mark("B"));
    mark("C");
    mark("D");
    let cfg = dir.path().join("policy.yaml");
    std::fs::write(&cfg, "register_new_matrix_user:\n  hooks: [C.lua, D.lua]\n").unwrap();
    let user = fresh("order2");
    Test::new()
        .args([
            "-u",
            &user,
            "-p",
            "pw-order",
            "--no-admin",
            "-c",
            s.config.to_str().unwrap(),
        ])
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "--hook",
            b.to_str().unwrap(),
            "--hook",
            a.to_str().unwrap(),
        ])
        .run()
        .code(0);
    // --hook files in the order given, then the config's in its order
    // (relative paths from the config file's directory).
    assert_eq!(s.user(&user).unwrap()["displayname"], "BACD");
}

/// A single registration whose hook fails after the account exists: exit 3,
/// and the message says what was left undone.
#[test]
fn exit_3_says_what_was_left_undone() {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("late.lua");
    std::fs::write(
        &hook,
        "return { before_post = function() error('CRM is down') end, after_post = function() end }",
    )
    .unwrap();
    let user = fresh("undone");
    let run = register(&user)
        .args([
            "-p",
            "pw-undone",
            "--no-admin",
            "--hook",
            hook.to_str().unwrap(),
        ])
        .run();
    run.code(3);
    let want = format!(
        "left undone: the before_post hook of {h}; the after_post hook of {h})",
        h = hook.display()
    );
    assert!(run.stderr.contains(&want), "{run:#?}");
    assert!(synapse().user(&user).is_some());
}

/// With --json, a generated password is shown once: in the JSON line.
#[test]
fn a_generated_password_with_json_is_shown_once() {
    let user = fresh("jsongen");
    let run = register(&user)
        .args([
            "--no-admin",
            "--json",
            "--hook",
            &shipped("generate-password.lua"),
        ])
        .run();
    run.code(0);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let pw = v["password"].as_str().unwrap();
    assert_eq!(
        run.stdout.matches(pw).count() + run.stderr.matches(pw).count(),
        1,
        "{run:#?}"
    );
    assert!(synapse().login(&user, pw).is_some());
}

/// username-policy.lua with its defaults accepts every localpart Matrix
/// allows, and still refuses what the site's list reserves.
#[test]
fn username_policy_defaults_accept_the_localpart_grammar() {
    for prefix in ["a+b", "a/b", "1alice"] {
        let user = fresh(prefix);
        register(&user)
            .args([
                "-p",
                "pw-policy",
                "--no-admin",
                "--hook",
                &shipped("username-policy.lua"),
            ])
            .run()
            .code(0);
        assert!(synapse().user(&user).is_some(), "{user}");
    }
    // The hook lets `_bot` through; Synapse keeps a leading `_` for bridges.
    register(&fresh("_bot"))
        .args(["-p", "pw-policy", "--no-admin", "--hook", &shipped("username-policy.lua")])
        .run()
        .code(1)
        .stdout("Sending registration request...\nERROR! Received 400 Bad Request\nUser ID may not begin with _\n");
    register("admin")
        .args([
            "-p",
            "pw-policy",
            "--no-admin",
            "--hook",
            &shipped("username-policy.lua"),
        ])
        .run()
        .code(1)
        .stderr_has("the username \"admin\" is reserved");
}

/// Both request helpers answer alike: `body` is the text, `json` decoded.
#[test]
fn request_helpers_answer_alike() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("answers.lua");
    std::fs::write(
        &hook,
        format!(
            "return {{ before_input = function()\n\
               local m = rnmu.matrix.request{{path = '/_matrix/client/versions'}}\n\
               local h = rnmu.http.request{{url = '{}/_matrix/client/versions'}}\n\
               error(type(m.body) .. ' ' .. type(m.json) .. ' ' .. type(h.body) .. ' ' .. type(h.json)\n\
                 .. ' ' .. tostring(m.json.versions ~= nil) .. ' ' .. tostring(m.body == h.body))\n\
             end }}",
            s.url
        ),
    )
    .unwrap();
    register(&fresh("answers"))
        .args([
            "-p",
            "pw-answers",
            "--no-admin",
            "--hook",
            hook.to_str().unwrap(),
        ])
        .run()
        .code(1)
        .stderr_has("string table string table true");
}

#[test]
fn help_names_the_alias_and_the_default_and_output_needs_batch() {
    let help = Test::new().arg("--help").run();
    help.code(0);
    assert!(help.stdout.contains("--user-type"), "{}", help.stdout);
    assert!(help.stdout.contains("your login"), "{}", help.stdout);
    let s = synapse();
    Test::new()
        .args([
            "-u",
            "someone",
            "-p",
            "pw-o",
            "--no-admin",
            "-o",
            "/tmp/never.jsonl",
        ])
        .args(["-k", &s.secret, &s.url])
        .run()
        .code(2)
        .stderr_has("--output records the rows of a --batch");
    assert!(s.user("someone").is_none());
}

/// Without `--ensure`, a batch's `emails`, `rooms`, `locked` and `active`
/// columns are read and checked as under `--ensure`, and reach hooks in
/// `rec.extra` as read (a list, a boolean); the tool does nothing else with
/// them, and a value of the wrong type refuses its row
/// (docs/desired-state.md).
#[test]
fn without_ensure_desired_state_columns_reach_hooks_checked_in_extra() {
    let s = synapse();
    let h = hook(
        "return { before_validate = function(rec) rnmu.log.warn('types ' .. type(rec.emails) .. ' ' \
         .. type(rec.extra.emails) .. ' ' .. type(rec.extra.rooms) .. ' ' .. type(rec.extra.locked) \
         .. ' ' .. type(rec.extra.active)) end }",
    );
    let dir = tempfile::tempdir().unwrap();
    let u = fresh("typed");
    let bad = fresh("typedbad");
    let rows = dir.path().join("rows.jsonl");
    std::fs::write(
        &rows,
        format!(
            "{}\n{}\n",
            serde_json::json!({"username": u, "password": "pw-typed-1", "emails": [format!("{u}@example.org")],
                               "rooms": ["#nowhere:example.org"], "locked": false, "active": true}),
            serde_json::json!({"username": bad, "password": "pw-typed-2", "active": "sometimes"}),
        ),
    )
    .unwrap();
    let run = Test::new()
        .args(["--batch", rows.to_str().unwrap(), "--no-admin", "--hook"])
        .arg(h.path.to_str().unwrap())
        .args(["-k", &s.secret, &s.url])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hook warn: types nil table table boolean boolean"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("line 2: active is \"sometimes\", not a boolean"),
        "{}",
        run.stderr
    );
    assert!(s.user(&u).is_some() && s.user(&bad).is_none());
    assert!(s.emails(&u).is_empty(), "nothing was done with the emails");
}
