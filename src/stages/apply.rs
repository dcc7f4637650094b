//! Apply: makes the changes the read stage planned (and hooks left), for an
//! account that existed and for one this run just created alike: for a new
//! account only what registration did not set (emails, avatar, rooms).
//!
//! A change that fails (a room the admin cannot invite to) leaves the row
//! `incomplete`; a rerun reads the account again and makes what is left.

use crate::error::Error;
use crate::record::{Outcome, Record, Undone};
use crate::stages::Ctx;
use crate::state::describe;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    // Created by this run (or an earlier attempt of it, settled by a login).
    let ours = rec.outcome == Some(Outcome::Registered);
    // Created just now: what registration set is set.
    let created = ours && rec.exists == Some(false);
    let Some(user_id) = rec.user_id.clone() else {
        // Nothing was created (a missing account declared inactive).
        rec.outcome = Some(Outcome::Unchanged);
        return Ok(());
    };
    if rec.changes.is_empty() {
        if !ours {
            ctx.console
                .status(&format!("Nothing to change for {user_id}"));
        }
        return Ok(());
    }
    let backend = ctx.backend(rec)?;
    backend
        .apply(&user_id, &rec.changes, created)
        .map_err(|f| Error::AfterCreate {
            user_id: user_id.clone(),
            existed: !ours,
            step: "the apply stage".into(),
            cause: f.to_string(),
            undone: Box::new(Undone {
                from: None,
                live_session: false,
                want_session: rec.want_session,
                account: Vec::new(),
            }),
            left: String::new(),
        })?;
    if !ours {
        rec.outcome = Some(Outcome::Updated);
        for (field, c) in &rec.changes {
            ctx.console
                .status(&format!("Updated {user_id}: {}", describe(field, c)));
        }
    }
    Ok(())
}
