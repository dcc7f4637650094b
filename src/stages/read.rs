//! Read: the account's state on the server (`--ensure`, `--plan`), and the
//! changes that would bring it to what the record asks for. Hooks after
//! this stage see `rec.exists`, `rec.current` and `rec.changes`, and may
//! change or veto the changes.

use crate::error::Error;
use crate::record::{Outcome, Record};
use crate::stages::Ctx;
use crate::state::{Desired, plan};

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    super::validate::check_localpart(rec.username.as_deref().unwrap_or(""))?;
    let backend = ctx.backend(rec)?;
    let user_id = ctx.user_id(rec)?;
    ctx.console
        .debug(&format!("reading {user_id} through the admin API"));
    let account = backend.lookup(&user_id)?;
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
    };
    rec.changes = plan(&want, account.as_ref(), same_avatar);
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
