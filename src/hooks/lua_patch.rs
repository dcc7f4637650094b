//! The project's change to Lua's own `lstrlib.c` (`src/hooks/patterns.patch`:
//! a step count and the hook's deadline inside pattern matching), applied at
//! build time to the sources of the `lua-src` crate that `mlua` vendors.
//! `build.rs` and the tests share this file: where the sources are, and the
//! patch applied to them, failing loudly when the text it expects is gone.

use std::path::{Path, PathBuf};

/// The `lua-src` version that `Cargo.lock` resolved.
pub fn lua_src_version(manifest_dir: &Path) -> Result<String, String> {
    let lock = std::fs::read_to_string(manifest_dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"lua-src\"" {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = \""))
            {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("Cargo.lock resolves no lua-src package (mlua's vendored Lua)".into())
}

/// The folder of Lua 5.4's sources in the `lua-src` package the build
/// resolved: `$RNMU_LUA_SRC` if set, else the package in Cargo's registry.
pub fn locate(manifest_dir: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RNMU_LUA_SRC") {
        return Ok(PathBuf::from(dir));
    }
    let version = lua_src_version(manifest_dir)?;
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h),
        None => {
            PathBuf::from(std::env::var_os("HOME").ok_or("neither CARGO_HOME nor HOME is set")?)
                .join(".cargo")
        }
    };
    let registry = home.join("registry/src");
    let mut found = Vec::new();
    for index in std::fs::read_dir(&registry)
        .map_err(|e| format!("cannot read {}: {e}", registry.display()))?
        .flatten()
    {
        let package = index.path().join(format!("lua-src-{version}"));
        let Ok(entries) = std::fs::read_dir(&package) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("lua-5.4.") {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "lua-src {version}'s Lua 5.4 sources are not under {}: fetch the crates \
             (cargo fetch --locked), or set RNMU_LUA_SRC to the folder holding lstrlib.c",
            registry.display()
        )),
        many => Err(format!(
            "lua-src {version} holds more than one Lua 5.4 ({}): set RNMU_LUA_SRC to the one \
             mlua builds",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `patch` (a unified diff) applied to `source`. Each hunk's lines of
/// context and removal must stand in `source` as they are, after the
/// previous hunk; where they do not, the error names the hunk, its line in
/// the patch and the text it looked for. `what` names the source in errors.
pub fn apply(source: &str, patch: &str, what: &str) -> Result<String, String> {
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let mut out = String::with_capacity(source.len() + patch.len());
    let mut at = 0usize;
    let mut hunks = 0usize;
    let patch_lines: Vec<&str> = patch.lines().collect();
    let mut i = 0;
    while i < patch_lines.len() {
        let header = patch_lines[i];
        i += 1;
        let Some(range) = header.strip_prefix("@@ -") else {
            continue;
        };
        hunks += 1;
        let header_line = i;
        let expected: usize = range
            .split([',', ' '])
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                format!("patch line {header_line}: a hunk header without a line number")
            })?;
        let (mut old, mut new) = (Vec::new(), Vec::new());
        while i < patch_lines.len() && !patch_lines[i].starts_with("@@ ") {
            let l = patch_lines[i];
            i += 1;
            match l.split_at_checked(1) {
                Some((" ", rest)) => {
                    old.push(rest);
                    new.push(rest);
                }
                Some(("-", rest)) => old.push(rest),
                Some(("+", rest)) => new.push(rest),
                // An empty context line, as some editors leave it.
                None => {
                    old.push("");
                    new.push("");
                }
                _ => {}
            }
        }
        let matches_at = |start: usize| {
            start + old.len() <= lines.len()
                && old
                    .iter()
                    .zip(&lines[start..])
                    .all(|(want, have)| have.trim_end_matches(['\n', '\r']) == *want)
        };
        // Nearest to the line the hunk names, at or after the last hunk.
        let want = expected.saturating_sub(1).max(at);
        let start = (0..lines.len().max(1))
            .flat_map(|d| [want.checked_add(d), want.checked_sub(d)])
            .flatten()
            .filter(|s| *s >= at && *s <= lines.len())
            .find(|s| matches_at(*s))
            .ok_or_else(|| {
                // The first line that differs where the hunk says it is.
                let (n, line) = old
                    .iter()
                    .enumerate()
                    .find(|(k, l)| {
                        lines
                            .get(want + k)
                            .is_none_or(|have| have.trim_end_matches(['\n', '\r']) != **l)
                    })
                    .map_or((want, ""), |(k, l)| (want + k, *l));
                format!(
                    "the patch's hunk {hunks} (patch line {header_line}) does not apply to \
                     {what}: it expects {line:?} at line {} and finds {:?}. Lua's sources \
                     changed under the patch: compare src/hooks/patterns.patch with {what} and \
                     bring the patch up to date",
                    n + 1,
                    lines
                        .get(n)
                        .map(|l| l.trim_end_matches(['\n', '\r']))
                        .unwrap_or("the end of the file")
                )
            })?;
        out.extend(lines[at..start].iter().copied());
        for l in &new {
            out.push_str(l);
            out.push('\n');
        }
        at = start + old.len();
    }
    if hunks == 0 {
        return Err("the patch holds no hunk".into());
    }
    out.extend(lines[at..].iter().copied());
    Ok(out)
}
