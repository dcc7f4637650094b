//! Sign: the HMAC-SHA1 that proves knowledge of the shared secret.
//!
//! The message is `nonce NUL username NUL password NUL ("admin"|"notadmin")`,
//! then `NUL user_type` only when a user type is given; the key is the shared
//! secret; the MAC travels as lowercase hex. The username is signed exactly as
//! it is sent (the server lowercases it only afterwards).

use crate::error::Error;
use crate::record::Record;
use crate::stages::Ctx;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let resolved = ctx.resolved()?;
    let missing = |what: &str| Error::Input(format!("cannot sign: no {what}"));
    let nonce = rec.nonce.as_deref().ok_or_else(|| missing("nonce"))?;
    let username = rec.username.as_deref().ok_or_else(|| missing("username"))?;
    let password = rec.password.as_ref().ok_or_else(|| missing("password"))?;
    rec.mac = Some(mac(
        resolved.secret.expose(),
        nonce,
        username,
        password.expose(),
        rec.admin.unwrap_or(false),
        rec.user_type.as_deref(),
    ));
    Ok(())
}

/// The registration MAC as lowercase hex.
pub fn mac(
    secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
    user_type: Option<&str>,
) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    m.update(nonce.as_bytes());
    m.update(b"\0");
    m.update(username.as_bytes());
    m.update(b"\0");
    m.update(password.as_bytes());
    m.update(b"\0");
    m.update(if admin {
        b"admin".as_slice()
    } else {
        b"notadmin".as_slice()
    });
    if let Some(t) = user_type.filter(|t| !t.is_empty()) {
        m.update(b"\0");
        m.update(t.as_bytes());
    }
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::mac;
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    // Vectors computed with Python's hmac module (hmac.new(key, msg, hashlib.sha1)).
    #[test]
    fn matches_independent_vectors() {
        let cases = [
            (
                ("s3cret", "abc123", "alice", "pw", false, None),
                "a645917dc09a7e95bdd68e233cd814e0036c329c",
            ),
            (
                ("s3cret", "abc123", "Alice", "pw", true, None),
                "09464bc80a2cb7be6087035cf3d98dd93310fb0d",
            ),
            (
                ("s3cret", "abc123", "bot1", "pw", false, Some("bot")),
                "562af4eaf3542ea8f045827e8e1f598dd2b73e27",
            ),
            (
                ("sécrét", "ñ0nce", "ünï", "päss", true, Some("support")),
                "570111ad3f3b2469d1e9151f7dd97b2a5df0db3f",
            ),
        ];
        for ((k, n, u, p, a, t), want) in cases {
            assert_eq!(mac(k, n, u, p, a, t), want, "{u}");
        }
    }

    // RFC 2202, test case 2: the HMAC-SHA1 primitive itself.
    #[test]
    fn rfc2202_case_2() {
        let mut m = Hmac::<Sha1>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
