//! Post-actions: what follows a registration. The built-in one closes the
//! session that hooks asked for, so the new account keeps no device; site
//! steps (welcome messages, room joins) are hooks around this stage.

use crate::error::Error;
use crate::pipeline::{Ctx, Record};

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
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
