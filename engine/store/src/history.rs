//! Run history: every run with its profile, outcome and summary, and every per-object error.
use idflow_core::{Category, ObjectError, Stage};
use rusqlite::{params, Connection, Result};
use serde::Serialize;

/// The time now, as history and password hash sync state record it.
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn start(c: &Connection, profile: &str) -> Result<i64> {
    c.execute("INSERT INTO run(profile, started, status) VALUES (?1, ?2, 'running')", params![profile, now()])?;
    Ok(c.last_insert_rowid())
}

pub(crate) fn interrupt_running(c: &Connection) -> Result<usize> {
    c.execute("UPDATE run SET status='interrupted', finished=?1 WHERE status='running'", [now()])
}

pub(crate) fn finish(c: &Connection, run_id: i64, status: &str, summary: &serde_json::Value) -> Result<()> {
    c.execute("UPDATE run SET finished=?1, status=?2, summary=?3 WHERE id=?4", params![now(), status, summary.to_string(), run_id])?;
    Ok(())
}

/// Removes runs (and their errors) that finished more than `days` days ago; the newest run stays.
pub(crate) fn purge(c: &Connection, days: u32) -> Result<usize> {
    let cutoff = (chrono::Utc::now() - chrono::Duration::days(i64::from(days))).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let old = "SELECT id FROM run WHERE finished IS NOT NULL AND finished < ?1 AND id < (SELECT MAX(id) FROM run)";
    c.execute(&format!("DELETE FROM run_error WHERE run_id IN ({old})"), [&cutoff])?;
    c.execute(&format!("DELETE FROM run WHERE id IN ({old})"), [&cutoff])
}

pub(crate) fn record(c: &Connection, run_id: i64, e: &ObjectError) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO run_error(run_id, stage, connector, object, cs_id, mv_id, rule, message, category, attribute, conflict)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    )?
    .execute(params![
        run_id,
        e.stage.as_str(),
        e.connector,
        e.object,
        e.cs_id,
        e.mv_id,
        e.rule,
        e.message,
        e.category.as_str(),
        e.attribute,
        e.conflict
    ])?;
    Ok(())
}

const ERROR_COLUMNS: &str = "run_id, stage, connector, object, cs_id, mv_id, rule, message, category, attribute, conflict";

fn error_row(r: &rusqlite::Row<'_>) -> Result<(i64, ObjectError)> {
    let bad = |i: usize, what: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into());
    let stage: String = r.get(1)?;
    let category: String = r.get(8)?;
    Ok((
        r.get(0)?,
        ObjectError {
            stage: Stage::parse(&stage).ok_or_else(|| bad(1, format!("unknown stage {stage:?}")))?,
            connector: r.get(2)?,
            object: r.get(3)?,
            cs_id: r.get(4)?,
            mv_id: r.get(5)?,
            rule: r.get(6)?,
            message: r.get(7)?,
            // A category a newer idflow wrote reads as Other rather than failing the report.
            category: Category::parse(&category).unwrap_or_default(),
            attribute: r.get(9)?,
            conflict: r.get(10)?,
        },
    ))
}

/// Every error the given runs recorded, by run and in the order they were recorded.
pub(crate) fn errors_of_runs(c: &Connection, runs: &[i64]) -> Result<Vec<(i64, ObjectError)>> {
    let mut st = c.prepare_cached(&format!("SELECT {ERROR_COLUMNS} FROM run_error WHERE run_id = ?1 ORDER BY rowid"))?;
    let mut out = Vec::new();
    for run in runs {
        for row in st.query_map([run], error_row)? {
            out.push(row?);
        }
    }
    Ok(out)
}

/// The errors of the most recent run that recorded any for this object.
pub(crate) fn errors_for(c: &Connection, cs_id: Option<i64>, mv_id: Option<i64>) -> Result<Vec<(i64, ObjectError)>> {
    let mut st = c.prepare(&format!(
        "SELECT {ERROR_COLUMNS} FROM run_error
         WHERE (cs_id = ?1 AND ?1 IS NOT NULL) OR (mv_id = ?2 AND ?2 IS NOT NULL) ORDER BY run_id DESC, rowid LIMIT 50"
    ))?;
    let rows = st.query_map(params![cs_id, mv_id], error_row)?;
    let all: Vec<(i64, ObjectError)> = rows.collect::<rusqlite::Result<_>>()?;
    let newest = all.first().map(|(r, _)| *r);
    Ok(all.into_iter().filter(|(r, _)| Some(*r) == newest).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub profile: String,
    pub started: String,
    pub finished: Option<String>,
    pub status: String,
    pub summary: Option<serde_json::Value>,
}

pub(crate) fn recent(c: &Connection, n: i64) -> Result<Vec<RunRow>> {
    let mut st = c.prepare("SELECT id, profile, started, finished, status, summary FROM run ORDER BY id DESC LIMIT ?1")?;
    let rows = st.query_map([n], |r| {
        let s: Option<String> = r.get(5)?;
        Ok(RunRow {
            id: r.get(0)?,
            profile: r.get(1)?,
            started: r.get(2)?,
            finished: r.get(3)?,
            status: r.get(4)?,
            summary: s.and_then(|s| serde_json::from_str(&s).ok()),
        })
    })?;
    rows.collect::<rusqlite::Result<_>>()
}

#[cfg(test)]
mod tests {
    use idflow_core::{ObjectError, Stage};
    use rusqlite::Connection;

    #[test]
    fn an_error_keeps_its_category_attribute_and_conflict() {
        let c = Connection::open_in_memory().expect("db");
        crate::schema::init(&c).expect("schema");
        let run = super::start(&c, "delta-cycle").expect("run");
        let e = ObjectError::new(Stage::Sync, "corp", "ada", "ambiguous join")
            .with_category(idflow_core::Category::DuplicateAttribute)
            .with_conflict("#3, #4");
        super::record(&c, run, &e).expect("record");
        assert_eq!(super::errors_of_runs(&c, &[run]).expect("read"), vec![(run, e)]);
    }

    #[test]
    fn purge_removes_old_runs_and_their_errors_but_keeps_the_newest() {
        let c = Connection::open_in_memory().expect("db");
        crate::schema::init(&c).expect("schema");
        let old = super::start(&c, "delta-cycle").expect("run");
        let e = ObjectError::connector(Stage::Import, "corp", "down");
        super::record(&c, old, &e).expect("error");
        super::finish(&c, old, "errors", &serde_json::json!({})).expect("finish");
        let newer = super::start(&c, "delta-cycle").expect("run");
        super::finish(&c, newer, "ok", &serde_json::json!({})).expect("finish");
        assert_eq!(super::purge(&c, 7).expect("purge"), 0, "nothing is a week old");
        c.execute("UPDATE run SET finished = '2000-01-01T00:00:00.000Z'", []).expect("backdate both");
        assert_eq!(super::purge(&c, 7).expect("purge"), 1, "the newest run stays, however old");
        let ids: Vec<i64> =
            c.prepare("SELECT id FROM run").expect("q").query_map([], |r| r.get(0)).expect("rows").map(|r| r.expect("id")).collect();
        assert_eq!(ids, vec![newer]);
        let errors: i64 = c.query_row("SELECT COUNT(*) FROM run_error", [], |r| r.get(0)).expect("count");
        assert_eq!(errors, 0, "the purged run's errors went with it");
    }
}
