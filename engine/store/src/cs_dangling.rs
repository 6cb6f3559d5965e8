//! References to DNs not linked yet (`cs_dangling`), and what a write transaction knows of
//! them: the largest object id that has any. A sync records every object's dangling
//! references, mostly none, and an object a new import added (a larger id than any object
//! recorded before it) has none to remove: a full sync of a new directory asks nothing for it
//! instead of one DELETE per object.
use crate::prepared::{with, Prepared};
use rusqlite::{params, Connection};
use std::cell::Cell;

/// The largest object id with dangling references: unknown (`None`) until a write transaction
/// first needs it, forgotten when the next one begins (another connection, or a rollback, may
/// have changed the table since). Never below the table's: rows removed leave it
/// where it is, so what it says is safe, at worst a statement that removes nothing.
#[derive(Default)]
pub(crate) struct Dangling(Cell<Option<Option<i64>>>);

impl Dangling {
    pub(crate) fn forget(&self) {
        self.0.set(None);
    }

    /// Whether object `cs_id` may have dangling references recorded.
    fn may_have(&self, c: &Connection, cs_id: i64) -> rusqlite::Result<bool> {
        let most = match self.0.get() {
            Some(most) => most,
            None => {
                let most = c.query_row("SELECT max(cs_id) FROM cs_dangling", [], |r| r.get::<_, Option<i64>>(0))?;
                self.0.set(Some(most));
                most
            }
        };
        Ok(most.is_some_and(|m| cs_id <= m))
    }

    fn recorded(&self, cs_id: i64) {
        if let Some(most) = self.0.get() {
            self.0.set(Some(Some(most.map_or(cs_id, |m| m.max(cs_id)))));
        }
    }
}

/// Records that `cs_id` references the DNs `dns` (normalized), not linked yet, so that it is
/// looked at again when one arrives; instead of what it recorded before.
pub(crate) fn set(c: &Connection, known: &Dangling, cs_id: i64, dns: &[String]) -> rusqlite::Result<()> {
    if known.may_have(c, cs_id)? {
        c.prepare_cached("DELETE FROM cs_dangling WHERE cs_id=?1")?.execute([cs_id])?;
    }
    if dns.is_empty() {
        return Ok(());
    }
    let mut st = c.prepare_cached("INSERT OR IGNORE INTO cs_dangling(cs_id, dn_norm) VALUES (?1, ?2)")?;
    for d in dns {
        st.execute(params![cs_id, d])?;
    }
    known.recorded(cs_id);
    Ok(())
}

/// Objects waiting for `dn_norm` to appear.
pub(crate) fn waiting_for(c: &dyn Prepared, dn_norm: &str) -> rusqlite::Result<Vec<i64>> {
    with(c, "SELECT cs_id FROM cs_dangling WHERE dn_norm=?1", |st| st.query_map([dn_norm], |r| r.get(0))?.collect())
}

#[cfg(test)]
mod tests {
    use super::{set, waiting_for, Dangling};

    fn db() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch("CREATE TABLE cs_dangling (cs_id INTEGER NOT NULL, dn_norm TEXT NOT NULL, PRIMARY KEY (dn_norm, cs_id));")
            .expect("table");
        c
    }

    #[test]
    fn references_recorded_are_replaced_and_removed_whatever_the_transaction_knows() {
        let c = db();
        let known = Dangling::default();
        set(&c, &known, 5, &["a".into(), "b".into()]).expect("set");
        set(&c, &known, 3, &["a".into()]).expect("set");
        assert_eq!(waiting_for(&c, "a").expect("read"), vec![3, 5]);
        // Object 3 (below the largest recorded) has its reference removed.
        set(&c, &known, 3, &[]).expect("set");
        assert_eq!(waiting_for(&c, "a").expect("read"), vec![5]);
        // Rows another connection wrote: found once what was known is forgotten.
        c.execute("INSERT INTO cs_dangling VALUES (9, 'c')", []).expect("insert");
        known.forget();
        set(&c, &known, 9, &[]).expect("set");
        assert_eq!(waiting_for(&c, "c").expect("read"), Vec::<i64>::new());
        // Replaced, not added to.
        set(&c, &known, 5, &["c".into()]).expect("set");
        assert_eq!((waiting_for(&c, "b").expect("read"), waiting_for(&c, "c").expect("read")), (vec![], vec![5]));
    }

    #[test]
    fn an_object_above_every_one_recorded_asks_nothing() {
        let c = db();
        let known = Dangling::default();
        set(&c, &known, 7, &["a".into()]).expect("set");
        assert!(known.may_have(&c, 7).expect("known"));
        assert!(!known.may_have(&c, 8).expect("known"));
        set(&c, &known, 8, &[]).expect("set");
        assert_eq!(known.0.get(), Some(Some(7)));
        let empty = db();
        let fresh = Dangling::default();
        assert!(!fresh.may_have(&empty, 1).expect("known"), "an empty table");
    }
}
