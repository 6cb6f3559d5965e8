//! SCIM resources and idflow's flat attribute paths, both ways.
//!
//! Rules name SCIM attribute paths: `userName`, `name.givenName`, `emails[type eq "work"].value`,
//! `members`, and extension attributes by their schema URN
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`). References
//! (`members`, the enterprise `manager`) hold SCIM ids.
use idflow_core::{Attrs, Value};
use serde_json::{json, Map, Value as J};

pub(super) const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(super) const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
#[cfg(test)]
pub(super) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(super) const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const BOOLEAN: &[&str] = &["active"];

fn scalar(v: &J) -> Option<Value> {
    match v {
        J::String(s) => Some(Value::Str(s.clone())),
        J::Bool(b) => Some(Value::Str(b.to_string())),
        J::Number(n) => Some(Value::Str(n.to_string())),
        _ => None,
    }
}

/// Flattens a resource into attribute paths.
pub(super) fn flatten(resource: &J) -> Attrs {
    let mut out = Attrs::new();
    let Some(obj) = resource.as_object() else { return out };
    for (k, v) in obj {
        if matches!(k.as_str(), "schemas" | "meta" | "id" | "groups") {
            continue;
        }
        if k.starts_with("urn:") {
            if let Some(ext) = v.as_object() {
                for (ek, ev) in ext {
                    let path = format!("{k}:{ek}");
                    if let Some(s) = scalar(ev) {
                        out.insert(path, vec![s]);
                    } else if let Some(r) = ev.get("value").and_then(scalar) {
                        out.insert(path, vec![r]);
                    }
                }
            }
            continue;
        }
        match v {
            J::Object(m) => {
                for (sk, sv) in m {
                    if let Some(s) = scalar(sv) {
                        out.insert(format!("{k}.{sk}"), vec![s]);
                    }
                }
            }
            J::Array(items) if k == "members" => {
                out.insert(k.clone(), items.iter().filter_map(|i| i.get("value").and_then(scalar)).collect());
            }
            J::Array(items) => {
                for item in items {
                    match (item.get("type").and_then(J::as_str), item.get("value").and_then(scalar)) {
                        (Some(t), Some(val)) => out.entry(format!("{k}[type eq \"{t}\"].value")).or_default().push(val),
                        (None, Some(val)) => out.entry(k.clone()).or_default().push(val),
                        _ => {
                            if let Some(s) = scalar(item) {
                                out.entry(k.clone()).or_default().push(s);
                            }
                        }
                    }
                }
            }
            other => {
                if let Some(s) = scalar(other) {
                    out.insert(k.clone(), vec![s]);
                }
            }
        }
    }
    out
}

fn json_value(name: &str, v: &Value) -> J {
    let s = match v {
        Value::Str(s) => s.clone(),
        Value::Bin(b) => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b),
        Value::Ref(r) => r.to_string(),
    };
    if BOOLEAN.contains(&name) {
        return J::Bool(s.eq_ignore_ascii_case("true"));
    }
    J::String(s)
}

/// A parsed attribute path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Path {
    Simple(String),
    Sub(String, String),
    Typed(String, String),
    Extension(String, String),
    Members,
}

pub(super) fn parse_path(p: &str) -> Path {
    if p == "members" {
        return Path::Members;
    }
    if p.starts_with("urn:") {
        if let Some(i) = p.rfind(':') {
            return Path::Extension(p[..i].to_string(), p[i + 1..].to_string());
        }
    }
    if let Some(open) = p.find("[type eq \"") {
        let attr = &p[..open];
        let rest = &p[open + 10..];
        if let Some(close) = rest.find("\"]") {
            return Path::Typed(attr.to_string(), rest[..close].to_string());
        }
    }
    if let Some((a, b)) = p.split_once('.') {
        return Path::Sub(a.to_string(), b.to_string());
    }
    Path::Simple(p.to_string())
}

fn ext_value(attr: &str, v: &Value) -> J {
    if attr == "manager" {
        json!({ "value": json_value(attr, v) })
    } else {
        json_value(attr, v)
    }
}

/// The body of a POST (or PUT) from a whole object.
pub(super) fn resource(object_type: &str, attrs: &Attrs) -> J {
    let core = if object_type.eq_ignore_ascii_case("Group") { CORE_GROUP } else { CORE_USER };
    let mut schemas = vec![J::String(core.into())];
    let mut body = Map::new();
    for (path, vals) in attrs {
        if vals.is_empty() {
            continue;
        }
        match parse_path(path) {
            Path::Members => {
                body.insert("members".into(), J::Array(vals.iter().map(|v| json!({ "value": json_value("value", v) })).collect()));
            }
            Path::Simple(a) => {
                let v = if vals.len() == 1 { json_value(&a, &vals[0]) } else { J::Array(vals.iter().map(|v| json_value(&a, v)).collect()) };
                body.insert(a, v);
            }
            Path::Sub(a, b) => {
                let e = body.entry(a).or_insert_with(|| J::Object(Map::new()));
                if let Some(m) = e.as_object_mut() {
                    m.insert(b.clone(), json_value(&b, &vals[0]));
                }
            }
            Path::Typed(a, t) => {
                let e = body.entry(a).or_insert_with(|| J::Array(Vec::new()));
                if let Some(arr) = e.as_array_mut() {
                    for (i, v) in vals.iter().enumerate() {
                        let mut item = json!({ "type": t, "value": json_value("value", v) });
                        if arr.is_empty() && i == 0 {
                            item["primary"] = J::Bool(true);
                        }
                        arr.push(item);
                    }
                }
            }
            Path::Extension(urn, a) => {
                if !schemas.iter().any(|s| s == &J::String(urn.clone())) {
                    schemas.push(J::String(urn.clone()));
                }
                let e = body.entry(urn).or_insert_with(|| J::Object(Map::new()));
                if let Some(m) = e.as_object_mut() {
                    m.insert(a.clone(), ext_value(&a, &vals[0]));
                }
            }
        }
    }
    body.insert("schemas".into(), J::Array(schemas));
    J::Object(body)
}

/// PATCH operations for one attribute change. Members are added and removed by value, at most
/// `member_batch` values per operation.
pub(super) fn patch_ops(path: &str, kind: idflow_core::connector::ChangeKind, vals: &[Value], member_batch: usize) -> Vec<J> {
    use idflow_core::connector::ChangeKind as K;
    match (parse_path(path), kind) {
        (Path::Members, K::Add) => vals
            .chunks(member_batch.max(1))
            .map(|c| json!({ "op": "add", "path": "members", "value": c.iter().map(|v| json!({"value": json_value("value", v)})).collect::<Vec<_>>() }))
            .collect(),
        (Path::Members, K::Delete) => vals.iter().map(|v| json!({ "op": "remove", "path": format!("members[value eq \"{}\"]", json_value("value", v).as_str().unwrap_or_default()) })).collect(),
        (Path::Members, K::Replace) => {
            if vals.is_empty() {
                vec![json!({ "op": "remove", "path": "members" })]
            } else {
                vec![json!({ "op": "replace", "path": "members", "value": vals.iter().map(|v| json!({"value": json_value("value", v)})).collect::<Vec<_>>() })]
            }
        }
        (Path::Typed(a, t), K::Add) => vec![json!({
            "op": "add",
            "path": a,
            "value": vals.iter().map(|v| json!({"type": t, "value": json_value("value", v)})).collect::<Vec<_>>()
        })],
        (p, kind) => {
            let op = if kind == K::Add { "add" } else { "replace" };
            let name = match &p {
                Path::Simple(a) | Path::Typed(a, _) => a.clone(),
                Path::Sub(_, b) | Path::Extension(_, b) => b.clone(),
                Path::Members => String::new(),
            };
            if vals.is_empty() {
                return vec![json!({ "op": "remove", "path": path })];
            }
            let value = match &p {
                Path::Extension(_, a) => ext_value(a, &vals[0]),
                _ if vals.len() == 1 => json_value(&name, &vals[0]),
                _ => J::Array(vals.iter().map(|v| json_value(&name, v)).collect()),
            };
            vec![json!({ "op": op, "path": path, "value": value })]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_and_build_agree() {
        let mut a = Attrs::new();
        a.insert("userName".into(), vec![Value::from("ada@x.org")]);
        a.insert("active".into(), vec![Value::from("true")]);
        a.insert("name.givenName".into(), vec![Value::from("Ada")]);
        a.insert("emails[type eq \"work\"].value".into(), vec![Value::from("ada@x.org")]);
        a.insert(format!("{ENTERPRISE}:employeeNumber"), vec![Value::from("1815")]);
        a.insert(format!("{ENTERPRISE}:manager"), vec![Value::from("abc123")]);
        let r = resource("User", &a);
        assert_eq!(r["active"], J::Bool(true));
        assert_eq!(r["emails"][0]["primary"], J::Bool(true));
        assert_eq!(r[ENTERPRISE]["manager"]["value"], "abc123");
        assert_eq!(r["schemas"].as_array().map(Vec::len), Some(2));
        let back = flatten(&r);
        assert_eq!(back, a);
    }

    #[test]
    fn member_patches_are_batched() {
        let vals: Vec<Value> = (0..250).map(|i| Value::from(format!("id{i}"))).collect();
        let ops = patch_ops("members", idflow_core::connector::ChangeKind::Add, &vals, 100);
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2]["value"].as_array().map(Vec::len), Some(50));
        let rm = patch_ops("members", idflow_core::connector::ChangeKind::Delete, &vals[..2], 100);
        assert_eq!(rm[1]["path"], "members[value eq \"id1\"]");
        let p = patch_ops("emails[type eq \"work\"].value", idflow_core::connector::ChangeKind::Replace, &[Value::from("b@x")], 100);
        assert_eq!(p[0]["path"], "emails[type eq \"work\"].value");
    }
}
