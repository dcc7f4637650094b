//! Apply: makes the changes the read stage planned (and hooks left), for an
//! account that existed and for one this run just created alike: for a new
//! account only what registration did not set (emails, avatar, rooms).
//!
//! What reaches the server here passes the checks a row's values pass,
//! whoever set it: a hook may remove a planned change or change its `to`,
//! never add one the row did not ask for; a `to` a hook changed is checked
//! as the row's value is (and an email address for its owner).
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
        if !ours && rec.outcome != Some(Outcome::Deactivated) {
            ctx.console
                .status(&format!("Nothing to change for {user_id}"));
        }
        return Ok(());
    }
    check_hooks_changes(rec, ctx)?;
    super::read::refuse_harm(rec, ctx, &user_id)?;
    let backend = ctx.backend(rec)?;
    if rec.changes.get("emails") != rec.planned.get("emails") {
        super::read::check_email_owners(rec, &*backend, &user_id)?;
    }
    if rec.changes.get("external_ids") != rec.planned.get("external_ids") {
        super::read::check_external_id_owners(rec, &*backend, &user_id)?;
    }
    let mut rest = rec.changes.clone();
    let result = if super::read::reactivates(&rec.changes) {
        // Active first: the other fields are changed on an account that is.
        let login = super::read::reactivation_needs_password(ctx)?;
        let password = rec.password.clone().filter(|p| login && !p.is_empty());
        rest.remove("active");
        backend.reactivate(&user_id, password.as_ref()).map(|()| {
            rec.reactivated = true;
        })
    } else {
        Ok(())
    }
    .and_then(|()| {
        if rest.is_empty() {
            Ok(())
        } else {
            backend.apply(&user_id, &rest, created)
        }
    });
    let deactivated = super::read::deactivates(&rec.changes) && result.is_ok();
    result.map_err(|f| Error::AfterCreate {
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
    if deactivated {
        rec.outcome = Some(Outcome::Deactivated);
    } else if !ours {
        rec.outcome = Some(Outcome::Updated);
    }
    if !ours {
        for (field, c) in &rec.changes {
            ctx.console
                .status(&format!("Updated {user_id}: {}", describe(field, c)));
        }
    }
    Ok(())
}

/// The changes as hooks left them: none added, each changed `to` checked
/// as a row's value is.
fn check_hooks_changes(rec: &mut Record, ctx: &Ctx<'_>) -> Result<(), Error> {
    let refuse = |message: String| Error::Hook {
        hook: "changes".into(),
        message,
    };
    let resolved = ctx.resolved()?;
    for (field, c) in rec.changes.iter_mut() {
        let Some(planned) = rec.planned.get(field) else {
            return Err(refuse(format!(
                "a hook added a change of {field}, which the row does not ask for; hooks may \
                 remove a planned change or change its `to`, never add one"
            )));
        };
        if c.to == planned.to {
            continue;
        }
        c.to = super::validate::check_change(
            field,
            &c.to,
            &resolved.user_types,
            &resolved.backend_shared.secret_files,
        )
        .map_err(|why| refuse(format!("changes.{field}.to: {why}")))?;
        // What the server has is what the read stage found.
        c.from = planned.from.clone();
    }
    Ok(())
}
