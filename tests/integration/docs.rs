//! The docs' examples, run: every Lua example in docs/hooks.md as the
//! complete hook file it claims to be, and the README's site-policy and
//! batch examples, each checked for the outcome the text around it states.
//! An example this file does not know fails the test, so the docs cannot
//! drift from what the tool does.
//!
//! Examples name example.org; here that becomes the rig's server (and
//! `https://matrix.example.org` its URL, the HR system a loopback stub).

use crate::{Run, Test, fresh, synapse};
use std::io::{Read, Write};

fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// A loopback stub for the HR system that answers 200 to anything and keeps
/// what it was sent in [`HR`].
fn hr_stub() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/matrix", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = vec![0u8; 65536];
            let n = c.read(&mut buf).unwrap_or(0);
            HR.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    url
}

struct Example {
    /// A piece of the example's code that names it.
    marker: &'static str,
    /// Runs it (the hook file's path, the user) and checks the outcome.
    check: fn(&str, &str),
}

fn run(hook: &str, user: &str, extra: &[&str]) -> Run {
    let s = synapse();
    Test::new()
        .args(["-u", user, "--hook", hook])
        .args(extra.iter().copied())
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run()
}

/// `--ensure` with the rig's admin token, and a hook.
fn ensure(hook: &str, user: &str, extra: &[&str]) -> Run {
    let s = synapse();
    Test::new()
        .args(["--ensure", "--admin-token-file", &s.admin_token_file()])
        .args(["-u", user, "--hook", hook])
        .args(extra.iter().copied())
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run()
}

const EXAMPLES: &[Example] = &[
    Example {
        marker: "will change\")",
        check: |h, u| {
            synapse().register_directly(u, "pw-doc-ensure", false);
            ensure(h, u, &["--admin", "--displayname", "Doc", "-v"])
                .code(0)
                .stderr_has(&format!("hook info: {u}: admin will change"))
                .stderr_has(&format!("hook info: {u}: displayname will change"));
            assert!(synapse().is_admin(u));
        },
    },
    Example {
        marker: "not demoting ",
        check: |h, u| {
            let s = synapse();
            s.register_directly(u, "pw-doc-ensure", true);
            ensure(h, u, &["--no-admin"])
                .code(0)
                .stderr_has(&format!("hook warn: not demoting {}", s.user_id(u)))
                .stdout(&format!("Nothing to change for {}\n", s.user_id(u)));
            assert!(s.is_admin(u), "the veto held");
        },
    },
    Example {
        marker: "shadow_ban",
        check: |h, u| {
            let s = synapse();
            s.register_directly(u, "pw-doc-ensure", false);
            ensure(h, u, &["--displayname", "Vouch"]).code(0);
            assert_eq!(s.user(u).unwrap()["shadow_banned"], true);
        },
    },
    Example {
        marker: "rnmu.log.info(\"registering \"",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "-v"])
                .code(0)
                .stderr_has(&format!("hook info: registering {u}"));
        },
    },
    Example {
        marker: "error(\"that name is reserved\")",
        check: |h, _| {
            // "one line with the hook file and line and exits 1"
            let r = run(h, "ceo", &["-p", "pw-doc", "--no-admin"]);
            r.code(1).one_clear_line();
            assert_eq!(
                r.stderr_unwarned(),
                format!("error: hook {h}:3 (after_input): that name is reserved\n")
            );
            assert!(synapse().user("ceo").is_none());
        },
    },
    Example {
        marker: "if ctx.rerun then",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "-v"]).code(0);
        },
    },
    Example {
        marker: "before_config = function",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "-vv"])
                .code(0)
                .stderr_has("hook debug: starting, url=");
        },
    },
    Example {
        marker: "wrong server: ",
        check: |h, u| {
            // The rig is "the production server" here: the check passes.
            run(h, u, &["-p", "pw-doc", "--no-admin"]).code(0);
        },
    },
    Example {
        marker: "rec.password = rnmu.password{length = 20}",
        check: |h, u| {
            // "so nobody is asked": no -p, no --no-admin, standard input closed.
            let r = run(h, u, &[]);
            r.code(0);
            let pw = r
                .stdout
                .lines()
                .last()
                .unwrap()
                .trim_start_matches("Generated password: ");
            assert_eq!(pw.len(), 20, "{r:#?}");
            assert!(!synapse().is_admin(u));
            assert!(synapse().login(u, pw).is_some());
        },
    },
    Example {
        marker: "rec.username = string.lower(",
        check: |h, u| {
            run(
                h,
                &format!("  {}  ", u.to_uppercase()),
                &["-p", "pw-doc", "--no-admin"],
            )
            .code(0);
            assert!(synapse().login(u, "pw-doc").is_some());
        },
    },
    Example {
        marker: "rec.extra.first and rec.extra.last",
        check: |h, u| {
            let s = synapse();
            let dir = tempfile::tempdir().unwrap();
            let rows = dir.path().join("u.csv");
            std::fs::write(
                &rows,
                format!("username,password,first,last\n{u},pw-doc,Ada,Lovelace\n"),
            )
            .unwrap();
            Test::new()
                .args([
                    "--batch",
                    rows.to_str().unwrap(),
                    "--hook",
                    h,
                    "-k",
                    &s.secret,
                    &s.url,
                ])
                .run()
                .code(0);
            assert_eq!(s.user(u).unwrap()["displayname"], "Ada Lovelace");
        },
    },
    Example {
        marker: "admins need ALLOW_ADMINS=1",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "-a"])
                .code(1)
                .stderr_has("admins need ALLOW_ADMINS=1");
            assert!(synapse().user(u).is_none());
        },
    },
    Example {
        marker: "about to contact ",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "-v"])
                .code(0)
                .stderr_has("hook info: about to contact http://127.0.0.1:");
        },
    },
    Example {
        marker: "rec.nonce:sub(1, 8)",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "-vv"])
                .code(0)
                .stderr_has("hook debug: nonce ");
        },
    },
    Example {
        marker: "dry run for ",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin", "--dry-run"])
                .code(0)
                .stderr_has(&format!("hook warn: dry run for {u}"));
        },
    },
    Example {
        marker: "return { before_submit = function(rec) rec.want_session = true end }",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin"]).code(0);
            assert!(
                synapse().devices(u).is_empty(),
                "the session was logged out"
            );
        },
    },
    Example {
        marker: "rnmu.matrix.join(rec.access_token, \"#general:",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin"]).code(0);
            let s = synapse();
            let id = s.user_id(u);
            let joined = s.admin(&format!(
                "/_synapse/admin/v1/users/{}/joined_rooms",
                crate::rig::enc(&id)
            ));
            assert_eq!(joined["total"], 1, "{joined}");
            assert!(s.devices(u).is_empty());
        },
    },
    Example {
        marker: "HR system answered ",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin"]).code(0);
            let id = synapse().user_id(u);
            let seen = HR.lock().unwrap().clone();
            assert!(seen.iter().any(|r| r.contains(&id)), "{seen:?}");
        },
    },
    Example {
        marker: "assert(rec.access_token == nil)",
        check: |h, u| {
            run(h, u, &["-p", "pw-doc", "--no-admin"]).code(0);
        },
    },
    Example {
        marker: "rnmu.log.error(\"registration of \"",
        check: |h, u| {
            let s = synapse();
            Test::new()
                .args([
                    "-u",
                    u,
                    "-p",
                    "pw-doc",
                    "--no-admin",
                    "--hook",
                    h,
                    "-k",
                    "a-wrong-secret",
                    &s.url,
                ])
                .run()
                .code(1)
                .stderr_has(&format!("hook error: registration of {u} failed: "));
        },
    },
    Example {
        // Its rules need a directory's entries: run against the rig's
        // slapd by ldap::the_readme_directory_commands_and_the_hook_example_do_what_they_say.
        marker: "departmentNumber",
        check: |_, _| {},
    },
];

static HR: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[test]
fn every_lua_example_in_the_hook_docs_does_what_the_docs_say() {
    let s = synapse();
    let text = std::fs::read_to_string(crate::rig::root().join("docs/hooks.md")).unwrap();
    let examples = blocks(&text, "lua");
    assert!(examples.len() >= EXAMPLES.len());
    // The room the after_submit example joins, on the rig.
    let owner = fresh("general");
    s.register_directly(&owner, "pw-general", false);
    let token = s.login(&owner, "pw-general").unwrap();
    let (status, body) = s.client(
        "POST",
        "/_matrix/client/v3/createRoom",
        &token,
        Some(serde_json::json!({"preset": "public_chat", "room_alias_name": "general"})),
    );
    assert!(
        status == 200 || body["errcode"] == "M_ROOM_IN_USE",
        "{body}"
    );
    let hr_url = hr_stub();
    let dir = tempfile::tempdir().unwrap();
    let mut used = vec![false; EXAMPLES.len()];
    for (i, code) in examples.iter().enumerate() {
        let k = EXAMPLES
            .iter()
            .position(|e| code.contains(e.marker))
            .unwrap_or_else(|| {
                panic!("docs/hooks.md has a Lua example this test does not know:\n{code}")
            });
        used[k] = true;
        let code = code
            .replace("https://matrix.example.org", &s.url)
            .replace("https://hr.example.org/hooks/matrix", &hr_url)
            .replace("example.org", &s.server_name);
        let hook = dir.path().join(format!("example{i}.lua"));
        std::fs::write(&hook, code).unwrap();
        let user = fresh("doc");
        (EXAMPLES[k].check)(hook.to_str().unwrap(), &user);
    }
    assert!(
        used.iter().all(|u| *u),
        "an expected example is gone from docs/hooks.md"
    );
}

/// The README's site policy: the YAML file given as one more `-c`, then the
/// two commands of its console example, with their outputs.
#[test]
fn the_readme_site_policy_example_does_what_it_shows() {
    let s = synapse();
    let readme = std::fs::read_to_string(crate::rig::root().join("README.md")).unwrap();
    let yaml = blocks(&readme, "yaml")
        .into_iter()
        .find(|b| b.contains("username_policy"))
        .expect("the policy example");
    let console = blocks(&readme, "console")
        .into_iter()
        .find(|b| b.contains("register-policy.yaml"))
        .expect("the console example");
    let hooks_dir = crate::rig::root().join("hooks");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("register-policy.yaml");
    std::fs::write(
        &policy,
        yaml.replace(
            "/usr/share/register-new-matrix-user/hooks",
            hooks_dir.to_str().unwrap(),
        ),
    )
    .unwrap();
    // The commands, and what the console shows after each.
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in console.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps.last_mut().unwrap().1.push(line.to_string()),
        }
    }
    assert_eq!(steps.len(), 2, "{console}");
    // First: a reserved name, refused by the hook with its file and line.
    let run = Test::new()
        .args([
            "-c",
            s.config.to_str().unwrap(),
            "-c",
            policy.to_str().unwrap(),
        ])
        .args(["-u", "Payroll", "--no-admin"])
        .run();
    run.code(1);
    let want = steps[0].1[0].replace(
        "/usr/share/register-new-matrix-user/hooks",
        hooks_dir.to_str().unwrap(),
    );
    assert_eq!(run.stderr_unwarned().trim_end(), want, "{run:#?}");
    // Second: a name that passes, with whitespace and capitals; a generated
    // password shown once.
    let user = fresh("alice");
    let run = Test::new()
        .args([
            "-c",
            s.config.to_str().unwrap(),
            "-c",
            policy.to_str().unwrap(),
        ])
        .args(["-u", &format!("  {} ", user.to_uppercase()), "--no-admin"])
        .run();
    run.code(0);
    let shown: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(shown[..2], ["Sending registration request...", "Success!"]);
    let pw = shown[2].strip_prefix("Generated password: ").unwrap();
    assert_eq!(pw.len(), 32, "generate_password.length: 32");
    assert_eq!(steps[1].1.len(), 3);
    assert!(synapse().login(&user, pw).is_some());
}

/// The README's shell examples that run against a server, run by bash as
/// written, with the rig's config for `homeserver.yaml` and this build for
/// the binary.
#[test]
fn the_readme_commands_do_what_they_say() {
    let s = synapse();
    let readme = std::fs::read_to_string(crate::rig::root().join("README.md")).unwrap();
    let commands: Vec<String> = blocks(&readme, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        // The commands that register against a server: the tool's own lines,
        // or a password piped into it; not system changes (`sudo ...`), and
        // not the one aimed at a real server's /etc.
        .filter(|l| {
            (l.starts_with("register_new_matrix_user ")
                || l.starts_with("target/release/register_new_matrix_user ")
                || (l.starts_with("printf ")
                    && l.contains("| target/release/register_new_matrix_user ")))
                && !l.contains("/etc/matrix-synapse")
                // Those for MAS-backed servers run against a stub (mas.rs).
                && !l.contains("--mas-")
                // The adoption walkthrough reads and prunes a whole server:
                // it runs against one of its own (server_state.rs).
                && !l.contains("--export")
                && !l.contains("--prune")
        })
        .collect();
    assert_eq!(commands.len(), 5, "{commands:?}");
    let bin = assert_cmd::cargo::cargo_bin!("register_new_matrix_user");
    let dir = tempfile::tempdir().unwrap();
    let bot = fresh("bot");
    let members: Vec<String> = (0..3).map(|_| fresh("member")).collect();
    std::fs::write(
        dir.path().join("users.csv"),
        format!("username\n{}\n", members.join("\n")),
    )
    .unwrap();
    std::fs::copy(&s.config, dir.path().join("homeserver.yaml")).unwrap();
    // The desired-state examples: an admin's token, and an inventory.
    std::fs::copy(s.admin_token_file(), dir.path().join("admin.token")).unwrap();
    let people: Vec<String> = (0..3).map(|_| fresh("person")).collect();
    let inventory: String = people
        .iter()
        .map(|p| format!("{{\"username\": \"{p}\", \"displayname\": \"P\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("people.jsonl"), inventory).unwrap();
    for cmd in &commands {
        let cmd = cmd
            .replace(
                "target/release/register_new_matrix_user",
                bin.to_str().unwrap(),
            )
            .replace("bot1", &bot);
        let cmd = match cmd.strip_prefix("register_new_matrix_user ") {
            Some(rest) => format!("{} {rest}", bin.display()),
            None => cmd,
        };
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .current_dir(dir.path())
            .env("password", "readme-bot-password")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // A plan that would create people says so with its own status.
        let want = if cmd.contains("--plan") { 4 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{cmd}\n{err}");
    }
    // The inventory was created, then rolled back.
    for p in &people {
        let acc = s.user(p).unwrap_or_else(|| panic!("{p} was never created"));
        assert_eq!(acc["displayname"], "P");
        assert_eq!(acc["deactivated"], true, "{p}");
    }
    // The bot: registered as a bot, with the piped password.
    assert_eq!(s.user_type(&bot).as_deref(), Some("bot"));
    assert!(s.login(&bot, "readme-bot-password").is_some());
    // The batch: every member registered, the results file private.
    let results = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_user = crate::batch::last_by_user(&lines);
    for m in &members {
        assert_eq!(by_user[m.as_str()]["status"], "registered");
        let pw = by_user[m.as_str()]["password"].as_str().unwrap();
        assert!(s.login(m, pw).is_some());
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("results.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// docs/flags.md names every long flag `--help` has, and no flag it lacks.
#[test]
fn flags_md_lists_every_flag_of_help() {
    let help = Test::new().args(["--help"]).run();
    assert_eq!(help.code, 0);
    let flags_md = std::fs::read_to_string(crate::rig::root().join("docs/flags.md")).unwrap();
    let long = |text: &str| -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("--") {
            let name: String = text[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            let before = text[..i].chars().next_back();
            if name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-')
            {
                out.insert(name);
            }
        }
        out
    };
    // The flags' own column of the table.
    let table: String = flags_md
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .collect::<Vec<_>>()
        .join("\n");
    let in_help: std::collections::BTreeSet<String> = help
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| long(l.trim_start().split("  ").next().unwrap_or_default()))
        .collect();
    let in_md = long(&table);
    let missing: Vec<_> = in_help.difference(&in_md).collect();
    let extra: Vec<_> = in_md.difference(&in_help).collect();
    assert!(
        missing.is_empty(),
        "in --help, not in docs/flags.md's table: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/flags.md's table, not in --help: {extra:?}"
    );
}
