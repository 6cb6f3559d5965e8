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
use rusqlite::Connection;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// What a checkpoint is asked to do; the larger includes the smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ask {
    /// Copy what the log holds into the database file.
    Copy,
    /// The same, then cut the log file back to nothing if no one is reading it (between runs,
    /// so it does not stay at its peak size).
    Shrink,
}

impl Ask {
    fn pragma(self) -> &'static str {
        match self {
            Ask::Copy => "PRAGMA wal_checkpoint(PASSIVE)",
            Ask::Shrink => "PRAGMA wal_checkpoint(TRUNCATE)",
        }
    }
}

/// The thread that checkpoints one database, started at its first commit (a connection that
/// only reads never starts it), ended and waited for when the store is dropped.
#[derive(Default)]
pub(crate) struct Checkpointer {
    /// The database file; none for a database in memory, which has no log.
    path: Option<String>,
    worker: Mutex<Worker>,
}

#[derive(Default)]
enum Worker {
    #[default]
    Idle,
    Running(Sender<Ask>, JoinHandle<()>),
    /// The thread could not be started or could not open the database: the committing
    /// connection checkpoints itself, as SQLite would.
    Inline,
}

impl Checkpointer {
    pub(crate) fn new(path: &str) -> Checkpointer {
        Checkpointer { path: Some(path.to_string()), worker: Mutex::default() }
    }

    /// After a commit on `conn` (or to shrink the log after a run): the thread is asked, or,
    /// where there is none, `conn` checkpoints now.
    pub(crate) fn ask(&self, conn: &Connection, ask: Ask) {
        let Some(path) = &self.path else { return };
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*worker, Worker::Idle) {
            let (tx, rx) = channel();
            let p = path.clone();
            *worker = match std::thread::Builder::new().name("idflow-checkpoint".into()).spawn(move || work(&p, rx)) {
                Ok(h) => Worker::Running(tx, h),
                Err(e) => {
                    tracing::debug!(error = %e, "no checkpoint thread; checkpointing on commit");
                    Worker::Inline
                }
            };
        }
        if let Worker::Running(tx, _) = &*worker {
            if tx.send(ask).is_ok() {
                return;
            }
            // The thread ended (it could not open the database): from now on, inline.
            if let Worker::Running(_, h) = std::mem::replace(&mut *worker, Worker::Inline) {
                let _ = h.join();
            }
        }
        drop(worker);
        checkpoint(conn, ask, path);
    }

    /// Waits for the copies asked so far to end (the thread ends; the next commit starts
    /// another).
    pub(crate) fn settle(&self) {
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if let Worker::Running(tx, h) = std::mem::take(&mut *worker) {
            drop(tx);
            let _ = h.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.settle();
    }
}

fn work(path: &str, asks: Receiver<Ask>) {
    let conn = match open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, path, "the checkpoint thread cannot open the database; checkpointing on commit");
            return;
        }
    };
    while let Ok(first) = asks.recv() {
        // Asks that came while the last copy ran are one copy now.
        let ask = asks.try_iter().fold(first, Ord::max);
        checkpoint(&conn, ask, path);
    }
}

fn open(path: &str) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Never wait: a TRUNCATE that finds a reader or a writer copies what it can and leaves the
    // log's size alone, instead of holding up the run's next transaction.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    // As the run's connection: the log is synced before a copy, the database after it.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -2048)?;
    Ok(conn)
}

fn checkpoint(conn: &Connection, ask: Ask, path: &str) {
    // A TRUNCATE holds SQLite's write lock while it copies: the copy is made first without
    // it, so the TRUNCATE has (nearly) nothing left to copy and keeps no writer waiting.
    for step in [Ask::Copy, Ask::Shrink].into_iter().filter(|s| *s <= ask) {
        // A checkpoint that finds the database busy copies less (the pragma says so in its
        // row), and the next one copies the rest: only an error is worth a line.
        if let Err(e) = conn.query_row(step.pragma(), [], |r| r.get::<_, i64>(0)) {
            tracing::warn!(error = %e, path, "copying the metaverse's write-ahead log into it failed; the next commit tries again");
            return;
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
        // overwritten in the database file, so the copy waits for it.
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
}
