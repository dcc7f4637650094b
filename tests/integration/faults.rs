//! Fault injection: a proxy between the tool and the real Synapse that, on
//! every endpoint the tool calls (the nonce and register calls, login,
//! logout, and the hooks' client-API calls), drops connections, answers
//! 502/503 with HTML, stalls past the timeout, answers 429, hands out
//! nonces the server never issued, and cuts the answer after the server has
//! acted on the request. A batch through it must end with every user
//! registered exactly once, every generated password recorded and valid,
//! and no account holding a device, also when the tool is killed midway and
//! run again.
//!
//! These tests run against a server of their own whose only change is a
//! raised `rc_login.address`: they measure what faults do, and every fault
//! that loses a registration's answer costs a login from the proxy's one
//! address, so on the shipped limit (5, then one per 333 s) the batch would
//! spend most of an hour waiting. Waiting out that limit is tested on the
//! shipped limits in `limits.rs`.

use crate::{Test, fresh};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    Drop,
    Html502,
    Html503,
    Stall,
    RateLimit,
    ExpireNonce,
    CutAfterCommit,
}

const FAULTS: [Fault; 7] = [
    Fault::Drop,
    Fault::Html502,
    Fault::Html503,
    Fault::Stall,
    Fault::RateLimit,
    Fault::ExpireNonce,
    Fault::CutAfterCommit,
];

/// How long a stalled request hangs: past the tool's `--timeout 1`.
const STALL: Duration = Duration::from_millis(1500);

pub struct Proxy {
    pub url: String,
    injected: Arc<Mutex<HashMap<Fault, usize>>>,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    /// How many faults it injected, of every kind.
    pub fn injected(&self) -> usize {
        self.injected.lock().unwrap().values().sum()
    }
}

/// Starts the proxy in front of the rig's server; `per_mille` of the
/// requests to the register endpoint get a fault, chosen by a seeded
/// generator so a failure can be replayed.
pub fn server() -> &'static crate::rig::Synapse {
    crate::synapse_with(
        "faults",
        serde_json::json!({"rc_login": {"address": {"per_second": 1000, "burst_count": 1000}}}),
    )
}

pub fn proxy(per_mille: u64, seed: u64) -> Proxy {
    proxy_to(server(), per_mille, seed, |_| true, None)
}

/// A proxy in front of `s` that injects faults into the requests `pick`
/// chooses (by their request line): `only` that kind, or any.
pub fn proxy_to(
    s: &crate::rig::Synapse,
    per_mille: u64,
    seed: u64,
    pick: fn(&str) -> bool,
    only: Option<Fault>,
) -> Proxy {
    proxy_to_url(&s.url, per_mille, seed, pick, only)
}

/// The same in front of any loopback server (the MAS stub's two).
pub fn proxy_to_url(
    url: &str,
    per_mille: u64,
    seed: u64,
    pick: fn(&str) -> bool,
    only: Option<Fault>,
) -> Proxy {
    let upstream = url.trim_start_matches("http://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let injected = Arc::new(Mutex::new(HashMap::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    start_proxy(
        upstream,
        move |line, r| {
            (pick(line) && r % 1000 < per_mille)
                .then(|| only.unwrap_or(FAULTS[((r >> 20) % FAULTS.len() as u64) as usize]))
        },
        seed,
        l,
        url,
        injected,
        requests,
    )
}

/// A proxy in front of `url` whose `script` says, request by request (by
/// its request line), which fault it gets, if any: for tests that need a
/// fault at one exact request.
pub fn proxy_scripted(url: &str, script: fn(&str) -> Option<Fault>) -> Proxy {
    let upstream = url.trim_start_matches("http://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    start_proxy(
        upstream,
        move |line, _| script(line),
        0,
        l,
        url,
        Arc::new(Mutex::new(HashMap::new())),
        Arc::new(AtomicUsize::new(0)),
    )
}

#[allow(clippy::too_many_arguments)]
fn start_proxy(
    upstream: String,
    choose: impl Fn(&str, u64) -> Option<Fault> + Send + Sync + 'static,
    seed: u64,
    l: TcpListener,
    url: String,
    injected: Arc<Mutex<HashMap<Fault, usize>>>,
    requests: Arc<AtomicUsize>,
) -> Proxy {
    let rng = Arc::new(AtomicU64::new(seed));
    let choose = Arc::new(choose);
    let (inj, reqs) = (injected.clone(), requests.clone());
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let (upstream, inj, reqs, rng, choose) = (
                upstream.clone(),
                inj.clone(),
                reqs.clone(),
                rng.clone(),
                choose.clone(),
            );
            std::thread::spawn(move || {
                let _ = handle(client, &upstream, &*choose, &rng, &inj, &reqs);
            });
        }
    });
    Proxy {
        url,
        injected,
        requests,
    }
}

/// splitmix64: a small, seeded, shared random sequence.
fn next_random(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reads one HTTP message head and its Content-Length body.
pub fn read_message(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

fn respond(s: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    choose: &dyn Fn(&str, u64) -> Option<Fault>,
    rng: &AtomicU64,
    injected: &Mutex<HashMap<Fault, usize>>,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let (head, body) = read_message(&mut client)?;
    requests.fetch_add(1, Ordering::Relaxed);
    let request_line = head.lines().next().unwrap_or("").to_string();
    let nonce = request_line.starts_with("GET /_synapse/admin/v1/register");
    let r = next_random(rng);
    let fault = choose(&request_line, r);
    // A made-up nonce only where a nonce is asked for; elsewhere the server
    // acts on the request and its answer is lost.
    let fault = match fault {
        Some(Fault::ExpireNonce) if !nonce => Some(Fault::CutAfterCommit),
        f => f,
    };
    if let Some(f) = fault {
        *injected.lock().unwrap().entry(f).or_default() += 1;
    }
    match fault {
        Some(Fault::Drop) => return Ok(()),
        Some(Fault::Html502) => {
            return respond(
                &mut client,
                "502 Bad Gateway",
                "text/html",
                "<html><h1>502 Bad Gateway</h1></html>",
            );
        }
        Some(Fault::Html503) => {
            return respond(
                &mut client,
                "503 Service Unavailable",
                "text/html",
                "<html>down for maintenance</html>",
            );
        }
        Some(Fault::Stall) => {
            std::thread::sleep(STALL);
            return Ok(());
        }
        // A nonce the server never issued (or that expired long ago).
        Some(Fault::ExpireNonce) => {
            let body = format!("{{\"nonce\":\"{}\"}}", "0".repeat(128));
            return respond(&mut client, "200 OK", "application/json", &body);
        }
        Some(Fault::RateLimit) => {
            return respond(
                &mut client,
                "429 Too Many Requests",
                "application/json",
                r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":50}"#,
            );
        }
        _ => {}
    }
    // Forward, one request per connection.
    let mut up = TcpStream::connect(upstream)?;
    let head = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\r\n");
    write!(up, "{head}\r\nConnection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    match fault {
        // The server has committed the registration; its answer is lost.
        Some(Fault::CutAfterCommit) => {
            client.write_all(&answer[..answer.len().min(12)])?;
            Ok(())
        }
        _ => client.write_all(&answer),
    }
}

fn write_users(dir: &Path, n: usize) -> (std::path::PathBuf, Vec<String>) {
    let users: Vec<String> = (0..n).map(|_| fresh("fault")).collect();
    let file = dir.join("users.csv");
    std::fs::write(&file, format!("username\n{}\n", users.join("\n"))).unwrap();
    (file, users)
}

/// The batch as an operator would run it: default retries; `--timeout 1`
/// so that a stalled request (1.5 s) is one.
fn batch_args(file: &Path, out: &Path, url: &str) -> Vec<String> {
    let s = server();
    [
        "--batch",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-j",
        "4",
        "--timeout",
        "1",
        "-k",
        &s.secret,
        url,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Every user registered exactly once, with a recorded password that logs
/// in, and no device left on the account.
fn check_end_state(out: &Path, users: &[String]) {
    let s = server();
    let lines: Vec<Value> = std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for u in users {
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["username"] == u.as_str())
            .collect();
        let finals: Vec<&str> = mine
            .iter()
            .map(|l| l["status"].as_str().unwrap())
            .filter(|st| *st != "pending")
            .collect();
        assert_eq!(finals.last(), Some(&"registered"), "{u}: {mine:?}");
        assert_eq!(
            finals.iter().filter(|st| **st == "registered").count(),
            1,
            "{u} registered once: {mine:?}"
        );
        let passwords: Vec<&str> = mine.iter().filter_map(|l| l["password"].as_str()).collect();
        assert!(!passwords.is_empty(), "{u}: no password recorded");
        assert!(
            passwords.windows(2).all(|w| w[0] == w[1]),
            "{u}: the recorded password changed: {mine:?}"
        );
        assert!(
            s.devices(u).is_empty(),
            "{u}: the tool left a device: {:?}",
            s.devices(u)
        );
        let token = s.login(u, passwords[0]);
        assert!(
            token.is_some(),
            "{u}: the recorded password does not log in"
        );
    }
}

#[test]
fn a_batch_through_faults_registers_everyone_once() {
    let dir = tempfile::tempdir().unwrap();
    let (file, users) = write_users(dir.path(), 300);
    let out = dir.path().join("out.jsonl");
    let p = proxy(150, 0x5eed);
    let run = Test::new()
        .args(batch_args(&file, &out, &p.url))
        .arg("-q")
        .run();
    let injected = p.injected.lock().unwrap().clone();
    assert_eq!(run.code, 0, "faults injected: {injected:?}\n{run:#?}");
    check_end_state(&out, &users);
    // Every kind of fault was exercised, at 10 to 20 % of the register requests.
    for f in FAULTS {
        assert!(
            injected.get(&f).copied().unwrap_or(0) > 0,
            "{f:?} never injected: {injected:?}"
        );
    }
    let total: usize = injected.values().sum();
    let requests = p.requests.load(Ordering::Relaxed);
    assert!(
        total * 100 >= requests * 8 && total * 100 <= requests * 22,
        "{total} faults in {requests} requests"
    );
}

#[test]
fn a_killed_batch_through_faults_ends_the_same_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (file, users) = write_users(dir.path(), 300);
    let out = dir.path().join("out.jsonl");
    let p = proxy(150, 0xdead);
    let child =
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
            .args(batch_args(&file, &out, &p.url))
            .arg("-q")
            .spawn()
            .unwrap();
    crate::kill_midway(child, &out, 60);
    let run = Test::new().args(batch_args(&file, &out, &p.url)).run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("done by an earlier run"), "{run:#?}");
    check_end_state(&out, &users);
}

/// A logout that keeps failing leaves a live session: the row says so
/// (`incomplete`, with the session undone), the run does not exit 0, and
/// running it again without the fault ends the session.
#[test]
fn a_session_that_cannot_be_ended_is_reported_and_ended_on_a_rerun() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (file, users) = write_users(dir.path(), 2);
    let out = dir.path().join("out.jsonl");
    let hook = dir.path().join("session.lua");
    std::fs::write(
        &hook,
        "return { before_submit = function(rec) rec.want_session = true end }",
    )
    .unwrap();
    let p = proxy_to(s, 1000, 7, |l| l.contains("/logout"), Some(Fault::Html503));
    let args = |url: &str| -> Vec<String> {
        let mut a = batch_args(&file, &out, url);
        a.extend(["--retries".into(), "2".into()]);
        a.extend(["--hook".into(), hook.display().to_string()]);
        a
    };
    let run = Test::new().args(args(&p.url)).run();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("2 incomplete"), "{run:#?}");
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for u in &users {
        let last = crate::batch::last_by_user(&lines)[u.as_str()].clone();
        assert_eq!(last["status"], "incomplete", "{last}");
        assert_eq!(last["undone"]["live_session"], true, "{last}");
        assert_eq!(s.devices(u).len(), 1, "{u}: the live session is there");
    }
    let run = Test::new().args(args(&s.url)).run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("2 registered"), "{run:#?}");
    check_end_state(&out, &users);
}

/// welcome.lua through faults on every endpoint it calls (whoami, the
/// rate-limit override, createRoom, the alias look-up, send, invite, join,
/// logout): every user welcomed exactly once, in one room, and no device
/// left. The bot is exempted from the server's limits by the hook itself.
#[test]
fn welcome_through_faults_reaches_everyone_once() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let bot = fresh("faultbot");
    s.register_directly(&bot, "bot-password", true);
    let token = s.login(&bot, "bot-password").unwrap();
    let (status, room) = s.client(
        "POST",
        "/_matrix/client/v3/createRoom",
        &token,
        Some(serde_json::json!({"preset": "public_chat"})),
    );
    assert_eq!(status, 200, "{room}");
    let room_id = room["room_id"].as_str().unwrap().to_string();
    let (file, users) = write_users(dir.path(), 60);
    let out = dir.path().join("out.jsonl");
    let p = proxy(150, 0xbeef);
    let hook = crate::rig::root().join("hooks/welcome.lua");
    let run = Test::new()
        .args(batch_args(&file, &out, &p.url))
        .args(["-q", "--hook", hook.to_str().unwrap()])
        .env("RNMU_WELCOME_TOKEN", &token)
        .env("RNMU_WELCOME_EXEMPT_BOT", "1")
        .env("RNMU_WELCOME_ROOMS", &room_id)
        .run();
    let injected = p.injected.lock().unwrap().clone();
    assert_eq!(run.code, 0, "faults injected: {injected:?}\n{run:#?}");
    check_end_state(&out, &users);
    let rooms = s.rooms_of(&token);
    for u in &users {
        let id = s.user_id(u);
        let dms: Vec<_> = rooms
            .iter()
            .filter(|(m, _)| m.len() == 1 && m[0] == id)
            .collect();
        assert_eq!(dms.len(), 1, "{u}: direct chats: {dms:?}");
        assert_eq!(dms[0].1.len(), 1, "{u}: messages {:?}", dms[0].1);
        let joined = s.admin(&format!(
            "/_synapse/admin/v1/users/{}/joined_rooms",
            id.replace('@', "%40").replace(':', "%3A")
        ));
        assert!(
            joined["joined_rooms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == &room_id),
            "{u} was not joined to the room: {joined}"
        );
    }
}

/// The measurement behind docs/performance.md's fault figures (`scripts/bench
/// faults`): the 300-user batch through 15 % faults on every endpoint, with
/// default retries, under ten different seeds. Every run must end exit 0
/// with everyone registered once and no device left.
#[test]
#[ignore = "a measurement: ten 300-user batches; run by scripts/bench faults"]
fn ten_seeds() {
    let mut ok = 0;
    for seed in 1..=10u64 {
        let dir = tempfile::tempdir().unwrap();
        let (file, users) = write_users(dir.path(), 300);
        let out = dir.path().join("out.jsonl");
        // Seeds far apart in the generator's sequence (its state advances by the golden ratio).
        let p = proxy(150, seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let t = std::time::Instant::now();
        let run = Test::new()
            .args(batch_args(&file, &out, &p.url))
            .arg("-q")
            .run();
        let injected: usize = p.injected.lock().unwrap().values().sum();
        let requests = p.requests.load(Ordering::Relaxed);
        println!(
            "seed {seed:2}: exit {} in {:5.1} s; {injected} faults in {requests} requests ({:.1} %)",
            run.code,
            t.elapsed().as_secs_f64(),
            100.0 * injected as f64 / requests.max(1) as f64
        );
        if run.code == 0 {
            check_end_state(&out, &users);
            ok += 1;
        } else {
            println!("{}", run.stderr);
        }
    }
    println!("{ok} of 10 runs ended exit 0 with every user registered once and no device left");
    assert_eq!(ok, 10);
}

/// Rows for `--ensure`: a display name, an email and a room each, every
/// tenth an admin.
fn write_declared(dir: &Path, n: usize, room: &str) -> (std::path::PathBuf, Vec<String>) {
    let users: Vec<String> = (0..n).map(|_| fresh("fens")).collect();
    let file = dir.join("declared.jsonl");
    let rows: String = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            format!(
                "{}\n",
                serde_json::json!({
                    "username": u,
                    "admin": i % 10 == 0,
                    "displayname": format!("F {i}"),
                    "emails": [format!("{u}@example.org")],
                    "rooms": [room],
                })
            )
        })
        .collect();
    std::fs::write(&file, rows).unwrap();
    (file, users)
}

fn ensure_args(file: &Path, out: &Path, url: &str) -> Vec<String> {
    let mut args = batch_args(file, out, url);
    args.splice(
        0..0,
        [
            "--ensure".to_string(),
            "--admin-token-file".into(),
            server().admin_token_file(),
        ],
    );
    args
}

/// Every account as declared, created once, and no device left.
fn check_declared(out: &Path, users: &[String], room_id: &str) {
    let s = server();
    let lines: Vec<Value> = std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for (i, u) in users.iter().enumerate() {
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["username"] == u.as_str())
            .collect();
        let created = mine.iter().filter(|l| l["status"] == "registered").count();
        assert_eq!(created, 1, "{u} created once: {mine:?}");
        let last = mine
            .iter()
            .rev()
            .find(|l| l["status"] != "pending")
            .unwrap();
        assert!(
            matches!(
                last["status"].as_str(),
                Some("registered" | "updated" | "unchanged")
            ),
            "{u}: {mine:?}"
        );
        let acc = s.user(u).unwrap_or_else(|| panic!("{u} missing"));
        assert_eq!(acc["displayname"], format!("F {i}"), "{u}");
        assert_eq!(s.is_admin(u), i % 10 == 0, "{u}");
        assert_eq!(s.emails(u), [format!("{u}@example.org")], "{u}");
        assert!(
            s.joined_rooms(u).iter().any(|r| r == room_id),
            "{u} not in the room"
        );
        assert!(s.devices(u).is_empty(), "{u}: a device: {:?}", s.devices(u));
    }
}

#[test]
fn an_ensure_batch_through_faults_ends_as_declared() {
    let dir = tempfile::tempdir().unwrap();
    let (room_id, alias) = server().make_room(&fresh("froom"), false);
    let (file, users) = write_declared(dir.path(), 300, &alias);
    let out = dir.path().join("out.jsonl");
    let p = proxy(150, 0xe75e);
    let run = Test::new()
        .args(ensure_args(&file, &out, &p.url))
        .arg("-q")
        .run();
    let injected = p.injected.lock().unwrap().clone();
    assert_eq!(run.code, 0, "faults injected: {injected:?}\n{run:#?}");
    check_declared(&out, &users, &room_id);
    // A rerun through the same faults changes nothing.
    let again = Test::new().args(ensure_args(&file, &out, &p.url)).run();
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(
        again.stderr.contains("0 updated, 300 unchanged"),
        "{again:#?}"
    );
}

#[test]
fn a_killed_ensure_batch_through_faults_ends_as_declared_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (room_id, alias) = server().make_room(&fresh("kroom"), false);
    let (file, users) = write_declared(dir.path(), 300, &alias);
    let out = dir.path().join("out.jsonl");
    let p = proxy(150, 0xc0de);
    let child =
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
            .args(ensure_args(&file, &out, &p.url))
            .arg("-q")
            .spawn()
            .unwrap();
    crate::kill_midway(child, &out, 60);
    let run = Test::new().args(ensure_args(&file, &out, &p.url)).run();
    assert_eq!(run.code, 0, "{run:#?}");
    check_declared(&out, &users, &room_id);
}
