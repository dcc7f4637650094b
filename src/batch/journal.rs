//! The results file (`--output`): one JSON line per row, created with mode
//! 0600 because it holds generated passwords, and read back to resume.
//!
//! Every row gets a `pending` line, flushed to the file, before its
//! registration request is sent (with the password when it was generated);
//! its final line follows. So a crash can never leave an account whose
//! password nobody has, nor one whose outcome nobody can settle. On the
//! next run with the same file, the last line for a username decides:
//! `registered` and `exists` rows are skipped; a `pending` or `failed` row
//! (its request may have reached the server) is tried again with its recorded
//! password, and a "user in use" answer is settled by logging in with it;
//! anything else is tried again. `rejected` lines never override another.

use crate::error::Error;
use crate::report::{Report, Status};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

pub use super::priors::Prior;
use super::priors::{Builder, Priors};

/// What a results file records as created, for `--rollback`.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Username key and user ID of each account its runs created.
    pub created: Vec<(String, String)>,
    /// Lines that claim a creation they do not prove: line, username key.
    pub unproven: Vec<(usize, String)>,
}

/// What the syncer is asked for.
#[derive(Default)]
struct SyncWanted {
    /// Every line up to this one is to be made durable.
    through: u64,
    running: bool,
    stop: bool,
    /// A sync failed: every waiter is told.
    failed: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// The same file, for syncing it to disk outside the write lock.
    sync_file: File,
    /// Lines written so far, and lines known to be on disk: a sync covers
    /// every line written before it began, so workers share syncs (group
    /// commit).
    written: std::sync::atomic::AtomicU64,
    synced: std::sync::atomic::AtomicU64,
    sync_lock: Mutex<()>,
    /// The background syncer ([`Journal::syncer`]): what it is asked to
    /// sync, and whether it runs.
    wanted: Mutex<SyncWanted>,
    wake: std::sync::Condvar,
    prior: Priors,
    /// The lines (1-based) that were passed over: not UTF-8, not JSON, or
    /// not a result.
    pub damaged: Vec<usize>,
}

/// The key rows are matched on: the username as the server will store it.
pub fn key(username: &str) -> String {
    username.trim().to_lowercase()
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal, Error> {
        let fail = |what: &str, e: std::io::Error| {
            Error::Output(format!(
                "cannot {what} the results file {}: {}",
                path.display(),
                crate::files::io_cause(&e)
            ))
        };
        // A file made now is on disk only once its directory entry is.
        let existed = std::fs::symlink_metadata(path).is_ok();
        // Never through a link: the file is opened as itself or not at all.
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Error::Output(format!(
                    "the results file {} is a symbolic link; give the file itself",
                    path.display()
                )),
                _ => fail("open", e),
            })?;
        // A file someone else owns or may write could hold rows of their
        // choosing, and would show them every generated password.
        let meta = file.metadata().map_err(|e| fail("read", e))?;
        let refuse = |why: &str| {
            Error::Output(format!(
                "the results file {} {why}; it holds generated passwords, so it is not used",
                path.display()
            ))
        };
        if !meta.is_file() {
            return Err(refuse("is not a regular file"));
        }
        // SAFETY: geteuid has no preconditions.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(refuse("belongs to another user"));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse("can be written by other users"));
        }
        // Our own file, perhaps readable by others: made private.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("restrict", e))?;
        // Two runs resuming the same batch at once would register rows twice
        // over: the second one is refused. The lock goes with the file.
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::Output(format!(
                "the results file {} is in use by another run of this tool",
                path.display()
            )));
        }
        // Sized ahead: a first quick pass counts the lines.
        let mut lines = 0usize;
        {
            let mut r = BufReader::with_capacity(64 * 1024, &file);
            loop {
                let buf = r.fill_buf().map_err(|e| fail("read", e))?;
                if buf.is_empty() {
                    break;
                }
                lines += buf.iter().filter(|b| **b == b'\n').count();
                let n = buf.len();
                r.consume(n);
            }
        }
        file.seek(SeekFrom::Start(0)).map_err(|e| fail("read", e))?;
        let mut prior = Builder::with_capacity(lines + 1);
        let mut damaged = Vec::new();
        for (n, line) in BufReader::new(&file).split(b'\n').enumerate() {
            let line = line.map_err(|e| fail("read", e))?;
            // A line cut short by a crash, one that is not UTF-8, or anything
            // else that is not a result, is passed over (and counted).
            let parsed = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| serde_json::from_str::<Report>(l).ok());
            let Some(r) = parsed else {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    damaged.push(n + 1);
                }
                continue;
            };
            let Some(username) = r.username.as_deref() else {
                continue;
            };
            prior.add(key(username), r);
        }
        let prior = prior.build();
        // A crash mid-line leaves no newline: start on a fresh line.
        let len = file.seek(SeekFrom::End(0)).map_err(|e| fail("read", e))?;
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .map_err(|e| fail("read", e))?;
            file.read_exact(&mut last).map_err(|e| fail("read", e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(|e| fail("write", e))?;
            }
        }
        if !existed {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail("sync the directory of", e))?;
        }
        let sync_file = file.try_clone().map_err(|e| fail("open", e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            sync_file,
            written: std::sync::atomic::AtomicU64::new(0),
            synced: std::sync::atomic::AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            wanted: Mutex::new(SyncWanted::default()),
            wake: std::sync::Condvar::new(),
            prior,
            damaged,
        })
    }

    /// What `--rollback` may undo: the accounts runs with this file
    /// created, by their own records, and no rollback has deactivated yet
    /// (read again from the file: the names of settled rows are not kept).
    ///
    /// A line proves a creation when it is `registered` or `incomplete`,
    /// names the account's user ID, says the account was created by the run
    /// (`"created": true`; in files older than that field, does not say it
    /// existed), and follows the `pending` line the tool writes before every
    /// request that creates an account. A line that claims a creation
    /// without that proof (written by hand, torn, or of an account that
    /// existed) is refused, and named.
    pub fn created(&self) -> Result<Recorded, Error> {
        let file = File::open(&self.path).map_err(|e| {
            Error::Output(format!(
                "cannot read the results file {}: {}",
                self.path.display(),
                crate::files::io_cause(&e)
            ))
        })?;
        #[derive(Default)]
        struct Seen {
            pending: bool,
            created: Option<String>,
            unproven: Option<usize>,
        }
        let mut by_key: std::collections::HashMap<String, Seen> = Default::default();
        for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
            let Ok(line) = line else { break };
            let Some(r) = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| serde_json::from_str::<Report>(l).ok())
            else {
                continue;
            };
            let Some(name) = r.username.as_deref().map(key) else {
                continue;
            };
            let seen = by_key.entry(name).or_default();
            match r.status {
                Status::Pending => seen.pending = true,
                Status::Registered | Status::Incomplete => {
                    let says_created = match r.created {
                        Some(c) => c,
                        None => r.exists != Some(true),
                    };
                    match (&r.user_id, seen.pending && says_created) {
                        (Some(id), true) => {
                            seen.created = Some(id.clone());
                            seen.unproven = None;
                        }
                        // Of an account that existed: nothing to undo.
                        _ if r.exists == Some(true) && r.created != Some(true) => {}
                        _ if seen.created.is_none() => seen.unproven = Some(n + 1),
                        _ => {}
                    }
                }
                Status::Deactivated => {
                    seen.created = None;
                    seen.unproven = None;
                }
                _ => {}
            }
        }
        let mut out = Recorded::default();
        for (name, seen) in by_key {
            if let Some(id) = seen.created {
                out.created.push((name, id));
            } else if let Some(line) = seen.unproven {
                out.unproven.push((line, name));
            }
        }
        out.created.sort();
        out.unproven.sort();
        Ok(out)
    }

    /// One line saying which lines were passed over, if any were.
    pub fn damage_warning(&self) -> Option<String> {
        let first = self.damaged.first()?;
        Some(format!(
            "the results file {} has {} line{} that {} not a result (the first: line {first}), passed over",
            self.path.display(),
            self.damaged.len(),
            if self.damaged.len() == 1 { "" } else { "s" },
            if self.damaged.len() == 1 { "is" } else { "are" },
        ))
    }

    pub fn prior(&self, username: &str) -> Option<Prior> {
        self.prior.get(&key(username))
    }

    /// Appends one line, written through to the operating system before this
    /// returns. A `pending` line (written before a row's request leaves the
    /// machine, with its generated password) is on disk before this returns:
    /// a power cut cannot lose it.
    pub fn write(&self, report: &Report) -> Result<(), Error> {
        if report.status == Status::Pending {
            let seq = self.write_pending(report)?;
            return self.wait_durable(seq);
        }
        self.append(report).map(|_| ())
    }

    /// Appends one line, written through to the operating system: its number.
    fn append(&self, report: &Report) -> Result<u64, Error> {
        let mut line = report.to_json_line();
        line.push('\n');
        let failed = |e: std::io::Error| {
            Error::Output(format!(
                "cannot write the results file {}: {}",
                self.path.display(),
                crate::files::io_cause(&e)
            ))
        };
        let seq = {
            let mut f = self
                .file
                .lock()
                .map_err(|_| Error::Output("the results file's lock is poisoned".into()))?;
            f.write_all(line.as_bytes())
                .and_then(|()| f.flush())
                .map_err(failed)?;
            self.written.fetch_add(1, Ordering::SeqCst) + 1
        };
        Ok(seq)
    }

    /// Writes a row's `pending` line, and asks the syncer to make it
    /// durable while the row goes on (its nonce is fetched meanwhile); the
    /// line's number, for [`Journal::wait_durable`] before the request
    /// that creates the account.
    pub fn write_pending(&self, report: &Report) -> Result<u64, Error> {
        let seq = self.append(report)?;
        let running = {
            let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            w.through = w.through.max(seq);
            w.running
        };
        self.wake.notify_all();
        if !running {
            self.wait_durable(seq)?;
        }
        Ok(seq)
    }

    /// Returns once line `seq` is on disk.
    pub fn wait_durable(&self, seq: u64) -> Result<(), Error> {
        let failed = |e: std::io::Error| {
            Error::Output(format!(
                "cannot sync the results file {}: {}",
                self.path.display(),
                crate::files::io_cause(&e)
            ))
        };
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.synced.load(Ordering::SeqCst) >= seq {
                return Ok(());
            }
            if let Some(e) = &w.failed {
                return Err(Error::Output(e.clone()));
            }
            if !w.running {
                drop(w);
                return self.sync_through(seq).map_err(failed);
            }
            w = self.wake.wait(w).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The syncer: makes lines durable as they are asked for, each sync
    /// covering every line written before it began, until [`Journal::stop_syncer`].
    pub fn syncer(&self) {
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.running = true;
        loop {
            while w.through <= self.synced.load(Ordering::SeqCst) && !w.stop {
                w = self.wake.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            if w.through <= self.synced.load(Ordering::SeqCst) && w.stop {
                break;
            }
            let upto = self.written.load(Ordering::SeqCst);
            drop(w);
            let r = self.sync_through(upto);
            w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = r {
                w.failed = Some(format!(
                    "cannot sync the results file {}: {}",
                    self.path.display(),
                    crate::files::io_cause(&e)
                ));
                w.through = 0;
            }
            self.wake.notify_all();
        }
        w.running = false;
        drop(w);
        self.wake.notify_all();
    }

    /// Ends the syncer once what it was asked for is on disk.
    pub fn stop_syncer(&self) {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.wake.notify_all();
    }

    /// Makes line `seq` and every line before it durable: one `fdatasync`
    /// for all the lines written while the last one ran.
    fn sync_through(&self, seq: u64) -> std::io::Result<()> {
        if self.synced.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let _one = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let upto = self.written.load(Ordering::SeqCst);
        self.sync_file.sync_data()?;
        self.synced.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_meaningful_line_decides_and_passwords_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"username\":\"A\",\"status\":\"pending\",\"password\":\"pw-a\"}\n",
                "{\"username\":\"a\",\"status\":\"rejected\",\"error\":\"duplicate\"}\n",
                "{\"username\":\"b\",\"status\":\"pending\",\"password\":\"pw-b\"}\n",
                "{\"username\":\"b\",\"status\":\"registered\",\"user_id\":\"@b:x\"}\n",
                "garbage\n",
                "{\"username\":\"c\",\"status\":\"pend"
            ),
        )
        .unwrap();
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.damaged, [5, 6]);
        let a = j.prior("a").unwrap();
        assert_eq!(a.status, Status::Pending);
        assert_eq!(a.password.as_ref().unwrap().expose(), "pw-a");
        // A settled row keeps its status only.
        let b = j.prior("B").unwrap();
        assert_eq!(b.status, Status::Registered);
        assert!(j.prior("c").is_none());
        // The torn last line was closed, so the next line starts clean.
        j.write(&Report {
            username: Some("d".into()),
            ..Report::empty()
        })
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("\"status\":\"pend\n{\"username\":\"d\",\"user_id\":null,\"status\":\"failed\",\"error\":null}\n"), "{text}");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second run on the same file is refused while this one holds it.
        let err = Journal::open(&p).err().unwrap();
        assert!(err.to_string().contains("in use by another run"), "{err}");
        drop(j);
        assert!(Journal::open(&p).is_ok());
    }

    #[test]
    fn a_line_that_is_not_utf8_is_passed_over_like_any_damaged_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let mut text = b"{\"username\":\"a\",\"status\":\"registered\"}\n".to_vec();
        text.extend_from_slice(b"{\"username\":\"\xff\xfe\",\"status\":\"pending\"}\n");
        text.extend_from_slice(
            b"{\"username\":\"b\",\"status\":\"pending\",\"password\":\"pw\"}\n",
        );
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.damaged, [2]);
        assert_eq!(j.prior("a").unwrap().status, Status::Registered);
        assert_eq!(j.prior("b").unwrap().status, Status::Pending);
        assert!(j.damage_warning().unwrap().contains("(the first: line 2)"));
    }

    #[test]
    fn results_files_that_are_not_ours_alone_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.jsonl");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = Journal::open(&link).err().unwrap().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = Journal::open(&target).err().unwrap().to_string();
        assert!(err.contains("can be written by other users"), "{err}");
        assert!(Journal::open(dir.path()).is_err());
        let other = dir.path().join("other.jsonl");
        std::fs::write(&other, "").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        // SAFETY: a path this test owns; as root, give it to nobody.
        let c = std::ffi::CString::new(other.to_str().unwrap()).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
            let err = Journal::open(&other).err().unwrap().to_string();
            assert!(err.contains("belongs to another user"), "{err}");
        }
        // Readable by others but ours: made private, and used.
        let mine = dir.path().join("mine.jsonl");
        std::fs::write(&mine, "").unwrap();
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Journal::open(&mine).is_ok());
        let mode = std::fs::metadata(&mine).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
