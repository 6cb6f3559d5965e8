//! Updates that leave an index alone when its columns keep their values. SQLite rewrites the
//! entries of every index on a column an UPDATE sets, whether the value changed or not
//! (setting six indexed columns of 307,500 target objects to their own values took 1.5 s;
//! setting two columns no index holds, 0.15 s), and each rewritten entry is a page written at
//! the commit. An object saved after an export or an import mostly keeps its anchor, DN,
//! connector and link: reading the row's indexed columns first (one lookup by id, the page the
//! update reads anyway) costs less than the entries it spares.
use crate::prepared::{with, Prepared};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Result, ToSql};
use std::sync::OnceLock;

/// Indexed columns an [`Update`] may have at most (its texts are kept for each set of them).
const MOST_INDEXED: usize = 9;

/// An update's shape: its table, the columns it always sets, and the indexed ones it sets when
/// their values change. Declared once (a `static`), it keeps the texts of its statements, made
/// the first time each is needed, so that an update run for every object of a stage finds its
/// statements prepared by their text's address (prepared.rs) and makes no text.
pub(crate) struct Update {
    table: &'static str,
    always: &'static [&'static str],
    indexed: &'static [&'static str],
    /// The read of the indexed columns.
    select: OnceLock<String>,
    /// The update of the columns always set and of the indexed ones whose bit is set.
    updates: [OnceLock<String>; 1 << MOST_INDEXED],
}

impl Update {
    pub(crate) const fn new(table: &'static str, always: &'static [&'static str], indexed: &'static [&'static str]) -> Update {
        assert!(indexed.len() <= MOST_INDEXED, "an update's indexed columns are at most MOST_INDEXED");
        Update { table, always, indexed, select: OnceLock::new(), updates: [const { OnceLock::new() }; 1 << MOST_INDEXED] }
    }

    fn select(&'static self) -> &'static str {
        self.select.get_or_init(|| format!("SELECT {} FROM {} WHERE id=?1", self.indexed.join(", "), self.table))
    }

    /// The update of the columns always set and the indexed ones in `changed` (a bit each).
    fn update(&'static self, changed: usize) -> &'static str {
        self.updates[changed].get_or_init(|| {
            let names = self.always.iter().chain(self.indexed.iter().enumerate().filter(|(i, _)| changed & (1 << i) != 0).map(|(_, n)| n));
            let set: Vec<String> = names.enumerate().map(|(i, name)| format!("{name}=?{}", i + 2)).collect();
            format!("UPDATE {} SET {} WHERE id=?1", self.table, set.join(", "))
        })
    }
}

/// A column and the value to set it to.
pub(crate) type Set<'a> = (&'static str, &'a dyn ToSql);

/// Sets, in row `id` of `u`'s table, each column of `always`, and each of `indexed` whose stored
/// value is not the same: the columns `u` declares, in its order (any other is an error, and
/// nothing is written). Nothing is written when there is no such row; returns whether there is
/// one. Each set of changed columns is a statement of its own; in practice a handful occur (an
/// import changes the DN or the presence, an export the presence and pending export).
pub(crate) fn update(c: &dyn Prepared, u: &'static Update, id: i64, always: &[Set<'_>], indexed: &[Set<'_>]) -> Result<bool> {
    let names = |sets: &[Set<'_>]| sets.iter().map(|s| s.0).collect::<Vec<_>>().join(", ");
    if !always.iter().map(|s| s.0).eq(u.always.iter().copied()) || !indexed.iter().map(|s| s.0).eq(u.indexed.iter().copied()) {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "an update of {} given {} and {}, not the columns it declares",
            u.table,
            names(always),
            names(indexed)
        )));
    }
    let mut changed = 0;
    if !indexed.is_empty() {
        let there = with(c, u.select(), |st| {
            let mut rows = st.query([id])?;
            let Some(row) = rows.next()? else { return Ok(false) };
            for (i, (_, v)) in indexed.iter().enumerate() {
                if !same(row.get_ref(i)?, &v.to_sql()?) {
                    changed |= 1 << i;
                }
            }
            Ok(true)
        })?;
        if !there {
            return Ok(false);
        }
    }
    if always.is_empty() && changed == 0 {
        return Ok(true);
    }
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(always.len() + indexed.len() + 1);
    params.push(&id);
    params.extend(always.iter().map(|s| s.1));
    params.extend(indexed.iter().enumerate().filter(|(i, _)| changed & (1 << i) != 0).map(|(_, s)| s.1));
    let updated = with(c, u.update(changed), |st| st.execute(params.as_slice()))?;
    Ok(updated > 0)
}

/// Whether a stored value is exactly the one a parameter binds (same type, same bytes); a
/// value the column's affinity would convert counts as changed, and is written.
fn same(stored: ValueRef<'_>, new: &ToSqlOutput<'_>) -> bool {
    match new {
        ToSqlOutput::Borrowed(v) => stored == *v,
        ToSqlOutput::Owned(v) => stored == ValueRef::from(v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{update, Update};
    use rusqlite::Connection;

    static NOTE_AB: Update = Update::new("t", &["note"], &["a", "b"]);
    static AB: Update = Update::new("t", &[], &["a", "b"]);
    static A: Update = Update::new("t", &[], &["a"]);
    static NOTE_A: Update = Update::new("t", &["note"], &["a"]);
    static NOTE: Update = Update::new("t", &["note"], &[]);

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("in memory");
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, note TEXT);
             CREATE INDEX t_ab ON t(a, b);
             INSERT INTO t VALUES (1, 'x', 1, 'first');",
        )
        .expect("schema");
        c
    }

    fn row(c: &Connection) -> (Option<String>, i64, String) {
        c.query_row("SELECT a, b, note FROM t WHERE id=1", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("row")
    }

    #[test]
    fn changed_and_unchanged_columns_end_as_set() {
        let c = db();
        update(&c, &NOTE_AB, 1, &[("note", &"second")], &[("a", &"x"), ("b", &2i64)]).expect("update");
        assert_eq!(row(&c), (Some("x".into()), 2, "second".into()));
        update(&c, &AB, 1, &[], &[("a", &None::<String>), ("b", &2i64)]).expect("update");
        assert_eq!(row(&c), (None, 2, "second".into()));
        // No such row: nothing written, no error, and said.
        assert!(!update(&c, &NOTE_A, 9, &[("note", &"x")], &[("a", &"y")]).expect("no row"));
        assert!(!update(&c, &NOTE, 9, &[("note", &"x")], &[]).expect("no row"));
        assert!(update(&c, &A, 1, &[], &[("a", &None::<String>)]).expect("nothing to change"), "the row is there");
        assert_eq!(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).expect("count"), 1);
    }

    #[test]
    fn columns_other_than_the_declared_ones_are_an_error_and_nothing_is_written() {
        let c = db();
        let before = c.total_changes();
        let e = update(&c, &AB, 1, &[], &[("b", &2i64), ("a", &"y")]).expect_err("swapped");
        assert!(e.to_string().contains("an update of t given  and b, a, not the columns it declares"), "{e}");
        assert!(update(&c, &NOTE_A, 1, &[("note", &"x")], &[]).is_err(), "one missing");
        assert_eq!(c.total_changes(), before);
    }

    #[test]
    fn an_unchanged_column_is_not_written_and_a_value_of_another_type_is() {
        let c = db();
        update(&c, &A, 1, &[], &[("a", &"1")]).expect("update");
        let before = c.total_changes();
        // The same text: nothing to write.
        update(&c, &AB, 1, &[], &[("a", &"1"), ("b", &1i64)]).expect("update");
        assert_eq!(c.total_changes(), before);
        // The integer 1 is not the text '1' as stored: written (the column keeps it as text).
        update(&c, &A, 1, &[], &[("a", &1i64)]).expect("update");
        assert_eq!(c.total_changes(), before + 1);
        assert_eq!(c.query_row("SELECT typeof(a) FROM t WHERE id=1", [], |r| r.get::<_, String>(0)).expect("type"), "text");
    }
}
