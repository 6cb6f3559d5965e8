//! The value index (`mv_value`) and the reference index (`mv_ref`), written behind. A full sync
//! projects objects in the order a directory lists them, so their values (names, mail
//! addresses) arrive in no order: inserted one object at a time, each lands on another page of
//! the index. Held back and inserted sorted, they land together, page after page.
//!
//! A value held back is still found: a lookup (a join looks its attribute up for every object)
//! first writes what is held of the key it looks for (mostly nothing); a removal takes an entry
//! out of what is held and of the index. A prefix search first writes what is held of its
//! attributes. The rest are written before the transaction commits,
//! or when too many are held; a transaction that rolls back drops them with it.
//!
//! References (a manager, a group's members) name objects in no order either: their entries
//! are all held back until any reference entry is read or removed, which writes them all.
//!
//! An attribute the index has no entry of when a write transaction first looks one of its
//! values up (a join's, in a full sync of an empty metaverse) gets every entry it will have in
//! that transaction through here: the keys added since are remembered (by a hash), and a lookup
//! of a key never added is answered without reading the index ([`Deferred::none_of`]).
use idflow_core::fast_hash::{fixed_hash, FastMap, FastSet};
use rusqlite::Connection;
use std::cell::RefCell;

/// Entries held back at most: about 30 MB.
const MOST_HELD: usize = 1 << 18;

#[derive(Default)]
pub(crate) struct Deferred(RefCell<State>);

#[derive(Default)]
struct State {
    /// Attribute names, by the index entries use.
    names: Vec<String>,
    /// Value entries held back: by attribute (its index in `names`), then key, the objects.
    held: Vec<FastMap<String, Vec<i64>>>,
    /// How many value entries are held.
    count: usize,
    /// Reference entries `(target, object, attribute name)`.
    refs: Vec<(i64, i64, u32)>,
    /// By attribute (its index in `names`): whether its entries are all known to this
    /// transaction. Cleared as each write transaction begins and ends.
    whole: Vec<Whole>,
    /// A write transaction is open (only that one knows what it wrote).
    writing: bool,
}

/// What a write transaction knows of an attribute's entries.
#[derive(Default)]
enum Whole {
    /// Not asked yet.
    #[default]
    Unasked,
    /// The index had entries of it when first asked.
    No,
    /// It had none then: the hashes of the keys added since (a key whose hash is not here has
    /// no entry).
    Keys(FastSet<u64>),
}

impl State {
    /// The index of `attr` in `names`, if it has one.
    fn known(&self, attr: &str) -> Option<usize> {
        self.names.iter().position(|n| n == attr)
    }

    fn name_index(&mut self, attr: &str) -> usize {
        match self.known(attr) {
            Some(i) => i,
            None => {
                self.names.push(attr.to_string());
                self.held.push(FastMap::default());
                self.whole.push(Whole::Unasked);
                self.names.len() - 1
            }
        }
    }

    fn full(&self) -> bool {
        self.count + self.refs.len() >= MOST_HELD
    }

    /// Takes the value entries of the attributes at `which` out, sorted as the index is: by
    /// attribute name, key, object.
    fn take(&mut self, which: impl Iterator<Item = usize>) -> Vec<(usize, String, i64)> {
        let mut which: Vec<usize> = which.collect();
        which.sort_unstable_by(|a, b| self.names[*a].cmp(&self.names[*b]));
        let mut out = Vec::new();
        for i in which {
            let start = out.len();
            for (key, mut ids) in std::mem::take(&mut self.held[i]) {
                // The key moves to its last object (most keys have one), copied for the others.
                let last = ids.pop();
                out.extend(ids.into_iter().map(|id| (i, key.clone(), id)));
                out.extend(last.map(|id| (i, key, id)));
            }
            out[start..].sort_unstable_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
        }
        self.count -= out.len();
        out
    }
}

impl Deferred {
    /// Indexes `(attribute, key)` of object `id`: held back.
    pub(crate) fn add(&self, c: &Connection, entries: Vec<(&str, String)>, id: i64) -> rusqlite::Result<()> {
        let full = {
            let mut st = self.0.borrow_mut();
            for (a, key) in entries {
                let i = st.name_index(a);
                if let Whole::Keys(keys) = &mut st.whole[i] {
                    keys.insert(fixed_hash(&key));
                }
                st.held[i].entry(key).or_default().push(id);
                st.count += 1;
            }
            st.full()
        };
        if full {
            self.flush(c)?;
        }
        Ok(())
    }

    /// Whether `(attr, key)` surely has no entry: `attr` had none when this transaction first
    /// asked (read once, then known), and no key of this hash was added since.
    pub(crate) fn none_of(&self, c: &Connection, attr: &str, key: &str) -> rusqlite::Result<bool> {
        let mut st = self.0.borrow_mut();
        if !st.writing {
            return Ok(false);
        }
        let i = st.name_index(attr);
        if matches!(st.whole[i], Whole::Unasked) {
            // What is held of it is all it has, if the index has nothing of it yet.
            let any =
                c.prepare_cached("SELECT EXISTS(SELECT 1 FROM mv_value WHERE attr=?1)")?.query_row([attr], |r| r.get::<_, bool>(0))?;
            st.whole[i] = match any {
                true => Whole::No,
                false => Whole::Keys(st.held[i].keys().map(|k| fixed_hash(k)).collect()),
            };
        }
        Ok(matches!(&st.whole[i], Whole::Keys(keys) if !keys.contains(&fixed_hash(key))))
    }

    /// A write transaction begins (`true`) or ends: what it knew of attributes' entries is
    /// forgotten (another connection may write between two).
    pub(crate) fn writing(&self, open: bool) {
        let mut st = self.0.borrow_mut();
        st.whole.iter_mut().for_each(|w| *w = Whole::Unasked);
        st.writing = open;
    }

    /// `(attr, key)` is about to be looked up: its entries held back are written.
    pub(crate) fn looked_up(&self, c: &Connection, attr: &str, key: &str) -> rusqlite::Result<()> {
        let ids = {
            let mut st = self.0.borrow_mut();
            let Some(i) = st.known(attr) else { return Ok(()) };
            let Some(ids) = st.held[i].remove(key) else { return Ok(()) };
            st.count -= ids.len();
            ids
        };
        insert(c, &ids.iter().map(|id| (attr, key, *id)).collect::<Vec<_>>())
    }

    /// Takes the entry `(attr, key)` of object `id` out of those held back, if it is there.
    pub(crate) fn remove(&self, attr: &str, key: &str, id: i64) {
        let mut st = self.0.borrow_mut();
        let Some(i) = st.known(attr) else { return };
        let Some(ids) = st.held[i].get_mut(key) else { return };
        let before = ids.len();
        ids.retain(|x| *x != id);
        let removed = before - ids.len();
        if ids.is_empty() {
            st.held[i].remove(key);
        }
        st.count -= removed;
    }

    /// Indexes the references of object `id`, `(target, attribute)`: held back.
    pub(crate) fn add_refs(&self, c: &Connection, refs: &[(i64, &str)], id: i64) -> rusqlite::Result<()> {
        let full = {
            let mut st = self.0.borrow_mut();
            for (t, a) in refs {
                let i = st.name_index(a) as u32;
                st.refs.push((*t, id, i));
            }
            st.full()
        };
        if full {
            self.flush(c)?;
        }
        Ok(())
    }

    /// Reference entries are about to be read or removed: those held back are written.
    pub(crate) fn refs_asked(&self, c: &Connection) -> rusqlite::Result<()> {
        let mut out = std::mem::take(&mut self.0.borrow_mut().refs);
        if out.is_empty() {
            return Ok(());
        }
        let names = self.0.borrow().names.clone();
        out.sort_unstable_by(|a, b| (a.0, a.1, &names[a.2 as usize]).cmp(&(b.0, b.1, &names[b.2 as usize])));
        let rows: Vec<(i64, i64, &str)> = out.iter().map(|(t, id, i)| (*t, *id, names[*i as usize].as_str())).collect();
        insert_refs(c, &rows)
    }

    /// `attrs` are about to be searched: their value entries held back are written.
    pub(crate) fn searched(&self, c: &Connection, attrs: &[&str]) -> rusqlite::Result<()> {
        let out = {
            let mut st = self.0.borrow_mut();
            let which: Vec<usize> = attrs.iter().filter_map(|a| st.known(a)).collect();
            st.take(which.into_iter())
        };
        self.write(c, out)
    }

    /// Writes every entry held back (before a commit).
    pub(crate) fn flush(&self, c: &Connection) -> rusqlite::Result<()> {
        let out = {
            let mut st = self.0.borrow_mut();
            let n = st.held.len();
            st.take(0..n)
        };
        self.write(c, out)?;
        self.refs_asked(c)
    }

    /// The transaction rolled back: what it held back goes with it.
    pub(crate) fn drop_held(&self) {
        let mut st = self.0.borrow_mut();
        st.held.iter_mut().for_each(FastMap::clear);
        st.count = 0;
        st.refs = Vec::new();
    }

    fn write(&self, c: &Connection, out: Vec<(usize, String, i64)>) -> rusqlite::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let names = self.0.borrow().names.clone();
        let rows: Vec<(&str, &str, i64)> = out.iter().map(|(i, k, id)| (names[*i].as_str(), k.as_str(), *id)).collect();
        insert(c, &rows)
    }
}

/// Inserts index entries `(attribute, key, object)`, a few dozen to a statement.
pub(crate) fn insert(c: &Connection, rows: &[(&str, &str, i64)]) -> rusqlite::Result<()> {
    for chunk in rows.chunks(crate::mv::ROWS_PER_INSERT) {
        let sql = format!("INSERT OR IGNORE INTO mv_value(attr, key, mv_id) VALUES {}", crate::mv::rows(chunk.len()));
        let p: Vec<&dyn rusqlite::ToSql> = chunk.iter().flat_map(|(a, k, id)| [a as &dyn rusqlite::ToSql, k, id]).collect();
        c.prepare_cached(&sql)?.execute(p.as_slice())?;
    }
    Ok(())
}

/// Inserts reference entries `(target, object, attribute)`, a few dozen to a statement.
pub(crate) fn insert_refs(c: &Connection, rows: &[(i64, i64, &str)]) -> rusqlite::Result<()> {
    for chunk in rows.chunks(crate::mv::ROWS_PER_INSERT) {
        let sql = format!("INSERT OR IGNORE INTO mv_ref(target, mv_id, attr) VALUES {}", crate::mv::rows(chunk.len()));
        let p: Vec<&dyn rusqlite::ToSql> = chunk.iter().flat_map(|(t, id, a)| [t as &dyn rusqlite::ToSql, id, a]).collect();
        c.prepare_cached(&sql)?.execute(p.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{MvAttr, ReadOps, Store, Winners, WriteOps};
    use idflow_core::Value;
    use std::collections::BTreeMap;

    /// Object `id`'s `attr` changed from `old` to what `attrs` holds (it has no contributions).
    fn changed(tx: &dyn WriteOps, id: i64, attrs: &BTreeMap<String, MvAttr>, attr: &str, old: Value) {
        let winners = Winners { attrs, changed: &[attr.to_string()], old: &[(attr.to_string(), vec![old])] };
        tx.mv_save_contributed(id, &[], Some(winners)).expect("saved");
    }

    fn attrs(name: &str) -> BTreeMap<String, MvAttr> {
        let a = MvAttr { values: vec![Value::from(name)], rule: "r".into(), cs: 1, precedence: 100 };
        BTreeMap::from([("displayName".to_string(), a)])
    }

    /// One text of a query's one row.
    fn text_of(store: &Store, sql: &str) -> String {
        let tx = store.read().expect("read");
        crate::ops::on(&tx, |c| c.query_row(sql, [], |r| r.get(0))).expect("query")
    }

    fn entries(store: &Store) -> String {
        text_of(store, "SELECT coalesce(group_concat(key || ' ' || mv_id, ', '), '') FROM (SELECT * FROM mv_value ORDER BY key)")
    }

    #[test]
    fn values_held_back_are_found_written_at_commit_and_dropped_with_a_rollback() {
        let store = Store::in_memory().expect("store");
        // Rolled back: what it held back is not written by the next transaction (whose objects
        // SQLite gives the same ids).
        let tx = store.write().expect("write");
        assert_eq!(tx.mv_create("person", &attrs("Ada")).expect("created"), 1);
        drop(tx);
        let tx = store.write().expect("write");
        assert_eq!(tx.mv_create("person", &attrs("Grace")).expect("created"), 1);
        let b = tx.mv_create("person", &attrs("Barbara")).expect("created");
        tx.commit().expect("commit");
        assert_eq!(entries(&store), format!("barbara {b}, grace 1"));
        // Held back, then looked up, searched and changed in the same transaction.
        let tx = store.write().expect("write");
        let c = tx.mv_create("person", &attrs("Claude")).expect("created");
        let e = tx.mv_create("person", &attrs("Edsger")).expect("created");
        assert_eq!(tx.mv_find_by_value("person", "displayName", &Value::from("Claude"), false).expect("find"), vec![c]);
        assert_eq!(tx.mv_search("edS", &["displayName"], 10).expect("search"), vec![e]);
        changed(&tx, c, &attrs("Claudia"), "displayName", Value::from("Claude"));
        tx.commit().expect("commit");
        assert_eq!(entries(&store), format!("barbara {b}, claudia {c}, edsger {e}, grace 1"));
    }

    /// An attribute with no entry when a transaction first looks one of its values up: a key
    /// never added is found absent without reading the index, every key added (before the
    /// lookup or after, held back or written when too many were held) is found; the next
    /// transaction, with entries there, reads the index again.
    #[test]
    fn an_attribute_first_indexed_in_the_transaction_is_known_whole() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let find = |name: &str| tx.mv_find_by_value("person", "displayName", &Value::from(name), true).expect("find");
        let a = tx.mv_create("person", &attrs("Ada")).expect("created");
        assert_eq!(find("ada"), vec![a], "added before the first lookup");
        assert_eq!(find("grace"), Vec::<i64>::new());
        let g = tx.mv_create("person", &attrs("Grace")).expect("created");
        assert_eq!(find("Grace"), vec![g], "added after it");
        // Written as the transaction goes (as when too many are held): still found.
        let b = tx.mv_create("person", &attrs("Barbara")).expect("created");
        crate::ops::on(&tx, |c| c.index.flush(c)).expect("written");
        assert_eq!(find("barbara"), vec![b]);
        assert_eq!(find("barbar"), Vec::<i64>::new());
        tx.commit().expect("commit");
        let tx = store.write().expect("write");
        assert_eq!(tx.mv_find_by_value("person", "displayName", &Value::from("ada"), true).expect("find"), vec![a], "read");
        assert_eq!(tx.mv_find_by_value("person", "displayName", &Value::from("nobody"), true).expect("find"), Vec::<i64>::new());
        drop(tx);
        let r = store.read().expect("read");
        assert_eq!(r.mv_find_by_value("person", "displayName", &Value::from("grace"), true).expect("find"), vec![g], "a reader reads");
    }

    #[test]
    fn a_value_held_back_is_found_only_as_an_alive_object_of_its_type() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let a = tx.mv_create("person", &attrs("Ada")).expect("created");
        let find = |t: &str| tx.mv_find_by_value(t, "displayName", &Value::from("ada"), true).expect("find");
        assert_eq!(find("person"), vec![a]);
        assert_eq!(find("group"), Vec::<i64>::new(), "another type");
        let b = tx.mv_create("person", &attrs("ADA")).expect("created");
        assert_eq!(find("person"), vec![a, b], "both, in order");
        tx.mv_mark_deleted(a).expect("deleted");
        assert_eq!(find("person"), vec![b], "a deleted object is not found");
        // Changed before it was written: neither the old value nor a twin of it stays.
        changed(&tx, b, &attrs("Grace"), "displayName", Value::from("ADA"));
        assert_eq!(find("person"), Vec::<i64>::new());
        tx.commit().expect("commit");
        assert_eq!(entries(&store), format!("ada {a}, grace {b}"));
    }

    /// Winners saved for an object that is not there index nothing.
    #[test]
    fn an_object_that_is_not_there_gets_no_index_entries() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let a = tx.mv_create("person", &attrs("Ada")).expect("created");
        changed(&tx, a + 1, &attrs("Grace"), "displayName", Value::from("Ada"));
        tx.commit().expect("commit");
        assert_eq!(entries(&store), format!("ada {a}"));
    }

    fn refs(store: &Store) -> String {
        text_of(
            store,
            "SELECT coalesce(group_concat(mv_id || ' ' || attr || ' ' || target, ', '), '') FROM (SELECT * FROM mv_ref ORDER BY mv_id, target)",
        )
    }

    fn manager(of: i64) -> BTreeMap<String, MvAttr> {
        let a = MvAttr { values: vec![Value::Ref(of)], rule: "r".into(), cs: 1, precedence: 100 };
        BTreeMap::from([("manager".to_string(), a)])
    }

    #[test]
    fn references_held_back_are_found_written_at_commit_and_dropped_with_a_rollback() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let boss = tx.mv_create("person", &attrs("Boss")).expect("created");
        tx.commit().expect("commit");
        // Rolled back: what it held back is not written by the next transaction (whose object
        // SQLite gives the same id).
        let tx = store.write().expect("write");
        let gone = tx.mv_create("person", &manager(boss)).expect("created");
        drop(tx);
        let tx = store.write().expect("write");
        assert_eq!(tx.mv_create("person", &attrs("Ada")).expect("created"), gone);
        tx.commit().expect("commit");
        assert_eq!(refs(&store), "", "rolled back");
        let tx = store.write().expect("write");
        let a = tx.mv_create("person", &manager(boss)).expect("created");
        let b = tx.mv_create("person", &manager(boss)).expect("created");
        assert_eq!(tx.mv_referrers(boss).expect("referrers"), vec![(a, "manager".to_string()), (b, "manager".to_string())]);
        assert_eq!(tx.mv_find_by_value("person", "manager", &Value::Ref(boss), false).expect("find"), vec![a, b]);
        changed(&tx, b, &manager(a), "manager", Value::Ref(boss));
        // Held back, then changed in the same transaction: the entry held back goes.
        let c = tx.mv_create("person", &manager(a)).expect("created");
        changed(&tx, c, &manager(boss), "manager", Value::Ref(a));
        tx.commit().expect("commit");
        assert_eq!(refs(&store), format!("{a} manager {boss}, {b} manager {a}, {c} manager {boss}"));
    }
}
