//! The homeserver's own password rules, read from its config
//! (`password_config.policy`), and whether its passwords log in at all.
//!
//! Synapse applies the policy when users register themselves or change a
//! password, but not on the shared-secret endpoint this tool uses; the
//! validate stage applies it here instead, with Synapse's rules and words,
//! and every password the tool generates satisfies it.

use crate::secret::{SYMBOLS, generate_password};
use serde_yaml::{Mapping, Value};

/// A rule: whether it is on, what a character must be, the words, the key.
type Rule = (bool, fn(&char) -> bool, &'static str, &'static str);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub enabled: bool,
    pub minimum_length: usize,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
}

fn section<'a>(cfg: &'a Mapping, key: &str) -> Option<&'a Mapping> {
    cfg.get(key).and_then(Value::as_mapping)
}

/// A flag as Synapse reads it: absent is false, else Python's truthiness.
fn flag(m: &Mapping, key: &str) -> bool {
    m.get(key).is_some_and(crate::yaml11::truthy)
}

impl PasswordPolicy {
    /// The policy a merged homeserver config sets (off when it sets none).
    pub fn from_config(cfg: &Mapping) -> PasswordPolicy {
        let Some(p) = section(cfg, "password_config").and_then(|pc| section(pc, "policy")) else {
            return PasswordPolicy::default();
        };
        PasswordPolicy {
            enabled: flag(p, "enabled"),
            minimum_length: p
                .get("minimum_length")
                .and_then(Value::as_u64)
                .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            require_digit: flag(p, "require_digit"),
            require_symbol: flag(p, "require_symbol"),
            require_lowercase: flag(p, "require_lowercase"),
            require_uppercase: flag(p, "require_uppercase"),
        }
    }

    /// The first rule `password` breaks, in Synapse's order and words, with
    /// the config key that sets it.
    pub fn check(&self, password: &str) -> Result<(), (String, &'static str)> {
        if !self.enabled {
            return Ok(());
        }
        if password.chars().count() < self.minimum_length {
            return Err((
                format!(
                    "The password must be at least {} characters long",
                    self.minimum_length
                ),
                "minimum_length",
            ));
        }
        let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
        let rules: [Rule; 4] = [
            (
                self.require_digit,
                |c| c.is_ascii_digit(),
                "one digit",
                "require_digit",
            ),
            (
                self.require_symbol,
                |c| !c.is_ascii_alphanumeric(),
                "one symbol",
                "require_symbol",
            ),
            (
                self.require_uppercase,
                |c| c.is_ascii_uppercase(),
                "one uppercase letter",
                "require_uppercase",
            ),
            (
                self.require_lowercase,
                |c| c.is_ascii_lowercase(),
                "one lowercase letter",
                "require_lowercase",
            ),
        ];
        for (on, test, what, key) in rules {
            if on && !has(test) {
                return Err((format!("The password must include at least {what}"), key));
            }
        }
        Ok(())
    }

    /// A password from `alphabet`, at least `length` long, that this policy
    /// accepts: no shorter than its minimum, with symbols added to the
    /// alphabet when it asks for one, drawn again until every rule holds.
    pub fn generate(&self, length: usize, alphabet: &str) -> Result<String, String> {
        let mut alphabet = alphabet.to_string();
        let mut length = length;
        if self.enabled {
            length = length.max(self.minimum_length);
            if self.require_symbol && alphabet.chars().all(|c| c.is_ascii_alphanumeric()) {
                alphabet.push_str(SYMBOLS);
            }
        }
        for _ in 0..1000 {
            let pw = generate_password(length, &alphabet)?;
            if self.check(&pw).is_ok() {
                return Ok(pw);
            }
        }
        Err(
            "cannot generate a password the server's password policy accepts from this alphabet"
                .into(),
        )
    }
}

/// Why a password given to this server will not log in, if its config says
/// so: password login turned off, or authentication delegated.
pub fn password_login_off(cfg: &Mapping) -> Option<&'static str> {
    let delegated = section(cfg, "matrix_authentication_service")
        .is_some_and(|m| flag(m, "enabled"))
        || section(cfg, "experimental_features")
            .and_then(|e| section(e, "msc3861"))
            .is_some_and(|m| flag(m, "enabled"));
    let pc = section(cfg, "password_config");
    let enabled = pc.and_then(|pc| pc.get("enabled"));
    // As Synapse: `password_config.get("enabled", not delegated)`, judged by
    // truthiness; `only_for_reauth` keeps passwords for re-authentication only.
    match (delegated, enabled) {
        (_, Some(Value::String(s))) if s == "only_for_reauth" => {
            Some("password_config.enabled is only_for_reauth")
        }
        (_, Some(v)) if !crate::yaml11::truthy(v) => Some("password_config.enabled is false"),
        (true, None) => Some("authentication is delegated (matrix_authentication_service)"),
        _ if pc
            .and_then(|pc| pc.get("localdb_enabled"))
            .is_some_and(|v| !crate::yaml11::truthy(v)) =>
        {
            Some("password_config.localdb_enabled is false")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn rules_in_synapse_order_and_words() {
        let p = PasswordPolicy::from_config(&cfg(
            "password_config: {policy: {enabled: true, minimum_length: 12, require_digit: true, require_symbol: true, require_uppercase: true, require_lowercase: true}}",
        ));
        assert_eq!(p.check("short").unwrap_err().1, "minimum_length");
        assert_eq!(p.check("longenoughbutno").unwrap_err().1, "require_digit");
        assert_eq!(p.check("longenough1butno").unwrap_err().1, "require_symbol");
        assert_eq!(
            p.check("longenough1!butno").unwrap_err().1,
            "require_uppercase"
        );
        assert_eq!(
            p.check("LONGENOUGH1!BUTNO").unwrap_err().1,
            "require_lowercase"
        );
        assert!(p.check("Long-enough1butno").is_ok());
        assert!(p.check("Ünïcode-Counts1x").is_ok());
        // As Synapse's [A-Z]: a non-ASCII capital is no uppercase letter.
        assert!(p.check("Ünïcode-counts1x").is_err());
        // Off unless enabled, whatever the rules say.
        let off =
            PasswordPolicy::from_config(&cfg("password_config: {policy: {minimum_length: 50}}"));
        assert!(off.check("x").is_ok());
        for _ in 0..50 {
            let g = p.generate(8, crate::secret::PASSWORD_ALPHABET).unwrap();
            assert!(p.check(&g).is_ok(), "{g}");
        }
    }

    #[test]
    fn passwords_that_will_not_log_in() {
        assert_eq!(password_login_off(&cfg("server_name: x")), None);
        assert!(password_login_off(&cfg("password_config: {enabled: false}")).is_some());
        assert!(password_login_off(&cfg("password_config: {localdb_enabled: false}")).is_some());
        assert!(
            password_login_off(&cfg("matrix_authentication_service: {enabled: true}")).is_some()
        );
        assert!(
            password_login_off(&cfg("experimental_features: {msc3861: {enabled: true}}")).is_some()
        );
    }
}
