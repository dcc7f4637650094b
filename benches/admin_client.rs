#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A bare concurrent client of Synapse's admin API, keeping its connections
//! alive, that makes the requests `--ensure` makes for existing accounts and
//! nothing else: no pipeline, hooks, journal or output. Used by
//! benches/ensure.py.
//!
//! `cargo bench --bench admin_client -- MODE PREFIX COUNT JOBS [ROUND]` with
//! RNMU_SYNAPSE_URL, RNMU_SYNAPSE_ADMIN_TOKEN and RNMU_SYNAPSE_SERVER_NAME
//! set. MODE `read` reads each account and its rooms; `write` reads them too,
//! then sets admin and the display name and joins user i to room i mod n of
//! the n room IDs in RNMU_BENCH_ROOMS, as a changing rerun does. Prints
//! `bare: COUNT accounts in SECS s (N failed)`. MODE `export` makes the
//! requests `--export` makes, for the whole server: the user list paged by
//! one thread (250 a page), every listed account and its rooms read by JOBS
//! workers (COUNT and PREFIX are then unused: it reads everyone).

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| "read".into());
    let prefix = args.get(2).cloned().unwrap_or_else(|| "bare".into());
    let count: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let jobs: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(4);
    let round: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(0);
    let url = std::env::var("RNMU_SYNAPSE_URL").expect("RNMU_SYNAPSE_URL");
    let token = std::env::var("RNMU_SYNAPSE_ADMIN_TOKEN").expect("RNMU_SYNAPSE_ADMIN_TOKEN");
    let server = std::env::var("RNMU_SYNAPSE_SERVER_NAME").expect("RNMU_SYNAPSE_SERVER_NAME");
    let rooms: Vec<String> = std::env::var("RNMU_BENCH_ROOMS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if mode == "export" {
        return export(&url, &token, jobs);
    }
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let client = reqwest::blocking::Client::new();
                let ok = |rb: reqwest::blocking::RequestBuilder| {
                    rb.bearer_auth(&token)
                        .send()
                        .and_then(|r| r.error_for_status())
                        .and_then(|r| r.bytes())
                        .is_ok()
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let id = enc(&format!("@{prefix}{i}:{server}"));
                    let mut fine = ok(client.get(format!("{url}/_synapse/admin/v2/users/{id}")))
                        && ok(client.get(format!("{url}/_synapse/admin/v1/users/{id}/joined_rooms")));
                    if mode == "write" {
                        fine = fine
                            && ok(client
                                .put(format!("{url}/_synapse/admin/v2/users/{id}"))
                                .json(&json!({"admin": round % 2 == 1, "displayname": format!("R{round}")})))
                            && ok(client
                                .post(format!("{url}/_synapse/admin/v1/join/{}", enc(&rooms[i % rooms.len()])))
                                .json(&json!({"user_id": format!("@{prefix}{i}:{server}")})));
                    }
                    if !fine {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare: {count} accounts in {secs:.3} s ({} failed)",
        failures.load(Ordering::Relaxed)
    );
}

/// Every account of the server, as `--export` reads it.
fn export(url: &str, token: &str, jobs: usize) {
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(jobs * 4);
    let rx = std::sync::Mutex::new(rx);
    let read = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut from = "0".to_string();
            loop {
                let page: serde_json::Value = client
                    .get(format!(
                        "{url}/_synapse/admin/v2/users?from={from}&limit=250&guests=true&deactivated=true&locked=true&order_by=name"
                    ))
                    .bearer_auth(token)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                for u in page["users"].as_array().into_iter().flatten() {
                    tx.send(u["name"].as_str().unwrap().to_string()).unwrap();
                }
                match &page["next_token"] {
                    serde_json::Value::String(n) => from = n.clone(),
                    serde_json::Value::Number(n) => from = n.to_string(),
                    _ => return,
                }
            }
        });
        for _ in 0..jobs {
            s.spawn(|| {
                let client = reqwest::blocking::Client::new();
                let ok = |path: String| {
                    client
                        .get(format!("{url}{path}"))
                        .bearer_auth(token)
                        .send()
                        .and_then(|r| r.error_for_status())
                        .and_then(|r| r.bytes())
                        .is_ok()
                };
                loop {
                    let Ok(user) = rx.lock().unwrap().recv() else {
                        return;
                    };
                    let id = enc(&user);
                    let fine = ok(format!("/_synapse/admin/v2/users/{id}"))
                        && ok(format!("/_synapse/admin/v1/users/{id}/joined_rooms"));
                    read.fetch_add(1, Ordering::Relaxed);
                    if !fine {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    println!(
        "bare: {} accounts in {:.3} s ({} failed)",
        read.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        failures.load(Ordering::Relaxed)
    );
}
