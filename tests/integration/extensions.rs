//! What this tool adds to the original's command line.

use crate::{Test, fresh, synapse};

#[test]
fn no_orphan_device_unlike_the_original() {
    let s = synapse();
    let (ours, orig) = (fresh("dev"), fresh("dev"));
    for (t, u) in [(Test::new(), &ours), (Test::original(), &orig)] {
        t.args([
            "-u",
            u.as_str(),
            "-p",
            "pw-dev",
            "--no-admin",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(0);
    }
    assert_eq!(s.devices(&ours).len(), 0, "this tool must leave no device");
    assert_eq!(
        s.devices(&orig).len(),
        1,
        "the original leaves a device (the comparison is meaningful)"
    );
    assert!(s.login(&ours, "pw-dev").is_some());
}

#[test]
fn displayname_is_sent() {
    let s = synapse();
    let u = fresh("dn");
    Test::new()
        .args([
            "-u",
            u.as_str(),
            "-p",
            "pw",
            "--no-admin",
            "--displayname",
            "Ada Lovelace",
            "-c",
        ])
        .arg(s.config.to_str().unwrap())
        .run()
        .code(0);
    assert_eq!(s.user(&u).unwrap()["displayname"], "Ada Lovelace");
}

#[test]
fn password_from_stdin() {
    let s = synapse();
    let u = fresh("stdin");
    Test::new()
        .args([
            "-u",
            u.as_str(),
            "--password-file",
            "-",
            "-a",
            "-k",
            &s.secret,
            &s.url,
        ])
        .stdin("  pw from a pipe\n")
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.login(&u, "pw from a pipe").is_some());
    assert!(s.is_admin(&u));
}

#[test]
fn shared_secret_file() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, format!("{}\n", s.secret)).unwrap();
    let u = fresh("ssf");
    Test::new()
        .args([
            "-u",
            u.as_str(),
            "-p",
            "pw",
            "--no-admin",
            "--shared-secret-file",
        ])
        .args([f.to_str().unwrap(), s.url.as_str()])
        .run()
        .code(0);
    assert!(s.user(&u).is_some());
    // It is one of the secret sources: not together with -k.
    Test::new()
        .args([
            "-u",
            "x",
            "-p",
            "pw",
            "--no-admin",
            "-k",
            "s",
            "--shared-secret-file",
        ])
        .arg(f.to_str().unwrap())
        .run()
        .code(2);
}

#[test]
fn user_type_with_a_dash() {
    let s = synapse();
    let u = fresh("dash");
    Test::new()
        .args([
            "-u",
            u.as_str(),
            "-p",
            "pw",
            "--no-admin",
            "--user-type",
            "bot",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(0);
    assert_eq!(s.user_type(&u).as_deref(), Some("bot"));
}

/// `--help` as committed in tests/snapshots/help.txt; rerun with
/// UPDATE_SNAPSHOTS=1 to accept a deliberate change.
#[test]
fn help_snapshot() {
    let path = crate::rig::root().join("tests/snapshots/help.txt");
    // The width clap wraps at, whatever the terminal running the tests.
    let help = Test::new().arg("--help").env("COLUMNS", "100").run();
    help.code(0);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &help.stdout).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        help.stdout, want,
        "--help changed; rerun with UPDATE_SNAPSHOTS=1 if that was meant"
    );
}

#[test]
fn help_and_version() {
    let help = Test::new().arg("--help").run();
    help.code(0);
    for flag in [
        "--user",
        "--exists-ok",
        "--password-file",
        "--user_type",
        "--no-admin",
        "--shared-secret-file",
        "--displayname",
        "Exit status",
    ] {
        assert!(help.stdout.contains(flag), "--help lacks {flag}");
    }
    let v = Test::new().arg("--version").run();
    v.code(0);
    assert!(v.stdout.starts_with("register_new_matrix_user "), "{v:#?}");
}

#[test]
fn quiet_prints_nothing_on_success() {
    let s = synapse();
    let u = fresh("quiet");
    Test::new()
        .args([
            "-q",
            "-u",
            u.as_str(),
            "-p",
            "pw",
            "--no-admin",
            "-k",
            &s.secret,
            &s.url,
        ])
        .run()
        .code(0)
        .stdout("");
    assert!(s.user(&u).is_some());
}

/// `-c DIR` reads a directory the way Synapse's own `-c` does: Debian's
/// layout (homeserver.yaml plus conf.d/) finds a secret that lives only in
/// conf.d, and the merged config is the one Synapse's loader makes.
#[test]
fn a_config_directory_is_read_as_synapse_reads_it() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path();
    let rig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    // homeserver.yaml without the secret; the secret in conf.d.
    let mut main = rig.as_mapping().unwrap().clone();
    main.remove("registration_shared_secret");
    std::fs::write(
        etc.join("homeserver.yaml"),
        serde_yaml::to_string(&main).unwrap(),
    )
    .unwrap();
    let confd = etc.join("conf.d");
    std::fs::create_dir_all(confd.join("sub.yaml")).unwrap();
    std::fs::write(
        confd.join("10-wrong.yaml"),
        "registration_shared_secret: not-this-one\n",
    )
    .unwrap();
    std::fs::write(
        confd.join("20-secret.yaml"),
        format!("registration_shared_secret: {}\n", s.secret),
    )
    .unwrap();
    std::fs::write(confd.join("30-other.yaml"), "report_stats: false\n").unwrap();
    std::fs::write(
        confd.join("99-later.yml"),
        "registration_shared_secret: not-yml\n",
    )
    .unwrap();
    std::fs::write(
        confd.join("notes.txt"),
        "registration_shared_secret: not-txt\n",
    )
    .unwrap();
    std::fs::write(
        confd.join("sub.yaml/90-nested.yaml"),
        "registration_shared_secret: not-nested\n",
    )
    .unwrap();
    // What Synapse's loader reads from the same arguments.
    let py = s.venv.join("bin/python");
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import sys, json\n\
             from synapse.config._base import find_config_files, read_config_files\n\
             files = find_config_files(sys.argv[1:])\n\
             print(json.dumps({'files': files, 'secret': read_config_files(files)['registration_shared_secret']}))",
        ])
        .arg(etc.join("homeserver.yaml"))
        .arg(&confd)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let synapse_view: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(synapse_view["secret"], s.secret.as_str(), "{text}");
    let user = fresh("confd");
    let run = Test::new()
        .args(["-u", &user, "-p", "pw-confd", "--no-admin", "-vv"])
        .args([
            "-c",
            etc.join("homeserver.yaml").to_str().unwrap(),
            "-c",
            confd.to_str().unwrap(),
        ])
        .run();
    run.code(0);
    assert!(s.login(&user, "pw-confd").is_some());
    // The same files, in the same order, as Synapse's loader.
    let ours: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("debug: config: reading "))
        .collect();
    let theirs: Vec<&str> = synapse_view["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "{run:#?}");
}

/// The server's password policy, from the `-c` files: a password that breaks
/// it is refused before anything is sent; --ignore-password-policy takes it;
/// generated passwords always pass it; a config with password login off is
/// said to be so.
#[test]
fn the_servers_password_policy_is_applied() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "password_config:\n  policy:\n    enabled: true\n    minimum_length: 12\n    require_digit: true\n",
    )
    .unwrap();
    let with_policy = |t: Test| {
        t.args([
            "-c",
            s.config.to_str().unwrap(),
            "-c",
            policy.to_str().unwrap(),
        ])
    };
    let user = fresh("policy");
    let run = with_policy(Test::new().args(["-u", &user, "-p", "short", "--no-admin"])).run();
    run.code(1).one_clear_line().stderr_has(
        "the password breaks the server's password policy: The password must be at least 12 characters long (password_config.policy.minimum_length)",
    );
    assert_eq!(run.stdout, "");
    assert!(s.user(&user).is_none());
    with_policy(Test::new().args(["-u", &user, "-p", "long-enough-but-no-digit", "--no-admin"]))
        .run()
        .code(1)
        .stderr_has("must include at least one digit (password_config.policy.require_digit)");
    with_policy(Test::new().args([
        "-u",
        &user,
        "-p",
        "short",
        "--no-admin",
        "--ignore-password-policy",
    ]))
    .run()
    .code(0);
    assert!(s.login(&user, "short").is_some());
    // Generated: by the shipped hook (which asks for 24 letters and digits),
    // and for batch rows, under a stricter policy.
    std::fs::write(
        &policy,
        "password_config:\n  policy: {enabled: true, minimum_length: 40, require_digit: true, require_symbol: true, require_uppercase: true, require_lowercase: true}\n",
    )
    .unwrap();
    let check = |pw: &str| {
        assert!(pw.chars().count() >= 40, "{pw}");
        assert!(pw.chars().any(|c| c.is_ascii_digit()), "{pw}");
        assert!(pw.chars().any(|c| !c.is_ascii_alphanumeric()), "{pw}");
    };
    let hooked = fresh("policy");
    let hook = crate::rig::root().join("hooks/generate-password.lua");
    let run = with_policy(Test::new().args([
        "-u",
        &hooked,
        "--no-admin",
        "--json",
        "--hook",
        hook.to_str().unwrap(),
    ]))
    .run();
    run.code(0);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let pw = v["password"].as_str().unwrap();
    check(pw);
    assert!(s.login(&hooked, pw).is_some());
    let rows = dir.path().join("u.csv");
    let member = fresh("policy");
    std::fs::write(&rows, format!("username\n{member}\n")).unwrap();
    let run = with_policy(Test::new().args(["--batch", rows.to_str().unwrap(), "--json"])).run();
    run.code(0);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    check(v["password"].as_str().unwrap());
    // Password login off: said before anything is sent.
    std::fs::write(&policy, "password_config:\n  enabled: false\n").unwrap();
    let off = fresh("policy");
    with_policy(Test::new().args(["-u", &off, "-p", "pw-login-off", "--no-admin"]))
        .run()
        .code(0)
        .stderr_has("turns password login off (password_config.enabled is false): the account is created, but its password will not log in");
}

/// The man page and the completions come from the same definition as
/// --help: every flag --help names is in each.
#[test]
fn man_page_and_completions_name_every_flag() {
    let help = Test::new().arg("--help").run().stdout;
    let flags: std::collections::BTreeSet<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.starts_with("--") && w.len() > 3)
        .map(str::to_string)
        .collect();
    assert!(flags.len() > 25, "{flags:?}");
    let man = Test::new().args(["--generate", "man"]).run();
    man.code(0);
    let man = man.stdout.replace("\\-", "-");
    assert!(man.starts_with(".ie") && man.contains(".TH register_new_matrix_user 1"));
    for shell in ["bash", "zsh", "fish"] {
        let out = Test::new().args(["--generate", shell]).run();
        out.code(0);
        for f in &flags {
            let name = f.trim_start_matches('-');
            let found = if shell == "fish" {
                out.stdout.contains(&format!("-l {name} "))
                    || out.stdout.contains(&format!("-l {name}\n"))
            } else {
                out.stdout.contains(f.as_str())
            };
            assert!(found, "{f} missing from the {shell} completion");
        }
    }
    for f in &flags {
        assert!(man.contains(f.as_str()), "{f} missing from the man page");
    }
}
