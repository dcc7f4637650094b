//! The usernames a batch has seen so far, for refusing a row that repeats
//! an earlier one, in little memory: 12 bytes a slot (a 64-bit keyed
//! fingerprint of the name and the line it was first seen on), in 256
//! open-addressing tables, sized up front when the rows were counted and
//! otherwise each grown on its own, so no step needs a second copy of the
//! whole set. A million usernames take about 16 MB.
//!
//! Two different names share a fingerprint with a chance of about n²/2⁶⁵
//! (3·10⁻⁸ for a million rows); the hash key is drawn at random for each
//! run, so no file can be built to collide.

use std::hash::{BuildHasher, RandomState};

const SHARDS: usize = 256;
/// A table grows when it is this full (numerator over 100).
const MAX_LOAD: usize = 85;

#[derive(Default, Clone)]
struct Shard {
    /// Fingerprints; 0 marks an empty slot.
    keys: Vec<u64>,
    lines: Vec<u32>,
    len: usize,
}

pub struct Seen {
    hasher: RandomState,
    shards: Vec<Shard>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            hasher: RandomState::new(),
            shards: vec![Shard::default(); SHARDS],
        }
    }
}

impl Seen {
    /// A set sized for `rows` names up front (when the batch file was
    /// counted), so it never grows on the way.
    pub fn with_expected(rows: u64) -> Seen {
        let mut s = Seen::default();
        let per_shard = usize::try_from(rows / SHARDS as u64).unwrap_or(usize::MAX / 2);
        // Room for a little more than the average shard's share.
        let cap = (per_shard + 4 * per_shard.isqrt() + 16) * 100 / MAX_LOAD + 1;
        for shard in &mut s.shards {
            shard.keys = vec![0; cap];
            shard.lines = vec![0; cap];
        }
        s
    }

    /// Records `name` as first seen on `line`; if it was seen before, the
    /// line it was first seen on.
    pub fn first_or_insert(&mut self, name: &str, line: usize) -> Option<usize> {
        let fp = self.hasher.hash_one(name).max(1);
        let shard = &mut self.shards[(fp >> 56) as usize];
        if (shard.len + 1) * 100 > shard.keys.len() * MAX_LOAD {
            shard.grow();
        }
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        shard.first_or_insert(fp, line).map(|l| l as usize)
    }
}

impl Seen {
    /// Whether `name` was seen (a name that shares a fingerprint with one
    /// seen reads as seen: the safe side for `--prune`).
    pub fn contains(&self, name: &str) -> bool {
        let fp = self.hasher.hash_one(name).max(1);
        let shard = &self.shards[(fp >> 56) as usize];
        let cap = shard.keys.len();
        if cap == 0 {
            return false;
        }
        let mut i = Shard::slot(fp, cap);
        loop {
            match shard.keys[i] {
                0 => return false,
                k if k == fp => return true,
                _ => i = (i + 1) % cap,
            }
        }
    }
}

impl Shard {
    fn slot(fp: u64, cap: usize) -> usize {
        // The fingerprint's low bits, spread over the table (the top byte
        // chose the shard).
        (((fp & 0x00ff_ffff_ffff_ffff) as u128 * cap as u128) >> 56) as usize
    }

    fn first_or_insert(&mut self, fp: u64, line: u32) -> Option<u32> {
        let cap = self.keys.len();
        let mut i = Self::slot(fp, cap);
        loop {
            match self.keys[i] {
                0 => {
                    self.keys[i] = fp;
                    self.lines[i] = line;
                    self.len += 1;
                    return None;
                }
                k if k == fp => return Some(self.lines[i]),
                _ => i = (i + 1) % cap,
            }
        }
    }

    fn grow(&mut self) {
        let cap = (self.keys.len() * 5 / 4).max(16);
        let keys = std::mem::replace(&mut self.keys, vec![0; cap]);
        let lines = std::mem::replace(&mut self.lines, vec![0; cap]);
        self.len = 0;
        for (k, l) in keys.into_iter().zip(lines) {
            if k != 0 {
                self.first_or_insert(k, l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_found_with_their_first_line() {
        let mut s = Seen::default();
        for i in 0..200_000 {
            assert_eq!(s.first_or_insert(&format!("user{i}"), i + 2), None);
        }
        assert_eq!(s.first_or_insert("user7", 1_000_000), Some(9));
        assert_eq!(s.first_or_insert("user199999", 5), Some(200_001));
        assert_eq!(s.first_or_insert("someone-else", 6), None);
        assert_eq!(s.first_or_insert("someone-else", 7), Some(6));
        assert!(s.contains("user7") && !s.contains("nobody"));
        assert!(!Seen::default().contains("x"));
        // Sized ahead for fewer than it gets: it grows.
        let mut s = Seen::with_expected(1000);
        for i in 0..50_000 {
            assert_eq!(s.first_or_insert(&i.to_string(), i), None);
        }
        assert_eq!(s.first_or_insert("49999", 0), Some(49_999));
    }
}
