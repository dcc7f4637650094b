//! `--rollback RESULTS`: deactivates every account the results file proves
//! its runs created, through the same pipeline and workers as a batch (a
//! row per account, declared `active: false`, matched on its recorded user
//! ID). Accounts that existed before (`exists`, `updated`, `unchanged`, an
//! `incomplete` change of an existing account) are left alone, and so is a
//! line that claims a creation it does not prove (see
//! [`super::journal::Journal::created`]). Each account deactivated, now or
//! by an interrupted earlier rollback, is recorded (`deactivated`) in the
//! same file, so a rerun deactivates nobody.

use super::journal::Journal;
use super::reader::{Fields, Row};
use crate::console::Console;
use crate::error::{Error, exit};
use crate::options::Options;
use std::io::IsTerminal;
use std::path::Path;

pub fn run(opts: &Options, results: &Path, console: &Console) -> Result<u8, Error> {
    // A typo must not create an empty file and report nothing to do.
    if std::fs::symlink_metadata(results).is_err() {
        return Err(Error::Usage(format!(
            "the results file {} does not exist: nothing to roll back",
            results.display()
        )));
    }
    let journal = Journal::open(results)?;
    if let Some(w) = journal.damage_warning() {
        console.warn(&w);
    }
    let recorded = journal.created()?;
    for (line, name) in &recorded.unproven {
        console.error(&format!(
            "{} line {line}: {name} is recorded as created, but the file does not prove this \
             tool created it (no user ID, no pending line before it, or it existed): left alone",
            results.display()
        ));
    }
    let refused = if recorded.unproven.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    };
    let n = recorded.created.len();
    if n == 0 {
        console.status(&format!(
            "{} records no account created by its runs that is still active: nothing to do",
            results.display()
        ));
        return Ok(refused);
    }
    if !opts.plan && !opts.yes {
        let question = format!(
            "Deactivate {n} account{} created by the runs recorded in {}{}?",
            if n == 1 { "" } else { "s" },
            results.display(),
            if opts.erase { ", and erase them" } else { "" }
        );
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(format!(
                "{question} Without a terminal to ask on, give --yes (or --plan to list them)"
            )));
        }
        if !crate::prompt::confirm(&question)? {
            console.status("Nothing was deactivated.");
            return Ok(exit::OK);
        }
    }
    let rows: super::reader::Rows = Box::new(recorded.created.into_iter().enumerate().map(
        |(i, (name, user_id))| Row {
            line: i + 1,
            username: Some(name.clone()),
            fields: Ok(Fields {
                username: Some(name),
                user_id: Some(user_id),
                active: Some(false),
                ..Fields::default()
            }),
        },
    ));
    let journal = (!opts.plan).then_some(&journal);
    let code = super::run_rows(opts, |_| Ok(rows), Some(n as u64), journal, console)?;
    Ok(if code == exit::OK { refused } else { code })
}
