#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hooks' `string.find`, `match`, `gmatch` and `gsub` (src/hooks/patterns.rs,
//! with the deadline's step count) against Lua 5.4's own C functions, loaded
//! side by side into one state and run over the same data, in alternating
//! rounds. Reports each workload's CPU time (`os.clock`) as a ratio, the
//! median of ROUNDS rounds (default 15, as the README's figures were measured).
//!
//! Run: `scripts/bench patterns` (or `cargo bench --bench patterns`).

use mlua::Lua;
use std::time::{Duration, Instant};

const WORKLOADS: &str = r#"
local F, rounds = ...
local text = {}
for i = 1, 20000 do text[#text + 1] = "word" .. i .. " " end
local prose = table.concat(text):sub(1, 100000)
local lines = {}
for i = 1, 20000 do lines[i] = "key" .. i .. "=value" .. i end
local a3000 = ("a"):rep(3000)
local shorts = {}
for i = 1, 1000 do shorts[i] = (" "):rep(i % 7) .. "item " .. i .. (" "):rep(i % 5) end
return {
  { "gsub `%w+` -> `<%0>`, 100 KB", function(f) return f.gsub(prose, "%w+", "<%0>") end, 20 },
  { "gmatch `%a+`, 100 KB", function(f) local n = 0 for w in f.gmatch(prose, "%a+") do n = n + 1 end return n end, 20 },
  { "find `.-b` on 3,000 a's", function(f) return f.find(a3000, ".-b") end, 5 },
  { "match `key=value`, 20,000 lines", function(f)
      local match, n = f.match, 0
      for i = 1, #lines do local k, v = match(lines[i], "^(%w+)=(%w+)$") if k then n = n + 1 end end
      return n
    end, 10 },
  { "gsub with a function (`string.upper`), 100 KB", function(f) return f.gsub(prose, "%a+", string.upper) end, 10 },
  { "plain find that misses, 100 KB", function(f) return f.find(prose, "zzz", 1, true) end, 2000 },
  { "trim `^%s*(.-)%s*$`, short strings", function(f)
      local match = f.match
      for i = 1, #shorts do match(shorts[i], "^%s*(.-)%s*$") end
    end, 100 },
}
"#;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let lua = Lua::new();
    // Lua's own functions, kept before the hooks' replace them.
    lua.load("C = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }")
        .exec()
        .unwrap();
    // The hooks' check of the deadline, as a hook call runs it.
    let deadline = Instant::now() + Duration::from_secs(3600);
    rnmu::hooks::patterns::install(&lua, move |_| Instant::now() > deadline).unwrap();
    lua.load("H = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }")
        .exec()
        .unwrap();
    let workloads: mlua::Table = lua.load(WORKLOADS).call(()).unwrap();
    let time: mlua::Function = lua
        .load(
            r#"return function(work, f, reps)
                 local t = os.clock()
                 for _ = 1, reps do work(f) end
                 return os.clock() - t
               end"#,
        )
        .eval()
        .unwrap();
    let (c, h): (mlua::Table, mlua::Table) = (
        lua.globals().get("C").unwrap(),
        lua.globals().get("H").unwrap(),
    );
    println!("hooks' string functions / Lua's C functions, CPU time, median of {rounds} rounds");
    println!("| workload | Lua's C (ms) | hooks (ms) | hooks / C |");
    println!("|---|---|---|---|");
    for w in workloads.sequence_values::<mlua::Table>() {
        let w = w.unwrap();
        let (name, work, reps): (String, mlua::Function, i64) =
            (w.get(1).unwrap(), w.get(2).unwrap(), w.get(3).unwrap());
        // The same results first.
        let same: bool = lua
            .load("local work, c, h = ... local a = table.pack(work(c)) local b = table.pack(work(h)) for i = 1, math.max(a.n, b.n) do if a[i] ~= b[i] then return false end end return true")
            .call((&work, &c, &h))
            .unwrap();
        assert!(same, "{name}: the results differ");
        let (mut tc, mut th, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            let (x, y): (f64, f64) = if r % 2 == 0 {
                let x = time.call((&work, &c, reps)).unwrap();
                (x, time.call((&work, &h, reps)).unwrap())
            } else {
                let y = time.call((&work, &h, reps)).unwrap();
                (time.call((&work, &c, reps)).unwrap(), y)
            };
            tc.push(x);
            th.push(y);
            ratios.push(y / x);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} |",
            median(&mut tc) * 1e3,
            median(&mut th) * 1e3,
            median(&mut ratios)
        );
    }
}
