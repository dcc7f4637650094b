#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The integration tests: one binary, one real Synapse (see `rig`), and a
//! fluent builder for running either this tool or Synapse's original script.

mod batch;
mod clients;
mod docs;
mod drop_in;
mod edges;
mod ensure;
mod errors;
mod extensions;
mod faults;
mod hooks;
mod hostile;
mod hygiene;
mod ldap;
mod limits;
mod mas;
mod mas_real;
mod mas_stub;
mod package;
mod prompts;
mod rig;
mod safety;
mod server_state;
mod servers;
mod signals;
mod sso;
mod transports;
mod yaml11;

pub use rig::{fresh, synapse, synapse_with};
use std::io::Write;
use std::process::{Command, Stdio};

/// One run of a command-line tool, built up and then run.
pub struct Test {
    program: std::path::PathBuf,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    /// Killed after this long, as a hang (a watchdog, not a measurement).
    hang_after: Option<std::time::Duration>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Kills (SIGKILL) a batch run once its results file holds `after` final
/// `registered` lines; fails if it ends by itself before that.
pub fn kill_midway(mut child: std::process::Child, results: &std::path::Path, after: usize) {
    loop {
        let done = std::fs::read_to_string(results)
            .unwrap_or_default()
            .matches("\"registered\"")
            .count();
        if done >= after {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    /// This tool.
    pub fn new() -> Self {
        Test::program(assert_cmd::cargo::cargo_bin!("register_new_matrix_user"))
    }

    /// Synapse's own script, from the rig's virtualenv.
    pub fn original() -> Self {
        Test::program(&synapse().original)
    }

    fn program(p: impl AsRef<std::path::Path>) -> Self {
        Test {
            program: p.as_ref().to_path_buf(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            // A watchdog for every run: a hang fails the test instead of the
            // whole suite waiting for ever. Tests that wait out the server's
            // real limits take up to about six minutes.
            hang_after: Some(std::time::Duration::from_secs(900)),
        }
    }

    /// Kills the run if it has not ended after `secs` seconds; the run then
    /// reads as exit status -1 with `HUNG` on stderr.
    pub fn hang_after(mut self, secs: u64) -> Self {
        self.hang_after = Some(std::time::Duration::from_secs(secs));
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, s: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(s.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.env_remove.push(k.into());
        self
    }

    pub fn run(self) -> Run {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_BACKTRACE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.program));
        if let Some(input) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(input);
        }
        let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (done, watch) = std::sync::mpsc::channel::<()>();
        if let Some(limit) = self.hang_after {
            let (pid, hung) = (child.id(), hung.clone());
            std::thread::spawn(move || {
                // Ends early, without a signal, when the run ends.
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(limit) {
                    hung.store(true, std::sync::atomic::Ordering::SeqCst);
                    // SAFETY: signalling a child of this process that has not been waited for.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            });
        }
        let out = child.wait_with_output().unwrap();
        drop(done);
        let mut run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if hung.load(std::sync::atomic::Ordering::SeqCst) && run.code == -1 {
            run.stderr.push_str("HUNG");
        }
        if self.is_ours() {
            run.never_shows(&self.secrets());
        }
        run
    }

    fn is_ours(&self) -> bool {
        self.program == assert_cmd::cargo::cargo_bin!("register_new_matrix_user")
    }

    /// What this run was given that it must never print: the rig's shared
    /// secret, and every secret or password passed on the command line or
    /// through standard input with `--password-file -`.
    fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = rig::secrets_of_started();
        let mut args = self.args.iter().peekable();
        while let Some(a) = args.next() {
            if let Some((flag, v)) = a.split_once('=') {
                if matches!(flag, "--password" | "--shared-secret") {
                    out.push(v.to_string());
                }
            } else if matches!(a.as_str(), "-p" | "--password" | "-k" | "--shared-secret") {
                if let Some(v) = args.peek() {
                    out.push(v.to_string());
                }
            }
        }
        let stdin_password = self
            .args
            .windows(2)
            .any(|w| w[0] == "--password-file" && w[1] == "-");
        if let (true, Some(input)) = (stdin_password, &self.stdin) {
            out.push(String::from_utf8_lossy(input).trim().to_string());
        }
        // Short values ("pw") occur in ordinary words; they prove nothing.
        out.retain(|s| s.len() >= 6);
        out
    }
}

impl Run {
    /// Asserts that no output contains any of `secrets`.
    #[track_caller]
    pub fn never_shows(&self, secrets: &[String]) -> &Self {
        for s in secrets {
            assert!(
                !self.stdout.contains(s.as_str()) && !self.stderr.contains(s.as_str()),
                "a secret ({} characters) was printed\n{self:#?}",
                s.len()
            );
        }
        self
    }

    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "exit status\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn stdout(&self, want: &str) -> &Self {
        assert_eq!(self.stdout, want, "stdout\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, want: &str) -> &Self {
        assert!(
            self.stdout.contains(want),
            "stdout lacks {want:?}\n{self:#?}"
        );
        self
    }

    pub fn stderr_has(&self, want: &str) -> &Self {
        assert!(
            self.stderr.contains(want),
            "stderr lacks {want:?}\n{self:#?}"
        );
        self
    }

    /// One clear line on stderr besides warnings, and no panic.
    #[track_caller]
    pub fn one_clear_line(&self) -> &Self {
        assert!(!self.stderr.contains("panicked"), "panic\n{self:#?}");
        let lines = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .count();
        assert_eq!(lines, 1, "not one line on stderr\n{self:#?}");
        self
    }

    /// Standard error without the warnings.
    pub fn stderr_unwarned(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// Peak memory of a child run, measured by a fresh Python interpreter whose
/// only child it is (kB).
pub fn peak_kib(args: &[&str], stdin_file: Option<&std::path::Path>) -> (i32, String, u64) {
    let measure = "import resource, subprocess, sys\n\
        stdin = open(sys.argv[1], 'rb') if sys.argv[1] else None\n\
        r = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
        sys.stderr.buffer.write(r.stderr)\n\
        print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let bin = assert_cmd::cargo::cargo_bin!("register_new_matrix_user");
    let out = std::process::Command::new("python3")
        .args(["-c", measure])
        .arg(
            stdin_file
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
        .arg(bin)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace();
    let code: i32 = it.next().unwrap().parse().unwrap();
    let kib: u64 = it.next().unwrap().parse().unwrap();
    (code, String::from_utf8_lossy(&out.stderr).to_string(), kib)
}
