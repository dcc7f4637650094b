//! Differential tests: Synapse's own script and this tool, run with the same
//! arguments against the same server, must agree on the exit status, the lines
//! printed and the state the server ends in.

use crate::{Run, Test, fresh, synapse};

/// The two runs of one comparison, with the user each one registered.
struct Diff {
    original: Run,
    ours: Run,
    users: [String; 2],
}

/// Fills `{user}`, `{url}`, `{secret}` and `{config}` in an argument list.
fn fill(args: &[&str], user: &str) -> Vec<String> {
    let s = synapse();
    args.iter()
        .map(|a| {
            a.replace("{user}", user)
                .replace("{url}", &s.url)
                .replace("{secret}", &s.secret)
                .replace("{config}", &s.config.to_string_lossy())
        })
        .collect()
}

/// Runs both tools, each for a fresh user of its own.
fn compare(args: &[&str], stdin: Option<&str>) -> Diff {
    let users = [fresh("orig"), fresh("ours")];
    let run = |t: Test, user: &str| {
        let t = t.args(fill(args, user));
        match stdin {
            Some(i) => t.stdin(i).run(),
            None => t.run(),
        }
    };
    let original = run(Test::original(), &users[0]);
    let ours = run(Test::new(), &users[1]);
    let d = Diff {
        original,
        ours,
        users,
    };
    assert_eq!(d.original.code, d.ours.code, "exit status differs\n{d:#?}");
    assert_eq!(d.original.stdout, d.ours.stdout, "stdout differs\n{d:#?}");
    d
}

impl std::fmt::Debug for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "original: {:#?}\nours: {:#?}", self.original, self.ours)
    }
}

impl Diff {
    /// Both registered their user, with the same admin flag and user type,
    /// and the password logs in for both.
    #[track_caller]
    fn registered(&self, password: &str, admin: bool, user_type: Option<&str>) -> &Self {
        let s = synapse();
        self.ours.code(0);
        for u in &self.users {
            assert!(s.user(u).is_some(), "{u} was not registered\n{self:#?}");
            assert_eq!(s.is_admin(u), admin, "admin flag of {u}");
            assert_eq!(s.user_type(u).as_deref(), user_type, "user type of {u}");
            assert!(s.login(u, password).is_some(), "{u} cannot log in");
        }
        self
    }

    /// Neither left a user behind.
    #[track_caller]
    fn nobody(&self) -> &Self {
        for u in &self.users {
            assert!(synapse().user(u).is_none(), "{u} exists\n{self:#?}");
        }
        self
    }
}

#[test]
fn admin_with_secret_and_url() {
    compare(
        &[
            "-u", "{user}", "-p", "pw-admin", "-a", "-k", "{secret}", "{url}",
        ],
        None,
    )
    .registered("pw-admin", true, None);
}

#[test]
fn long_flags_and_config_listener_discovery() {
    compare(
        &[
            "--user",
            "{user}",
            "--password",
            "pw-c",
            "--no-admin",
            "--config",
            "{config}",
        ],
        None,
    )
    .registered("pw-c", false, None);
}

#[test]
fn equals_forms_and_flag_order() {
    compare(
        &[
            "{url}",
            "--no-admin",
            "--password=pw-eq",
            "--shared-secret={secret}",
            "--user={user}",
        ],
        None,
    )
    .registered("pw-eq", false, None);
}

#[test]
fn bot_and_support_user_types() {
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw-bot",
            "--no-admin",
            "-t",
            "bot",
            "-c",
            "{config}",
        ],
        None,
    )
    .registered("pw-bot", false, Some("bot"));
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw-sup",
            "-a",
            "--user_type",
            "support",
            "-k",
            "{secret}",
            "{url}",
        ],
        None,
    )
    .registered("pw-sup", true, Some("support"));
}

#[test]
fn password_file_is_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "  pw-from-file \n\n").unwrap();
    let pw = pw.to_string_lossy().into_owned();
    compare(
        &[
            "-u",
            "{user}",
            "--password-file",
            &pw,
            "--no-admin",
            "-c",
            "{config}",
        ],
        None,
    )
    .registered("pw-from-file", false, None);
}

#[test]
fn uppercase_username_is_lowercased_by_the_server() {
    let d = compare(
        &[
            "-u",
            "Up{user}",
            "-p",
            "pw-up",
            "--no-admin",
            "-c",
            "{config}",
        ],
        None,
    );
    for u in &d.users {
        assert!(synapse().user(&format!("up{u}")).is_some(), "{d:#?}");
    }
}

#[test]
fn existing_user_fails_and_exists_ok_skips() {
    let s = synapse();
    let user = fresh("taken");
    s.register_directly(&user, "first-pw", false);
    let args = |exists_ok: bool| {
        let mut a = vec!["-u", user.as_str(), "-p", "second-pw", "-a", "-c"];
        a.push(s.config.to_str().unwrap());
        if exists_ok {
            a.push("--exists-ok");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for exists_ok in [false, true] {
        let orig = Test::original().args(args(exists_ok)).run();
        let ours = Test::new().args(args(exists_ok)).run();
        assert_eq!(
            (orig.code, &orig.stdout),
            (ours.code, &ours.stdout),
            "{orig:#?}\n{ours:#?}"
        );
    }
    Test::new()
        .args(args(true))
        .run()
        .code(0)
        .stdout("Sending registration request...\nUser already exists. Skipping.\n");
    Test::new().args(args(false)).run().code(1).stdout(
        "Sending registration request...\nERROR! Received 400 Bad Request\nUser ID already taken.\n",
    );
    // Nothing about the account changed.
    assert!(!s.is_admin(&user));
    assert!(s.login(&user, "first-pw").is_some());
}

#[test]
fn wrong_shared_secret() {
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw",
            "--no-admin",
            "-k",
            "not-the-secret",
            "{url}",
        ],
        None,
    )
    .nobody()
    .ours
    .code(1)
    .stdout("Sending registration request...\nERROR! Received 403 Forbidden\nHMAC incorrect\n");
}

#[test]
fn unknown_user_type() {
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw",
            "--no-admin",
            "-t",
            "wizard",
            "-c",
            "{config}",
        ],
        None,
    )
    .nobody()
    .ours
    .code(1)
    .stdout(
        "Sending registration request...\nERROR! Received 400 Bad Request\nInvalid user type\n",
    );
}

#[test]
fn later_config_files_replace_earlier_keys() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(&wrong, "registration_shared_secret: wrong\n").unwrap();
    let right = dir.path().join("right.yaml");
    std::fs::write(
        &right,
        format!("registration_shared_secret: {}\n", synapse().secret),
    )
    .unwrap();
    let (w, r) = (wrong.to_string_lossy(), right.to_string_lossy());
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw-m",
            "--no-admin",
            "-c",
            &w,
            "-c",
            &r,
            "{url}",
        ],
        None,
    )
    .registered("pw-m", false, None);
    compare(
        &[
            "-u",
            "{user}",
            "-p",
            "pw-m",
            "--no-admin",
            "-c",
            &r,
            "-c",
            &w,
            "{url}",
        ],
        None,
    )
    .nobody()
    .ours
    .code(1);
}

#[test]
fn secret_from_registration_shared_secret_path() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("\n{}\n", synapse().secret)).unwrap();
    let cfg = dir.path().join("hs.yaml");
    std::fs::write(
        &cfg,
        format!("registration_shared_secret_path: {}\n", secret.display()),
    )
    .unwrap();
    let cfg = cfg.to_string_lossy();
    compare(
        &["-u", "{user}", "-p", "pw-path", "-a", "-c", &cfg, "{url}"],
        None,
    )
    .registered("pw-path", true, None);
}

#[test]
fn answers_on_redirected_stdin() {
    // The admin question, answered from a pipe.
    compare(
        &["-u", "{user}", "-p", "pw-pipe", "-k", "{secret}", "{url}"],
        Some("yes\n"),
    )
    .registered("pw-pipe", true, None)
    .ours
    .stdout("Make admin [no]: Sending registration request...\nSuccess!\n");
    // Anything but y, yes or true means no.
    compare(
        &["-u", "{user}", "-p", "pw-pipe", "-k", "{secret}", "{url}"],
        Some("Yes\n"),
    )
    .registered("pw-pipe", false, None);
}

#[test]
fn localpart_answered_on_redirected_stdin() {
    let s = synapse();
    for t in [Test::original(), Test::new()] {
        let user = fresh("piped");
        t.args(["-p", "pw-lp", "--no-admin", "-k", &s.secret, &s.url])
            .env("USER", "someone")
            .env("LOGNAME", "someone")
            .stdin(format!("{user}\n"))
            .run()
            .code(0)
            .stdout("New user localpart [someone]: Sending registration request...\nSuccess!\n");
        assert!(s.login(&user, "pw-lp").is_some());
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["-u", "x", "-p", "y"],                        // no secret source
        vec!["-u", "x", "-k", "s", "-c", "/etc/hostname"], // two secret sources
        vec!["-u", "x", "-p", "y", "--password-file", "f", "-k", "s"], // two password sources
        vec!["-u", "x", "-a", "--no-admin", "-k", "s"],    // admin and no-admin
        vec!["-k", "s", "--no-such-flag"],
        vec!["-c", "/nonexistent/homeserver.yaml", "-u", "x"], // config cannot be opened
    ] {
        let orig = Test::original().args(args.clone()).run();
        let ours = Test::new().args(args.clone()).run();
        assert_eq!(orig.code, 2, "{args:?}: {orig:#?}");
        assert_eq!(ours.code, 2, "{args:?}: {ours:#?}");
        assert_eq!(ours.stdout, "", "{args:?}");
    }
}

#[test]
fn config_secret_errors_exit_1_with_nothing_sent() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n  \n").unwrap();
    let cases = [
        (
            "both",
            "registration_shared_secret: a\nregistration_shared_secret_path: /x\n".to_string(),
        ),
        ("neither", "server_name: x\n".to_string()),
        (
            "not-a-string",
            "registration_shared_secret: 12345\n".to_string(),
        ),
        (
            "path-not-a-string",
            "registration_shared_secret_path: [1]\n".to_string(),
        ),
        (
            "empty-file",
            format!("registration_shared_secret_path: {}\n", empty.display()),
        ),
        (
            "missing-file",
            "registration_shared_secret_path: /nonexistent/secret\n".to_string(),
        ),
    ];
    for (name, body) in cases {
        let cfg = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&cfg, body).unwrap();
        let cfg = cfg.to_string_lossy();
        let d = compare(
            &[
                "-u",
                "{user}",
                "-p",
                "pw",
                "--no-admin",
                "-c",
                &cfg,
                "{url}",
            ],
            None,
        );
        d.nobody();
        d.ours.code(1).stdout("").one_clear_line();
    }
}

#[test]
fn abbreviated_long_flags_work_as_in_the_original() {
    compare(
        &[
            "--us",
            "{user}",
            "--passw",
            "pw-abbrev",
            "--no",
            "--conf",
            "{config}",
        ],
        None,
    )
    .nobody(); // --us is ambiguous (--user, --user_type) in both: a usage error.
    compare(
        &[
            "--user",
            "{user}",
            "--password",
            "pw-abbrev",
            "--no",
            "--conf",
            "{config}",
            "--exists",
        ],
        None,
    )
    .registered("pw-abbrev", false, None);
    compare(
        &["--user", "{user}", "--pass", "x", "--no", "-c", "{config}"],
        None,
    )
    .nobody()
    .ours
    .code(2);
    // Prefixes the original read as its own flags keep their meaning, though
    // an extension (--shared-secret-file) now shares them.
    compare(
        &[
            "--user",
            "{user}",
            "--password",
            "pw-shared",
            "--no",
            "--shared",
            "{secret}",
            "{url}",
        ],
        None,
    )
    .registered("pw-shared", false, None);
    compare(
        &[
            "--user",
            "{user}",
            "--password-f",
            "/dev/null",
            "--no",
            "--shared={secret}",
            "{url}",
        ],
        None,
    )
    .nobody();
}
