//! How a metaverse object's winning attributes and its contributions are written in the
//! database (schema 5): each value once, and who contributed it once per rule, not once per
//! attribute.
//!
//! An object's attributes: `{"a": {attribute: [values]}, "w": [{"r": rule, "cs": source object,
//! "p": precedence, "a": [the attributes it won]}]}`. One source object's contributions:
//! `[{"r": rule, "p": precedence, "a": {attribute: [values]}}]`. Schema 4 and before wrote the
//! rule, source and precedence with every attribute ([`legacy_attrs`], [`legacy_items`]); the
//! migration to 5 rewrites them ([`rewrite_all`]).
use crate::mv::{unreadable, Contribution, MvAttr};
use idflow_core::Value;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize)]
struct Won<S, L> {
    r: S,
    cs: i64,
    p: i64,
    a: L,
}

/// Unknown keys are an error: attributes in schema 4's form never read as no attributes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<M, W> {
    #[serde(default)]
    a: M,
    #[serde(default)]
    w: W,
}

/// An object's winning attributes as read.
type StoredAttrs = Stored<BTreeMap<String, Vec<Value>>, Vec<Won<String, Vec<String>>>>;

/// An object's winning attributes, as written.
pub(crate) fn encode_attrs(attrs: &BTreeMap<String, MvAttr>) -> String {
    let values: BTreeMap<&str, &[Value]> = attrs.iter().map(|(k, a)| (k.as_str(), a.values.as_slice())).collect();
    let mut by: BTreeMap<(&str, i64, i64), Vec<&str>> = BTreeMap::new();
    for (k, a) in attrs {
        by.entry((a.rule.as_str(), a.cs, a.precedence)).or_default().push(k.as_str());
    }
    let won: Vec<Won<&str, Vec<&str>>> = by.into_iter().map(|((r, cs, p), a)| Won { r, cs, p, a }).collect();
    serde_json::to_string(&Stored { a: values, w: won }).unwrap_or_else(|_| r#"{"a":{},"w":[]}"#.into())
}

/// An object's winning attributes, as [`encode_attrs`] wrote them.
pub(crate) fn decode_attrs(json: &str) -> Result<BTreeMap<String, MvAttr>, String> {
    let stored: StoredAttrs = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut values = stored.a;
    let mut out = BTreeMap::new();
    for w in stored.w {
        for name in w.a {
            let v = values.remove(&name).ok_or_else(|| format!("{name} has a winner but no values"))?;
            out.insert(name, MvAttr { values: v, rule: w.r.clone(), cs: w.cs, precedence: w.p });
        }
    }
    if let Some(name) = values.keys().next() {
        return Err(format!("{name} has values but no winner"));
    }
    Ok(out)
}

/// One source object's contributions, as written.
pub(crate) fn encode_items(all: &[Contribution]) -> Result<String, serde_json::Error> {
    let mut by: BTreeMap<(&str, i64), BTreeMap<&str, &[Value]>> = BTreeMap::new();
    for k in all {
        by.entry((k.rule.as_str(), k.precedence)).or_default().insert(k.attr.as_str(), k.values.as_slice());
    }
    let groups: Vec<Group<&str, BTreeMap<&str, &[Value]>>> = by.into_iter().map(|((r, p), a)| Group { r, p, a }).collect();
    serde_json::to_string(&groups)
}

#[derive(Serialize, Deserialize)]
struct Group<S, M> {
    r: S,
    p: i64,
    a: M,
}

/// One source object's contributions, as [`encode_items`] wrote them.
pub(crate) fn decode_items(cs_id: i64, json: &str) -> Result<Vec<Contribution>, String> {
    let groups: Vec<Group<String, BTreeMap<String, Vec<Value>>>> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for g in groups {
        for (attr, values) in g.a {
            out.push(Contribution { attr, cs_id, rule: g.r.clone(), precedence: g.p, values });
        }
    }
    Ok(out)
}

/// An object's winning attributes as schema 4 and before wrote them: `{attribute: {"v":
/// [values], "rule": rule, "cs": source object, "p": precedence}}`.
pub(crate) fn legacy_attrs(json: &str) -> Result<BTreeMap<String, MvAttr>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct LegacyItem {
    a: String,
    r: String,
    p: i64,
    v: Vec<Value>,
}

/// Contributions as schema 3 and 4 wrote them: `[{"a": attribute, "r": rule, "p": precedence,
/// "v": [values]}]`.
fn legacy_items(cs_id: i64, json: &str) -> Result<Vec<Contribution>, String> {
    let items: Vec<LegacyItem> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(items.into_iter().map(|i| Contribution { attr: i.a, cs_id, rule: i.r, precedence: i.p, values: i.v }).collect())
}

/// Rows rewritten per read: rows are read, then written, so no read sees a row it rewrote.
const ROWS_AT_ONCE: i64 = 1000;

/// The migration to schema 5: every object's attributes and every contribution row, read in
/// the form schema 4 wrote and written in this one (in the migration's transaction).
pub(crate) fn rewrite_all(c: &Connection) -> rusqlite::Result<()> {
    let mut read = c.prepare("SELECT id, attrs FROM mv_object WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut write = c.prepare("UPDATE mv_object SET attrs=?1 WHERE id=?2")?;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String)> =
            read.query_map(params![after, ROWS_AT_ONCE], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, json) in rows {
            let attrs = legacy_attrs(&json).map_err(|e| unreadable(1, format!("metaverse object {id}: {e}")))?;
            write.execute(params![encode_attrs(&attrs), id])?;
        }
    }
    let mut read =
        c.prepare("SELECT mv_id, cs_id, items FROM mv_contrib WHERE (mv_id, cs_id) > (?1, ?2) ORDER BY mv_id, cs_id LIMIT ?3")?;
    let mut write = c.prepare("UPDATE mv_contrib SET items=?1 WHERE mv_id=?2 AND cs_id=?3")?;
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let rows: Vec<(i64, i64, String)> = read
            .query_map(params![after.0, after.1, ROWS_AT_ONCE], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else { break };
        after = (last.0, last.1);
        for (mv_id, cs_id, json) in rows {
            let items = legacy_items(cs_id, &json)
                .map_err(|e| unreadable(2, format!("contributions of {cs_id} to metaverse object {mv_id}: {e}")))?;
            let json = encode_items(&items).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            write.execute(params![json, mv_id, cs_id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(v: &[&str], rule: &str, cs: i64, precedence: i64) -> MvAttr {
        MvAttr { values: v.iter().map(|s| Value::from(*s)).collect(), rule: rule.into(), cs, precedence }
    }

    #[test]
    fn attributes_read_back_as_written_with_each_winner_once() {
        let mut attrs = BTreeMap::new();
        attrs.insert("mail".to_string(), attr(&["ada@example.org"], "in-hr", 1, 50));
        attrs.insert("displayName".to_string(), attr(&["Ada"], "in-hr", 1, 50));
        attrs.insert("manager".to_string(), MvAttr { values: vec![Value::Ref(7)], rule: "in-ad".into(), cs: 2, precedence: 100 });
        attrs.insert("title".to_string(), attr(&["Countess", "Analyst"], "in-ad", 2, 100));
        let json = encode_attrs(&attrs);
        assert_eq!(json.matches("in-hr").count(), 1, "{json}");
        assert_eq!(decode_attrs(&json), Ok(attrs.clone()));
        assert_eq!(decode_attrs(&encode_attrs(&BTreeMap::new())), Ok(BTreeMap::new()));
        // Schema 4's form, as the migration reads it.
        let legacy = serde_json::to_string(&attrs).expect("json");
        assert_eq!(legacy_attrs(&legacy), Ok(attrs));
    }

    #[test]
    fn contributions_read_back_as_written_empty_values_included() {
        let k = |attr: &str, rule: &str, precedence: i64, v: &[&str]| Contribution {
            attr: attr.into(),
            cs_id: 3,
            rule: rule.into(),
            precedence,
            values: v.iter().map(|s| Value::from(*s)).collect(),
        };
        let all = vec![k("displayName", "in-ad", 100, &["Ada"]), k("mail", "in-ad", 100, &[]), k("mail", "in-ad-mail", 10, &["a@x"])];
        let json = encode_items(&all).expect("json");
        assert_eq!(json.matches("\"in-ad\"").count(), 1, "{json}");
        let mut back = decode_items(3, &json).expect("read");
        back.sort_by(|a, b| (&a.attr, &a.rule).cmp(&(&b.attr, &b.rule)));
        assert_eq!(back, all);
    }

    #[test]
    fn what_does_not_fit_together_is_an_error() {
        assert!(decode_attrs(r#"{"a":{"mail":["x"]},"w":[]}"#).expect_err("no winner").contains("mail"));
        assert!(decode_attrs(r#"{"a":{},"w":[{"r":"r","cs":1,"p":1,"a":["mail"]}]}"#).expect_err("no values").contains("mail"));
        // Schema 4's form, written by an idflow that opened the database before it was migrated.
        assert!(decode_attrs(r#"{"mail":{"v":["x"],"rule":"r","cs":1,"p":1}}"#).is_err());
        assert_eq!(decode_attrs("{}"), Ok(BTreeMap::new()));
    }
}
