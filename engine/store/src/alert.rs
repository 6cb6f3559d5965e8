//! Health alerts: raised when a condition holds, resolved when it clears, kept as history, with
//! whether each raise and resolve reached the webhooks (so a restarted service sends what a
//! killed one could not).
use rusqlite::{params, Connection, OptionalExtension, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: i64,
    /// What identifies the condition: its kind, and the connector it is about.
    pub key: String,
    pub kind: String,
    /// critical, warning or info.
    pub severity: String,
    pub connector: Option<String>,
    pub summary: String,
    pub raised: String,
    pub resolved: Option<String>,
    pub raise_sent: bool,
    pub resolve_sent: bool,
}

const COLUMNS: &str = "id, key, kind, severity, connector, summary, raised, resolved, raise_sent, resolve_sent";

fn row(r: &rusqlite::Row<'_>) -> Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        severity: r.get(3)?,
        connector: r.get(4)?,
        summary: r.get(5)?,
        raised: r.get(6)?,
        resolved: r.get(7)?,
        raise_sent: r.get(8)?,
        resolve_sent: r.get(9)?,
    })
}

fn query(c: &Connection, filter: &str, p: impl rusqlite::Params) -> Result<Vec<AlertRow>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM alert {filter}"))?;
    let rows = st.query_map(p, row)?;
    rows.collect()
}

pub(crate) fn open(c: &Connection) -> Result<Vec<AlertRow>> {
    query(c, "WHERE resolved IS NULL ORDER BY id", [])
}

/// The newest `n` alerts, open or resolved.
pub(crate) fn history(c: &Connection, n: i64) -> Result<Vec<AlertRow>> {
    query(c, "ORDER BY id DESC LIMIT ?1", [n])
}

/// Raises and resolves the webhooks have not been told of yet.
pub(crate) fn unsent(c: &Connection) -> Result<Vec<AlertRow>> {
    query(c, "WHERE raise_sent = 0 OR (resolved IS NOT NULL AND resolve_sent = 0) ORDER BY id", [])
}

/// Raises the alert `key` unless it is open already; its id either way.
pub(crate) fn raise(c: &Connection, key: &str, kind: &str, severity: &str, connector: Option<&str>, summary: &str) -> Result<(i64, bool)> {
    if let Some(id) = c.query_row("SELECT id FROM alert WHERE key=?1 AND resolved IS NULL", [key], |r| r.get(0)).optional()? {
        // Still open: its summary follows the latest error.
        c.execute("UPDATE alert SET summary=?1 WHERE id=?2 AND summary != ?1", params![summary, id])?;
        return Ok((id, false));
    }
    c.execute(
        "INSERT INTO alert(key, kind, severity, connector, summary, raised) VALUES (?1,?2,?3,?4,?5,?6)",
        params![key, kind, severity, connector, summary, crate::history::now()],
    )?;
    Ok((c.last_insert_rowid(), true))
}

pub(crate) fn resolve(c: &Connection, id: i64) -> Result<()> {
    c.execute("UPDATE alert SET resolved=?1 WHERE id=?2 AND resolved IS NULL", params![crate::history::now(), id])?;
    Ok(())
}

/// The webhooks were told of the raise (`resolved` false) or the resolve.
pub(crate) fn sent(c: &Connection, id: i64, resolved: bool) -> Result<()> {
    let column = if resolved { "resolve_sent" } else { "raise_sent" };
    c.execute(&format!("UPDATE alert SET {column}=1 WHERE id=?1"), [id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_alert_is_raised_once_resolved_once_and_raised_again_as_a_new_one() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        crate::schema::init(&c).expect("schema");
        let (a, new) = super::raise(&c, "unreachable:corp", "unreachable", "critical", Some("corp"), "down").expect("raise");
        assert!(new);
        let (again, new) = super::raise(&c, "unreachable:corp", "unreachable", "critical", Some("corp"), "still down").expect("raise");
        assert_eq!((again, new), (a, false));
        assert_eq!(super::open(&c).expect("open")[0].summary, "still down");
        super::sent(&c, a, false).expect("sent");
        assert!(super::unsent(&c).expect("unsent").is_empty());
        super::resolve(&c, a).expect("resolve");
        assert!(super::open(&c).expect("open").is_empty());
        assert_eq!(super::unsent(&c).expect("unsent").len(), 1, "the resolve is still to tell");
        let (b, new) = super::raise(&c, "unreachable:corp", "unreachable", "critical", Some("corp"), "down again").expect("raise");
        assert!(new && b != a);
        assert_eq!(super::history(&c, 10).expect("history").len(), 2);
    }
}
