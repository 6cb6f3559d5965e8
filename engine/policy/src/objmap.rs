//! Objects as rules see them (`source`, `mv`), and rule results back as attribute values.
//!
//! `source.x` is the first value of x, or `()`; `values(source, "x")` is all of them. Text is a
//! string, binary a blob; in `mv`, references are `Ref`s. A connector-space object's DN is `source.dn`.
use crate::engine::MvRef;
use idflow_core::{Attrs, Value};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

fn one(v: &Value) -> Dynamic {
    match v {
        Value::Str(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Bin(b) => Dynamic::from_blob(b.clone() as Blob),
        Value::Ref(r) => Dynamic::from(MvRef(*r)),
    }
}

/// Builds the map for one object. `dn` is offered as `source.dn` unless an attribute has that name.
pub fn object_map<'a>(attrs: impl Iterator<Item = (&'a String, &'a [Value])>, dn: Option<&str>) -> Map {
    let mut m = Map::new();
    let mut all = Map::new();
    for (k, vals) in attrs {
        if vals.is_empty() {
            continue;
        }
        m.insert(k.as_str().into(), one(&vals[0]));
        let arr: Array = vals.iter().map(one).collect();
        all.insert(k.as_str().into(), Dynamic::from_array(arr));
    }
    if let Some(d) = dn {
        m.entry("dn".into()).or_insert_with(|| Dynamic::from(ImmutableString::from(d)));
    }
    m.insert(idflow_stdlib::VALUES_KEY.into(), Dynamic::from_map(all));
    m
}

pub fn source_map(attrs: &Attrs, dn: Option<&str>) -> Map {
    object_map(attrs.iter().map(|(k, v)| (k, v.as_slice())), dn)
}

/// What one flow gave: `None` for `()` (no contribution), else the values (possibly none).
pub fn to_values(d: Dynamic) -> Result<Option<Vec<Value>>, String> {
    if d.is_unit() {
        return Ok(None);
    }
    if d.is_array() {
        let arr = d.into_array().map_err(|t| format!("unexpected {t}"))?;
        let mut out = Vec::with_capacity(arr.len());
        for x in arr {
            if x.is_unit() {
                continue;
            }
            if x.is_array() {
                return Err("a flow gave an array inside an array; flatten it first".into());
            }
            out.push(scalar(x)?);
        }
        return Ok(Some(out));
    }
    Ok(Some(vec![scalar(d)?]))
}

fn scalar(d: Dynamic) -> Result<Value, String> {
    if d.is_string() {
        return Ok(Value::Str(d.into_string().map_err(|t| format!("unexpected {t}"))?));
    }
    if d.is_blob() {
        return Ok(Value::Bin(d.into_blob().map_err(|t| format!("unexpected {t}"))?));
    }
    if let Some(r) = d.clone().try_cast::<MvRef>() {
        return Ok(Value::Ref(r.0));
    }
    if d.is_int() || d.is_bool() || d.is_char() || d.is_float() {
        return Ok(Value::Str(d.to_string()));
    }
    Err(format!("a flow must give text, a number, a boolean, binary or an array of them, not {}", d.type_name()))
}

/// Is this expression result true? `()` is false; anything not a boolean is an error.
pub fn truthy(d: &Dynamic) -> Result<bool, String> {
    if d.is_unit() {
        return Ok(false);
    }
    d.as_bool().map_err(|t| format!("a scope must give true or false, not {t}"))
}
