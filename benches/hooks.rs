#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What hooks cost per registration, network excluded: the three shipped
//! hooks loaded once into one Lua state, then every hook point of the
//! pipeline fired for many records, against the same loop with no hooks.
//!
//! Run: `cargo bench --bench hooks`. The welcome hook's network calls are not
//! made (its records are not marked registered), so what is measured is the
//! engine: building the record and context tables, calling into Lua, running
//! the hooks' own code and reading the record back.

use rnmu::hooks::{HookOptions, LuaHooks};
use rnmu::record::{HookCall, HookPoint, Record, Stage};
use rnmu::runner::{Hooks, NoHooks};
use rnmu::secret::Secret;
use std::time::Instant;

fn points() -> Vec<HookPoint> {
    let mut p = Vec::new();
    for s in Stage::ALL {
        p.push(HookPoint::Before(s));
        p.push(HookPoint::After(s));
    }
    p
}

fn one_registration(hooks: &mut dyn Hooks, points: &[HookPoint], i: usize) -> Record {
    let mut rec = Record {
        username: Some(format!("  User{i}  ")),
        password: None,
        admin: Some(false),
        server_url: Some("http://127.0.0.1:9".into()),
        ..Record::default()
    };
    for &point in points {
        let call = HookCall {
            point,
            server_url: Some("http://127.0.0.1:9"),
            dry_run: false,
            error: None,
            deadline: None,
            rerun: false,
        };
        if let Err(e) = hooks.fire(&call, &mut rec) {
            panic!("{point}: {e}");
        }
    }
    rec
}

fn per_registration(hooks: &mut dyn Hooks, n: usize) -> f64 {
    let points = points();
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(one_registration(hooks, &points, i));
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

fn main() {
    // SAFETY: single-threaded, before anything reads the environment.
    unsafe { std::env::set_var("RNMU_WELCOME_TOKEN", "bench-token") };
    let root = env!("CARGO_MANIFEST_DIR");
    let mut hooks = LuaHooks::new(&HookOptions::default()).expect("Lua starts");
    let list = std::env::var("HOOKS")
        .unwrap_or_else(|_| "username-policy.lua,generate-password.lua,welcome.lua".into());
    for f in list.split(',').filter(|f| !f.is_empty()) {
        hooks
            .load(&std::path::Path::new(root).join("hooks").join(f))
            .expect("hook loads");
    }
    hooks.add_redaction(&Secret::new("shared-secret"));
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // Warm up both, then measure them alternately.
    per_registration(&mut NoHooks, n / 10);
    per_registration(&mut hooks, n / 10);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..5 {
        without.push(per_registration(&mut NoHooks, n));
        with.push(per_registration(&mut hooks, n));
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let (w, wo) = (with[2], without[2]);
    println!("hook cost per registration, {n} registrations x 5 rounds, medians:");
    println!("  no hooks:                  {wo:8.2} µs");
    println!("  three shipped hooks:       {w:8.2} µs");
    println!("  added by hooks:            {:8.2} µs", w - wo);
}
