//! The whole server as state, against a real Synapse of these tests' own
//! (export and prune read every account of it): `--export` writes an
//! inventory a plan then finds nothing to change in; `--prune` deactivates
//! or locks who the inventory leaves out, within its bound, never on an
//! inventory that failed to read; `active: true` reactivates; and
//! `external_ids` links SSO identities, never taking one from another
//! account.
//!
//! The server allows guests (`allow_guest_access`) and has one application
//! service, so an export has both kinds to leave out; no rate limit is
//! changed.

use crate::ensure::lines;
use crate::rig::{Synapse, enc};
use crate::{Test, fresh};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

const AS_TOKEN: &str = "as-token-for-the-state-tests-0001";

/// The server, and the lock every test of this file holds while it runs:
/// an export or a prune reads every account, so no other test may add one
/// meanwhile.
fn server() -> (&'static Synapse, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    static AS_DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = AS_DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("bridge.yaml"),
            format!(
                "id: bridge\nurl: null\nas_token: {AS_TOKEN}\nhs_token: hs-token-state-0001\n\
                 sender_localpart: bridgebot\nnamespaces:\n  users:\n    - exclusive: true\n      \
                 regex: '@bridge_.*'\n  rooms: []\n  aliases: []\n"
            ),
        )
        .unwrap();
        d
    });
    let s = crate::synapse_with(
        "state",
        json!({
            "allow_guest_access": true,
            "app_service_config_files": [dir.path().join("bridge.yaml")],
        }),
    );
    (s, guard)
}

fn token_file(s: &Synapse) -> String {
    s.admin_token_file()
}

fn tool(s: &Synapse) -> Test {
    Test::new().args([
        "--admin-token-file",
        &token_file(s),
        "-k",
        &s.secret,
        &s.url,
    ])
}

fn put_user(s: &Synapse, localpart: &str, body: Value) {
    let (status, answer) = s.client(
        "PUT",
        &format!("/_synapse/admin/v2/users/{}", enc(&s.user_id(localpart))),
        &s.admin_token,
        Some(body),
    );
    assert!(status == 200 || status == 201, "{status} {answer}");
}

fn user(s: &Synapse, localpart: &str) -> Value {
    s.user(localpart).unwrap()
}

fn export(s: &Synapse, file: &Path) -> crate::Run {
    let run = tool(s).args(["--export", file.to_str().unwrap()]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run
}

fn plan(s: &Synapse, file: &Path, extra: &[&str]) -> crate::Run {
    tool(s)
        .args(["--ensure", "--plan", "--batch", file.to_str().unwrap()])
        .args(extra.iter().copied())
        .run()
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
}

/// Every kind of account there is, one each, made through the server's own
/// APIs; the user IDs of those an export leaves out (guest, bridge).
fn populate(s: &Synapse, tag: &str) -> (String, String) {
    let admin = format!("{tag}admin");
    s.register_directly(&admin, "pw-state-admin-1", true);
    let bot = format!("{tag}bot");
    s.register_directly(&bot, "pw-state-bot-1", false);
    put_user(
        s,
        &bot,
        json!({"user_type": "bot", "displayname": "The Bot"}),
    );
    let locked = format!("{tag}locked");
    s.register_directly(&locked, "pw-state-locked-1", false);
    put_user(s, &locked, json!({"locked": true}));
    let gone = format!("{tag}gone");
    s.register_directly(&gone, "pw-state-gone-1", false);
    put_user(s, &gone, json!({"deactivated": true}));
    let rich = format!("{tag}rich");
    s.register_directly(&rich, "pw-state-rich-1", false);
    let (status, up) = {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_matrix/media/v3/upload?filename=a.png", s.url))
            .bearer_auth(&s.admin_token)
            .header("content-type", "image/png")
            .body(crate::safety::PNG)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(status, 200, "{up}");
    put_user(
        s,
        &rich,
        json!({
            "displayname": "Olúwásẹ̀yí Rich",
            "avatar_url": up["content_uri"],
            "threepids": [
                {"medium": "email", "address": format!("{tag}@example.org")},
                {"medium": "msisdn", "address": "447700900123"},
            ],
            "external_ids": [{"auth_provider": "oidc-corp", "external_id": format!("{tag}-sub")}],
        }),
    );
    let (_, alias) = s.make_room(&format!("{tag}room"), false);
    let (space, _) = s.make_room(&format!("{tag}space"), true);
    for room in [alias.as_str(), space.as_str()] {
        let (status, body) = s.client(
            "POST",
            &format!("/_synapse/admin/v1/join/{}", enc(room)),
            &s.admin_token,
            Some(json!({"user_id": s.user_id(&rich)})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, guest) = {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_matrix/client/v3/register?kind=guest", s.url))
            .json(&json!({}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(status, 200, "{guest}");
    let bridged = format!("bridge_{tag}");
    let (status, body) = s.client(
        "POST",
        "/_matrix/client/v3/register",
        AS_TOKEN,
        Some(json!({"type": "m.login.application_service", "username": bridged})),
    );
    assert_eq!(status, 200, "{body}");
    (
        guest["user_id"].as_str().unwrap().to_string(),
        s.user_id(&bridged),
    )
}

/// Part 1: the round trip is the contract, in each format.
#[test]
fn an_export_plans_to_nothing_in_every_format() {
    let (s, _lock) = server();
    let tag = fresh("exp");
    let (guest, bridged) = populate(s, &tag);
    let dir = tempfile::tempdir().unwrap();
    for name in ["all.jsonl", "all.csv", "all.yaml"] {
        let file = dir.path().join(name);
        let run = export(s, &file);
        assert!(
            run.stderr.contains("1 of application services"),
            "{}",
            run.stderr
        );
        let text = std::fs::read_to_string(&file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        assert!(
            !text.contains("password") && !text.contains("pw-state"),
            "{text}"
        );
        let guest_local = guest.trim_start_matches('@').split(':').next().unwrap();
        assert!(
            !text.contains(&format!("\"{guest_local}\"")),
            "a guest: {text}"
        );
        assert!(
            !text.contains(&bridged[1..bridged.find(':').unwrap()]),
            "{text}"
        );
        for want in [
            format!("{tag}rich"),
            format!("{tag}locked"),
            format!("{tag}@example.org"),
            format!("{tag}-sub"),
            format!("#{tag}room:{}", s.server_name),
            "mxc://".into(),
        ] {
            assert!(text.contains(&want), "{name} lacks {want}: {text}");
        }
        // -v: every row has its line, those left alone too.
        let run = plan(s, &file, &["-v"]);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.lines().all(|l| l.ends_with("nothing to change")),
            "{name}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(&format!("@{tag}gone:")),
            "{}",
            run.stdout
        );
    }
    // Standard output is JSON Lines; the phone number stays the server's.
    let run = tool(s).args(["--export", "-"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rich: Value = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["username"] == json!(format!("{tag}rich")))
        .unwrap();
    assert_eq!(rich["active"], json!(true));
    assert_eq!(rich["emails"], json!([format!("{tag}@example.org")]));
    assert_eq!(
        rich["external_ids"],
        json!([{"auth_provider": "oidc-corp", "external_id": format!("{tag}-sub")}])
    );
    assert!(!run.stdout.contains("447700900123"));
    // An export that cannot finish leaves nothing under the final name.
    let failed = Test::new()
        .args(["--admin-token-file", &token_file(s), "-k", &s.secret])
        .args(["--export", dir.path().join("dead.jsonl").to_str().unwrap()])
        .arg("http://127.0.0.1:9")
        .run();
    assert_ne!(failed.code, 0);
    assert!(!dir.path().join("dead.jsonl").exists());
}

/// `n` accounts that stay in every inventory, so that a third of the
/// active accounts is never the bound a test of something else meets.
fn fillers(s: &Synapse, tag: &str, n: usize) {
    for i in 0..n {
        s.register_directly(&format!("{tag}fill{i}"), "pw-filler-1", false);
    }
}

/// The accounts an export names, as a JSON Lines inventory without `drop`.
fn inventory_without(s: &Synapse, dir: &Path, drop: &[String]) -> std::path::PathBuf {
    let all = dir.join("all.jsonl");
    export(s, &all);
    let kept: String = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .filter(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            !drop.iter().any(|d| row["username"] == json!(d))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let file = dir.join("inventory.jsonl");
    write(&file, &kept);
    file
}

/// Part 2: who the inventory leaves out is deactivated (or locked), shown
/// first by the plan; the token's own, kept ones and reruns are left alone.
#[test]
fn prune_takes_up_who_left_and_nobody_else() {
    let (s, _lock) = server();
    let tag = fresh("prn");
    let dir = tempfile::tempdir().unwrap();
    let left = format!("{tag}left");
    let locked = format!("{tag}lockme");
    let kept = format!("{tag}svc");
    for u in [&left, &locked, &kept] {
        s.register_directly(u, "pw-prune-1", false);
    }
    fillers(s, &tag, 6);
    let admin_local = "rigadmin".to_string();
    let inventory = inventory_without(s, dir.path(), &[left.clone(), kept.clone(), admin_local]);
    // Lock first, for the one to lock: the others are kept by --keep.
    let run = tool(s)
        .args([
            "--ensure",
            "--prune=lock",
            "--batch",
            inventory.to_str().unwrap(),
        ])
        .args(["--keep", &format!("{tag}svc*"), "--keep", &s.user_id(&left)])
        .run();
    // Its inventory names `lockme`: nothing to lock.
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(user(s, &left)["locked"], json!(false));

    let inventory = inventory_without(s, dir.path(), &[left.clone(), locked.clone(), kept.clone()]);
    let run = tool(s)
        .args([
            "--ensure",
            "--prune=lock",
            "--batch",
            inventory.to_str().unwrap(),
        ])
        .args(["--keep", &format!("{tag}svc*"), "--keep", &s.user_id(&left)])
        .run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(user(s, &locked)["locked"], json!(true));
    assert_eq!(user(s, &locked)["deactivated"], json!(false));
    assert_eq!(user(s, &kept)["locked"], json!(false));

    let run = plan(s, &inventory, &["--prune", "--keep", &format!("{tag}svc*")]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    for u in [&left, &locked] {
        assert!(
            run.stdout.contains(&format!(
                "- {}: deactivate (not in the inventory)",
                s.user_id(u)
            )),
            "{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains(&s.user_id(&kept)), "{}", run.stdout);
    assert_eq!(
        user(s, &left)["deactivated"],
        json!(false),
        "a plan changes nothing"
    );

    let results = dir.path().join("results.jsonl");
    let ensure = || {
        tool(s)
            .args([
                "--ensure",
                "--prune",
                "--batch",
                inventory.to_str().unwrap(),
            ])
            .args([
                "--keep",
                &format!("{tag}svc*"),
                "-o",
                results.to_str().unwrap(),
            ])
            .run()
    };
    let run = ensure();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("2 pruned"), "{}", run.stderr);
    for u in [&left, &locked] {
        assert_eq!(user(s, u)["deactivated"], json!(true), "{u}");
    }
    assert_eq!(user(s, &kept)["deactivated"], json!(false));
    assert_eq!(user(s, "rigadmin")["deactivated"], json!(false));
    let pruned: Vec<Value> = lines(&results)
        .into_iter()
        .filter(|l| l["status"] == json!("pruned"))
        .collect();
    assert_eq!(pruned.len(), 2, "{pruned:?}");
    assert_eq!(pruned[0]["changes"]["active"]["to"], json!(false));
    assert!(
        !std::fs::read_to_string(&results)
            .unwrap()
            .contains("password")
    );
    // The same rerun prunes nobody; a rollback never touches them.
    let run = ensure();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("pruned"), "{}", run.stderr);
    let run = tool(s)
        .args(["--rollback", results.to_str().unwrap(), "--yes"])
        .run();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains(&left),
        "{}",
        run.stderr
    );
}

/// Part 2's bound and its failed reads: each prunes nobody, exit 5.
#[test]
fn prune_prunes_nobody_past_its_bound_or_on_a_bad_read() {
    let (s, _lock) = server();
    let tag = fresh("bnd");
    let dir = tempfile::tempdir().unwrap();
    let many: Vec<String> = (0..3).map(|i| format!("{tag}u{i}")).collect();
    for u in &many {
        s.register_directly(u, "pw-bound-1", false);
    }
    let inventory = inventory_without(s, dir.path(), &many);
    let prune = |file: &Path, extra: &[&str]| {
        tool(s)
            .args(["--ensure", "--prune", "--batch", file.to_str().unwrap()])
            .args(extra.iter().copied())
            .run()
    };
    let run = prune(&inventory, &["--prune-max", "2"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("would take up 3 accounts"),
        "{}",
        run.stderr
    );
    let untouched = || {
        many.iter()
            .all(|u| user(s, u)["deactivated"] == json!(false))
    };
    assert!(untouched());
    let plan = plan(s, &inventory, &["--prune", "--prune-max", "2"]);
    assert_eq!(plan.code, 5, "{}", plan.stderr);

    // A third of the active accounts is the other bound: an inventory of
    // one row would prune everyone else.
    let one = dir.path().join("one.jsonl");
    write(&one, &format!("{}\n", json!({"username": many[0]})));
    let run = prune(&one, &["--prune-max", "100000"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(untouched());

    // Inventories that failed to read.
    let full = std::fs::read_to_string(&inventory).unwrap();
    let csv = dir.path().join("all.csv");
    export(s, &csv);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let cut = csv_text.trim_end().rfind(',').unwrap();
    let broken = [
        ("empty.jsonl", String::new()),
        ("truncated.csv", csv_text[..cut].to_string()),
        ("torn.jsonl", format!("{}{{\"username\": \"x", full)),
        ("quoted.csv", format!("{}\"unterminated,", csv_text)),
    ];
    for (name, text) in broken {
        let file = dir.path().join(name);
        write(&file, &text);
        let run = prune(&file, &["--prune-max", "100000"]);
        assert_eq!(run.code, 5, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("nobody is pruned"),
            "{name}: {}",
            run.stderr
        );
        assert!(untouched(), "{name}");
    }
}

/// Part 2: a hook sees a prune as a change, and may veto it.
#[test]
fn a_hook_vetoes_a_prune() {
    let (s, _lock) = server();
    let tag = fresh("veto");
    let dir = tempfile::tempdir().unwrap();
    let left = format!("{tag}left");
    s.register_directly(&left, "pw-veto-1", false);
    fillers(s, &tag, 3);
    let inventory = inventory_without(s, dir.path(), std::slice::from_ref(&left));
    let hook = dir.path().join("veto.lua");
    write(
        &hook,
        "return { before_apply = function(rec)\n  \
         if rec.pruned and rec.changes.active then rec.changes.active = nil end\n  \
         return rec\nend }\n",
    );
    let run = tool(s)
        .args([
            "--ensure",
            "--prune",
            "--batch",
            inventory.to_str().unwrap(),
        ])
        .args(["--hook", hook.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(user(s, &left)["deactivated"], json!(false));
}

/// Part 3: `active: true` reactivates, with the row's password or a
/// generated one that logs in; an erased account only when the row says so.
#[test]
fn active_true_reactivates_and_the_password_logs_in() {
    let (s, _lock) = server();
    let tag = fresh("react");
    let dir = tempfile::tempdir().unwrap();
    let (a, b, e) = (format!("{tag}a"), format!("{tag}b"), format!("{tag}e"));
    for u in [&a, &b, &e] {
        s.register_directly(u, "pw-react-old-1", false);
    }
    let (_, alias) = s.make_room(&format!("{tag}r"), false);
    for u in [&a, &b] {
        put_user(s, u, json!({"deactivated": true}));
    }
    let (status, body) = s.client(
        "POST",
        &format!("/_synapse/admin/v1/deactivate/{}", enc(&s.user_id(&e))),
        &s.admin_token,
        Some(json!({"erase": true})),
    );
    assert_eq!(status, 200, "{body}");
    let input = dir.path().join("in.jsonl");
    write(
        &input,
        &[
            json!({"username": a, "active": true, "password": "pw-react-new-1", "rooms": [alias], "displayname": "Back Again"}),
            json!({"username": b, "active": true}),
            json!({"username": e, "active": true}),
        ]
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>(),
    );
    let run = plan(s, &input, &[]);
    assert_eq!(run.code, 1, "the erased one is refused: {}", run.stderr);
    assert!(run.stdout.contains("active no -> yes"), "{}", run.stdout);
    let results = dir.path().join("out.jsonl");
    let run = tool(s)
        .args([
            "--ensure",
            "--batch",
            input.to_str().unwrap(),
            "-o",
            results.to_str().unwrap(),
        ])
        .run();
    assert_eq!(run.code, 1, "the erased one is refused: {}", run.stderr);
    assert!(run.stderr.contains("erased_ok"), "{}", run.stderr);
    assert_eq!(user(s, &a)["deactivated"], json!(false));
    assert!(s.login(&a, "pw-react-new-1").is_some());
    assert_eq!(user(s, &a)["displayname"], json!("Back Again"));
    assert!(s.joined_rooms(&a).iter().any(|r| !r.is_empty()));
    let line = lines(&results)
        .into_iter()
        .rfind(|l| l["username"] == json!(b))
        .unwrap();
    let generated = line["password"]
        .as_str()
        .expect("the generated password is recorded");
    assert!(s.login(&b, generated).is_some());
    assert_eq!(user(s, &e)["deactivated"], json!(true));
    // With erased_ok (or --erased-ok), the erased one too.
    let run = tool(s)
        .args([
            "--ensure",
            "--erased-ok",
            "--batch",
            input.to_str().unwrap(),
        ])
        .args(["-o", results.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(user(s, &e)["deactivated"], json!(false));
}

/// Part 4: external IDs are the exact set, linked on new accounts before
/// they are reported registered, and never taken from another account.
#[test]
fn external_ids_are_linked_and_never_moved() {
    let (s, _lock) = server();
    let tag = fresh("xid");
    let dir = tempfile::tempdir().unwrap();
    let (old, new, other) = (
        format!("{tag}old"),
        format!("{tag}new"),
        format!("{tag}oth"),
    );
    s.register_directly(&old, "pw-xid-1", false);
    s.register_directly(&other, "pw-xid-1", false);
    put_user(
        s,
        &other,
        json!({"external_ids": [{"auth_provider": "oidc-corp", "external_id": format!("{tag}-taken")}]}),
    );
    let input = dir.path().join("in.csv");
    write(
        &input,
        &format!(
            "username,password,external_ids\n{old},,oidc-corp:{tag}-1 saml:{tag}-s\n\
             {new},pw-xid-new-1,oidc-corp:{tag}-2\n{tag}thief,pw-xid-2,oidc-corp:{tag}-taken\n"
        ),
    );
    let run = tool(s)
        .args(["--ensure", "--batch", input.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("belongs to {}", s.user_id(&other))),
        "{}",
        run.stderr
    );
    let owner = |id: &str| {
        s.admin(&format!(
            "/_synapse/admin/v1/auth_providers/oidc-corp/users/{}",
            enc(id)
        ))["user_id"]
            .clone()
    };
    assert_eq!(owner(&format!("{tag}-1")), json!(s.user_id(&old)));
    assert_eq!(owner(&format!("{tag}-2")), json!(s.user_id(&new)));
    assert_eq!(owner(&format!("{tag}-taken")), json!(s.user_id(&other)));
    assert!(
        s.user(&format!("{tag}thief")).is_none(),
        "a refused row creates nothing"
    );
    // The exact set: a rerun with one ID removes the other.
    write(
        &input,
        &format!("username,external_ids\n{old},oidc-corp:{tag}-1\n"),
    );
    let run = tool(s)
        .args(["--ensure", "--batch", input.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids = user(s, &old)["external_ids"].clone();
    assert_eq!(
        ids,
        json!([{"auth_provider": "oidc-corp", "external_id": format!("{tag}-1")}])
    );
}

/// The README's "adopt a running server" walkthrough, its commands as
/// written, with the edit it describes made between the first two.
#[test]
fn the_readme_adoption_walkthrough_does_what_it_says() {
    let (s, _lock) = server();
    let tag = fresh("adopt");
    let (renamed, left) = (format!("{tag}renamed"), format!("{tag}left"));
    for u in [&renamed, &left] {
        s.register_directly(u, "pw-adopt-1", false);
    }
    fillers(s, &tag, 6);
    let readme = std::fs::read_to_string(crate::rig::root().join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .filter(|l| {
            l.starts_with("register_new_matrix_user ")
                && (l.contains("--export") || l.contains("--prune"))
                // The directory's commands run in ldap.rs.
                && !l.contains("--batch ldap:")
        })
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&s.config, dir.path().join("homeserver.yaml")).unwrap();
    std::fs::copy(token_file(s), dir.path().join("admin.token")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("register_new_matrix_user");
    let sh = |cmd: &str| {
        let cmd = format!(
            "{} {}",
            bin.display(),
            &cmd["register_new_matrix_user ".len()..]
        );
        let out = std::process::Command::new("bash")
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
    let (code, _, err) = sh(commands[0]);
    assert_eq!(code, Some(0), "{err}");
    // The edit: a new display name for one, the other's line deleted.
    let file = dir.path().join("inventory.jsonl");
    let edited: String = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut row: Value = serde_json::from_str(l).unwrap();
            if row["username"] == json!(left) {
                return None;
            }
            if row["username"] == json!(renamed) {
                row["displayname"] = json!("New Name");
            }
            Some(format!("{row}\n"))
        })
        .collect();
    write(&file, &edited);
    let (code, out, err) = sh(commands[1]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        out.contains(&format!("~ {}: displayname", s.user_id(&renamed))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "- {}: deactivate (not in the inventory)",
            s.user_id(&left)
        )),
        "{out}"
    );
    let changes = out
        .lines()
        .filter(|l| !l.ends_with("nothing to change"))
        .count();
    assert_eq!(changes, 2, "{out}");
    let (code, _, err) = sh(commands[2]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(user(s, &renamed)["displayname"], json!("New Name"));
    assert_eq!(user(s, &left)["deactivated"], json!(true));
    let (code, out, _) = sh(commands[1]);
    assert_eq!(code, Some(0), "{out}");
}

/// The limits docs/limits.md gives external IDs, each broken.
#[test]
fn external_ids_past_their_limits_are_refused() {
    let (s, _lock) = server();
    let tag = fresh("xlim");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.jsonl");
    let many: Vec<String> = (0..1001).map(|i| format!("p:{i}")).collect();
    for (ids, why) in [
        (vec![format!("p:{}", "x".repeat(256))], "not an external ID"),
        (vec![format!("{}:x", "p".repeat(256))], "not an external ID"),
        (vec!["p:a b".to_string()], "not an external ID"),
        (vec!["noprovider".to_string()], "not an external ID"),
        (many, "more than 1000 external_ids"),
    ] {
        write(
            &file,
            &format!(
                "{}\n",
                json!({"username": tag, "password": "pw-xlim-1", "external_ids": ids})
            ),
        );
        let run = tool(s)
            .args(["--ensure", "--batch", file.to_str().unwrap()])
            .run();
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(why), "{}", run.stderr);
        assert!(s.user(&tag).is_none());
    }
    let ok = vec![format!("p:{}", "x".repeat(255))];
    write(
        &file,
        &format!(
            "{}\n",
            json!({"username": tag, "password": "pw-xlim-1", "external_ids": ok})
        ),
    );
    let run = tool(s)
        .args(["--ensure", "--batch", file.to_str().unwrap()])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Faults on every request (dropped connections, 5xx pages, stalls past
/// `--timeout`, 429s, answers cut after the server acted): an export ends
/// with the same rows as one without them, and a prune ends whole, having
/// pruned exactly who the inventory leaves out.
#[test]
fn export_and_prune_through_faults_end_whole() {
    let (s, _lock) = server();
    let tag = fresh("flt");
    let dir = tempfile::tempdir().unwrap();
    let left = format!("{tag}left");
    s.register_directly(&left, "pw-fault-1", false);
    fillers(s, &tag, 4);
    let clean = dir.path().join("clean.jsonl");
    export(s, &clean);
    let proxy = crate::faults::proxy_to(s, 150, 11, |_| true, None);
    let through = |args: &[&str]| {
        Test::new()
            .args(["--admin-token-file", &token_file(s), "-k", &s.secret])
            .args(["--timeout", "1"])
            .args(args.iter().copied())
            .arg(proxy.url.clone())
            .run()
    };
    let faulty = dir.path().join("faulty.jsonl");
    let run = through(&["--export", faulty.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sorted = |p: &Path| {
        let mut l: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&clean), sorted(&faulty));
    let inventory = inventory_without(s, dir.path(), std::slice::from_ref(&left));
    let results = dir.path().join("results.jsonl");
    let run = through(&[
        "--ensure",
        "--prune",
        "--batch",
        inventory.to_str().unwrap(),
        "-o",
        results.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(proxy.injected() > 0);
    assert_eq!(user(s, &left)["deactivated"], json!(true));
    for i in 0..4 {
        assert_eq!(
            user(s, &format!("{tag}fill{i}"))["deactivated"],
            json!(false)
        );
    }
}
