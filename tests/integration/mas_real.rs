//! A real MAS beside a real Synapse that delegates to it, for the MAS tests
//! when `RNMU_TEST_MAS_BIN` names a `mas-cli` binary (opt in: CI has none).
//!
//! What a run needs (`../shared/mas/README.md`): PostgreSQL (Debian's
//! `postgresql`; `scripts/mas-deps.sh` installs it), the policy module,
//! assets manifest and config template of `../shared/mas`
//! (`RNMU_TEST_MAS_SHARED` names another place), and MAS's source tree for
//! its templates and translations (`RNMU_TEST_MAS_SRC`; by default the tree
//! the binary was built in, three levels above `target/debug/mas-cli`).
//! Everything binds to 127.0.0.1 and lives in a temporary directory; the
//! servers die with the test binary.

use crate::rig::Synapse;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "000000000000000000000ADM00";

pub struct Real {
    pub synapse: &'static Synapse,
    pub mas_url: String,
    pub secret: String,
    pub server_name: String,
    _children: Mutex<Vec<Child>>,
    _dir: tempfile::TempDir,
}

/// The real servers, started once, when `RNMU_TEST_MAS_BIN` is set.
pub fn real() -> Option<&'static Real> {
    let bin = std::env::var_os("RNMU_TEST_MAS_BIN")?;
    static REAL: OnceLock<Real> = OnceLock::new();
    Some(REAL.get_or_init(|| {
        // Started from a thread that never ends: the servers are told to
        // die when the thread that started them does (PR_SET_PDEATHSIG),
        // which is then when the test binary exits.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| start(Path::new(&bin)));
            let failed = r.is_err();
            let _ = tx.send(r);
            if !failed {
                loop {
                    std::thread::park();
                }
            }
        });
        match rx.recv().unwrap() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        }
    }))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// As the `postgres` user (PostgreSQL refuses to run as root), dying with
/// this process.
fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--pdeathsig",
        "TERM",
        program,
    ]);
    c
}

fn wait_for(url: &str, what: &str, child: &mut Child, log: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::blocking::get(url) {
            if r.status().is_success() {
                return;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "{what} exited with {status}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        assert!(Instant::now() < until, "{what} did not come up within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(bin: &Path) -> Real {
    let root = crate::rig::root();
    let shared = std::env::var_os("RNMU_TEST_MAS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/mas"));
    let src = std::env::var_os("RNMU_TEST_MAS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.ancestors().nth(3).unwrap().to_path_buf());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut children = Vec::new();

    // PostgreSQL, in a cluster of its own.
    let pg = d.join("pg");
    std::fs::create_dir(&pg).unwrap();
    run(
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(d),
        "chown",
    );
    // Debian's server binaries (scripts/mas-deps.sh installs them).
    let bindir = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server: run scripts/mas-deps.sh")
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|b| b.join("initdb").exists())
        .expect("PostgreSQL's initdb: run scripts/mas-deps.sh")
        .display()
        .to_string();
    run(
        as_postgres(&format!("{bindir}/initdb"))
            .args(["-D", pg.to_str().unwrap(), "-A", "trust", "-U", "postgres"])
            .stdout(Stdio::null()),
        "initdb",
    );
    let pg_port = free_port();
    let mut postgres = as_postgres(&format!("{bindir}/postgres"))
        .args(["-D", pg.to_str().unwrap(), "-p", &pg_port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c"])
        .arg(format!("unix_socket_directories={}", d.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("pg.log")).unwrap())
        .spawn()
        .expect("start postgres");
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err() {
        assert!(postgres.try_wait().unwrap().is_none(), "postgres exited");
        assert!(Instant::now() < until, "postgres did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    run(
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg_port.to_string(),
                "-U",
                "postgres",
                "-q",
            ])
            .args(["-c", "CREATE ROLE mas LOGIN PASSWORD 'mas-db-password'"])
            .args(["-c", "CREATE DATABASE mas OWNER mas"]),
        "creating MAS's database",
    );
    children.push(postgres);

    // Synapse, delegating to MAS at a port chosen now.
    // MAS's ports stay taken until MAS starts, so that nothing started
    // meanwhile (Synapse picks ports of its own) is given them.
    let hold = [
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    ];
    let (mas_port, health_port) = (
        hold[0].local_addr().unwrap().port(),
        hold[1].local_addr().unwrap().port(),
    );
    let synapse_secret = format!("synapse-mas-secret-{}", std::process::id());
    let synapse = crate::synapse_with(
        "mas-real",
        serde_json::json!({
            "matrix_authentication_service": {
                "enabled": true,
                "endpoint": format!("http://127.0.0.1:{mas_port}/"),
                "secret": synapse_secret,
            },
            "password_config": {"enabled": false},
        }),
    );
    let synapse_port = synapse.url.rsplit(':').next().unwrap().to_string();

    // MAS's keys and config, from the template.
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    run(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(keys.join("rsa.pem"))
            .arg("2048")
            .stderr(Stdio::null()),
        "openssl genrsa",
    );
    run(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(keys.join("ec256.pem")),
        "openssl ecparam",
    );
    let client_secret = format!("mas-admin-client-{}", std::process::id());
    let hex: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect();
    let template = std::fs::read_to_string(shared.join("mas-config.template.yaml"))
        .expect("../shared/mas/mas-config.template.yaml");
    let config = [
        ("${MAS_PORT}", mas_port.to_string()),
        ("${MAS_HEALTH_PORT}", health_port.to_string()),
        (
            "${SHARED_MAS}",
            shared.canonicalize().unwrap().display().to_string(),
        ),
        ("${MAS_DB_PASSWORD}", "mas-db-password".into()),
        ("${SERVER_NAME}", synapse.server_name.clone()),
        ("${SYNAPSE_PORT}", synapse_port),
        ("${SYNAPSE_MAS_SECRET}", synapse_secret),
        ("${MAS_SRC}", src.display().to_string()),
        ("${MAS_ADMIN_CLIENT_SECRET}", client_secret.clone()),
        ("${MAS_ENCRYPTION_HEX}", hex),
        ("${KEYS}", keys.display().to_string()),
    ]
    .iter()
    .fold(template, |t, (k, v)| t.replace(k, v))
    // The database is on the port chosen here.
    .replace("@127.0.0.1:5432/", &format!("@127.0.0.1:{pg_port}/"));
    let cfg = d.join("mas.yaml");
    std::fs::write(&cfg, config).unwrap();
    run(
        Command::new(bin).args(["config", "check", "-c"]).arg(&cfg),
        "mas-cli config check",
    );
    run(
        Command::new(bin)
            .args(["database", "migrate", "-c"])
            .arg(&cfg),
        "mas-cli database migrate",
    );
    drop(hold);
    let mut mas = Command::new("setpriv")
        .args(["--pdeathsig", "TERM"])
        .arg(bin)
        .args(["server", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("mas.log")).unwrap())
        .spawn()
        .expect("start mas-cli server");
    wait_for(
        &format!("http://127.0.0.1:{health_port}/health"),
        "MAS",
        &mut mas,
        &d.join("mas.log"),
    );
    children.push(mas);
    Real {
        synapse,
        mas_url: format!("http://127.0.0.1:{mas_port}"),
        secret: client_secret,
        server_name: synapse.server_name.clone(),
        _children: Mutex::new(children),
        _dir: dir,
    }
}

/// An Admin API token for the test's own checks.
pub fn admin_token(r: &Real) -> String {
    let client = reqwest::blocking::Client::new();
    let v: serde_json::Value = client
        .post(format!("{}/oauth2/token", r.mas_url))
        .basic_auth(CLIENT_ID, Some(&r.secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=urn%3Amas%3Aadmin")
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}
