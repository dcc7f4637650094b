//! Gather input: the localpart, the password and the admin choice. What flags,
//! the password file, hooks or a batch row left in the record stands; the rest
//! is asked for, in the original's order and with its prompts. A batch row
//! without a password gets a generated one instead of a question.

use crate::error::Error;
use crate::pipeline::{Ctx, Record};
use crate::secret::Secret;
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

    if rec.password.as_ref().is_none_or(Secret::is_empty) && ctx.generate_missing_password {
        let pw = ctx
            .resolved()?
            .password_policy
            .generate(GENERATED_LENGTH, crate::secret::PASSWORD_ALPHABET)
            .map_err(Error::Input)?;
        rec.password = Some(Secret::new(pw));
        rec.password_generated = true;
    }
    if rec.password.as_ref().is_none_or(Secret::is_empty) {
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

    if rec.admin.is_none() {
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
