//! Submit: send the signed registration and read the answer.
//!
//! Which answers are worth another try is decided here, on the `errcode` and
//! status rather than the English text where a code exists: a rate limit, an
//! expired nonce, a 5xx or a lost connection go back to the nonce stage. When
//! a request may have reached the server unanswered, a later "user in use" is
//! settled by logging in with the password: if it works, the account is the
//! one this run created.

use super::nonce::retry_if_transient;
use crate::error::Error;
use crate::homeserver::{HsError, RegisterRequest};
use crate::pipeline::{Ctx, Outcome, Record, Stage};
use std::time::Duration;

pub const USER_IN_USE: &str = "M_USER_IN_USE";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let hs = ctx.server(rec)?;
    let console = ctx.console;
    let answer = {
        let req = request(rec)?;
        console.status("Sending registration request...");
        hs.register(&req)
    };
    match answer {
        Ok(done) => {
            console.verbose(&format!("registered {}", done.user_id));
            rec.user_id = Some(done.user_id);
            rec.access_token = done.access_token;
            rec.device_id = done.device_id;
            rec.outcome = Some(Outcome::Registered);
            console.status("Success!");
            Ok(())
        }
        Err(e) if e.errcode() == Some(USER_IN_USE) => {
            if rec.maybe_sent && settle_by_login(rec, ctx)? {
                console.status("Success!");
                return Ok(());
            }
            if ctx.cli.exists_ok {
                rec.outcome = Some(Outcome::Exists);
                console.status("User already exists. Skipping.");
                return Ok(());
            }
            Err(e.into())
        }
        Err(e) if is_stale_nonce(&e) => Err(Error::Again {
            from: Stage::Nonce,
            wait: Some(Duration::ZERO),
            cause: Box::new(e.into()),
        }),
        Err(e) => {
            if !matches!(&e, HsError::Status { status, .. } if *status < 500) {
                rec.maybe_sent = true;
            }
            Err(retry_if_transient(e, Stage::Nonce))
        }
    }
}

/// The server did not know the nonce: it expired (60 s on Synapse, 5 min on
/// Dendrite) or was used. No errcode says so, so the text is read; every
/// known server mentions the nonce.
fn is_stale_nonce(e: &HsError) -> bool {
    match e {
        HsError::Status {
            status: 400,
            errcode,
            error: Some(text),
            ..
        } => {
            errcode.as_deref().is_none_or(|c| c == "M_UNKNOWN")
                && text.to_ascii_lowercase().contains("nonce")
                && !text.to_ascii_lowercase().contains("must be specified")
        }
        _ => false,
    }
}

/// After an unanswered attempt, "user in use" may mean this run's own
/// account. A login with the password tells; its session is closed at once.
fn settle_by_login(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    let hs = ctx.server(rec)?;
    let (Some(user), Some(password)) = (rec.username.as_deref(), rec.password.as_ref()) else {
        return Ok(false);
    };
    match hs.login(user, password) {
        Ok(session) => {
            if let Some(token) = &session.access_token {
                if let Err(e) = hs.logout(token) {
                    ctx.console.warn(&format!(
                        "could not log out the session used to check {user}: {e}"
                    ));
                }
            }
            ctx.console.verbose(&format!(
                "{}: an earlier attempt had registered it",
                session.user_id
            ));
            rec.user_id = Some(session.user_id);
            rec.outcome = Some(Outcome::Registered);
            Ok(true)
        }
        Err(HsError::Status { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The request body the record makes. Signing must have run.
pub fn request(rec: &Record) -> Result<RegisterRequest<'_>, Error> {
    let missing = |what: &str| Error::Input(format!("cannot submit: no {what}"));
    Ok(RegisterRequest {
        nonce: rec.nonce.as_deref().ok_or_else(|| missing("nonce"))?,
        username: rec.username.as_deref().ok_or_else(|| missing("username"))?,
        password: rec
            .password
            .as_ref()
            .ok_or_else(|| missing("password"))?
            .expose(),
        mac: rec.mac.as_deref().ok_or_else(|| missing("mac"))?,
        admin: rec.admin.unwrap_or(false),
        user_type: rec.user_type.as_deref(),
        displayname: rec.displayname.as_deref(),
        inhibit_login: !rec.want_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::HsError;

    fn status(status: u16, errcode: Option<&str>, error: &str) -> HsError {
        HsError::Status {
            url: "u".into(),
            status,
            reason: String::new(),
            errcode: errcode.map(str::to_string),
            error: Some(error.into()),
            json: true,
            retry_after_ms: None,
        }
    }

    #[test]
    fn stale_nonce_answers_of_known_servers() {
        assert!(is_stale_nonce(&status(
            400,
            Some("M_UNKNOWN"),
            "unrecognised nonce"
        )));
        assert!(is_stale_nonce(&status(
            400,
            Some("M_UNKNOWN"),
            "Unrecognised or expired nonce"
        )));
        assert!(!is_stale_nonce(&status(
            400,
            Some("M_BAD_JSON"),
            "nonce must be specified"
        )));
        assert!(!is_stale_nonce(&status(
            400,
            Some("M_USER_IN_USE"),
            "User ID already taken."
        )));
        assert!(!is_stale_nonce(&status(
            403,
            Some("M_FORBIDDEN"),
            "HMAC incorrect"
        )));
    }
}
