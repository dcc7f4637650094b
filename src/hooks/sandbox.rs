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
//! hook code runs. Once a call is past its deadline it ends: `pcall`,
//! `xpcall` and `coroutine.resume` re-raise the timeout instead of returning,
//! so no hook can catch it, and a message handler of `xpcall` is skipped
//! once the deadline has passed (Lua would run it with its hooks off).
//! Finalisers (`__gc`) are refused: Lua runs them with its hooks off, so no
//! deadline could end one. Any other Lua that runs outside a hook call gets
//! no time at all: it is stopped at its first check.

use super::HookOptions;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub struct Limits {
    deadline: Cell<Option<Instant>>,
    timed_out: Cell<bool>,
    memory: usize,
    /// Where the hook's code was when the deadline passed (`file:line`).
    at: std::cell::RefCell<Option<String>>,
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
        *self.at.borrow_mut() = None;
        self.deadline.set(Some(Instant::now() + timeout));
        let r = lua.set_memory_limit(self.memory).and_then(|_| f());
        self.deadline.set(None);
        let _ = lua.set_memory_limit(0);
        r
    }

    fn check(&self, debug: &mlua::Debug) -> mlua::Result<VmState> {
        match self.deadline.get() {
            Some(d) if Instant::now() <= d => Ok(VmState::Continue),
            Some(_) => {
                if !self.timed_out.replace(true) {
                    *self.at.borrow_mut() = where_(debug);
                }
                Err(mlua::Error::RuntimeError(TIMEOUT.into()))
            }
            // Outside a hook call only finalisers run Lua: they get no time.
            None => Err(mlua::Error::RuntimeError(TIMEOUT.into())),
        }
    }

    /// Whether the call running now is past its deadline (for the wrappers
    /// of the functions that catch errors).
    fn expired(&self) -> bool {
        self.timed_out.get() || self.deadline.get().is_none_or(|d| Instant::now() > d)
    }

    /// Runs `f` (a host call waiting on the network: requests, their
    /// retries and rate-limit waits) off the hook's clock: the deadline
    /// moves on by the time it took. Such waits are bounded by the request
    /// timeout, the retry policy and the row's deadline instead.
    pub fn off_the_clock<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = f();
        if let Some(d) = self.deadline.get() {
            self.deadline.set(Some(d + start.elapsed()));
        }
        r
    }

    /// The same, for C code that runs long (pattern matching): the call is
    /// then marked as timed out, as the instruction check would, at the
    /// line of the hook's code that called it.
    fn out_of_time(&self, lua: &Lua) -> bool {
        if !self.expired() {
            return false;
        }
        if !self.timed_out.replace(true) {
            // Level 0 is this check, 1 the string function; the first frame
            // of a file's Lua code above them is the call's.
            *self.at.borrow_mut() =
                (1..64).find_map(|level| lua.inspect_stack(level, where_).flatten());
        }
        true
    }
}

const TIMEOUT: &str = "hook deadline exceeded";

/// `file:line` of the Lua code a hook stopped in, if it is a file's.
fn where_(debug: &mlua::Debug) -> Option<String> {
    let src = debug.source();
    let file = src.source.as_deref()?.strip_prefix('@')?.to_string();
    Some(format!("{file}:{}", debug.current_line()?))
}

const SAFE_PRELUDE: &str = r##"
local raw_load, select = load, select
-- Source text only; without an env argument, the chunk sees the hooks' globals.
load = function(chunk, name, _mode, ...)
  if select("#", ...) > 0 then return raw_load(chunk, name, "t", ...) end
  return raw_load(chunk, name, "t")
end
dofile, loadfile = nil, nil
string.dump = nil
local clock = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
os = clock
"##;

/// Run in every state: the functions that catch errors cannot catch the
/// deadline, and `print` goes where `rnmu.log` goes.
const LIMITS_PRELUDE: &str = r#"
local expired, raw_pcall, raw_xpcall, resume, memory = ...
local pack, unpack, error, type, rawget = table.pack, table.unpack, error, type, rawget
local raw_setmetatable = setmetatable
local function checked(r)
  if expired() then error("hook deadline exceeded", 0) end
  return unpack(r, 1, r.n)
end
pcall = function(...) return checked(pack(raw_pcall(...))) end
-- A message handler runs where the error was raised; for the deadline's
-- error that is inside the VM's hook, where nothing can stop it: skipped.
xpcall = function(f, handler, ...)
  local function h(m)
    if expired() then return m end
    return handler(m)
  end
  return checked(pack(raw_xpcall(f, h, ...)))
end
coroutine.resume = function(...) return checked(pack(resume(...))) end
-- C loops that no instruction count reaches: bounded by what they would make.
local raw_rep, raw_move, tostring, tointeger = string.rep, table.move, tostring, math.tointeger
string.rep = function(s, n, sep)
  local count = tointeger(n)
  if count and count > 0 then
    local size = #tostring(s) * count + (sep ~= nil and #tostring(sep) or 0) * (count - 1)
    if size == 0 then return "" end
    if size > memory then
      error("string.rep: the result would be " .. size .. " bytes, more than --hook-memory allows", 2)
    end
  end
  return raw_rep(s, n, sep)
end
table.move = function(a1, f, e, t, a2)
  if type(f) == "number" and type(e) == "number" and e - f >= 10000000 then
    error("table.move: more than 10000000 elements at once", 2)
  end
  return raw_move(a1, f, e, t, a2)
end
-- Lua runs finalisers with its hooks off, so no deadline could end one.
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: finalisers (__gc) are not available to hooks", 2)
  end
  return raw_setmetatable(t, mt)
end
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
        at: std::cell::RefCell::new(None),
    });
    let l = limits.clone();
    let expired = lua.create_function(move |_, ()| Ok(l.expired()))?;
    let l = limits.clone();
    super::patterns::install(&lua, move |lua| l.out_of_time(lua))?;
    let g = lua.globals();
    let coroutine: mlua::Table = g.get("coroutine")?;
    lua.load(LIMITS_PRELUDE).set_name("=sandbox").call::<()>((
        expired,
        g.get::<mlua::Function>("pcall")?,
        g.get::<mlua::Function>("xpcall")?,
        coroutine.get::<mlua::Function>("resume")?,
        opts.memory,
    ))?;
    let l = limits.clone();
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(1000),
        move |_, debug| l.check(debug),
    )?;
    Ok((lua, limits))
}

/// One line saying why a hook call failed.
pub fn describe(e: &mlua::Error, limits: &Limits, timeout: Duration) -> String {
    if limits.timed_out.get() {
        let at = limits
            .at
            .borrow()
            .clone()
            .or_else(|| match e {
                mlua::Error::CallbackError { traceback, .. } => lua_frame(traceback),
                _ => None,
            })
            .map(|a| format!("{a}: "))
            .unwrap_or_default();
        return format!(
            "{at}did not finish within {} (an endless loop?); the limit is --hook-timeout",
            human(timeout)
        );
    }
    match e {
        mlua::Error::MemoryError(_) => format!(
            "ran out of memory: the limit is {} MiB (--hook-memory)",
            limits.memory >> 20
        ),
        // A host call failed: the hook's line is the first Lua frame of the
        // traceback.
        mlua::Error::CallbackError { cause, traceback } => {
            let msg = describe(cause, limits, timeout);
            match lua_frame(traceback) {
                Some(at) if !msg.starts_with(&at) => format!("{at}: {msg}"),
                _ => msg,
            }
        }
        mlua::Error::WithContext { cause, .. } => describe(cause, limits, timeout),
        mlua::Error::SyntaxError { message, .. } => {
            format!("syntax error: {}", first_line(message))
        }
        mlua::Error::RuntimeError(m) => first_line(m),
        other => first_line(&other.to_string()),
    }
}

/// `file:line` of the first frame of a traceback that is Lua code of a file.
fn lua_frame(traceback: &str) -> Option<String> {
    traceback.lines().skip(1).find_map(|l| {
        let l = l.trim();
        if l.starts_with('[') {
            return None;
        }
        let (file, rest) = l.split_once(':')?;
        let (line, _) = rest.split_once(':')?;
        (!line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("{file}:{line}"))
    })
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
