//! Password hash sync state: per target object, the keyed fingerprint of the hash last
//! delivered there (never the hash), and the persons linked to the source and a target.
use crate::history::now;
use rusqlite::{params, Connection, Result};

/// A person linked to the hash source (anchor, name) and to one target object.
#[derive(Debug, Clone, PartialEq)]
pub struct PhsPair {
    /// The source object's anchor.
    pub anchor: String,
    /// The source object's DN, else its anchor.
    pub display: String,
    pub target_cs: i64,
    pub connector: String,
    pub t_anchor: Option<String>,
    /// The target object's DN (the one it will have, where a rename is pending).
    pub t_dn: Option<String>,
    pub t_type: String,
    /// The fingerprint last delivered to the target object (`-`: the source had no hash).
    pub delivered: Option<String>,
}

pub(crate) fn pairs(c: &Connection, source: &str) -> Result<Vec<PhsPair>> {
    let mut st = c.prepare_cached(
        "SELECT s.anchor, s.dn, t.id, t.connector, t.anchor, coalesce(t.desired_dn, t.dn), t.object_type, ps.fingerprint
         FROM cs_object s JOIN cs_object t ON t.mv_id = s.mv_id AND t.id <> s.id
         LEFT JOIN phs_state ps ON ps.cs_id = t.id
         WHERE s.connector = ?1 AND s.link IN ('joined','projected') AND s.anchor IS NOT NULL
           AND t.link IN ('provisioned','adopted') AND t.export_state = 'present' AND t.present = 1
         ORDER BY t.id",
    )?;
    let rows = st.query_map([source], |r| {
        // Not null (the statement asks for anchored sources).
        let anchor = crate::anchor::read(r, 0)?.unwrap_or_default();
        Ok(PhsPair {
            display: r.get::<_, Option<String>>(1)?.unwrap_or_else(|| anchor.clone()),
            anchor,
            target_cs: r.get(2)?,
            connector: r.get(3)?,
            t_anchor: crate::anchor::read(r, 4)?,
            t_dn: r.get(5)?,
            t_type: r.get(6)?,
            delivered: r.get(7)?,
        })
    })?;
    rows.collect()
}

pub(crate) fn mark_without_hash(c: &Connection, target_cs: i64) -> Result<()> {
    c.prepare_cached("INSERT INTO phs_state(cs_id, fingerprint, delivered) VALUES (?1, '-', ?2) ON CONFLICT(cs_id) DO NOTHING")?
        .execute(params![target_cs, now()])?;
    Ok(())
}

pub(crate) fn delivered(c: &Connection, target_cs: i64, fingerprint: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO phs_state(cs_id, fingerprint, delivered) VALUES (?1,?2,?3)
         ON CONFLICT(cs_id) DO UPDATE SET fingerprint=excluded.fingerprint, delivered=excluded.delivered",
    )?
    .execute(params![target_cs, fingerprint, now()])?;
    Ok(())
}

/// The target object is gone (from its directory, or from the metaverse's records): what was
/// delivered to it is not there any more, and a copy made again gets the hash again.
pub(crate) fn forget(c: &Connection, target_cs: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM phs_state WHERE cs_id=?1")?.execute([target_cs])?;
    Ok(())
}
