//! Batch readers: CSV with a header row, JSON Lines, and a YAML list, each
//! streamed one row at a time so memory does not grow with the file.
//!
//! Every row comes out as a [`Row`]: the line it starts on, and its fields or
//! the reason it cannot be used. Known fields are `username`, `password`,
//! `displayname`, `admin` and `user_type`; every other column or key goes to
//! `extra`, for hooks.

use crate::error::Error;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub use crate::options::Format;

/// One row's fields, as the file gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    pub username: Option<String>,
    pub password: Option<String>,
    pub displayname: Option<String>,
    pub admin: Option<bool>,
    pub user_type: Option<String>,
    /// `--ensure`'s fields: lists in JSON Lines and YAML, space-separated
    /// values in CSV.
    pub emails: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
    pub avatar: Option<String>,
    pub active: Option<bool>,
    pub locked: Option<bool>,
    /// `auth_provider:external_id` values (JSON Lines and YAML also take
    /// `{auth_provider, external_id}` mappings).
    pub external_ids: Option<Vec<String>>,
    /// Reactivating an account whose data was erased is allowed.
    pub erased_ok: Option<bool>,
    /// `--rollback`'s rows only: the user ID the results file recorded.
    pub user_id: Option<String>,
    /// A directory entry's attributes, for hooks as `rec.extra.ldap`.
    pub ldap: Option<Map<String, Value>>,
    /// `--prune`'s rows only (never read from a file): an account the
    /// inventory does not name.
    pub pruned: Option<crate::options::Prune>,
    pub extra: Map<String, Value>,
}

#[derive(Debug)]
pub struct Row {
    /// The line of the file the row starts on (1-based).
    pub line: usize,
    pub fields: Result<Fields, String>,
    /// The row's username, also when another field is bad.
    pub username: Option<String>,
}

impl Row {
    /// The row's username, when it has one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    fn of(line: usize, (username, fields): (Option<String>, Result<Fields, String>)) -> Row {
        Row {
            line,
            fields,
            username,
        }
    }
}

pub type Rows = Box<dyn Iterator<Item = Row> + Send>;

/// Opens `path` (`-` for standard input) as a stream of rows.
pub fn open(path: &Path, format: Format) -> Result<Rows, Error> {
    let input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| {
            Error::Usage(format!(
                "cannot open batch file {}: {}",
                path.display(),
                crate::files::io_cause(&e)
            ))
        })?)
    };
    let input = crate::files::LineBound::new(BufReader::with_capacity(64 * 1024, input));
    Ok(match format {
        Format::Csv => Box::new(csv_rows(input)?),
        Format::Jsonl => Box::new(jsonl_rows(input)),
        Format::Yaml => Box::new(YamlRows::new(input)),
    })
}

/// Counts the lines of what passes through it, ending them at LF, CRLF or a
/// lone CR (files from Windows, and from old Macs), so a byte offset can be
/// told as a line number. Only the line ends past the last offset asked for
/// are kept.
struct LineCounter<R> {
    inner: R,
    state: std::sync::Arc<std::sync::Mutex<Lines>>,
}

#[derive(Default)]
struct Lines {
    /// Offsets just past each line end not yet asked about.
    ends: std::collections::VecDeque<u64>,
    /// Line ends already passed by an offset asked about.
    passed: u64,
    /// Bytes seen so far.
    offset: u64,
    /// The last byte seen was a CR (its LF may follow in the next read).
    after_cr: bool,
}

impl Lines {
    /// The 1-based line the byte at `offset` is on.
    fn line_at(&mut self, offset: u64) -> usize {
        while self.ends.front().is_some_and(|e| *e <= offset) {
            self.ends.pop_front();
            self.passed += 1;
        }
        (self.passed + 1) as usize
    }

    /// The line being read now: one past every line ended so far.
    fn current(&mut self) -> usize {
        let end = self.offset;
        self.line_at(end)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for &b in &buf[..n] {
            s.offset += 1;
            match b {
                // CRLF: one line end, counted at the CR (a record may be said
                // to start at the LF that follows it).
                b'\n' if s.after_cr => {}
                b'\n' | b'\r' => {
                    let at = s.offset;
                    s.ends.push_back(at);
                }
                _ => {}
            }
            s.after_cr = b == b'\r';
        }
        Ok(n)
    }
}

fn csv_rows(input: impl Read + Send + 'static) -> Result<impl Iterator<Item = Row> + Send, Error> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Lines::default()));
    let input = LineCounter {
        inner: input,
        state: lines.clone(),
    };
    let line_at = move |byte: Option<u64>| {
        let mut l = lines.lock().unwrap_or_else(|p| p.into_inner());
        match byte {
            Some(b) => l.line_at(b),
            None => l.current(),
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // Lengths are checked here, so a short row still names its user.
        .flexible(true)
        .trim(csv::Trim::Headers)
        .from_reader(input);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::Input(format!("batch file: cannot read the CSV header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if !headers.iter().any(|h| h == "username") {
        return Err(Error::Input(
            "batch file: the CSV header row has no `username` column".into(),
        ));
    }
    let mut records = reader.into_records();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let next = records.next()?;
        Some(match next {
            Ok(rec) => {
                let line = line_at(rec.position().map(csv::Position::byte));
                let pairs = headers
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| (h.clone(), Value::String(v.to_string())));
                let (username, f) = fields(pairs);
                let f = if rec.len() == headers.len() {
                    f
                } else {
                    Err(format!(
                        "not a valid CSV row: {} fields where the header has {}",
                        rec.len(),
                        headers.len()
                    ))
                };
                Row::of(line, (username, f))
            }
            Err(e) => {
                let line = line_at(e.position().map(csv::Position::byte));
                if let csv::ErrorKind::Io(io) = e.kind() {
                    // The input ends here (a line past its bound, a read
                    // error): said as every format says it.
                    done = true;
                    return Some(Row {
                        line,
                        username: None,
                        fields: Err(format!("cannot be read: {io}")),
                    });
                }
                Row {
                    line,
                    username: None,
                    fields: Err(format!("not a valid CSV row: {}", csv_cause(&e))),
                }
            }
        })
    }))
}

fn csv_cause(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

fn jsonl_rows(input: impl BufRead + Send + 'static) -> impl Iterator<Item = Row> + Send {
    let mut failed = false;
    input
        .lines()
        .enumerate()
        // A read error ends the input: nothing after it can be trusted.
        .take_while(move |(_, l)| !std::mem::replace(&mut failed, l.is_err()))
        .filter_map(|(i, line)| {
            let line_no = i + 1;
            match line {
                Err(e) => Some(Row {
                    line: line_no,
                    username: None,
                    fields: Err(format!("cannot be read: {e}")),
                }),
                Ok(l) if l.trim().is_empty() => None,
                Ok(l) => Some(Row::of(
                    line_no,
                    match serde_json::from_str::<Value>(&l) {
                        Ok(Value::Object(map)) => fields(map.into_iter()),
                        Ok(other) => (
                            None,
                            Err(format!("is JSON but not an object ({})", json_kind(&other))),
                        ),
                        Err(e) => (None, Err(format!("is not valid JSON: {e}"))),
                    },
                )),
            }
        })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The most of a YAML batch file that is not a block list (`[...]`) is read
/// whole.
const WHOLE_MAX: usize = 1 << 20;

/// A YAML list read item by item: an item starts at a line beginning with `-`
/// in the first column. A file that is not such a block list (a flow list
/// `[...]`) is read whole.
struct YamlRows<R> {
    lines: std::io::Lines<R>,
    line_no: usize,
    /// The first line of the next item, already read.
    pending: Option<(usize, String)>,
    started: bool,
    whole: Option<std::vec::IntoIter<Row>>,
    /// A read failed: the input ends there.
    failed: bool,
    /// The items so far that define anchors (`&name`), for a later item
    /// that refers to one (`<<: *defaults`), at most [`WHOLE_MAX`] of them.
    anchors: String,
}

impl<R: BufRead> YamlRows<R> {
    fn new(input: R) -> Self {
        YamlRows {
            lines: input.lines(),
            line_no: 0,
            pending: None,
            started: false,
            whole: None,
            failed: false,
            anchors: String::new(),
        }
    }

    /// One item's text as a value: alone, or after the earlier items that
    /// define anchors when it refers to one; merge keys applied, as PyYAML
    /// applies them.
    fn item_value(&mut self, text: &str) -> Result<serde_yaml::Value, String> {
        let one = |doc: &str| -> Result<serde_yaml::Value, serde_yaml::Error> {
            let mut items = serde_yaml::from_str::<Vec<serde_yaml::Value>>(doc)?;
            let mut last = items.pop().unwrap_or(serde_yaml::Value::Null);
            last.apply_merge()?;
            Ok(last)
        };
        let parsed = match serde_yaml::from_str::<Vec<serde_yaml::Value>>(text) {
            Ok(items) if items.len() != 1 => return Err("is not one list item".into()),
            Ok(_) => one(text),
            Err(e) if e.to_string().contains("unknown anchor") && !self.anchors.is_empty() => {
                one(&format!("{}{text}", self.anchors))
            }
            Err(e) => Err(e),
        };
        if text.contains('&') && self.anchors.len() + text.len() <= WHOLE_MAX {
            self.anchors.push_str(text);
        }
        parsed.map_err(|e| format!("is not valid YAML: {e}"))
    }

    fn next_line(&mut self) -> Option<std::io::Result<String>> {
        if self.failed {
            return None;
        }
        let l = self.lines.next()?;
        self.line_no += 1;
        self.failed = l.is_err();
        Some(l)
    }

    fn item_start(line: &str) -> bool {
        line == "-" || line.starts_with("- ") || line.starts_with("-\t")
    }

    fn skippable(line: &str) -> bool {
        let t = line.trim();
        t.is_empty() || t.starts_with('#') || line.starts_with("---") || line.starts_with("...")
    }

    /// Reads the rest as one document, for lists that are not block lists
    /// (at most [`WHOLE_MAX`] of it).
    fn read_whole(&mut self, first: String, first_line: usize) -> Row {
        let mut text = first;
        text.push('\n');
        while let Some(l) = self.next_line() {
            match l {
                Ok(_) if text.len() > WHOLE_MAX => {
                    // Nothing after this can be read as items: the input ends.
                    self.failed = true;
                    return Row {
                        line: first_line,
                        username: None,
                        fields: Err(format!(
                            "the batch file is a YAML list in flow style larger than {}; \
                             write one item per `- ` line",
                            crate::files::size(WHOLE_MAX as u64)
                        )),
                    };
                }
                Ok(l) => {
                    text.push_str(&l);
                    text.push('\n');
                }
                Err(e) => {
                    return Row {
                        line: self.line_no,
                        username: None,
                        fields: Err(format!("cannot be read: {e}")),
                    };
                }
            }
        }
        if let Err(e) = crate::files::check_yaml_nesting(&text) {
            return Row {
                line: first_line,
                username: None,
                fields: Err(format!("the batch file is not a YAML list: {e}")),
            };
        }
        match serde_yaml::from_str::<Vec<serde_yaml::Value>>(&text) {
            Ok(items) => {
                let mut rows: Vec<Row> = items
                    .into_iter()
                    .map(|item| Row::of(first_line, yaml_item(item)))
                    .collect();
                rows.reverse();
                let first = rows.pop();
                rows.reverse();
                self.whole = Some(rows.into_iter());
                first.unwrap_or(Row {
                    line: first_line,
                    username: None,
                    fields: Err("the list is empty".into()),
                })
            }
            Err(e) => Row {
                line: first_line,
                username: None,
                fields: Err(format!("the batch file is not a YAML list: {e}")),
            },
        }
    }
}

impl<R: BufRead> Iterator for YamlRows<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if let Some(whole) = &mut self.whole {
            return whole.next();
        }
        // Find where the next item starts.
        let (start, mut text) = match self.pending.take() {
            Some(p) => p,
            None => loop {
                let l = match self.next_line()? {
                    Ok(l) => l,
                    Err(e) => {
                        return Some(Row {
                            line: self.line_no,
                            username: None,
                            fields: Err(format!("cannot be read: {e}")),
                        });
                    }
                };
                if Self::item_start(&l) {
                    self.started = true;
                    break (self.line_no, l);
                }
                if Self::skippable(&l) {
                    continue;
                }
                if self.started {
                    return Some(Row {
                        line: self.line_no,
                        username: None,
                        fields: Err("is not part of a list item (items start with `- `)".into()),
                    });
                }
                let line = self.line_no;
                return Some(self.read_whole(l, line));
            },
        };
        text.push('\n');
        // Gather its lines up to the next item.
        while let Some(l) = self.next_line() {
            match l {
                Ok(l) if Self::item_start(&l) => {
                    self.pending = Some((self.line_no, l));
                    break;
                }
                Ok(l) if l.starts_with("---") || l.starts_with("...") => break,
                Ok(l) => {
                    text.push_str(&l);
                    text.push('\n');
                }
                Err(e) => {
                    return Some(Row {
                        line: self.line_no,
                        username: None,
                        fields: Err(format!("cannot be read: {e}")),
                    });
                }
            }
        }
        if let Err(e) = crate::files::check_yaml_nesting(&text) {
            return Some(Row {
                line: start,
                username: None,
                fields: Err(format!("is not valid YAML: {e}")),
            });
        }
        let parsed = match self.item_value(&text) {
            Ok(item) => yaml_item(item),
            Err(e) => (None, Err(e)),
        };
        Some(Row::of(start, parsed))
    }
}

fn yaml_item(item: serde_yaml::Value) -> (Option<String>, Result<Fields, String>) {
    match serde_json::to_value(item) {
        Ok(Value::Object(map)) => fields(map.into_iter()),
        Ok(other) => (
            None,
            Err(format!(
                "is not a mapping of fields ({})",
                json_kind(&other)
            )),
        ),
        Err(e) => (None, Err(format!("cannot be read: {e}"))),
    }
}

/// The known fields out of a row's key/value pairs (the rest is `extra`),
/// and its username, which a bad field elsewhere does not hide.
pub fn fields(
    pairs: impl Iterator<Item = (String, Value)>,
) -> (Option<String>, Result<Fields, String>) {
    let mut f = Fields::default();
    let mut bad = None;
    for (key, value) in pairs {
        let r = match key.as_str() {
            "username" => text(&key, value).map(|v| f.username = v),
            "password" => text(&key, value).map(|v| f.password = v),
            "displayname" => text(&key, value).map(|v| f.displayname = v),
            "user_type" => text(&key, value).map(|v| f.user_type = v),
            "admin" => boolean(&key, value).map(|v| f.admin = v),
            "active" => boolean(&key, value).map(|v| f.active = v),
            "locked" => boolean(&key, value).map(|v| f.locked = v),
            "avatar" => text(&key, value).map(|v| f.avatar = v),
            "emails" => list(&key, value).map(|v| f.emails = v),
            "rooms" => list(&key, value).map(|v| f.rooms = v),
            "external_ids" => external_ids(&key, value).map(|v| f.external_ids = v),
            "erased_ok" => boolean(&key, value).map(|v| f.erased_ok = v),
            _ => {
                f.extra.insert(key, value);
                Ok(())
            }
        };
        if let Err(e) = r {
            bad.get_or_insert(e);
        }
    }
    let username = f.username.clone();
    (username, bad.map_or(Ok(f), Err))
}

fn text(key: &str, v: Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(format!("{key} is {}, not text", json_kind(&other))),
    }
}

/// A list: a JSON or YAML list of strings, or text of space-separated
/// values (a CSV cell). An empty cell is no list: the field is not managed;
/// an empty JSON list is one: the set is empty.
fn list(key: &str, v: Value) -> Result<Option<Vec<String>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.split_whitespace().map(str::to_string).collect())),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(format!("{key} lists {}, not text", json_kind(&other))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(format!("{key} is {}, not a list", json_kind(&other))),
    }
}

/// A list of external IDs: `provider:id` text (space-separated in a CSV
/// cell), or `{auth_provider, external_id}` mappings.
fn external_ids(key: &str, v: Value) -> Result<Option<Vec<String>>, String> {
    let Value::Array(items) = v else {
        return list(key, v);
    };
    items
        .into_iter()
        .map(|i| match i {
            Value::Object(m) => match (
                m.get("auth_provider").and_then(Value::as_str),
                m.get("external_id").and_then(Value::as_str),
            ) {
                (Some(p), Some(id)) if m.len() == 2 => Ok(format!("{p}:{id}")),
                _ => Err(format!(
                    "{key} lists a mapping that is not {{auth_provider, external_id}}"
                )),
            },
            Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            other => Err(format!("{key} lists {}, not text", json_kind(&other))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn boolean(key: &str, v: Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "yes" | "y" | "1" => Ok(Some(true)),
            "false" | "no" | "n" | "0" => Ok(Some(false)),
            _ => Err(format!(
                "{key} is {s:?}, not a boolean (true/false, yes/no, 1/0)"
            )),
        },
        Value::Number(n) if n.as_u64() == Some(1) => Ok(Some(true)),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(Some(false)),
        other => Err(format!("{key} is {}, not a boolean", json_kind(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: Format, text: &str) -> Vec<(usize, Result<Fields, String>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows");
        std::fs::write(&p, text).unwrap();
        open(&p, format)
            .unwrap()
            .map(|r| (r.line, r.fields))
            .collect()
    }

    #[test]
    fn csv_rows_with_extra_columns_and_bad_rows() {
        let rows = read(
            Format::Csv,
            "username,password,admin,team\nalice,pw1,yes,red\nbob,,maybe,blue\ncarol,pw3\n\"dan\nny\",pw4,0,green\n",
        );
        assert_eq!(rows.len(), 4);
        let alice = rows[0].1.as_ref().unwrap();
        assert_eq!(
            (rows[0].0, alice.username.as_deref(), alice.admin),
            (2, Some("alice"), Some(true))
        );
        assert_eq!(alice.extra["team"], "red");
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.as_ref().unwrap_err().contains("not a boolean"));
        assert!(
            rows[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("2 fields where the header has 4")
        );
        assert_eq!(rows[3].0, 5);
    }

    #[test]
    fn csv_line_numbers_hold_with_every_line_ending() {
        for eol in ["\n", "\r\n", "\r"] {
            let text = [
                "username,password",
                "a1,x",
                "a2,y",
                "\"a\r\n3\",z",
                "a1,w",
                "a5",
            ]
            .join(eol)
                + eol;
            let rows = read(Format::Csv, &text);
            let lines: Vec<usize> = rows.iter().map(|r| r.0).collect();
            assert_eq!(lines, [2, 3, 4, 6, 7], "{eol:?}");
        }
        // A line past its bound: its own line, and the documented words.
        let text = format!("username\nok1\n{}\n", "x".repeat(70 * 1024));
        let rows = read(Format::Csv, &text);
        assert_eq!(rows.last().unwrap().0, 3);
        assert!(
            rows.last()
                .unwrap()
                .1
                .as_ref()
                .unwrap_err()
                .contains("cannot be read: a line is longer than 64 KiB"),
            "{rows:?}"
        );
    }

    #[test]
    fn a_yaml_item_may_merge_an_earlier_items_anchor() {
        let rows = read(
            Format::Yaml,
            "- &defaults\n  username: base\n  displayname: Team\n  admin: false\n- <<: *defaults\n  username: second\n",
        );
        assert_eq!(rows.len(), 2);
        let second = rows[1].1.as_ref().unwrap();
        assert_eq!(rows[1].0, 5);
        assert_eq!(second.username.as_deref(), Some("second"));
        assert_eq!(second.displayname.as_deref(), Some("Team"));
        assert_eq!(second.admin, Some(false));
    }

    #[test]
    fn a_short_csv_row_still_names_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows.csv");
        std::fs::write(&p, "username,password\nBOB\n").unwrap();
        let row = open(&p, Format::Csv).unwrap().next().unwrap();
        assert_eq!(row.username.as_deref(), Some("BOB"));
        assert!(
            row.fields
                .unwrap_err()
                .contains("1 fields where the header has 2")
        );
    }

    #[test]
    fn jsonl_rows_skip_blank_lines_and_keep_line_numbers() {
        let rows = read(
            Format::Jsonl,
            "{\"username\":\"a\",\"admin\":true,\"x\":[1]}\n\n[1,2]\nnot json\n{\"username\":5}\n",
        );
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 4, 5]);
        assert_eq!(
            rows[0].1.as_ref().unwrap().extra["x"],
            serde_json::json!([1])
        );
        assert!(rows[1].1.as_ref().unwrap_err().contains("not an object"));
        assert!(rows[2].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert_eq!(rows[3].1.as_ref().unwrap().username.as_deref(), Some("5"));
    }

    #[test]
    fn yaml_block_list_streams_item_by_item() {
        let rows = read(
            Format::Yaml,
            "# users\n---\n- username: alice\n  admin: true\n  team: red\n\n- username: bob\n  password: \"123\"\n- just a string\n- {username: carol}\n",
        );
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 7, 9, 10]);
        assert_eq!(rows[0].1.as_ref().unwrap().admin, Some(true));
        assert_eq!(rows[1].1.as_ref().unwrap().password.as_deref(), Some("123"));
        assert!(rows[2].1.is_err());
        assert_eq!(
            rows[3].1.as_ref().unwrap().username.as_deref(),
            Some("carol")
        );
    }

    #[test]
    fn yaml_flow_list_is_read_whole() {
        let rows = read(Format::Yaml, "[{username: a}, {username: b}]\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1.as_ref().unwrap().username.as_deref(), Some("b"));
        let bad = read(Format::Yaml, "username: a\n");
        assert!(bad[0].1.as_ref().unwrap_err().contains("not a YAML list"));
    }
    #[test]
    fn a_flow_style_yaml_list_is_read_whole_up_to_its_bound() {
        let small = "[{username: a}, {username: b}]\n";
        let rows = read(Format::Yaml, small);
        assert_eq!(rows.len(), 2);
        let line = format!(
            "{},\n",
            (0..1000)
                .map(|i| format!("{{username: u{i}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let big = format!("[{}{{username: last}}]\n", line.repeat(80));
        assert!(big.len() > 1 << 20);
        let rows = read(Format::Yaml, &big);
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]
                .1
                .as_ref()
                .unwrap_err()
                .contains("flow style larger than 1 MiB"),
            "{:?}",
            rows[0].1
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn rows(format: Format, text: &str) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows");
        std::fs::write(&p, text).unwrap();
        let lines = text.lines().count() + 1;
        let Ok(rows) = open(&p, format) else { return 0 };
        let mut n = 0;
        for row in rows {
            assert!(row.line <= lines, "line {} of {lines}", row.line);
            n += 1;
        }
        n
    }

    proptest! {
        /// Arbitrary text in each format: rows or row errors, never a panic.
        #[test]
        fn any_text(text in "(?s).{0,400}") {
            for f in [Format::Csv, Format::Jsonl, Format::Yaml] {
                rows(f, &text);
            }
        }

        /// Text made of the formats' own punctuation, which reaches deeper.
        #[test]
        fn format_shaped_text(text in "[-a-z\"',:{}\\[\\]\n #=0-9]{0,300}") {
            for f in [Format::Csv, Format::Jsonl, Format::Yaml] {
                rows(f, &text);
            }
        }

        /// Well-formed JSON Lines: one row per non-blank line.
        #[test]
        fn jsonl_rows_match_lines(names in prop::collection::vec("[a-z]{1,8}", 0..20)) {
            let text: String = names.iter().map(|n| format!("{{\"username\":\"{n}\"}}\n\n")).collect();
            prop_assert_eq!(rows(Format::Jsonl, &text), names.len());
        }
    }
}
