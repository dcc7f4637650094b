//! Submit: send the signed registration and read the answer.

use crate::error::Error;
use crate::homeserver::{HsError, RegisterRequest};
use crate::pipeline::{Ctx, Outcome, Record};

pub const USER_IN_USE: &str = "M_USER_IN_USE";

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let req = request(rec)?;
    ctx.console.status("Sending registration request...");
    let exists_ok = ctx.cli.exists_ok;
    let console = ctx.console;
    let answer = ctx.server(rec)?.register(&req);
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
        Err(e @ HsError::Status { .. }) if exists_ok && e.errcode() == Some(USER_IN_USE) => {
            rec.outcome = Some(Outcome::Exists);
            console.status("User already exists. Skipping.");
            Ok(())
        }
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
