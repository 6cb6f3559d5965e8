//! The password hash sync stage: runs after sync for every person linked to both the hash
//! source and a target, delivers a hash only when its keyed fingerprint changed, hashes in
//! parallel on all cores, and never writes a hash, a salt or a PPH1 string anywhere but into
//! the target.
//!
//! In three steps: what each person needs is worked out from the pull (nothing written), the
//! hashes are transformed, then each target gets its batches and each delivery is recorded.
use super::fingerprint::Key;
use super::pph1;
use crate::config::{Config, PhsFormat, PhsSection};
use idflow_core::connector::{AttrChange, ChangeKind, Connector, ExportOp, OpKind, OpResult};
use idflow_core::hash::{HashResult, HashSource, NtHash, PullRequest};
use idflow_core::{Error, ObjectError, Result, Stage, Value};
use idflow_store::{PhsPair, ReadOps, Store, WriteOps};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// One hash to deliver to one target object.
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
    let mut s: HashSet<String> = [
        "userpassword",
        "unicodepwd",
        "sambantpassword",
        "sambalmpassword",
        "ntpwdhistory",
        "lmpwdhistory",
        "dbcspwd",
        "supplementalcredentials",
    ]
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
pub(crate) fn run(
    store: &Store,
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
    let wm_key = format!("phs.watermark.{}", p.source);
    // Persons linked to the source (inbound) and to a target that exists there.
    let (pairs, stored) = {
        let r = store.read()?;
        let pairs: Vec<PhsPair> = r.phs_pairs(&p.source)?.into_iter().filter(|x| p.targets.contains_key(&x.connector)).collect();
        (pairs, r.meta_get(&wm_key)?)
    };
    stats.candidates = pairs.len();
    if pairs.is_empty() {
        return Ok(stats);
    }
    // Persons whose hash never reached one of their targets: an incremental source reads them too.
    let mut wanted: Vec<String> = pairs.iter().filter(|pr| pr.delivered.is_none()).map(|pr| pr.anchor.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let pull = source.read(&PullRequest { watermark: stored.as_deref(), full, wanted: &wanted })?;
    stats.pulled = pull.hashes.len();
    stats.incremental = !pull.complete;
    let absent: HashSet<String> = pull.absent.into_iter().collect();
    let (work, without_hash) = classify(p, pairs, &pull.hashes, pull.complete, &absent, &key, full, &mut stats, errors);
    drop(pull.hashes);
    // Remembered, so that an incremental source stops asking for them; a hash set later
    // arrives as a change.
    if !without_hash.is_empty() {
        let tx = store.write()?;
        for id in without_hash {
            tx.phs_mark_without_hash(id)?;
        }
        tx.commit()?;
    }
    // The expensive part, on every core.
    let t = std::time::Instant::now();
    let by_target = transform(p, &work)?;
    stats.hashing_ms = t.elapsed().as_millis();
    let delivery_failures = deliver(store, p, &work, by_target, open, &mut stats, errors)?;
    // The source's watermark moves only when everything it read has been delivered; otherwise
    // the next run reads the same changes again (what was delivered is skipped by fingerprint).
    if let Some(wm) = pull.watermark {
        if delivery_failures == 0 {
            let tx = store.write()?;
            tx.meta_set(&wm_key, &wm)?;
            tx.commit()?;
        } else {
            tracing::warn!(source = %p.source, failures = delivery_failures, "password hash sync: deliveries failed; the source's watermark stays where it was");
        }
    }
    stats.total_ms = started.elapsed().as_millis();
    Ok(stats)
}

/// What each person needs, from what the source read: a delivery (its hash changed or never
/// arrived), nothing (unchanged), a note that it has no hash, or an error. Writes nothing.
#[allow(clippy::too_many_arguments)]
fn classify(
    p: &PhsSection,
    pairs: Vec<PhsPair>,
    hashes: &HashMap<String, HashResult>,
    complete: bool,
    absent: &HashSet<String>,
    key: &Key,
    full: bool,
    stats: &mut PhsStats,
    errors: &mut Vec<ObjectError>,
) -> (Vec<Work>, Vec<i64>) {
    let mut reported = HashSet::new();
    let mut work = Vec::new();
    let mut without_hash = Vec::new();
    for PhsPair { anchor, display, target_cs, connector, t_anchor, t_dn, t_type, delivered } in pairs {
        match hashes.get(&anchor) {
            None if !complete && !absent.contains(&anchor) => stats.unchanged += 1,
            None => {
                stats.without_hash += 1;
                without_hash.push(target_cs);
            }
            Some(Err(m)) => {
                if reported.insert(anchor.clone()) {
                    stats.failed += 1;
                    errors.push(ObjectError::new(Stage::Phs, &p.source, display.clone(), m.clone()));
                }
            }
            Some(Ok(nt)) => {
                let fp = key.fingerprint(&connector, nt);
                if !full && delivered.as_deref() == Some(fp.as_str()) {
                    stats.unchanged += 1;
                    continue;
                }
                work.push(Work {
                    target_cs,
                    connector,
                    anchor: t_anchor,
                    dn: t_dn,
                    object_type: t_type,
                    display,
                    nt: nt.clone(),
                    fingerprint: fp,
                });
            }
        }
    }
    (work, without_hash)
}

/// Per target connector: an index into the work and the value to deliver, wiped when dropped.
type ByTarget = BTreeMap<String, Vec<(usize, Zeroizing<String>)>>;

/// Each hash in its target's format (PPH1 or NT hex), grouped by target.
fn transform(p: &PhsSection, work: &[Work]) -> Result<ByTarget> {
    let values: Vec<std::result::Result<Zeroizing<String>, String>> = work
        .par_iter()
        .map(|w| match p.targets.get(&w.connector).map(|t| t.format) {
            Some(PhsFormat::Nt) => Ok(Zeroizing::new(hex::encode_upper(w.nt.as_slice()))),
            _ => pph1::transform(&w.nt),
        })
        .collect();
    let mut by_target = ByTarget::new();
    for (i, v) in values.into_iter().enumerate() {
        match v {
            Ok(v) => by_target.entry(work[i].connector.clone()).or_default().push((i, v)),
            Err(m) => return Err(Error::Refused(format!("password hash sync: {m}"))),
        }
    }
    Ok(by_target)
}

/// Sends each target its hashes in batches and records each delivery (its fingerprint) as the
/// target confirms it. Returns how many deliveries failed.
fn deliver(
    store: &Store,
    p: &PhsSection,
    work: &[Work],
    by_target: ByTarget,
    open: &dyn Fn(&str) -> Result<Box<dyn Connector>>,
    stats: &mut PhsStats,
    errors: &mut Vec<ObjectError>,
) -> Result<usize> {
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
                    changes: vec![AttrChange {
                        attr: attribute.clone(),
                        kind: ChangeKind::Replace,
                        values: vec![Value::Str(v.to_string())],
                    }],
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
            let tx = store.write()?;
            for ((i, _), r) in chunk.iter().zip(results) {
                let w = &work[*i];
                match r {
                    OpResult::Done { .. } => {
                        stats.delivered += 1;
                        tx.phs_delivered(w.target_cs, &w.fingerprint)?;
                    }
                    OpResult::Failed(m) => {
                        stats.failed += 1;
                        delivery_failures += 1;
                        let mut e = ObjectError::new(Stage::Phs, &connector, w.display.clone(), format!("delivery failed: {m}"));
                        e.cs_id = Some(w.target_cs);
                        errors.push(e);
                    }
                }
            }
            tx.commit()?;
        }
    }
    Ok(delivery_failures)
}
