//! Read: the account's state on the server (`--ensure`, `--plan`,
//! `--rollback`), and the changes that would bring it to what the record
//! asks for. Hooks after this stage see `rec.exists`, `rec.current` and
//! `rec.changes`, and may change or veto the changes.
//!
//! What no input may do is refused here, before anything changes (and
//! again at the apply stage, after the hooks): take an email address from
//! another account, change part of a deactivated account, or deactivate,
//! lock, demote or erase the account whose admin token the run uses.

use crate::error::Error;
use crate::record::{Outcome, Record};
use crate::stages::Ctx;
use crate::state::{Change, Desired, plan};
use serde_json::Value;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    super::validate::check_localpart(rec.username.as_deref().unwrap_or(""))?;
    let backend = ctx.backend(rec)?;
    let user_id = ctx.user_id(rec)?;
    if let Some(recorded) = &rec.recorded_user_id {
        if *recorded != user_id {
            return Err(Error::Input(format!(
                "the results file records {recorded}, which is not an account of this server \
                 ({user_id} is): skipped"
            )));
        }
    }
    ctx.console
        .debug(&format!("reading {user_id} through the admin API"));
    let account = backend.lookup(&user_id)?;
    let rollback = ctx.opts.rollback.is_some();
    if ctx.mode == crate::options::Mode::Plan {
        // A plan names every account by its user ID, created or not.
        rec.user_id = Some(user_id.clone());
    }
    match &account {
        // Gone, or deactivated by an earlier (perhaps interrupted) rollback:
        // recorded as deactivated, so no later rollback asks again.
        None if rollback => {
            rec.exists = Some(false);
            rec.user_id = Some(user_id);
            rec.outcome = Some(Outcome::Deactivated);
            return Ok(());
        }
        // Reactivated, then brought to what the row says.
        Some(a) if !a.active && rec.active == Some(true) && !rollback => {
            if a.erased && !(rec.erased_ok || ctx.opts.erased_ok) {
                return Err(Error::Input(format!(
                    "{user_id} was deactivated and its data erased (its display name, avatar \
                     and rooms are gone): it is reactivated only with erased_ok: true in the row \
                     or --erased-ok; the row is refused, and nothing of it is changed"
                )));
            }
            if ctx.mode == crate::options::Mode::Ensure
                && reactivation_needs_password(ctx)?
                && rec.password.as_ref().is_none_or(|p| p.is_empty())
            {
                return Err(Error::Input(format!(
                    "{user_id} is deactivated, and reactivating it needs a password to log in \
                     with (deactivation removed its own): give -p, --password-file or a \
                     password column, or run it in a batch, which generates one"
                )));
            }
        }
        Some(a) if !a.active => {
            // Nothing is worth changing on an account that is gone.
            rec.exists = Some(true);
            rec.user_id = Some(user_id);
            rec.changes.clear();
            rec.outcome = Some(if rollback {
                Outcome::Deactivated
            } else {
                Outcome::Unchanged
            });
            rec.account = account;
            return Ok(());
        }
        _ => {}
    }
    let rooms = match &rec.rooms {
        Some(rooms) => Some(
            rooms
                .iter()
                .map(|r| Ok((r.clone(), backend.room_id(r)?)))
                .collect::<Result<Vec<_>, Error>>()?,
        ),
        None => None,
    };
    let same_avatar = match (&account, rec.avatar.as_deref()) {
        (Some(a), Some(path)) if !path.starts_with("mxc://") => backend
            .same_avatar(a, path)
            .map_err(|f| Error::Input(f.to_string()))?,
        _ => false,
    };
    let want = Desired {
        admin: rec.admin,
        user_type: rec.user_type.clone(),
        displayname: rec.displayname.clone(),
        emails: rec.emails.clone(),
        avatar: rec.avatar.clone(),
        rooms,
        locked: rec.locked,
        active: rec.active,
        external_ids: rec.external_ids.clone(),
    };
    rec.changes = plan(&want, account.as_ref(), same_avatar);
    if account.is_none() && rec.active == Some(false) {
        // A missing account declared inactive is not created: nothing of it
        // changes.
        rec.changes.clear();
    }
    if ctx.opts.erase && deactivates(&rec.changes) {
        rec.changes.insert(
            "erase".into(),
            Change {
                from: Value::Bool(false),
                to: Value::Bool(true),
            },
        );
    }
    refuse_harm(rec, ctx, &user_id)?;
    check_email_owners(rec, &*backend, &user_id)?;
    check_external_id_owners(rec, &*backend, &user_id)?;
    rec.planned = rec.changes.clone();
    rec.exists = Some(account.is_some());
    if account.is_some() {
        rec.user_id = Some(user_id);
        // An earlier attempt's request may have created it: a login with its
        // password settles whose it is.
        let ours = rec.maybe_sent
            && ctx.mode == crate::options::Mode::Ensure
            && match ctx.mas()? {
                // Behind MAS the user may exist without its password yet:
                // it is this row's, and is finished.
                Some(mas) => super::submit::settle_mas(rec, ctx, &mas)?,
                None => super::submit::settle_by_login(rec, ctx)?,
            };
        if !ours {
            rec.outcome = Some(Outcome::Unchanged);
        }
    } else if rec.active != Some(false)
        && rec.password.as_ref().is_none_or(|p| p.is_empty())
        && ctx.mode == crate::options::Mode::Ensure
    {
        return Err(Error::Input(format!(
            "{user_id} does not exist, and creating it needs a password: give -p, \
             --password-file or a password column, or a hook that generates one"
        )));
    }
    rec.account = account;
    Ok(())
}

/// Whether a reactivated account needs a password of its own to log in:
/// on Synapse, whose deactivation removed it, unless its config turns
/// password login off (MAS keeps its own).
pub fn reactivation_needs_password(ctx: &mut Ctx<'_>) -> Result<bool, Error> {
    Ok(ctx.mas()?.is_none() && ctx.resolved()?.password_login_off.is_none())
}

/// Whether `changes` reactivate the account.
pub fn reactivates(changes: &crate::state::Changes) -> bool {
    changes
        .get("active")
        .is_some_and(|c| c.to == Value::Bool(true))
}

/// Whether `changes` deactivate the account.
pub fn deactivates(changes: &crate::state::Changes) -> bool {
    changes
        .get("active")
        .is_some_and(|c| c.to == Value::Bool(false))
}

/// Refuses changes that would take the run's own admin token away from it:
/// the token's account is never deactivated, locked, demoted or erased.
pub fn refuse_harm(rec: &Record, ctx: &Ctx<'_>, user_id: &str) -> Result<(), Error> {
    let resolved = ctx.resolved()?;
    if resolved.admin_user.as_deref() != Some(user_id) {
        return Ok(());
    }
    let to = |f: &str| rec.changes.get(f).map(|c| &c.to);
    let harm = [
        ("deactivated", to("active") == Some(&Value::Bool(false))),
        ("locked", to("locked") == Some(&Value::Bool(true))),
        ("demoted", to("admin") == Some(&Value::Bool(false))),
        ("erased", rec.changes.contains_key("erase")),
    ];
    if let Some((what, _)) = harm.iter().find(|(_, h)| *h) {
        return Err(Error::Input(format!(
            "{user_id} is the account whose admin token this run uses: it is never \
             deactivated, locked, demoted or erased, and would be {what}; the row is refused"
        )));
    }
    Ok(())
}

/// Refuses an email address to add that another account has: the server
/// would move it, and that account would lose it.
pub fn check_email_owners(
    rec: &Record,
    backend: &dyn crate::backend::Backend,
    user_id: &str,
) -> Result<(), Error> {
    check_owners(
        rec,
        "emails",
        ("the email address", "added"),
        user_id,
        |a| backend.email_owner(user_id, a),
    )
}

/// Refuses an external ID to link that another account has: it is never
/// moved.
pub fn check_external_id_owners(
    rec: &Record,
    backend: &dyn crate::backend::Backend,
    user_id: &str,
) -> Result<(), Error> {
    check_owners(
        rec,
        "external_ids",
        ("the external ID", "linked"),
        user_id,
        |v| backend.external_id_owner(user_id, v),
    )
}

/// Refuses a value of `field` to add that `owner` says another account
/// has; `(noun, done)` name the value and what adding it does.
fn check_owners(
    rec: &Record,
    field: &str,
    (noun, done): (&str, &str),
    user_id: &str,
    owner: impl Fn(&str) -> Result<Option<String>, crate::backend::Failure>,
) -> Result<(), Error> {
    let Some(c) = rec.changes.get(field) else {
        return Ok(());
    };
    for value in crate::state::added(c) {
        match owner(&value) {
            Ok(Some(owner)) if owner != user_id => {
                return Err(Error::Input(format!(
                    "{noun} {value} belongs to {owner}: it is not moved to {user_id}; the row \
                     is refused"
                )));
            }
            Ok(_) => {}
            Err(f) => {
                return Err(Error::Input(format!(
                    "cannot tell who has {noun} {value}, so it is not {done}: {f}"
                )));
            }
        }
    }
    Ok(())
}
