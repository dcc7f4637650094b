//! Servers that lie and inputs that never end: small loopback stubs for
//! answers a real Synapse will not give on demand (a redirect, a rate limit
//! of a thousand years, an endless body), and files that are pipes,
//! FIFOs or devices.

use crate::{Test, fresh, synapse};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A stub HTTP server on `addr`: `answer(n, request_line)` gives the raw
/// response to the n-th request (from 0). The requests are kept.
struct Stub {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn stub(addr: &str, answer: fn(usize, &str) -> Vec<u8>) -> Stub {
    let l = TcpListener::bind(addr).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let n = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = vec![0u8; 65536];
            let got = c.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..got]).to_string();
            let line = text.lines().next().unwrap_or("").to_string();
            seen.lock().unwrap().push(text);
            let _ = c.write_all(&answer(n.fetch_add(1, Ordering::SeqCst), &line));
        }
    });
    Stub { url, requests }
}

fn http(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const NONCE: &str = r#"{"nonce":"abcdefabcdefabcdefabcdefabcdefabcdefabcdef"}"#;

#[test]
fn a_redirect_never_carries_the_request_elsewhere() {
    // The other origin: it must never hear from the tool.
    let elsewhere = stub("127.0.0.2:0", |_, _| http("200 OK", "", "{}"));
    static TO: Mutex<String> = Mutex::new(String::new());
    *TO.lock().unwrap() = elsewhere.url.clone();
    let server = stub("127.0.0.1:0", |_, line| {
        if line.starts_with("GET") {
            http("200 OK", "", NONCE)
        } else {
            let to = TO.lock().unwrap().clone();
            http(
                "307 Temporary Redirect",
                &format!("Location: {to}/_synapse/admin/v1/register\r\n"),
                "",
            )
        }
    });
    let run = Test::new()
        .args(["-u", "alice", "-p", "redirected-password", "--no-admin"])
        .args(["-k", "stub-shared-secret", &server.url])
        .hang_after(60)
        .run();
    run.code(1)
        .stderr_has("redirects to")
        .stderr_has("not followed");
    assert!(run.stdout.contains("ERROR! Received 307"), "{run:#?}");
    assert!(elsewhere.requests.lock().unwrap().is_empty());
    // The one POST went to the configured origin.
    let posts = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn a_rate_limit_of_a_thousand_years_is_not_obeyed() {
    let server = stub("127.0.0.1:0", |_, _| {
        http(
            "429 Too Many Requests",
            "",
            r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":31536000000000}"#,
        )
    });
    let run = Test::new()
        .args([
            "-u",
            "bob",
            "-p",
            "pw-thousand",
            "--no-admin",
            "--retries",
            "3",
        ])
        .args(["-k", "stub-shared-secret", &server.url])
        .hang_after(60)
        .run();
    run.code(1)
        .stderr_has("the server asks to wait 365000 days, longer than --max-wait (10 min 0 s)");
}

#[test]
fn a_long_wait_is_said_at_normal_verbosity() {
    let server = stub("127.0.0.1:0", |n, line| {
        match (n, line.starts_with("GET")) {
            (0, _) => http(
                "429 Too Many Requests",
                "",
                r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":5100}"#,
            ),
            (_, true) => http("200 OK", "", NONCE),
            (_, false) => http("200 OK", "", r#"{"user_id":"@carol:stub"}"#),
        }
    });
    let run = Test::new()
        .args([
            "-u",
            "carol",
            "-p",
            "pw-wait",
            "--no-admin",
            "--retries",
            "1",
        ])
        .args(["-k", "stub-shared-secret", &server.url])
        .hang_after(60)
        .run();
    run.code(0).stderr_has(
        "warning: the server rate-limits GET /_synapse/admin/v1/register (429 M_LIMIT_EXCEEDED): waiting 5.1 s",
    );
}

#[test]
fn an_endless_answer_is_cut_at_its_bound() {
    let server = stub("127.0.0.1:0", |_, _| {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"nonce\":\"".to_vec();
        r.extend(std::iter::repeat_n(b'a', 17 << 20));
        r
    });
    let run = Test::new()
        .args(["-u", "dave", "-p", "pw-endless", "--no-admin"])
        .args(["-k", "stub-shared-secret", &server.url])
        .hang_after(60)
        .run();
    run.code(1)
        .one_clear_line()
        .stderr_has("the answer is larger than 16 MiB");
}

/// Rows from a process substitution (a pipe) and from a named FIFO: every
/// row is read, once.
#[test]
fn a_batch_from_a_pipe_or_a_fifo_reads_every_row() {
    let s = synapse();
    let bin = assert_cmd::cargo::cargo_bin!("register_new_matrix_user");
    let dir = tempfile::tempdir().unwrap();
    for (format, ext) in [("csv", "csv"), ("jsonl", "jsonl"), ("yaml", "yaml")] {
        let users: Vec<String> = (0..30).map(|_| fresh("pipe")).collect();
        let text = match format {
            "csv" => format!(
                "username,password\n{}\n",
                users
                    .iter()
                    .map(|u| format!("{u},pw-pipe-{u}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            "jsonl" => users
                .iter()
                .map(|u| format!("{{\"username\":\"{u}\",\"password\":\"pw-pipe-{u}\"}}\n"))
                .collect(),
            _ => users
                .iter()
                .map(|u| format!("- username: {u}\n  password: pw-pipe-{u}\n"))
                .collect(),
        };
        let rows = dir.path().join(format!("rows.{ext}"));
        std::fs::write(&rows, text).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec {} --batch <(cat {}) --batch-format {format} --no-admin -k {} {}",
                bin.display(),
                rows.display(),
                s.secret,
                s.url
            ))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {stderr}");
        assert!(stderr.contains("30 registered"), "{format}: {stderr}");
        for u in &users {
            assert!(s.login(u, &format!("pw-pipe-{u}")).is_some(), "{u}");
        }
    }
    // A named FIFO, written by another process.
    let fifo = dir.path().join("rows.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let users: Vec<String> = (0..5).map(|_| fresh("fifo")).collect();
    let text: String = users
        .iter()
        .map(|u| format!("{{\"username\":\"{u}\",\"password\":\"pw-fifo-{u}\"}}\n"))
        .collect();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
    };
    let run = Test::new()
        .args([
            "--batch",
            fifo.to_str().unwrap(),
            "--batch-format",
            "jsonl",
            "--no-admin",
        ])
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run();
    writer.join().unwrap();
    run.code(0).stderr_has("5 registered");
}

/// Every file input refuses a device and a FIFO at once, and a file past its
/// bound, with one line naming it.
#[test]
fn inputs_that_never_end_are_refused() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap().to_string();
    let cfg_with_path = |p: &str| {
        let f = dir
            .path()
            .join(format!("secret-path-{}.yaml", p.replace('/', "_")));
        std::fs::write(&f, format!("registration_shared_secret_path: {p}\n")).unwrap();
        f.to_str().unwrap().to_string()
    };
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(5 << 20))).unwrap();
    let k = ["-k", s.secret.as_str()];
    let cases: Vec<(Vec<String>, &str, i32)> = vec![
        (
            vec!["-c".into(), "/dev/zero".into()],
            "cannot open config file /dev/zero: it is a device, not a regular file",
            2,
        ),
        (
            vec!["-c".into(), fifo.clone()],
            "it is a FIFO, not a regular file",
            2,
        ),
        (
            vec!["-c".into(), big.to_str().unwrap().into()],
            "it is larger than 4 MiB",
            // Like any -c that cannot be opened (it was 1 once).
            2,
        ),
        (
            vec!["-c".into(), cfg_with_path("/dev/zero")],
            "cannot read registration_shared_secret_path file /dev/zero: it is a device",
            1,
        ),
        (
            vec!["-c".into(), cfg_with_path(&fifo)],
            "it is a FIFO, not a regular file",
            1,
        ),
        (
            vec!["--shared-secret-file".into(), "/dev/zero".into()],
            "it is a device, not a regular file",
            1,
        ),
        (
            vec!["--shared-secret-file".into(), fifo.clone()],
            "it is a FIFO, not a regular file",
            1,
        ),
        (
            k.iter()
                .map(|a| a.to_string())
                .chain(["--password-file".into(), "/dev/zero".into()])
                .collect(),
            "cannot read password file /dev/zero: it is a device",
            1,
        ),
        (
            k.iter()
                .map(|a| a.to_string())
                .chain(["--cacert".into(), "/dev/zero".into()])
                .collect(),
            "cannot read --cacert file /dev/zero: it is a device",
            1,
        ),
        (
            k.iter()
                .map(|a| a.to_string())
                .chain(["--hook".into(), fifo.clone()])
                .collect(),
            "cannot read it: it is a FIFO",
            1,
        ),
    ];
    for (args, want, code) in cases {
        let run = Test::new()
            .args(["-u", "nobody-ever", "--no-admin"])
            .args(args.iter().cloned())
            .arg(s.url.as_str())
            .hang_after(60)
            .run();
        assert!(!run.stderr.contains("HUNG"), "{args:?} hung");
        run.code(code).one_clear_line().stderr_has(want);
    }
    // A batch from a device ends at its first over-long line.
    let run = Test::new()
        .args([
            "--batch",
            "/dev/zero",
            "--batch-format",
            "jsonl",
            "--no-admin",
        ])
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run();
    run.code(1)
        .stderr_has("line 1: cannot be read: a line is longer than 64 KiB");
    // Deeply nested YAML is refused before it is parsed.
    let nested = dir.path().join("nested.yaml");
    std::fs::write(&nested, format!("{}\n", "[".repeat(60_000))).unwrap();
    let run = Test::new()
        .args(["--batch", nested.to_str().unwrap(), "--no-admin"])
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run();
    run.code(1)
        .stderr_has("brackets nest deeper than 64 levels");
    // In a block list only that item is refused; the items after it are read.
    let items = dir.path().join("items.yaml");
    let u = crate::fresh("nested");
    std::fs::write(
        &items,
        format!(
            "- username: deep\n  x: {}\n- username: {u}\n  password: pw-nested-1\n",
            "[".repeat(65)
        ),
    )
    .unwrap();
    let run = Test::new()
        .args(["--batch", items.to_str().unwrap(), "--no-admin"])
        .args(["-k", &s.secret, &s.url])
        .hang_after(60)
        .run();
    run.code(1)
        .stderr_has("line 1: is not valid YAML: its brackets nest deeper than 64 levels");
    assert!(s.user(&u).is_some(), "{}", run.stderr);
}

/// Time a hook spends waiting on the network is off its clock: two requests
/// to a server that takes 1.5 s each, under a 1 s hook deadline, and the
/// hook's own work after them, all finish.
#[test]
fn waiting_on_the_network_is_off_the_hooks_clock() {
    let slow = stub("127.0.0.1:0", |_, _| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        http("200 OK", "", "{}")
    });
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("slow.lua");
    std::fs::write(
        &hook,
        format!(
            "return {{ before_input = function()\n\
               for i = 1, 2 do assert(rnmu.http.request{{url = '{}/x'}}.status == 200) end\n\
               local n = 0 for i = 1, 200000 do n = n + i end\n\
             end }}",
            slow.url
        ),
    )
    .unwrap();
    Test::new()
        .args([
            "-u",
            "erin",
            "-p",
            "pw-slow",
            "--no-admin",
            "--dry-run",
            "--hook-timeout",
            "1",
        ])
        .args([
            "--hook",
            hook.to_str().unwrap(),
            "-k",
            "stub-shared-secret",
            &slow.url,
        ])
        .hang_after(60)
        .run()
        .code(0);
}
