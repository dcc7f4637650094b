//! Where the original ends in a Python traceback, this tool prints one clear
//! line and exits 1.

use crate::{Test, fresh, synapse};
use std::io::{Read, Write};
use std::net::TcpListener;

/// A port on loopback that nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A stand-in for a proxy in front of the homeserver that answers every
/// request with `status` and an HTML page; the real server never does this.
fn html_proxy(status: &str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let status = status.to_string();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<html><body><h1>Bad Gateway</h1></body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn server_unreachable() {
    let url = dead_url();
    let args = [
        "-u",
        "nobody",
        "-p",
        "pw",
        "--no-admin",
        "-k",
        "s",
        url.as_str(),
    ];
    let orig = Test::original().args(args).run();
    assert_eq!(orig.code, 1);
    assert!(orig.stderr.contains("Traceback"), "{orig:#?}");
    Test::new()
        .args(args)
        .run()
        .code(1)
        .stdout("")
        .one_clear_line()
        .stderr_has(&format!("cannot reach {url}/_synapse/admin/v1/register"))
        .stderr_has("onnection refused");
}

#[test]
fn proxy_answers_html() {
    for (status, why) in [
        ("502 Bad Gateway", "not a Matrix JSON error"),
        (
            "404 Not Found",
            "does not serve the shared-secret registration endpoint",
        ),
    ] {
        let url = html_proxy(status);
        let args = [
            "-u",
            "nobody",
            "-p",
            "pw",
            "--no-admin",
            "-k",
            "s",
            url.as_str(),
        ];
        let run = Test::new().args(args).run();
        run.code(1)
            .stdout(&format!("ERROR! Received {status}\n"))
            .one_clear_line()
            .stderr_has(why);
        // The original prints the same first line for a failed nonce request.
        let orig = Test::original().args(args).run();
        assert_eq!((orig.code, orig.stdout.as_str()), (1, run.stdout.as_str()));
    }
}

#[test]
fn unix_socket_listener_in_config() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hs.yaml");
    std::fs::write(
        &cfg,
        format!(
            "registration_shared_secret: {}\nlisteners:\n  - path: {}\n    type: http\n    resources: [{{names: [client]}}]\n",
            s.secret,
            s.socket.display()
        ),
    )
    .unwrap();
    let user = fresh("sock");
    let args = [
        "-u",
        user.as_str(),
        "-p",
        "pw-sock",
        "--no-admin",
        "-c",
        cfg.to_str().unwrap(),
    ];
    let orig = Test::original().args(args).run();
    assert_eq!(orig.code, 1, "{orig:#?}");
    assert!(orig.stderr.contains("Traceback"), "{orig:#?}");
    Test::new()
        .args(args)
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.login(&user, "pw-sock").is_some());
}

#[test]
fn invalid_localpart_is_caught_before_any_request() {
    // A dead server: had anything been sent, the error would be a connection error.
    let url = dead_url();
    for name in ["al ice", "bob:evil", "émile", "12345"] {
        Test::new()
            .args([
                "-u",
                name,
                "-p",
                "pw",
                "--no-admin",
                "-k",
                "s",
                url.as_str(),
            ])
            .run()
            .code(1)
            .stdout("")
            .one_clear_line()
            .stderr_has("invalid localpart");
    }
    // And against the real server, nobody is registered.
    let s = synapse();
    Test::new()
        .args([
            "-u",
            "Bad Name",
            "-p",
            "pw",
            "--no-admin",
            "-c",
            s.config.to_str().unwrap(),
        ])
        .run()
        .code(1);
    assert!(s.user("bad name").is_none());
}

#[test]
fn bad_yaml_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listeners: [ {port: 8008\n").unwrap();
    Test::new()
        .args([
            "-u",
            "x",
            "-p",
            "pw",
            "--no-admin",
            "-c",
            bad.to_str().unwrap(),
        ])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("not valid YAML");
    Test::new()
        .args([
            "-u",
            "x",
            "--password-file",
            "/nonexistent/pw",
            "--no-admin",
            "-k",
            "s",
            "http://127.0.0.1:1",
        ])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("cannot read password file /nonexistent/pw");
    let lonely = dir.path().join("listener-without-port.yaml");
    std::fs::write(
        &lonely,
        "registration_shared_secret: s\nlisteners: [{type: http, resources: [{names: [client]}]}]\n",
    )
    .unwrap();
    Test::new()
        .args([
            "-u",
            "x",
            "-p",
            "pw",
            "--no-admin",
            "-c",
            lonely.to_str().unwrap(),
        ])
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has(&format!(
            "config file {}: the config's client listener has neither a port nor a path",
            lonely.display()
        ));
}

#[test]
fn closed_stdin_instead_of_an_answer() {
    Test::new()
        .args(["-u", "x", "-p", "pw", "-k", "s", "http://127.0.0.1:1"])
        .stdin("")
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("standard input is closed");
}

/// The rest of docs/failures.md's table of bad inputs: each gets one clear line and
/// its exit status before anything is sent.
#[test]
fn more_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let no_username = dir.path().join("u.csv");
    std::fs::write(&no_username, "name,password\nalice,x\n").unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "username\nalice\n").unwrap();
    let unknown_ext = dir.path().join("users.txt");
    std::fs::write(&unknown_ext, "alice\n").unwrap();
    let dead = dead_url();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "--cacert".into(),
                not_pem.display().to_string(),
                dead.clone(),
            ],
            1,
            "holds no PEM certificate",
        ),
        (
            vec![
                "--cacert".into(),
                "/nonexistent/ca.pem".into(),
                dead.clone(),
            ],
            1,
            "cannot read --cacert file",
        ),
        (
            vec!["matrix.example.org".into()],
            1,
            "must start with http://, https:// or unix:",
        ),
        (
            vec![
                "--batch".into(),
                unknown_ext.display().to_string(),
                dead.clone(),
            ],
            2,
            "--batch-format",
        ),
        (
            vec!["--batch".into(), "/nonexistent/u.csv".into(), dead.clone()],
            2,
            "cannot open batch file",
        ),
        (
            vec![
                "--batch".into(),
                no_username.display().to_string(),
                dead.clone(),
            ],
            1,
            "no `username` column",
        ),
        (
            vec![
                "--batch".into(),
                good.display().to_string(),
                "-o".into(),
                "/nonexistent/dir/out.jsonl".into(),
                dead.clone(),
            ],
            1,
            "cannot open the results file",
        ),
        (
            vec![
                "--hook".into(),
                "/nonexistent/hook.lua".into(),
                dead.clone(),
            ],
            1,
            "cannot read it",
        ),
        (
            vec!["--hook-timeout".into(), "0".into(), dead.clone()],
            2,
            "not between 0 and 86400",
        ),
    ];
    for (args, code, why) in cases {
        let mut t = Test::new().args(["--no-admin", "-k", "s"]);
        if !args.contains(&"--batch".to_string()) {
            t = t.args(["-u", "x", "--password-file", "-"]).stdin("pw");
        }
        let run = t.args(args.clone()).run();
        assert_eq!(run.code, code, "{args:?}: {run:#?}");
        assert!(run.stderr.contains(why), "{args:?}: want {why:?}: {run:#?}");
        assert!(!run.stderr.contains("panicked"), "{args:?}");
        if code == 1 {
            run.one_clear_line();
        }
    }
}
