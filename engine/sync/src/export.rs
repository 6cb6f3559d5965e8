//! Export: pending changes out to a connector, in dependency order, each result recorded.
//!
//! Before anything is sent, the deletion threshold is checked: an export that would delete more
//! objects than `deletion_threshold` stops before deleting anything, unless `--allow-deletes N`
//! covers the count. Results are committed per batch (per write, for a connector that holds
//! several batches unwritten: the file), so a crash loses at most what one commit holds, which
//! the next import recovers (anchors idflow assigned are recognized).
use crate::ahead::Spent;
use crate::diff::{self, Change};
use crate::export_ahead::{self, Batch, BatchesAhead};
use crate::observer::Observer;
use crate::references;
use idflow_core::connector::{apply_changes, Connector, ExportOp, OpKind, OpResult, RefForm};
use idflow_core::{Attrs, Error, ObjectError, Result, Stage, Value};
use idflow_store::{CsLinks, CsObject, ReadOps, Store, WriteOps, WriteTxn};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ExportStats {
    pub connector: String,
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Changes still waiting for a referenced object to be created.
    pub waiting: usize,
    pub calls: usize,
    /// The circuit breaker opened: the target failed this many operations in a row, and the
    /// export to it stopped for this run (the rest stays pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after: Option<usize>,
    /// Stopped between batches because the service is stopping; the rest stays pending.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// Requests the export made (connectors that count them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<usize>,
    /// How long the export took, in milliseconds.
    #[serde(default)]
    pub ms: u64,
}

/// Operations in a row a target may fail before the export to it stops for the run (the
/// circuit breaker).
pub(crate) const BREAKER: usize = 20;

/// What plan and sync say while a connector's deletions exceed the threshold.
pub(crate) fn held(connector: &str, deletes: usize, threshold: usize) -> String {
    format!(
        "{deletes} deletions in {connector:?} are held by the deletion threshold ({threshold}): export refuses them. \
         If they are meant, run `idflow apply --allow-deletes {deletes}`; if not, fix the source and run again \
         (what comes back keeps its target objects: nothing is deleted or re-created)"
    )
}

pub(crate) fn check_threshold(connector: &str, deletes: usize, threshold: usize, allow_deletes: Option<usize>) -> Result<()> {
    if deletes > threshold && allow_deletes.is_none_or(|n| deletes > n) {
        return Err(Error::Refused(format!(
            "export to {connector:?} would delete {deletes} objects, more than the deletion threshold ({threshold}); \
             nothing was exported to {connector:?}. Review them with `idflow plan`; if they are meant, run \
             `idflow apply --allow-deletes {deletes}`"
        )));
    }
    Ok(())
}

/// What ordering needs of a pending change: its kind, how deep its DN is, and the objects an
/// add references. The values are computed again per batch, so a pass over a million changes
/// holds a few dozen bytes for each, not the changes.
pub(crate) struct Pending {
    cs_id: i64,
    kind: OpKind,
    depth: usize,
    refs: Vec<i64>,
}

/// What an export of `connector`, whose ids are idflow's, has to send, from the links of its
/// objects pending export.
fn pending_links(r: &dyn ReadOps, connector: &str) -> Result<Vec<Pending>> {
    let mut changes = Vec::new();
    r.cs_pending_export_links(connector, &mut |l| changes.extend(Pending::lean(&l)))?;
    Ok(changes)
}

/// Preloads `idents` (as [`diff::Idents::preload_for`] says), and where the target's ids are
/// idflow's (`local_anchor`) reads the first pass's [`pending_links`] in `r` meanwhile: the
/// preload then runs on a thread and a connection of its own (at a million, each takes about
/// half a second, and nothing else runs yet). `None`: not read here (another target, or no
/// second connection), the pass reads them.
fn preload_reading_links(
    store: &Store,
    r: &dyn ReadOps,
    connector: &str,
    local_anchor: bool,
    pending: i64,
    idents: &mut diff::Idents,
) -> Result<Option<Vec<Pending>>> {
    let reader = if local_anchor && pending >= LINKS_APART_FROM { store.reader().ok().flatten() } else { None };
    let Some(reader) = reader else {
        idents.preload_for(r, connector, pending)?;
        return Ok(None);
    };
    let mut apart = diff::Idents::new(idents.form());
    let (links, preloaded) = std::thread::scope(|s| {
        let preloading = std::thread::Builder::new()
            .name("idflow-export-preload".into())
            .spawn_scoped(s, move || apart.preload_for(&reader.read()?, connector, pending).map(|()| apart))
            .ok();
        (pending_links(r, connector), preloading.map(|t| t.join()))
    });
    match preloaded {
        Some(Ok(Ok(p))) => *idents = p,
        // No thread, one that panicked, or a read of the other connection that failed: here,
        // as without one.
        Some(Ok(Err(e))) => {
            tracing::debug!(error = %e, "identifiers not preloaded on a connection of their own");
            idents.preload_for(r, connector, pending)?;
        }
        Some(Err(_)) | None => idents.preload_for(r, connector, pending)?,
    }
    links.map(Some)
}

/// Pending changes from which [`preload_reading_links`] reads on two connections: below, a
/// connection and a thread cost more than they spare (a delta's few changes).
const LINKS_APART_FROM: i64 = 10_000;

/// How deep a DN is (0 for none, or one that does not parse).
fn depth(dn: Option<&str>) -> usize {
    dn.map(|d| idflow_core::dn::parse(d).map(|r| r.len()).unwrap_or(0)).unwrap_or(0)
}

impl Pending {
    /// Read from the object's links and states alone, for a target whose objects get their ids
    /// as they are provisioned: every reference to one resolves, so an add waits for none.
    /// An update counted here may still turn out to change nothing (its batch skips it then).
    fn lean(l: &CsLinks) -> Option<Pending> {
        let kind = diff::kind_of(l.export_state, l.present)?;
        let depth = match kind {
            OpKind::Add => depth(diff::new_dn(kind, l.desired_dn.as_deref(), l.dn.as_deref()).as_deref().or(l.dn.as_deref())),
            _ => 0,
        };
        Some(Pending { cs_id: l.id, kind, depth, refs: Vec::new() })
    }

    /// `desired`: the object's desired values. An add comes after the adds of every object
    /// they reference, resolved or not: one deleted in the target and added again keeps its
    /// old id until its add gives it a new one.
    fn of(c: &Change, desired: Option<&Attrs>) -> Pending {
        let mut depth = 0;
        let mut refs: Vec<i64> = Vec::new();
        if c.kind == OpKind::Add {
            depth = self::depth(c.new_dn.as_deref().or(c.dn.as_deref()));
            for values in desired.into_iter().flat_map(|d| d.values()) {
                refs.extend(values.iter().filter_map(|v| match v {
                    Value::Ref(r) if *r != c.cs_id => Some(*r),
                    _ => None,
                }));
            }
        }
        Pending { cs_id: c.cs_id, kind: c.kind, depth, refs }
    }
}

/// Orders changes: adds (an object before the objects that reference it), updates, deletes.
/// Returns each change's object with its level: adds referencing no other add are level 0, the
/// others one more than the deepest add they reference; updates and deletes come after every add.
pub(crate) fn order(changes: Vec<Pending>) -> Vec<(usize, i64)> {
    // Adds by id, sorted (they come in id order, from the pending export index): looked up by
    // a binary search, their levels and visits kept beside them (at a million, maps of them
    // were a third of the time before the first batch).
    let mut adds: Vec<Pending> = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for c in changes {
        match c.kind {
            OpKind::Add => adds.push(c),
            OpKind::Update => updates.push(c.cs_id),
            OpKind::Delete => deletes.push(c.cs_id),
        }
    }
    if !adds.is_sorted_by_key(|c| c.cs_id) {
        adds.sort_by_key(|c| c.cs_id);
    }
    // An id twice: its last change counts, as a map keyed by id would keep it.
    adds.dedup_by(|later, earlier| {
        let same = later.cs_id == earlier.cs_id;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    /// Not known yet, in `memo`.
    const UNKNOWN: usize = usize::MAX;
    fn level(i: usize, adds: &[Pending], memo: &mut [usize], visiting: &mut [bool]) -> usize {
        if memo[i] != UNKNOWN {
            return memo[i];
        }
        // A reference cycle: whoever closes it goes first; the other reference waits a pass.
        if visiting[i] {
            return 0;
        }
        visiting[i] = true;
        let mut l = 0;
        for r in &adds[i].refs {
            if let Ok(j) = adds.binary_search_by_key(r, |c| c.cs_id) {
                l = l.max(level(j, adds, memo, visiting) + 1);
            }
        }
        visiting[i] = false;
        memo[i] = l;
        l
    }
    let mut memo = vec![UNKNOWN; adds.len()];
    let mut visiting = vec![false; adds.len()];
    // Parents before children (an OU before what it holds), then references first.
    let mut keyed: Vec<(usize, usize, i64)> =
        (0..adds.len()).map(|i| (level(i, &adds, &mut memo, &mut visiting), adds[i].depth, adds[i].cs_id)).collect();
    keyed.sort_unstable();
    let top = keyed.last().map(|k| k.0 + 1).unwrap_or(0);
    let mut out: Vec<(usize, i64)> = keyed.into_iter().map(|(l, _, id)| (l, id)).collect();
    out.extend(updates.into_iter().map(|id| (top, id)));
    out.extend(deletes.into_iter().map(|id| (top + 1, id)));
    out
}

/// Exports one connector's pending changes. What is pending is read in a read transaction;
/// each batch's results are committed in a write transaction of their own, after the
/// connector answered, so the database is never locked during network I/O. A connector that
/// holds batches unwritten (it does no network I/O: [`Connector::export_held`]) has them
/// recorded in one transaction, committed once it wrote them.
pub(crate) fn export(
    store: &Store,
    connector: &mut dyn Connector,
    threshold: usize,
    allow_deletes: Option<usize>,
    observer: &dyn Observer,
) -> Result<(ExportStats, Vec<ObjectError>)> {
    let exported = export_batches(store, connector, threshold, allow_deletes, observer);
    if exported.is_err() {
        // What it answered and holds unwritten was not recorded (rolled back): never written
        // (a write it began is waited for; what that wrote, the next import or export finds,
        // as after a run killed between writing and recording).
        connector.discard();
    }
    exported
}

fn export_batches(
    store: &Store,
    connector: &mut dyn Connector,
    threshold: usize,
    allow_deletes: Option<usize>,
    observer: &dyn Observer,
) -> Result<(ExportStats, Vec<ObjectError>)> {
    let name = connector.name().to_string();
    let caps = connector.capabilities();
    let form = caps.reference_form;
    let mut stats = ExportStats { connector: name.clone(), ..Default::default() };
    let before = connector.requests();
    let mut errors = Vec::new();
    let mut failures_in_a_row = 0usize;
    // Only `record` changes what references resolve to while this export runs (the run lock
    // keeps other writers out), and it forgets what it changed. The capabilities' form is the
    // one recorded for the connector (when the engine opened).
    let mut idents = diff::Idents::new(form);
    let mut first = {
        let r = store.read()?;
        let pending = r.cs_count_pending_export(Some(&name))?;
        preload_reading_links(store, &r, &name, caps.local_anchor, pending, &mut idents)?
    };
    'passes: for pass in 0..3 {
        let changes = match first.take() {
            Some(read) => read,
            None if caps.local_anchor => pending_links(&store.read()?, &name)?,
            None => {
                let r = store.read()?;
                let mut changes = Vec::new();
                for id in r.cs_pending_export_ids(&name)? {
                    let Some(o) = r.cs_get(id)? else { continue };
                    if let Some(c) = diff::change_with(&r, &o, form, &mut idents)? {
                        changes.push(Pending::of(&c, o.desired.as_ref()));
                    }
                }
                changes
            }
        };
        if pass == 0 {
            check_threshold(&name, changes.iter().filter(|c| c.kind == OpKind::Delete).count(), threshold, allow_deletes)?;
            observer.step_total(changes.len() as u64);
        }
        // Batches never mix levels where the target assigns ids: a reference to an object
        // created in the same batch could not be resolved yet.
        let mut batches: Vec<Vec<i64>> = Vec::new();
        let mut current: Vec<i64> = Vec::new();
        let mut current_level = None;
        for (level, cs_id) in order(changes) {
            let new_level = !caps.local_anchor && current_level.is_some_and(|l| l != level);
            if !current.is_empty() && (current.len() >= caps.max_batch.max(1) || new_level) {
                batches.push(std::mem::take(&mut current));
            }
            current_level = Some(level);
            current.push(cs_id);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        let mut added_this_pass = 0;
        let mut sent_this_pass = 0;
        let mut waiting = 0;
        // What is recorded of batches the connector holds unwritten (export_held): committed
        // once it wrote them, so that the database never says more than the target holds.
        let mut open: Option<WriteTxn<'_>> = None;
        // Where the target's ids are idflow's, the next batch is made ahead while this one is
        // sent and recorded.
        let batches = Arc::new(batches);
        let mut ahead = if caps.local_anchor { BatchesAhead::start(store, &batches, &idents) } else { None };
        for (j, chunk) in batches.iter().enumerate() {
            if observer.stop_requested() {
                settle(connector, open.take())?;
                stats.stopped = true;
                break 'passes;
            }
            // Made per batch: an earlier batch may have created what a reference needs. With
            // each object, what its add references when every reference resolved (recording it
            // then needs no second comparison: diff::in_step_after_add). Marked before the
            // batch's changes are made (or, when made ahead, taken: every batch recorded since
            // they were made forgot nothing): what is forgotten from now on may have changed.
            idents.mark();
            let made_ahead = match ahead.as_mut().and_then(|a| a.take(j)) {
                Some(Ok(made)) => Some(made),
                Some(Err(e)) => {
                    // Its connection failed (busy, or its read did): made here, as from now on.
                    tracing::warn!(connector = %name, error = %e, "a batch made ahead could not be read; the export makes the rest itself");
                    ahead = None;
                    None
                }
                None => None,
            };
            let made = match made_ahead {
                Some(made) => {
                    // Debug builds make it again here, and compare.
                    #[cfg(debug_assertions)]
                    reading(store, &open, |r| export_ahead::check(&made, r, chunk, form, &mut idents))?;
                    made
                }
                None => reading(store, &open, |r| export_ahead::make(r, chunk, form, &mut idents, None))?,
            };
            let Batch { objs, ops, waiting: waits } = made;
            if ops.iter().any(|op| op.kind == OpKind::Delete) {
                // A deletion forgets its object (and releases what went with it): the next
                // batch is made here, and the thread no longer holds the identifiers it shares.
                ahead = None;
            }
            waiting += waits;
            if ops.is_empty() {
                continue;
            }
            stats.calls += 1;
            sent_this_pass += ops.len();
            let results = connector.export_held(&ops)?;
            if results.len() != ops.len() {
                return Err(Error::connector(&name, format!("export returned {} results for {} operations", results.len(), ops.len())));
            }
            let tx = match open.take() {
                Some(tx) => tx,
                None => store.write()?,
            };
            // What is recorded is dropped on the read-ahead thread, which decoded it.
            let mut spent = Spent::default();
            for (((mut o, refs), mut op), res) in objs.into_iter().zip(ops).zip(results) {
                observer.advanced(1);
                match &res {
                    OpResult::Done { .. } => {
                        failures_in_a_row = 0;
                        if op.kind == OpKind::Add {
                            added_this_pass += 1;
                        }
                    }
                    OpResult::Failed(_) => failures_in_a_row += 1,
                }
                record(&tx, &name, (&mut o, &mut op, res, refs.as_deref()), &mut stats, &mut errors, &mut idents)?;
                spent.push((o, op));
            }
            if idents.forgot_any_since_mark() {
                // An identifier changed, or an object went: what was made ahead may be out of
                // date, and the stage makes the rest itself.
                ahead = None;
            }
            if connector.unwritten() == 0 || failures_in_a_row >= BREAKER {
                settle(connector, Some(tx))?;
            } else {
                open = Some(tx);
            }
            if failures_in_a_row >= BREAKER {
                // A target that keeps failing: stop here, with one error, rather than spend the
                // run (retries and timeouts included) on every change still pending.
                stats.stopped_after = Some(failures_in_a_row);
                let pending = store.read()?.cs_count_pending_export(Some(&name))?;
                errors.push(ObjectError {
                    stage: Stage::Export,
                    connector: Some(name.clone()),
                    object: None,
                    cs_id: None,
                    mv_id: None,
                    rule: None,
                    // What tripped it is in the errors before it; the breaker is its own alert.
                    category: idflow_core::Category::Other,
                    attribute: None,
                    conflict: None,
                    message: format!(
                        "the export to {name:?} stopped: {failures_in_a_row} operations in a row failed (the target keeps failing; \
                         see the errors above). {pending} changes stay pending for the next run"
                    ),
                });
                break 'passes;
            }
        }
        settle(connector, open.take())?;
        stats.waiting = waiting;
        // Another pass only helps references to objects this pass created (their ids are
        // known now): references left out of an add, or changes that waited for them.
        let still_pending = store.read()?.cs_count_pending_export(Some(&name))?;
        if added_this_pass == 0 || sent_this_pass == 0 || still_pending == 0 {
            break;
        }
    }
    if let (Some(r0), Some(r1)) = (before, connector.requests()) {
        stats.requests = Some(r1.saturating_sub(r0));
    }
    Ok((stats, errors))
}

/// Calls `read` with the transaction still open, which holds what was recorded since the last
/// commit, or else with a read transaction of its own.
fn reading<T>(store: &Store, open: &Option<WriteTxn<'_>>, read: impl FnOnce(&dyn ReadOps) -> Result<T>) -> Result<T> {
    match open {
        Some(tx) => read(tx),
        None => read(&store.read()?),
    }
}

/// Has the connector write what it holds unwritten, then commits what was recorded of it.
fn settle(connector: &mut dyn Connector, recorded: Option<WriteTxn<'_>>) -> Result<()> {
    let Some(tx) = recorded else { return Ok(()) };
    connector.flush()?;
    tx.commit()
}

/// Records what the target answered for one operation: the object as it now is there, or the
/// error it stays in (retried by the next run). `refs`: what an add's values reference, when
/// every reference resolved ([`diff::resolved_refs`]).
fn record(
    tx: &dyn WriteOps,
    name: &str,
    (o, op, res, refs): (&mut CsObject, &mut ExportOp, OpResult, Option<&[i64]>),
    stats: &mut ExportStats,
    errors: &mut Vec<ObjectError>,
    idents: &mut diff::Idents,
) -> Result<()> {
    // What references to the object are written as, as it was: forgotten below if it changes.
    let was = (o.anchor.clone(), o.dn.clone());
    let mut fail = |o: &mut CsObject, stats: &mut ExportStats, message: String| -> Result<()> {
        stats.failed += 1;
        errors.push(ObjectError {
            stage: Stage::Export,
            connector: Some(name.to_string()),
            object: Some(o.display()),
            cs_id: Some(o.id),
            mv_id: o.mv_id,
            rule: None,
            message: message.clone(),
            category: idflow_core::Category::Other,
            attribute: None,
            conflict: None,
        });
        o.error = Some(message);
        tx.cs_save(o).map(|_| ())
    };
    let (anchor, dn) = match res {
        OpResult::Done { anchor, dn } => (anchor, dn),
        OpResult::Failed(message) => return fail(o, stats, message),
    };
    // An anchor the object has already is no other object's (anchors are unique). Looked at
    // before anything of the object changes: an answer that is not recorded leaves it as it was.
    let new_anchor = anchor.filter(|a| op.kind != OpKind::Delete && o.anchor.as_ref() != Some(a));
    if let Some(a) = &new_anchor {
        // The service may answer with an object idflow imported before as unlinked (a create
        // that landed but was never recorded, then adopted on a 409): that copy and this
        // object are one.
        if let Some(other) = tx.cs_by_anchor(name, a)?.filter(|x| x.id != o.id) {
            if other.mv_id.is_some() && other.mv_id != o.mv_id {
                let m = format!("the service answered with object {a}, which idflow links to another identity; not recorded");
                return fail(o, stats, m);
            }
            tx.cs_delete(other.id)?;
            idents.forget(other.id);
        }
    }
    match op.kind {
        OpKind::Delete => {
            stats.deleted += 1;
            tx.cs_delete(o.id)?;
            idents.forget(o.id);
            // The deletion is carried out: its metaverse object can go now.
            if let Some(m) = o.mv_id {
                for gone in crate::outbound::release(tx, m)? {
                    idents.forget(gone);
                }
            }
            return Ok(());
        }
        OpKind::Add => {
            stats.added += 1;
            o.attrs = std::mem::take(&mut op.attrs);
            o.present = true;
        }
        OpKind::Update => {
            stats.updated += 1;
            apply_changes(&mut o.attrs, &op.changes);
        }
    }
    if new_anchor.is_some() {
        o.anchor = new_anchor;
    }
    o.dn = dn.or(op.new_dn.clone()).or(o.dn.take());
    o.error = None;
    // An add whose values all resolved is in step as sent unless what it references was
    // forgotten since its batch began (at a first export, nearly every add): not resolved and
    // compared a second time. That holds as long as whoever changes an object's identifier
    // forgets it, and the batch is marked before its changes are made (debug builds check).
    o.pending_export = match refs.and_then(|refs| diff::in_step_after_add(o, refs, idents)) {
        Some(in_step) => {
            debug_assert_eq!(!in_step, diff::has_changes_with(tx, o, idents)?, "object {} after its add", o.id);
            !in_step
        }
        None => diff::has_changes_with(tx, o, idents)?,
    };
    tx.cs_set_exported(o)?;
    // An object that had an anchor and was given another (added again after it was deleted in
    // the target, which named it anew), where references name objects by anchor: what
    // references it there holds the old one, and is looked at again (by this export's next
    // pass). A first add (no anchor before) is not: what waited for it is pending already.
    if idents.form() == RefForm::Anchor && was.0.is_some() && o.anchor != was.0 {
        // A copy made again: what password hash sync delivered to the one that went is not
        // there (import forgets it when it sees it gone; this covers databases from before).
        tx.phs_forget(o.id)?;
        let n = crate::references::referrers_pending(tx, o)?;
        if n > 0 {
            tracing::info!(connector = name, object = %o.display(), referrers = n, "added again with a new id: what references it follows");
        }
    }
    // Looked up above as it was before this save, should it reference itself. What references
    // it resolve to is its identifier in the target's form (its anchor, or its DN): a change to
    // the other (a DN the file target was given as it added the object) changes none.
    let (form, desired_dn) = (idents.form(), o.desired_dn.as_ref());
    if references::ident_in(form, was.0.as_ref(), was.1.as_ref(), desired_dn)
        != references::ident_in(form, o.anchor.as_ref(), o.dn.as_ref(), desired_dn)
    {
        idents.forget(o.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{order, Pending};
    use idflow_core::connector::OpKind;

    /// Adds come first, each after the adds it references (a cycle closed by whichever comes
    /// first by id), parents before children within a level; then updates, then deletes.
    #[test]
    fn adds_come_after_what_they_reference_then_updates_then_deletes() {
        let add = |cs_id: i64, depth: usize, refs: &[i64]| Pending { cs_id, kind: OpKind::Add, depth, refs: refs.to_vec() };
        let other = |cs_id: i64, kind: OpKind| Pending { cs_id, kind, depth: 0, refs: Vec::new() };
        let changes = vec![
            other(9, OpKind::Delete),
            add(4, 1, &[5]),
            add(3, 1, &[2, 99]),
            other(8, OpKind::Update),
            add(5, 1, &[4]),
            add(2, 2, &[1]),
            add(6, 1, &[1]),
            add(1, 1, &[]),
        ];
        // 4 and 5 reference each other: 4 is walked first, so 5 goes before it.
        assert_eq!(order(changes), vec![(0, 1), (1, 5), (1, 6), (1, 2), (2, 3), (2, 4), (3, 8), (4, 9)]);
    }

    /// An object's add met twice is ordered once, by the last of them.
    #[test]
    fn an_add_met_twice_counts_once_as_the_last() {
        let add = |cs_id: i64, refs: &[i64]| Pending { cs_id, kind: OpKind::Add, depth: 0, refs: refs.to_vec() };
        let changes = vec![add(7, &[]), add(2, &[]), add(7, &[3]), add(3, &[2]), add(7, &[2])];
        assert_eq!(order(changes), vec![(0, 2), (1, 3), (1, 7)]);
    }
}
