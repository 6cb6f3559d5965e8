//! Attribute values as idflow keeps them: text, binary, or a reference to another object.
use base64::Engine as _;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One attribute value.
///
/// A `Ref` points at another object *in the same space*: in the metaverse it holds a metaverse
/// object id, in a connector space a connector-space object id. Connectors never see `Ref`s:
/// export translates them into the target's own identifier (a DN, an id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Str(String),
    Bin(Vec<u8>),
    Ref(i64),
}

/// Attribute name to all its values. Names keep the spelling the rules use.
pub type Attrs = BTreeMap<String, Vec<Value>>;

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The form stored in the metaverse value index (joins, back-references).
    pub fn index_key(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bin(b) => format!("b64:{}", base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Ref(r) => format!("ref:{r}"),
        }
    }

    /// How a value reads in plans and previews (binary as base64, never raw bytes).
    pub fn display(&self) -> String {
        match self {
            Value::Str(s) => format!("{s:?}"),
            Value::Bin(b) => format!("<base64 {}>", base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Ref(r) => format!("<ref {r}>"),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Str(v) => s.serialize_str(v),
            Value::Bin(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("bin", &base64::engine::general_purpose::STANDARD.encode(b))?;
                m.end()
            }
            Value::Ref(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("ref", r)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => Ok(Value::Str(s)),
            serde_json::Value::Number(n) => Ok(Value::Str(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Value::Str(b.to_string())),
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(b)) = m.get("bin") {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| de::Error::custom(format!("bad base64 in bin value: {e}")))?;
                    Ok(Value::Bin(bytes))
                } else if let Some(r) = m.get("ref").and_then(|r| r.as_i64()) {
                    Ok(Value::Ref(r))
                } else {
                    Err(de::Error::custom("a value object must be {\"bin\": base64} or {\"ref\": id}"))
                }
            }
            other => Err(de::Error::custom(format!("unsupported attribute value {other}"))),
        }
    }
}

/// Decodes attributes from the database: the form [`crate::attrs_to_json`] writes is read
/// in one pass (json_read.rs), any other JSON by serde_json, which also names what is wrong.
pub fn attrs_from_json(s: &str) -> Result<Attrs, serde_json::Error> {
    match crate::json_read::attrs(s) {
        Some(a) => Ok(a),
        None => serde_json::from_str(s),
    }
}

/// [`attrs_from_json`] of only the attributes named in `only`: the others are skipped
/// unread (what a name for a message needs of an object, not its every value), so only their
/// JSON syntax is checked, not that their values are ones [`attrs_from_json`] takes.
pub fn attrs_from_json_only(s: &str, only: &[&str]) -> Result<Attrs, serde_json::Error> {
    let mut d = serde_json::Deserializer::from_str(s);
    let attrs = de::DeserializeSeed::deserialize(Only(only), &mut d)?;
    d.end()?;
    Ok(attrs)
}

struct Only<'a>(&'a [&'a str]);

impl<'de> de::DeserializeSeed<'de> for Only<'_> {
    type Value = Attrs;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Attrs, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for Only<'_> {
    type Value = Attrs;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of attributes")
    }
    fn visit_map<M: de::MapAccess<'de>>(self, mut m: M) -> Result<Attrs, M::Error> {
        let mut out = Attrs::new();
        while let Some(name) = m.next_key_seed(Wanted(self.0))? {
            match name {
                Some(name) => {
                    out.insert(name, m.next_value()?);
                }
                None => {
                    m.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// An attribute's name, owned only when it is one of those wanted.
struct Wanted<'a>(&'a [&'a str]);

impl<'de> de::DeserializeSeed<'de> for Wanted<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl de::Visitor<'_> for Wanted<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(self.0.contains(&v).then(|| v.to_string()))
    }
}

/// True when two value lists hold the same values, ignoring order.
pub fn same_values(a: &[Value], b: &[Value]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // In the same order (as an export writes them, and most often as they are read back).
    if a == b {
        return true;
    }
    if a.len() <= 1 {
        return false;
    }
    let mut x: Vec<&Value> = a.iter().collect();
    let mut y: Vec<&Value> = b.iter().collect();
    x.sort();
    y.sort();
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs_to_json;

    #[test]
    fn json_round_trip() {
        let mut a = Attrs::new();
        a.insert("cn".into(), vec![Value::from("Jörg")]);
        a.insert("objectGUID".into(), vec![Value::Bin(vec![0, 1, 255])]);
        a.insert("manager".into(), vec![Value::Ref(7)]);
        let j = attrs_to_json(&a);
        assert_eq!(j, r#"{"cn":["Jörg"],"manager":[{"ref":7}],"objectGUID":[{"bin":"AAH/"}]}"#);
        assert_eq!(attrs_from_json(&j).expect("decodes"), a);
        let only = attrs_from_json_only(&j, &["manager", "mail"]).expect("decodes");
        assert_eq!(only, a.iter().filter(|(k, _)| *k == "manager").map(|(k, v)| (k.clone(), v.clone())).collect());
        assert!(attrs_from_json_only(&j[1..], &["cn"]).is_err());
        // A name written with an escape is the same name.
        let escaped = attrs_from_json_only(r#"{"c\u006e":["x"],"sn":["y"]}"#, &["cn"]).expect("decodes");
        assert_eq!(escaped.get("cn"), Some(&vec![Value::from("x")]));
        assert_eq!(escaped.len(), 1);
    }

    /// Numbers and booleans read as the text JSON writes for them; a value of another kind is
    /// an error naming it; from TOML (rule test cases) as from JSON.
    #[test]
    fn values_of_every_kind_read_as_before() {
        let read = |j: &str| serde_json::from_str::<Value>(j).map_err(|e| e.to_string());
        assert_eq!(read(r#""a\u00e9""#), Ok(Value::from("aé")));
        assert_eq!(read("12"), Ok(Value::from("12")));
        assert_eq!(read("-3"), Ok(Value::from("-3")));
        assert_eq!(read("18446744073709551615"), Ok(Value::from("18446744073709551615")));
        assert_eq!(read("1.0"), Ok(Value::from("1.0")));
        assert_eq!(read("2.5e3"), Ok(Value::from("2500.0")));
        assert_eq!(read("true"), Ok(Value::from("true")));
        assert_eq!(read(r#"{"bin":"AAH/"}"#), Ok(Value::Bin(vec![0, 1, 255])));
        assert_eq!(read(r#"{"ref":7,"x":1}"#), Ok(Value::Ref(7)));
        assert!(read("null").is_err_and(|e| e.contains("unsupported attribute value null")));
        assert!(read("[1]").is_err_and(|e| e.contains("unsupported attribute value [1]")));
        assert!(read(r#"{"x":1}"#).is_err_and(|e| e.contains("a value object must be")));
        assert!(read(r#"{"bin":"*"}"#).is_err_and(|e| e.contains("bad base64")));
        #[derive(Deserialize)]
        struct T {
            v: Vec<Value>,
        }
        let t: T = toml::from_str("v = [\"x\", 3, 1.5, false, { ref = 4 }]").expect("toml");
        assert_eq!(t.v, vec![Value::from("x"), Value::from("3"), Value::from("1.5"), Value::from("false"), Value::Ref(4)]);
    }

    #[test]
    fn same_values_ignores_order() {
        assert!(same_values(&[Value::from("a"), Value::from("b")], &[Value::from("b"), Value::from("a")]));
        assert!(!same_values(&[Value::from("a")], &[Value::from("A")]));
    }
}
