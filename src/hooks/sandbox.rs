//! The Lua state hooks run in: which standard library they get, and the limits
//! every call runs under.
//!
//! Safe by default: coroutine, table, string, utf8, math, and of `os` only the
//! clock functions. No `io`, `os.execute`, `package`/`require`, `dofile`,
//! `loadfile`, `string.dump` or `debug`, and `load` only takes source text, so
//! no binary chunk ever runs. `--hook-unsafe` opens everything.
//!
//! Limits: a deadline per hook call, checked every thousand VM instructions
//! (coroutines inherit the check), and a cap on the state's memory while
//! hook code runs.

use super::HookOptions;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub struct Limits {
    deadline: Cell<Option<Instant>>,
    timed_out: Cell<bool>,
    memory: usize,
}

impl Limits {
    /// Runs `f` (Lua code) with the deadline armed and the memory cap on.
    ///
    /// Outside hook code the cap is off: the tool's own small tables then
    /// skip mlua's protected-call path, which makes a hook call several times
    /// cheaper.
    pub fn guard<R>(
        &self,
        lua: &Lua,
        timeout: Duration,
        f: impl FnOnce() -> mlua::Result<R>,
    ) -> mlua::Result<R> {
        self.timed_out.set(false);
        self.deadline.set(Some(Instant::now() + timeout));
        let r = lua.set_memory_limit(self.memory).and_then(|_| f());
        self.deadline.set(None);
        let _ = lua.set_memory_limit(0);
        r
    }

    fn check(&self) -> mlua::Result<VmState> {
        match self.deadline.get() {
            Some(d) if Instant::now() > d => {
                self.timed_out.set(true);
                Err(mlua::Error::RuntimeError("hook deadline exceeded".into()))
            }
            _ => Ok(VmState::Continue),
        }
    }
}

const SAFE_PRELUDE: &str = r#"
local raw_load = load
load = function(chunk, name, _mode, env) return raw_load(chunk, name, "t", env) end
dofile, loadfile = nil, nil
string.dump = nil
local clock = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
os = clock
"#;

pub fn new_state(opts: &HookOptions) -> mlua::Result<(Lua, Rc<Limits>)> {
    let lua = if opts.unsafe_libs {
        // SAFETY: the operator asked for the full standard library; C modules
        // can then be loaded, which is what --hook-unsafe documents.
        unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::default()) }
    } else {
        let libs = StdLib::COROUTINE
            | StdLib::TABLE
            | StdLib::STRING
            | StdLib::UTF8
            | StdLib::MATH
            | StdLib::OS;
        let lua = Lua::new_with(libs, LuaOptions::default())?;
        lua.load(SAFE_PRELUDE).set_name("=sandbox").exec()?;
        lua
    };
    let limits = Rc::new(Limits {
        deadline: Cell::new(None),
        timed_out: Cell::new(false),
        memory: opts.memory,
    });
    let l = limits.clone();
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(1000),
        move |_, _| l.check(),
    )?;
    Ok((lua, limits))
}

/// One line saying why a hook call failed.
pub fn describe(e: &mlua::Error, limits: &Limits, timeout: Duration) -> String {
    if limits.timed_out.get() {
        return format!(
            "did not finish within {} (an endless loop?); the limit is --hook-timeout",
            human(timeout)
        );
    }
    match e {
        mlua::Error::MemoryError(_) => format!(
            "ran out of memory: the limit is {} MiB (--hook-memory)",
            limits.memory >> 20
        ),
        mlua::Error::CallbackError { cause, .. } => describe(cause, limits, timeout),
        mlua::Error::WithContext { cause, .. } => describe(cause, limits, timeout),
        mlua::Error::SyntaxError { message, .. } => {
            format!("syntax error: {}", first_line(message))
        }
        mlua::Error::RuntimeError(m) => first_line(m),
        other => first_line(&other.to_string()),
    }
}

fn first_line(s: &str) -> String {
    let s = s.split("\nstack traceback").next().unwrap_or(s);
    s.lines().next().unwrap_or("").trim().to_string()
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
