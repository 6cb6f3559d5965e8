//! idflow-store: the metaverse database. Connector spaces, the metaverse, watermarks, run
//! history and password hash sync state, behind read and write transactions.
//!
//! All SQL of idflow lives in this crate. The engine sees [`ReadOps`] and [`WriteOps`]:
//! named operations on connector-space objects (`cs_*`), metaverse objects (`mv_*`), settings
//! and watermarks (`meta_*`), run history (`history_*`) and password hash sync (`phs_*`), with
//! no SQL text and no database types, so that a second backend can implement the same traits.
//!
//! Every run works inside one transaction per stage; a run killed at any point leaves the
//! database as of the last committed stage (WAL journal), and the next run completes from there.
//! `plan` and `preview` run the same stages in a write transaction they drop (rolled back).
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod alert;
mod anchor;
mod anchors_later;
mod backup;
mod changed;
mod checkpoint;
mod cs;
mod cs_dangling;
mod cs_patch;
mod dict_train;
mod history;
mod lock;
mod meta;
mod mv;
mod mv_dirty;
mod mv_form;
mod mv_index;
mod ops;
mod packed;
mod phs;
mod prepared;
mod schema;

pub use alert::AlertRow;
pub use backup::{backup, restore, Restored, FILE_STAMP};
pub use cs::{AttrsRead, CsKey, CsLinks, CsObject, ExportState, Link, LinkState, PendingImport, ReadText, SourcesByMv};
pub use history::RunRow;
pub use lock::RunLock;
pub use mv::{Contribution, MvAttr, MvObject, Winners};
pub use ops::{Contributed, Later, ReadOps, ReadTxn, WriteOps, WriteTxn};
pub use packed::{PackSeed, Packer};
pub use phs::PhsPair;

use idflow_core::{Error, Result};
use ops::Sizing;
use rusqlite::Connection;
use std::path::Path;

/// Creates the folder a database (or its lock) lives in, owner-only, when it is missing.
fn folder_of(path: &Path) -> std::io::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) else { return Ok(()) };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// An open metaverse database.
pub struct Store {
    conn: Connection,
    path: String,
    state: ops::ConnState,
}

impl Store {
    /// Opens (creating it and its folder when missing) the database at `path`. It holds every
    /// identity's attributes: a new database is readable by its owner alone (0600, in a 0700
    /// folder when idflow creates the folder; SQLite gives its WAL and SHM files the same mode),
    /// and an existing one that others can read is warned about.
    pub fn open(path: &Path) -> Result<Store> {
        backup::interrupted(path)?;
        let name = path.display().to_string();
        let fail =
            |what: &str, e: std::io::Error| Error::Store { path: name.clone(), message: format!("{what}: {e}"), source: Some(Box::new(e)) };
        folder_of(path).map_err(|e| fail("cannot create its folder", e))?;
        if !path.exists() {
            match backup::new_owner_only(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail("cannot create it", e)),
            }
        }
        if let Ok(Some(mode)) = idflow_core::owner_only::open_to_others(path) {
            tracing::warn!(
                "the metaverse {name} holds every identity's attributes and others can read it (mode {mode:o}): chmod 600 it (and its -wal and -shm files)"
            );
        }
        let conn = Connection::open(path).map_err(|e| ops::failed(&name, e))?;
        let state = ops::ConnState::new(&name);
        Self::init(conn, name, state)
    }

    /// A throw-away database, for `idflow test`.
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|e| Error::store(":memory:", e))?;
        Self::init(conn, ":memory:".into(), ops::ConnState::default())
    }

    fn init(conn: Connection, path: String, state: ops::ConnState) -> Result<Store> {
        schema::init(&conn).map_err(|message| Error::Store { path: path.clone(), message, source: None })?;
        Ok(Store { conn, path, state })
    }

    /// The database's path, as errors name it.
    /// How long a transaction waits for another connection's write to end (10 s unless set).
    pub fn set_busy_timeout(&self, d: std::time::Duration) -> Result<()> {
        self.conn.busy_timeout(d).map_err(|e| Error::store(&self.path, e))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Another connection to the same database, that only reads (`query_only`), for a thread
    /// of its own: its transactions see what is committed, never what a transaction of this
    /// store holds uncommitted. It is set only to read (busy timeout, statement cache, a small
    /// page cache, `query_only`): the schema is this store's, and it never copies the log into
    /// the database (this store's thread does). `None` for a database in memory, which no
    /// other connection can open.
    pub fn reader(&self) -> Result<Option<Store>> {
        if self.path == ":memory:" {
            return Ok(None);
        }
        let e = |e: rusqlite::Error| ops::failed(&self.path, e);
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(e)?;
        schema::reader(&conn).map_err(e)?;
        Ok(Some(Store { conn, path: self.path.clone(), state: ops::ConnState::default() }))
    }

    /// A read transaction: a consistent view until it is dropped.
    pub fn read(&self) -> Result<ReadTxn<'_>> {
        ReadTxn::begin(&self.conn, &self.path, &self.state)
    }

    /// A write transaction: [`WriteTxn::commit`] keeps its changes, dropping it rolls them back.
    pub fn write(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.conn, &self.path, &self.state, Sizing::Usual)
    }

    /// [`Store::write`] for a stage that reads and writes most of the database (a full sync):
    /// while it is open, SQLite keeps up to 512 MiB of pages in memory instead of 64 MiB, so
    /// that the pages it changes are not written out and read again before it commits (at
    /// 300,000 people a full sync touches three times more pages than 64 MiB hold). Back to
    /// 64 MiB once it ends, committed or not, the memory handed back: a delta, or a service
    /// between cycles, keeps the smaller cache (a larger one would cost a delta more in memory
    /// to fault in again than it saves).
    pub fn write_bulk(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.conn, &self.path, &self.state, Sizing::Bulk)
    }

    /// [`Store::write_bulk`] for a stage that reads most of the database and may change little of
    /// it (a full sync of a metaverse made by an earlier sync with the same rules): the pages it
    /// changes are kept as [`Store::write_bulk`] keeps them, the pages it only reads in 256 MiB
    /// instead of 512 MiB.
    pub fn write_rescan(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.conn, &self.path, &self.state, Sizing::Rescan)
    }

    /// [`Store::write`] for a stage that may change many pages (a delta sync) without reading
    /// most of the database: the pages it changes stay in memory, up to 256 MiB of them,
    /// instead of being written to the log while it is open once the 64 MiB cache is full,
    /// and read back to be changed again (a 1% delta at 1,000,000 people changes about 150
    /// MiB of pages). The cache of pages only read stays 64 MiB; the pages above it are freed
    /// when it ends (to the process's allocator, which reuses them).
    pub fn write_changes(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.conn, &self.path, &self.state, Sizing::Changes)
    }

    /// Hands the write-ahead log back to the database file, so it does not stay at its peak
    /// size: asked of the thread that copies it after each commit, which cuts the log back once
    /// all of it is copied and no one reads it, trying again every 250 ms for two minutes while
    /// someone does and this store begins no transaction (the run goes on meanwhile).
    pub fn checkpoint(&self) {
        self.state.wal.ask(&self.conn, self.state.wal.shrink());
    }

    /// Waits for the copy of the write-ahead log into the database file to end (the
    /// database's size, as a benchmark shows it; a store is also settled when dropped).
    pub fn settle(&self) {
        self.state.wal.settle();
    }
}
