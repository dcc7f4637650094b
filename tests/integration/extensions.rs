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
