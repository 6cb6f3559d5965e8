//! The schema of the metaverse database, created on first open and checked on every open.
use rusqlite::{Connection, OptionalExtension};

pub(crate) const SCHEMA_VERSION: i64 = 13;

/// The pages SQLite keeps in memory for a connection, in KiB (64 MiB).
pub(crate) const CACHE_KIB: i64 = 64 * 1024;
/// The changed pages a transaction that may change many (a delta sync:
/// [`crate::Store::write_changes`]) keeps before it writes them to the log (256 MiB).
pub(crate) const CHANGED_PAGES_KIB: i64 = 256 * 1024;
/// The pages kept while a stage that reads and writes most of the database (a full sync) runs:
/// [`crate::Store::write_bulk`] (512 MiB). At 1,000,000 people a full sync writes about 900
/// MiB of pages: with 256 MiB it wrote a third of them to the log and read them back before
/// its commit (three pairs in turns: 42.8, 48.4 and 48.6 s against 48.3, 50.6 and 53.6 s;
/// its own peak 0.9 against 0.6 GiB). Below 250,000 people the database fits in 256 MiB, and
/// nothing changes.
pub(crate) const FULL_SYNC_CACHE_KIB: i64 = 512 * 1024;
/// The pages only read that a full sync of a metaverse already made keeps
/// ([`crate::Store::write_rescan`]): 256 MiB. It reads most of the database and changes little,
/// so a larger cache would hold pages read once: at 1,000,000 people in step, 770 MiB at its
/// peak with 512 MiB, 500 MiB with this (in the bench, after an export, 697 against up to
/// 1021 MiB), and 0.5 to 1.3 s (2 to 6%) slower for the pages read again.
pub(crate) const RESCAN_READ_KIB: i64 = 256 * 1024;

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
    dn_norm TEXT,
    object_type TEXT NOT NULL,
    present INTEGER NOT NULL DEFAULT 1,
    export_state TEXT,
    pending_export INTEGER NOT NULL DEFAULT 0,
    mv_id INTEGER,
    link TEXT,
    link_rule TEXT,
    error TEXT,
    dn TEXT,
    desired_dn TEXT,
    attrs TEXT NOT NULL,
    desired TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS cs_anchor ON cs_object(connector, anchor) WHERE anchor IS NOT NULL;
-- By DN, of the objects that have one. Not with links and export states: a sync links every
-- object it projects or joins, and an entry with them was rewritten each time (references by
-- DN read the row: cs.rs). Not with presence either (cs_present), and not of objects without a
-- DN: an export that made an object (present 0 to 1) rewrote its entry here, and a sync that
-- provisioned one to a target without DNs (a file, SCIM) inserted an entry no lookup reads.
CREATE INDEX IF NOT EXISTS cs_by_dn ON cs_object(connector, dn_norm) WHERE dn_norm IS NOT NULL;
-- The objects present in their directory, by connector: listed and counted from it alone (what
-- a full import did not read, an empty read's check, how many a preload would hold). A
-- connector's objects, present or not, are read from cs_anchor and cs_anchorless together
-- (cs.rs OF_CONNECTOR); an import that went without cs_anchor makes it as it ends
-- (anchors_later.rs).
CREATE INDEX IF NOT EXISTS cs_present ON cs_object(connector) WHERE present = 1;
-- By metaverse object, with where each object stands (cs.rs LinkState): outbound sync reads
-- its targets' states from it alone, without reading their rows.
CREATE INDEX IF NOT EXISTS cs_mv_state ON cs_object(mv_id, connector, present, link, export_state) WHERE mv_id IS NOT NULL;
-- What import of each object sync has not looked at yet (cs.rs set_pending): a table of its
-- own, so that a sync clears it without rewriting the object's row.
CREATE TABLE IF NOT EXISTS cs_pending (cs_id INTEGER PRIMARY KEY, kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cs_pending_export ON cs_object(connector) WHERE pending_export = 1;
-- Objects in error, retried by every sync: found without reading the connector spaces whole.
CREATE INDEX IF NOT EXISTS cs_error ON cs_object(id) WHERE error IS NOT NULL;
-- Objects without an anchor (creates not confirmed yet): whether a connector has any is asked
-- by every import, and an export's identifiers are read from it with cs_anchor (cs.rs
-- anchors_of).
CREATE INDEX IF NOT EXISTS cs_anchorless ON cs_object(connector) WHERE anchor IS NULL;
CREATE TABLE IF NOT EXISTS cs_dangling (cs_id INTEGER NOT NULL, dn_norm TEXT NOT NULL, PRIMARY KEY (dn_norm, cs_id));
CREATE INDEX IF NOT EXISTS cs_dangling_cs ON cs_dangling(cs_id);
CREATE TABLE IF NOT EXISTS cs_former_dn (
    connector TEXT NOT NULL,
    dn_norm TEXT NOT NULL,
    cs_id INTEGER,
    PRIMARY KEY (connector, dn_norm)
);
-- `contrib`: what each source object contributes (mv_form.rs), in the object's row, so that a
-- sync reads and writes no page more for them (when the row fits in its page, as nearly all do);
-- an empty BLOB when they are the winners in `attrs`, each alone on its attribute (mv.rs).
CREATE TABLE IF NOT EXISTS mv_object (
    id INTEGER PRIMARY KEY,
    object_type TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    attrs TEXT NOT NULL,
    contrib TEXT
);
CREATE INDEX IF NOT EXISTS mv_dirty ON mv_object(dirty) WHERE dirty = 1;
CREATE TABLE IF NOT EXISTS mv_value (
    attr TEXT NOT NULL,
    key TEXT NOT NULL,
    mv_id INTEGER NOT NULL,
    PRIMARY KEY (attr, key, mv_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mv_ref (
    target INTEGER NOT NULL,
    mv_id INTEGER NOT NULL,
    attr TEXT NOT NULL,
    PRIMARY KEY (target, mv_id, attr)
) WITHOUT ROWID;
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
    message TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT 'other',
    attribute TEXT,
    conflict TEXT
);
CREATE INDEX IF NOT EXISTS run_error_cs ON run_error(cs_id);
CREATE INDEX IF NOT EXISTS run_error_mv ON run_error(mv_id);
CREATE INDEX IF NOT EXISTS run_error_run ON run_error(run_id);
CREATE TABLE IF NOT EXISTS alert (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    connector TEXT,
    summary TEXT NOT NULL,
    raised TEXT NOT NULL,
    resolved TEXT,
    raise_sent INTEGER NOT NULL DEFAULT 0,
    resolve_sent INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_open ON alert(key) WHERE resolved IS NULL;
-- Compression dictionaries of attribute columns, by family (`column:connector`): packed.rs.
CREATE TABLE IF NOT EXISTS dict (
    id INTEGER PRIMARY KEY,
    family TEXT NOT NULL,
    data BLOB NOT NULL
);
"#;

/// A migration step's work done in code, after its SQL, in the same transaction.
type Fill = fn(&Connection) -> rusqlite::Result<()>;

/// What turns a database of an older version into the current one, step by step; each step
/// runs in one transaction with the version it reaches.
const MIGRATIONS: &[(i64, &str, Option<Fill>)] = &[
    (
        2,
        "ALTER TABLE run_error ADD COLUMN category TEXT NOT NULL DEFAULT 'other';
         ALTER TABLE run_error ADD COLUMN attribute TEXT;
         ALTER TABLE run_error ADD COLUMN conflict TEXT;
         CREATE INDEX IF NOT EXISTS run_error_run ON run_error(run_id);",
        None,
    ),
    // One row per metaverse object and contributing connector-space object, instead of one
    // per attribute and rule: a projection writes one row, not one per attribute. Objects keep
    // their small columns before their attributes (JSON, often longer than a page), so that
    // reading links, states and flags does not walk the attributes' overflow pages. The
    // rebuilt tables' indexes are SCHEMA's, made by init() right after (and on every open).
    (
        3,
        "CREATE TABLE cs_object_v3 (id INTEGER PRIMARY KEY, connector TEXT NOT NULL, anchor TEXT, dn_norm TEXT, object_type TEXT NOT NULL,
             present INTEGER NOT NULL DEFAULT 1, export_state TEXT, pending_import TEXT, pending_export INTEGER NOT NULL DEFAULT 0,
             mv_id INTEGER, link TEXT, link_rule TEXT, error TEXT, dn TEXT, desired_dn TEXT, attrs TEXT NOT NULL, desired TEXT);
         INSERT INTO cs_object_v3 (id, connector, anchor, dn_norm, object_type, present, export_state, pending_import, pending_export,
             mv_id, link, link_rule, error, dn, desired_dn, attrs, desired)
             SELECT id, connector, anchor, dn_norm, object_type, present, export_state, pending_import, pending_export,
             mv_id, link, link_rule, error, dn, desired_dn, attrs, desired FROM cs_object;
         DROP TABLE cs_object;
         ALTER TABLE cs_object_v3 RENAME TO cs_object;
         CREATE TABLE mv_object_v3 (id INTEGER PRIMARY KEY, object_type TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 0,
             deleted INTEGER NOT NULL DEFAULT 0, attrs TEXT NOT NULL);
         INSERT INTO mv_object_v3 (id, object_type, dirty, deleted, attrs) SELECT id, object_type, dirty, deleted, attrs FROM mv_object;
         DROP TABLE mv_object;
         ALTER TABLE mv_object_v3 RENAME TO mv_object;
         CREATE TABLE mv_contrib_v3 (mv_id INTEGER NOT NULL, cs_id INTEGER NOT NULL, items TEXT NOT NULL, PRIMARY KEY (mv_id, cs_id)) WITHOUT ROWID;
         INSERT INTO mv_contrib_v3 (mv_id, cs_id, items)
             SELECT mv_id, cs_id, json_group_array(json_object('a', attr, 'r', rule, 'p', precedence, 'v', json(vals)))
             FROM (SELECT * FROM mv_contrib ORDER BY mv_id, cs_id, attr, rule) GROUP BY mv_id, cs_id;
         DROP TABLE mv_contrib;
         ALTER TABLE mv_contrib_v3 RENAME TO mv_contrib;",
        None,
    ),
    // The value index as the primary key of tables without rowids: an indexed value is one
    // b-tree entry, not four (a row and three indexes). Values are found by attribute and
    // case-folded key; references by the object they name, in a table of their own. Entries
    // are removed by the values they were made from, so no index by object is needed.
    // Contributions are read by metaverse object only: their index by source object goes.
    (
        4,
        "DROP TABLE mv_value;
         CREATE TABLE mv_value (attr TEXT NOT NULL, key TEXT NOT NULL, mv_id INTEGER NOT NULL, PRIMARY KEY (attr, key, mv_id)) WITHOUT ROWID;
         CREATE TABLE mv_ref (target INTEGER NOT NULL, mv_id INTEGER NOT NULL, attr TEXT NOT NULL, PRIMARY KEY (target, mv_id, attr)) WITHOUT ROWID;
         DROP INDEX IF EXISTS mv_contrib_cs;",
        Some(crate::mv::reindex_all),
    ),
    // Each value once, and who contributed it once per rule instead of with every attribute:
    // objects' attributes and contributions are rewritten (mv_form.rs has both forms).
    (5, "", Some(crate::mv_form::rewrite_all)),
    // The indexes by DN and by metaverse object hold where each object stands: references
    // resolve without reading rows. The old ones go; the new ones are SCHEMA's, made by init()
    // right after (and on every open).
    (6, "DROP INDEX IF EXISTS cs_dn; DROP INDEX IF EXISTS cs_mv;", None),
    // Attributes may be compressed with a dictionary (packed.rs); the dictionaries' table is
    // SCHEMA's. Rows stay as they are (JSON is still read) and are compressed when next written.
    // Anchors that are UUIDs are kept as their 16 bytes (anchor.rs): converted here. An older
    // idflow, which could read neither, is refused by the version.
    (7, "", Some(crate::anchor::migrate)),
    // Contributions in their metaverse object's row instead of a table keyed by object and
    // source: a sync that changes an object reads and writes one page less for it.
    (8, "ALTER TABLE mv_object ADD COLUMN contrib TEXT;", Some(crate::mv_form::move_contrib)),
    // Contributions that are the object's winners, each alone on its attribute (what one source
    // object that makes an object contributes), may be kept as an empty BLOB instead of a copy
    // (mv.rs): written so from now on, rows as they are read as they are. An older idflow,
    // which could not read them, is refused by the version.
    (9, "", None),
    // The index by DN without links and export states (a full sync rewrote the entry of every
    // object it linked): the old one goes; the new one is SCHEMA's, made by init() right after
    // (and on every open). An older idflow, which would make the old one again, is refused by
    // the version.
    (10, "DROP INDEX IF EXISTS cs_dn_state;", None),
    // A target object's attributes may be kept as a patch of its desired state (cs_patch.rs):
    // written so from now on, rows as they are read as they are. An older idflow, which could
    // not read them, is refused by the version.
    (11, "", None),
    // What import of each object sync has not looked at yet, in a table of its own
    // (`cs_pending`, SCHEMA's) instead of a column of the object's row: a sync clears it without
    // rewriting the row. Moved here; the column and its index go. An older idflow, which would
    // read no pending import, is refused by the version.
    (
        12,
        "CREATE TABLE IF NOT EXISTS cs_pending (cs_id INTEGER PRIMARY KEY, kind TEXT NOT NULL);
         INSERT INTO cs_pending (cs_id, kind) SELECT id, pending_import FROM cs_object WHERE pending_import IS NOT NULL;
         DROP INDEX IF EXISTS cs_pending_import;
         ALTER TABLE cs_object DROP COLUMN pending_import;",
        None,
    ),
    // The index by DN of objects with a DN only and without presence, and presence in an index
    // of its own (cs_present): an export that makes an object, or a sync that provisions one to
    // a target without DNs, writes one index entry less. The old index goes; the new ones are
    // SCHEMA's, made by init() right after (and on every open). An older idflow, which would
    // look for a connector's objects in an index that no longer holds all of them, is refused
    // by the version.
    (13, "DROP INDEX IF EXISTS cs_by_dn;", None),
];

/// What every connection is set to, whether it writes or only reads.
fn connection(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Sync cycles through more statements than rusqlite's default cache of 16 holds.
    conn.set_prepared_statement_cache_capacity(128);
    // Plans do not depend on bound values: without this, a statement whose parameter the
    // planner compared with a partial index's constant (`pending_export = 1`) is prepared
    // again at every execution (a third of a join lookup's time).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// A second connection to a database another has set up, that reads alone (`Store::reader`):
/// a small page cache, as what it reads is read once.
pub(crate) fn reader(conn: &Connection) -> rusqlite::Result<()> {
    connection(conn)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
}

/// The page cache of a connection that reads alone, in KiB.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// Settings, the schema, and its version: a database of another version is refused.
pub(crate) fn init(conn: &Connection) -> Result<(), String> {
    let e = |e: rusqlite::Error| crate::ops::said(&e);
    connection(conn).map_err(e)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(e)?;
    // The log is copied into the database by a thread of its own after each commit
    // (checkpoint.rs), not by the commit; a write that begins once all of it is copied starts
    // it over, and the file is cut back to 64 MiB at that write's commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(e)?;
    conn.pragma_update(None, "journal_size_limit", 64 << 20).map_err(e)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(e)?;
    // Spill changed pages once the cache is full (what SQLite does unless told otherwise),
    // said here because some transactions raise it for a while.
    conn.pragma_update(None, "cache_spill", -CACHE_KIB).map_err(e)?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);").map_err(e)?;
    let v: Option<String> = conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(e)?;
    let Some(v) = v else {
        conn.execute_batch(SCHEMA).map_err(e)?;
        conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?1)", [SCHEMA_VERSION.to_string()]).map_err(e)?;
        return Ok(());
    };
    let known = v.parse::<i64>().ok().filter(|v| (1..=SCHEMA_VERSION).contains(v));
    let Some(mut version) = known else {
        return Err(format!("schema version {v} is not one this idflow knows ({SCHEMA_VERSION}); use a matching idflow"));
    };
    // Migrated in place, never rebuilt: each step commits with its version, so a step killed
    // halfway is run again whole.
    let from = version;
    for (to, sql, fill) in MIGRATIONS.iter().filter(|(to, _, _)| *to > from) {
        // The version is read again under the write lock: another idflow opening the same
        // database at the same moment may have migrated it already.
        let step = || -> rusqlite::Result<bool> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let now: String = conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0))?;
            if now.parse::<i64>().is_ok_and(|v| v >= *to) {
                conn.execute_batch("COMMIT")?;
                return Ok(false);
            }
            conn.execute_batch(sql)?;
            if let Some(fill) = fill {
                fill(conn)?;
            }
            conn.execute("UPDATE meta SET value=?1 WHERE key='schema_version'", [to.to_string()])?;
            conn.execute_batch("COMMIT")?;
            Ok(true)
        };
        match step() {
            Ok(true) => tracing::info!(from = version, to, "metaverse schema migrated"),
            Ok(false) => {}
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(format!("migrating the metaverse from schema version {version} to {to} failed: {}", crate::ops::said(&err)));
            }
        }
        version = *to;
    }
    conn.execute_batch(SCHEMA).map_err(e)?;
    Ok(())
}

/// A schema 13 database as schema 12 kept it (test set-up): the index by DN of every object,
/// with presence, and none of presence alone. Each way back further starts with it.
#[cfg(test)]
pub(crate) const BACK_TO_SCHEMA_12: &str = "DROP INDEX cs_by_dn;
     DROP INDEX cs_present;
     CREATE INDEX cs_by_dn ON cs_object(connector, dn_norm, present);
     UPDATE meta SET value = '12' WHERE key = 'schema_version';";

/// A schema 12 database as schema 11 kept it (test set-up): the pending import in a column of
/// the object's row, with its index. Each way back further starts with it (after
/// [`BACK_TO_SCHEMA_12`]).
#[cfg(test)]
pub(crate) const BACK_TO_SCHEMA_11: &str = "ALTER TABLE cs_object ADD COLUMN pending_import TEXT;
     UPDATE cs_object SET pending_import = (SELECT kind FROM cs_pending WHERE cs_id = cs_object.id);
     DROP TABLE cs_pending;
     CREATE INDEX cs_pending_import ON cs_object(pending_import) WHERE pending_import IS NOT NULL;
     UPDATE meta SET value = '11' WHERE key = 'schema_version';";

/// A schema 8 database as schema 7 kept it (test set-up): contributions in rows of their own,
/// one per metaverse and source object. Values must not be compressed (SQL cannot unpack them).
#[cfg(test)]
pub(crate) const BACK_TO_SCHEMA_7: &str = "CREATE TABLE mv_contrib (mv_id INTEGER NOT NULL, cs_id INTEGER NOT NULL, items TEXT NOT NULL,
         PRIMARY KEY (mv_id, cs_id)) WITHOUT ROWID;
     INSERT INTO mv_contrib SELECT o.id, CAST(j.key AS INTEGER), json(j.value) FROM mv_object o, json_each(o.contrib) j
         WHERE o.contrib IS NOT NULL;
     ALTER TABLE mv_object DROP COLUMN contrib;
     UPDATE meta SET value = '7' WHERE key = 'schema_version';";

#[cfg(test)]
mod tests {
    /// The schema of version 1 (idflow before categories and alerts), as it created it.
    const V1: &str = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE run (id INTEGER PRIMARY KEY, profile TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL, summary TEXT);
        CREATE TABLE run_error (run_id INTEGER NOT NULL, stage TEXT NOT NULL, connector TEXT, object TEXT, cs_id INTEGER, mv_id INTEGER, rule TEXT, message TEXT NOT NULL);
        INSERT INTO run VALUES (1, 'delta', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'errors', '{}');
        INSERT INTO run_error VALUES (1, 'sync', 'corp', 'ada', 3, 4, 'r', 'flow mail: boom');
        CREATE TABLE cs_object (id INTEGER PRIMARY KEY, connector TEXT NOT NULL, anchor TEXT, dn TEXT, dn_norm TEXT, object_type TEXT NOT NULL, attrs TEXT NOT NULL, present INTEGER NOT NULL DEFAULT 1, desired TEXT, desired_dn TEXT, export_state TEXT, pending_import TEXT, pending_export INTEGER NOT NULL DEFAULT 0, mv_id INTEGER, link TEXT, link_rule TEXT, error TEXT);
        CREATE UNIQUE INDEX cs_anchor ON cs_object(connector, anchor) WHERE anchor IS NOT NULL;
        INSERT INTO cs_object VALUES (3, 'hr', 'E1', 'uid=ada,ou=people', 'uid=ada,ou=people', 'person', '{\"cn\":[\"Ada\"]}', 1, NULL, NULL, NULL, 'update', 0, 4, 'projected', 'hr', NULL);
        CREATE TABLE mv_object (id INTEGER PRIMARY KEY, object_type TEXT NOT NULL, attrs TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0);
        INSERT INTO mv_object VALUES (4, 'person', '{}', 1, 0);
        INSERT INTO mv_object VALUES (5, 'person', '{\"mail\":{\"v\":[\"Grace@Example.org\"],\"rule\":\"hr\",\"cs\":8,\"p\":100},\"manager\":{\"v\":[{\"ref\":4}],\"rule\":\"hr\",\"cs\":8,\"p\":100}}', 0, 0);
        CREATE TABLE mv_value (mv_id INTEGER NOT NULL, attr TEXT NOT NULL, value TEXT NOT NULL);
        INSERT INTO mv_value VALUES (5, 'mail', 'Grace@Example.org');
        INSERT INTO mv_value VALUES (5, 'manager', 'ref:4');
        CREATE TABLE mv_contrib (mv_id INTEGER NOT NULL, attr TEXT NOT NULL, cs_id INTEGER NOT NULL, rule TEXT NOT NULL, precedence INTEGER NOT NULL, vals TEXT NOT NULL, PRIMARY KEY (mv_id, attr, cs_id, rule));
        CREATE INDEX mv_contrib_cs ON mv_contrib(cs_id);
        INSERT INTO mv_contrib VALUES (4, 'mail', 3, 'hr', 100, '[\"ada@example.org\"]');
        INSERT INTO mv_contrib VALUES (4, 'cn', 3, 'hr', 100, '[\"Ada\"]');
        INSERT INTO mv_contrib VALUES (4, 'mail', 7, 'ad', 50, '[\"ada@corp.example\"]');
        INSERT INTO mv_contrib VALUES (4, 'manager', 3, 'hr', 100, '[{\"ref\":9}]');
        INSERT INTO mv_contrib VALUES (4, 'photo', 3, 'hr', 100, '[{\"bin\":\"AAH/\"}]');";

    #[test]
    fn a_database_of_a_newer_idflow_is_refused_not_misread() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        super::init(&c).expect("created");
        let newer = super::SCHEMA_VERSION + 1;
        c.execute("UPDATE meta SET value=?1 WHERE key='schema_version'", [newer.to_string()]).expect("newer");
        let err = super::init(&c).expect_err("refused");
        assert!(err.contains(&format!("schema version {newer} is not one this idflow knows")), "{err}");
    }

    #[test]
    fn a_version_1_database_is_migrated_in_place_keeping_its_history() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch(V1).expect("v1");
        super::init(&c).expect("migrated");
        let v: String = c.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).expect("version");
        assert_eq!(v, super::SCHEMA_VERSION.to_string());
        let errors = crate::history::errors_of_runs(&c, &[1]).expect("errors");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].1.message, "flow mail: boom");
        assert_eq!(errors[0].1.category, idflow_core::Category::Other);
        let codec = crate::packed::Codec::default();
        let index = crate::mv_index::Deferred::default();
        let dirty = crate::mv_dirty::HeldDirty::default();
        let db = crate::packed::Db {
            conn: &c,
            codec: &codec,
            index: &index,
            dirty: &dirty,
            dangling: &Default::default(),
            anchors: &Default::default(),
            statements: &c,
        };
        // Contributions: in their metaverse object's row now, the same values.
        let mut of_mv = crate::mv::contributions(&db, 4).expect("contributions");
        of_mv.sort_by(|a, b| (a.cs_id, &a.attr).cmp(&(b.cs_id, &b.attr)));
        let shown: Vec<String> =
            of_mv.iter().map(|k| format!("{} {} {} {} {:?}", k.cs_id, k.attr, k.rule, k.precedence, k.values)).collect();
        assert_eq!(
            shown,
            [
                "3 cn hr 100 [Str(\"Ada\")]",
                "3 mail hr 100 [Str(\"ada@example.org\")]",
                "3 manager hr 100 [Ref(9)]",
                "3 photo hr 100 [Bin([0, 1, 255])]",
                "7 mail ad 50 [Str(\"ada@corp.example\")]"
            ]
        );
        // Objects: the same columns, the small ones first now.
        let o = crate::cs::get(&db, 3).expect("read").expect("kept");
        assert_eq!((o.connector.as_str(), o.anchor.as_deref(), o.mv_id, o.link), ("hr", Some("E1"), Some(4), Some(crate::Link::Projected)));
        assert_eq!((o.pending_import, o.dn.as_deref()), (Some(crate::PendingImport::Update), Some("uid=ada,ou=people")));
        assert_eq!(o.attrs.get("cn"), Some(&vec![idflow_core::Value::from("Ada")]));
        let g = crate::mv::get(&db, 5).expect("read").expect("kept");
        assert_eq!(g.values("manager"), Some(&[idflow_core::Value::Ref(4)][..]));
        assert_eq!((g.attrs["mail"].rule.as_str(), g.attrs["mail"].cs, g.attrs["mail"].precedence), ("hr", 8, 100));
        let m = crate::mv::get(&db, 4).expect("read").expect("kept");
        assert_eq!((m.object_type.as_str(), m.deleted), ("person", false));
        assert_eq!(crate::mv::dirty_ids(&db).expect("dirty"), vec![4]);
        // The value index is built again from the objects' attributes.
        let find = |v: &str, any_case| crate::mv::find_by_value(&db, "person", "mail", &v.into(), any_case).expect("find");
        assert_eq!(find("grace@example.org", true), vec![5]);
        assert_eq!(find("grace@example.org", false), Vec::<i64>::new(), "an exact lookup checks the case");
        assert_eq!(find("Grace@Example.org", false), vec![5]);
        assert_eq!(crate::mv::referrers(&db, 4).expect("referrers"), vec![(5, "manager".to_string())]);
        assert_eq!(crate::mv::search(&db, "GRACE", &["mail"], 10).expect("search"), vec![5]);
        // Any letter's case folds, not only ASCII's.
        let save = |attrs: &std::collections::BTreeMap<String, crate::MvAttr>, a: &str| {
            let all = crate::mv::contributions(&db, 4).expect("read");
            let winners = crate::mv::Winners { attrs, changed: &[a.to_string()], old: &[] };
            crate::mv::save_contributed(&db, 4, &all, Some(winners)).expect("saved");
        };
        let mut attrs = std::collections::BTreeMap::new();
        let jorg = crate::MvAttr { values: vec!["Jörg@Example.org".into()], rule: "hr".into(), cs: 9, precedence: 100 };
        attrs.insert("mail".to_string(), jorg);
        save(&attrs, "mail");
        assert_eq!(find("JÖRG@EXAMPLE.ORG", true), vec![4]);
        assert_eq!(crate::mv::search(&db, "JÖ", &["mail"], 10).expect("search"), vec![4]);
        // Lower case, not full case folding: ß and SS stay apart.
        let strasse = crate::MvAttr { values: vec!["Straße".into()], rule: "hr".into(), cs: 9, precedence: 100 };
        attrs.insert("street".to_string(), strasse);
        save(&attrs, "street");
        let street = |v: &str| crate::mv::find_by_value(&db, "person", "street", &v.into(), true).expect("find");
        assert_eq!((street("STRASSE"), street("STRAßE")), (vec![], vec![4]));
        // The rebuilt tables have SCHEMA's indexes again.
        let indexes: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN
                 ('cs_anchor', 'cs_by_dn', 'cs_mv_state', 'cs_pending_export', 'mv_dirty')",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 5);
        // The pending import moved to a table of its own, its column and index gone.
        let pending: String = c.query_row("SELECT group_concat(cs_id || ' ' || kind) FROM cs_pending", [], |r| r.get(0)).expect("pending");
        assert_eq!(pending, "3 update");
        let gone: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('mv_contrib', 'mv_contrib_cs', 'mv_value_v', 'cs_dn', 'cs_mv', 'cs_dn_state', 'cs_pending_import')",
                [],
                |r| r.get(0),
            )
            .expect("gone");
        assert_eq!(gone, 0, "the indexes the schema no longer has are dropped");
        super::init(&c).expect("a second open changes nothing");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99');")
            .expect("v99");
        assert!(super::init(&c).expect_err("refused").contains("schema version 99"));
    }
}
