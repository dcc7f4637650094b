//! Interrupting a run (SIGINT, SIGTERM) ends every session it opened on the
//! server, says so in one line and exits with 130 or 143; no account keeps a
//! device the tool opened.

use crate::{fresh, synapse};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hook that asks for a session and then keeps the run busy after submit.
fn busy_hook(dir: &std::path::Path) -> String {
    let hook = dir.join("busy.lua");
    std::fs::write(
        &hook,
        "return {\n\
         before_submit = function(rec) rec.want_session = true end,\n\
         after_submit = function(rec) local t = os.clock() + 50 while os.clock() < t do end end,\n\
         }\n",
    )
    .unwrap();
    hook.display().to_string()
}

/// Runs the tool, waits until `ready` says so (from what it printed on
/// standard output so far), sends `signal`, and returns the exit status and
/// standard error.
fn interrupt(args: &[String], signal: i32, ready: impl Fn(&str) -> bool) -> (i32, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(seen.clone());
        }
    });
    let start = Instant::now();
    let mut seen = String::new();
    loop {
        while let Ok(s) = rx.try_recv() {
            seen = s;
        }
        if ready(&seen) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never ready: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling a child of this process that has not been waited for.
    unsafe { libc::kill(child.id() as i32, signal) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it took too long to stop"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), err)
}

#[test]
fn an_interrupted_registration_ends_its_session() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let hook = busy_hook(dir.path());
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let u = fresh("intr");
        let args: Vec<String> = [
            "-u",
            &u,
            "-p",
            "a-long-password-9",
            "--no-admin",
            "--hook",
            &hook,
            "--hook-timeout",
            "120",
            "-k",
            &s.secret,
            &s.url,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let (status, err) = interrupt(&args, signal, |out| out.contains("Success!"));
        assert_eq!(status, code, "{err}");
        assert!(
            err.contains(&format!(
                "error: interrupted by {name}; ended the 1 session the run had opened"
            )),
            "{err}"
        );
        let lines = err.lines().filter(|l| !l.starts_with("warning: ")).count();
        assert_eq!(lines, 1, "{err}");
        assert!(s.user(&u).is_some());
        assert!(
            s.devices(&u).is_empty(),
            "{u} kept a device: {:?}",
            s.devices(&u)
        );
    }
}

#[test]
fn an_interrupted_batch_ends_every_session() {
    let s = synapse();
    let dir = tempfile::tempdir().unwrap();
    let hook = busy_hook(dir.path());
    let users: Vec<String> = (0..4).map(|_| fresh("bintr")).collect();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, format!("username\n{}\n", users.join("\n"))).unwrap();
    let out = dir.path().join("out.jsonl");
    let args: Vec<String> = [
        "--batch",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-j",
        "2",
        "--hook",
        &hook,
        "--hook-timeout",
        "120",
        "-k",
        &s.secret,
        &s.url,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out2 = out.clone();
    let (status, err) = interrupt(&args, libc::SIGTERM, move |_| {
        // Both workers are in after_submit once two rows are pending with accounts made.
        std::fs::read_to_string(&out2)
            .unwrap_or_default()
            .matches("pending")
            .count()
            >= 2
    });
    assert_eq!(status, 143, "{err}");
    assert!(err.contains("error: interrupted by SIGTERM"), "{err}");
    for u in &users {
        if s.user(u).is_some() {
            assert!(
                s.devices(u).is_empty(),
                "{u} kept a device: {:?}",
                s.devices(u)
            );
        }
    }
}
