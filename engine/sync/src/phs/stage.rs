//! The password hash sync stage: runs after sync for every person linked to both the hash
//! source and a target, delivers a hash only when its keyed fingerprint changed, hashes in
//! parallel on all cores, and never writes a hash, a salt or a PPH1 string anywhere but into
//! the target.
use super::fingerprint::Key;
use super::pph1::{self, NtHash};
use super::source::{HashSource, PullRequest};
use crate::config::{Config, PhsFormat};
use crate::connector::{AttrChange, ChangeKind, Connector, ExportOp, OpKind, OpResult};
use crate::error::{Error, Result};
use crate::store::history::{now, ObjectError};
use crate::value::Value;
use rayon::prelude::*;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PhsStats {
    /// Persons linked to the source and a target.
    pub candidates: usize,
    /// Their hash is as last delivered.
    pub unchanged: usize,
    pub delivered: usize,
    pub failed: usize,
    /// No hash in the source (no password set, or not a password account).
    pub without_hash: usize,
    /// Hashes the source read (an incremental source reads only what changed).
    pub pulled: usize,
    /// The source read only changes since its watermark.
    pub incremental: bool,
    pub hashing_ms: u128,
    pub total_ms: u128,
}

/// A person linked to the source (anchor, name) and to one target object (id, connector, anchor, DN).
struct Pair {
    anchor: String,
    display: String,
    target_cs: i64,
    connector: String,
    t_anchor: Option<String>,
    t_dn: Option<String>,
    t_type: String,
    /// The fingerprint last delivered to the target object (`-`: the source had no hash).
    delivered: Option<String>,
}

struct Work {
    target_cs: i64,
    connector: String,
    anchor: Option<String>,
    dn: Option<String>,
    object_type: String,
    display: String,
    nt: NtHash,
    fingerprint: String,
}

/// Attributes that hold secrets: never kept in a connector space, whatever the rules say.
pub fn secret_attributes(config: &Config, connector: &str) -> HashSet<String> {
    let mut s: HashSet<String> = ["userpassword", "unicodepwd", "sambantpassword", "sambalmpassword", "ntpwdhistory", "lmpwdhistory", "dbcspwd", "supplementalcredentials"]
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(p) = &config.password_hash_sync {
        if p.source == connector {
            s.insert(p.hash_attribute.to_lowercase());
        }
        if let Some(t) = p.targets.get(connector) {
            s.insert(t.attribute.to_lowercase());
        }
    }
    s
}


/// Runs the stage. `open` opens a target connector by name.
pub fn run(
    conn: &Connection,
    config: &Config,
    source: &mut dyn HashSource,
    open: &dyn Fn(&str) -> Result<Box<dyn Connector>>,
    full: bool,
    errors: &mut Vec<ObjectError>,
) -> Result<PhsStats> {
    let started = std::time::Instant::now();
    let Some(p) = &config.password_hash_sync else { return Ok(PhsStats::default()) };
    let key = Key::load_or_create(&config.phs_key_file)?;
    let mut stats = PhsStats::default();
    // Persons linked to the source (inbound) and to a target that exists there.
    let targets: Vec<&String> = p.targets.keys().collect();
    let mut pairs: Vec<Pair> = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT s.anchor, coalesce(s.dn, s.anchor), t.id, t.connector, t.anchor, coalesce(t.desired_dn, t.dn), t.object_type, ps.fingerprint
             FROM cs_object s JOIN cs_object t ON t.mv_id = s.mv_id AND t.id <> s.id
             LEFT JOIN phs_state ps ON ps.cs_id = t.id
             WHERE s.connector = ?1 AND s.link IN ('joined','projected') AND s.anchor IS NOT NULL
               AND t.link IN ('provisioned','adopted') AND t.export_state = 'present' AND t.present = 1
             ORDER BY t.id",
        )?;
        let rows = st.query_map([&p.source], |r| {
            Ok(Pair {
                anchor: r.get(0)?,
                display: r.get(1)?,
                target_cs: r.get(2)?,
                connector: r.get(3)?,
                t_anchor: r.get(4)?,
                t_dn: r.get(5)?,
                t_type: r.get(6)?,
                delivered: r.get(7)?,
            })
        })?;
        for row in rows {
            let row = row?;
            if targets.contains(&&row.connector) {
                pairs.push(row);
            }
        }
    }
    stats.candidates = pairs.len();
    if pairs.is_empty() {
        return Ok(stats);
    }
    // Persons whose hash never reached one of their targets: an incremental source reads them too.
    let mut wanted: Vec<String> = pairs.iter().filter(|pr| pr.delivered.is_none()).map(|pr| pr.anchor.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let wm_key = format!("phs.watermark.{}", p.source);
    let stored = crate::store::get_meta(conn, &wm_key)?;
    let pull = source.read(&PullRequest { watermark: stored.as_deref(), full, wanted: &wanted })?;
    stats.pulled = pull.hashes.len();
    stats.incremental = !pull.complete;
    let hashes = pull.hashes;
    let absent: HashSet<String> = pull.absent.into_iter().collect();
    let mut reported = HashSet::new();
    let mut work = Vec::new();
    for Pair { anchor, display, target_cs, connector, t_anchor, t_dn, t_type, delivered } in pairs {
        match hashes.get(&anchor) {
            None if !pull.complete && !absent.contains(&anchor) => stats.unchanged += 1,
            None => {
                stats.without_hash += 1;
                // Remembered, so that an incremental source stops asking for it; a hash set
                // later arrives as a change.
                conn.prepare_cached("INSERT INTO phs_state(cs_id, fingerprint, delivered) VALUES (?1, '-', ?2) ON CONFLICT(cs_id) DO NOTHING")?
                    .execute(params![target_cs, now()])?;
            }
            Some(Err(m)) => {
                if reported.insert(anchor.clone()) {
                    stats.failed += 1;
                    errors.push(ObjectError {
                        stage: "phs".into(),
                        connector: Some(p.source.clone()),
                        object: Some(display.clone()),
                        cs_id: None,
                        mv_id: None,
                        rule: None,
                        message: m.clone(),
                    });
                }
            }
            Some(Ok(nt)) => {
                let fp = key.fingerprint(&connector, nt);
                if !full && delivered.as_deref() == Some(fp.as_str()) {
                    stats.unchanged += 1;
                    continue;
                }
                work.push(Work { target_cs, connector, anchor: t_anchor, dn: t_dn, object_type: t_type, display, nt: nt.clone(), fingerprint: fp });
            }
        }
    }
    drop(hashes);
    // The expensive part, on every core.
    let t = std::time::Instant::now();
    let values: Vec<std::result::Result<Zeroizing<String>, String>> = work
        .par_iter()
        .map(|w| match p.targets.get(&w.connector).map(|t| t.format) {
            Some(PhsFormat::Nt) => Ok(Zeroizing::new(hex::encode_upper(w.nt.as_slice()))),
            _ => pph1::transform(&w.nt),
        })
        .collect();
    stats.hashing_ms = t.elapsed().as_millis();
    let mut by_target: BTreeMap<String, Vec<(usize, Zeroizing<String>)>> = BTreeMap::new();
    for (i, v) in values.into_iter().enumerate() {
        match v {
            Ok(v) => by_target.entry(work[i].connector.clone()).or_default().push((i, v)),
            Err(m) => return Err(Error::Refused(format!("password hash sync: {m}"))),
        }
    }
    let mut delivery_failures = 0usize;
    for (connector, items) in by_target {
        let attribute = p.targets.get(&connector).map(|t| t.attribute.clone()).unwrap_or_default();
        let mut target = open(&connector)?;
        let batch = target.capabilities().max_batch.max(1);
        for chunk in items.chunks(batch) {
            let mut ops: Vec<ExportOp> = chunk
                .iter()
                .map(|(i, v)| ExportOp {
                    cs_id: work[*i].target_cs,
                    kind: OpKind::Update,
                    object_type: work[*i].object_type.clone(),
                    anchor: work[*i].anchor.clone(),
                    dn: work[*i].dn.clone(),
                    new_dn: None,
                    attrs: Default::default(),
                    changes: vec![AttrChange { attr: attribute.clone(), kind: ChangeKind::Replace, values: vec![Value::Str(v.to_string())] }],
                })
                .collect();
            let results = target.export(&ops);
            // Whatever happened, the copies in the operations are wiped.
            for op in &mut ops {
                for c in &mut op.changes {
                    for v in &mut c.values {
                        if let Value::Str(s) = v {
                            s.zeroize();
                        }
                    }
                }
            }
            let results = results?;
            let tx = conn.unchecked_transaction()?;
            for ((i, _), r) in chunk.iter().zip(results) {
                let w = &work[*i];
                match r {
                    OpResult::Done { .. } => {
                        stats.delivered += 1;
                        tx.prepare_cached(
                            "INSERT INTO phs_state(cs_id, fingerprint, delivered) VALUES (?1,?2,?3)
                             ON CONFLICT(cs_id) DO UPDATE SET fingerprint=excluded.fingerprint, delivered=excluded.delivered",
                        )?
                        .execute(params![w.target_cs, w.fingerprint, now()])?;
                    }
                    OpResult::Failed(m) => {
                        stats.failed += 1;
                        delivery_failures += 1;
                        errors.push(ObjectError {
                            stage: "phs".into(),
                            connector: Some(connector.clone()),
                            object: Some(w.display.clone()),
                            cs_id: Some(w.target_cs),
                            mv_id: None,
                            rule: None,
                            message: format!("delivery failed: {m}"),
                        });
                    }
                }
            }
            tx.commit()?;
        }
    }
    // The source's watermark moves only when everything it read has been delivered; otherwise
    // the next run reads the same changes again (what was delivered is skipped by fingerprint).
    if let Some(wm) = pull.watermark {
        if delivery_failures == 0 {
            crate::store::set_meta(conn, &wm_key, &wm)?;
        } else {
            tracing::warn!(source = %p.source, failures = delivery_failures, "password hash sync: deliveries failed; the source's watermark stays where it was");
        }
    }
    stats.total_ms = started.elapsed().as_millis();
    Ok(stats)
}
