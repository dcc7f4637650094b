//! Post-actions: what follows a registration. Built in: a generated password
//! is shown once (single registrations), and the session hooks asked for is
//! closed, so the new account keeps no device. Site steps (welcome messages,
//! room joins) are hooks around this stage.

use crate::error::Error;
use crate::record::{Outcome, Record, Undone};
use crate::stages::Ctx;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    // With --json the result line carries it: shown once, there.
    if ctx.reveal_generated
        && !ctx.opts.json
        && rec.password_generated
        && rec.outcome == Some(Outcome::Registered)
    {
        if let Some(pw) = &rec.password {
            // The one place a password is ever printed: the operator asked for
            // a generated one, and nobody else knows it.
            ctx.console
                .status_always(&format!("Generated password: {}", pw.expose()));
        }
    }
    end_session(rec, ctx)
}

/// Ends the session opened for hooks, if there is one. For an account this
/// run created, every session of it ends (`/logout/all`): a login or a
/// registration whose answer was lost may have left another.
pub fn end_session(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if rec.session_failed {
        return Ok(());
    }
    let Some(token) = rec.access_token.take() else {
        return Ok(());
    };
    let hs = ctx.login_server(rec)?;
    // Behind MAS, its compatibility endpoint ends one session at a time.
    let behind_mas = ctx.resolved()?.mas.is_some();
    let result = if rec.created_here && !behind_mas {
        hs.logout_all(&token)
    } else {
        hs.logout(&token)
    };
    match result {
        Ok(()) => {
            rec.device_id = None;
            Ok(())
        }
        Err(e) => {
            // The token stays: the session is live, and a rerun ends it.
            rec.access_token = Some(token);
            rec.session_failed = true;
            Err(Error::AfterCreate {
                user_id: rec.user_id.clone().unwrap_or_default(),
                existed: !rec.created_here,
                step: "ending the account's session".into(),
                cause: e.to_string(),
                undone: Box::new(Undone {
                    from: None,
                    live_session: true,
                    want_session: rec.want_session,
                    account: Vec::new(),
                }),
                left: String::new(),
            })
        }
    }
}
