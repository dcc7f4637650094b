//! Submit: send the signed registration and read the answer.
//!
//! What an answer means is decided on its status and `errcode` (see
//! [`crate::homeserver::verdict`]): a rate limit, an expired nonce, a 5xx or
//! a lost connection go back to the nonce stage when retries are allowed.
//! When a request may have reached the server unanswered, a later "user in
//! use" is settled by logging in with the password: if it works, the account
//! is the one this run created. Only a definite refusal of the password
//! (403 `M_FORBIDDEN`) means it is someone else's; a rate limit, a 5xx or a
//! lost answer is retried like any request, and never taken for a "no".

use super::answer::explain;
use crate::error::Error;
use crate::error::{HsError, Verdict, verdict};
use crate::homeserver::RegisterRequest;
use crate::record::{Outcome, Record};
use crate::stages::Ctx;

pub const USER_IN_USE: &str = "M_USER_IN_USE";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let hs = ctx.server(rec)?;
    let console = ctx.console;
    let answer = {
        let req = request(rec)?;
        // Said once, as the original does, however often it is tried.
        if !rec.announced {
            console.status("Sending registration request...");
        }
        console.debug(&format!(
            "POST {}{}",
            hs.base_url(),
            crate::homeserver::REGISTER_PATH
        ));
        hs.register(&req)
    };
    rec.announced = true;
    let e = match answer {
        Ok(done) => {
            console.verbose(&format!("registered {}", done.user_id));
            if let (Some((_, server)), Ok(r)) = (done.user_id.split_once(':'), ctx.resolved()) {
                let _ = r.learned_server_name.set(server.to_string());
            }
            rec.user_id = Some(done.user_id);
            rec.access_token = done.access_token;
            rec.device_id = done.device_id;
            rec.outcome = Some(Outcome::Registered);
            rec.created_here = true;
            console.status("Success!");
            return Ok(());
        }
        Err(e) => e,
    };
    match verdict(&e) {
        Verdict::UserInUse => {
            if rec.maybe_sent && settle_by_login(rec, ctx)? {
                console.status("Success!");
                return Ok(());
            }
            if let Ok(r) = ctx.resolved() {
                if let (Some(server), Some(user)) = (r.server_name(), rec.username.as_deref()) {
                    rec.user_id = Some(format!("@{}:{server}", user.trim().to_lowercase()));
                }
            }
            if ctx.opts.exists_ok {
                rec.outcome = Some(Outcome::Exists);
                console.status("User already exists. Skipping.");
                return Ok(());
            }
            Err(e.into())
        }
        Verdict::Transient => {
            // The request may have reached the server; its answer did not reach us.
            rec.maybe_sent = true;
            if ctx.retries == 0 && rec.password_generated {
                // Nobody else knows this password: the outcome is settled now
                // (one login), or the password handed out with what is known.
                match settle_by_login(rec, ctx) {
                    Ok(true) => {
                        console.status("Success!");
                        return Ok(());
                    }
                    Ok(false) => {}
                    Err(_) => {
                        if let (Some(pw), false) = (&rec.password, ctx.opts.json) {
                            console.status_always(&format!(
                                "Generated password (the registration's answer was lost and its \
                                 outcome cannot be told now; if {} exists, this is its password): {}",
                                rec.username.as_deref().unwrap_or("?"),
                                pw.expose()
                            ));
                        }
                    }
                }
            }
            Err(explain(e, &hs, rec))
        }
        _ => Err(explain(e, &hs, rec)),
    }
}

/// Whether the account in use is the one an earlier attempt created: a
/// login with the password says. The session it opens becomes the hooks'
/// session when they asked for one; the post stage then ends every session
/// of the account, so one whose login answer was lost goes too.
pub fn settle_by_login(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    let hs = ctx.server(rec)?;
    let (Some(user), Some(password)) = (rec.username.as_deref(), rec.password.as_ref()) else {
        return Ok(false);
    };
    match hs.login(user, password) {
        Ok(session) => {
            ctx.console.verbose(&format!(
                "{}: an earlier attempt had registered it",
                session.user_id
            ));
            rec.user_id = Some(session.user_id);
            rec.outcome = Some(Outcome::Registered);
            rec.created_here = true;
            rec.access_token = session.access_token;
            rec.device_id = session.device_id;
            Ok(true)
        }
        Err(e) if is_wrong_password(&e) => Ok(false),
        Err(e) => Err(Error::Server(HsError::GaveUp {
            why: format!(
                "cannot tell whether an earlier attempt created {user}: the login that would \
                 settle it failed"
            ),
            cause: Box::new(e),
        })),
    }
}

/// The one answer that means "this password is not the account's".
fn is_wrong_password(e: &HsError) -> bool {
    matches!(e, HsError::Status { status: 403, errcode, .. } if errcode.as_deref() == Some("M_FORBIDDEN"))
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
