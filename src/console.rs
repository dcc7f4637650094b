//! Where the tool's words go.
//!
//! Two kinds of text leave the tool. *Status lines* are the ones scripts grep
//! (`Sending registration request...`, `Success!`, `ERROR! Received ...`): they
//! go to standard output, word for word as the original prints them, or to
//! standard error when standard output carries machine-readable results.
//! *Diagnostics* (warnings, errors, verbose detail) always go to standard error.
//! Nothing here ever receives a secret; see [`crate::secret`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// How chatty the tool is: -q gives `Quiet`, each -v one step more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

impl Level {
    pub fn from_flags(quiet: bool, verbose: u8) -> Level {
        match (quiet, verbose) {
            (true, _) => Level::Quiet,
            (false, 0) => Level::Normal,
            (false, 1) => Level::Verbose,
            _ => Level::Debug,
        }
    }
}

#[derive(Debug)]
pub struct Console {
    level: Level,
    status_to_stderr: bool,
    silent: AtomicBool,
}

impl Console {
    pub fn new(level: Level, status_to_stderr: bool) -> Self {
        Console {
            level,
            status_to_stderr,
            silent: AtomicBool::new(false),
        }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Stops status lines (batch runs report per row elsewhere).
    pub fn silence_status(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }

    /// A status line of the original tool's, kept word for word.
    pub fn status(&self, line: &str) {
        if self.level == Level::Quiet || self.silent.load(Ordering::Relaxed) {
            return;
        }
        self.status_always(line);
    }

    /// A status line that reports a failure: shown even with -q.
    pub fn status_always(&self, line: &str) {
        if self.silent.load(Ordering::Relaxed) {
            return;
        }
        if self.status_to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    pub fn error(&self, msg: &str) {
        let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
    }

    pub fn warn(&self, msg: &str) {
        if self.level >= Level::Normal {
            let _ = writeln!(std::io::stderr().lock(), "warning: {msg}");
        }
    }

    pub fn verbose(&self, msg: &str) {
        if self.level >= Level::Verbose {
            let _ = writeln!(std::io::stderr().lock(), "{msg}");
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.level >= Level::Debug {
            let _ = writeln!(std::io::stderr().lock(), "debug: {msg}");
        }
    }
}
