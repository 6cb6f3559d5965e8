//! Updates that leave an index alone when its columns keep their values. SQLite rewrites the
//! entries of every index on a column an UPDATE sets, whether the value changed or not
//! (setting six indexed columns of 307,500 target objects to their own values took 1.5 s;
//! setting two columns no index holds, 0.15 s), and each rewritten entry is a page written at
//! the commit. An object saved after an export or an import mostly keeps its anchor, DN,
//! connector and link: reading the row's indexed columns first (one lookup by id, the page the
//! update reads anyway) costs less than the entries it spares.
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Result, ToSql};

/// A column and the value to set it to.
pub(crate) type Set<'a> = (&'static str, &'a dyn ToSql);

/// Sets, in row `id` of `table`, each column of `always`, and each of `indexed` whose stored
/// value is not the same. Nothing is written when there is no such row; returns whether there
/// is one. Each set of changed columns is a statement of its own in the connection's cache; in
/// practice a handful occur (an import changes the DN or the presence, an export the presence
/// and pending export).
pub(crate) fn update(c: &Connection, table: &str, id: i64, always: &[Set<'_>], indexed: &[Set<'_>]) -> Result<bool> {
    let mut set: Vec<Set<'_>> = always.to_vec();
    // The statements' text is built in one buffer (an export updates every object it sends).
    let mut sql = String::with_capacity(160);
    if !indexed.is_empty() {
        sql.push_str("SELECT ");
        list(&mut sql, indexed.iter().map(|s| s.0), |sql, name, _| sql.push_str(name));
        sql.push_str(" FROM ");
        sql.push_str(table);
        sql.push_str(" WHERE id=?1");
        let mut st = c.prepare_cached(&sql)?;
        let mut rows = st.query([id])?;
        let Some(row) = rows.next()? else { return Ok(false) };
        for (i, s) in indexed.iter().enumerate() {
            if !same(row.get_ref(i)?, &s.1.to_sql()?) {
                set.push(*s);
            }
        }
    }
    if set.is_empty() {
        return Ok(true);
    }
    sql.clear();
    sql.push_str("UPDATE ");
    sql.push_str(table);
    sql.push_str(" SET ");
    list(&mut sql, set.iter().map(|s| s.0), |sql, name, i| {
        use std::fmt::Write;
        let _ = write!(sql, "{name}=?{}", i + 2);
    });
    sql.push_str(" WHERE id=?1");
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(set.len() + 1);
    params.push(&id);
    params.extend(set.iter().map(|s| s.1));
    let updated = c.prepare_cached(&sql)?.execute(params.as_slice())?;
    Ok(updated > 0)
}

/// Appends `names` to `sql`, each as `item` writes it (given its position), separated by commas.
fn list<'n>(sql: &mut String, names: impl Iterator<Item = &'n str>, item: impl Fn(&mut String, &str, usize)) {
    for (i, name) in names.enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        item(sql, name, i);
    }
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
    use super::update;
    use rusqlite::Connection;

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
        update(&c, "t", 1, &[("note", &"second")], &[("a", &"x"), ("b", &2i64)]).expect("update");
        assert_eq!(row(&c), (Some("x".into()), 2, "second".into()));
        update(&c, "t", 1, &[], &[("a", &None::<String>), ("b", &2i64)]).expect("update");
        assert_eq!(row(&c), (None, 2, "second".into()));
        // No such row: nothing written, no error, and said.
        assert!(!update(&c, "t", 9, &[("note", &"x")], &[("a", &"y")]).expect("no row"));
        assert!(!update(&c, "t", 9, &[("note", &"x")], &[]).expect("no row"));
        assert!(update(&c, "t", 1, &[], &[("a", &None::<String>)]).expect("nothing to change"), "the row is there");
        assert_eq!(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).expect("count"), 1);
    }

    #[test]
    fn an_unchanged_column_is_not_written_and_a_value_of_another_type_is() {
        let c = db();
        update(&c, "t", 1, &[], &[("a", &"1")]).expect("update");
        let before = c.total_changes();
        // The same text: nothing to write.
        update(&c, "t", 1, &[], &[("a", &"1"), ("b", &1i64)]).expect("update");
        assert_eq!(c.total_changes(), before);
        // The integer 1 is not the text '1' as stored: written (the column keeps it as text).
        update(&c, "t", 1, &[], &[("a", &1i64)]).expect("update");
        assert_eq!(c.total_changes(), before + 1);
        assert_eq!(c.query_row("SELECT typeof(a) FROM t WHERE id=1", [], |r| r.get::<_, String>(0)).expect("type"), "text");
    }
}
