//! `string.find`, `string.match`, `string.gmatch` and `string.gsub` for
//! hooks, with Lua 5.4's pattern language and results, that stop at the
//! hook's deadline.
//!
//! Lua's own matcher backtracks in C, where no instruction count reaches it:
//! `("a"):rep(400):find(".-.-.-.-b")` would run for hours under any limit.
//! This one is the same algorithm, counting its steps and asking every few
//! thousand whether the call is out of time.

use mlua::{Function, Lua, MultiValue, Table, Value};
use std::cell::RefCell;
use std::rc::Rc;

const MAXCAPTURES: usize = 32;
/// How deep matching may recurse (Lua's MAXCCALLS).
const MAXDEPTH: usize = 200;
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;
const SPECIALS: &[u8] = b"^$*+?.([%-";
/// Steps between two looks at the clock.
const CHECK_EVERY: u64 = 1 << 14;

/// Whether the running hook call is past its deadline.
pub type Expired = Rc<dyn Fn() -> bool>;

enum Cap {
    Str(usize, usize),
    Pos(usize),
}

struct Matcher<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    level: usize,
    capture: [(usize, isize); MAXCAPTURES],
    depth: usize,
    steps: u64,
    expired: &'a dyn Fn() -> bool,
}

type R<T> = Result<T, String>;

fn timeout() -> String {
    "hook deadline exceeded".into()
}

fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        _ => return cl == c,
    };
    if cl.is_ascii_uppercase() { !res } else { res }
}

impl<'a> Matcher<'a> {
    fn new(src: &'a [u8], pat: &'a [u8], expired: &'a dyn Fn() -> bool) -> Self {
        Matcher {
            src,
            pat,
            level: 0,
            capture: [(0, 0); MAXCAPTURES],
            depth: MAXDEPTH,
            steps: 0,
            expired,
        }
    }

    fn reset(&mut self) {
        self.level = 0;
        self.depth = MAXDEPTH;
    }

    /// Counts `cost` steps; past the deadline, an error.
    fn tick(&mut self, cost: u64) -> R<()> {
        let before = self.steps;
        self.steps += cost;
        if before / CHECK_EVERY != self.steps / CHECK_EVERY && (self.expired)() {
            return Err(timeout());
        }
        Ok(())
    }

    /// The pattern's byte at `i`, or 0 past its end (as C reads the NUL).
    fn p(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    fn s(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn class_end(&self, mut p: usize) -> R<usize> {
        let c = self.p(p);
        p += 1;
        match c {
            b'%' => {
                if p >= self.pat.len() {
                    return Err("malformed pattern (ends with '%')".into());
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.p(p) == b'^' {
                    p += 1;
                }
                loop {
                    if p >= self.pat.len() {
                        return Err("malformed pattern (missing ']')".into());
                    }
                    let cc = self.pat[p];
                    p += 1;
                    if cc == b'%' && p < self.pat.len() {
                        p += 1;
                    }
                    if self.p(p) == b']' {
                        break;
                    }
                }
                Ok(p + 1)
            }
            _ => Ok(p),
        }
    }

    /// `[...]` from `p` (the `[`) to `ec` (the `]`).
    fn match_bracket(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut sig = true;
        if self.p(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                return !sig;
            }
            let pc = self.p(p);
            if pc == b'%' {
                p += 1;
                if match_class(c, self.p(p)) {
                    return sig;
                }
            } else if self.p(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if self.p(p - 2) <= c && c <= self.p(p) {
                    return sig;
                }
            } else if pc == c {
                return sig;
            }
        }
    }

    fn single_match(&self, s: usize, p: usize, ep: usize) -> bool {
        if s >= self.src.len() {
            return false;
        }
        let c = self.src[s];
        match self.p(p) {
            b'.' => true,
            b'%' => match_class(c, self.p(p + 1)),
            b'[' => self.match_bracket(c, p, ep - 1),
            pc => pc == c,
        }
    }

    fn match_balance(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        if p + 1 >= self.pat.len() {
            return Err("malformed pattern (missing arguments to '%b')".into());
        }
        if self.s(s) != self.pat[p] || s >= self.src.len() {
            return Ok(None);
        }
        let (b, e) = (self.pat[p], self.pat[p + 1]);
        let mut cont = 1;
        let mut s = s + 1;
        while s < self.src.len() {
            self.tick(1)?;
            let c = self.src[s];
            if c == e {
                cont -= 1;
                if cont == 0 {
                    return Ok(Some(s + 1));
                }
            } else if c == b {
                cont += 1;
            }
            s += 1;
        }
        Ok(None)
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> R<Option<usize>> {
        let mut i = 0;
        while self.single_match(s + i, p, ep) {
            i += 1;
            self.tick(1)?;
        }
        loop {
            if let Some(r) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(r));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> R<Option<usize>> {
        loop {
            if let Some(r) = self.do_match(s, ep + 1)? {
                return Ok(Some(r));
            }
            if self.single_match(s, p, ep) {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, what: isize) -> R<Option<usize>> {
        if self.level >= MAXCAPTURES {
            return Err("too many captures".into());
        }
        self.capture[self.level] = (s, what);
        self.level += 1;
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.level -= 1;
        }
        Ok(r)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        let l = (0..self.level)
            .rev()
            .find(|l| self.capture[*l].1 == CAP_UNFINISHED)
            .ok_or("invalid pattern capture")?;
        self.capture[l].1 = (s - self.capture[l].0) as isize;
        let r = self.do_match(s, p)?;
        if r.is_none() {
            self.capture[l].1 = CAP_UNFINISHED;
        }
        Ok(r)
    }

    fn check_capture(&self, c: u8) -> R<usize> {
        let l = c as isize - b'1' as isize;
        if l < 0 || l as usize >= self.level || self.capture[l as usize].1 == CAP_UNFINISHED {
            return Err(format!("invalid capture index %{}", l + 1));
        }
        Ok(l as usize)
    }

    fn match_capture(&mut self, s: usize, c: u8) -> R<Option<usize>> {
        let l = self.check_capture(c)?;
        let (init, len) = self.capture[l];
        // A position capture has no text: it never matches again.
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        self.tick(len as u64)?;
        if self.src.len() - s >= len && self.src[init..init + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    fn do_match(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        if self.depth == 0 {
            return Err("pattern too complex".into());
        }
        self.depth -= 1;
        let r = self.match_body(s, p);
        self.depth += 1;
        r
    }

    fn match_body(&mut self, mut s: usize, mut p: usize) -> R<Option<usize>> {
        loop {
            self.tick(1)?;
            if p == self.pat.len() {
                return Ok(Some(s));
            }
            match (self.pat[p], self.p(p + 1)) {
                (b'(', b')') => return self.start_capture(s, p + 2, CAP_POSITION),
                (b'(', _) => return self.start_capture(s, p + 1, CAP_UNFINISHED),
                (b')', _) => return self.end_capture(s, p + 1),
                (b'$', _) if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                (b'%', b'b') => match self.match_balance(s, p + 2)? {
                    Some(ns) => {
                        s = ns;
                        p += 4;
                    }
                    None => return Ok(None),
                },
                (b'%', b'f') => {
                    p += 2;
                    if self.p(p) != b'[' {
                        return Err("missing '[' after '%f' in pattern".into());
                    }
                    let ep = self.class_end(p)?;
                    let prev = if s == 0 { 0 } else { self.s(s - 1) };
                    if !self.match_bracket(prev, p, ep - 1)
                        && self.match_bracket(self.s(s), p, ep - 1)
                    {
                        p = ep;
                    } else {
                        return Ok(None);
                    }
                }
                (b'%', d) if d.is_ascii_digit() => match self.match_capture(s, d)? {
                    Some(ns) => {
                        s = ns;
                        p += 2;
                    }
                    None => return Ok(None),
                },
                _ => {
                    let ep = self.class_end(p)?;
                    let suffix = self.p(ep);
                    if !self.single_match(s, p, ep) {
                        if matches!(suffix, b'*' | b'?' | b'-') {
                            p = ep + 1;
                            continue;
                        }
                        return Ok(None);
                    }
                    match suffix {
                        b'?' => {
                            if let Some(r) = self.do_match(s + 1, ep + 1)? {
                                return Ok(Some(r));
                            }
                            p = ep + 1;
                        }
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => {
                            s += 1;
                            p = ep;
                        }
                    }
                }
            }
        }
    }

    fn capture(&self, i: usize, s: usize, e: usize) -> R<Cap> {
        if i >= self.level {
            if i != 0 {
                return Err(format!("invalid capture index %{}", i + 1));
            }
            return Ok(Cap::Str(s, e));
        }
        let (init, len) = self.capture[i];
        match len {
            CAP_UNFINISHED => Err("unfinished capture".into()),
            CAP_POSITION => Ok(Cap::Pos(init + 1)),
            len => Ok(Cap::Str(init, init + len as usize)),
        }
    }

    /// The captures as Lua values (the whole match when there are none and
    /// `whole` is given).
    fn captures(&self, lua: &Lua, whole: Option<(usize, usize)>) -> mlua::Result<Vec<Value>> {
        let n = if self.level == 0 && whole.is_some() {
            1
        } else {
            self.level
        };
        let (s, e) = whole.unwrap_or((0, 0));
        (0..n).map(|i| self.cap_value(lua, i, s, e)).collect()
    }

    fn cap_value(&self, lua: &Lua, i: usize, s: usize, e: usize) -> mlua::Result<Value> {
        Ok(match self.capture(i, s, e).map_err(mlua::Error::runtime)? {
            Cap::Str(a, b) => Value::String(lua.create_string(&self.src[a..b])?),
            Cap::Pos(n) => Value::Integer(n as i64),
        })
    }
}

/// Lua's posrelatI: a 1-based start position from a possibly negative one.
fn start_at(pos: Option<i64>, len: usize) -> usize {
    let pos = pos.unwrap_or(1);
    if pos > 0 {
        pos as usize
    } else if pos == 0 || pos < -(len as i64) {
        1
    } else {
        (len as i64 + pos + 1) as usize
    }
}

/// A plain search, its cost counted.
fn find_plain(m: &mut Matcher<'_>, from: usize, needle: &[u8]) -> R<Option<usize>> {
    if needle.is_empty() {
        return Ok(Some(from));
    }
    let hay = m.src;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        m.tick(needle.len() as u64)?;
        if hay[i] == needle[0] && &hay[i..i + needle.len()] == needle {
            return Ok(Some(i));
        }
        i += 1;
    }
    Ok(None)
}

fn run_err(e: String) -> mlua::Error {
    mlua::Error::runtime(e)
}

fn find_aux(
    lua: &Lua,
    expired: &dyn Fn() -> bool,
    args: (mlua::String, mlua::String, Option<i64>, Option<Value>),
    find: bool,
) -> mlua::Result<MultiValue> {
    let (s, p, init, plain) = args;
    let (sb, pb) = (s.as_bytes(), p.as_bytes());
    let (s, p): (&[u8], &[u8]) = (&sb, &pb);
    let init = start_at(init, s.len()) - 1;
    if init > s.len() {
        return Ok(MultiValue::from_vec(vec![Value::Nil]));
    }
    let plain = plain.is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
    if find && (plain || !p.iter().any(|b| SPECIALS.contains(b))) {
        let mut m = Matcher::new(s, p, expired);
        return Ok(match find_plain(&mut m, init, p).map_err(run_err)? {
            Some(at) => MultiValue::from_vec(vec![
                Value::Integer(at as i64 + 1),
                Value::Integer((at + p.len()) as i64),
            ]),
            None => MultiValue::from_vec(vec![Value::Nil]),
        });
    }
    let (anchor, p) = match p.first() {
        Some(b'^') => (true, &p[1..]),
        _ => (false, p),
    };
    let mut m = Matcher::new(s, p, expired);
    let mut s1 = init;
    loop {
        m.reset();
        if let Some(e) = m.do_match(s1, 0).map_err(run_err)? {
            let mut out = Vec::new();
            if find {
                out.push(Value::Integer(s1 as i64 + 1));
                out.push(Value::Integer(e as i64));
                out.extend(m.captures(lua, None)?);
            } else {
                out.extend(m.captures(lua, Some((s1, e)))?);
            }
            return Ok(MultiValue::from_vec(out));
        }
        s1 += 1;
        if anchor || s1 > s.len() {
            return Ok(MultiValue::from_vec(vec![Value::Nil]));
        }
    }
}

fn gmatch(
    lua: &Lua,
    expired: Expired,
    (s, p, init): (mlua::String, mlua::String, Option<i64>),
) -> mlua::Result<Function> {
    let (s, p) = (s.as_bytes().to_vec(), p.as_bytes().to_vec());
    let mut start = start_at(init, s.len()) - 1;
    if start > s.len() {
        start = s.len() + 1;
    }
    let state = RefCell::new((start, None::<usize>));
    lua.create_function(move |lua, ()| {
        let (mut src, last) = *state.borrow();
        let mut m = Matcher::new(&s, &p, &*expired);
        while src <= s.len() {
            m.reset();
            match m.do_match(src, 0).map_err(run_err)? {
                Some(e) if Some(e) != last => {
                    *state.borrow_mut() = (e, Some(e));
                    return Ok(MultiValue::from_vec(m.captures(lua, Some((src, e)))?));
                }
                _ => src += 1,
            }
        }
        *state.borrow_mut() = (src, last);
        Ok(MultiValue::new())
    })
}

fn gsub(
    lua: &Lua,
    expired: &dyn Fn() -> bool,
    (s, p, repl, max): (mlua::String, mlua::String, Value, Option<i64>),
) -> mlua::Result<(Value, i64)> {
    let (sb, pb) = (s.as_bytes(), p.as_bytes());
    let (src, pat): (&[u8], &[u8]) = (&sb, &pb);
    match repl {
        Value::String(_) | Value::Integer(_) | Value::Number(_) | Value::Table(_) => {}
        Value::Function(_) => {}
        ref other => {
            return Err(mlua::Error::runtime(format!(
                "bad argument #3 to 'gsub' (string/function/table expected, got {})",
                other.type_name()
            )));
        }
    }
    let repl_text: Option<Vec<u8>> = match &repl {
        Value::String(t) => Some(t.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(repl.clone())?
            .map(|t| t.as_bytes().to_vec()),
        _ => None,
    };
    let max = max.unwrap_or(src.len() as i64 + 1);
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, pat),
    };
    let mut m = Matcher::new(src, pat, expired);
    let mut out: Vec<u8> = Vec::new();
    let mut at = 0usize;
    let mut last: Option<usize> = None;
    let mut n = 0i64;
    let mut changed = false;
    while n < max {
        m.reset();
        match m.do_match(at, 0).map_err(run_err)? {
            Some(e) if Some(e) != last => {
                n += 1;
                changed |= add_value(lua, &m, &repl, repl_text.as_deref(), at, e, &mut out)?;
                at = e;
                last = Some(e);
            }
            _ if at < src.len() => {
                out.push(src[at]);
                at += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    if !changed {
        drop(sb);
        return Ok((Value::String(s), n));
    }
    out.extend_from_slice(&src[at..]);
    Ok((Value::String(lua.create_string(&out)?), n))
}

/// Appends the replacement of the match `s..e`; whether it changed anything.
fn add_value(
    lua: &Lua,
    m: &Matcher<'_>,
    repl: &Value,
    repl_text: Option<&[u8]>,
    s: usize,
    e: usize,
    out: &mut Vec<u8>,
) -> mlua::Result<bool> {
    if let Some(text) = repl_text {
        let mut i = 0;
        while i < text.len() {
            let c = text[i];
            i += 1;
            if c != b'%' {
                out.push(c);
                continue;
            }
            let d = text.get(i).copied().unwrap_or(0);
            i += 1;
            if d == b'%' {
                out.push(b'%');
            } else if d.is_ascii_digit() {
                if d == b'0' {
                    out.extend_from_slice(&m.src[s..e]);
                } else {
                    let v = m.cap_value(lua, (d - b'1') as usize, s, e)?;
                    if let Some(t) = lua.coerce_string(v)? {
                        out.extend_from_slice(&t.as_bytes());
                    }
                }
            } else {
                return Err(mlua::Error::runtime(
                    "invalid use of '%' in replacement string",
                ));
            }
        }
        return Ok(true);
    }
    let value: Value = match repl {
        Value::Table(t) => {
            let key = m.cap_value(lua, 0, s, e)?;
            Table::get(t, key)?
        }
        Value::Function(f) => f.call(MultiValue::from_vec(m.captures(lua, Some((s, e)))?))?,
        _ => Value::Nil,
    };
    match value {
        Value::Nil | Value::Boolean(false) => {
            out.extend_from_slice(&m.src[s..e]);
            Ok(false)
        }
        v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
            if let Some(t) = lua.coerce_string(v)? {
                out.extend_from_slice(&t.as_bytes());
            }
            Ok(true)
        }
        other => Err(mlua::Error::runtime(format!(
            "invalid replacement value (a {})",
            other.type_name()
        ))),
    }
}

/// Puts the four functions into the state's `string` table (which is also
/// what string methods use).
pub fn install(lua: &Lua, expired: Expired) -> mlua::Result<()> {
    let string: Table = lua.globals().get("string")?;
    let x = expired.clone();
    string.set(
        "find",
        lua.create_function(move |lua, args| find_aux(lua, &*x, args, true))?,
    )?;
    let x = expired.clone();
    string.set(
        "match",
        lua.create_function(
            move |lua, (s, p, init): (mlua::String, mlua::String, Option<i64>)| {
                find_aux(lua, &*x, (s, p, init, None), false)
            },
        )?,
    )?;
    let x = expired.clone();
    string.set(
        "gmatch",
        lua.create_function(move |lua, args| gmatch(lua, x.clone(), args))?,
    )?;
    let x = expired;
    string.set(
        "gsub",
        lua.create_function(move |lua, args| gsub(lua, &*x, args))?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same calls through Lua's own functions and through these give
    /// the same results.
    #[test]
    fn agrees_with_lua() {
        let lua = Lua::new();
        let cases = r#"
          local cases = {
            {"hello world", "o w"}, {"hello world", "l+"}, {"hello", "(h)(e)"},
            {"  trim me  ", "^%s*(.-)%s*$"}, {"key = value", "(%w+)%s*=%s*(%w+)"},
            {"THE (quick) fox", "%((%a+)%)"}, {"f(a(b)c)d", "%b()"},
            {"THE (quick) fox", "%f[%a]%a+"}, {"abcabc", "(abc)%1"}, {"x", "()x()"},
            {"a.b", ".", 2}, {"a.b", "%.", 1}, {"abc", "b", -1}, {"abc", "", 10},
            {"[test]", "[%[%]]"}, {"a-b", "[a-]"}, {"aaa", "a-b"}, {"aaab", "a-b"},
            {"hello", "l?l"}, {"x=1, y=2", "(%w)=(%d)", 3}, {"ab", "^b"}, {"a$b", "$b"},
            {"caf\195\169", "[\128-\255]+"}, {"a,b,,c", "[^,]*"},
          }
          return cases
        "#;
        let list: Table = lua.load(cases).eval().unwrap();
        let expired: Expired = Rc::new(|| false);
        install(&lua, expired).unwrap();
        // Compared against a fresh state's own functions.
        let reference = Lua::new();
        for case in list.sequence_values::<Table>() {
            let case = case.unwrap();
            let s: mlua::String = case.get(1).unwrap();
            let p: mlua::String = case.get(2).unwrap();
            let (sv, pv) = (s.as_bytes().to_vec(), p.as_bytes().to_vec());
            let args = |l: &Lua| (l.create_string(&sv).unwrap(), l.create_string(&pv).unwrap());
            let init: Option<i64> = case.get(3).unwrap();
            for f in ["find", "match"] {
                let code = format!("return string.{f}(...)");
                let (s1, p1) = args(&lua);
                let a: Vec<Value> = lua
                    .load(&code)
                    .call::<MultiValue>((s1, p1, init))
                    .unwrap()
                    .into_iter()
                    .collect();
                let (s2, p2) = args(&reference);
                let b: Vec<Value> = reference
                    .load(&code)
                    .call::<MultiValue>((s2, p2, init))
                    .unwrap()
                    .into_iter()
                    .collect();
                let show = |v: &[Value]| {
                    v.iter()
                        .map(|x| x.to_string().unwrap_or_default())
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    show(&a),
                    show(&b),
                    "{f}({:?}, {:?}, {init:?})",
                    s.to_string_lossy(),
                    p.to_string_lossy()
                );
            }
            for code in [
                "local out = {} for a, b in string.gmatch(...) do out[#out+1] = tostring(a) .. '|' .. tostring(b) end return table.concat(out, ';')",
                "local s, p = ... return string.gsub(s, p, '<%0>%%')",
                "local s, p = ... return string.gsub(s, p, function(a) return a:upper() end)",
                "local s, p = ... return string.gsub(s, p, {hello = 'HI', a = false}, 2)",
            ] {
                let run = |l: &Lua| -> Result<Vec<String>, ()> {
                    l.load(code)
                        .call::<MultiValue>(args(l))
                        .map(|r| {
                            r.into_iter()
                                .map(|v| v.to_string().unwrap_or_default())
                                .collect()
                        })
                        .map_err(|_| ())
                };
                let (a, b) = (run(&lua), run(&reference));
                assert_eq!(
                    a,
                    b,
                    "{code} with ({:?}, {:?})",
                    s.to_string_lossy(),
                    p.to_string_lossy()
                );
            }
        }
        // Errors read as Lua's.
        for p in ["%", "[a", "(a", "a)", "%1", "%b", "%fa"] {
            let a = lua.load("return string.find('abc', ...)").call::<Value>(p);
            let b = reference
                .load("return string.find('abc', ...)")
                .call::<Value>(p);
            assert_eq!(a.is_err(), b.is_err(), "{p}");
        }
    }

    #[test]
    fn backtracking_stops_when_out_of_time() {
        let lua = Lua::new();
        let start = std::time::Instant::now();
        let expired: Expired =
            Rc::new(move || start.elapsed() > std::time::Duration::from_millis(200));
        install(&lua, expired).unwrap();
        let err = lua
            .load(r#"return ("a"):rep(400):find(".-.-.-.-b")"#)
            .eval::<Value>()
            .unwrap_err();
        assert!(err.to_string().contains("hook deadline exceeded"), "{err}");
    }
}
