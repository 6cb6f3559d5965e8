//! The schema of the metaverse database, created on first open and checked on every open.
use rusqlite::{Connection, OptionalExtension};

pub(crate) const SCHEMA_VERSION: i64 = 1;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS connector (
    name TEXT PRIMARY KEY,
    watermark TEXT,
    last_full_import TEXT
);
CREATE TABLE IF NOT EXISTS cs_object (
    id INTEGER PRIMARY KEY,
    connector TEXT NOT NULL,
    anchor TEXT,
    dn TEXT,
    dn_norm TEXT,
    object_type TEXT NOT NULL,
    attrs TEXT NOT NULL,
    present INTEGER NOT NULL DEFAULT 1,
    desired TEXT,
    desired_dn TEXT,
    export_state TEXT,
    pending_import TEXT,
    pending_export INTEGER NOT NULL DEFAULT 0,
    mv_id INTEGER,
    link TEXT,
    link_rule TEXT,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS cs_anchor ON cs_object(connector, anchor) WHERE anchor IS NOT NULL;
CREATE INDEX IF NOT EXISTS cs_dn ON cs_object(connector, dn_norm);
CREATE INDEX IF NOT EXISTS cs_mv ON cs_object(mv_id) WHERE mv_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS cs_pending_import ON cs_object(pending_import) WHERE pending_import IS NOT NULL;
CREATE INDEX IF NOT EXISTS cs_pending_export ON cs_object(connector) WHERE pending_export = 1;
CREATE TABLE IF NOT EXISTS cs_dangling (cs_id INTEGER NOT NULL, dn_norm TEXT NOT NULL, PRIMARY KEY (dn_norm, cs_id));
CREATE INDEX IF NOT EXISTS cs_dangling_cs ON cs_dangling(cs_id);
CREATE TABLE IF NOT EXISTS cs_former_dn (
    connector TEXT NOT NULL,
    dn_norm TEXT NOT NULL,
    cs_id INTEGER,
    PRIMARY KEY (connector, dn_norm)
);
CREATE TABLE IF NOT EXISTS mv_object (
    id INTEGER PRIMARY KEY,
    object_type TEXT NOT NULL,
    attrs TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mv_dirty ON mv_object(dirty) WHERE dirty = 1;
CREATE TABLE IF NOT EXISTS mv_contrib (
    mv_id INTEGER NOT NULL,
    attr TEXT NOT NULL,
    cs_id INTEGER NOT NULL,
    rule TEXT NOT NULL,
    precedence INTEGER NOT NULL,
    vals TEXT NOT NULL,
    PRIMARY KEY (mv_id, attr, cs_id, rule)
);
CREATE INDEX IF NOT EXISTS mv_contrib_cs ON mv_contrib(cs_id);
CREATE TABLE IF NOT EXISTS mv_value (mv_id INTEGER NOT NULL, attr TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mv_value_v ON mv_value(value, attr);
CREATE INDEX IF NOT EXISTS mv_value_ci ON mv_value(attr, lower(value));
CREATE INDEX IF NOT EXISTS mv_value_mv ON mv_value(mv_id);
CREATE TABLE IF NOT EXISTS phs_state (
    cs_id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    delivered TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY,
    profile TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS run_error (
    run_id INTEGER NOT NULL,
    stage TEXT NOT NULL,
    connector TEXT,
    object TEXT,
    cs_id INTEGER,
    mv_id INTEGER,
    rule TEXT,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_error_cs ON run_error(cs_id);
CREATE INDEX IF NOT EXISTS run_error_mv ON run_error(mv_id);
"#;

/// Settings, the schema, and its version: a database of another version is refused.
pub(crate) fn init(conn: &Connection) -> Result<(), String> {
    let e = |e: rusqlite::Error| e.to_string();
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(e)?;
    // Sync cycles through more statements than rusqlite's default cache of 16 holds.
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(e)?;
    conn.pragma_update(None, "cache_size", -65536).map_err(e)?;
    conn.execute_batch(SCHEMA).map_err(e)?;
    let v: Option<String> = conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(e)?;
    match v.as_deref() {
        None => {
            conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?1)", [SCHEMA_VERSION.to_string()]).map_err(e)?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => return Err(format!("schema version {v} is not one this idflow knows ({SCHEMA_VERSION}); use a matching idflow")),
    }
    Ok(())
}
