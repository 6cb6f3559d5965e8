//! Reading ahead: a stage that handles objects one at a time reads the next few hundred in one
//! statement, not one statement each. Only valid where handling an object changes nothing read
//! ahead for the others (each stage says why that holds for it).
//!
//! Decoding what is read (decompressing, parsing JSON) costs more than reading it: the next few
//! hundred are read as the stage starts on these, and decoded on another thread (the machine's
//! other core) while the stage handles these.
use idflow_core::fast_hash::FastMap;
use idflow_core::Result;
use idflow_store::{CsObject, Later, ReadOps};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, Sender, TryRecvError};
use std::sync::OnceLock;

/// Objects read at once.
const AT_ONCE: usize = 256;

/// What a stage reads ahead with: `ids` read now, decoded (by id) when the result is called.
pub(crate) type Decoded<T> = Later<FastMap<i64, T>>;

pub(crate) struct Ahead<T> {
    /// `ids[..next]` were read.
    next: usize,
    got: FastMap<i64, T>,
    /// The chunks after `ids[..next]`, read (up to [`IN_FLIGHT`]), each from its first index
    /// to the next one's.
    coming: VecDeque<(usize, usize, Coming<T>)>,
}

/// Chunks read ahead at most: while the decoding thread decodes one, the stage reads the next.
const IN_FLIGHT: usize = 2;

/// A chunk read ahead.
enum Coming<T> {
    /// Being decoded on the decoding thread.
    There(Receiver<Result<FastMap<i64, T>>>),
    /// To be decoded here (there is no decoding thread).
    Here(Decoded<T>),
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Ahead { next: 0, got: FastMap::default(), coming: VecDeque::new() }
    }
}

impl<T: Send + 'static> Ahead<T> {
    /// What `read` gave for `ids[i]` (`None`: nothing), reading `ids[i..]` a few hundred at a
    /// time once `ids[..i]` are used up. `ids` holds each id once; `i` goes up one at a time.
    pub(crate) fn take(&mut self, ids: &[i64], i: usize, mut read: impl FnMut(&[i64]) -> Result<Decoded<T>>) -> Result<Option<T>> {
        if i >= self.next {
            let (end, got) = match self.coming.pop_front() {
                Some((start, end, coming)) if start == i => {
                    let got = match coming {
                        Coming::There(r) => match r.try_recv() {
                            Ok(got) => Some(got),
                            Err(TryRecvError::Empty) => {
                                drop_while_waiting();
                                r.recv().ok()
                            }
                            Err(TryRecvError::Disconnected) => None,
                        },
                        Coming::Here(decode) => Some(decode()),
                    };
                    match got {
                        Some(got) => (end, got?),
                        // Its decoding panicked: read again and decoded here.
                        None => (end, read(&ids[i..end])?()?),
                    }
                }
                // The first chunk (or, were `i` to skip, another): read, and decoded here once
                // the next ones are on their way; what was read ahead is read again.
                _ => {
                    self.coming.clear();
                    let end = ids.len().min(i + AT_ONCE);
                    let here = read(&ids[i..end])?;
                    self.fill_up(ids, end, &mut read)?;
                    (end, here()?)
                }
            };
            debug_assert!(
                {
                    let chunk = &ids[i..end];
                    chunk.iter().collect::<std::collections::HashSet<_>>().len() == chunk.len()
                },
                "an id twice"
            );
            self.got = got;
            self.next = end;
            self.fill_up(ids, end, &mut read)?;
        }
        Ok(self.got.remove(&ids[i]))
    }

    /// Reads ahead after `ids[..end]` until [`IN_FLIGHT`] chunks are on their way.
    fn fill_up(&mut self, ids: &[i64], end: usize, read: &mut impl FnMut(&[i64]) -> Result<Decoded<T>>) -> Result<()> {
        let mut from = self.coming.back().map_or(end, |c| c.1);
        while self.coming.len() < IN_FLIGHT && from < ids.len() {
            let to = ids.len().min(from + AT_ONCE);
            let decode = read(&ids[from..to])?;
            self.coming.push_back((from, to, elsewhere(decode)));
            from = to;
        }
        Ok(())
    }
}

/// A job for the decoding thread.
type Job = Box<dyn FnOnce() + Send>;

/// The thread that decodes what is read ahead: one for the process, started when first
/// needed, so that its memory stays warm (a thread per chunk costs more than it saves).
fn decoder() -> Option<&'static Sender<Job>> {
    static DECODER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    DECODER
        .get_or_init(|| {
            let (jobs, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new().name("idflow-read-ahead".into()).spawn(move || {
                for job in rx {
                    // A job that panics is read again and decoded by the stage itself.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            spawned.ok().map(|_| jobs)
        })
        .as_ref()
}

/// `decode` sent to the decoding thread, or kept to be run here when there is none.
fn elsewhere<T: Send + 'static>(decode: Decoded<T>) -> Coming<T> {
    let Some(decoder) = decoder() else { return Coming::Here(decode) };
    let (done, outcome) = sync_channel(1);
    let job: Job = Box::new(move || {
        // The stage may have ended meanwhile: nobody waits.
        let _ = done.send(decode());
    });
    // The thread catches what panics, so it does not end: were it gone, the chunk is read again.
    let _ = decoder.send(job);
    Coming::There(outcome)
}

thread_local! {
    /// What the stage on this thread is done with and has not handed over yet, newest last:
    /// dropped here while the stage waits for a chunk the decoding thread is still decoding
    /// (a full sync in step evaluates every object's rules there and writes nothing here, so
    /// that thread has more to do), else handed over as more comes ([`Spent`]).
    static UNDROPPED: RefCell<VecDeque<Box<dyn Send>>> = const { RefCell::new(VecDeque::new()) };
}

/// Handfuls a stage keeps to drop while it waits, at most.
const KEPT: usize = 2;

/// The stage waits for the decoding thread: what it is done with is dropped meanwhile.
fn drop_while_waiting() {
    drop(UNDROPPED.with_borrow_mut(std::mem::take));
}

/// Hands what the stage kept to drop to the decoding thread, all but the newest `keep`.
fn hand_over_kept(keep: usize) {
    let over: Vec<Box<dyn Send>> = UNDROPPED.with_borrow_mut(|q| {
        let n = q.len().saturating_sub(keep);
        q.drain(..n).collect()
    });
    if over.is_empty() {
        return;
    }
    if let Some(decoder) = decoder() {
        // Not sent (no thread): dropped here, with the job.
        let _ = decoder.send(Box::new(move || drop(over)));
    }
}

/// What a stage is done with, dropped a few hundred at a time on the decoding thread, which
/// made most of it: memory is freed faster by the thread that allocated it, and the stage has
/// its own work. The newest [`KEPT`] handfuls wait on the stage's thread a while: the stage
/// drops them itself if it has to wait for the decoding thread before they are handed over.
pub(crate) struct Spent<T: Send + 'static>(Vec<T>);

impl<T: Send + 'static> Default for Spent<T> {
    fn default() -> Self {
        Spent(Vec::new())
    }
}

impl<T: Send + 'static> Spent<T> {
    pub(crate) fn push(&mut self, done: T) {
        self.0.push(done);
        if self.0.len() >= AT_ONCE {
            self.keep();
            hand_over_kept(KEPT);
        }
    }

    fn keep(&mut self) {
        if !self.0.is_empty() {
            let done: Box<dyn Send> = Box::new(std::mem::take(&mut self.0));
            UNDROPPED.with_borrow_mut(|q| q.push_back(done));
        }
    }
}

impl<T: Send + 'static> Drop for Spent<T> {
    fn drop(&mut self) {
        self.keep();
        hand_over_kept(0);
    }
}

/// Connector-space objects, by id: what [`Ahead::take`] reads them with.
pub(crate) fn cs_objects(c: &dyn ReadOps, ids: &[i64]) -> Result<Decoded<CsObject>> {
    let later = c.cs_get_many_later(ids)?;
    Ok(Box::new(move || Ok(later()?.into_iter().map(|o| (o.id, o)).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_read_once_in_order_and_decoded_ahead() {
        let ids: Vec<i64> = (0..1000).map(|i| i * 3).collect();
        let mut reads: Vec<Vec<i64>> = Vec::new();
        let mut ahead = Ahead::default();
        let mut got = Vec::new();
        for i in 0..ids.len() {
            let v = ahead.take(&ids, i, |chunk| {
                reads.push(chunk.to_vec());
                let chunk = chunk.to_vec();
                // Objects that are gone are not there: `None`.
                Ok(Box::new(move || Ok(chunk.iter().filter(|id| *id % 7 != 0).map(|&id| (id, id * 2)).collect())))
            });
            got.push(v.expect("read"));
        }
        let want: Vec<Option<i64>> = ids.iter().map(|&id| (id % 7 != 0).then_some(id * 2)).collect();
        assert_eq!(got, want);
        assert_eq!(reads.concat(), ids, "each id read once, in order");
        assert_eq!(reads.iter().map(Vec::len).max(), Some(AT_ONCE));
    }

    /// Tells the thread it is dropped on.
    struct Tell(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for Tell {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().name().map(str::to_string));
        }
    }

    #[test]
    fn what_a_stage_is_done_with_is_dropped_on_the_decoding_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut spent = Spent::default();
        for _ in 0..(KEPT + 1) * AT_ONCE + 1 {
            spent.push(Tell(tx.clone()));
        }
        // The oldest handful is handed over once the stage keeps more than KEPT; the rest
        // when the stage's pass ends.
        for _ in 0..AT_ONCE {
            let on = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("dropped");
            assert_eq!(on.as_deref(), Some("idflow-read-ahead"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "the newest are kept until the pass ends");
        drop(spent);
        for _ in 0..KEPT * AT_ONCE + 1 {
            let on = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("dropped");
            assert_eq!(on.as_deref(), Some("idflow-read-ahead"));
        }
    }

    /// A stage that has to wait for the decoding thread drops what it kept meanwhile; what it
    /// kept is handed over when it does not wait.
    #[test]
    fn what_a_stage_is_done_with_is_dropped_here_while_it_waits_for_the_decoding_thread() {
        /// What a stage is done with, and perhaps the gate of a chunk's decoding: that chunk is
        /// decoded once this is dropped.
        struct Gated(#[allow(dead_code)] Tell, #[allow(dead_code)] Option<std::sync::mpsc::Sender<()>>);
        let ids: Vec<i64> = (0..(AT_ONCE * 3) as i64).collect();
        let (gate, gated) = std::sync::mpsc::channel::<()>();
        let mut gated = Some(gated);
        let mut ahead: Ahead<i64> = Ahead::default();
        // The second chunk is decoded once its gate is dropped (or after 10 s).
        let mut take = |i: usize| {
            ahead
                .take(&ids, i, |chunk| {
                    let chunk = chunk.to_vec();
                    let gated = if chunk[0] == AT_ONCE as i64 { gated.take() } else { None };
                    Ok(Box::new(move || {
                        if let Some(g) = gated {
                            let _ = g.recv_timeout(std::time::Duration::from_secs(10));
                        }
                        Ok(chunk.iter().map(|&id| (id, id)).collect())
                    }))
                })
                .expect("read")
        };
        let dropped_on =
            |rx: &std::sync::mpsc::Receiver<Option<String>>| rx.recv_timeout(std::time::Duration::from_secs(10)).expect("dropped");
        let (tx, rx) = std::sync::mpsc::channel();
        let mut spent = Spent::default();
        // The first chunk is decoded here; the next two on the decoding thread, after the gate.
        assert_eq!(take(0), Some(0));
        let mut gate = Some(gate);
        for _ in 0..AT_ONCE {
            spent.push(Gated(Tell(tx.clone()), gate.take()));
        }
        assert!(rx.try_recv().is_err(), "kept");
        assert_eq!(take(AT_ONCE), Some(AT_ONCE as i64), "waited for, the gate dropped meanwhile");
        assert_eq!(dropped_on(&rx), std::thread::current().name().map(str::to_string), "dropped here");
        while rx.try_recv().is_ok() {}
        // The third chunk is decoded by the time the stage gets to it (the decoding thread runs
        // its jobs in turn: a job sent after it runs once it is sent): nothing is dropped here.
        let (done, barrier) = std::sync::mpsc::channel();
        decoder()
            .expect("a decoding thread")
            .send(Box::new(move || {
                let _ = done.send(());
            }))
            .expect("sent");
        barrier.recv_timeout(std::time::Duration::from_secs(10)).expect("the decoding thread ran");
        for _ in 0..AT_ONCE {
            spent.push(Gated(Tell(tx.clone()), None));
        }
        assert_eq!(take(2 * AT_ONCE), Some(2 * AT_ONCE as i64));
        assert!(rx.try_recv().is_err(), "kept");
        drop(spent);
        assert_eq!(dropped_on(&rx).as_deref(), Some("idflow-read-ahead"));
    }

    #[test]
    fn a_failed_read_ahead_is_the_stage_s_error() {
        let ids: Vec<i64> = (0..600).collect();
        let mut ahead: Ahead<i64> = Ahead::default();
        let mut failed_at = None;
        for i in 0..ids.len() {
            let r = ahead.take(&ids, i, |chunk| {
                let first = chunk[0];
                Ok(Box::new(move || match first {
                    0 => Ok(FastMap::default()),
                    _ => Err(idflow_core::Error::Refused(format!("damaged row {first}"))),
                }))
            });
            if let Err(e) = r {
                failed_at = Some((i, e.to_string()));
                break;
            }
        }
        assert_eq!(failed_at, Some((AT_ONCE, format!("damaged row {AT_ONCE}"))));
    }
}
