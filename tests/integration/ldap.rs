//! A directory as the source of truth, against Debian's real OpenLDAP slapd
//! (`scripts/ldap_rig.py`: mdb, the memberOf overlay or not, LDAPS with a
//! rig-made CA, a size limit of 500 that only paging gets past) and a
//! Synapse of these tests' own (a prune reads every account of it; no rate
//! limit is changed). The directory is changed between runs with
//! `ldapmodify`, as an admin would, and each change must show in the plan
//! as exactly that change, be made by `--ensure`, and leave a rerun with
//! nothing to do.

use crate::rig::Synapse;
use crate::{Test, fresh};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct Directory {
    pub info: Value,
    _child: Mutex<std::process::Child>,
}

impl Directory {
    fn start(args: &[&str]) -> Directory {
        let mut child = Command::new("python3")
            .arg(crate::rig::root().join("scripts/ldap_rig.py"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/ldap_rig.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the LDAP rig did not start ({e}): {line:?}"));
        Directory {
            info,
            _child: Mutex::new(child),
        }
    }

    pub fn get(&self, k: &str) -> String {
        self.info[k].as_str().unwrap_or_default().to_string()
    }

    /// Applies LDIF as the directory's admin, as `ldapmodify` does.
    pub fn modify(&self, ldif: &str) {
        let pw = std::fs::read_to_string(self.get("admin_password_path")).unwrap();
        let mut c = Command::new("ldapmodify")
            // -M: a referral object is changed as an entry, not followed.
            .args([
                "-x",
                "-M",
                "-H",
                &self.get("url"),
                "-D",
                &self.get("admin_dn"),
            ])
            .args(["-w", pw.trim()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success(), "ldapmodify:\n{ldif}");
    }
}

/// The directory of 2,000 people with the memberOf overlay, and the lock
/// the tests hold while they change it.
fn directory() -> (&'static Directory, MutexGuard<'static, ()>) {
    static D: OnceLock<Directory> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    (D.get_or_init(|| Directory::start(&[])), guard)
}

fn server() -> &'static Synapse {
    crate::synapse_with("ldap", json!({}))
}

/// A config with the `ldap:` block for `d`, plus `extra` YAML lines in it.
fn config(dir: &Path, d: &Directory, url: &str, extra: &str) -> PathBuf {
    let p = dir.join("ldap.yaml");
    std::fs::write(
        &p,
        format!(
            "register_new_matrix_user:\n  ldap:\n    url: {url}\n    bind_dn: {}\n    \
             bind_password_path: {}\n    base: ou=people,{}\n    ca_file: {}\n    \
             admin_group: cn=matrix-admins,ou=groups,{base}\n    disabled_group: \
             cn=disabled,ou=groups,{base}\n    external_ids: {{auth_provider: oidc-corp, \
             attribute: entryUUID}}\n{extra}",
            d.get("bind_dn"),
            d.get("bind_password_path"),
            d.get("base"),
            d.get("ca"),
            base = d.get("base"),
        ),
    )
    .unwrap();
    p
}

fn tool(s: &Synapse, cfg: &Path) -> Test {
    Test::new().args([
        "-c",
        s.config.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
        "--admin-token-file",
        &s.admin_token_file(),
        "-j",
        "8",
        &s.url,
    ])
}

fn plan(s: &Synapse, cfg: &Path, extra: &[&str]) -> crate::Run {
    tool(s, cfg)
        .args(["--ensure", "--plan", "--batch", "ldap:"])
        .args(extra.iter().copied())
        .run()
}

fn ensure(s: &Synapse, cfg: &Path, extra: &[&str]) -> crate::Run {
    tool(s, cfg)
        .args(["--ensure", "--batch", "ldap:"])
        .args(extra.iter().copied())
        .run()
}

/// The plan's lines that change something.
fn changes(run: &crate::Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|l| !l.ends_with("nothing to change"))
        .map(str::to_string)
        .collect()
}

fn person(i: usize) -> String {
    format!("person{i:04}")
}

#[test]
fn the_directory_is_kept_in_step_change_by_change() {
    let (d, _lock) = directory();
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let base = d.get("base");
    let cfg = config(dir.path(), d, &d.get("ldaps"), "");
    // Everyone, past the server's size limit of 500: paged. (Another test
    // of this directory may have created some of them already.)
    let run = ensure(s, &cfg, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("batch: 2000 rows"), "{}", run.stderr);
    assert!(s.is_admin(&person(0)) && !s.is_admin(&person(2)));
    assert_eq!(s.emails(&person(7)), [format!("{}@rig.test", person(7))]);
    let nothing = |why: &str| {
        let run = plan(s, &cfg, &["--prune"]);
        assert_eq!(run.code, 0, "{why}: {}\n{}", run.stdout, run.stderr);
    };
    nothing("after the first sync");

    // Each change an admin makes, one at a time.
    let steps: Vec<(String, String, String)> = vec![
        (
            "a rename".into(),
            format!(
                "dn: uid={},ou=people,{base}\nchangetype: modify\nreplace: cn\ncn: Renamed Person\n",
                person(3)
            ),
            format!(
                "~ {}: displayname \"Person 0003\" -> \"Renamed Person\"",
                s.user_id(&person(3))
            ),
        ),
        (
            "an email".into(),
            format!(
                "dn: uid={},ou=people,{base}\nchangetype: modify\nreplace: mail\nmail: new4@rig.test\n",
                person(4)
            ),
            format!(
                "~ {}: emails [person0004@rig.test] -> [new4@rig.test]",
                s.user_id(&person(4))
            ),
        ),
        (
            "an admin added".into(),
            format!(
                "dn: cn=matrix-admins,ou=groups,{base}\nchangetype: modify\nadd: member\nmember: uid={},ou=people,{base}\n",
                person(5)
            ),
            format!("~ {}: admin no -> yes", s.user_id(&person(5))),
        ),
        (
            "an admin removed from the group".into(),
            format!(
                "dn: cn=matrix-admins,ou=groups,{base}\nchangetype: modify\ndelete: member\nmember: uid={},ou=people,{base}\n",
                person(1)
            ),
            format!("~ {}: admin yes -> no", s.user_id(&person(1))),
        ),
        (
            "one disabled".into(),
            format!(
                "dn: cn=disabled,ou=groups,{base}\nchangetype: modify\nadd: member\nmember: uid={},ou=people,{base}\n",
                person(6)
            ),
            format!("- {}: deactivate", s.user_id(&person(6))),
        ),
        (
            "one deleted".into(),
            format!(
                "dn: uid={},ou=people,{base}\nchangetype: delete\n",
                person(8)
            ),
            format!(
                "- {}: deactivate (not in the inventory)",
                s.user_id(&person(8))
            ),
        ),
    ];
    // Each plan shows exactly its change, so the one after it also shows
    // that the change before was made and nothing else is left.
    for (what, ldif, want) in steps {
        d.modify(&ldif);
        let run = plan(s, &cfg, &["--prune"]);
        assert_eq!(run.code, 4, "{what}: {}", run.stderr);
        assert_eq!(changes(&run), [want], "{what}");
        let run = ensure(s, &cfg, &["--prune", "-q"]);
        assert_eq!(run.code, 0, "{what}: {}", run.stderr);
    }
    nothing("after the last change");
    assert_eq!(s.user(&person(3)).unwrap()["displayname"], "Renamed Person");
    assert_eq!(s.emails(&person(4)), ["new4@rig.test"]);
    assert!(s.is_admin(&person(5)) && !s.is_admin(&person(1)));
    for p in [6, 8] {
        assert_eq!(s.user(&person(p)).unwrap()["deactivated"], true, "{p}");
    }
}

/// A JPEG of one pixel.
const JPEG: &str = "ffd8ffe000104a46494600010101004800480000ffdb004300ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc2000b080001000101011100ffc40014100100000000000000000000000000000000ffda0008010100013f10";

#[test]
fn a_photo_becomes_the_avatar_and_a_photo_that_is_no_image_is_refused() {
    let (d, _lock) = directory();
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let base = d.get("base");
    let cfg = config(dir.path(), d, &d.get("ldaps"), "");
    // The tool's temporary files go to a directory of this test's own.
    let run_with = |extra: &[&str]| {
        tool(s, &cfg)
            .env("TMPDIR", tmp.to_str().unwrap())
            .args(["--ensure", "--batch", "ldap:"])
            .args(extra.iter().copied())
            .run()
    };
    let run = run_with(&["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let who = person(9);
    let dn = format!("uid={who},ou=people,{base}");
    let jpeg: Vec<u8> = (0..JPEG.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&JPEG[i..i + 2], 16).unwrap())
        .collect();
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, &jpeg).unwrap();
    d.modify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:< file://{}\n",
        photo.display()
    ));
    let run = run_with(&["--plan"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let lines = changes(&run);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "~ {}: avatar none -> \"{}/rnmu-photos.",
            s.user_id(&who),
            tmp.display()
        )) && lines[0].ends_with(".jpg\""),
        "{lines:?}"
    );
    let run = run_with(&["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mxc = s.user(&who).unwrap()["avatar_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(s.media(&mxc), jpeg, "the avatar is the entry's photo");
    // The same photo again is no change.
    let run = run_with(&["--plan"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // A photo that is not an image refuses that row, in one line.
    std::fs::write(&photo, "not a photo at all").unwrap();
    d.modify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:< file://{}\n",
        photo.display()
    ));
    let run = run_with(&["-q"]);
    d.modify(&format!(
        "dn: {dn}\nchangetype: modify\ndelete: jpegPhoto\n"
    ));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "the jpegPhoto of the entry {dn} is not a PNG, JPEG, GIF or WebP image"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(s.user(&who).unwrap()["avatar_url"], mxc.as_str());
    // Every run removed the photos it staged.
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left in the temporary directory: {left:?}");
}

#[test]
fn without_the_memberof_overlay_groups_come_from_their_members() {
    static D: OnceLock<Directory> = OnceLock::new();
    let d = D.get_or_init(|| Directory::start(&["--no-memberof", "--people", "30"]));
    // Its people share names with the other directory's: a server apart.
    let s = crate::synapse_with("ldap-nomemberof", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("nomo");
    // A room for engineering (every tenth person); base on this server.
    let (_, alias) = s.make_room(&format!("{tag}eng"), false);
    let cfg = config(
        dir.path(),
        d,
        &d.get("url"),
        &format!(
            "    groups_from: member\n    filter: (uid=person000*)\n    rooms_from_groups:\n      \
             cn=engineering,ou=groups,{}: [\"{alias}\"]\n",
            d.get("base")
        ),
    );
    let run = plan(s, &cfg, &[]);
    assert!(run.code == 4 || run.code == 0, "{}", run.stderr);
    let run = ensure(s, &cfg, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(s.is_admin(&person(0)));
    assert!(!s.is_admin(&person(2)));
    assert!(
        s.joined_rooms(&person(0)).iter().any(|r| !r.is_empty()),
        "engineering's room"
    );
    assert!(s.joined_rooms(&person(3)).is_empty());
    assert_eq!(plan(s, &cfg, &[]).code, 0);
}

/// A search that does not come back whole prunes nobody, each way it can
/// fail; a bind that fails does nothing at all.
#[test]
fn a_failed_or_partial_search_prunes_nobody() {
    let (d, _lock) = directory();
    // Its outsider must not be another test's to prune: a server apart.
    let s = crate::synapse_with("ldap-partial", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let tag = fresh("part");
    // Someone the directory does not have, who a whole read would prune.
    let outsider = format!("{tag}outsider");
    s.register_directly(&outsider, "pw-outsider-1", false);
    let active = |u: &str| s.user(u).unwrap()["deactivated"] == json!(false);
    let url = d.get("url");
    let base = d.get("base");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "a size limit hit",
            "    page_size: 1000\n".to_string(),
            "did not end whole".into(),
        ),
        (
            "a search that returns nothing",
            "    filter: (uid=nobody-at-all)\n".into(),
            "no rows".into(),
        ),
    ];
    // Planned: the refusal is the same code as under --ensure, whose own
    // run is the dropped connection's below.
    for (what, extra, why) in cases {
        let cfg = config(dir.path(), d, &url, &extra);
        let run = plan(s, &cfg, &["--prune", "--prune-max", "100000"]);
        assert_eq!(run.code, 5, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(&why), "{what}: {}", run.stderr);
        assert!(active(&outsider), "{what}");
    }
    // A referral it cannot follow.
    d.modify(&format!(
        "dn: ou=elsewhere,ou=people,{base}\nchangetype: add\nobjectClass: referral\n\
         objectClass: extensibleObject\nou: elsewhere\nref: ldap://127.0.0.1:9/ou=people,{base}\n"
    ));
    let cfg = config(dir.path(), d, &url, "");
    let run = plan(s, &cfg, &["--prune", "--prune-max", "100000"]);
    d.modify(&format!(
        "dn: ou=elsewhere,ou=people,{base}\nchangetype: delete\n"
    ));
    assert_eq!(run.code, 5, "a referral: {}", run.stderr);
    assert!(run.stderr.contains("referral"), "{}", run.stderr);
    assert!(active(&outsider));
    // A connection dropped midway: a proxy that cuts it after 64 KiB.
    let cut = cutting_proxy(&url, 64 * 1024);
    let cfg = config(dir.path(), d, &cut, "");
    let run = ensure(s, &cfg, &["--prune", "--prune-max", "100000"]);
    assert_eq!(run.code, 5, "a dropped connection: {}", run.stderr);
    assert!(run.stderr.contains("broke off"), "{}", run.stderr);
    assert!(active(&outsider));
    // A bind refused: one line, nothing done.
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, "wrong-password\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = config(dir.path(), d, &url, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&d.get("bind_password_path"), bad.to_str().unwrap());
    std::fs::write(&cfg, text).unwrap();
    let run = ensure(s, &cfg, &["--prune"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("refused the bind"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-password"));
    assert!(active(&outsider));
}

/// A search past the server's time limit prunes nobody (a directory of
/// its own, whose every operation is slow).
#[test]
fn a_search_past_the_time_limit_prunes_nobody() {
    let d = Directory::start(&["--no-memberof", "--people", "5", "--time-limit"]);
    let s = crate::synapse_with("ldap-partial", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let outsider = format!("{}outsider", fresh("slow"));
    s.register_directly(&outsider, "pw-outsider-2", false);
    let cfg = config(dir.path(), &d, &d.get("url"), "");
    let run = ensure(s, &cfg, &["--prune", "--prune-max", "100000"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("did not end whole (result 3"),
        "{}",
        run.stderr
    );
    assert_eq!(s.user(&outsider).unwrap()["deactivated"], false);
}

/// A TCP proxy to `url`'s server that passes `limit` bytes of answers, then
/// drops the connection.
fn cutting_proxy(url: &str, limit: usize) -> String {
    use std::io::Read;
    let upstream = url.trim_start_matches("ldap://").to_string();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let server = std::net::TcpStream::connect(&upstream).unwrap();
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                });
                let (mut s_in, mut c_out) = (server, client);
                let mut passed = 0;
                let mut buf = [0u8; 8192];
                while passed < limit {
                    let Ok(n) = s_in.read(&mut buf) else { break };
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    passed += n;
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    format!("ldap://{addr}")
}

/// The README's directory commands and its cron line, as written, and the
/// directory hook example of docs/hooks.md, against a directory and server of their
/// own.
#[test]
fn the_readme_directory_commands_and_the_hook_example_do_what_they_say() {
    static D: OnceLock<Directory> = OnceLock::new();
    let d = D.get_or_init(|| Directory::start(&["--people", "40"]));
    let s = crate::synapse_with("ldap-readme", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let base = d.get("base");
    let (_, alias) = s.make_room("engineering", false);
    d.modify(&format!(
        "dn: uid=svc-backup,ou=people,{base}\nchangetype: add\nobjectClass: inetOrgPerson\n\
         uid: svc-backup\ncn: Backups\nsn: svc\n"
    ));
    let cfg = config(dir.path(), d, &d.get("ldaps"), "");
    std::fs::copy(&cfg, dir.path().join("directory.yaml")).unwrap();
    std::fs::copy(&s.config, dir.path().join("homeserver.yaml")).unwrap();
    std::fs::copy(s.admin_token_file(), dir.path().join("admin.token")).unwrap();
    let readme = std::fs::read_to_string(crate::rig::root().join("README.md")).unwrap();
    let mut commands: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("register_new_matrix_user ") && l.contains("--batch ldap:"))
        .map(str::to_string)
        .collect();
    let cron = readme
        .lines()
        .find(|l| l.starts_with("*/15 ") && l.contains("--batch ldap:"))
        .expect("the README's cron line");
    // The cron line: five schedule fields and the user, then the command.
    commands.push(cron.splitn(7, ' ').nth(6).unwrap().to_string());
    assert_eq!(commands.len(), 3, "{commands:?}");
    let bin = assert_cmd::cargo::cargo_bin!("register_new_matrix_user");
    let sh = |cmd: &str, extra: &str| {
        let cmd = format!(
            "{} {} {extra}",
            bin.display(),
            &cmd["register_new_matrix_user ".len()..]
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = sh(&commands[0], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        out.contains(&format!("+ {}: create", s.user_id("person0000"))),
        "{out}"
    );
    // The docs' hook: the service account stays out, engineering joins.
    let hooks_md = std::fs::read_to_string(crate::rig::root().join("docs/hooks.md")).unwrap();
    let hook_code = hooks_md
        .split("```lua\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("departmentNumber"))
        .expect("docs/hooks.md's directory example")
        .replace("example.org", &s.server_name);
    let hook = dir.path().join("directory.lua");
    std::fs::write(&hook, hook_code).unwrap();
    let with_hook = format!("--hook {}", hook.display());
    let (code, _, err) = sh(&commands[1], &with_hook);
    assert_eq!(code, Some(0), "{err}");
    assert!(s.user("svc-backup").is_none(), "a service account was made");
    assert_eq!(
        s.joined_rooms("person0010").len(),
        1,
        "engineering's room {alias}"
    );
    assert!(s.joined_rooms("person0011").is_empty());
    assert!(s.is_admin("person0001"));
    let results = std::fs::read_to_string(dir.path().join("directory.results.jsonl")).unwrap();
    let secret = std::fs::read_to_string(d.get("bind_password_path")).unwrap();
    assert!(!results.contains(secret.trim()) && !err.contains(secret.trim()));
    // Someone leaves; the cron line's run deactivates them, quietly.
    d.modify(&format!(
        "dn: uid=person0039,ou=people,{base}\nchangetype: delete\n"
    ));
    let (code, out, err) = sh(&commands[2], &with_hook);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty() && err.is_empty(), "-q: {out}{err}");
    assert_eq!(s.user("person0039").unwrap()["deactivated"], true);
    let (code, out, err) = sh(&commands[0], &with_hook);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// docs/limits.md's bound: reading a directory of 20,000 entries (paged
/// past its size limit of 500, every row through the pipeline up to
/// signing) stays within 32 MiB, and takes little more than a tenth of it.
#[test]
fn twenty_thousand_entries_read_within_the_memory_bound() {
    let small = Directory::start(&["--people", "2000"]);
    let big = Directory::start(&["--people", "20000"]);
    let s = crate::synapse();
    let dir = tempfile::tempdir().unwrap();
    let peak = |d: &Directory, name: &str| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let cfg = config(&sub, d, &d.get("url"), "");
        let (code, err, kib) = crate::peak_kib(
            &[
                "-c",
                s.config.to_str().unwrap(),
                "-c",
                cfg.to_str().unwrap(),
                "--dry-run",
                "--batch",
                "ldap:",
                "-q",
                &s.url,
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        kib
    };
    let (k2, k20) = (peak(&small, "small"), peak(&big, "big"));
    assert!(k20 < 32 * 1024, "{k20} KiB for 20,000 entries");
    assert!(
        k20 < k2 + 8 * 1024,
        "{k2} KiB for 2,000, {k20} KiB for 20,000"
    );
}

/// The directory through MAS (the stub, or the real MAS when
/// `RNMU_TEST_MAS_BIN` is set): the people become MAS users, the admins'
/// flag is MAS's, and a rerun has nothing to do.
#[test]
fn a_directory_syncs_through_mas() {
    let stub = crate::mas_stub::Stub::start();
    static D: OnceLock<Directory> = OnceLock::new();
    let d = D.get_or_init(|| Directory::start(&["--people", "12"]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        d,
        &d.get("url"),
        "    attributes: {displayname: null, emails: null}\n    external_ids: null\n",
    );
    let run = |extra: &[&str]| {
        Test::new()
            .args(["-c", cfg.to_str().unwrap()])
            .args(["--mas-client-id", crate::mas_stub::CLIENT_ID])
            .args(["--mas-client-secret-file", &stub.secret_file(dir.path())])
            .args(["--ensure", "--batch", "ldap:"])
            .args(extra.iter().copied())
            .arg(stub.synapse_url.clone())
            .run()
    };
    let first = run(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    for i in 0..12 {
        let u = stub
            .user(&person(i))
            .unwrap_or_else(|| panic!("{} not in MAS", person(i)));
        assert_eq!(u.admin, i < 2, "{}", person(i));
    }
    let again = run(&["--plan"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

/// TLS: StartTLS on the plain port and LDAPS both verify the server against
/// `ca_file`; without the rig's CA, the certificate is refused, one line.
#[test]
fn starttls_and_ldaps_trust_only_the_given_ca() {
    static D: OnceLock<Directory> = OnceLock::new();
    let d = D.get_or_init(|| Directory::start(&["--people", "5"]));
    let s = crate::synapse();
    let dir = tempfile::tempdir().unwrap();
    let starttls = config(dir.path(), d, &d.get("url"), "    starttls: true\n");
    let run = plan(s, &starttls, &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("5 to create"), "{}", run.stderr);
    let ldaps = config(dir.path(), d, &d.get("ldaps"), "");
    let untrusted = std::fs::read_to_string(&ldaps)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("ca_file:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    std::fs::write(&ldaps, untrusted).unwrap();
    let run = plan(s, &ldaps, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the directory"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

/// The bind password's file is one of the run's secret files: no row may
/// name it as an avatar.
#[test]
fn the_bind_password_file_is_never_an_avatar() {
    let (d, _lock) = directory();
    let s = crate::synapse();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), d, &d.get("url"), "");
    let rows = dir.path().join("rows.jsonl");
    let u = fresh("ldapav");
    std::fs::write(
        &rows,
        format!(
            "{}\n",
            json!({"username": u, "password": "pw-ldapav-1", "avatar": d.get("bind_password_path")})
        ),
    )
    .unwrap();
    let run = tool(s, &cfg)
        .args(["--ensure", "--batch", rows.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("secret files"), "{}", run.stderr);
    assert!(s.user(&u).is_none());
}

/// The bind password shows nowhere, at the highest verbosity: not in the
/// output, not in the results file, whether the bind works or is refused.
#[test]
fn the_bind_password_never_shows_at_any_verbosity() {
    let (d, _lock) = directory();
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let pw = std::fs::read_to_string(d.get("bind_password_path"))
        .unwrap()
        .trim()
        .to_string();
    let cfg = config(
        dir.path(),
        d,
        &d.get("url"),
        "    filter: (uid=person000*)\n",
    );
    let results = dir.path().join("results.jsonl");
    let run = tool(s, &cfg)
        .args(["--ensure", "-vv", "--batch", "ldap:", "--output"])
        .arg(results.to_str().unwrap())
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.never_shows(std::slice::from_ref(&pw));
    let written = std::fs::read_to_string(&results).unwrap();
    assert!(
        !written.contains(&pw),
        "the results file holds the bind password"
    );
    // Refused: the wrong password is not shown either.
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, "another-wrong-one\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&d.get("bind_password_path"), bad.to_str().unwrap());
    std::fs::write(&cfg, text).unwrap();
    let run = tool(s, &cfg)
        .args(["--ensure", "-vv", "--batch", "ldap:"])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.never_shows(&[pw, "another-wrong-one".into()]);
}
