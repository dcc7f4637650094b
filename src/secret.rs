//! Values that must never be printed: the shared secret, passwords and
//! access tokens.
//!
//! [`Secret`] wipes its memory when dropped, has no `Display`, and its `Debug`
//! prints a fixed placeholder, so a stray `{:?}` or an error message cannot
//! leak it. The only way to the text is [`Secret::expose`], which is easy to
//! find in review. [`generate_password`] makes new ones from the operating
//! system's random source.

use rand::TryRngCore;
use std::fmt;
use zeroize::Zeroizing;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret text. Callers must not print it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Letters and digits without look-alikes (no I, O, l, 0, 1).
pub const PASSWORD_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/// What `symbols = true` adds to a generated password's alphabet.
pub const SYMBOLS: &str = "-_.!~*@#%^+=";

/// A password of `length` characters drawn uniformly from `alphabet` with the
/// operating system's random source.
pub fn generate_password(length: usize, alphabet: &str) -> Result<String, String> {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut unique = chars.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() < 2 {
        return Err("the alphabet needs at least two different characters".into());
    }
    if !(8..=512).contains(&length) {
        return Err(format!("length must be 8 to 512, not {length}"));
    }
    let n = unique.len() as u32;
    // Rejection sampling keeps every character equally likely; the random
    // bytes come in one read, topped up in the rare case too many are rejected.
    let zone = u32::MAX - (u32::MAX % n);
    let mut out = String::with_capacity(length);
    let mut have = 0;
    let mut buf = vec![0u8; 4 * length + 32];
    while have < length {
        rand::rngs::OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| format!("the system's random source failed: {e}"))?;
        for word in buf.chunks_exact(4) {
            let x = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            if x < zone && have < length {
                out.push(unique[(x % n) as usize]);
                have += 1;
            }
        }
    }
    buf.fill(0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_use_the_alphabet_and_length() {
        let a = generate_password(64, PASSWORD_ALPHABET).unwrap();
        assert_eq!(a.chars().count(), 64);
        assert!(a.chars().all(|c| PASSWORD_ALPHABET.contains(c)));
        assert_ne!(a, generate_password(64, PASSWORD_ALPHABET).unwrap());
        assert!(generate_password(7, PASSWORD_ALPHABET).is_err());
        assert!(generate_password(20, "aaaa").is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}
