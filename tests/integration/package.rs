//! The Debian package, as `scripts/package` builds it: unpacked into a
//! temporary root (nothing is installed on this machine), it holds every
//! file it lists, leaves Synapse's own `/usr/bin/register_new_matrix_user`
//! alone, and its binary and hooks register a user on the rig.

use crate::{fresh, synapse};
use std::process::Command;

#[test]
fn the_debian_package_holds_a_working_tool() {
    let root = crate::rig::root();
    let built = Command::new("bash")
        .arg(root.join("scripts/package"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&built.stderr);
    // lintian ran, and found no error (scripts/package fails on one).
    assert!(
        Command::new("lintian").arg("--version").output().is_ok(),
        "lintian is missing: scripts/test-deps.sh installs it"
    );
    assert!(built.status.success(), "scripts/package failed:\n{stderr}");
    assert!(!stderr.contains("\nE: "), "{stderr}");
    let deb = root.join(
        String::from_utf8_lossy(&built.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    assert!(deb.to_string_lossy().ends_with(".deb"), "{deb:?}");

    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for path in [
        "./usr/bin/register-new-matrix-user",
        "./usr/lib/register-new-matrix-user/bin/register_new_matrix_user",
        "./usr/share/register-new-matrix-user/hooks/generate-password.lua",
        "./usr/share/register-new-matrix-user/hooks/username-policy.lua",
        "./usr/share/register-new-matrix-user/hooks/welcome.lua",
        "./usr/share/doc/register-new-matrix-user/README.md",
        "./usr/share/doc/register-new-matrix-user/hooks.md",
        "./usr/share/doc/register-new-matrix-user/desired-state.md",
        "./usr/share/man/man1/register-new-matrix-user.1.gz",
        "./usr/share/bash-completion/completions/register-new-matrix-user",
        "./usr/share/bash-completion/completions/register_new_matrix_user",
        "./usr/share/fish/vendor_completions.d/register_new_matrix_user.fish",
        "./usr/share/lintian/overrides/register-new-matrix-user",
        "./usr/share/doc/register-new-matrix-user/changelog.Debian.gz",
        "./usr/share/zsh/vendor-completions/_register-new-matrix-user",
        "./usr/share/fish/vendor_completions.d/register-new-matrix-user.fish",
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.ends_with(path) || l.contains(&format!("{path} -> "))),
            "{path} missing:\n{listing}"
        );
    }
    // No file conflict with Synapse's packages, which own this path.
    assert!(
        !listing.contains("./usr/bin/register_new_matrix_user"),
        "{listing}"
    );

    // The drop-in name is the same binary, by a relative link.
    assert!(
        listing.lines().any(|l| l.ends_with(
            "./usr/lib/register-new-matrix-user/bin/register_new_matrix_user -> ../../../bin/register-new-matrix-user"
        )),
        "{listing}"
    );

    let dir = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(x.success());
    let bin = dir.path().join("usr/bin/register-new-matrix-user");
    let hook = dir
        .path()
        .join("usr/share/register-new-matrix-user/hooks/generate-password.lua");
    let s = synapse();
    let user = fresh("deb");
    let out = Command::new(&bin)
        .args(["-u", &user, "--no-admin", "--json", "--hook"])
        .arg(&hook)
        .args(["-k", &s.secret, &s.url])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s.login(&user, v["password"].as_str().unwrap()).is_some());
    // The man page is the binary's own.
    let man = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc {}",
            dir.path()
                .join("usr/share/man/man1/register-new-matrix-user.1.gz")
                .display()
        ))
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&man.stdout).replace("\\-", "-");
    // One name throughout the man page.
    assert!(!man.contains("register_new_matrix_user ["), "{man}");
    // Run as the drop-in, it speaks under that name.
    let dropin = dir
        .path()
        .join("usr/lib/register-new-matrix-user/bin/register_new_matrix_user");
    let usage = Command::new(&dropin).arg("--bogus").output().unwrap();
    let usage = String::from_utf8_lossy(&usage.stderr);
    assert!(
        usage.contains("Usage: register_new_matrix_user "),
        "{usage}"
    );
    assert!(man.contains(".TH register-new-matrix-user 1") && man.contains("--shared-secret-file"));
}
