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

mod cs;
mod history;
mod meta;
mod mv;
mod ops;
mod phs;
mod schema;

pub use cs::{CsObject, ExportState, Link, PendingImport};
pub use history::RunRow;
pub use mv::{Contribution, MvAttr, MvObject};
pub use ops::{ReadOps, ReadTxn, WriteOps, WriteTxn};
pub use phs::PhsPair;

use idflow_core::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// An open metaverse database.
pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Opens (creating it and its folder when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let name = path.display().to_string();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                    path: name.clone(),
                    message: format!("cannot create its folder: {e}"),
                    source: Some(Box::new(e)),
                })?;
            }
        }
        let conn = Connection::open(path).map_err(|e| Error::store(&name, e))?;
        Self::init(conn, name)
    }

    /// A throw-away database, for `idflow test`.
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|e| Error::store(":memory:", e))?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Store> {
        schema::init(&conn).map_err(|message| Error::Store { path: path.clone(), message, source: None })?;
        Ok(Store { conn, path })
    }

    /// The database's path, as errors name it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A read transaction: a consistent view until it is dropped.
    pub fn read(&self) -> Result<ReadTxn<'_>> {
        ReadTxn::begin(&self.conn, &self.path)
    }

    /// A write transaction: [`WriteTxn::commit`] keeps its changes, dropping it rolls them back.
    pub fn write(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.conn, &self.path)
    }

    /// Hands the write-ahead log back to the database file, so it does not stay at its peak size.
    pub fn checkpoint(&self) {
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
}
