//! Reading what the operator points the tool at, within bounds: every file
//! is opened without blocking, must be a regular file (a FIFO, a device or a
//! directory is refused at once, never waited on or read forever), and is
//! read up to a stated size. Batch input, which may be a pipe, is bounded
//! per line instead.

use std::fmt;
use std::io::{BufRead, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a config file (`-c`) may hold.
pub const CONFIG_MAX: u64 = 4 << 20;
/// The most a file holding a secret or a password may hold.
pub const SECRET_MAX: u64 = 64 << 10;
/// The most a `--cacert` or `--hook` file may hold.
pub const CODE_MAX: u64 = 1 << 20;
/// The longest line of a batch file (a CSV record, a JSON line, a YAML line).
pub const LINE_MAX: usize = 64 << 10;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not a regular file: what it is instead.
    NotRegular(&'static str),
    /// Larger than the bound (bytes).
    TooLarge(u64),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => f.write_str(&io_cause(e)),
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge(max) => write!(f, "it is larger than {}", size(*max)),
        }
    }
}

/// `64 KiB`, `4 MiB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// An I/O error without Rust's "(os error N)" tail.
pub fn io_cause(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Reads a regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "something else"
        }));
    }
    read_at_most(file, max)
}

/// Reads at most `max` bytes of `r`; more is an error.
pub fn read_at_most(r: impl Read, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(buf)
}

/// Passes a reader through, failing once a line runs past [`LINE_MAX`]
/// bytes: a batch row never holds more than that in memory, whatever the
/// input (a file with no newline, `/dev/zero`).
pub struct LineBound<R> {
    inner: R,
    run: usize,
    failed: bool,
}

impl<R> LineBound<R> {
    pub fn new(inner: R) -> Self {
        LineBound {
            inner,
            run: 0,
            failed: false,
        }
    }
}

impl<R: BufRead> Read for LineBound<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineBound<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.failed {
            return Err(too_long());
        }
        let run = self.run;
        let buf = self.inner.fill_buf()?;
        // Hand out no more than the rest of the allowed line.
        let limit = match buf.iter().position(|b| *b == b'\n') {
            Some(i) if run + i <= LINE_MAX => buf.len(),
            _ => LINE_MAX.saturating_sub(run).min(buf.len()),
        };
        if limit == 0 && !buf.is_empty() {
            self.failed = true;
            return Err(too_long());
        }
        Ok(&buf[..limit])
    }

    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let taken = &buf[..n.min(buf.len())];
            self.run = match taken.iter().rposition(|b| *b == b'\n') {
                Some(i) => n - i - 1,
                None => self.run + n,
            };
        }
        self.inner.consume(n);
    }
}

fn too_long() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a line is longer than {}", size(LINE_MAX as u64)),
    )
}

/// How deep YAML flow collections (`[`, `{`) may nest: YAML's scanner does
/// work for every open level at every token, so deep nesting is quadratic.
pub const YAML_NESTING_MAX: usize = 64;

/// Refuses YAML text whose flow collections nest deeper than
/// [`YAML_NESTING_MAX`], before a parser spends minutes on it. Brackets
/// inside quotes count too: a real file never comes near the bound.
pub fn check_yaml_nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > YAML_NESTING_MAX {
                    return Err(format!(
                        "its brackets nest deeper than {YAML_NESTING_MAX} levels"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a secret from a file, stripped of surrounding whitespace.
pub fn read_secret_file(
    path: &Path,
    what: &str,
) -> Result<crate::secret::Secret, crate::error::Error> {
    let bytes = read_regular(path, SECRET_MAX).map_err(|e| {
        crate::error::Error::Config(format!("cannot read {what} file {}: {e}", path.display()))
    })?;
    let text = crate::secret::Secret::new(String::from_utf8_lossy(&bytes));
    let secret = crate::secret::Secret::new(text.expose().trim());
    if secret.is_empty() {
        return Err(crate::error::Error::Config(format!(
            "{what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

/// Warns when a file holding a secret can be read by every local user.
pub fn warn_if_world_readable(path: &Path, what: &str, console: &crate::console::Console) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            console.warn(&format!(
                "{what} {} can be read by every local user; chmod o-r it",
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 100]).unwrap();
        assert_eq!(read_regular(&p, 100).unwrap().len(), 100);
        assert!(matches!(read_regular(&p, 99), Err(ReadError::TooLarge(99))));
        assert!(matches!(
            read_regular(dir.path(), 99),
            Err(ReadError::NotRegular("a directory"))
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 99),
            Err(ReadError::NotRegular("a device"))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_regular(&fifo, 99),
            Err(ReadError::NotRegular("a FIFO"))
        ));
    }

    #[test]
    fn yaml_nesting() {
        assert!(check_yaml_nesting("a: [1, {b: [2]}]\n").is_ok());
        assert!(check_yaml_nesting(&"[".repeat(65)).is_err());
        assert!(check_yaml_nesting(&"[]".repeat(10_000)).is_ok());
    }

    #[test]
    fn lines_are_bounded() {
        let ok = format!("{}\n{}\n", "a".repeat(LINE_MAX), "b".repeat(10));
        let mut r = LineBound::new(std::io::BufReader::with_capacity(1000, ok.as_bytes()));
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, ok);
        let bad = "a".repeat(LINE_MAX + 1);
        let mut r = LineBound::new(std::io::BufReader::new(bad.as_bytes()));
        let err = r.read_to_string(&mut String::new()).unwrap_err();
        assert!(err.to_string().contains("longer than 64 KiB"), "{err}");
        let zero = std::fs::File::open("/dev/zero").unwrap();
        let mut r = LineBound::new(std::io::BufReader::new(zero));
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
