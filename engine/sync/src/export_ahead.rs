//! An export's batches made ahead: while the stage sends one batch and records what the target
//! answered, a thread of its own, with a connection of its own, makes the next one (reads its
//! objects, resolves their references, makes their operations).
//!
//! Only for a target whose objects are named by the ids idflow gave them as it provisioned
//! them ([`Capabilities::local_anchor`]): recording what it answered for a batch changes the
//! batch's own objects and no identifier another object's reference resolves to, so the next
//! batch is the same whether it was made before or after. The thread reads what is committed,
//! which differs from what the stage's open transaction holds only by what was recorded. What a
//! batch recorded is checked: one that changed an identifier (the target answered with another
//! id or DN) or deleted an object forgot it in the stage's [`Idents`], and from then on the
//! stage makes each batch itself, as it does for every other target.
//!
//! [`Capabilities::local_anchor`]: idflow_core::connector::Capabilities::local_anchor
use crate::ahead::{cs_objects, Ahead};
use crate::diff;
use crate::idents::Idents;
use idflow_core::connector::{ExportOp, RefForm};
use idflow_core::Result;
use idflow_store::{CsObject, ReadOps, Store};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A batch's operations, each with the object it is made of and, for an add whose references
/// all resolved, the objects they reference ([`diff::resolved_refs`]); and how many changes
/// wait for a reference that did not resolve.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) objs: Vec<(CsObject, Option<Vec<i64>>)>,
    pub(crate) ops: Vec<ExportOp>,
    pub(crate) waiting: usize,
}

/// Makes the operations of the changes to `chunk`'s objects, read through `r` a few hundred at
/// a time (nothing is written until the target answers).
pub(crate) fn make(r: &dyn ReadOps, chunk: &[i64], form: RefForm, idents: &mut Idents) -> Result<Batch> {
    let mut batch = Batch::default();
    let mut ahead = Ahead::default();
    for i in 0..chunk.len() {
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

/// The thread that makes batches ahead, one at a time, each once the stage took the one before
/// (so at most one batch more is held than the stage holds).
pub(crate) struct BatchesAhead {
    /// Each batch made, with its place among the batches.
    made: Option<Receiver<(usize, Result<Batch>)>>,
    thread: Option<JoinHandle<()>>,
}

impl BatchesAhead {
    /// Starts making `batches[1..]` (the stage makes the first itself), or `None` when there
    /// is nothing to make ahead, the database has no other connection (in memory, or one that
    /// cannot be opened), or no thread can be started. `idents`: the stage's, whose preload the thread shares.
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
        let (batches, mut idents) = (Arc::clone(batches), idents.sharing_preload());
        let spawned = std::thread::Builder::new().name("idflow-export-ahead".into()).spawn(move || {
            for (i, chunk) in batches.iter().enumerate().skip(1) {
                let batch = reader.read().and_then(|r| make(&r, chunk, idents.form(), &mut idents));
                let failed = batch.is_err();
                // The stage no longer takes them (it ended, or makes them itself now).
                if send.send((i, batch)).is_err() || failed {
                    return;
                }
            }
        });
        match spawned {
            Ok(thread) => Some(BatchesAhead { made: Some(made), thread: Some(thread) }),
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
    /// The thread is told (its next batch is not taken) and waited for: it ends once the batch
    /// it is making is made.
    fn drop(&mut self) {
        self.made = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
