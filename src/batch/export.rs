//! `--export FILE`: every local account of the server as an inventory row,
//! in the format the file's extension names, so that `--ensure --batch
//! FILE` manages the server from then on. A plan of that file against the
//! same server changes nothing.
//!
//! It streams: one thread pages through the server's list of accounts,
//! `-j` workers read each account (its profile, emails, external IDs and
//! rooms), and the rows are written in the list's order, with at most a
//! few pages in memory whatever the number of accounts. Accounts of
//! application services are left out, and guests unless asked; both are
//! counted. No password or hash is ever written.
//!
//! The file is written beside its final name with mode 0600 (emails are
//! personal data) and renamed into place when every row is in: a partial
//! export never stands under the final name.

use super::reader::Format;
use crate::backend::Backend;
use crate::console::{Console, Level};
use crate::error::{Error, exit};
use crate::options::Options;
use crate::prompt::NoPrompts;
use crate::state::{Account, Listed};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The columns of a CSV export, in order: the username, then the fields
/// `--ensure` manages.
fn csv_columns() -> impl Iterator<Item = &'static str> {
    std::iter::once("username").chain(crate::state::FIELDS)
}

/// What an export came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub written: u64,
    pub appservice: u64,
    pub guests: u64,
    /// Listed, then gone before it was read.
    pub vanished: u64,
}

/// Runs `--export`: the exit status.
pub fn run(cli: &Options, path: &Path, console: &Console) -> Result<u8, Error> {
    let format = if path.as_os_str() == "-" {
        Format::Jsonl
    } else {
        Format::from_path(path).ok_or_else(|| {
            Error::Usage(format!(
                "cannot tell the format of {} from its name: give it a .jsonl, .csv or .yaml \
                 extension",
                path.display()
            ))
        })?
    };
    let (template, resolved) = super::configured(cli, console)?;
    let mut np = NoPrompts;
    let mut ctx = super::worker_ctx(cli, console, &mut np, &resolved);
    if resolved.admin_token.is_none() && resolved.mas.is_none() {
        return Err(Error::Usage(
            "--export needs a server admin's access token: give --admin-token-file FILE (or \
             admin_token_path in the config's register_new_matrix_user section)"
                .into(),
        ));
    }
    let mut probe = template.clone();
    // Every field Synapse keeps is read, behind MAS too.
    probe.displayname = Some(String::new());
    probe.external_ids = Some(Vec::new());
    let backend = ctx.backend(&probe)?;
    let first = backend.list(None)?;
    let total = first.total;
    drop(backend);

    let mut out = Output::create(path)?;
    let bar = bar(console, total);
    let jobs = usize::from(cli.jobs.max(1));
    let (ids_tx, ids_rx) = mpsc::sync_channel::<(u64, Listed)>(jobs * 4);
    // Dropped with the last worker, so the pager stops when they do.
    let ids_rx = std::sync::Arc::new(std::sync::Mutex::new(ids_rx));
    let (rows_tx, rows_rx) = mpsc::sync_channel::<(u64, Result<Row, Error>)>(jobs * 4);
    let guests = cli.export_guests;
    let result = std::thread::scope(|scope| -> Result<Counts, Error> {
        // The pager: the list's accounts, numbered in its order.
        let (probe, resolved) = (&probe, &resolved);
        let pager = {
            let rows_tx = rows_tx.clone();
            scope.spawn(move || {
                let console = Console::new(console.level(), true);
                let mut np = NoPrompts;
                let mut ctx = super::worker_ctx(cli, &console, &mut np, resolved);
                let mut n = 0u64;
                let mut page = first;
                loop {
                    for u in page.users {
                        if ids_tx.send((n, u)).is_err() {
                            return;
                        }
                        n += 1;
                    }
                    let Some(next) = page.next else { return };
                    page = match ctx.backend(probe).and_then(|b| Ok(b.list(Some(&next))?)) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = rows_tx.send((n, Err(e)));
                            return;
                        }
                    };
                }
            })
        };
        for _ in 0..jobs {
            let rows_tx = rows_tx.clone();
            let ids_rx = ids_rx.clone();
            scope.spawn(move || {
                let console = Console::new(console.level(), true);
                let mut np = NoPrompts;
                let mut ctx = super::worker_ctx(cli, &console, &mut np, resolved);
                let backend = match ctx.backend(probe) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = rows_tx.send((u64::MAX, Err(e)));
                        return;
                    }
                };
                loop {
                    let next = ids_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((n, listed)) = next else { return };
                    let row = read_row(&*backend, &listed, guests);
                    if rows_tx.send((n, row)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(rows_tx);
        drop(ids_rx);
        // The writer: rows in the list's order, as they come.
        let mut counts = Counts::default();
        let mut waiting: BTreeMap<u64, Row> = BTreeMap::new();
        let mut next = 0u64;
        let mut failed = None;
        for (n, row) in rows_rx.iter() {
            match row {
                Ok(row) => {
                    waiting.insert(n, row);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            while let Some(row) = waiting.remove(&next) {
                next += 1;
                bar.inc(1);
                match row {
                    Row::Account(a) => {
                        out.write(format, &a)?;
                        counts.written += 1;
                    }
                    Row::AppService => counts.appservice += 1,
                    Row::Guest => counts.guests += 1,
                    Row::Vanished => counts.vanished += 1,
                }
            }
        }
        drop(rows_rx);
        let _ = pager.join();
        match failed {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    });
    bar.finish_and_clear();
    let counts = match result {
        Ok(c) => c,
        Err(e) => {
            out.abandon();
            return Err(e);
        }
    };
    out.finish()?;
    if console.level() >= Level::Normal {
        eprintln!(
            "export: {} accounts written to {}; left out: {} of application services, {} guests{}",
            counts.written,
            if path.as_os_str() == "-" {
                "standard output".into()
            } else {
                path.display().to_string()
            },
            counts.appservice,
            counts.guests,
            if counts.vanished > 0 {
                format!(", {} gone while the export ran", counts.vanished)
            } else {
                String::new()
            }
        );
    }
    Ok(exit::OK)
}

/// One listed account, as the export writes it or leaves it out.
enum Row {
    Account(Map<String, Value>),
    AppService,
    Guest,
    Vanished,
}

fn read_row(backend: &dyn Backend, listed: &Listed, guests: bool) -> Result<Row, Error> {
    if listed.guest && !guests {
        return Ok(Row::Guest);
    }
    let Some(a) = backend.lookup(&listed.user_id)? else {
        return Ok(Row::Vanished);
    };
    if a.appservice_id.is_some() {
        return Ok(Row::AppService);
    }
    let mut rooms = Vec::with_capacity(a.rooms.len());
    for id in &a.rooms {
        rooms.push(backend.canonical_alias(id)?.unwrap_or_else(|| id.clone()));
    }
    Ok(Row::Account(row_of(&a, rooms)))
}

/// The inventory row of an account: every field `--ensure` manages.
pub fn row_of(a: &Account, rooms: Vec<String>) -> Map<String, Value> {
    let localpart = crate::state::localpart(&a.user_id);
    let ids: Vec<Value> = a
        .external_ids
        .iter()
        .filter_map(|v| crate::state::split_external_id(v))
        .map(|(p, id)| json!({"auth_provider": p, "external_id": id}))
        .collect();
    let mut m = Map::new();
    m.insert("username".into(), json!(localpart));
    m.insert("admin".into(), json!(a.admin));
    if let Some(t) = &a.user_type {
        m.insert("user_type".into(), json!(t));
    }
    m.insert(
        "displayname".into(),
        json!(a.displayname.clone().unwrap_or_default()),
    );
    m.insert("emails".into(), json!(a.emails));
    m.insert("external_ids".into(), Value::Array(ids));
    if let Some(av) = &a.avatar {
        m.insert("avatar".into(), json!(av));
    }
    m.insert("rooms".into(), json!(rooms));
    m.insert("locked".into(), json!(a.locked));
    m.insert("active".into(), json!(a.active));
    m
}

/// Where the rows go: standard output, or a temporary file beside the
/// final name, renamed into place at the end.
struct Output {
    sink: Box<dyn Write>,
    tmp: Option<(PathBuf, PathBuf)>,
    rows: u64,
}

impl Output {
    fn create(path: &Path) -> Result<Output, Error> {
        if path.as_os_str() == "-" {
            return Ok(Output {
                sink: Box::new(std::io::BufWriter::new(std::io::stdout())),
                tmp: None,
                rows: 0,
            });
        }
        use std::os::unix::fs::OpenOptionsExt;
        let name = path
            .file_name()
            .ok_or_else(|| Error::Usage(format!("--export {}: not a file name", path.display())))?;
        let tmp = path.with_file_name(format!(
            ".{}.{}.partial",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| {
                Error::Output(format!(
                    "cannot write the export beside {}: {}",
                    path.display(),
                    crate::files::io_cause(&e)
                ))
            })?;
        Ok(Output {
            sink: Box::new(std::io::BufWriter::new(file)),
            tmp: Some((tmp, path.to_path_buf())),
            rows: 0,
        })
    }

    fn write(&mut self, format: Format, row: &Map<String, Value>) -> Result<(), Error> {
        let text = match format {
            Format::Jsonl => format!("{}\n", Value::Object(row.clone())),
            Format::Yaml => serde_yaml::to_string(&vec![Value::Object(row.clone())])
                .map_err(|e| Error::Output(format!("writing the export: {e}")))?,
            Format::Csv => {
                let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
                if self.rows == 0 {
                    w.write_record(csv_columns())
                        .map_err(|e| Error::Output(format!("writing the export: {e}")))?;
                }
                let cells: Vec<String> = csv_columns().map(|c| csv_cell(row.get(c))).collect();
                w.write_record(&cells)
                    .map_err(|e| Error::Output(format!("writing the export: {e}")))?;
                let bytes = w
                    .into_inner()
                    .map_err(|e| Error::Output(format!("writing the export: {e}")))?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        self.rows += 1;
        self.sink.write_all(text.as_bytes()).map_err(|e| {
            Error::Output(format!(
                "writing the export: {}",
                crate::files::io_cause(&e)
            ))
        })
    }

    fn finish(mut self) -> Result<(), Error> {
        let fail = |e: std::io::Error| {
            Error::Output(format!(
                "writing the export: {}",
                crate::files::io_cause(&e)
            ))
        };
        self.sink.flush().map_err(fail)?;
        let Some((tmp, path)) = self.tmp.take() else {
            return Ok(());
        };
        drop(std::mem::replace(&mut self.sink, Box::new(std::io::sink())));
        let synced = std::fs::File::open(&tmp).and_then(|f| f.sync_all());
        if let Err(e) = synced.and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        Ok(())
    }

    /// Drops what was written: nothing stands under the final name.
    fn abandon(mut self) {
        if let Some((tmp, _)) = self.tmp.take() {
            drop(std::mem::replace(&mut self.sink, Box::new(std::io::sink())));
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A field as a CSV cell: lists space-separated (external IDs as
/// `provider:id`), booleans as `true`/`false`.
fn csv_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::Object(m) => format!(
                    "{}:{}",
                    m.get("auth_provider").and_then(Value::as_str).unwrap_or(""),
                    m.get("external_id").and_then(Value::as_str).unwrap_or("")
                ),
                other => other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_string),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

fn bar(console: &Console, total: Option<u64>) -> indicatif::ProgressBar {
    if console.level() == Level::Quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("export {bar:30} {pos}/{len} accounts ({per_sec})")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_holds_every_managed_field_and_no_secret() {
        let a = Account {
            user_id: "@al:hs".into(),
            admin: true,
            displayname: None,
            emails: vec!["a@x.org".into()],
            external_ids: vec!["oidc:sub:1".into()],
            rooms: vec!["!r:hs".into()],
            active: true,
            ..Account::default()
        };
        let row = row_of(&a, vec!["#r:hs".into()]);
        assert_eq!(row["username"], "al");
        assert_eq!(row["displayname"], "");
        assert_eq!(
            row["external_ids"],
            json!([{"auth_provider": "oidc", "external_id": "sub:1"}])
        );
        assert!(!row.contains_key("password"));
        assert_eq!(csv_cell(row.get("external_ids")), "oidc:sub:1");
        assert_eq!(csv_cell(row.get("rooms")), "#r:hs");
    }
}
