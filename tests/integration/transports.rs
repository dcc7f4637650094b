//! TLS, unix sockets, timeouts and the warnings about insecure transports,
//! against the real server (a stub only where it cannot do what is needed).

use crate::{Test, fresh, synapse};
use std::io::{Read, Write};
use std::net::TcpListener;

fn tool(user: &str, url: &str) -> Test {
    Test::new().args([
        "-u",
        user,
        "--password-file",
        "-",
        "--no-admin",
        "-k",
        &synapse().secret,
        url,
    ])
}

#[test]
fn tls_with_a_private_ca() {
    let s = synapse();
    let user = fresh("tls");
    tool(&user, &s.tls_url)
        .stdin("pw-tls")
        .arg("--cacert")
        .arg(s.ca.to_str().unwrap())
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.login(&user, "pw-tls").is_some());
}

#[test]
fn tls_without_trust_is_refused() {
    let s = synapse();
    let user = fresh("tlsno");
    tool(&user, &s.tls_url)
        .stdin("pw")
        .run()
        .code(1)
        .stdout("")
        .one_clear_line()
        .stderr_has("UnknownIssuer")
        .stderr_has("--cacert");
    assert!(s.user(&user).is_none());
}

#[test]
fn insecure_accepts_any_certificate_loudly() {
    let s = synapse();
    let user = fresh("insecure");
    tool(&user, &s.tls_url)
        .stdin("pw-insecure")
        .arg("--insecure")
        .run()
        .code(0)
        .stderr_has("warning: --insecure: TLS certificates are NOT checked");
    assert!(s.login(&user, "pw-insecure").is_some());
}

#[test]
fn unix_socket_url() {
    let s = synapse();
    let user = fresh("unixurl");
    tool(&user, &format!("unix:{}", s.socket.display()))
        .stdin("pw-unix")
        .run()
        .code(0)
        .stdout("Sending registration request...\nSuccess!\n");
    assert!(s.login(&user, "pw-unix").is_some());
    tool(&user, "unix:/nonexistent/synapse.sock")
        .stdin("pw")
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("cannot reach unix:/nonexistent/synapse.sock/_synapse/admin/v1/register");
}

#[test]
fn plain_http_to_another_host_is_warned_about() {
    // A dry run sends nothing, so the URL need not exist.
    let run = Test::new()
        .args([
            "-u",
            "x",
            "--password-file",
            "-",
            "--no-admin",
            "-k",
            "s",
            "--dry-run",
        ])
        .arg("http://matrix.example.org:8008")
        .stdin("pw")
        .run();
    run.code(0).stderr_has(
        "warning: the password will travel unencrypted over plain http to matrix.example.org",
    );
    let s = synapse();
    let quiet = tool(&fresh("loop"), &s.url).stdin("pw").run();
    assert!(!quiet.stderr.contains("unencrypted"), "{quiet:#?}");
}

#[test]
fn a_stalled_server_times_out() {
    // Accepts connections and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    Test::new()
        .args([
            "-u",
            "x",
            "--password-file",
            "-",
            "--no-admin",
            "-k",
            "s",
            "--timeout",
            "1",
            url.as_str(),
        ])
        .stdin("pw")
        .run()
        .code(1)
        .one_clear_line()
        .stderr_has("did not answer within 1 s");
}

/// A homeserver whose authentication is delegated to MAS serves no register
/// endpoint and advertises its issuer. A stub: the rig's Synapse has no MAS.
#[test]
fn delegated_auth_points_at_mas() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /_matrix/client/v1/auth_metadata") {
                ("200 OK", r#"{"issuer":"https://auth.example.org/"}"#)
            } else {
                (
                    "404 Not Found",
                    r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#,
                )
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Test::new()
        .args([
            "-u",
            "x",
            "--password-file",
            "-",
            "--no-admin",
            "-k",
            "s",
            url.as_str(),
        ])
        .stdin("pw")
        .run()
        .code(1)
        .stdout("ERROR! Received 404 Not Found\nUnrecognized request\n")
        .one_clear_line()
        .stderr_has("Matrix Authentication Service")
        .stderr_has("mas-cli manage register-user");
}
