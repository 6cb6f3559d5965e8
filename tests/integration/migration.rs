//! A metaverse made by the previous release is migrated in place on first open, never
//! rebuilt: the same objects, the same contributions, nothing to change in any target.
use crate::common::Env;

/// The metaverse as the previous release (schema 6) made it: anchors as text, attributes as
/// JSON (a metaverse as small as the quickstart's has no compressed values: checked), no
/// dictionaries.
const BACK_TO_SCHEMA_6: &str = "BEGIN;
UPDATE cs_object SET anchor = {UUID_TEXT} WHERE typeof(anchor) = 'blob';
DROP TABLE dict;
UPDATE meta SET value = '6' WHERE key = 'schema_version';
COMMIT;";

/// A UUID anchor kept as bytes, as text.
const UUID_TEXT: &str = "lower(substr(hex(anchor), 1, 8) || '-' || substr(hex(anchor), 9, 4) || '-' ||
    substr(hex(anchor), 13, 4) || '-' || substr(hex(anchor), 17, 4) || '-' || substr(hex(anchor), 21))";

/// Values compressed, or stored as "the same as desired" (an empty BLOB): none in a schema 6
/// metaverse.
const PACKED: &str = "SELECT (SELECT COUNT(*) FROM cs_object WHERE typeof(attrs) = 'blob' OR typeof(desired) = 'blob')
    + (SELECT COUNT(*) FROM mv_object WHERE typeof(attrs) = 'blob' OR typeof(contrib) = 'blob')";

/// The metaverse as the previous release (schema 7) made it: each metaverse object's
/// contributions in rows of their own, one per source object (uncompressed values only).
const BACK_TO_SCHEMA_7: &str = "BEGIN;
CREATE TABLE mv_contrib (mv_id INTEGER NOT NULL, cs_id INTEGER NOT NULL, items TEXT NOT NULL, PRIMARY KEY (mv_id, cs_id)) WITHOUT ROWID;
INSERT INTO mv_contrib SELECT o.id, CAST(j.key AS INTEGER), json(j.value) FROM mv_object o, json_each(o.contrib) j WHERE o.contrib IS NOT NULL;
ALTER TABLE mv_object DROP COLUMN contrib;
UPDATE meta SET value = '7' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the previous release (schema 12) made it: connector-space objects indexed
/// by DN with their presence, every object (one without a DN too), and by presence nowhere else.
const BACK_TO_SCHEMA_12: &str = "BEGIN;
DROP INDEX cs_by_dn;
DROP INDEX cs_present;
CREATE INDEX cs_by_dn ON cs_object(connector, dn_norm, present);
UPDATE meta SET value = '12' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the release before (schema 11) made it: what import of each object sync
/// has not looked at yet in a column of the object's row, with an index of its own.
const BACK_TO_SCHEMA_11: &str = "BEGIN;
ALTER TABLE cs_object ADD COLUMN pending_import TEXT;
UPDATE cs_object SET pending_import = (SELECT kind FROM cs_pending WHERE cs_id = cs_object.id);
DROP TABLE cs_pending;
CREATE INDEX cs_pending_import ON cs_object(pending_import) WHERE pending_import IS NOT NULL;
UPDATE meta SET value = '11' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the release before (schema 10) made it: target objects' attributes kept
/// whole, not as a patch of their desired state (a byte 0, then JSON: each attribute named has
/// those values, none for absent). A quickstart's desired states are JSON, not compressed:
/// SQLite's merge patch makes them whole (an empty list removes an attribute, as JSON null).
const BACK_TO_SCHEMA_10: &str = "BEGIN;
UPDATE cs_object SET attrs = json_patch(desired, (SELECT json_group_object(j.key, iif(json_array_length(j.value) = 0, json('null'), json(j.value)))
    FROM json_each(CAST(substr(attrs, 2) AS TEXT)) j))
WHERE typeof(attrs) = 'blob' AND substr(attrs, 1, 1) = X'00';
UPDATE meta SET value = '10' WHERE key = 'schema_version';
COMMIT;";

/// Attributes kept as a patch of the desired state.
const PATCHED: &str = "SELECT COUNT(*) FROM cs_object WHERE typeof(attrs) = 'blob' AND substr(attrs, 1, 1) = X'00'";

/// The metaverse as the release before (schema 9) made it: connector-space objects indexed by
/// DN with their links and export states (made again by each way back below it).
const BACK_TO_SCHEMA_9: &str = "BEGIN;
DROP INDEX IF EXISTS cs_by_dn;
CREATE INDEX IF NOT EXISTS cs_dn_state ON cs_object(connector, dn_norm, present, mv_id, link, export_state);
UPDATE meta SET value = '9' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the release before (schema 8) made it: contributions that are the
/// object's winners (kept as an empty BLOB since schema 9) written out as JSON, by source
/// object, then rule and precedence, as schema 8 wrote every object's (uncompressed values only).
const BACK_TO_SCHEMA_8: &str = "BEGIN;
UPDATE mv_object SET contrib = (SELECT json_group_object(cs, json(items)) FROM (
    SELECT cs, json_group_array(json(g)) AS items FROM (
        SELECT json_extract(w.value, '$.cs') AS cs, json_extract(w.value, '$.r') AS r, json_extract(w.value, '$.p') AS p,
            json_object('r', json_extract(w.value, '$.r'), 'p', json_extract(w.value, '$.p'), 'a',
                (SELECT json_group_object(n.value, json(v.value)) FROM json_each(w.value, '$.a') n, json_each(mv_object.attrs, '$.a') v
                 WHERE v.key = n.value)) AS g
        FROM json_each(mv_object.attrs, '$.w') w ORDER BY cs, r, p)
    GROUP BY cs ORDER BY cs))
WHERE typeof(contrib) = 'blob' AND length(contrib) = 0;
UPDATE meta SET value = '8' WHERE key = 'schema_version';
COMMIT;";

/// Contributions kept as the object's winners (an empty BLOB).
const AS_WON: &str = "SELECT COUNT(*) FROM mv_object WHERE typeof(contrib) = 'blob' AND length(contrib) = 0";

/// Each metaverse object's contributions, by source object.
const CONTRIBUTIONS: &str = "SELECT group_concat(o.id || ' ' || j.key || ' ' || j.value, '|') FROM mv_object o, json_each(o.contrib) j";

/// The metaverse as the previous release (schema 5) made it: connector-space objects indexed by
/// DN and by metaverse object alone, so resolving a reference read the object's row.
const BACK_TO_SCHEMA_5: &str = "BEGIN;
DROP INDEX cs_dn_state;
DROP INDEX cs_mv_state;
CREATE INDEX cs_dn ON cs_object(connector, dn_norm);
CREATE INDEX cs_mv ON cs_object(mv_id) WHERE mv_id IS NOT NULL;
UPDATE meta SET value = '5' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the release before (schema 4) wrote it, from schema 5: the rule, source object and
/// precedence with every attribute of an object and every contribution, instead of once per
/// rule. Made from the current one with SQLite's JSON functions (test set-up).
const BACK_TO_SCHEMA_4: &str = "BEGIN;
UPDATE mv_contrib SET items = (SELECT json_group_array(json_object('a', a.key, 'r', json_extract(g.value, '$.r'),
    'p', json_extract(g.value, '$.p'), 'v', json(a.value))) FROM json_each(mv_contrib.items) g, json_each(g.value, '$.a') a);
UPDATE mv_object SET attrs = (SELECT json_group_object(n.value, json_object('v', json(v.value), 'rule', json_extract(w.value, '$.r'),
    'cs', json_extract(w.value, '$.cs'), 'p', json_extract(w.value, '$.p')))
    FROM json_each(mv_object.attrs, '$.w') w, json_each(w.value, '$.a') n, json_each(mv_object.attrs, '$.a') v WHERE v.key = n.value);
UPDATE meta SET value = '4' WHERE key = 'schema_version';
COMMIT;";

/// The metaverse as the release before those (schema 2) wrote it, from schema 4: one contribution
/// row per attribute and rule, objects' attributes before their small columns, every value a
/// row with three indexes (as schema 3 still had it). Made from the current one with SQLite's JSON functions (test set-up).
const BACK_TO_SCHEMA_2: &str = "BEGIN;
CREATE TABLE mv_contrib_v2 (mv_id INTEGER NOT NULL, attr TEXT NOT NULL, cs_id INTEGER NOT NULL, rule TEXT NOT NULL,
    precedence INTEGER NOT NULL, vals TEXT NOT NULL, PRIMARY KEY (mv_id, attr, cs_id, rule));
INSERT INTO mv_contrib_v2 SELECT c.mv_id, json_extract(j.value, '$.a'), c.cs_id, json_extract(j.value, '$.r'),
    json_extract(j.value, '$.p'), json(json_extract(j.value, '$.v')) FROM mv_contrib c, json_each(c.items) j;
DROP TABLE mv_contrib;
ALTER TABLE mv_contrib_v2 RENAME TO mv_contrib;
CREATE INDEX mv_contrib_cs ON mv_contrib(cs_id);
CREATE TABLE cs_object_v2 (id INTEGER PRIMARY KEY, connector TEXT NOT NULL, anchor TEXT, dn TEXT, dn_norm TEXT,
    object_type TEXT NOT NULL, attrs TEXT NOT NULL, present INTEGER NOT NULL DEFAULT 1, desired TEXT, desired_dn TEXT,
    export_state TEXT, pending_import TEXT, pending_export INTEGER NOT NULL DEFAULT 0, mv_id INTEGER, link TEXT, link_rule TEXT, error TEXT);
INSERT INTO cs_object_v2 SELECT id, connector, anchor, dn, dn_norm, object_type, attrs, present, desired, desired_dn,
    export_state, pending_import, pending_export, mv_id, link, link_rule, error FROM cs_object;
DROP TABLE cs_object;
ALTER TABLE cs_object_v2 RENAME TO cs_object;
CREATE UNIQUE INDEX cs_anchor ON cs_object(connector, anchor) WHERE anchor IS NOT NULL;
CREATE INDEX cs_dn ON cs_object(connector, dn_norm);
CREATE INDEX cs_mv ON cs_object(mv_id) WHERE mv_id IS NOT NULL;
CREATE INDEX cs_pending_import ON cs_object(pending_import) WHERE pending_import IS NOT NULL;
CREATE INDEX cs_pending_export ON cs_object(connector) WHERE pending_export = 1;
CREATE TABLE mv_object_v2 (id INTEGER PRIMARY KEY, object_type TEXT NOT NULL, attrs TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0);
INSERT INTO mv_object_v2 SELECT id, object_type, attrs, dirty, deleted FROM mv_object;
DROP TABLE mv_object;
ALTER TABLE mv_object_v2 RENAME TO mv_object;
CREATE INDEX mv_dirty ON mv_object(dirty) WHERE dirty = 1;
DROP TABLE mv_value;
DROP TABLE mv_ref;
CREATE TABLE mv_value (mv_id INTEGER NOT NULL, attr TEXT NOT NULL, value TEXT NOT NULL);
INSERT INTO mv_value SELECT o.id, a.key, CASE WHEN v.type = 'text' THEN v.value
    WHEN json_extract(v.value, '$.ref') IS NOT NULL THEN 'ref:' || json_extract(v.value, '$.ref')
    ELSE 'b64:' || json_extract(v.value, '$.bin') END
    FROM mv_object o, json_each(o.attrs) a, json_each(a.value, '$.v') v;
CREATE INDEX mv_value_v ON mv_value(value, attr);
CREATE INDEX mv_value_ci ON mv_value(attr, lower(value));
CREATE INDEX mv_value_mv ON mv_value(mv_id);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
COMMIT;";

fn sqlite(e: &Env, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(e.path("state/idflow.db"))
        .arg(sql)
        .output()
        .expect("sqlite3 (apt-get install sqlite3) runs");
    assert!(o.status.success(), "sqlite3: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A full sync recomputes every winner from the migrated contributions: all the same, and the
/// target as it was.
fn full_sync_changes_nothing(e: &Env, cloud: &str) {
    let sync = e.ok(&["sync", "--full"], 0).stdout;
    assert!(sync.contains(" 0 metaverse updated") && sync.contains(" 0 provisioned"), "{sync}");
    e.ok(&["apply"], 0);
    assert_eq!(e.read("out/cloud.json"), cloud);
}

/// The first open (a plan) migrates the metaverse to this release's schema, and the plan finds
/// nothing to change in the target.
fn opened_with_nothing_to_change(e: &Env) {
    let plan = e.ok(&["plan"], 0).stdout;
    assert!(plan.contains("No changes"), "{plan}");
    assert_eq!(sqlite(e, "SELECT value FROM meta WHERE key = 'schema_version'"), "13");
}

/// Schema 12 from this release's metaverse (once: the ways further back are taken in steps).
fn back_to_schema_12(e: &Env) {
    if sqlite(e, "SELECT value FROM meta WHERE key = 'schema_version'") == "13" {
        sqlite(e, BACK_TO_SCHEMA_12);
    }
}

/// Schema 11 from this release's metaverse (once).
fn back_to_schema_11(e: &Env) {
    back_to_schema_12(e);
    if sqlite(e, "SELECT value FROM meta WHERE key = 'schema_version'") == "12" {
        sqlite(e, BACK_TO_SCHEMA_11);
    }
}

/// Schema 10 from this release's metaverse, checking there was nothing SQL could not unpack.
fn back_to_schema_10(e: &Env) {
    back_to_schema_11(e);
    assert_eq!(sqlite(e, "SELECT COUNT(*) FROM cs_object WHERE typeof(desired) = 'blob'"), "0", "no compressed desired states");
    sqlite(e, BACK_TO_SCHEMA_10);
    assert_eq!(sqlite(e, PATCHED), "0");
}

/// Schema 9 from this release's metaverse.
fn back_to_schema_9(e: &Env) {
    back_to_schema_10(e);
    sqlite(e, BACK_TO_SCHEMA_9);
}

/// Schema 8 from this release's metaverse, checking there was nothing SQL could not unpack.
fn back_to_schema_8(e: &Env) {
    back_to_schema_9(e);
    assert_eq!(sqlite(e, "SELECT COUNT(*) FROM mv_object WHERE typeof(attrs) = 'blob'"), "0", "no compressed attributes");
    sqlite(e, BACK_TO_SCHEMA_8);
}

/// Schema 7 from this release's metaverse, checking there was nothing SQL could not unpack.
fn back_to_schema_7(e: &Env) {
    back_to_schema_8(e);
    // The quickstart's objects are too few for a dictionary.
    assert_eq!(sqlite(e, "SELECT COUNT(*) FROM mv_object WHERE typeof(contrib) = 'blob'"), "0", "no compressed contributions");
    sqlite(e, BACK_TO_SCHEMA_7);
}

/// Schema 6 from this release's metaverse, checking there was nothing it could not hold.
fn back_to_schema_6(e: &Env) {
    // The quickstart's objects are too few for a dictionary; "the same as desired" is only
    // for target objects without references, which it has (groups without members aside).
    sqlite(e, "UPDATE cs_object SET attrs = desired WHERE typeof(attrs) = 'blob' AND length(attrs) = 0");
    back_to_schema_8(e);
    assert_eq!(sqlite(e, PACKED), "0", "a quickstart metaverse has no compressed values");
    back_to_schema_7(e);
    sqlite(e, &BACK_TO_SCHEMA_6.replace("{UUID_TEXT}", UUID_TEXT));
}

fn indexes(e: &Env) -> String {
    sqlite(e, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cs_object' AND name NOT LIKE 'sqlite_%' ORDER BY name)")
}

#[test]
fn a_schema_12_metaverse_is_migrated_in_place_and_finds_deletions_by_presence() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let now = indexes(&e);
    assert!(now.contains("cs_by_dn") && now.contains("cs_present"), "{now}");
    let by_dn = "SELECT COUNT(*) FROM cs_object INDEXED BY cs_by_dn WHERE dn_norm IS NOT NULL";
    let with_dn = sqlite(&e, by_dn);
    assert_eq!(with_dn, sqlite(&e, "SELECT COUNT(*) FROM cs_object WHERE connector = 'corp'"), "the file target's objects have no DN");
    let rows = "SELECT group_concat(id || ' ' || connector || ' ' || present || ' ' || ifnull(mv_id, '-'), '|') FROM cs_object";
    let before = sqlite(&e, rows);
    let made = "SELECT group_concat(sql, '|') FROM sqlite_master WHERE name IN ('cs_by_dn', 'cs_present')";
    let as_made = sqlite(&e, made);
    back_to_schema_12(&e);
    assert!(!indexes(&e).contains("cs_present"), "{}", indexes(&e));

    opened_with_nothing_to_change(&e);
    assert_eq!(indexes(&e), now, "the old index replaced, the new one made, nothing else");
    assert_eq!(sqlite(&e, made), as_made, "the index by DN made again as this release makes it");
    assert_eq!(sqlite(&e, rows), before, "migrated, not rebuilt");
    assert_eq!(sqlite(&e, by_dn), with_dn);
    let present = "SELECT COUNT(*) FROM cs_object INDEXED BY cs_present WHERE connector = ?1 AND present = 1";
    assert_eq!(sqlite(&e, &present.replace("?1", "'cloud'")), "1025", "every exported object");
    full_sync_changes_nothing(&e, &cloud);
    // A person gone from the directory: the full import finds them by presence, and the target
    // loses them, no one else.
    let ldif = e.read("corp.ldif");
    let start = ldif.find("dn: uid=u000002,").expect("a third person");
    let end = start + ldif[start..].find("\n\n").expect("its end") + 2;
    e.write("corp.ldif", &format!("{}{}", &ldif[..start], &ldif[end..]));
    let out = e.ok(&["apply"], 0).stdout;
    assert!(out.contains("1 deleted"), "{out}");
    assert_eq!(sqlite(&e, &present.replace("?1", "'cloud'")), "1024");
    assert_eq!(sqlite(&e, &present.replace("?1", "'corp'")), (with_dn.parse::<i64>().expect("count") - 1).to_string());
}

#[test]
fn a_schema_11_metaverse_is_migrated_in_place_keeping_what_sync_has_not_looked_at() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    // Imported, not synced: one object changed, one gone; the sync after the migration must
    // still see both.
    let ldif = e.read("corp.ldif");
    let changed = ldif.replacen(
        "title: Consultant\nou: Support\nmanager: uid=u000000",
        "title: Chief Consultant\nou: Support\nmanager: uid=u000000",
        1,
    );
    assert_ne!(changed, ldif);
    let start = changed.find("dn: uid=u000002,").expect("a third person");
    let end = start + changed[start..].find("\n\n").expect("its end") + 2;
    let changed = format!("{}{}", &changed[..start], &changed[end..]);
    e.write("corp.ldif", &changed);
    let import = e.ok(&["import", "corp"], 0).stdout;
    assert!(import.contains("1 updated") && import.contains("1 deleted"), "{import}");
    let pending = "SELECT group_concat(cs_id || ' ' || kind, '|') FROM (SELECT cs_id, kind FROM cs_pending ORDER BY cs_id)";
    let before = sqlite(&e, pending);
    assert_eq!(before.matches('|').count(), 1, "two imports pending: {before}");
    let rows = "SELECT group_concat(id || ' ' || connector || ' ' || ifnull(mv_id, '-') || ' ' || ifnull(error, '-'), '|') FROM cs_object";
    let objects = sqlite(&e, rows);
    back_to_schema_11(&e);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM cs_object WHERE pending_import IS NOT NULL"), "2");

    let plan = e.ok(&["plan"], 0).stdout;
    assert!(plan.contains("Chief Consultant") && plan.contains("delete"), "the plan shows the change and the deletion: {plan}");
    assert_eq!(sqlite(&e, "SELECT value FROM meta WHERE key = 'schema_version'"), "13");
    assert_eq!(sqlite(&e, pending), before, "the same imports pending, in their table");
    assert!(!indexes(&e).contains("cs_pending_import"), "{}", indexes(&e));
    let columns = sqlite(&e, "SELECT group_concat(name) FROM pragma_table_info('cs_object')");
    assert!(!columns.contains("pending_import"), "{columns}");
    assert_eq!(sqlite(&e, rows), objects, "migrated, not rebuilt");
    e.ok(&["apply"], 0);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM cs_pending"), "0", "synced");
    let now = e.read("out/cloud.json");
    assert!(now.contains("Chief Consultant") && now != cloud, "the change reached the target");
}

#[test]
fn a_schema_10_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let patched: i64 = sqlite(&e, PATCHED).parse().expect("count");
    assert!(patched > 0, "exported objects with references kept as a patch of their desired state");
    back_to_schema_10(&e);
    let whole = "SELECT group_concat(id || ' ' || attrs, '|') FROM cs_object WHERE typeof(attrs) = 'text'";
    let before = sqlite(&e, whole);

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, whole), before, "rows as they were");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_9_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let now = indexes(&e);
    assert!(now.contains("cs_by_dn") && !now.contains("cs_dn_state"), "{now}");
    let rows = "SELECT group_concat(id || ' ' || connector || ' ' || ifnull(mv_id, '-') || ' ' || ifnull(link, '-'), '|') FROM cs_object";
    let before = sqlite(&e, rows);
    back_to_schema_9(&e);
    assert!(indexes(&e).contains("cs_dn_state"), "{}", indexes(&e));

    opened_with_nothing_to_change(&e);
    assert_eq!(indexes(&e), now, "the old index replaced, nothing else");
    assert_eq!(sqlite(&e, rows), before, "migrated, not rebuilt");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_8_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let kept_once: i64 = sqlite(&e, AS_WON).parse().expect("count");
    assert!(kept_once > 900, "contributions that are the winners are kept once: {kept_once}");
    back_to_schema_8(&e);
    assert_eq!(sqlite(&e, AS_WON), "0");
    let contributions = sqlite(&e, CONTRIBUTIONS);
    assert_eq!(contributions.matches('|').count() + 1, 1025, "one per metaverse and source object: {contributions}");

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, CONTRIBUTIONS), contributions, "rows as they were");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_7_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    back_to_schema_8(&e);
    let contributions = sqlite(&e, CONTRIBUTIONS);
    let objects = sqlite(&e, "SELECT COUNT(*) FROM mv_object");
    back_to_schema_7(&e);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_contrib"), "1025", "a row per metaverse and source object");

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'mv_contrib'"), "0", "the rows moved, the table went");
    assert_eq!(sqlite(&e, CONTRIBUTIONS), contributions, "the same contributions, in their objects' rows");
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_object"), objects, "migrated, not rebuilt");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_6_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let anchors = "SELECT group_concat(id || ' ' || connector || ' ' || typeof(anchor), '|') FROM cs_object";
    let now = sqlite(&e, anchors);
    assert!(now.contains(" blob"), "UUID anchors are kept as bytes: {now}");
    back_to_schema_6(&e);
    let before = sqlite(&e, "SELECT group_concat(id || ' ' || anchor, '|') FROM cs_object");
    assert!(!sqlite(&e, anchors).contains(" blob"));

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, anchors), now, "the same anchors, kept as bytes again");
    let as_text = format!("SELECT group_concat(id || ' ' || iif(typeof(anchor) = 'blob', {UUID_TEXT}, anchor), '|') FROM cs_object");
    assert_eq!(sqlite(&e, &as_text), before, "each anchor the UUID it was");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_metaverse_of_thousands_is_stored_compressed_and_reads_back_the_same() {
    let e = Env::empty();
    let dir = e.path("bench");
    // Enough objects for each column's dictionary; the bench checks that a full sync and a
    // plan of what is in step change nothing, and that deltas flow.
    let out = e.ok(&["bench", "--people", "3000", "--groups", "150", "--deltas", "1", "--dir", &dir.display().to_string()], 0).stdout;
    let again = out.lines().skip_while(|l| !l.starts_with("full sync again (all in step)")).nth(1).unwrap_or_default();
    assert!(again.trim() == "0 metaverse updated, 0 provisioned", "the second full sync changed something: {out}");
    let plan = out.lines().skip_while(|l| !l.starts_with("plan again (all in step)")).nth(1).unwrap_or_default();
    assert!(plan.trim() == "0 changes", "a plan of what is in step found changes: {out}");
    let db = dir.join("state/idflow.db");
    let q = |sql: &str| {
        let o = std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3 (apt-get install sqlite3) runs");
        assert!(o.status.success(), "sqlite3: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let families = q("SELECT group_concat(family, ' ') FROM (SELECT family FROM dict ORDER BY family)");
    // Nearly every metaverse object's contributions are its winners, kept once (as an empty
    // BLOB), and nearly every target object's attributes a patch of its desired state (its
    // manager resolved): too few others for a dictionary of their own.
    assert_eq!(families, "cs.attrs:corp cs.desired:cloud mv.attrs:", "a dictionary for each column with thousands of values");
    for (what, sql) in [
        ("source objects", "SELECT COUNT(*) FROM cs_object WHERE connector = 'corp' AND typeof(attrs) = 'blob'"),
        ("desired states", "SELECT COUNT(*) FROM cs_object WHERE typeof(desired) = 'blob' AND length(desired) > 0"),
        ("metaverse objects", "SELECT COUNT(*) FROM mv_object WHERE typeof(attrs) = 'blob'"),
        ("contributions kept as the winners", AS_WON),
        ("target objects kept as a patch of their desired state", PATCHED),
        ("anchors", "SELECT COUNT(*) FROM cs_object WHERE typeof(anchor) = 'blob' AND length(anchor) = 16"),
    ] {
        let n: i64 = q(sql).parse().expect("a count");
        assert!(n > 900, "{what}: {n} compressed");
    }
}

#[test]
fn a_schema_5_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let now = indexes(&e);
    assert!(now.contains("cs_by_dn") && now.contains("cs_mv_state"), "{now}");
    back_to_schema_6(&e);
    sqlite(&e, BACK_TO_SCHEMA_5);
    assert!(indexes(&e).contains("cs_dn cs_error"), "{}", indexes(&e));

    opened_with_nothing_to_change(&e);
    assert_eq!(indexes(&e), now, "the old indexes replaced, nothing else");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_2_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let objects = sqlite(&e, "SELECT COUNT(*) FROM mv_object");
    back_to_schema_6(&e);
    sqlite(&e, BACK_TO_SCHEMA_5);
    sqlite(&e, BACK_TO_SCHEMA_4);
    sqlite(&e, BACK_TO_SCHEMA_2);
    let rows: usize = sqlite(&e, "SELECT COUNT(*) FROM mv_contrib").parse().expect("count");
    assert!(rows > 5 * 1025, "schema 2 keeps a row per attribute and rule: {rows}");
    let columns = sqlite(&e, "SELECT group_concat(name) FROM pragma_table_info('cs_object')");
    assert!(columns.starts_with("id,connector,anchor,dn,dn_norm,object_type,attrs"), "{columns}");

    let values = sqlite(&e, "SELECT COUNT(*) FROM mv_value WHERE value NOT LIKE 'ref:%'");
    let refs = sqlite(&e, "SELECT COUNT(*) FROM mv_value WHERE value LIKE 'ref:%'");
    assert_ne!(refs, "0", "the quickstart has members and managers");

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_object o, json_each(o.contrib)"), "1025", "one per metaverse and source object");
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_object"), objects, "migrated, not rebuilt");
    // The value index is built again: values by attribute and key, references on their own.
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_value"), values);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_ref"), refs);
    let columns = sqlite(&e, "SELECT group_concat(name) FROM pragma_table_info('cs_object')");
    assert!(columns.ends_with("attrs,desired"), "{columns}");
    full_sync_changes_nothing(&e, &cloud);
}

#[test]
fn a_schema_4_metaverse_is_migrated_in_place_with_nothing_to_change() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let cloud = e.read("out/cloud.json");
    let objects = sqlite(&e, "SELECT COUNT(*) FROM mv_object");
    back_to_schema_8(&e);
    let rows = sqlite(&e, "SELECT COUNT(*) FROM mv_object o, json_each(o.contrib)");
    let values = sqlite(&e, "SELECT COUNT(*) FROM mv_value");
    let refs = sqlite(&e, "SELECT COUNT(*) FROM mv_ref");
    let winners =
        sqlite(&e, "SELECT group_concat(o.id || ' ' || a.key || ' ' || a.value, '|') FROM mv_object o, json_each(o.attrs, '$.a') a");
    back_to_schema_6(&e);
    sqlite(&e, BACK_TO_SCHEMA_5);
    sqlite(&e, BACK_TO_SCHEMA_4);
    let legacy = sqlite(&e, "SELECT COUNT(*) FROM mv_object WHERE json_type(attrs, '$.displayName.rule') = 'text'");
    assert_ne!(legacy, "0", "schema 4 writes the rule with every attribute");

    opened_with_nothing_to_change(&e);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_object"), objects, "migrated, not rebuilt");
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_object WHERE json_type(attrs, '$.w') = 'array'"), objects, "every object rewritten");
    assert_eq!(
        sqlite(&e, "SELECT COUNT(*) FROM mv_object o, json_each(o.contrib) j WHERE json_type(j.value, '$[0].a') = 'object'"),
        rows,
        "every contribution rewritten"
    );
    assert_eq!(
        sqlite(&e, "SELECT group_concat(o.id || ' ' || a.key || ' ' || a.value, '|') FROM mv_object o, json_each(o.attrs, '$.a') a"),
        winners,
        "the same winning values"
    );
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_value"), values);
    assert_eq!(sqlite(&e, "SELECT COUNT(*) FROM mv_ref"), refs);
    full_sync_changes_nothing(&e, &cloud);
}
