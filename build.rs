//! Builds hooks' pattern matching: Lua's own `lstrlib.c` from the `lua-src`
//! crate that `mlua` vendors, with the project's patch
//! (`src/hooks/patterns.patch`, a step count and the hook's deadline)
//! applied here, compiled against that same Lua's headers.

#[path = "src/hooks/lua_patch.rs"]
mod lua_patch;

use std::path::PathBuf;

fn main() {
    for f in [
        "src/hooks/patterns.patch",
        "src/hooks/patterns.c",
        "src/hooks/lua_patch.rs",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=RNMU_LUA_SRC");
    if let Err(e) = build() {
        eprintln!("error: building hooks' pattern matching: {e}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let lua = lua_patch::locate(&manifest)?;
    let lstrlib = lua.join("lstrlib.c");
    let source = std::fs::read_to_string(&lstrlib)
        .map_err(|e| format!("cannot read {}: {e}", lstrlib.display()))?;
    let patch = std::fs::read_to_string(manifest.join("src/hooks/patterns.patch"))
        .map_err(|e| format!("cannot read src/hooks/patterns.patch: {e}"))?;
    let patched = lua_patch::apply(&source, &patch, &lstrlib.display().to_string())?;
    std::fs::write(out.join("lstrlib_patched.c"), patched).map_err(|e| e.to_string())?;
    println!("cargo:rerun-if-changed={}", lstrlib.display());
    cc::Build::new()
        .file("src/hooks/patterns.c")
        .include(&out)
        .include(&lua)
        // As lua-src builds the vendored Lua, so both read luaconf.h alike.
        .define("LUA_USE_LINUX", None)
        .define("LUA_COMPAT_5_3", None)
        .warnings(true)
        .try_compile("rnmu_patterns")
        .map_err(|e| e.to_string())
}
