//! Secret hygiene: the shared secret, passwords and access tokens never
//! appear in any output, at the highest verbosity, whatever happens. (Every
//! other test checks the same for its own runs, at its own verbosity: see
//! `Test::run`.)

use crate::{Run, Test, fresh, synapse};

#[test]
fn the_check_itself_can_fail() {
    let leaked = Run {
        code: 0,
        stdout: String::new(),
        stderr: "error: something about hunter2-secret".into(),
    };
    let caught = std::panic::catch_unwind(|| {
        leaked.never_shows(&["hunter2-secret".to_string()]);
    });
    assert!(caught.is_err());
}

#[test]
fn nothing_secret_at_the_highest_verbosity() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let pw = "correct-horse-battery";
    let hook = dir.path().join("leaky.lua");
    std::fs::write(
        &hook,
        r#"return {
            before_submit = function(rec) rec.want_session = true
                rnmu.log.debug("password=" .. rec.password) end,
            after_submit = function(rec, ctx)
                rnmu.log.debug("token=" .. tostring(rec.access_token) .. " mac=" .. tostring(rec.mac))
                error("failing on purpose with " .. rec.password)
            end,
            on_error = function(rec, ctx) rnmu.log.error("on_error: " .. ctx.error) end,
        }"#,
    )
    .unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, &s.secret).unwrap();
    let batch = dir.path().join("u.csv");
    std::fs::write(
        &batch,
        format!(
            "username,password\n{},{pw}\n{},\n",
            fresh("hy"),
            fresh("hy")
        ),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let ssf = secret_file.to_str().unwrap();

    let mut runs: Vec<Run> = Vec::new();
    let with = |args: &[&str]| Test::new().arg("-vv").args(args.iter().copied());
    // Success, through every transport.
    for url in [
        s.url.clone(),
        s.tls_url.clone(),
        format!("unix:{}", s.socket.display()),
    ] {
        runs.push(
            with(&[
                "-u",
                &fresh("hy"),
                "--password-file",
                "-",
                "-a",
                "--shared-secret-file",
                ssf,
                "--cacert",
                s.ca.to_str().unwrap(),
                &url,
            ])
            .stdin(pw)
            .run(),
        );
    }
    // Already there; then with --exists-ok and --json.
    let taken = fresh("hy");
    for extra in [&[][..], &["--exists-ok", "--json"][..]] {
        runs.push(
            with(&[
                "-u",
                &taken,
                "-p",
                pw,
                "--no-admin",
                "-c",
                s.config.to_str().unwrap(),
            ])
            .args(extra.iter().copied())
            .run(),
        );
    }
    // A wrong secret, a dead server, an untrusted certificate, a dry run.
    runs.push(
        with(&[
            "-u",
            &fresh("hy"),
            "-p",
            pw,
            "--no-admin",
            "-k",
            "wrong-secret-value",
            &s.url,
        ])
        .run(),
    );
    // One user with the password on the command line and the secret from a file.
    let one = |extra: &[&str]| {
        with(&["-u", &fresh("hy"), "-p", pw, "--shared-secret-file", ssf])
            .args(extra.iter().copied())
            .run()
    };
    runs.push(one(&["--no-admin", "http://127.0.0.1:9"]));
    runs.push(one(&["--no-admin", &s.tls_url]));
    runs.push(one(&["-a", "--dry-run", &s.url]));
    // A hook that tries to log every secret it sees, then fails after the account exists.
    runs.push(one(&[
        "--no-admin",
        "--hook",
        hook.to_str().unwrap(),
        &s.url,
    ]));
    // A batch with a generated password, its results file, and --json.
    runs.push(
        with(&[
            "--batch",
            batch.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--shared-secret-file",
            ssf,
            &s.url,
        ])
        .run(),
    );

    let journal = std::fs::read_to_string(&out).unwrap();
    let generated: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["password"].as_str().map(str::to_string))
        .collect();
    assert!(!generated.is_empty(), "the batch generated a password");

    let mut secrets = vec![
        s.secret.clone(),
        pw.to_string(),
        "wrong-secret-value".to_string(),
    ];
    secrets.extend(generated);
    for run in &runs {
        run.never_shows(&secrets);
        assert!(
            !run.stderr.contains("access_token\":\"syt_") && !run.stderr.contains("syt_"),
            "{run:#?}"
        );
        assert!(!run.stdout.contains("syt_"), "{run:#?}");
    }
    // The verbose runs did say things: the check is not vacuous.
    assert!(
        runs.iter().any(|r| r.stderr.contains("debug: POST")),
        "{:#?}",
        runs[0]
    );
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains("password=[redacted]"))
    );
    assert!(runs.iter().any(|r| r.stderr.contains("token=[redacted]")));
}
