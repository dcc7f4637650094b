//! Hooks' string functions against stock Lua: `tests/lua/strings-corpus.lua`
//! runs in the hooks' sandbox and in the reference interpreter built from
//! the Lua sources the tool links (`scripts/ref-lua`), and the two outputs
//! must be the same, line for line.
//!
//! The suite runs the fixed corpus; `scripts/lua-diff [SEED] [COUNT]` runs a
//! random one (the ignored test below).

use super::HookOptions;
use super::sandbox::new_state;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The reference interpreter, built on first use.
fn reference() -> PathBuf {
    let out = Command::new(root().join("scripts/ref-lua"))
        .output()
        .expect("run scripts/ref-lua");
    assert!(
        out.status.success(),
        "scripts/ref-lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn corpus() -> PathBuf {
    root().join("tests/lua/strings-corpus.lua")
}

fn run_reference(args: &[&str]) -> Vec<u8> {
    let out = Command::new(reference())
        .arg(corpus())
        .args(args)
        .output()
        .expect("run the reference interpreter");
    assert!(
        out.status.success(),
        "the corpus failed in the reference interpreter: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn run_sandbox(args: &[&str]) -> Vec<u8> {
    // The corpus holds its whole output until it returns: a long random run
    // needs more than the default cap, which is not what is compared here.
    let opts = HookOptions {
        memory: 1 << 30,
        ..HookOptions::default()
    };
    let (lua, limits) = new_state(&opts).expect("sandbox");
    let path = corpus();
    let source = std::fs::read(&path).expect("read the corpus");
    let args: Vec<mlua::Value> = args
        .iter()
        .map(|a| mlua::Value::String(lua.create_string(a).expect("string")))
        .collect();
    let r = limits
        .guard(&lua, Duration::from_secs(600), || {
            lua.load(&source[..])
                .set_name(format!("@{}", path.display()))
                .call::<mlua::String>(mlua::MultiValue::from_vec(args))
        })
        .expect("the corpus failed in the sandbox");
    r.as_bytes().to_vec()
}

fn compare(args: &[&str]) {
    let (want, got) = (run_reference(args), run_sandbox(args));
    let (want, got) = (
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(&got),
    );
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let differ: Vec<String> = w
        .iter()
        .zip(&g)
        .filter(|(a, b)| a != b)
        .take(10)
        .map(|(a, b)| format!("  Lua:   {a}\n  hooks: {b}"))
        .collect();
    assert!(
        differ.is_empty() && w.len() == g.len(),
        "{} of {} lines differ ({} against {} lines); the first:\n{}",
        w.iter().zip(&g).filter(|(a, b)| a != b).count(),
        w.len(),
        w.len(),
        g.len(),
        differ.join("\n")
    );
    assert!(w.len() > 100, "the corpus ran only {} cases", w.len());
}

#[test]
fn fixed_corpus_agrees_with_lua() {
    compare(&["fixed"]);
}

/// `RNMU_LUA_DIFF_SEED` and `RNMU_LUA_DIFF_COUNT` (scripts/lua-diff).
#[test]
#[ignore = "a long random run: scripts/lua-diff"]
fn random_corpus_agrees_with_lua() {
    let seed = std::env::var("RNMU_LUA_DIFF_SEED").unwrap_or_else(|_| "1".into());
    let count = std::env::var("RNMU_LUA_DIFF_COUNT").unwrap_or_else(|_| "100000".into());
    eprintln!("random corpus: seed {seed}, {count} cases");
    compare(&["random", &seed, &count]);
}

/// The patch applies to the `lstrlib.c` of the Lua the tool links, as
/// `build.rs` applies it, and the reference interpreter is built from that
/// same folder.
#[test]
fn the_patch_applies_to_the_linked_luas_lstrlib() {
    let lua = super::lua_patch::locate(root()).expect("lua-src's sources");
    reference();
    let source = std::fs::read_to_string(root().join("target/ref-lua/source")).expect("source");
    assert_eq!(
        Path::new(source.trim()),
        lua,
        "the reference is another Lua"
    );
    let lstrlib = std::fs::read_to_string(lua.join("lstrlib.c")).expect("lstrlib.c");
    let patch = std::fs::read_to_string(root().join("src/hooks/patterns.patch")).expect("patch");
    let patched = super::lua_patch::apply(&lstrlib, &patch, "lstrlib.c").expect("applies");
    assert!(patched.contains("rnmu_checkclock") && patched.contains("RNMU_STEP(&ms,"));
    assert_eq!(
        patched.matches("[rnmu]").count(),
        patch
            .lines()
            .filter(|l| l.starts_with('+') && l.contains("[rnmu]"))
            .count()
    );
}

/// A `lua-src` whose `lstrlib.c` moved on fails the build, naming the hunk,
/// the file and the lines it looked for.
#[test]
fn a_patch_that_no_longer_applies_says_what_to_look_at() {
    let lua = super::lua_patch::locate(root()).expect("lua-src's sources");
    let lstrlib = std::fs::read_to_string(lua.join("lstrlib.c")).expect("lstrlib.c");
    let patch = std::fs::read_to_string(root().join("src/hooks/patterns.patch")).expect("patch");
    let moved = lstrlib.replace(
        "static const char *lmemfind (const char *s1, size_t l1,",
        "static const char *lmemfind (const char *s1, size_t len1,",
    );
    assert_ne!(
        moved, lstrlib,
        "the line this test changes is gone from lstrlib.c"
    );
    let err = super::lua_patch::apply(&moved, &patch, "lua-5.4.9/lstrlib.c").unwrap_err();
    assert!(
        err.contains("hunk ")
            && err.contains("does not apply")
            && err.contains("lua-5.4.9/lstrlib.c")
            && err.contains("lmemfind"),
        "{err}"
    );
    // And a file that is not Lua's at all.
    assert!(super::lua_patch::apply("int x;\n", &patch, "x.c").is_err());
}

/// Four builders started at once on an empty folder (as parallel tests on a
/// fresh clone start them): every one gets a working interpreter.
#[test]
fn builders_at_once_all_get_a_working_interpreter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ref-lua");
    let builders: Vec<_> = (0..4)
        .map(|_| {
            Command::new(root().join("scripts/ref-lua"))
                .env("REF_LUA_DIR", &out)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start scripts/ref-lua")
        })
        .collect();
    let probe = dir.path().join("probe.lua");
    std::fs::write(&probe, "return ('%d'):format(6 * 7)").expect("probe");
    for b in builders {
        let done = b.wait_with_output().expect("wait");
        assert!(
            done.status.success(),
            "a builder failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let bin = PathBuf::from(String::from_utf8_lossy(&done.stdout).trim());
        let ran = Command::new(&bin).arg(&probe).output().expect("run it");
        assert_eq!(
            (ran.status.success(), ran.stdout.as_slice()),
            (true, &b"42"[..])
        );
    }
    let left: Vec<_> = std::fs::read_dir(&out)
        .expect("out")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
