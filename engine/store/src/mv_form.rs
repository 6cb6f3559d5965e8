//! How a metaverse object's winning attributes and its contributions are written in the
//! database (schema 5): each value once, and who contributed it once per rule, not once per
//! attribute.
//!
//! An object's attributes: `{"a": {attribute: [values]}, "w": [{"r": rule, "cs": source object,
//! "p": precedence, "a": [the attributes it won]}]}`. One source object's contributions:
//! `[{"r": rule, "p": precedence, "a": {attribute: [values]}}]`; all of an object's, in its row
//! (schema 8): `{source object: [that source object's]}`, or nothing when they are the winners
//! (schema 9, mv.rs). Schema 4 and before wrote the rule,
//! source and precedence with every attribute ([`legacy_attrs`], [`legacy_items`]); the
//! migration to 5 rewrites them ([`rewrite_all`]). Schema 7 and before kept each source
//! object's contributions in a row of their own; the migration to 8 moves them
//! ([`move_contrib`]).
use crate::mv::{unreadable, Contribution, MvAttr};
use idflow_core::json_read::Reader;
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
    let values = ValuesOf(attrs);
    let mut by: BTreeMap<(&str, i64, i64), Vec<&str>> = BTreeMap::new();
    for (k, a) in attrs {
        by.entry((a.rule.as_str(), a.cs, a.precedence)).or_default().push(k.as_str());
    }
    let won: Vec<Won<&str, Vec<&str>>> = by.into_iter().map(|((r, cs, p), a)| Won { r, cs, p, a }).collect();
    serde_json::to_string(&Stored { a: values, w: won }).unwrap_or_else(|_| r#"{"a":{},"w":[]}"#.into())
}

/// The values of attributes, written as a map of each name to its values (in the map's order),
/// without a map of them made first.
struct ValuesOf<'a>(&'a BTreeMap<String, MvAttr>);

impl Serialize for ValuesOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, a)| (k, &a.values)))
    }
}

/// An object's winning attributes, as [`encode_attrs`] wrote them.
pub(crate) fn decode_attrs(json: &str) -> Result<BTreeMap<String, MvAttr>, String> {
    let stored: StoredAttrs = match read_stored(json) {
        Some(stored) => stored,
        None => serde_json::from_str(json).map_err(|e| e.to_string())?,
    };
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

/// What [`encode_attrs`] writes, read in one pass (as idflow_core's `json_read` reads
/// attributes); `None`: the text is not in that form, and serde_json reads it (or says what is
/// wrong).
fn read_stored(json: &str) -> Option<StoredAttrs> {
    let mut r = Reader::new(json);
    r.lit(r#"{"a":"#)?;
    let a = r.attrs()?;
    r.lit(r#","w":"#)?;
    let w = r.list(|r| {
        r.lit(r#"{"r":"#)?;
        let rule = r.str()?.to_string();
        r.lit(r#","cs":"#)?;
        let cs = r.int()?;
        r.lit(r#","p":"#)?;
        let p = r.int()?;
        r.lit(r#","a":"#)?;
        let names = r.list(|r| r.str().map(str::to_string))?;
        r.lit("}")?;
        Some(Won { r: rule, cs, p, a: names })
    })?;
    r.lit("}")?;
    r.at_end().then_some(Stored { a, w })
}

/// One source object's contributions, as written.
pub(crate) fn encode_items<'a>(all: impl IntoIterator<Item = &'a Contribution>) -> Result<String, serde_json::Error> {
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

/// Every source object's contributions to one metaverse object, kept in its row (schema 8):
/// `{source object: [what encode_items writes]}`, in source object order.
pub(crate) fn decode_contrib(json: &str) -> Result<Vec<Contribution>, String> {
    let by: BTreeMap<i64, &serde_json::value::RawValue> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (cs_id, items) in by {
        out.extend(decode_items(cs_id, items.get()).map_err(|e| format!("source object {cs_id}: {e}"))?);
    }
    Ok(out)
}

/// Every source object's contributions (`all`, in any order) in the form [`decode_contrib`]
/// reads; `None` when there are none.
pub(crate) fn encode_contrib(all: &[Contribution]) -> Result<Option<String>, String> {
    let mut by: BTreeMap<i64, Vec<&Contribution>> = BTreeMap::new();
    for k in all {
        by.entry(k.cs_id).or_default().push(k);
    }
    let by = by.into_iter().map(|(cs_id, ks)| Ok((cs_id, encode_items(ks)?))).collect::<Result<BTreeMap<i64, String>, serde_json::Error>>();
    let by = by.map_err(|e| e.to_string())?;
    Ok((!by.is_empty()).then(|| joined(&by)))
}

/// Are `all` the winners `attrs`, each the only contribution to its attribute? Then
/// [`as_contributions`] of `attrs` gives them back.
pub(crate) fn all_won(all: &[Contribution], attrs: &BTreeMap<String, MvAttr>) -> bool {
    all.len() == attrs.len()
        && all.iter().all(|k| {
            attrs.get(&k.attr).is_some_and(|w| w.cs == k.cs_id && w.precedence == k.precedence && w.rule == k.rule && w.values == k.values)
        })
}

/// The winners `attrs` as the only contributions to their attributes, in the order
/// [`decode_contrib`] gives contributions: by source object, rule, precedence, attribute.
pub(crate) fn as_contributions(attrs: BTreeMap<String, MvAttr>) -> Vec<Contribution> {
    let mut out: Vec<Contribution> = attrs
        .into_iter()
        .map(|(attr, w)| Contribution { attr, cs_id: w.cs, rule: w.rule, precedence: w.precedence, values: w.values })
        .collect();
    out.sort_by(|a, b| (a.cs_id, &a.rule, a.precedence, &a.attr).cmp(&(b.cs_id, &b.rule, b.precedence, &b.attr)));
    out
}

/// Each source object's contributions (JSON already: read back, or made by [`encode_items`])
/// as one object's value, written as serde_json writes the map (the keys are numbers).
fn joined<S: AsRef<str>>(by: &BTreeMap<i64, S>) -> String {
    let mut out = String::with_capacity(2 + by.values().map(|v| v.as_ref().len() + 24).sum::<usize>());
    out.push('{');
    for (i, (k, v)) in by.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":"));
        out.push_str(v.as_ref());
    }
    out.push('}');
    out
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

/// The migration to schema 8: each metaverse object's contribution rows (`mv_contrib`, one per
/// source object) become one value in its row, compressed as they were (with the contributions'
/// dictionary, once the database has dictionaries); the table goes.
pub(crate) fn move_contrib(c: &Connection) -> rusqlite::Result<()> {
    let codec = crate::packed::Codec::default();
    let index = crate::mv_index::Deferred::default();
    let dirty = crate::mv_dirty::HeldDirty::default();
    let db = crate::packed::Db {
        conn: c,
        codec: &codec,
        index: &index,
        dirty: &dirty,
        dangling: &Default::default(),
        anchors: &Default::default(),
        statements: c,
    };
    let packs = c.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'dict'", [], |r| r.get::<_, i64>(0))? > 0;
    let mut read =
        c.prepare("SELECT mv_id, cs_id, items FROM mv_contrib WHERE (mv_id, cs_id) > (?1, ?2) ORDER BY mv_id, cs_id LIMIT ?3")?;
    let mut write = c.prepare("UPDATE mv_object SET contrib=?1 WHERE id=?2")?;
    let mut orphans = 0;
    let mut after = (i64::MIN, i64::MIN);
    // One object's rows may straddle two reads: its value is written once all are read.
    let mut object: Option<(i64, BTreeMap<i64, String>)> = None;
    let mut put = |mv_id: i64, by: BTreeMap<i64, String>| -> rusqlite::Result<()> {
        let json = joined(&by);
        let value = if packs { db.pack(crate::packed::Column::MvContrib, "", json)? } else { rusqlite::types::Value::Text(json) };
        // Rows of an object that is gone (none are written so): nothing reads them.
        if write.execute(params![value, mv_id])? == 0 {
            orphans += by.len();
        }
        Ok(())
    };
    loop {
        let mut rows = read.query(params![after.0, after.1, ROWS_AT_ONCE])?;
        let mut any = false;
        while let Some(r) = rows.next()? {
            any = true;
            let (mv_id, cs_id): (i64, i64) = (r.get(0)?, r.get(1)?);
            after = (mv_id, cs_id);
            let items = db.unpack(r.get_ref(2)?, |json| {
                // Checked as it is read, so a damaged row fails the migration, not a later sync.
                decode_items(cs_id, json)
                    .map(|_| json.to_string())
                    .map_err(|e| unreadable(2, format!("contributions of {cs_id} to metaverse object {mv_id}: {e}")))
            })??;
            match &mut object {
                Some((id, by)) if *id == mv_id => {
                    by.insert(cs_id, items);
                }
                _ => {
                    if let Some((id, by)) = object.take() {
                        put(id, by)?;
                    }
                    object = Some((mv_id, BTreeMap::from([(cs_id, items)])));
                }
            }
        }
        if !any {
            break;
        }
    }
    if let Some((id, by)) = object {
        put(id, by)?;
    }
    drop(read);
    if orphans > 0 {
        tracing::warn!(rows = orphans, "contributions to metaverse objects that are gone were dropped");
    }
    c.execute_batch("DROP TABLE mv_contrib;")
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

    /// What encode_attrs writes is read in one pass, as serde_json reads it; text cut or changed
    /// anywhere is read as serde_json reads it, or left to serde_json.
    #[test]
    fn attributes_read_in_one_pass_as_serde_json_reads_them() {
        let serde = |t: &str| {
            serde_json::from_str::<StoredAttrs>(t).ok().map(|s| (s.a, s.w.into_iter().map(|w| (w.r, w.cs, w.p, w.a)).collect::<Vec<_>>()))
        };
        let fast = |t: &str| read_stored(t).map(|s| (s.a, s.w.into_iter().map(|w| (w.r, w.cs, w.p, w.a)).collect::<Vec<_>>()));
        let mut attrs = BTreeMap::new();
        attrs.insert("mail".to_string(), attr(&["ada@example.org"], "in-hr", 1, -50));
        attrs.insert("manager".to_string(), MvAttr { values: vec![Value::Ref(7)], rule: "in-ad".into(), cs: 2, precedence: 0 });
        let json = encode_attrs(&attrs);
        assert!(fast(&json).is_some(), "{json}");
        assert_eq!(fast(&json), serde(&json));
        assert!(fast(&encode_attrs(&BTreeMap::new())).is_some());
        for cut in 0..json.len() {
            let t = &json[..cut];
            assert!(fast(t).is_none() || fast(t) == serde(t), "{t}");
        }
        for at in 0..json.len() {
            for c in ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '0', '-', 'x'] {
                let mut t = json.clone();
                t.insert(at, c);
                assert!(fast(&t).is_none() || fast(&t) == serde(&t), "{t}");
            }
        }
        // A rule name with an escape is read by serde_json.
        let escaped = json.replace("in-hr", r"in\u002dhr");
        assert!(fast(&escaped).is_none());
        assert_eq!(decode_attrs(&escaped), Ok(attrs));
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

    /// Every source object's contributions, in one text grouped by source object (in any order
    /// given, written in source object order), read back as they were.
    #[test]
    fn contributions_are_written_by_source_object_and_read_back() {
        let k = |cs_id: i64, attr: &str, rule: &str, p: i64, v: Value| Contribution {
            attr: attr.into(),
            cs_id,
            rule: rule.into(),
            precedence: p,
            values: vec![v],
        };
        let all = vec![
            k(7, "cn", "in", 100, Value::from("Ada")),
            k(3, "mail", "hr", 50, Value::from("a@x")),
            k(7, "manager", "in", 100, Value::Ref(12)),
            k(3, "cn", "in", 100, Value::from("A")),
        ];
        let json = encode_contrib(&all).expect("written").expect("some");
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{json}");
        assert!(json.starts_with(r#"{"3":[{"r":"hr","p":50,"a":{"mail":["a@x"]}},{"r":"in","p":100,"a":{"cn":["A"]}}],"7":"#), "{json}");
        let back = decode_contrib(&json).expect("read");
        let by_source = |v: &[Contribution]| v.iter().map(|k| (k.cs_id, k.attr.clone(), k.rule.clone())).collect::<Vec<_>>();
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| (a.cs_id, &a.rule, &a.attr).cmp(&(b.cs_id, &b.rule, &b.attr)));
        assert_eq!(by_source(&back), by_source(&sorted), "by source object");
        assert_eq!(back.iter().find(|k| k.attr == "manager").map(|k| &k.values), Some(&vec![Value::Ref(12)]));
        let mut reversed = back.clone();
        reversed.reverse();
        assert_eq!(encode_contrib(&reversed).expect("written").as_deref(), Some(json.as_str()), "in any order, the same text");
        assert_eq!(encode_contrib(&[]).expect("written"), None, "nothing contributed: no value");
        assert!(decode_contrib(r#"{"x":[]}"#).is_err() && decode_contrib("[1").is_err());
    }

    /// Contributions as schema 7 kept them, compressed in rows of their own, move into their
    /// objects' rows when the database is opened: the same contributions, compressed still.
    #[test]
    fn compressed_contribution_rows_move_into_their_objects_compressed() {
        use crate::{ReadOps, Store, WriteOps};
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idflow.db");
        let k = |cs_id: i64, attr: &str, v: String| Contribution {
            attr: attr.into(),
            cs_id,
            rule: "in".into(),
            precedence: 100,
            values: vec![Value::from(v.as_str())],
        };
        let count = |store: &Store, sql: &str| -> i64 {
            crate::ops::on(&store.read().expect("read"), |c| c.query_row(sql, [], |r| r.get(0))).expect("count")
        };
        let store = Store::open(&path).expect("open");
        let tx = store.write().expect("write");
        let mut ids = Vec::new();
        // Enough different values for the contributions' dictionary; every tenth object has a
        // second source, and one of them (909) has its rows in two of the migration's reads
        // (rows 1,000 and 1,001).
        for i in 0..2500 {
            let id = tx.mv_create("person", &BTreeMap::new()).expect("created");
            let mut all = vec![k(2 * i + 1, "cn", format!("Person {i}")), k(2 * i + 1, "mail", format!("p{i}@example.org"))];
            if i % 10 == 9 {
                all.push(k(2 * i + 2, "title", format!("Title of person number {i} in the HR system")));
            }
            tx.mv_save_contributed(id, &all, None).expect("set");
            ids.push(id);
        }
        tx.commit().expect("commit");
        let before: Vec<Vec<Contribution>> = {
            let tx = store.read().expect("read");
            ids.iter().map(|id| tx.mv_contributions(*id).expect("read")).collect()
        };
        assert_eq!((before[0].len(), before[909].len()), (2, 3));
        assert!(count(&store, "SELECT COUNT(*) FROM mv_object WHERE typeof(contrib) = 'blob'") > 400, "compressed");
        // Back to schema 7: a row per object and source, compressed with the same dictionary.
        let tx = store.write().expect("write");
        crate::ops::on(&tx, |c| {
            c.execute_batch(crate::schema::BACK_TO_SCHEMA_12)?;
            c.execute_batch(crate::schema::BACK_TO_SCHEMA_11)?;
            c.execute_batch("CREATE TABLE mv_contrib (mv_id INTEGER NOT NULL, cs_id INTEGER NOT NULL, items TEXT NOT NULL, PRIMARY KEY (mv_id, cs_id)) WITHOUT ROWID;")?;
            let rows: Vec<(i64, Vec<u8>, bool)> = c
                .prepare("SELECT id, CAST(contrib AS BLOB), typeof(contrib) = 'blob' FROM mv_object")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, bytes, packed) in rows {
                let v = if packed { rusqlite::types::ValueRef::Blob(&bytes) } else { rusqlite::types::ValueRef::Text(&bytes) };
                let by: BTreeMap<i64, String> = c.unpack(v, |json| {
                    let by: BTreeMap<i64, &serde_json::value::RawValue> = serde_json::from_str(json).expect("json");
                    by.into_iter().map(|(cs, items)| (cs, items.get().to_string())).collect()
                })?;
                for (cs, items) in by {
                    let items = c.pack(crate::packed::Column::MvContrib, "", items)?;
                    c.execute("INSERT INTO mv_contrib(mv_id, cs_id, items) VALUES (?1, ?2, ?3)", params![id, cs, items])?;
                }
            }
            c.execute_batch("ALTER TABLE mv_object DROP COLUMN contrib; UPDATE meta SET value = '7' WHERE key = 'schema_version';")
        })
        .expect("back to 7");
        tx.commit().expect("commit");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM mv_contrib"), 2750);
        assert!(count(&store, "SELECT COUNT(*) FROM mv_contrib WHERE typeof(items) = 'blob'") > 400, "compressed");
        drop(store);

        let store = Store::open(&path).expect("migrated");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'mv_contrib'"), 0, "the table goes");
        assert!(count(&store, "SELECT COUNT(*) FROM mv_object WHERE typeof(contrib) = 'blob'") > 400, "compressed still");
        let tx = store.read().expect("read");
        let after: Vec<Vec<Contribution>> = ids.iter().map(|id| tx.mv_contributions(*id).expect("read")).collect();
        assert!(before == after, "the same contributions");
        let with: Vec<Vec<Contribution>> =
            ids.iter().map(|id| tx.mv_get_contributed(*id).expect("read").expect("there").1.expect("contributions")).collect();
        assert!(before == with, "the same contributions, read with their objects");
        assert!(tx.mv_get_contributed(i64::MAX).expect("read").is_none(), "no such object");
    }

    /// Contributions that are the object's winners, each alone on its attribute, are kept once
    /// (as the winners) and read back the same; any others (a loser, an empty value, two
    /// contributions to one attribute) are kept as they are.
    #[test]
    fn contributions_that_are_the_winners_are_kept_once_and_read_back_the_same() {
        use crate::mv::Winners;
        use crate::{ReadOps, Store, WriteOps};
        let k = |cs_id: i64, attr: &str, rule: &str, p: i64, v: &[&str]| Contribution {
            attr: attr.into(),
            cs_id,
            rule: rule.into(),
            precedence: p,
            values: v.iter().map(|s| Value::from(*s)).collect(),
        };
        let winners = |all: &[Contribution]| -> BTreeMap<String, MvAttr> {
            let mut out: BTreeMap<String, MvAttr> = BTreeMap::new();
            for c in all.iter().filter(|c| !c.values.is_empty()) {
                let w = MvAttr { values: c.values.clone(), rule: c.rule.clone(), cs: c.cs_id, precedence: c.precedence };
                if out.get(&c.attr).is_none_or(|x| (x.precedence, &x.rule, x.cs) > (w.precedence, &w.rule, w.cs)) {
                    out.insert(c.attr.clone(), w);
                }
            }
            out
        };
        let store = Store::in_memory().expect("store");
        // What the case is, its contributions, and whether they are kept once.
        let cases = [
            ("one source", vec![k(4, "mail", "in", 100, &["a@x"]), k(4, "cn", "in", 100, &["Ada"]), k(4, "sn", "hr", 50, &["L"])], true),
            ("two sources, each winning", vec![k(9, "cn", "in", 100, &["Ada"]), k(3, "mail", "hr", 50, &["a@x"])], true),
            ("a loser", vec![k(4, "cn", "in", 100, &["Ada"]), k(5, "cn", "hr", 50, &["A"])], false),
            ("an empty value", vec![k(4, "cn", "in", 100, &["Ada"]), k(4, "mail", "in", 100, &[])], false),
        ];
        let tx = store.write().expect("write");
        let mut ids = Vec::new();
        for (what, all, once) in &cases {
            let attrs = winners(all);
            let projected = tx.mv_project("person", &attrs, all).expect("projected");
            let saved = tx.mv_create("person", &BTreeMap::new()).expect("created");
            let changed: Vec<String> = attrs.keys().cloned().collect();
            tx.mv_save_contributed(saved, all, Some(Winners { attrs: &attrs, changed: &changed, old: &[] })).expect("saved");
            ids.push((*what, all, *once, projected, saved));
        }
        tx.commit().expect("commit");
        let tx = store.read().expect("read");
        for (what, all, once, projected, saved) in ids {
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| (a.cs_id, &a.rule, a.precedence, &a.attr).cmp(&(b.cs_id, &b.rule, b.precedence, &b.attr)));
            for id in [projected, saved] {
                assert_eq!(tx.mv_contributions(id).expect("read"), sorted, "{what}");
                // Read with the object, the same (and the same object).
                let (o, with) = tx.mv_get_contributed(id).expect("read").expect("there");
                let with = with.expect("contributions");
                assert_eq!((with, o), (sorted.clone(), tx.mv_get(id).expect("read").expect("there")), "{what}: read with it");
                let kept: i64 =
                    crate::ops::on(&tx, |c| c.query_row("SELECT length(contrib) FROM mv_object WHERE id=?1", [id], |r| r.get(0)))
                        .expect("length");
                assert_eq!(kept == 0, once, "{what}: kept once only when they are the winners");
            }
        }
    }

    #[test]
    fn what_does_not_fit_together_is_an_error() {
        assert!(decode_attrs(r#"{"a":{"mail":["x"]},"w":[]}"#).expect_err("no winner").contains("mail"));
        assert!(decode_attrs(r#"{"a":{},"w":[{"r":"r","cs":1,"p":1,"a":["mail"]}]}"#).expect_err("no values").contains("mail"));
        // Schema 4's form, written by an idflow that opened the database before it was migrated.
        assert!(decode_attrs(r#"{"mail":{"v":["x"],"rule":"r","cs":1,"p":1}}"#).is_err());
        assert_eq!(decode_attrs("{}"), Ok(BTreeMap::new()));
    }

    /// A value that does not decompress (here: compressed with a dictionary the database does
    /// not hold, as a damaged row would say) is an error naming its metaverse object, on every
    /// read: alone, with its contributions, read ahead, and its contributions alone.
    #[test]
    fn a_value_that_does_not_decompress_names_its_object() {
        use crate::{ReadOps, Store, WriteOps};
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let all = [Contribution { attr: "cn".into(), cs_id: 4, rule: "in".into(), precedence: 100, values: vec![Value::from("Ada")] }];
        let attrs =
            BTreeMap::from([("cn".to_string(), MvAttr { values: vec![Value::from("Ada")], rule: "in".into(), cs: 4, precedence: 100 })]);
        let (id, other) =
            (tx.mv_project("person", &attrs, &all).expect("projected"), tx.mv_project("person", &attrs, &[]).expect("projected"));
        // Dictionary 77, 12 bytes long, then a frame: no such dictionary.
        let damaged = "X'4D0C00112233'";
        crate::ops::on(&tx, |c| {
            c.execute(&format!("UPDATE mv_object SET attrs = {damaged} WHERE id = ?1"), [id])?;
            c.execute(&format!("UPDATE mv_object SET contrib = {damaged} WHERE id = ?1"), [other])
        })
        .expect("damaged");
        // Read ahead, a dictionary is looked for as the value is read: it fails there.
        let ahead = match tx.mv_get_many_later(&[id]) {
            Ok(later) => std::thread::spawn(later).join().expect("decoded").expect_err("damaged").to_string(),
            Err(e) => e.to_string(),
        };
        let errors = [tx.mv_get(id).expect_err("damaged").to_string(), tx.mv_get_contributed(id).expect_err("damaged").to_string(), ahead];
        for e in errors {
            assert!(e.contains(&format!("metaverse object {id}: its attributes do not read back: compressed with dictionary 77")), "{e}");
            assert!(!e.contains("at index"), "named as the store names it, not by SQLite's column: {e}");
        }
        let e = tx.mv_contributions(other).expect_err("damaged").to_string();
        assert!(e.contains(&format!("metaverse object {other}: its contributions do not read back: compressed with dictionary 77")), "{e}");
        assert!(!e.contains("at index"), "{e}");
    }
}
