//! Metaverse objects: one per real identity. Each attribute keeps every rule's contribution;
//! the winner (chosen by the engine's precedence) is materialized with the rule and
//! connector-space object that contributed it, and indexed for joins and back-references.
use crate::mv_form;
use crate::mv_index::{self, Deferred};
use crate::packed::{Column, Db, Dicts, Kept, Unpacker};
use crate::prepared::with;
use idflow_core::Value;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MvAttr {
    #[serde(rename = "v")]
    pub values: Vec<Value>,
    pub rule: String,
    pub cs: i64,
    #[serde(rename = "p")]
    pub precedence: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MvObject {
    pub id: i64,
    pub object_type: String,
    pub attrs: BTreeMap<String, MvAttr>,
    pub deleted: bool,
}

impl MvObject {
    pub fn values(&self, attr: &str) -> Option<&[Value]> {
        self.attrs.get(attr).map(|a| a.values.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub attr: String,
    pub cs_id: i64,
    pub rule: String,
    pub precedence: i64,
    pub values: Vec<Value>,
}

/// A new object with these winning attributes (indexed), marked dirty; `all`: what the source
/// object that projected it contributes (if any).
pub(crate) fn create(c: &Db, object_type: &str, attrs: &BTreeMap<String, MvAttr>, all: &[Contribution]) -> Result<i64> {
    let contrib = stored_contrib(c, all, Some(attrs))?;
    let packed = c.pack(Column::MvAttrs, "", mv_form::encode_attrs(attrs))?;
    with(c, "INSERT INTO mv_object(object_type, attrs, dirty, contrib) VALUES (?1, ?2, 0, ?3)", |st| {
        st.execute(params![object_type, packed, contrib])
    })?;
    let id = c.last_insert_rowid();
    c.dirty.hold(c, id)?;
    index_all(c, Some(c.index), id, attrs.iter().map(|(a, v)| (a.as_str(), v.values.as_slice())))?;
    Ok(id)
}

pub(crate) fn get(c: &Db, id: i64) -> Result<Option<MvObject>> {
    with(c, "SELECT id, object_type, attrs, deleted FROM mv_object WHERE id=?1", |st| st.query_row([id], |r| from_row(c, r)).optional())
}

/// [`get`] of each of `ids` (at most [`crate::cs::IDS_PER_STATEMENT`]), in one statement.
pub(crate) fn get_many(c: &Db, ids: &[i64]) -> Result<Vec<MvObject>> {
    many(c, ids, |r| from_row(c, r))
}

/// Each of `ids` that exists (at most [`crate::cs::IDS_PER_STATEMENT`]), its row of
/// `id, object_type, attrs, deleted` made into what `row` makes of it, in one statement.
fn many<T>(c: &Connection, ids: &[i64], mut row: impl FnMut(&rusqlite::Row) -> Result<T>) -> Result<Vec<T>> {
    let (which, p) = crate::cs::one_of("id", ids);
    let mut st = c.prepare_cached(&format!("SELECT id, object_type, attrs, deleted FROM mv_object WHERE {which}"))?;
    let rows = st.query_map(rusqlite::params_from_iter(p), |r| row(r))?;
    rows.collect()
}

/// An object from a row of `id, object_type, attrs, deleted`.
fn from_row(c: &Db, r: &rusqlite::Row) -> Result<MvObject> {
    let o = fields(r)?;
    let attrs = c.unpack(r.get_ref(2)?, |json| parse_attrs(o.id, json)).map_err(|e| undecoded(e, o.id, "attributes"))??;
    Ok(MvObject { attrs, ..o })
}

/// Such a row but its attributes.
fn fields(r: &rusqlite::Row) -> Result<MvObject> {
    Ok(MvObject { id: r.get(0)?, object_type: r.get(1)?, attrs: BTreeMap::new(), deleted: r.get::<_, i64>(3)? != 0 })
}

/// A metaverse object read with its attributes still as stored: [`KeptMv::unpack`] decodes
/// them, on any thread.
pub(crate) struct KeptMv {
    o: MvObject,
    attrs: Kept,
}

impl KeptMv {
    pub(crate) fn unpack(self, u: &mut Unpacker) -> Result<MvObject> {
        let KeptMv { mut o, attrs } = self;
        o.attrs = u.unpack(&attrs, |json| parse_attrs(o.id, json)).map_err(|e| undecoded(e, o.id, "attributes"))??;
        Ok(o)
    }
}

/// [`get_many`], the attributes kept as stored: their dictionaries are added to `dicts`.
pub(crate) fn get_many_kept(c: &Db, ids: &[i64], dicts: &mut Dicts) -> Result<Vec<KeptMv>> {
    many(c, ids, |r| {
        let o = fields(r)?;
        let attrs = c.codec.keep(c, r.get_ref(2)?, dicts).map_err(|e| undecoded(e, o.id, "attributes"))?;
        Ok(KeptMv { o, attrs })
    })
}

/// An object's winning attributes as a change left them: `changed` names the attributes whose
/// winner changed, `old` the values those of them that had a winner before had (their index
/// entries go).
#[derive(Debug, Clone, Copy)]
pub struct Winners<'a> {
    pub attrs: &'a BTreeMap<String, MvAttr>,
    pub changed: &'a [String],
    pub old: &'a [(String, Vec<Value>)],
}

/// Writes every source object's contributions `all` (as they stand now), and the winners when
/// they changed, in one write of the object's row.
pub(crate) fn save_contributed(c: &Db, id: i64, all: &[Contribution], winners: Option<Winners>) -> Result<()> {
    let contrib = stored_contrib(c, all, winners.as_ref().map(|w| w.attrs))?;
    let Some(w) = winners else {
        with(c, "UPDATE mv_object SET contrib=?1 WHERE id=?2", |st| st.execute(params![contrib, id]))?;
        return Ok(());
    };
    let packed = c.pack(Column::MvAttrs, "", mv_form::encode_attrs(w.attrs))?;
    // Its mark is held, as a projection's is (mv_dirty.rs): the row is written clean, and
    // outbound sync, which looks at the object in the same transaction, clears the mark
    // without writing the row a second time (at a 1% delta, 4% of the sync).
    let updated = with(c, "UPDATE mv_object SET attrs=?1, contrib=?2, dirty=0 WHERE id=?3", |st| st.execute(params![packed, contrib, id]))?;
    // No such object (any more): no mark, and no index entries for it either.
    if updated == 0 {
        c.dirty.forget(id);
        return Ok(());
    }
    c.dirty.hold(c, id)?;
    reindex(c, id, w)
}

/// The index entries of the attributes whose winner changed: the old values' go first.
fn reindex(c: &Db, id: i64, w: Winners) -> Result<()> {
    for (a, values) in w.old {
        unindex(c, id, a, values)?;
    }
    index_all(c, Some(c.index), id, w.changed.iter().filter_map(|a| w.attrs.get(a).map(|v| (a.as_str(), v.values.as_slice()))))
}

fn unwritable(what: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(what.into())
}

/// Rows written by one statement at most.
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// Indexes the values of attributes of object `id`: references by the object they name
/// (`mv_ref`, for the objects to look at again when it changes), other values by attribute
/// and key (`mv_value`, for joins and searches). Each index is its table's primary key alone;
/// the entries go in by one statement per table (a few dozen rows each), not one per value.
/// Entries go through `held` when given (written behind, mv_index.rs), else at once.
fn index_all<'a>(c: &Connection, held: Option<&Deferred>, id: i64, attrs: impl Iterator<Item = (&'a str, &'a [Value])>) -> Result<()> {
    let mut values: Vec<(&str, String)> = Vec::new();
    let mut refs: Vec<(i64, &str)> = Vec::new();
    for (a, vals) in attrs {
        for v in vals {
            match v {
                Value::Ref(t) => refs.push((*t, a)),
                _ => values.push((a, key(v))),
            }
        }
    }
    match held {
        Some(held) => {
            held.add(c, values, id)?;
            held.add_refs(c, &refs, id)
        }
        None => {
            mv_index::insert(c, &values.iter().map(|(a, k)| (*a, k.as_str(), id)).collect::<Vec<_>>())?;
            mv_index::insert_refs(c, &refs.iter().map(|(t, a)| (*t, id, *a)).collect::<Vec<_>>())
        }
    }
}

/// `(?,?,?),(?,?,?),...`: `n` rows of three parameters.
pub(crate) fn rows(n: usize) -> String {
    vec!["(?,?,?)"; n].join(",")
}

/// The key a value is found by: case folded, so that one index serves exact and any-case
/// lookups and prefix searches (an exact lookup checks its candidates' values).
fn key(v: &Value) -> String {
    v.index_key().to_lowercase()
}

/// Removes the index entries of `values` of attribute `attr`, as [`index_all`] made them.
fn unindex(c: &Db, id: i64, attr: &str, values: &[Value]) -> Result<()> {
    if values.iter().any(|v| matches!(v, Value::Ref(_))) {
        c.index.refs_asked(c)?;
    }
    let mut val = c.prepare_cached("DELETE FROM mv_value WHERE attr=?1 AND key=?2 AND mv_id=?3")?;
    let mut rf = c.prepare_cached("DELETE FROM mv_ref WHERE target=?1 AND mv_id=?2 AND attr=?3")?;
    for v in values {
        match v {
            Value::Ref(t) => rf.execute(params![t, id, attr])?,
            _ => {
                // Held back, or written already (or both: added again after a write).
                let k = key(v);
                c.index.remove(attr, &k, id);
                val.execute(params![attr, k, id])?
            }
        };
    }
    Ok(())
}

/// Builds the value index again from every object's attributes, as schema 4 wrote them (the
/// migration to it).
pub(crate) fn reindex_all(c: &Connection) -> Result<()> {
    c.execute_batch("DELETE FROM mv_value; DELETE FROM mv_ref;")?;
    let mut st = c.prepare("SELECT id, attrs FROM mv_object")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let attrs = mv_form::legacy_attrs(&r.get::<_, String>(1)?).map_err(|e| unreadable(1, format!("metaverse object {id}: {e}")))?;
        index_all(c, None, id, attrs.iter().map(|(a, v)| (a.as_str(), v.values.as_slice())))?;
    }
    Ok(())
}

fn parse_attrs(id: i64, json: &str) -> Result<BTreeMap<String, MvAttr>> {
    mv_form::decode_attrs(json).map_err(|e| unreadable(1, format!("metaverse object {id}: {e}")))
}

/// A value of object `id` that does not decompress (`what`: its attributes or contributions),
/// named: the store's packed values do not know whose they are.
fn undecoded(e: rusqlite::Error, id: i64, what: &str) -> rusqlite::Error {
    crate::packed::naming(e, |_| format!("metaverse object {id}: its {what} do not read back"))
}

/// A stored value that does not read back, in column `column`: `what` says whose.
pub(crate) fn unreadable(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
}

pub(crate) fn mark_dirty(c: &Db, id: i64) -> Result<()> {
    if c.dirty.is_held(id) {
        return Ok(());
    }
    with(c, "UPDATE mv_object SET dirty=1 WHERE id=?1", |st| st.execute([id]))?;
    Ok(())
}

pub(crate) fn restore(c: &Db, id: i64) -> Result<()> {
    with(c, "UPDATE mv_object SET deleted=0, dirty=1 WHERE id=?1", |st| st.execute([id]))?;
    c.dirty.forget(id);
    Ok(())
}

pub(crate) fn mark_deleted(c: &Db, id: i64) -> Result<()> {
    with(c, "UPDATE mv_object SET deleted=1, dirty=1, contrib=NULL WHERE id=?1", |st| st.execute([id]))?;
    c.dirty.forget(id);
    Ok(())
}

/// Removes a deleted object for good (after outbound sync has deprovisioned it).
pub(crate) fn purge(c: &Db, id: i64) -> Result<()> {
    match get(c, id) {
        Ok(Some(o)) => {
            for (a, v) in &o.attrs {
                unindex(c, id, a, &v.values)?;
            }
        }
        Ok(None) => {}
        // Attributes that do not read back: every entry of the object goes, found the slow way.
        Err(_) => {
            c.index.flush(c)?;
            c.prepare_cached("DELETE FROM mv_value WHERE mv_id=?1")?.execute([id])?;
            c.prepare_cached("DELETE FROM mv_ref WHERE mv_id=?1")?.execute([id])?;
        }
    }
    c.prepare_cached("DELETE FROM mv_object WHERE id=?1")?.execute([id])?;
    c.dirty.forget(id);
    Ok(())
}

/// Objects marked dirty, in their rows or held back ([`crate::mv_dirty`]).
pub(crate) fn dirty_ids(c: &Db) -> Result<Vec<i64>> {
    let mut st = c.prepare("SELECT id FROM mv_object WHERE dirty=1 ORDER BY id")?;
    let rows = st.query_map([], |r| r.get(0))?;
    let mut ids = rows.collect::<rusqlite::Result<Vec<i64>>>()?;
    let held = c.dirty.held();
    if !held.is_empty() {
        ids.extend(held);
        ids.sort_unstable();
        ids.dedup();
    }
    Ok(ids)
}

pub(crate) fn all_ids(c: &Connection) -> Result<Vec<i64>> {
    let mut st = c.prepare("SELECT id FROM mv_object ORDER BY id")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect::<rusqlite::Result<_>>()
}

/// Clears the dirty flag of `ids` ([`set_dirty`]); a mark held back is only forgotten.
pub(crate) fn clear_dirty(c: &Db, ids: &[i64]) -> Result<()> {
    set_dirty(c, &c.dirty.clear(ids), false)
}

/// Sets the dirty flag of `ids` to `dirty`, a few hundred to a statement. Only rows that do
/// not have it already are written: SQLite writes a row an UPDATE sets to what it holds, so
/// clearing a full sync's objects in step wrote every metaverse object (its attributes too) to
/// the log again.
pub(crate) fn set_dirty(c: &Connection, ids: &[i64], dirty: bool) -> Result<()> {
    let (to, from) = if dirty { (1, 0) } else { (0, 1) };
    for chunk in ids.chunks(crate::cs::IDS_PER_STATEMENT) {
        let (which, p) = crate::cs::one_of("id", chunk);
        c.prepare_cached(&format!("UPDATE mv_object SET dirty={to} WHERE {which} AND +dirty={from}"))?
            .execute(rusqlite::params_from_iter(p))?;
    }
    Ok(())
}

/// Metaverse objects of `object_type` with `attr` holding `value` (a join lookup).
pub(crate) fn find_by_value(c: &Db, object_type: &str, attr: &str, value: &Value, ignore_case: bool) -> Result<Vec<i64>> {
    let alive = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<i64>> {
        let mut st = c.prepare_cached(sql)?;
        let rows = st.query_map(p, |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()
    };
    if let Value::Ref(t) = value {
        c.index.refs_asked(c)?;
        return alive(
            "SELECT r.mv_id FROM mv_ref r JOIN mv_object o ON o.id=r.mv_id WHERE r.target=?1 AND r.attr=?2 AND o.object_type=?3 AND o.deleted=0 ORDER BY r.mv_id",
            &[t, &attr, &object_type],
        );
    }
    let k = key(value);
    if c.index.none_of(c, attr, &k)? {
        return Ok(Vec::new());
    }
    c.index.looked_up(c, attr, &k)?;
    let found = alive(
        "SELECT v.mv_id FROM mv_value v JOIN mv_object o ON o.id=v.mv_id WHERE v.attr=?1 AND v.key=?2 AND o.object_type=?3 AND o.deleted=0 ORDER BY v.mv_id",
        &[&attr, &k, &object_type],
    )?;
    if ignore_case {
        return Ok(found);
    }
    // The index folds case: an exact lookup keeps the candidates holding the value as given.
    let mut exact = Vec::with_capacity(found.len());
    for id in found {
        if get(c, id)?.is_some_and(|o| o.values(attr).is_some_and(|v| v.contains(value))) {
            exact.push(id);
        }
    }
    Ok(exact)
}

/// Metaverse objects whose attributes reference `mv_id`.
pub(crate) fn referrers(c: &Db, mv_id: i64) -> Result<Vec<(i64, String)>> {
    c.index.refs_asked(c)?;
    let mut st = c.prepare_cached("SELECT mv_id, attr FROM mv_ref WHERE target=?1")?;
    let rows = st.query_map([mv_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect::<rusqlite::Result<_>>()
}

/// Every source object's contributions to `mv_id`, in source object order (none for an object
/// that is not there). They share the object's row: reading them touches no page of their own.
pub(crate) fn contributions(c: &Db, mv_id: i64) -> Result<Vec<Contribution>> {
    with(c, "SELECT contrib, attrs FROM mv_object WHERE id=?1", |st| {
        let mut rows = st.query([mv_id])?;
        let Some(r) = rows.next()? else { return Ok(Vec::new()) };
        stored_contributions(c, mv_id, r.get_ref(0)?, || {
            let won = c.unpack(r.get_ref(1)?, mv_form::decode_attrs).map_err(|e| undecoded(e, mv_id, "attributes"))?;
            Ok(won.map(mv_form::as_contributions))
        })
    })
}

/// Object `mv_id`'s contributions from its `contrib` column (`v`); `won` makes them from its
/// winners where they are kept as those.
fn stored_contributions(
    c: &Db,
    mv_id: i64,
    v: ValueRef<'_>,
    won: impl FnOnce() -> Result<std::result::Result<Vec<Contribution>, String>>,
) -> Result<Vec<Contribution>> {
    let out = match v {
        ValueRef::Null => Ok(Vec::new()),
        ValueRef::Blob(AS_WON) => won()?,
        v => c.unpack(v, mv_form::decode_contrib).map_err(|e| undecoded(e, mv_id, "contributions"))?,
    };
    out.map_err(|e| unreadable(0, format!("contributions to metaverse object {mv_id}: {e}")))
}

/// [`get`] and [`contributions`] of one object in one read, its attributes decoded once
/// (contributions kept as its winners are made from them, not decoded a second time). The
/// contributions' own error, should they not read back, is theirs: the object still is.
pub(crate) fn get_contributed(c: &Db, id: i64) -> Result<Option<(MvObject, Result<Vec<Contribution>>)>> {
    with(c, "SELECT id, object_type, attrs, deleted, contrib FROM mv_object WHERE id=?1", |st| {
        st.query_row([id], |r| {
            let o = from_row(c, r)?;
            let all = stored_contributions(c, id, r.get_ref(4)?, || Ok(Ok(mv_form::as_contributions(o.attrs.clone()))));
            Ok((o, all))
        })
        .optional()
    })
}

/// Contributions stored as this (an empty BLOB, schema 9) are the object's winners, each the
/// only contribution to its attribute: what a source object that alone makes an object
/// contributes, kept once instead of twice.
const AS_WON: &[u8] = b"";

/// `all` as the row keeps it: [`AS_WON`] when they are the winners `attrs` (when known), else
/// encoded and packed; `None` when there are none.
fn stored_contrib(c: &Db, all: &[Contribution], attrs: Option<&BTreeMap<String, MvAttr>>) -> Result<Option<rusqlite::types::Value>> {
    if !all.is_empty() && attrs.is_some_and(|a| mv_form::all_won(all, a)) {
        return Ok(Some(rusqlite::types::Value::Blob(AS_WON.to_vec())));
    }
    let json = mv_form::encode_contrib(all).map_err(unwritable)?;
    json.map(|json| c.pack(Column::MvContrib, "", json)).transpose()
}

/// Is any inbound (joined or projected) connector-space object still linked?
pub(crate) fn has_inbound_link(c: &Connection, mv_id: i64) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM cs_object WHERE mv_id=?1 AND link IN ('joined','projected') LIMIT 1")?
        .query_row([mv_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Metaverse objects with a value in `attrs` starting with `text` (any case), and those a
/// connector-space object anchored exactly `text` is linked to; newest first, at most `limit`.
pub(crate) fn search(c: &Db, text: &str, attrs: &[&str], limit: i64) -> Result<Vec<i64>> {
    c.index.searched(c, attrs)?;
    let low = text.to_lowercase();
    // A range on the (attr, key) index, keys folded as the text is: a prefix match that needs
    // no LIKE escaping.
    let high = format!("{low}\u{10FFFF}");
    let mut ids = Vec::new();
    let mut by_anchor = c.prepare_cached("SELECT DISTINCT mv_id FROM cs_object WHERE anchor = ?1 AND mv_id IS NOT NULL")?;
    for id in by_anchor.query_map([crate::anchor::Anchor(text)], |r| r.get::<_, i64>(0))? {
        ids.push(id?);
    }
    let mut st = c.prepare_cached(
        "SELECT DISTINCT v.mv_id FROM mv_value v JOIN mv_object o ON o.id = v.mv_id
         WHERE v.attr = ?1 AND v.key >= ?2 AND v.key < ?3 AND o.deleted = 0 LIMIT ?4",
    )?;
    for attr in attrs {
        for id in st.query_map(params![attr, low, high, limit], |r| r.get::<_, i64>(0))? {
            ids.push(id?);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(ids)
}

pub(crate) fn count(c: &Connection) -> Result<i64> {
    c.query_row("SELECT COUNT(*) FROM mv_object WHERE deleted = 0", [], |r| r.get(0))
}
