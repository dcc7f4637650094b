//! Gather input: the localpart, the password and the admin choice. What flags,
//! the password file, hooks or a batch row left in the record stands; the rest
//! is asked for, in the original's order and with its prompts. A batch row
//! without a password gets a generated one instead of a question.

use crate::console::Console;
use crate::error::Error;
use crate::options::Mode;
use crate::options::Options;
use crate::record::Record;
use crate::secret::Secret;
use crate::stages::Ctx;
use std::path::Path;

/// The length of a password the tool generates for a batch row without one.
pub const GENERATED_LENGTH: usize = 24;

pub fn run(rec: &mut Record, ctx: &mut Ctx<'_>) -> Result<(), Error> {
    if rec.username.as_deref().unwrap_or("").is_empty() {
        let default = os_user();
        let answer = ctx
            .prompter
            .text("New user localpart", default.as_deref())?;
        rec.username = Some(answer);
    }
    if rec.username.as_deref().unwrap_or("").is_empty() {
        return Err(Error::Refused("Invalid user name"));
    }

    // With --ensure or --plan, an account that exists needs neither a
    // password nor an admin choice: only what the input gives is managed,
    // and a missing account's password comes from a flag, a row or a hook.
    let managed = matches!(ctx.mode, Mode::Ensure | Mode::Plan);
    if rec.password.as_ref().is_none_or(Secret::is_empty)
        && ctx.generate_missing_password
        && ctx.mode != Mode::Plan
    {
        let pw = ctx
            .resolved()?
            .password_policy
            .generate(GENERATED_LENGTH, crate::secret::PASSWORD_ALPHABET)
            .map_err(Error::Input)?;
        rec.password = Some(Secret::new(pw));
        rec.password_generated = true;
    }
    if rec.password.as_ref().is_none_or(Secret::is_empty) && !managed {
        let password = ctx.prompter.password("Password")?;
        if password.is_empty() {
            return Err(Error::Refused("Password cannot be blank."));
        }
        let confirm = ctx.prompter.password("Confirm password")?;
        if password != confirm {
            return Err(Error::Refused("Passwords do not match"));
        }
        rec.password = Some(password);
    }

    if rec.admin.is_none() && !managed {
        let answer = ctx.prompter.text("Make admin", Some("no"))?;
        rec.admin = Some(matches!(answer.as_str(), "y" | "yes" | "true"));
    }
    Ok(())
}

/// The password from a file, or from standard input for `-`, stripped of
/// surrounding whitespace.
pub fn read_password_file(path: &Path) -> Result<Secret, Error> {
    use crate::files::{SECRET_MAX, read_at_most, read_regular};
    let bytes = if path.as_os_str() == "-" {
        read_at_most(std::io::stdin().lock(), SECRET_MAX)
    } else {
        read_regular(path, SECRET_MAX)
    }
    .map_err(|e| Error::Input(format!("cannot read password file {}: {e}", path.display())))?;
    let raw = Secret::new(String::from_utf8_lossy(&bytes));
    Ok(Secret::new(raw.expose().trim()))
}

/// The login name of the person running the tool, for the localpart prompt.
fn os_user() -> Option<String> {
    for var in ["LOGNAME", "USER", "LNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}

/// The record the options describe, before any stage has run. The
/// password file is read here, so `before_input` hooks see its password.
pub fn record_from_options(cli: &Options, console: &Console) -> Result<Record, Error> {
    let password = match &cli.password_file {
        Some(path) => {
            if path.as_os_str() != "-" {
                crate::files::warn_if_world_readable(path, "the password file", console);
            }
            Some(read_password_file(path)?)
        }
        None => {
            if cli.password.is_some() {
                console.warn(
                    "-p puts the password in the process list, where other local users can read it; \
                     prefer --password-file - (reads standard input)",
                );
            }
            cli.password.clone().map(Secret::new)
        }
    };
    Ok(Record {
        username: cli.user.clone(),
        password,
        displayname: cli.displayname.clone(),
        admin: cli.admin,
        user_type: cli.user_type.clone(),
        server_url: cli.server_url.clone(),
        avatar: cli.avatar.clone(),
        rooms: (!cli.rooms.is_empty()).then(|| cli.rooms.clone()),
        emails: (!cli.emails.is_empty()).then(|| cli.emails.clone()),
        ..Record::default()
    })
}
