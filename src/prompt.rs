//! Asking the person at the terminal for what the command line left out.
//!
//! Questions are printed on standard output and answered with one line of
//! standard input, so a terminal and a pipe both work
//! (`echo alice | register_new_matrix_user ...`). Passwords are asked and
//! read on the controlling terminal itself (`/dev/tty`) with echo off, as
//! the original's getpass does, or from standard input when there is no
//! terminal.
//! Batch runs and hooks never prompt: they use [`NoPrompts`].

use crate::error::Error;
use crate::secret::Secret;
use std::io::{BufRead, Write};

pub trait Prompter {
    /// One line of text; the default is returned for an empty answer.
    fn text(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error>;
    /// A line typed without echo.
    fn password(&mut self, prompt: &str) -> Result<Secret, Error>;
}

/// Puts back the terminal settings a hidden prompt changed, if one is open
/// (an interrupt during the prompt).
/// Whether one was.
pub fn restore_terminal() -> bool {
    echo::restore()
}

/// Asks a yes/no question on the terminal; only `y` or `yes` is a yes.
pub fn confirm(question: &str) -> Result<bool, Error> {
    let answer = Terminal.text(&format!("{question} [y/N]"), None)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Prompts on the terminal, or reads standard input when it is not one.
#[derive(Debug, Default)]
pub struct Terminal;

impl Prompter for Terminal {
    fn text(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error> {
        // The terminal echoes and edits the line itself (cooked mode), so a
        // terminal and a pipe are read the same way.
        let shown = match default {
            Some(d) => format!("{prompt} [{d}]: "),
            None => format!("{prompt}: "),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(shown.as_bytes());
        let _ = out.flush();
        let answer = read_stdin_line(prompt)?;
        Ok(match (answer.is_empty(), default) {
            (true, Some(d)) => d.to_string(),
            _ => answer,
        })
    }

    fn password(&mut self, prompt: &str) -> Result<Secret, Error> {
        let fail =
            |e: std::io::Error| Error::Input(format!("cannot read the answer to {prompt:?}: {e}"));
        // As the original's getpass: the prompt and the answer on the
        // controlling terminal itself, whatever standard output and error
        // are (`2>/dev/null` hides nothing), with echo off while the line
        // is typed; the terminal is restored after, and on Ctrl-C too.
        if let Ok(mut tty) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            tty.write_all(format!("{prompt}: ").as_bytes())
                .and_then(|()| tty.flush())
                .map_err(fail)?;
            let _restore = echo::Restore::arm();
            let line = echo::read_hidden(&tty).map_err(fail)?;
            let _ = tty.write_all(b"\n");
            return Ok(Secret::new(line));
        }
        // No terminal at all: read the line from standard input, with the
        // prompt on standard error.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{prompt}: ");
        let _ = err.flush();
        read_stdin_line(prompt).map(Secret::new)
    }
}

fn read_stdin_line(prompt: &str) -> Result<String, Error> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err(Error::Input(format!(
            "no answer to {prompt:?}: standard input is closed (give the value as a flag)"
        ))),
        Ok(_) => {
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
            Ok(trimmed.to_string())
        }
        Err(e) => Err(Error::Input(format!(
            "cannot read the answer to {prompt:?}: {e}"
        ))),
    }
}

/// For runs where nobody can be asked: a missing value is an error.
#[derive(Debug, Default)]
pub struct NoPrompts;

impl Prompter for NoPrompts {
    fn text(&mut self, prompt: &str, _: Option<&str>) -> Result<String, Error> {
        Err(Error::Input(format!(
            "{prompt}: no value given, and nobody can be asked here"
        )))
    }

    fn password(&mut self, prompt: &str) -> Result<Secret, Error> {
        self.text(prompt, None).map(Secret::new)
    }
}

/// Puts the terminal's echo back when Ctrl-C ends the tool during a hidden
/// prompt (echo is off while the password is typed).
mod echo {
    use std::sync::Mutex;

    /// The terminal settings from before the prompt, while one is open.
    static SAVED: Mutex<Option<(i32, libc::termios)>> = Mutex::new(None);

    pub struct Restore;

    impl Restore {
        /// Saves the settings of the terminal the prompt reads from, which an
        /// interrupt puts back ([`super::restore_terminal`]).
        pub fn arm() -> Restore {
            use std::os::fd::AsRawFd;
            let tty = std::fs::File::open("/dev/tty");
            let fd = match &tty {
                Ok(f) => f.as_raw_fd(),
                Err(_) => libc::STDIN_FILENO,
            };
            let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
            // SAFETY: tcgetattr writes a termios into the buffer when it returns 0.
            if unsafe { libc::tcgetattr(fd, t.as_mut_ptr()) } == 0 {
                // SAFETY: initialised by the successful call above.
                let t = unsafe { t.assume_init() };
                // A duplicate stays open for the handler after `tty` is dropped.
                // SAFETY: dup on a descriptor we hold.
                let keep = unsafe { libc::dup(fd) };
                if keep >= 0 {
                    if let Ok(mut s) = SAVED.lock() {
                        *s = Some((keep, t));
                    }
                }
            }
            Restore
        }
    }

    /// One line from the terminal `tty`, typed with echo off.
    pub fn read_hidden(tty: &std::fs::File) -> std::io::Result<String> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a termios into the buffer when it returns 0.
        if unsafe { libc::tcgetattr(fd, t.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful call above.
        let before = unsafe { t.assume_init() };
        let mut quiet = before;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a termios read from this descriptor, with echo cleared.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Byte by byte up to the line's end: nothing past it is taken.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        let mut reader = tty;
        let result = loop {
            match reader.read(&mut byte) {
                Ok(0) => break Ok(()),
                Ok(_) if byte[0] == b'\n' => break Ok(()),
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // SAFETY: the settings read above, put back.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &before) };
        result?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub fn restore() -> bool {
        if let Ok(mut s) = SAVED.lock() {
            if let Some((fd, t)) = s.take() {
                // SAFETY: fd is our own duplicate; t came from tcgetattr on it.
                unsafe {
                    libc::tcsetattr(fd, libc::TCSANOW, &t);
                    libc::close(fd);
                }
                return true;
            }
        }
        false
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            // The prompt restored the settings itself; just let go.
            if let Ok(mut s) = SAVED.lock() {
                if let Some((fd, _)) = s.take() {
                    // SAFETY: fd is our own duplicate.
                    unsafe { libc::close(fd) };
                }
            }
        }
    }
}
