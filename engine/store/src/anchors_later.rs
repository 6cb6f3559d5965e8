//! A first import into an empty database indexes its objects' anchors once, as its transaction
//! commits, instead of entry by entry. Directories hand out anchors in no order (random UUIDs):
//! each insert into the unique index by anchor lands on another page, and at 1,000,000 objects
//! that costs 2.3 s against 1.3 s to build the index from the rows at the end.
//!
//! Until then the objects written with an anchor are remembered here by a hash of it, and a
//! lookup by anchor reads those candidates by id (a hash two anchors share costs a read, never
//! a wrong answer). The index is made before the commit (a duplicate anchor fails it, as an
//! insert would have); a transaction that rolls back takes the dropped index back with it.
use idflow_core::fast_hash::{fixed_hash, FastMap};
use rusqlite::{Connection, OptionalExtension};
use std::cell::RefCell;

/// The index, as the schema makes it.
pub(crate) const CREATE_INDEX: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS cs_anchor ON cs_object(connector, anchor) WHERE anchor IS NOT NULL";

/// `None`: the index is there. Else the objects written with each anchor since it was dropped.
#[derive(Default)]
pub(crate) struct AnchorsLater(RefCell<Option<Written>>);

/// By a hash of the connector and anchor: the first object written with it, and (rarely) the
/// others, when two anchors share a hash or an object is written with another anchor.
#[derive(Default)]
struct Written {
    first: FastMap<u64, i64>,
    more: FastMap<u64, Vec<i64>>,
}

fn key(connector: &str, anchor: &str) -> u64 {
    fixed_hash(anchor) ^ fixed_hash(connector).rotate_left(17)
}

impl AnchorsLater {
    /// Drops the index until the commit when no object is kept at all; whether it did.
    pub(crate) fn start(&self, c: &Connection) -> rusqlite::Result<bool> {
        if self.0.borrow().is_some() {
            return Ok(true);
        }
        if c.query_row("SELECT EXISTS(SELECT 1 FROM cs_object)", [], |r| r.get::<_, bool>(0))? {
            return Ok(false);
        }
        c.execute_batch("DROP INDEX IF EXISTS cs_anchor")?;
        *self.0.borrow_mut() = Some(Written::default());
        Ok(true)
    }

    /// Object `id` of `connector` was written with `anchor`.
    pub(crate) fn wrote(&self, connector: &str, anchor: Option<&str>, id: i64) {
        let mut held = self.0.borrow_mut();
        let (Some(a), Some(w)) = (anchor, held.as_mut()) else { return };
        let k = key(connector, a);
        match w.first.entry(k) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(e) if *e.get() == id => {}
            std::collections::hash_map::Entry::Occupied(_) => {
                let more = w.more.entry(k).or_default();
                if !more.contains(&id) {
                    more.push(id);
                }
            }
        }
    }

    /// While the index is dropped: the object of `connector` with `anchor`, if any (`Some`);
    /// `None` when the index is there (look it up with SQL).
    pub(crate) fn find(&self, c: &Connection, connector: &str, anchor: &str) -> rusqlite::Result<Option<Option<i64>>> {
        let candidates: Vec<i64> = match self.0.borrow().as_ref() {
            None => return Ok(None),
            Some(w) => {
                let k = key(connector, anchor);
                w.first.get(&k).into_iter().chain(w.more.get(&k).into_iter().flatten()).copied().collect()
            }
        };
        let mut st = c.prepare_cached("SELECT anchor FROM cs_object WHERE id=?1 AND connector=?2")?;
        for id in candidates {
            let stored = st.query_row(rusqlite::params![id, connector], |r| crate::anchor::read(r, 0)).optional()?.flatten();
            if stored.as_deref() == Some(anchor) {
                return Ok(Some(Some(id)));
            }
        }
        Ok(Some(None))
    }

    /// Makes the index again (before the commit), if it was dropped.
    pub(crate) fn finish(&self, c: &Connection) -> rusqlite::Result<()> {
        if self.0.borrow().is_none() {
            return Ok(());
        }
        c.execute_batch(CREATE_INDEX)?;
        *self.0.borrow_mut() = None;
        Ok(())
    }

    /// The transaction rolled back: the index is there again.
    pub(crate) fn rolled_back(&self) {
        *self.0.borrow_mut() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::CREATE_INDEX;
    use crate::{CsKey, CsObject, ReadOps, Store, WriteOps};

    fn object(connector: &str, anchor: &str) -> CsObject {
        let mut o = CsObject::new(connector, "person");
        o.anchor = Some(anchor.to_string());
        o.dn = Some(format!("uid={anchor},o=corp"));
        o.present = true;
        o
    }

    fn has_index(store: &Store) -> bool {
        store.conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE name = 'cs_anchor')", [], |r| r.get(0)).expect("schema")
    }

    const UUID: &str = "79dde6e5-fd29-4054-85de-ce66d1ce4e5f";

    #[test]
    fn a_first_import_finds_every_anchor_it_wrote_and_indexes_them_at_the_commit() {
        assert!(crate::schema::SCHEMA.contains(&format!("{CREATE_INDEX};")), "the schema makes the same index");
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        assert!(tx.cs_index_anchors_at_commit().expect("dropped"));
        let upper = UUID.to_uppercase();
        let mut ids = Vec::new();
        for (c, a) in [("corp", UUID), ("corp", upper.as_str()), ("other", UUID), ("corp", "E1")] {
            ids.push(tx.cs_save(&object(c, a)).expect("saved"));
        }
        for (i, (c, a)) in [("corp", UUID), ("corp", upper.as_str()), ("other", UUID), ("corp", "E1")].into_iter().enumerate() {
            assert_eq!(tx.cs_by_anchor(c, a).expect("read").map(|o| o.id), Some(ids[i]), "{c} {a}");
            assert_eq!(tx.cs_id_by_anchor(c, a).expect("read"), Some(ids[i]), "{c} {a}");
            let named = tx.cs_name_of(CsKey::Anchor { connector: c, anchor: a }).expect("named");
            assert!(named.is_some_and(|n| n.contains(&a.to_string())), "{c} {a}");
        }
        assert!(tx.cs_by_anchor("corp", "E2").expect("read").is_none());
        assert!(tx.cs_id_by_anchor("corp", "E2").expect("read").is_none());
        assert!(tx.cs_name_of(CsKey::Anchor { connector: "corp", anchor: "E2" }).expect("named").is_none());
        // An anchor changed: found by the new one only.
        let mut o = tx.cs_get(ids[3]).expect("read").expect("there");
        o.anchor = Some("E3".into());
        tx.cs_save(&o).expect("saved");
        assert!(tx.cs_by_anchor("corp", "E1").expect("read").is_none());
        assert_eq!(tx.cs_by_anchor("corp", "E3").expect("read").map(|o| o.id), Some(ids[3]));
        // Another object takes the anchor it left: found, past the first written with it.
        let taker = tx.cs_save(&object("corp", "E1")).expect("saved");
        assert_eq!(tx.cs_by_anchor("corp", "E1").expect("read").map(|o| o.id), Some(taker));
        tx.commit().expect("commit");
        assert!(has_index(&store));
        let r = store.read().expect("read");
        assert_eq!(r.cs_id_by_anchor("corp", "E1").expect("read"), Some(taker), "from the index");
        assert!(r.cs_id_by_anchor("corp", "E2").expect("read").is_none());
        drop(r);
        // Objects kept: an import indexes as it goes.
        let tx = store.write().expect("write");
        assert!(!tx.cs_index_anchors_at_commit().expect("not dropped"));
        assert_eq!(tx.cs_by_anchor("corp", "E3").expect("read").map(|o| o.id), Some(ids[3]));
    }

    #[test]
    fn a_duplicate_anchor_fails_the_commit_and_a_rollback_keeps_the_index() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        assert!(tx.cs_index_anchors_at_commit().expect("dropped"));
        tx.cs_save(&object("corp", UUID)).expect("saved");
        drop(tx);
        assert!(has_index(&store), "rolled back");
        let tx = store.write().expect("write");
        assert!(tx.cs_index_anchors_at_commit().expect("dropped"));
        tx.cs_save(&object("corp", "E1")).expect("saved");
        let mut twin = object("corp", "E1");
        twin.dn = Some("uid=twin,o=corp".into());
        tx.cs_save(&twin).expect("saved unchecked");
        assert!(tx.commit().expect_err("unique").to_string().contains("UNIQUE"));
        assert!(has_index(&store));
        assert!(!store.read().expect("read").cs_has_any("corp").expect("count"), "nothing kept");
        // The next transaction indexes as it goes again.
        let tx = store.write().expect("write");
        tx.cs_save(&object("corp", "E1")).expect("saved");
        assert!(tx.cs_save(&object("corp", "E1")).is_err(), "the index refuses a twin at once");
    }

    /// An import that went without the index makes it as it ends: the stages after it in the
    /// same transaction (a plan's) read a connector's objects through it, not the whole table.
    #[test]
    fn the_index_is_made_when_the_import_ends_before_the_commit() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        assert!(tx.cs_index_anchors_at_commit().expect("dropped"));
        let id = tx.cs_save(&object("corp", "E1")).expect("saved");
        tx.cs_index_anchors_now().expect("made");
        let plan: String = crate::ops::on(&tx, |c| {
            c.query_row("EXPLAIN QUERY PLAN SELECT id FROM cs_object WHERE connector='corp' AND anchor IS NOT NULL", [], |r| r.get(3))
        })
        .expect("plan");
        assert!(plan.contains("cs_anchor"), "{plan}");
        assert_eq!(tx.cs_id_by_anchor("corp", "E1").expect("read"), Some(id));
        assert!(tx.cs_save(&object("corp", "E1")).is_err(), "the index refuses a twin at once");
        tx.cs_index_anchors_now().expect("made once, then nothing to do");
        drop(tx);
        assert!(has_index(&store), "rolled back");
    }
}
