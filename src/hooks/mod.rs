//! Lua hooks: site code that runs between the pipeline's stages.
//!
//! A hook file is a Lua 5.4 chunk that returns a table of functions keyed by
//! hook point (`before_input`, `after_submit`, `on_error`, ...). Each function
//! gets the registration record and a context table; what it changes in the
//! record flows back into the pipeline. [`LuaHooks`] implements the runner's
//! [`Hooks`] trait; one instance owns one Lua state (a batch worker has its
//! own). See docs/hooks.md for the contract.
//!
//! - `sandbox`: the Lua state, the safe standard library, and the limits
//!   (a deadline per call, a memory cap).
//! - `host`: the `rnmu` module the hooks call into.
//! - `record`: the record as a Lua table, and back.
//! - `convert`: Lua values to JSON and back, with a depth limit.
//! - `patterns`: Lua's string patterns (Lua's own `lstrlib.c`, from the
//!   vendored `lua-src`, with `patterns.patch` applied by `build.rs`),
//!   stopping at the deadline.

mod convert;
#[cfg(test)]
mod differential;
mod host;
#[cfg(test)]
mod lua_patch;
pub mod patterns;
mod record;
mod sandbox;

use crate::console::Level;
use crate::error::Error;
use crate::record::{HookCall, HookPoint, Record, Stage};
use crate::runner::Hooks;
use crate::secret::Secret;
use mlua::{Function, Lua, Table, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// How hooks are loaded and limited.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// Open the full standard library (`os.execute`, `io`, `debug`, ...).
    pub unsafe_libs: bool,
    /// The longest a single hook call may run.
    pub timeout: Duration,
    /// The most memory the Lua state may hold, in bytes.
    pub memory: usize,
    pub level: Level,
    /// The config's `register_new_matrix_user` section, as `rnmu.config`.
    pub tool_config: serde_json::Value,
    /// The timeout of HTTP requests made by hooks.
    pub http_timeout: Duration,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            unsafe_libs: false,
            timeout: Duration::from_secs(5),
            memory: 64 << 20,
            level: Level::Normal,
            tool_config: serde_json::Value::Null,
            http_timeout: Duration::from_secs(10),
        }
    }
}

struct HookFile {
    path: PathBuf,
    /// Shown in messages: the path as given.
    name: String,
}

/// Every hook file of a run, loaded into one Lua state.
pub struct LuaHooks {
    lua: Lua,
    limits: Rc<sandbox::Limits>,
    host: Rc<host::Host>,
    files: Vec<HookFile>,
    /// For each hook point, the functions that handle it, in run order.
    points: HashMap<HookPoint, Vec<(usize, Function)>>,
    timeout: Duration,
}

impl LuaHooks {
    pub fn new(opts: &HookOptions) -> Result<Self, Error> {
        let (lua, limits) = sandbox::new_state(opts).map_err(|e| Error::Hook {
            hook: "(engine)".into(),
            message: format!("cannot start Lua: {e}"),
        })?;
        let host = Rc::new(host::Host::new(opts, limits.clone()));
        host::install(&lua, &host, opts).map_err(|e| Error::Hook {
            hook: "(engine)".into(),
            message: format!("cannot install the host API: {e}"),
        })?;
        Ok(LuaHooks {
            lua,
            limits,
            host,
            files: Vec::new(),
            points: HashMap::new(),
            timeout: opts.timeout,
        })
    }

    /// Loads one hook file; its functions run after those already loaded.
    pub fn load(&mut self, path: &Path) -> Result<(), Error> {
        let name = path.display().to_string();
        let fail = |message: String| Error::Hook {
            hook: name.clone(),
            message,
        };
        let code = crate::files::read_regular(path, crate::files::CODE_MAX)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        // `hook FILE:LINE (load): ...`, as for every error of a file's own.
        let at = |line: usize, message: String| Error::Hook {
            hook: format!("{name}:{line} (load)"),
            message,
        };
        if code.first() == Some(&0x1b) {
            return Err(at(
                1,
                "is a precompiled (binary) chunk; hooks must be Lua source".into(),
            ));
        }
        let chunk = self
            .lua
            .load(&code[..])
            .set_name(format!("@{name}"))
            .set_mode(mlua::ChunkMode::Text);
        let table: Value = self
            .limits
            .guard(&self.lua, self.timeout, || chunk.eval())
            .map_err(|e| {
                let msg = sandbox::describe(&e, &self.limits, self.timeout);
                // `syntax error: FILE:LINE: ...` reads `hook FILE:LINE (load): syntax error: ...`.
                let msg = match msg.strip_prefix("syntax error: ") {
                    Some(rest) => match located(&name, "load", rest.to_string(), None) {
                        Error::Hook { hook, message } => {
                            return Error::Hook {
                                hook,
                                message: format!("syntax error: {message}"),
                            };
                        }
                        other => return other,
                    },
                    None => msg,
                };
                located(&name, "load", msg, None)
            })?;
        let Value::Table(table) = table else {
            return Err(at(
                line_of_return(&code),
                format!(
                    "must return a table of functions keyed by hook point, not {}",
                    a_type(&table)
                ),
            ));
        };
        let idx = self.files.len();
        for pair in table.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(|e| fail(e.to_string()))?;
            let key = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => {
                    return Err(at(
                        line_of_return(&code),
                        format!(
                            "has a {} key; keys must be hook point names",
                            other.type_name()
                        ),
                    ));
                }
            };
            // The line of the function (Lua knows it), else of the key.
            let line = match &v {
                Value::Function(f) => f.info().line_defined.unwrap_or(1),
                _ => line_of_key(&code, &key).unwrap_or_else(|| line_of_return(&code)),
            };
            let point = HookPoint::parse(&key).ok_or_else(|| {
                at(
                    line,
                    format!("{key:?} is not a hook point (see docs/hooks.md for the list)"),
                )
            })?;
            let Value::Function(f) = v else {
                return Err(at(
                    line,
                    format!("{key} must be a function, not {}", v.type_name()),
                ));
            };
            self.points.entry(point).or_default().push((idx, f));
        }
        self.files.push(HookFile {
            path: path.to_path_buf(),
            name,
        });
        Ok(())
    }

    /// Makes the config's `register_new_matrix_user` section `rnmu.config`.
    pub fn set_config(&self, config: &serde_json::Value) -> Result<(), Error> {
        let set = || -> mlua::Result<()> {
            let rnmu: Table = self.lua.globals().get("rnmu")?;
            rnmu.set("config", to_lua_value(&self.lua, config)?)
        };
        set().map_err(|e| Error::Hook {
            hook: "(engine)".into(),
            message: format!("cannot pass the config to hooks: {e}"),
        })
    }

    /// Requests made by hooks trust what the run trusts (`--cacert`, `--insecure`).
    pub fn set_transport(&self, t: &crate::homeserver::Transport) {
        self.host.set_transport(t);
    }

    /// The server's password rules, which `rnmu.password` satisfies.
    pub fn set_password_policy(&self, policy: &crate::policy::PasswordPolicy) {
        self.host.set_password_policy(policy);
    }

    /// Secrets that hook logs must never show.
    pub fn add_redaction(&self, secret: &Secret) {
        self.host.redact(secret);
    }
}

/// JSON as Lua values; `null` becomes `nil`, and a missing config an empty table.
pub(crate) fn to_lua_value(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    if v.is_null() {
        return Ok(Value::Table(lua.create_table()?));
    }
    convert::json_to_lua(lua, v)
}

impl Hooks for LuaHooks {
    fn handlers(&self, point: HookPoint) -> Vec<String> {
        self.points
            .get(&point)
            .into_iter()
            .flatten()
            .map(|(idx, _)| self.files[*idx].name.clone())
            .collect()
    }

    fn fire(&mut self, call: &HookCall<'_>, rec: &mut Record) -> Result<(), Error> {
        let Some(funcs) = self.points.get(&call.point) else {
            return Ok(());
        };
        self.host.set_record_secrets(rec);
        self.host.set_deadline(call.deadline);
        for (idx, func) in funcs {
            let file = &self.files[*idx];
            // A hook may put a secret in its error message: mask it like its logs.
            let defined = func.info().line_defined;
            let point = call.point.to_string();
            let fail =
                |message: String| located(&file.name, &point, self.host.masked(&message), defined);
            let table = record::to_lua(&self.lua, rec).map_err(|e| fail(e.to_string()))?;
            let ctx = self.context(call, file).map_err(|e| fail(e.to_string()))?;
            self.host
                .set_server(call.server_url.or(rec.server_url.as_deref()));
            self.host.set_live(Some(table.clone()));
            let returned: mlua::Result<Value> = self
                .limits
                .guard(&self.lua, self.timeout, || func.call((table.clone(), ctx)));
            let returned =
                returned.map_err(|e| fail(sandbox::describe(&e, &self.limits, self.timeout)));
            self.host.set_live(None);
            let returned = returned?;
            match returned {
                Value::Nil => {}
                Value::Table(t) if t == table => {}
                // A table of the hook's own: its fields are merged in.
                Value::Table(t) => {
                    record::merge_returned(&table, &t).map_err(|e| fail(e.to_string()))?;
                }
                other => {
                    return Err(fail(format!(
                        "returned {}; return nothing, or the record table",
                        a_type(&other)
                    )));
                }
            }
            record::from_lua(&table, rec, after_validation(call.point)).map_err(fail)?;
            self.host.set_record_secrets(rec);
        }
        Ok(())
    }
}

/// The line of a hook file's last `return` (where its table is made), or its
/// last line.
fn line_of_return(code: &[u8]) -> usize {
    let text = String::from_utf8_lossy(code);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("return"))
        .map_or(lines.len().max(1), |i| i + 1)
}

/// The first line where `key` is given a value (`key =`).
fn line_of_key(code: &[u8], key: &str) -> Option<usize> {
    let text = String::from_utf8_lossy(code);
    text.lines()
        .position(|l| {
            l.match_indices(key).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + key.len()..].trim_start();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('=')
            })
        })
        .map(|i| i + 1)
}

/// "a number", "a string", ... for messages.
fn a_type(v: &Value) -> String {
    match v {
        Value::Integer(_) | Value::Number(_) => "a number".into(),
        other => format!("a {}", other.type_name()),
    }
}

/// Whether a hook point comes after the validate stage.
fn after_validation(point: HookPoint) -> bool {
    let pos = |s: Stage| Stage::ALL.iter().position(|x| *x == s);
    match point {
        HookPoint::Before(s) => pos(s) > pos(Stage::Validate),
        HookPoint::After(s) => pos(s) >= pos(Stage::Validate),
        HookPoint::OnError => false,
    }
}

/// A hook error, with the file and line where Lua gives them
/// (`hook policy.lua:12 (after_input): that name is reserved`).
/// The line is where the message says the error was raised; otherwise
/// `fallback` (the first line of the hook's function, for errors found after
/// it returned).
fn located(file: &str, point: &str, message: String, fallback: Option<usize>) -> Error {
    let at = message
        .strip_prefix(file)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split_once(": "))
        .filter(|(line, _)| !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()));
    match (at, fallback) {
        (Some((line, msg)), _) => Error::Hook {
            hook: format!("{file}:{line} ({point})"),
            message: msg.to_string(),
        },
        (None, Some(line)) => Error::Hook {
            hook: format!("{file}:{line} ({point})"),
            message,
        },
        (None, None) => Error::Hook {
            hook: format!("{file} ({point})"),
            message,
        },
    }
}

impl LuaHooks {
    fn context(&self, call: &HookCall<'_>, file: &HookFile) -> mlua::Result<Table> {
        let ctx = self.lua.create_table_with_capacity(0, 7)?;
        let (stage, when) = match call.point {
            HookPoint::Before(s) => (Some(s.name()), "before"),
            HookPoint::After(s) => (Some(s.name()), "after"),
            HookPoint::OnError => (None, "on_error"),
        };
        ctx.raw_set("point", call.point.to_string())?;
        ctx.raw_set("stage", stage)?;
        ctx.raw_set("when", when)?;
        ctx.raw_set("hook_file", file.path.display().to_string())?;
        ctx.raw_set("server_url", call.server_url)?;
        ctx.raw_set("dry_run", call.dry_run)?;
        ctx.raw_set("error", call.error.as_deref())?;
        ctx.raw_set("rerun", call.rerun)?;
        Ok(ctx)
    }
}

pub fn hook_options(cli: &crate::options::Options, level: Level) -> HookOptions {
    HookOptions {
        unsafe_libs: cli.hook_unsafe,
        timeout: cli.hook_timeout,
        memory: (cli.hook_memory as usize) << 20,
        level,
        ..HookOptions::default()
    }
}

/// Hooks from `--hook`, in command-line order.
pub fn cli_hooks(cli: &crate::options::Options, level: Level) -> Result<LuaHooks, Error> {
    let mut hooks = LuaHooks::new(&hook_options(cli, level))?;
    for f in &cli.hooks {
        hooks.load(f)?;
    }
    Ok(hooks)
}

/// Adds what the config stage resolved: the config's own hooks (after those
/// from `--hook`), `rnmu.config`, and the shared secret to mask in hook logs.
pub fn add_config_hooks(
    hooks: &mut LuaHooks,
    resolved: &crate::stages::Resolved,
) -> Result<(), Error> {
    hooks.add_redaction(&resolved.secret);
    hooks.host.set_admin_token(resolved.admin_token.as_ref());
    hooks.set_password_policy(&resolved.password_policy);
    hooks.set_transport(&resolved.transport);
    hooks.set_config(&resolved.tool_config)?;
    for f in &resolved.config_hooks {
        hooks.load(f)?;
    }
    Ok(())
}
