//! Homeserver configs read as Synapse reads them: PyYAML's `safe_load`,
//! which is YAML 1.1. Where that differs from a YAML 1.2 reading, this
//! follows PyYAML:
//!
//! - plain `yes`/`no`/`on`/`off` (in any of PyYAML's spellings) are
//!   booleans, and a quoted `"no"` stays a string;
//! - integers may be octal (`0755`), binary (`0b101`), hexadecimal, carry
//!   `_` separators or be sexagesimal (`1:30`); floats need a dot;
//! - merge keys (`<<: *defaults`, or a list of them) merge mappings, and the
//!   mapping's own keys win;
//! - a repeated key keeps its last value;
//! - a leading byte order mark is passed over.
//!
//! The events come from the `yaml-rust2` parser, which keeps each scalar's
//! style; the values are serde_yaml's, as the rest of the config code uses.

use serde_yaml::{Mapping, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// The one document of `text`, as PyYAML's `safe_load` builds it (`Null` for
/// an empty one).
pub fn load(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    // Open collections: a sequence's items, or a mapping's pairs so far.
    let mut stack: Vec<Open> = Vec::new();
    let mut doc: Option<Value> = None;
    let mut docs = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            // As PyYAML places it: a line and a column, both from 1.
            let m = e.marker();
            format!("{} at line {} column {}", e.info(), m.line(), m.col() + 1)
        })?;
        let at = || format!("line {}", mark.line());
        let done: Option<(Value, usize)> = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                docs += 1;
                if docs > 1 {
                    return Err(format!(
                        "{}: expected a single document in the stream, but found another",
                        at()
                    ));
                }
                None
            }
            Event::Alias(id) => Some((
                anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("{}: found undefined alias", at()))?,
                0,
            )),
            Event::Scalar(s, style, anchor, tag) => Some((
                scalar(s, style, tag.as_ref()).map_err(|e| format!("{}: {e}", at()))?,
                anchor,
            )),
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq").map_err(|e| format!("{}: {e}", at()))?;
                stack.push(Open::Seq(anchor, Vec::new()));
                None
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map").map_err(|e| format!("{}: {e}", at()))?;
                stack.push(Open::Map(anchor, Vec::new()));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(anchor, items)) => Some((Value::Sequence(items), anchor)),
                _ => return Err(format!("{}: unbalanced sequence", at())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(anchor, pairs)) => Some((
                    Value::Mapping(construct_mapping(pairs).map_err(|e| format!("{}: {e}", at()))?),
                    anchor,
                )),
                _ => return Err(format!("{}: unbalanced mapping", at())),
            },
        };
        let Some((value, anchor)) = done else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            Some(Open::Seq(_, items)) => items.push(value),
            Some(Open::Map(_, pairs)) => pairs.push(value),
            None => doc = Some(value),
        }
    }
    Ok(doc.unwrap_or(Value::Null))
}

/// A value as Python's `bool()` judges it, which is how Synapse reads a
/// flag: a quoted `"no"` is true, `0` and an empty list are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::Tagged(_) => true,
    }
}

enum Open {
    Seq(usize, Vec<Value>),
    /// Keys and values, alternating, as they came.
    Map(usize, Vec<Value>),
}

/// The merge key, as PyYAML resolves a plain `<<`.
const MERGE: &str = "\u{0}<<merge>>";

/// A mapping from its pairs: merged mappings first, in the order listed (as
/// PyYAML 6 merges them, a later one's key replaces an earlier one's), then
/// its own keys, each later one replacing an earlier.
fn construct_mapping(pairs: Vec<Value>) -> Result<Mapping, String> {
    let mut merged: Vec<Mapping> = Vec::new();
    let mut own: Vec<(Value, Value)> = Vec::new();
    let mut it = pairs.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if k.as_str() == Some(MERGE) {
            match v {
                Value::Mapping(m) => merged.push(m),
                Value::Sequence(items) => {
                    for item in items {
                        match item {
                            Value::Mapping(m) => merged.push(m),
                            _ => {
                                return Err(
                                    "expected a mapping for merging, but found another value"
                                        .into(),
                                );
                            }
                        }
                    }
                }
                _ => {
                    return Err(
                        "expected a mapping or list of mappings for merging, but found another value"
                            .into(),
                    );
                }
            }
        } else {
            own.push((k, v));
        }
    }
    let mut out = Mapping::new();
    for m in merged {
        for (k, v) in m {
            out.insert(k, v);
        }
    }
    for (k, v) in own {
        // A key again: PyYAML keeps the last value, in the first one's place.
        out.insert(k, v);
    }
    Ok(out)
}

fn is_core(tag: &Tag, name: &str) -> bool {
    (tag.handle == "!!" && tag.suffix == name)
        || (tag.handle.is_empty() && tag.suffix == format!("tag:yaml.org,2002:{name}"))
}

fn check_collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if is_core(t, kind) || (kind == "map" && is_core(t, "omap")) => Ok(()),
        Some(t) => Err(format!(
            "could not determine a constructor for the tag '{}{}'",
            t.handle, t.suffix
        )),
    }
}

/// A scalar: quoted and block scalars are strings; a plain one is resolved
/// as PyYAML's implicit resolvers do; an explicit core tag decides.
fn scalar(s: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(t) = tag {
        return if is_core(t, "str") {
            Ok(Value::String(s))
        } else if is_core(t, "bool") {
            bool_of(&s)
                .map(Value::Bool)
                .ok_or_else(|| format!("{s:?} is not a boolean"))
        } else if is_core(t, "int") {
            int_of(&s).ok_or_else(|| format!("{s:?} is not an integer"))
        } else if is_core(t, "float") {
            float_of(&s)
                .or_else(|| {
                    int_of(&s)
                        .and_then(|v| v.as_f64())
                        .map(|f| Value::Number(Number::from(f)))
                })
                .ok_or_else(|| format!("{s:?} is not a float"))
        } else if is_core(t, "null") {
            Ok(Value::Null)
        } else {
            Err(format!(
                "could not determine a constructor for the tag '{}{}'",
                t.handle, t.suffix
            ))
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(s));
    }
    if s == "<<" {
        return Ok(Value::String(MERGE.into()));
    }
    if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = bool_of(&s) {
        return Ok(Value::Bool(b));
    }
    if let Some(v) = int_of(&s) {
        return Ok(v);
    }
    if let Some(v) = float_of(&s) {
        return Ok(v);
    }
    Ok(Value::String(s))
}

fn bool_of(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn sign(s: &str) -> (i128, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    }
}

/// PyYAML's int: `[-+]?0b[01_]+`, `[-+]?0[0-7_]+`, `[-+]?(0|[1-9][0-9_]*)`,
/// `[-+]?0x[0-9a-fA-F_]+`, `[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`.
fn int_of(s: &str) -> Option<Value> {
    let (sg, body) = sign(s);
    let digits = |d: &str, radix: u32| -> Option<i128> {
        let clean: String = d.chars().filter(|c| *c != '_').collect();
        if clean.is_empty() && !d.is_empty() {
            return Some(0);
        }
        if !d.chars().all(|c| c == '_' || c.is_digit(radix)) || d.is_empty() {
            return None;
        }
        i128::from_str_radix(&clean, radix).ok()
    };
    let n: i128 = if let Some(b) = body.strip_prefix("0b") {
        digits(b, 2)?
    } else if let Some(h) = body.strip_prefix("0x") {
        digits(h, 16)?
    } else if body.contains(':') {
        let mut parts = body.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| ('1'..='9').contains(&c)) {
            return None;
        }
        let mut n = digits(first, 10)?;
        for p in parts {
            let ok = !p.is_empty()
                && p.len() <= 2
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || p.as_bytes()[0] <= b'5');
            if !ok {
                return None;
            }
            n = n * 60 + p.parse::<i128>().ok()?;
        }
        n
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        digits(o, 8)?
    } else if body.starts_with(|c: char| ('1'..='9').contains(&c)) {
        digits(body, 10)?
    } else {
        return None;
    };
    let n = sg * n;
    Some(match i64::try_from(n) {
        Ok(i) => Value::Number(Number::from(i)),
        Err(_) => match u64::try_from(n) {
            Ok(u) => Value::Number(Number::from(u)),
            // Python has no bound; past 64 bits it is kept as text.
            Err(_) => Value::String(s.to_string()),
        },
    })
}

/// PyYAML's float: a dot is required (`1.5`, `.5`, `1.`, `6.0e+3` with a
/// signed exponent), or `1:30.5`, `.inf`, `.nan`.
fn float_of(s: &str) -> Option<Value> {
    let f = |x: f64| Some(Value::Number(Number::from(x)));
    let (sg, body) = sign(s);
    let sgf = sg as f64;
    match body {
        ".inf" | ".Inf" | ".INF" => return f(sgf * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if s == body => return f(f64::NAN),
        _ => {}
    }
    if body.contains(':') {
        let (whole, frac) = body.split_once('.')?;
        let mut parts = whole.split(':');
        let first = parts.next()?;
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        let mut n: f64 = first.replace('_', "").parse().ok()?;
        for p in parts {
            if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            n = n * 60.0 + p.parse::<f64>().ok()?;
        }
        if !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        let frac: f64 = format!("0.{}", frac.replace('_', "")).parse().ok()?;
        return f(sgf * (n + frac));
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac) = mantissa.split_once('.')?;
    let int_ok = if int_part.is_empty() {
        // `.5`: digits must follow the dot, and no sign before it in PyYAML.
        s == body && frac.starts_with(|c: char| c.is_ascii_digit())
    } else {
        int_part.starts_with(|c: char| c.is_ascii_digit())
            && int_part.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    if !int_ok || !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-'])?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let text = format!("{}{}", if sg < 0 { "-" } else { "" }, body.replace('_', ""));
    let text = if text.ends_with('.') || text.contains(".e") || text.contains(".E") {
        text.replacen('.', ".0", 1)
    } else {
        text
    };
    f(text.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(v: &'a Value, k: &str) -> &'a Value {
        v.get(k).unwrap_or(&Value::Null)
    }

    #[test]
    fn yaml_1_1_as_pyyaml_reads_it() {
        let v = load(
            "\u{feff}a: yes\nb: \"no\"\nc: off\nd: 0755\ne: 1_000\nf: 1:30\ng: 1e3\nh: 1.5e+3\ni: ~\nj: 0x1F\nk: y\nl: .5\nm: 0o17\n",
        )
        .unwrap();
        assert_eq!(get(&v, "a"), &Value::Bool(true));
        assert_eq!(get(&v, "b"), &Value::String("no".into()));
        assert_eq!(get(&v, "c"), &Value::Bool(false));
        assert_eq!(get(&v, "d").as_i64(), Some(493));
        assert_eq!(get(&v, "e").as_i64(), Some(1000));
        assert_eq!(get(&v, "f").as_i64(), Some(90));
        assert_eq!(get(&v, "g"), &Value::String("1e3".into()));
        assert_eq!(get(&v, "h").as_f64(), Some(1500.0));
        assert_eq!(get(&v, "i"), &Value::Null);
        assert_eq!(get(&v, "j").as_i64(), Some(31));
        assert_eq!(get(&v, "k"), &Value::String("y".into()));
        assert_eq!(get(&v, "l").as_f64(), Some(0.5));
        assert_eq!(get(&v, "m"), &Value::String("0o17".into()));
    }

    #[test]
    fn merges_and_repeated_keys() {
        let v = load(
            "base: &b {port: 8008, tls: false}\nother: &o {port: 1, bind: x}\nl:\n  <<: [*b, *o]\n  port: 5001\nm:\n  <<: [*b, *o]\nk: 1\nk: 2\n",
        )
        .unwrap();
        let l = get(&v, "l");
        assert_eq!(get(l, "port").as_i64(), Some(5001));
        assert_eq!(get(l, "tls"), &Value::Bool(false));
        assert_eq!(get(l, "bind"), &Value::String("x".into()));
        // Among merged mappings, the later listed wins (PyYAML 6).
        assert_eq!(get(get(&v, "m"), "port").as_i64(), Some(1));
        assert_eq!(get(&v, "k").as_i64(), Some(2));
        assert!(load("a: 1\n---\nb: 2\n").is_err());
        assert!(load("a: !foo 1\n").is_err());
        assert_eq!(load("").unwrap(), Value::Null);
    }
}
