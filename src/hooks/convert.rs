//! Lua values to JSON and back, for `rnmu.json`, request bodies, answers,
//! `rec.extra` and `rnmu.config`. Both ways stop at [`MAX_DEPTH`] levels of
//! nesting with a clear error, so no value a hook builds (however deep, or
//! cyclic) can overflow the tool's stack.
//!
//! Lua to JSON: nil is null; a table whose keys are exactly 1..n is a list,
//! any other table an object (integer keys become strings; an empty table is
//! an empty object); functions, userdata and threads are refused. JSON to
//! Lua: null is nil (so a null member is an absent key), lists count from 1.

use mlua::{Lua, Table, Value};
use serde_json::{Map, Number, Value as Json};

/// How deep a value may nest.
pub const MAX_DEPTH: usize = 100;

pub fn lua_to_json(v: &Value) -> Result<Json, String> {
    to_json(v, 0)
}

fn to_json(v: &Value, depth: usize) -> Result<Json, String> {
    Ok(match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::Number((*i).into()),
        Value::Number(n) => Json::Number(
            Number::from_f64(*n).ok_or_else(|| format!("{n} cannot be written as JSON"))?,
        ),
        Value::String(s) => Json::String(
            s.to_str()
                .map_err(|_| "a string that is not UTF-8 cannot be written as JSON".to_string())?
                .to_string(),
        ),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(format!("the value nests deeper than {MAX_DEPTH} levels"));
            }
            table_to_json(t, depth + 1)?
        }
        other => return Err(format!("a {} cannot be written as JSON", other.type_name())),
    })
}

fn table_to_json(t: &Table, depth: usize) -> Result<Json, String> {
    let len = t.raw_len();
    let mut pairs = Vec::new();
    for pair in t.clone().pairs::<Value, Value>() {
        pairs.push(pair.map_err(|e| e.to_string())?);
    }
    let is_list = len > 0
        && pairs.len() == len
        && pairs
            .iter()
            .all(|(k, _)| matches!(k, Value::Integer(i) if *i >= 1 && (*i as usize) <= len));
    if is_list {
        let mut items = vec![Json::Null; len];
        for (k, v) in &pairs {
            if let Value::Integer(i) = k {
                items[(*i as usize) - 1] = to_json(v, depth)?;
            }
        }
        return Ok(Json::Array(items));
    }
    let mut map = Map::new();
    for (k, v) in &pairs {
        let key = match k {
            Value::String(s) => s
                .to_str()
                .map_err(|_| "a key that is not UTF-8 cannot be written as JSON".to_string())?
                .to_string(),
            Value::Integer(i) => i.to_string(),
            other => {
                return Err(format!(
                    "a table with a {} key cannot be written as JSON",
                    other.type_name()
                ));
            }
        };
        map.insert(key, to_json(v, depth)?);
    }
    Ok(Json::Object(map))
}

pub fn json_to_lua(lua: &Lua, v: &Json) -> mlua::Result<Value> {
    to_lua(lua, v, 0)
}

fn to_lua(lua: &Lua, v: &Json, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(format!(
            "the value nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        Json::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let lua = Lua::new();
        let v: Value = lua
            .load(r#"return {a = 1, b = {1, 2, "x"}, c = {}, d = true, e = 1.5}"#)
            .eval()
            .unwrap();
        let j = lua_to_json(&v).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"a": 1, "b": [1, 2, "x"], "c": {}, "d": true, "e": 1.5})
        );
        let back = json_to_lua(&lua, &j).unwrap();
        assert_eq!(lua_to_json(&back).unwrap(), j);

        // Deep and cyclic tables are refused, not recursed into.
        let deep: Value = lua
            .load("local t = {} for i = 1, 200000 do t = {t} end return t")
            .eval()
            .unwrap();
        assert!(lua_to_json(&deep).unwrap_err().contains("deeper than 100"));
        let cycle: Value = lua.load("local t = {} t.t = t return t").eval().unwrap();
        assert!(lua_to_json(&cycle).unwrap_err().contains("deeper than 100"));
        let mut j = Json::Null;
        for _ in 0..150 {
            j = Json::Array(vec![j]);
        }
        assert!(json_to_lua(&lua, &j).is_err());
        let f: Value = lua.load("return print").eval().unwrap();
        assert!(lua_to_json(&f).unwrap_err().contains("function"));
    }
}
