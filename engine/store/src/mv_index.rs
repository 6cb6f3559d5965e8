//! The value index (`mv_value`), written behind. A full sync projects objects in the order a
//! directory lists them, so their values (names, mail addresses) arrive in no order: inserted
//! one object at a time, each lands on another page of the index. Held back and inserted
//! sorted, they land together, page after page.
//!
//! Nothing can see an entry that is held back: a lookup, search or removal of an attribute's
//! values first writes that attribute's entries, and for the rest of the transaction its entries
//! are written at once (a join looks its attribute up for every object: holding it back would
//! gain nothing).
//! The rest are written before the transaction commits, or when too many are held; a
//! transaction that rolls back drops them with it.
use rusqlite::Connection;
use std::cell::RefCell;

/// Entries held back at most: about 20 MB.
const MOST_HELD: usize = 1 << 18;

#[derive(Default)]
pub(crate) struct Deferred(RefCell<State>);

#[derive(Default)]
struct State {
    /// Attribute names, by the index entries use.
    names: Vec<String>,
    /// Whether each name was looked up, searched or removed in this transaction: written at once.
    asked: Vec<bool>,
    held: Vec<(u32, String, i64)>,
}

impl State {
    fn name_index(&mut self, attr: &str) -> u32 {
        match self.names.iter().position(|n| n == attr) {
            Some(i) => i as u32,
            None => {
                self.names.push(attr.to_string());
                self.asked.push(false);
                (self.names.len() - 1) as u32
            }
        }
    }
}

impl Deferred {
    /// Indexes `(attribute, key)` of object `id`: held back, or written at once when the
    /// attribute has been asked for.
    pub(crate) fn add(&self, c: &Connection, entries: Vec<(&str, String)>, id: i64) -> rusqlite::Result<()> {
        let mut now = Vec::new();
        let full = {
            let mut st = self.0.borrow_mut();
            for (a, key) in entries {
                let i = st.name_index(a);
                if st.asked[i as usize] {
                    now.push((a, key));
                } else {
                    st.held.push((i, key, id));
                }
            }
            st.held.len() >= MOST_HELD
        };
        insert(c, &now.iter().map(|(a, k)| (*a, k.as_str(), id)).collect::<Vec<_>>())?;
        if full {
            self.flush(c)?;
        }
        Ok(())
    }

    /// `attrs` are about to be read or removed: their entries held back are written, and from
    /// now on written at once.
    pub(crate) fn asked(&self, c: &Connection, attrs: &[&str]) -> rusqlite::Result<()> {
        let out = {
            let mut st = self.0.borrow_mut();
            let mut wanted = Vec::new();
            for a in attrs {
                let i = st.name_index(a);
                if !st.asked[i as usize] {
                    st.asked[i as usize] = true;
                    wanted.push(i);
                }
            }
            if wanted.is_empty() {
                return Ok(());
            }
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.held).into_iter().partition(|e| wanted.contains(&e.0));
            st.held = keep;
            out
        };
        self.write(c, out)
    }

    /// Writes every entry held back (before a commit).
    pub(crate) fn flush(&self, c: &Connection) -> rusqlite::Result<()> {
        let out = std::mem::take(&mut self.0.borrow_mut().held);
        self.write(c, out)
    }

    /// The transaction rolled back: what it held back goes with it.
    pub(crate) fn drop_held(&self) {
        self.0.borrow_mut().held = Vec::new();
    }

    /// A write transaction begins: each stage learns again which attributes it looks up (a
    /// long-running service's first search does not stop holding back for good).
    pub(crate) fn begin_write(&self) {
        self.0.borrow_mut().asked.iter_mut().for_each(|a| *a = false);
    }

    fn write(&self, c: &Connection, mut out: Vec<(u32, String, i64)>) -> rusqlite::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let names = self.0.borrow().names.clone();
        out.sort_unstable_by(|a, b| (&names[a.0 as usize], &a.1, a.2).cmp(&(&names[b.0 as usize], &b.1, b.2)));
        let rows: Vec<(&str, &str, i64)> = out.iter().map(|(i, k, id)| (names[*i as usize].as_str(), k.as_str(), *id)).collect();
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

#[cfg(test)]
mod tests {
    use crate::{MvAttr, ReadOps, Store, WriteOps};
    use idflow_core::Value;
    use std::collections::BTreeMap;

    fn attrs(name: &str) -> BTreeMap<String, MvAttr> {
        let a = MvAttr { values: vec![Value::from(name)], rule: "r".into(), cs: 1, precedence: 100 };
        BTreeMap::from([("displayName".to_string(), a)])
    }

    fn entries(store: &Store) -> String {
        let tx = store.read().expect("read");
        crate::ops::on(&tx, |c| {
            c.query_row(
                "SELECT coalesce(group_concat(key || ' ' || mv_id, ', '), '') FROM (SELECT * FROM mv_value ORDER BY key)",
                [],
                |r| r.get(0),
            )
        })
        .expect("entries")
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
        tx.mv_save_attrs(c, &attrs("Claudia"), &["displayName".into()], &[("displayName".into(), vec![Value::from("Claude")])])
            .expect("saved");
        tx.commit().expect("commit");
        assert_eq!(entries(&store), format!("barbara {b}, claudia {c}, edsger {e}, grace 1"));
    }
}
