//! `--rollback RESULTS`: deactivates every account the results file records
//! as created by its runs, through the same pipeline and workers as a batch
//! (a row per account, declared `active: false`). Accounts that existed
//! before (`exists`, `updated`, `unchanged`) are left alone; each one
//! deactivated is recorded (`deactivated`) in the same file, so a rerun
//! deactivates nobody.

use super::journal::Journal;
use super::reader::{Fields, Row};
use crate::console::Console;
use crate::error::{Error, exit};
use crate::options::Options;
use std::io::IsTerminal;
use std::path::Path;

pub fn run(opts: &Options, results: &Path, console: &Console) -> Result<u8, Error> {
    let journal = Journal::open(results)?;
    if let Some(w) = journal.damage_warning() {
        console.warn(&w);
    }
    let created = journal.created()?;
    let n = created.len();
    if n == 0 {
        console.status(&format!(
            "{} records no account created by its runs that is still active: nothing to do",
            results.display()
        ));
        return Ok(exit::OK);
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
    let rows: super::reader::Rows =
        Box::new(created.into_iter().enumerate().map(|(i, (name, _))| Row {
            line: i + 1,
            username: Some(name.clone()),
            fields: Ok(Fields {
                username: Some(name),
                active: Some(false),
                ..Fields::default()
            }),
        }));
    let journal = (!opts.plan).then_some(&journal);
    super::run_rows(opts, rows, Some(n as u64), journal, console)
}
