//! Validate: judge the final values before anything is sent, whatever flags,
//! hooks or rows set them. The server lowercases the username to make the
//! localpart, so the grammar is checked on the lowercased name.

use crate::error::Error;
use crate::options::Mode;
use crate::record::Record;
use crate::stages::Ctx;

/// The longest user ID the server accepts, `@localpart:server` included.
const MAX_USER_ID: usize = 255;
/// The longest password the register endpoint accepts, in characters.
const MAX_PASSWORD: usize = 512;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    let username = rec.username.as_deref().unwrap_or("");
    check_localpart(username)?;
    let managed = matches!(ctx.mode, Mode::Ensure | Mode::Plan);
    match &rec.password {
        // With --ensure, the read stage asks for one when it creates.
        None if managed => {}
        None => return Err(Error::Input("no password was given".into())),
        Some(p) if p.is_empty() => return Err(Error::Input("the password is empty".into())),
        Some(p) if p.expose().chars().count() > MAX_PASSWORD => {
            return Err(Error::Input(format!(
                "the password is longer than the server accepts ({MAX_PASSWORD} characters)"
            )));
        }
        Some(p) if p.expose().contains('\0') => {
            return Err(Error::Input("the password contains a NUL character".into()));
        }
        Some(p) => {
            // The server's own password rules, which its shared-secret
            // endpoint does not apply.
            let policy = &ctx.resolved()?.password_policy;
            if let (Err((rule, key)), false) =
                (policy.check(p.expose()), ctx.opts.ignore_password_policy)
            {
                return Err(Error::Input(format!(
                    "the password breaks the server's password policy: {rule} \
                     (password_config.policy.{key}); --ignore-password-policy registers it anyway"
                )));
            }
        }
    }
    if rec.admin.is_none() && !managed {
        return Err(Error::Input(format!(
            "{username}: whether to make an admin was not decided"
        )));
    }
    if let Some(t) = &rec.user_type {
        if t.is_empty() || t.contains('\0') {
            return Err(Error::Input(format!(
                "{username}: the user type {t:?} is not valid"
            )));
        }
    }
    if let Some(url) = &rec.server_url {
        crate::homeserver::check_url(url)?;
    }
    let resolved = ctx.resolved()?;
    check_managed(rec, username, &resolved.backend_shared.secret_files)?;
    if let Some(d) = &rec.displayname {
        // The original sends any name; what Synapse would refuse half-way
        // through changing an account is refused here.
        if d.contains('\0') || managed {
            displayname_ok(d).map_err(|why| Error::Input(format!("{username}: {why}")))?;
        }
    }
    if let (Some(t), true) = (&rec.user_type, managed) {
        user_type_ok(t, &resolved.user_types)
            .map_err(|why| Error::Input(format!("{username}: {why}")))?;
    }
    if let Some(setup) = resolved.mas.clone() {
        check_for_mas(
            rec,
            username,
            &setup,
            ctx.opts.ignore_password_policy,
            ctx.mode,
        )?;
    }
    Ok(())
}

/// MAS's own rules, judged here so that nothing is sent that MAS would
/// refuse half-way (it creates a user and sets its password in two
/// requests): its username grammar and its password complexity (zxcvbn's
/// score, as MAS computes it). A user type or display name is Synapse's,
/// set after creation by `--ensure`'s apply stage.
fn check_for_mas(
    rec: &Record,
    username: &str,
    setup: &crate::backend::mas::Setup,
    ignore_policy: bool,
    mode: Mode,
) -> Result<(), Error> {
    if mode == Mode::Register {
        if let Some(what) = [
            (rec.user_type.is_some(), "a user type (-t)"),
            (rec.displayname.is_some(), "a display name"),
        ]
        .iter()
        .find_map(|(given, what)| given.then_some(*what))
        {
            return Err(Error::Input(format!(
                "{username}: MAS creates users without {what}, which Synapse keeps; give it \
                 with --ensure, which sets it through Synapse's admin API once the user exists"
            )));
        }
    }
    let name = username.trim().to_lowercase();
    if !crate::homeserver::mas::username_valid(&name) {
        return Err(Error::Input(format!(
            "{username}: MAS does not accept this username: it takes 1 to 255 characters of \
             a-z, 0-9 and = _ - . / +, not starting with _"
        )));
    }
    if let (Some(p), false) = (&rec.password, ignore_policy) {
        let score = u8::from(zxcvbn::zxcvbn(p.expose(), &[]).score());
        if score < setup.minimum_complexity {
            return Err(Error::Input(format!(
                "the password is too weak for MAS: zxcvbn scores it {score} of 4, and MAS asks \
                 for {} (passwords.minimum_complexity); --ignore-password-policy sets it anyway",
                setup.minimum_complexity
            )));
        }
    }
    Ok(())
}

/// The most rooms, and emails, one account may be given.
pub const MAX_LIST: usize = 1000;

/// The `--ensure` fields: well-formed, before anything is read or sent.
fn check_managed(rec: &Record, username: &str, secret_files: &[(u64, u64)]) -> Result<(), Error> {
    let bad = |why: String| Error::Input(format!("{username}: {why}"));
    for (what, list) in [
        ("rooms", &rec.rooms),
        ("emails", &rec.emails),
        ("external_ids", &rec.external_ids),
    ] {
        if list.as_ref().is_some_and(|l| l.len() > MAX_LIST) {
            return Err(bad(format!("more than {MAX_LIST} {what}")));
        }
    }
    for room in rec.rooms.iter().flatten() {
        room_ok(room).map_err(bad)?;
    }
    for email in rec.emails.iter().flatten() {
        email_ok(email).map_err(bad)?;
    }
    for id in rec.external_ids.iter().flatten() {
        external_id_ok(id).map_err(bad)?;
    }
    if let Some(a) = &rec.avatar {
        avatar_ok(a, secret_files).map_err(bad)?;
    }
    Ok(())
}

/// The longest display name Synapse keeps, in characters.
pub const MAX_DISPLAYNAME: usize = 256;

fn room_ok(room: &str) -> Result<(), String> {
    // Room IDs of room version 12 on have no server part; aliases do.
    let ok = (room.starts_with('!') && room.len() > 1
        || room.starts_with('#') && room[1..].contains(':'))
        && room.len() <= 255
        && !room.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{room:?} is not a room ID (!id) or alias (#name:server)"
        ))
    }
}

fn email_ok(email: &str) -> Result<(), String> {
    let ok = email.len() <= 320
        && email.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.ends_with('.') && !d.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("{email:?} is not an email address"))
    }
}

/// The longest external ID, and provider ID, taken (in bytes).
pub const MAX_EXTERNAL_ID: usize = 255;

fn external_id_ok(value: &str) -> Result<(), String> {
    let ok = crate::state::split_external_id(value).is_some_and(|(p, id)| {
        p.len() <= MAX_EXTERNAL_ID
            && id.len() <= MAX_EXTERNAL_ID
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an external ID (auth_provider:external_id, each at most \
             {MAX_EXTERNAL_ID} bytes, without white space)"
        ))
    }
}

fn avatar_ok(a: &str, secret_files: &[(u64, u64)]) -> Result<(), String> {
    match a.strip_prefix("mxc://") {
        Some(rest) => {
            if rest
                .split_once('/')
                .is_some_and(|(s, id)| !s.is_empty() && !id.is_empty() && !id.contains('/'))
            {
                Ok(())
            } else {
                Err(format!("{a:?} is not an mxc:// URI (mxc://server/id)"))
            }
        }
        None => crate::backend::avatar::check(std::path::Path::new(a), secret_files)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

fn displayname_ok(d: &str) -> Result<(), String> {
    if d.contains('\0') {
        return Err("the display name contains a NUL character".into());
    }
    let n = d.chars().count();
    if n > MAX_DISPLAYNAME {
        return Err(format!(
            "the display name is {n} characters long; Synapse keeps at most {MAX_DISPLAYNAME}"
        ));
    }
    Ok(())
}

fn user_type_ok(t: &str, known: &[String]) -> Result<(), String> {
    if known.iter().any(|k| k == t) {
        Ok(())
    } else {
        Err(format!(
            "the user type {t:?} is not one the server knows ({}; more with \
             user_types.extra_user_types in its config)",
            known.join(", ")
        ))
    }
}

/// A value a hook set as a change's `to`, checked as a row's value for the
/// same field is: the value to send (lists in the server's form).
pub fn check_change(
    field: &str,
    to: &serde_json::Value,
    known_types: &[String],
    secret_files: &[(u64, u64)],
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let list = |v: &Value| -> Result<Vec<String>, String> {
        match v {
            // An empty Lua table reads as an empty object.
            Value::Object(m) if m.is_empty() => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("lists {i}, not text"))
                })
                .collect(),
            other => Err(format!("is {other}, not a list")),
        }
    };
    match field {
        "admin" | "locked" | "active" | "erase" => match to {
            Value::Bool(_) => Ok(to.clone()),
            other => Err(format!("is {other}, not true or false")),
        },
        "user_type" => match to {
            Value::Null => Ok(Value::Null),
            Value::String(t) => user_type_ok(t, known_types).map(|()| to.clone()),
            other => Err(format!("is {other}, not text")),
        },
        "displayname" => match to {
            Value::String(d) => displayname_ok(d).map(|()| to.clone()),
            other => Err(format!("is {other}, not text")),
        },
        "emails" => {
            let mut out = Vec::new();
            for e in list(to)? {
                email_ok(&e)?;
                out.push(crate::state::canonical_email(&e));
            }
            out.sort();
            out.dedup();
            Ok(Value::from(out))
        }
        "external_ids" => {
            let mut ids = list(to)?;
            for id in &ids {
                external_id_ok(id)?;
            }
            ids.sort();
            ids.dedup();
            Ok(Value::from(ids))
        }
        "rooms" => {
            let rooms = list(to)?;
            for r in &rooms {
                room_ok(r)?;
            }
            Ok(Value::from(rooms))
        }
        "avatar" => match to {
            Value::String(a) => avatar_ok(a, secret_files).map(|()| to.clone()),
            other => Err(format!("is {other}, not text")),
        },
        other => Err(format!("{other} is not a field --ensure manages")),
    }
}

/// Checks a username against the Matrix localpart grammar (after lowercasing).
pub fn check_localpart(username: &str) -> Result<(), Error> {
    let localpart = username.to_lowercase();
    let bad = |why: &str| Error::Input(format!("invalid localpart {username:?}: {why}"));
    if localpart.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Some(c) = localpart
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+'))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed; a localpart may only contain a-z, 0-9 and =_-./+"
        )));
    }
    if localpart.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad(
            "purely numeric localparts are reserved for guest users",
        ));
    }
    if localpart.len() + 3 > MAX_USER_ID {
        return Err(bad(&format!(
            "a user ID may be at most {MAX_USER_ID} characters long"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_localpart;

    #[test]
    fn grammar() {
        for ok in ["alice", "Alice", "a.b_c=d-e/f+g", "x1", "_bridge"] {
            assert!(check_localpart(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "al ice",
            "alice:hs",
            "@alice",
            "ünï",
            "12345",
            &"a".repeat(300),
        ] {
            assert!(check_localpart(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::check_localpart;
    use proptest::prelude::*;

    proptest! {
        /// Any string at all: an answer, never a panic, and an accepted one is
        /// plain ASCII from the grammar once lowercased.
        #[test]
        fn any_string_gets_an_answer(s in any::<String>()) {
            if check_localpart(&s).is_ok() {
                let l = s.to_lowercase();
                prop_assert!(l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b)));
                prop_assert!(!l.is_empty() && l.len() <= 252);
            }
        }

        /// Every name from the grammar with a non-digit is accepted, in either case.
        #[test]
        fn the_grammar_is_accepted(s in "[a-zA-Z._=/+-][a-zA-Z0-9._=/+-]{0,200}") {
            prop_assert!(check_localpart(&s).is_ok(), "{}", s);
        }
    }
}
