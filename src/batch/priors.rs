//! What the results file says of each username, kept small enough to resume
//! a file of a million lines: a row that is settled (`registered`,
//! `exists`, `updated`, ...) costs 13 bytes, a 96-bit hash of its username
//! and a state byte, in one sorted vector; only rows still open (`pending`,
//! `failed`, `incomplete`), whose passwords and undone steps a rerun needs,
//! are kept in full.
//!
//! The last line for a username decides, except that a `rejected` line
//! never hides an earlier one and a `duplicate` line is never an outcome.

use crate::report::{Report, Status};
use std::collections::HashMap;

/// What an earlier run recorded for a username.
#[derive(Debug, Clone)]
pub struct Prior {
    pub status: Status,
    /// For open rows; settled rows keep only their status.
    pub user_id: Option<String>,
    pub password: Option<crate::secret::Secret>,
    /// With `incomplete`: what is left to do.
    pub undone: Option<crate::record::Undone>,
    /// The admin flag the attempt registered with, for open rows.
    pub admin: Option<bool>,
}

/// The statuses, by their code in the state byte.
const STATUSES: [Status; 12] = [
    Status::Pending,
    Status::Registered,
    Status::Exists,
    Status::Rejected,
    Status::Failed,
    Status::DryRun,
    Status::Incomplete,
    Status::Duplicate,
    Status::Updated,
    Status::Unchanged,
    Status::Deactivated,
    Status::Plan,
];

fn code(s: Status) -> u8 {
    STATUSES.iter().position(|x| *x == s).unwrap_or(0) as u8
}

/// Whether a rerun needs more of the row than its status.
fn open(s: Status) -> bool {
    matches!(s, Status::Pending | Status::Failed | Status::Incomplete)
}

type Hash = [u8; 12];

/// The hash a username is found by (its key, lowercased and trimmed).
pub fn hash(key: &str) -> Hash {
    use sha1::{Digest, Sha1};
    let d = Sha1::digest(key.as_bytes());
    let mut h = [0u8; 12];
    h.copy_from_slice(&d[..12]);
    h
}

/// Builds the store from the file's lines, in order.
pub struct Builder {
    lines: Vec<[u8; 13]>,
    open: HashMap<String, Prior>,
}

impl Builder {
    /// For a file of about `lines` lines.
    pub fn with_capacity(lines: usize) -> Builder {
        Builder {
            lines: Vec::with_capacity(lines),
            open: HashMap::new(),
        }
    }

    /// One line's result, for the username key `key`.
    pub fn add(&mut self, key: String, r: Report) {
        if r.status == Status::Duplicate {
            return;
        }
        let mut line = [0u8; 13];
        line[..12].copy_from_slice(&hash(&key));
        line[12] = code(r.status);
        self.lines.push(line);
        if r.status == Status::Rejected {
            // Says nothing about the server: an open row stays as it was.
            return;
        }
        if !open(r.status) {
            self.open.remove(&key);
            return;
        }
        let entry = self.open.entry(key).or_insert(Prior {
            status: r.status,
            user_id: None,
            password: None,
            undone: None,
            admin: None,
        });
        entry.status = r.status;
        entry.admin = r.admin.or(entry.admin);
        entry.undone = r.undone;
        entry.user_id = r.user_id.or(entry.user_id.take());
        if r.password.is_some() {
            entry.password = r.password;
        }
    }

    /// Each username's last state, sorted for lookups.
    pub fn build(mut self) -> Priors {
        // Stable: a username's lines keep their order.
        self.lines.sort_by(|a, b| a[..12].cmp(&b[..12]));
        let mut out = 0;
        let mut i = 0;
        let n = self.lines.len();
        while i < n {
            let mut j = i;
            let mut winner: Option<u8> = None;
            let mut rejected = None;
            while j < n && self.lines[j][..12] == self.lines[i][..12] {
                let s = STATUSES[usize::from(self.lines[j][12]) % STATUSES.len()];
                if s == Status::Rejected {
                    rejected = Some(self.lines[j][12]);
                } else {
                    winner = Some(self.lines[j][12]);
                }
                j += 1;
            }
            let mut line = self.lines[i];
            line[12] = winner.or(rejected).unwrap_or(0);
            self.lines[out] = line;
            out += 1;
            i = j;
        }
        self.lines.truncate(out);
        Priors {
            settled: self.lines,
            open: self.open,
        }
    }
}

/// Each username's last state.
pub struct Priors {
    settled: Vec<[u8; 13]>,
    open: HashMap<String, Prior>,
}

impl Priors {
    /// What the file says of the username key `key`.
    pub fn get(&self, key: &str) -> Option<Prior> {
        let h = hash(key);
        let at = self
            .settled
            .binary_search_by(|line| line[..12].cmp(&h[..]))
            .ok()?;
        let state = self.settled[at][12];
        let status = STATUSES[usize::from(state) % STATUSES.len()];
        if open(status) {
            if let Some(p) = self.open.get(key) {
                return Some(p.clone());
            }
        }
        Some(Prior {
            status,
            user_id: None,
            password: None,
            undone: None,
            admin: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, status: Status, password: Option<&str>) -> (String, Report) {
        let mut r = Report::empty();
        r.username = Some(name.into());
        r.status = status;
        r.password = password.map(crate::secret::Secret::new);
        (name.into(), r)
    }

    #[test]
    fn the_last_line_decides_and_open_rows_keep_their_passwords() {
        let mut b = Builder::with_capacity(8);
        for (k, r) in [
            line("a", Status::Pending, Some("pw-a")),
            line("a", Status::Registered, None),
            line("b", Status::Pending, Some("pw-b")),
            line("b", Status::Rejected, None),
            line("c", Status::Rejected, None),
            line("d", Status::Registered, None),
            line("d", Status::Deactivated, None),
            line("e", Status::Incomplete, Some("pw-e")),
            line("e", Status::Duplicate, None),
        ] {
            b.add(k, r);
        }
        let p = b.build();
        let a = p.get("a").unwrap();
        assert_eq!((a.status, a.password.is_none()), (Status::Registered, true));
        let b = p.get("b").unwrap();
        assert_eq!(b.status, Status::Pending);
        assert_eq!(b.password.unwrap().expose(), "pw-b");
        assert_eq!(p.get("c").unwrap().status, Status::Rejected);
        assert_eq!(p.get("d").unwrap().status, Status::Deactivated);
        assert_eq!(p.get("e").unwrap().status, Status::Incomplete);
        assert!(p.get("f").is_none());
    }
}
