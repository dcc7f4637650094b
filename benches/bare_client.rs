#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The server's own capacity for shared-secret registrations: a bare
//! concurrent client that only fetches a nonce, signs and posts, with no
//! pipeline, hooks, journal or output. Used by benches/batch.py.
//!
//! `cargo bench --bench bare_client -- PREFIX COUNT JOBS` with
//! RNMU_SYNAPSE_URL and RNMU_SYNAPSE_SECRET set; prints
//! `bare: COUNT registrations in SECS s`.
//!
//! With RNMU_BENCH_BOT_TOKEN set it also does what welcome.lua does for each
//! user, bare: the bot creates a direct chat inviting the user, and sends one
//! message into it (benches/welcome.py).

use rnmu::stages::sign::mac;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let prefix = args.get(1).cloned().unwrap_or_else(|| "bare".into());
    let count: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let jobs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let url = std::env::var("RNMU_SYNAPSE_URL").expect("RNMU_SYNAPSE_URL");
    let secret = std::env::var("RNMU_SYNAPSE_SECRET").expect("RNMU_SYNAPSE_SECRET");
    let endpoint = format!("{url}/_synapse/admin/v1/register");
    let bot = std::env::var("RNMU_BENCH_BOT_TOKEN").ok();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                // As the tool's client for a plain-HTTP server: no
                // certificate store read.
                let client = reqwest::blocking::Client::builder()
                    .tls_certs_only(std::iter::empty())
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let user = format!("{prefix}{i}");
                    let nonce: Value = client
                        .get(&endpoint)
                        .send()
                        .and_then(|r| r.json())
                        .expect("nonce");
                    let nonce = nonce["nonce"].as_str().expect("nonce string").to_string();
                    let body = json!({
                        "nonce": nonce, "username": user, "password": "bench-pw",
                        "mac": mac(&secret, &nonce, &user, "bench-pw", false, None),
                        "admin": false, "inhibit_login": true,
                    });
                    let ok = client
                        .post(&endpoint)
                        .json(&body)
                        .send()
                        .and_then(|r| r.error_for_status())
                        .and_then(|r| r.json::<Value>());
                    let Ok(done) = ok else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if let Some(token) = &bot {
                        let room: Value = client
                            .post(format!("{url}/_matrix/client/v3/createRoom"))
                            .bearer_auth(token)
                            .json(&json!({"is_direct": true, "invite": [done["user_id"]],
                                          "preset": "trusted_private_chat"}))
                            .send()
                            .and_then(|r| r.error_for_status())
                            .and_then(|r| r.json())
                            .expect("createRoom");
                        let room = room["room_id"].as_str().expect("room_id").replace('!', "%21").replace(':', "%3A");
                        client
                            .put(format!("{url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{prefix}{i}"))
                            .bearer_auth(token)
                            .json(&json!({"msgtype": "m.text", "body": "Welcome!"}))
                            .send()
                            .and_then(|r| r.error_for_status())
                            .expect("send");
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare: {count} registrations in {secs:.3} s ({} failed)",
        failures.load(Ordering::Relaxed)
    );
}
