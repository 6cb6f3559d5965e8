//! Dirty marks (outbound sync is to look at the object) of metaverse objects projected or
//! given new winners in this transaction, held back. A full sync projects every object and its
//! outbound sync, in the same transaction, looks at every one and clears its mark: written
//! into each new row, the mark and its clearing rewrote each row a second time (at 1,000,000
//! people, its page long out of the cache: read back and written to the log again); a delta
//! sync does the same to each object it changes. Such an object's row is written clean and its
//! mark held here; a mark still held when the transaction commits, or once too many are held,
//! is written then; a transaction that rolls back drops them with it.
//!
//! A held object's row says clean: a statement that marks the row itself forgets it here.
use idflow_core::fast_hash::FastSet;
use rusqlite::Connection;
use std::cell::RefCell;

/// Marks held at most (about 40 MB): a full sync of 1,050,000 objects holds every one. Tests
/// hold a few, so that the store's tests take the path that writes them early too.
const MOST_HELD: usize = if cfg!(test) { 5 } else { 1 << 21 };

#[derive(Default)]
pub(crate) struct HeldDirty(RefCell<FastSet<i64>>);

impl HeldDirty {
    /// Object `id`, whose row was just written clean, is dirty.
    pub(crate) fn hold(&self, c: &Connection, id: i64) -> rusqlite::Result<()> {
        let full = {
            let mut held = self.0.borrow_mut();
            held.insert(id);
            held.len() >= MOST_HELD
        };
        if full {
            self.write(c)?;
        }
        Ok(())
    }

    /// Object `id`'s row was marked itself (or is gone).
    pub(crate) fn forget(&self, id: i64) {
        self.0.borrow_mut().remove(&id);
    }

    /// Whether object `id`'s mark is held here.
    pub(crate) fn is_held(&self, id: i64) -> bool {
        self.0.borrow().contains(&id)
    }

    /// `ids` less the held ones, whose marks are cleared: what is left to clear in the rows
    /// (`ids` themselves, not a copy, when none is held: a full sync of objects in step).
    pub(crate) fn clear<'i>(&self, ids: &'i [i64]) -> std::borrow::Cow<'i, [i64]> {
        let mut held = self.0.borrow_mut();
        if held.is_empty() {
            return ids.into();
        }
        ids.iter().copied().filter(|id| !held.remove(id)).collect::<Vec<_>>().into()
    }

    /// The objects marked here.
    pub(crate) fn held(&self) -> Vec<i64> {
        self.0.borrow().iter().copied().collect()
    }

    /// Writes every mark held into its row (before a commit). They stay held until all are
    /// written: a write that fails part way loses none.
    pub(crate) fn write(&self, c: &Connection) -> rusqlite::Result<()> {
        let mut ids = self.held();
        ids.sort_unstable();
        crate::mv::set_dirty(c, &ids, true)?;
        self.0.borrow_mut().clear();
        Ok(())
    }

    /// The transaction rolled back: its marks go with it.
    pub(crate) fn drop_held(&self) {
        *self.0.borrow_mut() = FastSet::default();
    }
}

#[cfg(test)]
mod tests {
    use crate::{MvAttr, ReadOps, Store, WriteOps};
    use std::collections::BTreeMap;

    fn person() -> BTreeMap<String, MvAttr> {
        let a = MvAttr { values: vec!["Ada".into()], rule: "r".into(), cs: 1, precedence: 100 };
        BTreeMap::from([("displayName".to_string(), a)])
    }

    /// The rows marked dirty, as the database holds them.
    fn in_rows(store: &Store) -> String {
        let tx = store.read().expect("read");
        let sql = "SELECT coalesce(group_concat(id, ' '), '') FROM (SELECT id FROM mv_object WHERE dirty=1 ORDER BY id)";
        crate::ops::on(&tx, |c| c.query_row(sql, [], |r| r.get(0))).expect("query")
    }

    #[test]
    fn a_projected_object_is_dirty_until_cleared_written_at_commit_and_dropped_with_a_rollback() {
        let store = Store::in_memory().expect("store");
        let create = |tx: &dyn WriteOps| tx.mv_create("person", &person()).expect("created");
        // Rolled back: its mark is not written by the next transaction (same ids).
        let tx = store.write().expect("write");
        let a = create(&tx);
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![a]);
        drop(tx);
        let tx = store.write().expect("write");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), Vec::<i64>::new());
        let (a, b, c, d) = (create(&tx), create(&tx), create(&tx), create(&tx));
        // Held marks: marked again, deleted, restored, given new winners: still dirty, once.
        tx.mv_mark_dirty(b).expect("marked");
        tx.mv_mark_deleted(c).expect("deleted");
        tx.mv_mark_dirty(c).expect("marked");
        tx.mv_restore(d).expect("restored");
        let attrs = person();
        tx.mv_save_contributed(a, &[], Some(crate::Winners { attrs: &attrs, changed: &[], old: &[] })).expect("saved");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![a, b, c, d]);
        // Cleared: held or in its row (c's, marked by its deletion).
        tx.mv_clear_dirty(&[a, c]).expect("cleared");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![b, d]);
        tx.commit().expect("commit");
        assert_eq!(in_rows(&store), format!("{b} {d}"));
        // More than are held at most: written early, still dirty, cleared the same.
        let tx = store.write().expect("write");
        let more: Vec<i64> = (0..6).map(|_| create(&tx)).collect();
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), [vec![b, d], more.clone()].concat());
        tx.mv_clear_dirty(&[vec![b, d], more].concat()).expect("cleared");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), Vec::<i64>::new());
        tx.mv_purge(a).expect("purged");
        tx.commit().expect("commit");
        assert_eq!(in_rows(&store), "");
    }

    /// An object in the database given new winners is dirty with its row left clean: the clear
    /// writes nothing, and a mark not cleared is written at commit.
    #[test]
    fn an_object_given_new_winners_is_dirty_without_its_row_written_twice() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let (a, b) = (tx.mv_create("person", &person()).expect("a"), tx.mv_create("person", &person()).expect("b"));
        tx.mv_clear_dirty(&[a, b]).expect("cleared");
        tx.commit().expect("commit");
        let tx = store.write().expect("write");
        let attrs = person();
        for id in [a, b] {
            tx.mv_save_contributed(id, &[], Some(crate::Winners { attrs: &attrs, changed: &[], old: &[] })).expect("saved");
        }
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![a, b]);
        let row = |id: i64| crate::ops::on(&tx, |c| c.query_row("SELECT dirty FROM mv_object WHERE id=?1", [id], |r| r.get::<_, i64>(0)));
        assert_eq!(row(a).expect("row"), 0, "the row says clean while its mark is held");
        let writes = || crate::ops::on(&tx, |c| Ok(c.total_changes())).expect("changes");
        let before = writes();
        tx.mv_clear_dirty(&[a]).expect("cleared");
        assert_eq!(writes(), before, "cleared without writing the row");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![b]);
        tx.commit().expect("commit");
        assert_eq!(in_rows(&store), format!("{b}"));
    }
}
