//! The write-ahead log copied into the database file on a thread of its own.
//!
//! SQLite copies its log into the database file (a checkpoint) when a commit leaves more than
//! 4 MiB of it, inside the commit, on the thread that commits: the full sync of 1,000,000
//! people committed about 870 MiB of log, and its commit took 2.6 s, most of it that copy; a
//! 1% delta sync at 100,000 people spent 77 ms of its 0.2 s there. Here a commit only writes
//! the log, and a thread with a connection of its own copies it (a PASSIVE checkpoint, which
//! waits for no reader or writer and stops none) while the run goes on. Nothing changes for
//! safety: what is committed is in the log, which SQLite reads (and copies on its next
//! checkpoint) if the process ends before the copy does.
//!
//! The price is disk, for the length of a run: SQLite starts the log over only at a write that
//! begins once all of it is copied, and a run's next stage begins while the last one's log is
//! being copied, so the log of a run holds its stages one after the other (a full cycle at
//! 1,000,000 people: about the import's, the sync's and the export's together) until the run
//! ends; then it is cut back to nothing, as soon as no one reads it.
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the thread is asked.
#[derive(Debug)]
pub(crate) enum Ask {
    /// Copy what the log holds into the database file (after a commit).
    Copy,
    /// The same, then cut the log file back to nothing once all of it is copied and no one
    /// reads it (after a run, so that it does not stay at its peak size between runs), as long
    /// as the store begins no transaction after the one counted here (the next run, or its
    /// next stage, would find its pages dropped: SQLite forgets a connection's cached pages
    /// when another cuts the log back).
    Shrink(u64),
    /// Answer once what was asked before is done.
    Settle(Sender<()>),
}

/// How often a log that could not be cut back (someone was reading it) is tried again, and for
/// how long.
const RETRY: Duration = Duration::from_millis(250);
const RETRY_FOR: Duration = Duration::from_secs(120);

/// The thread that checkpoints one database, started at its first commit (a store that only
/// reads never starts it), with a connection it keeps until the store is dropped; then it is
/// ended and waited for.
#[derive(Default)]
pub(crate) struct Checkpointer {
    /// The database file; none for a database in memory, which has no log.
    path: Option<String>,
    worker: Mutex<Worker>,
    /// The transactions the store has begun.
    begun: Arc<AtomicU64>,
}

#[derive(Default)]
enum Worker {
    #[default]
    Idle,
    Running(Sender<Ask>, JoinHandle<()>),
    /// The thread could not be started or could not open the database: the committing
    /// connection checkpoints itself after each commit.
    Inline,
}

impl Checkpointer {
    pub(crate) fn new(path: &str) -> Checkpointer {
        Checkpointer { path: Some(path.to_string()), worker: Mutex::default(), begun: Arc::default() }
    }

    /// The store begins a transaction.
    pub(crate) fn began(&self) {
        self.begun.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Ask::Shrink`] from now.
    pub(crate) fn shrink(&self) -> Ask {
        Ask::Shrink(self.begun.load(Ordering::Relaxed))
    }

    /// After a commit on `conn` (or to shrink the log after a run): the thread is asked, or,
    /// where there is none, `conn` checkpoints now (waiting for readers as long as its busy
    /// timeout, as checkpoints did before there was a thread).
    pub(crate) fn ask(&self, conn: &Connection, ask: Ask) {
        let Some(path) = &self.path else { return };
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*worker, Worker::Idle) {
            let (tx, rx) = channel();
            let (p, begun) = (path.clone(), Arc::clone(&self.begun));
            *worker = match std::thread::Builder::new().name("idflow-checkpoint".into()).spawn(move || work(&p, rx, &begun)) {
                Ok(h) => Worker::Running(tx, h),
                Err(e) => {
                    tracing::debug!(error = %e, "no checkpoint thread; checkpointing on commit");
                    Worker::Inline
                }
            };
        }
        let ask = match &*worker {
            Worker::Running(tx, _) => match tx.send(ask) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(ask)) => ask,
            },
            _ => ask,
        };
        // The thread ended (it could not open the database): from now on, here.
        if let Worker::Running(_, h) = std::mem::replace(&mut *worker, Worker::Inline) {
            let _ = h.join();
        }
        drop(worker);
        let shrink = matches!(ask, Ask::Shrink(_));
        if let Some(all) = copy(conn, path) {
            if shrink && all {
                let _ = cut(conn, path);
            }
        }
    }

    /// Waits for what was asked so far to be done (the database's size, as a benchmark
    /// shows it).
    pub(crate) fn settle(&self) {
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if let Worker::Running(tx, _) = &*worker {
            let (done, wait) = channel();
            if tx.send(Ask::Settle(done)).is_ok() {
                drop(worker);
                let _ = wait.recv();
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Worker::Running(tx, h) = std::mem::take(worker) {
            drop(tx);
            let _ = h.join();
        }
    }
}

fn work(path: &str, asks: Receiver<Ask>, begun: &AtomicU64) {
    let conn = match open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, path, "the checkpoint thread cannot open the database; checkpointing on commit");
            return;
        }
    };
    // Since when the log is to be cut back and could not be yet (someone was reading it), and
    // the store's transactions then.
    let mut shrink: Option<(Instant, u64)> = None;
    loop {
        let first = match shrink {
            None => asks.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(_) => asks.recv_timeout(RETRY),
        };
        let mut settled = Vec::new();
        // Asks that came while the last copy ran are one copy now.
        let batch = match first {
            Ok(a) => std::iter::once(a).chain(asks.try_iter()).collect(),
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for a in batch {
            match a {
                Ask::Copy => {}
                Ask::Shrink(at) => shrink = Some((shrink.map_or_else(Instant::now, |s| s.0), at)),
                Ask::Settle(done) => settled.push(done),
            }
        }
        let all = copy(&conn, path).unwrap_or(false);
        if let Some((since, at)) = shrink {
            // Only once everything is copied: a TRUNCATE that still had copying to do would
            // hold SQLite's write lock meanwhile, and the run's next transaction would wait.
            let idle = begun.load(Ordering::Relaxed) == at;
            if !idle || (all && cut(&conn, path)) || since.elapsed() > RETRY_FOR {
                shrink = None;
            }
        }
        for done in settled {
            let _ = done.send(());
        }
    }
}

fn open(path: &str) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Never wait: a TRUNCATE that finds a reader or a writer leaves the log's size alone (and
    // is tried again), instead of holding up the run's next transaction.
    conn.busy_timeout(Duration::ZERO)?;
    // As the run's connection: the log is synced before a copy, the database after it.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -2048)?;
    Ok(conn)
}

/// A PASSIVE checkpoint: whether all of the log is in the database file now (`None`: failed).
fn copy(conn: &Connection, path: &str) -> Option<bool> {
    // Columns: busy (another checkpoint ran), pages in the log, pages copied.
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
        Ok((busy, log, copied)) => Some(busy == 0 && log == copied),
        Err(e) => {
            tracing::warn!(error = %e, path, "copying the metaverse's write-ahead log into it failed; the next commit tries again");
            None
        }
    }
}

/// A TRUNCATE checkpoint: whether the log was cut back (no one was reading or writing).
fn cut(conn: &Connection, path: &str) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::warn!(error = %e, path, "cutting back the metaverse's write-ahead log failed");
            true
        }
    }
}

#[cfg(test)]
impl Checkpointer {
    fn started(&self) -> bool {
        matches!(*self.worker.lock().unwrap_or_else(|p| p.into_inner()), Worker::Running(..))
    }
}

#[cfg(test)]
mod tests {
    use crate::{ReadOps, Store, WriteOps};

    fn len(p: &std::path::Path) -> u64 {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    /// A commit writes the log only; the thread copies it into the database file, as far as
    /// the readers let it, and a run's end cuts the log back once it is copied. A store that
    /// only reads starts no thread.
    #[test]
    fn the_log_is_copied_into_the_database_by_a_thread_of_its_own() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idflow.db");
        let wal = dir.path().join("idflow.db-wal");
        let store = Store::open(&path).expect("open");
        let reader = Store::open(&path).expect("open");
        assert_eq!(reader.read().expect("read").meta_get("k").expect("get"), None);
        assert!(!reader.state.wal.started(), "a store that only reads has no checkpoint thread");
        let on_commit: i64 = store.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).expect("pragma");
        assert_eq!(on_commit, 0, "a commit does not copy the log itself");

        // A reader whose snapshot is older than the commit: nothing it may still read is
        // overwritten in the database file, so the copy leaves the commit's pages in the log
        // (the next copy asked takes them).
        let before = len(&path);
        let snapshot = reader.read().expect("read");
        assert_eq!(snapshot.meta_get("k").expect("get"), None);
        let tx = store.write().expect("write");
        tx.meta_set("k", &"x".repeat(8 << 20)).expect("set");
        tx.commit().expect("commit");
        assert!(store.state.wal.started());
        store.settle();
        assert!(len(&wal) > 8 << 20, "the commit is in the log");
        assert!(len(&path) < before + (1 << 20), "and not yet in the database file: {} bytes", len(&path));
        assert_eq!(snapshot.meta_get("k").expect("get"), None, "the reader's snapshot is whole");
        drop(snapshot);

        store.checkpoint();
        store.settle();
        assert!(len(&path) > 8 << 20, "copied: {} bytes", len(&path));
        assert_eq!(len(&wal), 0, "and the log cut back");
        assert_eq!(reader.read().expect("read").meta_get("k").expect("get").map(|v| v.len()), Some(8 << 20));
    }

    /// A run that ends while someone still reads what the log holds: the log is cut back once
    /// they are done, without another run.
    #[test]
    fn a_log_that_cannot_be_cut_back_yet_is_cut_back_once_readers_are_done() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idflow.db");
        let wal = dir.path().join("idflow.db-wal");
        let store = Store::open(&path).expect("open");
        let reader = Store::open(&path).expect("open");
        let snapshot = reader.read().expect("read");
        assert_eq!(snapshot.meta_get("k").expect("get"), None);
        let tx = store.write().expect("write");
        tx.meta_set("k", &"x".repeat(4 << 20)).expect("set");
        tx.commit().expect("commit");
        store.checkpoint();
        store.settle();
        assert!(len(&wal) > 4 << 20, "not cut back while read");
        drop(snapshot);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while len(&wal) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(len(&wal), 0, "cut back once the reader is done");
        assert!(len(&path) > 4 << 20, "everything copied first");

        // Not once the store has gone on (the next stage would find its cached pages dropped):
        // the next run's end asks again.
        let snapshot = reader.read().expect("read");
        assert_eq!(snapshot.meta_get("k").expect("get").map(|v| v.len()), Some(4 << 20));
        let tx = store.write().expect("write");
        tx.meta_set("k", &"y".repeat(4 << 20)).expect("set");
        tx.commit().expect("commit");
        store.checkpoint();
        store.settle();
        drop(store.read().expect("the next stage"));
        drop(snapshot);
        std::thread::sleep(super::RETRY * 4);
        assert!(len(&wal) > 4 << 20, "left for the next run's end");
    }
}
