//! Configs read as Synapse reads them: every file of `tests/configs/` is
//! read by Synapse's own loader (`synapse.config._base.read_config_files`,
//! PyYAML, from the rig's virtualenv) and by this tool's config stage, and
//! what each makes of it is compared: the secret or its path, the listener
//! URL, the password policy, whether passwords log in.

use serde_json::{Value, json};

const SYNAPSE_VIEW: &str = r#"
import json, sys
from synapse.config._base import read_config_files
def truthy(v): return bool(v)
out = {}
for path in sys.argv[1:]:
    try:
        cfg = read_config_files([path])
    except Exception as e:
        out[path] = {"error": type(e).__name__}
        continue
    s = cfg.get("registration_shared_secret")
    sp = cfg.get("registration_shared_secret_path")
    secret = None if s in (None, "") else (s if isinstance(s, str) else "<not a string>")
    listener = None
    for l in cfg.get("listeners") or []:
        if l.get("type") != "http" or truthy(l.get("tls")):
            continue
        names = [n for r in (l.get("resources") or []) for n in (r.get("names") or [])]
        if "client" not in names:
            continue
        if "port" in l:
            listener = "http://localhost:%s" % int(l["port"])
        elif "path" in l:
            listener = "unix:" + l["path"]
        break
    pc = cfg.get("password_config") or {}
    delegated = (cfg.get("matrix_authentication_service") or {}).get("enabled", False)
    enabled = pc.get("enabled", not delegated)
    login = bool(enabled) and enabled != "only_for_reauth" and bool(pc.get("localdb_enabled", True))
    p = pc.get("policy") or {}
    policy = {
        "enabled": bool(p.get("enabled", False)),
        "minimum_length": int(p.get("minimum_length", 0)),
        "require_digit": bool(p.get("require_digit", False)),
        "require_symbol": bool(p.get("require_symbol", False)),
        "require_lowercase": bool(p.get("require_lowercase", False)),
        "require_uppercase": bool(p.get("require_uppercase", False)),
    }
    out[path] = {"secret": secret, "secret_path": sp, "listener": listener,
                 "policy": policy, "password_login": login}
print(json.dumps(out))
"#;

/// What the tool's config stage makes of one file.
fn ours(path: &std::path::Path) -> Value {
    use rnmu::stages::config;
    let console = rnmu::console::Console::new(rnmu::console::Level::Quiet, false);
    let cfg = match config::load(&[path.to_path_buf()], &console) {
        Ok(c) => c,
        Err(_) => return json!({"error": "unreadable"}),
    };
    let m = &cfg.merged;
    let text = |k: &str| m.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let secret = match m.get("registration_shared_secret") {
        None | Some(serde_yaml::Value::Null) => None,
        Some(serde_yaml::Value::String(s)) if s.is_empty() => None,
        Some(serde_yaml::Value::String(s)) => Some(s.clone()),
        Some(_) => Some("<not a string>".to_string()),
    };
    let policy = rnmu::policy::PasswordPolicy::from_config(m);
    json!({
        "secret": secret,
        "secret_path": text("registration_shared_secret_path"),
        "listener": config::client_listener_url(m).ok().flatten(),
        "policy": {
            "enabled": policy.enabled,
            "minimum_length": policy.minimum_length,
            "require_digit": policy.require_digit,
            "require_symbol": policy.require_symbol,
            "require_lowercase": policy.require_lowercase,
            "require_uppercase": policy.require_uppercase,
        },
        "password_login": rnmu::policy::password_login_off(m).is_none(),
    })
}

#[test]
fn every_config_of_the_corpus_reads_as_synapse_reads_it() {
    let s = crate::synapse();
    let dir = crate::rig::root().join("tests/configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is gone: {files:?}");
    let out = std::process::Command::new(s.venv.join("bin/python"))
        .arg("-c")
        .arg(SYNAPSE_VIEW)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut differ = Vec::new();
    for f in &files {
        let t = &theirs[f.to_str().unwrap()];
        let o = ours(f);
        if *t != o {
            differ.push(format!(
                "{}:\n  synapse: {t}\n  this tool: {o}",
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "read differently:\n{}",
        differ.join("\n")
    );
}
