//! Prune (`--ensure --prune`): which local accounts the inventory does not
//! name, found by paging through the server's list once the rows are done.
//! Each one is then a record of its own, `active: false` (or `locked:
//! true`), through the read and apply stages and their hooks, which may
//! veto it like any change.
//!
//! Never pruned: the admin token's own account, accounts of application
//! services, guests, accounts already deactivated (already locked, with
//! `--prune=lock`), and those `--keep` or the config's `prune_keep` name.
//! The bound ([`bound`]) is the batch's to apply: a run that would prune
//! more prunes nobody.

use crate::backend::Backend;
use crate::error::Error;
use crate::options::Prune;

/// What the server's list came to.
#[derive(Debug, Default)]
pub struct Candidates {
    /// The accounts to prune, by user ID, up to one past `keep_at_most`.
    pub users: Vec<String>,
    /// How many there are in all.
    pub count: u64,
    /// The server's active accounts (not deactivated, not guests).
    pub active: u64,
}

/// The most accounts one run may prune: `max`, or a third of the active
/// accounts, whichever is smaller.
pub fn bound(max: u64, active: u64) -> u64 {
    max.min(active / 3)
}

/// The accounts the inventory does not name: `named` says whether a
/// localpart is a row's; `owner` is the admin token's user ID; `keep`, the
/// user IDs, localparts and globs never pruned. At most `keep_at_most + 1`
/// user IDs are kept in memory (a run past the bound prunes nobody).
pub fn candidates(
    backend: &dyn Backend,
    how: Prune,
    named: &dyn Fn(&str) -> bool,
    owner: Option<&str>,
    keep: &[String],
    keep_at_most: u64,
) -> Result<Candidates, Error> {
    let mut out = Candidates::default();
    let mut from: Option<String> = None;
    loop {
        let page = backend.list(from.as_deref()).map_err(|e| Error::Hinted {
            cause: Box::new(Error::Server(e)),
            hint: "nobody is pruned: the server's list of accounts did not read whole".into(),
        })?;
        for u in &page.users {
            if u.deactivated || u.guest {
                continue;
            }
            out.active += 1;
            let localpart = crate::state::localpart(&u.user_id);
            if (how == Prune::Lock && u.locked)
                || named(localpart)
                || owner == Some(u.user_id.as_str())
                || keep
                    .iter()
                    .any(|k| glob(k, &u.user_id) || glob(k, localpart))
            {
                continue;
            }
            // An application service's account is its own to manage.
            match backend.lookup(&u.user_id)? {
                Some(a) if a.appservice_id.is_none() && a.active => {}
                _ => continue,
            }
            out.count += 1;
            if out.count <= keep_at_most.saturating_add(1) {
                out.users.push(u.user_id.clone());
            }
        }
        match page.next {
            Some(n) if !page.users.is_empty() => from = Some(n),
            _ => return Ok(out),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters
/// and `?` any one (case-insensitively, as localparts compare).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_the_bound() {
        assert!(glob("svc-*", "svc-backup"));
        assert!(glob("@bot?:hs", "@bot1:hs"));
        assert!(glob("ALICE", "alice"));
        assert!(!glob("svc-*", "alice"));
        assert!(!glob("a?", "a"));
        assert!(glob("*", ""));
        assert_eq!(bound(10, 9), 3);
        assert_eq!(bound(10, 300), 10);
        assert_eq!(bound(10, 2), 0);
    }
}
