//! `string.find`, `string.match`, `string.gmatch` and `string.gsub` for
//! hooks: Lua's own matcher (`lstrlib.c` of the vendored `lua-src`, with
//! `src/hooks/patterns.patch` applied by `build.rs`), which stops at the
//! hook's deadline.
//!
//! Lua's matcher backtracks in C, where no instruction count reaches it:
//! `("a"):rep(400):find(".-.-.-.-b")` would run for hours under any limit.
//! The build here is Lua's code with a step count: every few thousand steps
//! it calls the function this module leaves in the registry, which says
//! whether the call is out of time. Everything else is Lua's: results,
//! errors and their messages, argument checks, and the memory, which comes
//! from the state's allocator and so counts against `--hook-memory`.

use mlua::{Lua, Table};

/// Where `patterns.c` looks for the deadline's check (its `RNMU_EXPIRED`).
const EXPIRED_KEY: &str = "rnmu.patterns.expired";

unsafe extern "C-unwind" {
    fn rnmu_str_find(state: *mut mlua::lua_State) -> std::ffi::c_int;
    fn rnmu_str_match(state: *mut mlua::lua_State) -> std::ffi::c_int;
    fn rnmu_str_gmatch(state: *mut mlua::lua_State) -> std::ffi::c_int;
    fn rnmu_str_gsub(state: *mut mlua::lua_State) -> std::ffi::c_int;
}

/// Puts the four functions into the state's `string` table (which is also
/// what string methods use); `expired` says whether the running hook call
/// is past its deadline.
pub fn install(lua: &Lua, expired: impl Fn(&Lua) -> bool + 'static) -> mlua::Result<()> {
    let check = lua.create_function(move |lua, ()| Ok(expired(lua)))?;
    lua.set_named_registry_value(EXPIRED_KEY, check)?;
    let string: Table = lua.globals().get("string")?;
    let functions: [(&str, mlua::lua_CFunction); 4] = [
        ("find", rnmu_str_find),
        ("match", rnmu_str_match),
        ("gmatch", rnmu_str_gmatch),
        ("gsub", rnmu_str_gsub),
    ];
    for (name, f) in functions {
        // SAFETY: these are Lua C functions from Lua's own lstrlib.c, built
        // against the headers of the Lua this state runs (build.rs).
        string.set(name, unsafe { lua.create_c_function(f) }?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Value;

    #[test]
    fn backtracking_stops_when_out_of_time() {
        let lua = Lua::new();
        let start = std::time::Instant::now();
        install(&lua, move |_| {
            start.elapsed() > std::time::Duration::from_millis(200)
        })
        .unwrap();
        let err = lua
            .load(r#"return ("a"):rep(400):find(".-.-.-.-b")"#)
            .eval::<Value>()
            .unwrap_err();
        assert!(err.to_string().contains("hook deadline exceeded"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
