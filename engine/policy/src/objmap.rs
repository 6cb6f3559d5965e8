//! Objects as rules see them (`source`, `mv`), and rule results back as attribute values.
//!
//! `source.x` is the first value of x, or `()`; `values(source, "x")` is all of them. Text is a
//! string, binary a blob; references are typed: in `source`, the values of the connector's
//! reference attributes are `Reference`s (DNs), in `mv` they are `Ref`s. A connector-space
//! object's DN is `source.dn`.
use crate::engine::{DnRef, MvRef};
use idflow_core::{Attrs, Value};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};
use std::collections::HashSet;

fn one(v: &Value, reference: bool) -> Dynamic {
    match v {
        Value::Str(s) if reference => Dynamic::from(DnRef(s.clone())),
        Value::Str(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Bin(b) => Dynamic::from_blob(b.clone() as Blob),
        Value::Ref(r) => Dynamic::from(MvRef(*r)),
    }
}

/// Builds the map for one object. `dn` is offered as `source.dn` unless an attribute has that name.
pub fn object_map<'a>(attrs: impl Iterator<Item = (&'a String, &'a [Value])>, dn: Option<&str>) -> Map {
    typed_map(attrs, dn, &HashSet::new())
}

/// Builds the map for one object whose attributes named (lower-cased) in `references` hold DNs
/// of other objects: those values are `Reference`s.
fn typed_map<'a>(attrs: impl Iterator<Item = (&'a String, &'a [Value])>, dn: Option<&str>, references: &HashSet<String>) -> Map {
    let mut m = Map::new();
    let mut all = Map::new();
    for (k, vals) in attrs {
        if vals.is_empty() {
            continue;
        }
        // The names are few: compared without making a lower-cased copy of every attribute's.
        let reference = references.iter().any(|r| r.eq_ignore_ascii_case(k)) || (!k.is_ascii() && references.contains(&k.to_lowercase()));
        // One value: `values()` makes its list from it (most attributes have one).
        if let [v] = vals {
            m.insert(k.as_str().into(), one(v, reference));
            continue;
        }
        let arr: Array = vals.iter().map(|v| one(v, reference)).collect();
        // The first value shared with the list (text is reference-counted), not made twice.
        m.insert(k.as_str().into(), arr[0].clone());
        all.insert(k.as_str().into(), Dynamic::from_array(arr));
    }
    if let Some(d) = dn.filter(|_| !m.contains_key("dn")) {
        m.insert("dn".into(), Dynamic::from(ImmutableString::from(d)));
        // The DN is no attribute: `values(source, "dn")` stays `[]`.
        all.insert("dn".into(), Dynamic::from_array(Array::new()));
    }
    m.insert(idflow_stdlib::VALUES_KEY.into(), Dynamic::from_map(all));
    m
}

/// A source object as rules see it: `references` are the connector's reference attributes,
/// lower-cased.
pub fn source_map(attrs: &Attrs, dn: Option<&str>, references: &HashSet<String>) -> Map {
    typed_map(attrs.iter().map(|(k, v)| (k, v.as_slice())), dn, references)
}

/// What one inbound flow gave: `None` for `()`, else its values and whether they are
/// references (DNs of the source's own objects) rather than text. References and text mixed
/// in one result are an error: neither kind would arrive whole.
pub fn to_flow_values(d: Dynamic) -> Result<Option<(Vec<Value>, bool)>, String> {
    let items: Vec<Dynamic> = if d.is_unit() {
        return Ok(None);
    } else if d.is_array() {
        d.into_array().map_err(|t| format!("unexpected {t}"))?
    } else {
        vec![d]
    };
    let refs = items.iter().filter(|x| x.is::<DnRef>()).count();
    let others = items.iter().filter(|x| !x.is_unit() && !x.is::<DnRef>()).count();
    if refs > 0 && others > 0 {
        return Err(format!(
            "the flow gives references and text together ({refs} references, {others} other values): \
             keep references apart, or turn them into text with dn_text()"
        ));
    }
    let values = to_values(Dynamic::from_array(items))?.unwrap_or_default();
    Ok(Some((values, refs > 0)))
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
    if let Some(r) = d.clone().try_cast::<DnRef>() {
        return Ok(Value::Str(r.0));
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
