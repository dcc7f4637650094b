//! Builds hooks' pattern matching (`src/hooks/c/patterns.c`): Lua 5.4.8's
//! own matcher with a deadline, linked against the Lua that `mlua` vendors.

fn main() {
    println!("cargo:rerun-if-changed=src/hooks/c");
    cc::Build::new()
        .file("src/hooks/c/patterns.c")
        .include("src/hooks/c")
        // As the vendored Lua is built (lua-src), so both read luaconf.h alike.
        .define("LUA_USE_LINUX", None)
        .define("LUA_COMPAT_5_3", None)
        .warnings(true)
        .compile("rnmu_patterns");
}
