//! Statements a transaction keeps prepared, found by where their SQL text is, not by the text.
//!
//! rusqlite's own cache ([`Connection::prepare_cached`]) finds a statement by its text: each use
//! hashes the text twice (taking the statement out, putting it back), compares it, and copies
//! it into a new allocation. The statements that run once or more per object of a stage (saving
//! a row, linking it, its pending import) are run hundreds of thousands of times in one
//! transaction: those costs were about 3.5% of a first full sync's writing thread. Kept here,
//! such a statement is found by its text's address and length (a `&'static str`: the same text,
//! wherever it is, for as long as the program runs), and taken from rusqlite's cache once per
//! transaction.
use idflow_core::fast_hash::FastMap;
use rusqlite::{CachedStatement, Connection, Statement};
use std::cell::RefCell;

/// The text of a statement made from constant parts (the arguments of `format!`, constants
/// only: it is made on the first call and kept), as a `&'static str` for [`with`].
macro_rules! sql_once {
    ($($arg:tt)*) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| format!($($arg)*)).as_str()
    }};
}
pub(crate) use sql_once;

/// Runs a statement of a fixed text, prepared once.
pub(crate) trait Prepared {
    /// `f` with the statement of `sql`, reset and with its parameters to bind.
    fn run(&self, sql: &'static str, f: &mut dyn FnMut(&mut Statement<'_>) -> rusqlite::Result<()>) -> rusqlite::Result<()>;
}

/// Without a transaction's statements at hand (a migration, a test): rusqlite's cache.
impl Prepared for Connection {
    fn run(&self, sql: &'static str, f: &mut dyn FnMut(&mut Statement<'_>) -> rusqlite::Result<()>) -> rusqlite::Result<()> {
        let mut st = self.prepare_cached(sql)?;
        f(&mut st)
    }
}

/// A transaction's statements, with its connection.
impl Prepared for crate::packed::Db<'_> {
    fn run(&self, sql: &'static str, f: &mut dyn FnMut(&mut Statement<'_>) -> rusqlite::Result<()>) -> rusqlite::Result<()> {
        self.statements.run(sql, f)
    }
}

/// The statements one transaction has used, each given back to rusqlite's cache as it ends.
pub(crate) struct Statements<'c> {
    conn: &'c Connection,
    /// By the address and length of their text. A statement in use is out of the map: one run
    /// inside another with the same text (none does so now) prepares its own.
    kept: RefCell<FastMap<(usize, usize), CachedStatement<'c>>>,
}

impl<'c> Statements<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Statements { conn, kept: RefCell::default() }
    }
}

impl Prepared for Statements<'_> {
    fn run(&self, sql: &'static str, f: &mut dyn FnMut(&mut Statement<'_>) -> rusqlite::Result<()>) -> rusqlite::Result<()> {
        let key = (sql.as_ptr() as usize, sql.len());
        let taken = self.kept.borrow_mut().remove(&key);
        let mut st = match taken {
            Some(st) => st,
            None => self.conn.prepare_cached(sql)?,
        };
        // rusqlite resets a statement when what ran it is done (its rows dropped, or executed),
        // so it goes back ready; its bound values are copies, kept until it is bound again or
        // the transaction ends (rusqlite's cache clears them as it takes the statement back).
        let out = f(&mut st);
        self.kept.borrow_mut().insert(key, st);
        out
    }
}

/// [`Prepared::run`] giving back what `f` gives.
pub(crate) fn with<T>(
    p: &dyn Prepared,
    sql: &'static str,
    f: impl FnOnce(&mut Statement<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut f = Some(f);
    let mut out = None;
    p.run(sql, &mut |st| {
        if let Some(f) = f.take() {
            out = Some(f(st)?);
        }
        Ok(())
    })?;
    Ok(out.expect("every Prepared runs the function it is given once"))
}

#[cfg(test)]
mod tests {
    use super::{with, Statements};

    #[test]
    fn a_kept_statement_is_prepared_once_and_runs_again_with_new_values() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch("CREATE TABLE t (a INTEGER)").expect("table");
        let kept = Statements::new(&c);
        const INSERT: &str = "INSERT INTO t(a) VALUES (?1)";
        for a in 1..=3 {
            with(&kept, INSERT, |st| st.execute([a])).expect("insert");
        }
        assert_eq!(kept.kept.borrow().len(), 1);
        let sum: i64 = with(&kept, "SELECT sum(a) FROM t", |st| st.query_row([], |r| r.get(0))).expect("sum");
        assert_eq!(sum, 6);
        // An error inside leaves the statement kept and usable.
        assert!(with(&kept, INSERT, |st| st.execute([1, 2])).is_err());
        with(&kept, INSERT, |st| st.execute([4])).expect("insert after an error");
        let n: i64 = with(&kept, "SELECT count(*) FROM t", |st| st.query_row([], |r| r.get(0))).expect("count");
        assert_eq!(n, 4);
        // One run inside another with the same text prepares its own.
        let inner: i64 = with(&kept, "SELECT count(*) FROM t", |st| {
            let _rows = st.query([])?;
            with(&kept, "SELECT count(*) FROM t", |st| st.query_row([], |r| r.get(0)))
        })
        .expect("nested");
        assert_eq!(inner, 4);
    }
}
