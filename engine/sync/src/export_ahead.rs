//! An export's batches made ahead: while the stage sends one batch and records what the target
//! answered, a thread of its own, with a connection of its own, makes the next one (reads its
//! objects, resolves their references, makes their operations).
//!
//! Only for a target whose objects are named by the ids idflow gave them as it provisioned
//! them ([`Capabilities::local_anchor`]): recording what it answered for a batch changes the
//! batch's own objects and no identifier another object's reference resolves to, so the next
//! batch is the same whether it was made before or after. The thread reads what is committed,
//! which differs from what the stage's open transaction holds only by what was recorded.
//! Recording changes another object only where it also forgets an identifier in the stage's
//! [`Idents`]: an object the target answered with another id for (its copy imported before
//! goes, and what references it is marked), or a deletion (its metaverse object is released).
//! So what a batch recorded is checked: one that forgot any identifier, or holds a deletion,
//! stops the thread, and from then on the stage makes each batch itself, as it does for every
//! other target. Debug builds make each batch made ahead again in the stage, and compare.
//!
//! [`Capabilities::local_anchor`]: idflow_core::connector::Capabilities::local_anchor
use crate::ahead::{cs_objects, Ahead};
use crate::diff;
use crate::idents::Idents;
use idflow_core::connector::{ExportOp, RefForm};
use idflow_core::Result;
use idflow_store::{CsObject, ReadOps, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A batch's operations, each with the object it is made of and, for an add whose references
/// all resolved, the objects they reference ([`diff::resolved_refs`]); and how many changes
/// wait for a reference that did not resolve.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct Batch {
    pub(crate) objs: Vec<(CsObject, Option<Vec<i64>>)>,
    pub(crate) ops: Vec<ExportOp>,
    pub(crate) waiting: usize,
}

/// Makes the operations of the changes to `chunk`'s objects, read through `r` a few hundred at
/// a time (nothing is written until the target answers). `cancelled`: once set, what is made
/// so far is given back (no one takes it).
pub(crate) fn make(r: &dyn ReadOps, chunk: &[i64], form: RefForm, idents: &mut Idents, cancelled: Option<&AtomicBool>) -> Result<Batch> {
    let mut batch = Batch::default();
    let mut ahead = Ahead::default();
    for i in 0..chunk.len() {
        if cancelled.is_some_and(|c| c.load(Ordering::Relaxed)) {
            break;
        }
        let Some(o) = ahead.take(chunk, i, |ids| cs_objects(r, ids))? else { continue };
        let Some(ch) = diff::change_with(r, &o, form, idents)? else { continue };
        let refs = diff::resolved_refs(&o, &ch);
        match diff::to_op(ch) {
            Some(op) => {
                batch.ops.push(op);
                batch.objs.push((o, refs));
            }
            None => batch.waiting += 1,
        }
    }
    Ok(batch)
}

/// Checks that a batch made ahead is the batch the stage makes of `chunk` through `r` (debug
/// builds: what a batch recorded must not change what the next is made of, unless it forgot).
#[cfg(debug_assertions)]
pub(crate) fn check(made: &Batch, r: &dyn ReadOps, chunk: &[i64], form: RefForm, idents: &mut Idents) -> Result<()> {
    let here = make(r, chunk, form, idents, None)?;
    if here != *made {
        let at = here.ops.iter().zip(&made.ops).position(|(a, b)| a != b);
        panic!("a batch made ahead is not the one made in the stage (first operation that differs: {at:?} of {})", here.ops.len());
    }
    Ok(())
}

/// The thread that makes batches ahead, one at a time, each once the stage took the one before
/// (so at most one batch more is held than the stage holds).
pub(crate) struct BatchesAhead {
    /// Each batch made, with its place among the batches.
    made: Option<Receiver<(usize, Result<Batch>)>>,
    /// Set when the stage no longer takes them: the batch being made is left unfinished.
    cancelled: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BatchesAhead {
    /// Starts making `batches[1..]` (the stage makes the first itself), or `None` when there
    /// is nothing to make ahead, the database has no other connection (in memory, or one that
    /// cannot be opened), or no thread can be started. `idents`: the stage's, whose preload
    /// the thread shares.
    pub(crate) fn start(store: &Store, batches: &Arc<Vec<Vec<i64>>>, idents: &Idents) -> Option<BatchesAhead> {
        if batches.len() < 2 {
            return None;
        }
        // Without a connection of its own (one that could not be opened), the stage makes
        // every batch itself, as it does for other targets.
        let reader = match store.reader() {
            Ok(Some(reader)) => reader,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "no connection to make an export's batches ahead");
                return None;
            }
        };
        let (send, made) = sync_channel(0);
        let batches_count = batches.len();
        let (batches, mut idents) = (Arc::clone(batches), idents.sharing_preload());
        let cancelled = Arc::new(AtomicBool::new(false));
        let cancel = Arc::clone(&cancelled);
        let spawned = std::thread::Builder::new().name("idflow-export-ahead".into()).spawn(move || {
            for (i, chunk) in batches.iter().enumerate().skip(1) {
                let batch = reader.read().and_then(|r| make(&r, chunk, idents.form(), &mut idents, Some(&cancel)));
                let failed = batch.is_err();
                // The stage no longer takes them (it ended, or makes them itself now).
                if send.send((i, batch)).is_err() || failed {
                    return;
                }
            }
        });
        match spawned {
            Ok(thread) => {
                tracing::debug!(batches = batches_count, "the export's batches after the first are made ahead, on a thread of their own");
                Some(BatchesAhead { made: Some(made), cancelled, thread: Some(thread) })
            }
            Err(e) => {
                tracing::debug!(error = %e, "no thread to make an export's batches ahead");
                None
            }
        }
    }

    /// Batch `i` as made ahead, once it is; `None` when it is not made there (the first, or
    /// the thread ended: the stage makes it).
    pub(crate) fn take(&mut self, i: usize) -> Option<Result<Batch>> {
        if i == 0 {
            return None;
        }
        match self.made.as_ref()?.recv() {
            Ok((at, batch)) if at == i => {
                #[cfg(test)]
                TAKEN.with(|n| n.set(n.get() + 1));
                Some(batch)
            }
            // Not the one asked for (the stage skipped one): not used, nor anything after it.
            _ => {
                self.made = None;
                None
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// The batches this thread's exports took as made ahead.
    pub(crate) static TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Drop for BatchesAhead {
    /// The thread is told (the batch it makes is left unfinished, and not taken) and waited for.
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.made = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
