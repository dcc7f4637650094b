//! Post-actions: what follows a registration. Built in: a generated password
//! is shown once (single registrations), and the session hooks asked for is
//! closed, so the new account keeps no device. Site steps (welcome messages,
//! room joins) are hooks around this stage.

use crate::error::Error;
use crate::pipeline::{Ctx, Outcome, Record};

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if ctx.reveal_generated && rec.password_generated && rec.outcome == Some(Outcome::Registered) {
        if let Some(pw) = &rec.password {
            // The one place a password is ever printed: the operator asked for
            // a generated one, and nobody else knows it.
            ctx.console
                .status_always(&format!("Generated password: {}", pw.expose()));
        }
    }
    end_session(rec, ctx)
}

/// Logs out the session opened at registration, if there is one.
pub fn end_session(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let Some(token) = rec.access_token.take() else {
        return Ok(());
    };
    rec.device_id = None;
    let result = ctx.server(rec)?.logout(&token);
    result.map_err(|e| Error::AfterCreate {
        user_id: rec.user_id.clone().unwrap_or_default(),
        step: "logging out the registration session".into(),
        cause: e.to_string(),
    })
}
