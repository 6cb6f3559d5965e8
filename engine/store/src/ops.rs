//! The operations the engine may ask of the metaverse, as two traits: [`ReadOps`] on any
//! transaction, [`WriteOps`] on a write transaction. The SQLite transactions implement them
//! here; the SQL itself is in the module named for each concept.
use crate::alert::AlertRow;
use crate::anchors_later::AnchorsLater;
use crate::checkpoint::{Ask, Checkpointer};
use crate::cs::{AttrsRead, CsKey, CsLinks, CsObject, ExportState, Link, LinkState};
use crate::cs_dangling::{self, Dangling};
use crate::history::RunRow;
use crate::mv::{Contribution, MvAttr, MvObject, Winners};
use crate::mv_dirty::HeldDirty;
use crate::mv_index::Deferred;
use crate::packed::{Codec, Db, Dicts, Unpacker};
use crate::phs::PhsPair;
use crate::prepared::Statements;
use crate::{alert, cs, history, meta, mv, phs};
use idflow_core::{Error, ObjectError, Result, Value};
use rusqlite::{Connection, Transaction};
use std::collections::BTreeMap;

/// Rows read from a transaction, decoded when called, on any thread.
pub type Later<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// A metaverse object with every contribution to it, read together; the contributions' error
/// (should they not read back) is theirs alone.
pub type Contributed = (MvObject, Result<Vec<Contribution>>);

/// What any transaction can read.
pub trait ReadOps {
    // Connector-space objects.
    fn cs_get(&self, id: i64) -> Result<Option<CsObject>>;
    /// [`ReadOps::cs_get`] of each of `ids` that exists (a few hundred at a time: one statement
    /// each), in no particular order.
    fn cs_get_many(&self, ids: &[i64]) -> Result<Vec<CsObject>>;
    /// [`ReadOps::cs_get_many`] read now, decoded by what it returns, which may run on another
    /// thread: a stage decodes the next objects while it handles these.
    fn cs_get_many_later(&self, ids: &[i64]) -> Result<Later<Vec<CsObject>>>;
    /// The connector of each of `ids` (`None`: no such object), in their order.
    fn cs_connectors_of(&self, ids: &[i64]) -> Result<Vec<Option<String>>>;
    fn cs_by_anchor(&self, connector: &str, anchor: &str) -> Result<Option<CsObject>>;
    /// The id of the object [`ReadOps::cs_by_anchor`] finds, from the anchor index alone.
    fn cs_id_by_anchor(&self, connector: &str, anchor: &str) -> Result<Option<i64>>;
    /// [`ReadOps::cs_by_anchor`] for an import comparing what it read: when the object's
    /// attributes are stored exactly as `read` would be, they are not decoded; it comes back
    /// without them, and `true`. `false` means "not known to be the same": the object comes
    /// back whole for the caller to compare (always so for one whose attributes are kept as a
    /// copy of its desired state; one kept as a patch of it is the same when `read` makes the
    /// same patch).
    fn cs_by_anchor_against(&self, connector: &str, anchor: &str, read: &AttrsRead) -> Result<Option<(CsObject, bool)>>;
    /// Objects of a connector with this DN (normally one; a rename in flight can make two).
    fn cs_by_dn(&self, connector: &str, dn: &str) -> Result<Vec<CsObject>>;
    /// [`CsObject::display`] of the object at `key` (for a DN two objects share while a rename
    /// is in flight, the one present there), its attributes read only as far as that needs.
    fn cs_name_of(&self, key: CsKey<'_>) -> Result<Option<String>>;
    /// The object of `connector` linked to metaverse object `mv_id`, if any.
    fn cs_linked(&self, connector: &str, mv_id: i64) -> Result<Option<CsObject>>;
    /// Every connector-space object linked to a metaverse object, by id.
    fn cs_all_linked(&self, mv_id: i64) -> Result<Vec<CsObject>>;
    /// An object's identity and links, its attributes not read.
    fn cs_links(&self, id: i64) -> Result<Option<CsLinks>>;
    /// [`ReadOps::cs_links`] of every object of a connector, one at a time (none held).
    fn cs_links_of(&self, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()>;
    /// Every object of a connector, by id, with its anchor (none for one without), one at a time
    /// (none held): less to read than [`ReadOps::cs_links_of`].
    fn cs_anchors_of(&self, connector: &str, each: &mut dyn FnMut(i64, Option<String>)) -> Result<()>;
    /// [`ReadOps::cs_links`] of every object of a connector with a pending export, by id, one
    /// at a time (none held).
    fn cs_pending_export_links(&self, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()>;
    /// Where [`ReadOps::cs_by_dn`]'s objects stand (cheap: the index by DN and their rows, not
    /// their attributes).
    fn cs_states_by_dn(&self, connector: &str, dn: &str) -> Result<Vec<LinkState>>;
    /// The DNs (normalized) that more than one object of a connector has (normally none; a
    /// rename in flight can make one). Reads the connector's whole DN index.
    fn cs_shared_dns(&self, connector: &str) -> Result<std::collections::HashSet<String>>;
    /// Where [`ReadOps::cs_linked`]'s object stands (cheap: one index read).
    fn cs_state_linked(&self, connector: &str, mv_id: i64) -> Result<Option<LinkState>>;
    /// Where [`ReadOps::cs_all_linked`]'s objects stand, with their connectors (cheap: one
    /// index read).
    fn cs_states_of_mv(&self, mv_id: i64) -> Result<Vec<(String, LinkState)>>;
    /// The sources (joined, projected) of a metaverse object as `(connector, anchor)`, by id.
    fn cs_sources_of(&self, mv_id: i64) -> Result<Vec<(String, Option<String>)>>;
    /// [`ReadOps::cs_sources_of`] of each of `mv_ids` (each once; a few hundred at a time), by
    /// metaverse object; one with no source is not there.
    fn cs_sources_of_many(&self, mv_ids: &[i64]) -> Result<cs::SourcesByMv>;
    /// Every object of a connector, by id.
    fn cs_of_connector(&self, connector: &str) -> Result<Vec<CsObject>>;
    /// Ids of a connector's objects that exist in its directory, by id.
    fn cs_present_ids(&self, connector: &str) -> Result<Vec<i64>>;
    /// Objects of a connector that exist there and no metaverse object owns (outbound joins).
    fn cs_unlinked_present(&self, connector: &str) -> Result<Vec<CsObject>>;
    /// Ids of a connector's objects with a pending export, in order.
    fn cs_pending_export_ids(&self, connector: &str) -> Result<Vec<i64>>;
    /// How many objects have a pending export, in one connector or in all.
    fn cs_count_pending_export(&self, connector: Option<&str>) -> Result<i64>;
    /// How many objects of a connector wait for their deletion to be exported.
    fn cs_count_pending_deletes(&self, connector: &str) -> Result<i64>;
    /// Changes waiting to be exported, by connector.
    fn cs_pending_exports(&self) -> Result<BTreeMap<String, i64>>;
    /// How many objects of a connector exist in its directory.
    fn cs_count_present(&self, connector: &str) -> Result<i64>;
    /// [`ReadOps::cs_count_present`], counting no further than `most` (as cheap as `most` is small).
    fn cs_count_present_up_to(&self, connector: &str, most: i64) -> Result<i64>;
    /// Does the connector hold objects without an anchor (creates not yet confirmed)?
    fn cs_has_anchorless(&self, connector: &str) -> Result<bool>;
    /// Does the connector space hold any object at all (present or not)?
    fn cs_has_any(&self, connector: &str) -> Result<bool>;
    /// Is any object of the connector linked to a metaverse object (inbound or outbound)?
    fn cs_has_linked(&self, connector: &str) -> Result<bool>;
    /// Does any of the connector's pending exports give its object a DN?
    fn cs_has_pending_dn(&self, connector: &str) -> Result<bool>;
    /// Does the connector remember any former DN (of a renamed or deleted object)?
    fn cs_has_former_dns(&self, connector: &str) -> Result<bool>;
    /// Objects with a pending import, by id.
    fn cs_ids_pending_import(&self) -> Result<Vec<i64>>;
    /// Source objects (not linked outbound, no export state) that are in error: every sync
    /// looks at them again until they are fixed.
    fn cs_ids_inbound_in_error(&self) -> Result<Vec<i64>>;
    /// What a full inbound sync looks at: every object of the source connectors, every object
    /// linked inbound, and every object with a pending import.
    fn cs_ids_full_sync(&self, sources: &[String]) -> Result<Vec<i64>>;
    /// `None`: not a former DN; `Some(None)`: its object was deleted; `Some(Some(id))`: renamed to object `id`.
    fn cs_former_dn(&self, connector: &str, dn: &str) -> Result<Option<Option<i64>>>;
    /// Objects waiting for a DN (normalized) to appear.
    fn cs_waiting_for(&self, dn_norm: &str) -> Result<Vec<i64>>;

    // Metaverse objects.
    fn mv_get(&self, id: i64) -> Result<Option<MvObject>>;
    /// [`ReadOps::mv_get`] of each of `ids` that exists (a few hundred at a time: one statement
    /// each), in no particular order.
    fn mv_get_many(&self, ids: &[i64]) -> Result<Vec<MvObject>>;
    /// [`ReadOps::mv_get_many`] as [`ReadOps::cs_get_many_later`] reads.
    fn mv_get_many_later(&self, ids: &[i64]) -> Result<Later<Vec<MvObject>>>;
    /// [`ReadOps::cs_states_of_mv`] of each of `ids` (a few hundred at a time), by metaverse
    /// object; one with nothing linked is not there.
    fn cs_states_of_mvs(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Vec<(String, LinkState)>>>;
    fn mv_dirty_ids(&self) -> Result<Vec<i64>>;
    fn mv_all_ids(&self) -> Result<Vec<i64>>;
    /// Metaverse objects of `object_type` with `attr` holding `value` (a join lookup).
    fn mv_find_by_value(&self, object_type: &str, attr: &str, value: &Value, ignore_case: bool) -> Result<Vec<i64>>;
    /// Metaverse objects (and the attribute) whose attributes reference `mv_id`.
    fn mv_referrers(&self, mv_id: i64) -> Result<Vec<(i64, String)>>;
    /// Every contribution to a metaverse object, by source object.
    fn mv_contributions(&self, mv_id: i64) -> Result<Vec<Contribution>>;
    /// [`ReadOps::mv_get`] and [`ReadOps::mv_contributions`] in one read.
    fn mv_get_contributed(&self, id: i64) -> Result<Option<Contributed>>;
    /// Is any inbound (joined or projected) connector-space object still linked?
    fn mv_has_inbound_link(&self, mv_id: i64) -> Result<bool>;

    // Settings and watermarks.
    fn meta_get(&self, key: &str) -> Result<Option<String>>;
    fn watermark(&self, connector: &str) -> Result<Option<String>>;

    // Run history.
    /// The errors of the most recent run that recorded any for this object.
    fn history_errors_for(&self, cs_id: Option<i64>, mv_id: Option<i64>) -> Result<Vec<(i64, ObjectError)>>;
    fn history_recent(&self, n: i64) -> Result<Vec<RunRow>>;
    /// Every error the given runs recorded.
    fn history_errors_of_runs(&self, runs: &[i64]) -> Result<Vec<(i64, ObjectError)>>;

    // Health alerts.
    fn alert_open(&self) -> Result<Vec<AlertRow>>;
    /// The newest `n` alerts, open or resolved.
    fn alert_history(&self, n: i64) -> Result<Vec<AlertRow>>;
    /// Raises and resolves not yet delivered to the webhooks.
    fn alert_unsent(&self) -> Result<Vec<AlertRow>>;

    /// Metaverse objects with a value starting with `text` (any case) in one of `attrs`, or a
    /// connector-space object anchored `text`; at most `limit`.
    fn mv_search(&self, text: &str, attrs: &[&str], limit: i64) -> Result<Vec<i64>>;
    /// Metaverse objects that are not deleted.
    fn mv_count(&self) -> Result<i64>;

    // Password hash sync.
    /// Persons linked inbound to `source` and to a target object that exists, with the
    /// fingerprint last delivered there.
    fn phs_pairs(&self, source: &str) -> Result<Vec<PhsPair>>;
}

/// What a write transaction can change besides.
pub trait WriteOps: ReadOps {
    /// Inserts (id 0) or updates the object; returns its id.
    fn cs_save(&self, o: &CsObject) -> Result<i64>;
    /// [`WriteOps::cs_save`] of an object just read, `attrs_json` the JSON text of its
    /// attributes ([`idflow_core::attrs_to_json`]), made where it was read. An object without
    /// a desired state may come without its attributes: `attrs_json` is what is kept. `packed`:
    /// what a [`crate::Packer`] of [`WriteOps::cs_attrs_pack_seed`] made of `attrs_json` there
    /// (kept if the connector's attributes are still packed with that dictionary).
    fn cs_save_read(&self, o: &CsObject, attrs_json: String, packed: Option<Vec<u8>>) -> Result<i64>;
    /// The dictionary a connector's attributes are packed with now, if it has one: an import
    /// packs what it reads on the thread that reads it ([`crate::PackSeed::packer`]).
    fn cs_attrs_pack_seed(&self, connector: &str) -> Result<Option<crate::PackSeed>>;
    /// A first import into an empty database: the index by anchor is made once, as the
    /// transaction commits, rather than entry by entry as objects arrive (lookups by anchor
    /// still find every object written). Whether it is so (`false`: objects are kept already).
    fn cs_index_anchors_at_commit(&self) -> Result<bool>;
    /// The index by anchor [`WriteOps::cs_index_anchors_at_commit`] left out made now, if it
    /// is (an import that dropped it ends: later stages of the transaction list a connector's
    /// objects through it).
    fn cs_index_anchors_now(&self) -> Result<()>;
    /// Writes only an object's link (what [`WriteOps::cs_save`] would, for these columns).
    fn cs_set_link(&self, id: i64, mv_id: Option<i64>, link: Option<Link>, rule: Option<&str>) -> Result<()>;
    /// Writes only what outbound sync decides for a target object: `desired`, `desired_dn`,
    /// `export_state`, `pending_export` and `error` (its id, attributes and links stay).
    /// `was`: the export state it had (indexed: written only when it changes).
    fn cs_set_desired(&self, o: &CsObject, was: Option<ExportState>) -> Result<()>;
    /// Writes only that sync looked at an import: no pending import, this error or none.
    fn cs_set_synced(&self, id: i64, error: Option<&str>) -> Result<()>;
    /// [`WriteOps::cs_set_link`] and [`WriteOps::cs_set_synced`] in one write: the object's
    /// link as `o` has it, no pending import, this error or none.
    fn cs_set_link_synced(&self, o: &CsObject, error: Option<&str>) -> Result<()>;
    /// Writes only what an export changes of an object (what [`WriteOps::cs_save`] would, for
    /// these columns): its anchor, DN, attributes, presence, pending export and error.
    fn cs_set_exported(&self, o: &CsObject) -> Result<()>;
    fn cs_delete(&self, id: i64) -> Result<()>;
    /// Remembers a DN an object no longer has: renamed (`Some(id)`: references to the old DN
    /// follow it) or deleted (`None`: references to it are dropped quietly).
    fn cs_set_former_dn(&self, connector: &str, dn: &str, cs_id: Option<i64>) -> Result<()>;
    /// A DN in use again is no longer a former DN.
    fn cs_clear_former_dn(&self, connector: &str, dn: &str) -> Result<()>;
    /// Records that `cs_id` references DNs (normalized) not (yet) linked.
    fn cs_set_dangling(&self, cs_id: i64, dns: &[String]) -> Result<()>;

    /// A new object with these winning attributes, marked dirty: its id.
    fn mv_create(&self, object_type: &str, attrs: &BTreeMap<String, MvAttr>) -> Result<i64>;
    /// [`WriteOps::mv_create`] of an object projected by the source object whose contributions
    /// are `all` (stored as [`WriteOps::mv_save_contributed`] stores contributions), in one write.
    fn mv_project(&self, object_type: &str, attrs: &BTreeMap<String, MvAttr>, all: &[Contribution]) -> Result<i64>;
    /// What a change of one source object's contributions writes, in one write of the
    /// object's row: `all`, every source object's contributions as they stand now (the
    /// others' as [`ReadOps::mv_contributions`] read them in this transaction; none: the row
    /// holds none), and the winners when they changed: written, and the attributes whose
    /// winner changed re-indexed (`old`: the values those of them that had a winner before had).
    fn mv_save_contributed(&self, id: i64, all: &[Contribution], winners: Option<Winners<'_>>) -> Result<()>;
    fn mv_mark_dirty(&self, id: i64) -> Result<()>;
    /// A deleted object whose source object returned before its deletion was exported: alive again.
    fn mv_restore(&self, id: i64) -> Result<()>;
    /// Marks an object deleted (outbound sync deprovisions it) and drops its contributions.
    fn mv_mark_deleted(&self, id: i64) -> Result<()>;
    /// Removes a deleted object for good (after outbound sync has deprovisioned it).
    fn mv_purge(&self, id: i64) -> Result<()>;
    /// Clears the dirty flag of these objects (outbound sync has looked at them).
    fn mv_clear_dirty(&self, ids: &[i64]) -> Result<()>;

    fn meta_set(&self, key: &str, value: &str) -> Result<()>;
    fn meta_delete(&self, key: &str) -> Result<()>;
    fn set_watermark(&self, connector: &str, watermark: Option<&str>) -> Result<()>;

    /// A run starts: its id.
    fn history_start(&self, profile: &str) -> Result<i64>;
    /// Runs still marked running when the run lock was free were killed: marked interrupted.
    fn history_interrupt_running(&self) -> Result<usize>;
    fn history_record(&self, run_id: i64, e: &ObjectError) -> Result<()>;
    /// Removes runs that finished more than `days` days ago (the newest run stays); how many.
    fn history_purge(&self, days: u32) -> Result<usize>;
    fn history_finish(&self, run_id: i64, status: &str, summary: &serde_json::Value) -> Result<()>;

    /// Raises alert `key` unless it is open: its id, and whether it is new.
    fn alert_raise(&self, key: &str, kind: &str, severity: &str, connector: Option<&str>, summary: &str) -> Result<(i64, bool)>;
    fn alert_resolve(&self, id: i64) -> Result<()>;
    /// The webhooks were told of the raise (`resolved` false) or of the resolve.
    fn alert_sent(&self, id: i64, resolved: bool) -> Result<()>;

    /// The source had no hash for the target object (kept once, so incremental sources stop asking).
    fn phs_mark_without_hash(&self, target_cs: i64) -> Result<()>;
    /// A hash reached the target object: its fingerprint, and when.
    fn phs_delivered(&self, target_cs: i64, fingerprint: &str) -> Result<()>;
    /// The target object is gone from its directory: no hash is there any more.
    fn phs_forget(&self, target_cs: i64) -> Result<()>;
}

/// A read transaction on the SQLite metaverse.
pub struct ReadTxn<'s> {
    /// Before `tx`: its statements go back to rusqlite's cache before the transaction ends.
    statements: Statements<'s>,
    tx: Transaction<'s>,
    path: &'s str,
    state: &'s ConnState,
}

/// A write transaction on the SQLite metaverse: rolled back when dropped uncommitted.
pub struct WriteTxn<'s> {
    /// Before `tx`: its statements go back to rusqlite's cache before the transaction ends.
    statements: Statements<'s>,
    tx: Transaction<'s>,
    path: &'s str,
    ended: Ended<'s>,
}

/// What one connection keeps between statements: its compression dictionaries, and the index
/// entries and dirty marks held back, told when a write transaction begins and how it ended.
#[derive(Default)]
pub(crate) struct ConnState {
    codec: Codec,
    index: Deferred,
    dirty: HeldDirty,
    dangling: Dangling,
    anchors: AnchorsLater,
    pub(crate) wal: Checkpointer,
}

impl ConnState {
    /// For the database file at `path` (its log copied on a thread of its own).
    pub(crate) fn new(path: &str) -> ConnState {
        ConnState { wal: Checkpointer::new(path), ..ConnState::default() }
    }

    fn begin_write(&self) {
        self.codec.begin_write();
        self.dangling.forget();
        self.index.writing(true);
    }

    fn end_write(&self, committed: bool) {
        self.codec.end_write(committed);
        self.index.writing(false);
        if !committed {
            self.index.drop_held();
            self.dirty.drop_held();
            self.anchors.rolled_back();
        }
    }
}

/// How much memory a write transaction's pages may take while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sizing {
    /// A cache of 64 MiB; changed pages beyond it are written to the log before the commit.
    Usual,
    /// The same cache; up to 256 MiB of changed pages are kept before any is written.
    Changes,
    /// A cache of 512 MiB.
    Bulk,
    /// Changed pages kept up to 512 MiB before any is written, as [`Sizing::Bulk`]; pages only
    /// read, up to 256 MiB.
    Rescan,
}

impl Sizing {
    /// `(cache_size, cache_spill)`, in KiB.
    fn kib(self) -> (i64, i64) {
        use crate::schema::{CACHE_KIB, CHANGED_PAGES_KIB, FULL_SYNC_CACHE_KIB, RESCAN_READ_KIB};
        match self {
            Sizing::Usual => (CACHE_KIB, CACHE_KIB),
            Sizing::Changes => (CACHE_KIB, CHANGED_PAGES_KIB),
            Sizing::Bulk => (FULL_SYNC_CACHE_KIB, FULL_SYNC_CACHE_KIB),
            Sizing::Rescan => (RESCAN_READ_KIB, FULL_SYNC_CACHE_KIB),
        }
    }

    fn apply(self, conn: &Connection) -> rusqlite::Result<()> {
        let (cache, spill) = self.kib();
        conn.pragma_update(None, "cache_size", -cache)?;
        conn.pragma_update(None, "cache_spill", -spill)
    }
}

/// Tells the connection's state how a write transaction ended (dropped uncommitted: rolled
/// back), and gives the connection its usual page cache back after a larger one.
struct Ended<'s> {
    state: &'s ConnState,
    committed: bool,
    conn: &'s Connection,
    /// A larger cache than the usual one was set for the transaction.
    larger: bool,
    /// Hand the freed pages back to the system (after a bulk or rescan transaction; a delta's are few
    /// and reused, and trimming a large heap after every delta cost a 1% delta at 100,000
    /// people 0.156 s against 0.128 s).
    trim: bool,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.state.end_write(self.committed);
        if self.larger {
            let conn = self.conn;
            // Lowering the size frees the pages above it. Should it fail, the connection keeps
            // the larger cache (memory, not data): nothing to report.
            let _ = Sizing::Usual.apply(conn);
            // The pages come from the C library's malloc, which keeps what is freed for the
            // process: without this, the memory stays the process's until it exits.
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            if self.trim {
                // SAFETY: releases free memory of the C library's heap to the system; no
                // pointer of ours is touched.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        }
    }
}

impl<'s> ReadTxn<'s> {
    pub(crate) fn begin(conn: &'s Connection, path: &'s str, state: &'s ConnState) -> Result<Self> {
        state.wal.began();
        Ok(ReadTxn { tx: conn.unchecked_transaction().map_err(|e| failed(path, e))?, statements: Statements::new(conn), path, state })
    }
}

impl<'s> WriteTxn<'s> {
    /// Takes the write lock at once (BEGIN IMMEDIATE): a transaction that read first and wrote
    /// later could otherwise find another writer (the service's health thread, say) committed
    /// in between and fail with SQLITE_BUSY_SNAPSHOT instead of waiting its turn.
    /// `sizing`: the memory its pages may take while it is open.
    pub(crate) fn begin(conn: &'s Connection, path: &'s str, state: &'s ConnState, sizing: Sizing) -> Result<Self> {
        let tx = Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).map_err(|e| failed(path, e))?;
        state.wal.began();
        state.begin_write();
        let larger = sizing != Sizing::Usual;
        let ended = Ended { state, committed: false, conn, larger, trim: matches!(sizing, Sizing::Bulk | Sizing::Rescan) };
        if larger {
            if let Err(e) = sizing.apply(conn) {
                // Rolled back before `ended` tells the connection's state, as in `commit`.
                drop(tx);
                return Err(Error::store(path, e));
            }
        }
        Ok(WriteTxn { statements: Statements::new(conn), tx, path, ended })
    }

    /// Keeps every change of the transaction, or none.
    pub fn commit(self) -> Result<()> {
        let WriteTxn { statements, tx, path, mut ended } = self;
        drop(statements);
        if let Err(e) =
            ended.state.index.flush(&tx).and_then(|()| ended.state.dirty.write(&tx)).and_then(|()| ended.state.anchors.finish(&tx))
        {
            // Rolled back before `ended` tells the connection's state (and gives a larger
            // transaction's connection its usual cache back).
            drop(tx);
            return Err(failed(path, e));
        }
        tx.commit().map_err(|e| failed(path, e))?;
        ended.committed = true;
        ended.state.wal.ask(ended.conn, Ask::Copy);
        Ok(())
    }
}

mod sealed {
    /// A SQLite connection inside a transaction, and the database's path for errors.
    pub trait Sqlite {
        fn conn(&self) -> &rusqlite::Connection;
        fn path(&self) -> &str;
        #[allow(private_interfaces)]
        fn state(&self) -> &super::ConnState;
        #[allow(private_interfaces)]
        fn statements(&self) -> &dyn crate::prepared::Prepared;
    }
}
use sealed::Sqlite;

impl Sqlite for ReadTxn<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }
    fn path(&self) -> &str {
        self.path
    }
    #[allow(private_interfaces)]
    fn state(&self) -> &ConnState {
        self.state
    }
    #[allow(private_interfaces)]
    fn statements(&self) -> &dyn crate::prepared::Prepared {
        &self.statements
    }
}

impl Sqlite for WriteTxn<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }
    fn path(&self) -> &str {
        self.path
    }
    #[allow(private_interfaces)]
    fn state(&self) -> &ConnState {
        self.ended.state
    }
    #[allow(private_interfaces)]
    fn statements(&self) -> &dyn crate::prepared::Prepared {
        &self.statements
    }
}

/// Runs one statement's function, naming the database in its error.
pub(crate) fn on<S: Sqlite + ?Sized, T>(s: &S, f: impl FnOnce(&Db) -> rusqlite::Result<T>) -> Result<T> {
    let state = s.state();
    f(&Db {
        conn: s.conn(),
        codec: &state.codec,
        index: &state.index,
        dirty: &state.dirty,
        dangling: &state.dangling,
        anchors: &state.anchors,
        statements: s.statements(),
    })
    .map_err(|e| failed(s.path(), e))
}

/// The store's error for `e`. A stored value that does not read back, once the store said whose
/// it is ([`crate::packed::naming`]), is said so, without SQLite's column index before it; a
/// full disk names the other place SQLite writes to (a first import of 1,000,000 people needs
/// 16 to 40 MiB there, and with less failed with "database or disk is full" alone); a damaged
/// database says what to do; any other error as SQLite says it.
pub(crate) fn failed(path: &str, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::FromSqlConversionFailure(_, _, inner) if inner.is::<crate::packed::Named>() => {
            Error::Store { path: path.to_string(), message: inner.to_string(), source: Some(Box::new(e)) }
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => Error::Store {
            path: path.to_string(),
            message: format!(
                "{e}: the disk it is on is full, or SQLite's directory for temporary files is ($SQLITE_TMPDIR, else \
                 the first of /var/tmp, /usr/tmp and /tmp that can be written); free space there, or point \
                 SQLITE_TMPDIR at a directory with room"
            ),
            source: Some(Box::new(e)),
        },
        _ if is_damaged(&e) => Error::Store { path: path.to_string(), message: said(&e), source: Some(Box::new(e)) },
        _ => Error::store(path, e),
    }
}

/// What to do about a database SQLite finds damaged, or that is not a database at all.
const DAMAGED: &str = "the file is damaged, or is not a metaverse database (is metaverse_path the right file?). Stop \
     every idflow that uses it; then either put back a copy `idflow backup` made, with `idflow restore FILE` (the damaged \
     one is kept beside it), or move it aside with its -wal and -shm files: the next run builds a new metaverse from \
     the sources, in which each target object is adopted where an outbound rule's join finds it and made again where \
     none does";

/// Whether SQLite found the database damaged (or not a database).
fn is_damaged(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// `e` as SQLite says it, and what to do when the database is damaged.
pub(crate) fn said(e: &rusqlite::Error) -> String {
    match is_damaged(e) {
        true => format!("{e}: {DAMAGED}"),
        false => e.to_string(),
    }
}

/// `f` on `ids` a statement's worth at a time ([`cs::IDS_PER_STATEMENT`]), the results together.
fn by_chunks<S: Sqlite + ?Sized, C: Default + Extend<C::Item> + IntoIterator>(
    s: &S,
    ids: &[i64],
    f: impl Fn(&Db, &[i64]) -> rusqlite::Result<C>,
) -> Result<C> {
    let mut out = C::default();
    for chunk in ids.chunks(cs::IDS_PER_STATEMENT) {
        out.extend(on(s, |c| f(c, chunk))?);
    }
    Ok(out)
}

/// `read` of `ids` a statement's worth at a time, its rows kept as stored; what it returns
/// unpacks them (with the dictionaries they need, read now) and names the database in an error.
fn kept<S: Sqlite + ?Sized, K: Send + 'static, T: 'static>(
    s: &S,
    ids: &[i64],
    read: impl Fn(&Db, &[i64], &mut Dicts) -> rusqlite::Result<Vec<K>>,
    unpack: fn(K, &mut Unpacker) -> rusqlite::Result<T>,
) -> Result<Later<Vec<T>>> {
    let mut dicts = Dicts::default();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(cs::IDS_PER_STATEMENT) {
        rows.extend(on(s, |c| read(c, chunk, &mut dicts))?);
    }
    let path = s.path().to_string();
    Ok(Box::new(move || {
        let mut u = Unpacker::new(&dicts);
        rows.into_iter().map(|k| unpack(k, &mut u).map_err(|e| failed(&path, e))).collect()
    }))
}

impl<S: Sqlite> ReadOps for S {
    fn cs_get_many(&self, ids: &[i64]) -> Result<Vec<CsObject>> {
        by_chunks(self, ids, cs::get_many)
    }
    fn cs_get_many_later(&self, ids: &[i64]) -> Result<Later<Vec<CsObject>>> {
        kept(self, ids, cs::get_many_kept, cs::KeptObject::unpack)
    }
    fn cs_get(&self, id: i64) -> Result<Option<CsObject>> {
        on(self, |c| cs::get(c, id))
    }
    fn cs_connectors_of(&self, ids: &[i64]) -> Result<Vec<Option<String>>> {
        on(self, |c| cs::connectors_of(c, ids))
    }
    fn cs_by_anchor(&self, connector: &str, anchor: &str) -> Result<Option<CsObject>> {
        on(self, |c| cs::by_anchor(c, connector, anchor))
    }
    fn cs_id_by_anchor(&self, connector: &str, anchor: &str) -> Result<Option<i64>> {
        on(self, |c| cs::id_by_anchor(c, connector, anchor))
    }
    fn cs_by_anchor_against(&self, connector: &str, anchor: &str, read: &AttrsRead) -> Result<Option<(CsObject, bool)>> {
        on(self, |c| cs::by_anchor_against(c, connector, anchor, read))
    }
    fn cs_name_of(&self, key: CsKey<'_>) -> Result<Option<String>> {
        on(self, |c| cs::name_of(c, key))
    }
    fn cs_by_dn(&self, connector: &str, dn: &str) -> Result<Vec<CsObject>> {
        on(self, |c| cs::by_dn(c, connector, dn))
    }
    fn cs_linked(&self, connector: &str, mv_id: i64) -> Result<Option<CsObject>> {
        on(self, |c| cs::linked(c, connector, mv_id))
    }
    fn cs_all_linked(&self, mv_id: i64) -> Result<Vec<CsObject>> {
        on(self, |c| cs::all_linked(c, mv_id))
    }
    fn cs_links(&self, id: i64) -> Result<Option<CsLinks>> {
        on(self, |c| cs::links(c, id))
    }
    fn cs_links_of(&self, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()> {
        on(self, |c| cs::links_of(c, connector, each))
    }
    fn cs_anchors_of(&self, connector: &str, each: &mut dyn FnMut(i64, Option<String>)) -> Result<()> {
        on(self, |c| cs::anchors_of(c, connector, each))
    }
    fn cs_pending_export_links(&self, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()> {
        on(self, |c| cs::pending_export_links(c, connector, each))
    }
    fn cs_states_by_dn(&self, connector: &str, dn: &str) -> Result<Vec<LinkState>> {
        on(self, |c| cs::states_by_dn(c, connector, dn))
    }
    fn cs_shared_dns(&self, connector: &str) -> Result<std::collections::HashSet<String>> {
        on(self, |c| cs::shared_dns(c, connector))
    }
    fn cs_state_linked(&self, connector: &str, mv_id: i64) -> Result<Option<LinkState>> {
        on(self, |c| cs::state_linked(c, connector, mv_id))
    }
    fn cs_states_of_mv(&self, mv_id: i64) -> Result<Vec<(String, LinkState)>> {
        on(self, |c| cs::states_of_mv(c, mv_id))
    }
    fn cs_sources_of(&self, mv_id: i64) -> Result<Vec<(String, Option<String>)>> {
        on(self, |c| cs::sources_of(c, mv_id))
    }
    fn cs_sources_of_many(&self, mv_ids: &[i64]) -> Result<cs::SourcesByMv> {
        by_chunks(self, mv_ids, |c, ids| cs::sources_of_many(c, ids))
    }
    fn cs_of_connector(&self, connector: &str) -> Result<Vec<CsObject>> {
        on(self, |c| cs::of_connector(c, connector))
    }
    fn cs_present_ids(&self, connector: &str) -> Result<Vec<i64>> {
        on(self, |c| cs::present_ids(c, connector))
    }
    fn cs_unlinked_present(&self, connector: &str) -> Result<Vec<CsObject>> {
        on(self, |c| cs::unlinked_present(c, connector))
    }
    fn cs_pending_export_ids(&self, connector: &str) -> Result<Vec<i64>> {
        on(self, |c| cs::pending_export_ids(c, connector))
    }
    fn cs_count_pending_export(&self, connector: Option<&str>) -> Result<i64> {
        on(self, |c| cs::count_pending_export(c, connector))
    }
    fn cs_pending_exports(&self) -> Result<BTreeMap<String, i64>> {
        on(self, |c| cs::pending_exports(c))
    }
    fn cs_count_pending_deletes(&self, connector: &str) -> Result<i64> {
        on(self, |c| cs::count_pending_deletes(c, connector))
    }
    fn cs_count_present(&self, connector: &str) -> Result<i64> {
        on(self, |c| cs::count_present(c, connector))
    }
    fn cs_count_present_up_to(&self, connector: &str, most: i64) -> Result<i64> {
        on(self, |c| cs::count_present_up_to(c, connector, most))
    }
    fn cs_has_anchorless(&self, connector: &str) -> Result<bool> {
        on(self, |c| cs::has_anchorless(c, connector))
    }
    fn cs_has_any(&self, connector: &str) -> Result<bool> {
        on(self, |c| cs::has_any(c, connector))
    }
    fn cs_has_linked(&self, connector: &str) -> Result<bool> {
        on(self, |c| cs::has_linked(c, connector))
    }
    fn cs_has_pending_dn(&self, connector: &str) -> Result<bool> {
        on(self, |c| cs::has_pending_dn(c, connector))
    }
    fn cs_has_former_dns(&self, connector: &str) -> Result<bool> {
        on(self, |c| cs::has_former_dns(c, connector))
    }
    fn cs_ids_pending_import(&self) -> Result<Vec<i64>> {
        on(self, |c| cs::ids_pending_import(c))
    }
    fn cs_ids_inbound_in_error(&self) -> Result<Vec<i64>> {
        on(self, |c| cs::ids_inbound_in_error(c))
    }
    fn cs_ids_full_sync(&self, sources: &[String]) -> Result<Vec<i64>> {
        on(self, |c| cs::ids_full_sync(c, sources))
    }
    fn cs_former_dn(&self, connector: &str, dn: &str) -> Result<Option<Option<i64>>> {
        on(self, |c| cs::former_dn(c, connector, dn))
    }
    fn cs_waiting_for(&self, dn_norm: &str) -> Result<Vec<i64>> {
        on(self, |c| cs_dangling::waiting_for(c, dn_norm))
    }

    fn mv_get_many(&self, ids: &[i64]) -> Result<Vec<MvObject>> {
        by_chunks(self, ids, mv::get_many)
    }
    fn mv_get_many_later(&self, ids: &[i64]) -> Result<Later<Vec<MvObject>>> {
        kept(self, ids, mv::get_many_kept, mv::KeptMv::unpack)
    }
    fn cs_states_of_mvs(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Vec<(String, LinkState)>>> {
        by_chunks(self, ids, |c, ids| cs::states_of_mvs(c, ids))
    }
    fn mv_get(&self, id: i64) -> Result<Option<MvObject>> {
        on(self, |c| mv::get(c, id))
    }
    fn mv_dirty_ids(&self) -> Result<Vec<i64>> {
        on(self, mv::dirty_ids)
    }
    fn mv_all_ids(&self) -> Result<Vec<i64>> {
        on(self, |c| mv::all_ids(c))
    }
    fn mv_find_by_value(&self, object_type: &str, attr: &str, value: &Value, ignore_case: bool) -> Result<Vec<i64>> {
        on(self, |c| mv::find_by_value(c, object_type, attr, value, ignore_case))
    }
    fn mv_referrers(&self, mv_id: i64) -> Result<Vec<(i64, String)>> {
        on(self, |c| mv::referrers(c, mv_id))
    }
    fn mv_contributions(&self, mv_id: i64) -> Result<Vec<Contribution>> {
        on(self, |c| mv::contributions(c, mv_id))
    }
    fn mv_get_contributed(&self, id: i64) -> Result<Option<Contributed>> {
        let got = on(self, |c| mv::get_contributed(c, id))?;
        Ok(got.map(|(o, all)| (o, all.map_err(|e| failed(self.path(), e)))))
    }
    fn mv_has_inbound_link(&self, mv_id: i64) -> Result<bool> {
        on(self, |c| mv::has_inbound_link(c, mv_id))
    }
    fn mv_search(&self, text: &str, attrs: &[&str], limit: i64) -> Result<Vec<i64>> {
        on(self, |c| mv::search(c, text, attrs, limit))
    }
    fn mv_count(&self) -> Result<i64> {
        on(self, |c| mv::count(c))
    }
    fn history_errors_of_runs(&self, runs: &[i64]) -> Result<Vec<(i64, ObjectError)>> {
        on(self, |c| history::errors_of_runs(c, runs))
    }
    fn alert_open(&self) -> Result<Vec<AlertRow>> {
        on(self, |c| alert::open(c))
    }
    fn alert_history(&self, n: i64) -> Result<Vec<AlertRow>> {
        on(self, |c| alert::history(c, n))
    }
    fn alert_unsent(&self) -> Result<Vec<AlertRow>> {
        on(self, |c| alert::unsent(c))
    }

    fn meta_get(&self, key: &str) -> Result<Option<String>> {
        on(self, |c| meta::get(c, key))
    }
    fn watermark(&self, connector: &str) -> Result<Option<String>> {
        on(self, |c| meta::watermark(c, connector))
    }

    fn history_errors_for(&self, cs_id: Option<i64>, mv_id: Option<i64>) -> Result<Vec<(i64, ObjectError)>> {
        on(self, |c| history::errors_for(c, cs_id, mv_id))
    }
    fn history_recent(&self, n: i64) -> Result<Vec<RunRow>> {
        on(self, |c| history::recent(c, n))
    }

    fn phs_pairs(&self, source: &str) -> Result<Vec<PhsPair>> {
        on(self, |c| phs::pairs(c, source))
    }
}

impl WriteOps for WriteTxn<'_> {
    fn cs_save(&self, o: &CsObject) -> Result<i64> {
        on(self, |c| cs::save(c, o, None))
    }
    fn cs_index_anchors_at_commit(&self) -> Result<bool> {
        on(self, |c| c.anchors.start(c))
    }
    fn cs_index_anchors_now(&self) -> Result<()> {
        on(self, |c| c.anchors.finish(c))
    }
    fn cs_save_read(&self, o: &CsObject, attrs_json: String, packed: Option<Vec<u8>>) -> Result<i64> {
        debug_assert!(
            (o.attrs.is_empty() && o.desired.is_none()) || attrs_json == idflow_core::attrs_to_json(&o.attrs),
            "the JSON text of the object's attributes"
        );
        on(self, |c| cs::save(c, o, Some((attrs_json, packed))))
    }
    fn cs_attrs_pack_seed(&self, connector: &str) -> Result<Option<crate::PackSeed>> {
        on(self, |c| c.seed(crate::packed::Column::CsAttrs, connector))
    }
    fn cs_set_link(&self, id: i64, mv_id: Option<i64>, link: Option<Link>, rule: Option<&str>) -> Result<()> {
        on(self, |c| cs::set_link(c, id, mv_id, link, rule))
    }
    fn cs_set_desired(&self, o: &CsObject, was: Option<ExportState>) -> Result<()> {
        on(self, |c| cs::set_desired(c, o, was))
    }
    fn cs_set_synced(&self, id: i64, error: Option<&str>) -> Result<()> {
        on(self, |c| cs::set_synced(c, id, error))
    }
    fn cs_set_link_synced(&self, o: &CsObject, error: Option<&str>) -> Result<()> {
        on(self, |c| cs::set_link_synced(c, o, error))
    }
    fn cs_set_exported(&self, o: &CsObject) -> Result<()> {
        on(self, |c| cs::set_exported(c, o))
    }
    fn cs_delete(&self, id: i64) -> Result<()> {
        on(self, |c| cs::delete(c, id))
    }
    fn cs_set_former_dn(&self, connector: &str, dn: &str, cs_id: Option<i64>) -> Result<()> {
        on(self, |c| cs::set_former_dn(c, connector, dn, cs_id))
    }
    fn cs_clear_former_dn(&self, connector: &str, dn: &str) -> Result<()> {
        on(self, |c| cs::clear_former_dn(c, connector, dn))
    }
    fn cs_set_dangling(&self, cs_id: i64, dns: &[String]) -> Result<()> {
        on(self, |c| cs_dangling::set(c, c.dangling, cs_id, dns))
    }

    fn mv_create(&self, object_type: &str, attrs: &BTreeMap<String, MvAttr>) -> Result<i64> {
        on(self, |c| mv::create(c, object_type, attrs, &[]))
    }
    fn mv_project(&self, object_type: &str, attrs: &BTreeMap<String, MvAttr>, all: &[Contribution]) -> Result<i64> {
        on(self, |c| mv::create(c, object_type, attrs, all))
    }
    fn mv_save_contributed(&self, id: i64, all: &[Contribution], winners: Option<Winners<'_>>) -> Result<()> {
        on(self, |c| mv::save_contributed(c, id, all, winners))
    }
    fn mv_mark_dirty(&self, id: i64) -> Result<()> {
        on(self, |c| mv::mark_dirty(c, id))
    }
    fn mv_restore(&self, id: i64) -> Result<()> {
        on(self, |c| mv::restore(c, id))
    }
    fn mv_mark_deleted(&self, id: i64) -> Result<()> {
        on(self, |c| mv::mark_deleted(c, id))
    }
    fn mv_purge(&self, id: i64) -> Result<()> {
        on(self, |c| mv::purge(c, id))
    }
    fn mv_clear_dirty(&self, ids: &[i64]) -> Result<()> {
        on(self, |c| mv::clear_dirty(c, ids))
    }

    fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        on(self, |c| meta::set(c, key, value))
    }
    fn meta_delete(&self, key: &str) -> Result<()> {
        on(self, |c| meta::delete(c, key))
    }
    fn set_watermark(&self, connector: &str, watermark: Option<&str>) -> Result<()> {
        on(self, |c| meta::set_watermark(c, connector, watermark))
    }

    fn alert_raise(&self, key: &str, kind: &str, severity: &str, connector: Option<&str>, summary: &str) -> Result<(i64, bool)> {
        on(self, |c| alert::raise(c, key, kind, severity, connector, summary))
    }
    fn alert_resolve(&self, id: i64) -> Result<()> {
        on(self, |c| alert::resolve(c, id))
    }
    fn alert_sent(&self, id: i64, resolved: bool) -> Result<()> {
        on(self, |c| alert::sent(c, id, resolved))
    }

    fn history_start(&self, profile: &str) -> Result<i64> {
        on(self, |c| history::start(c, profile))
    }
    fn history_interrupt_running(&self) -> Result<usize> {
        on(self, |c| history::interrupt_running(c))
    }
    fn history_record(&self, run_id: i64, e: &ObjectError) -> Result<()> {
        on(self, |c| history::record(c, run_id, e))
    }
    fn history_purge(&self, days: u32) -> Result<usize> {
        on(self, |c| history::purge(c, days))
    }
    fn history_finish(&self, run_id: i64, status: &str, summary: &serde_json::Value) -> Result<()> {
        on(self, |c| history::finish(c, run_id, status, summary))
    }

    fn phs_mark_without_hash(&self, target_cs: i64) -> Result<()> {
        on(self, |c| phs::mark_without_hash(c, target_cs))
    }
    fn phs_delivered(&self, target_cs: i64, fingerprint: &str) -> Result<()> {
        on(self, |c| phs::delivered(c, target_cs, fingerprint))
    }
    fn phs_forget(&self, target_cs: i64) -> Result<()> {
        on(self, |c| phs::forget(c, target_cs))
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::{CACHE_KIB, CHANGED_PAGES_KIB, FULL_SYNC_CACHE_KIB, RESCAN_READ_KIB};
    use crate::{Store, WriteOps};

    fn cache_kib(store: &Store) -> i64 {
        -store.conn.query_row("PRAGMA cache_size", [], |r| r.get::<_, i64>(0)).expect("cache size")
    }

    /// How many changed pages are kept before any is written to the log (SQLite counts a
    /// page's bookkeeping too, so not exactly KiB / 4).
    fn spill_pages(store: &Store) -> i64 {
        store.conn.query_row("PRAGMA cache_spill", [], |r| r.get::<_, i64>(0)).expect("spill")
    }

    /// A full disk (here the database's page limit, which SQLite reports the same way) names
    /// the temporary directory too, where SQLite also writes.
    #[test]
    fn a_full_disk_says_where_sqlite_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("idflow.db")).expect("open");
        let pages: i64 = store.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
        store.conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 2), [], |r| r.get::<_, i64>(0)).expect("limit");
        let tx = store.write().expect("write");
        let err = (0..10_000)
            .map(|i| tx.meta_set(&format!("k{i}"), &"v".repeat(100)))
            .find_map(std::result::Result::err)
            .expect("full before 10,000 values");
        let text = err.to_string();
        assert!(text.contains("database or disk is full") && text.contains("SQLITE_TMPDIR"), "{text}");
    }

    /// A file that is not a database, and a database cut short, are said to be damaged, with
    /// what to do, and named.
    #[test]
    fn a_damaged_database_says_what_to_do() {
        let dir = tempfile::tempdir().expect("dir");
        let not_one = dir.path().join("not-one.db");
        std::fs::write(&not_one, vec![0x5a; 64 * 1024]).expect("write");
        let text = Store::open(&not_one).err().expect("refused").to_string();
        assert!(text.contains("not-one.db") && text.contains("file is not a database") && text.contains("idflow restore FILE"), "{text}");

        let cut = dir.path().join("cut.db");
        {
            let store = Store::open(&cut).expect("open");
            let tx = store.write().expect("write");
            for i in 0..5_000 {
                tx.meta_set(&format!("k{i:05}"), &format!("{i:0>200}")).expect("set");
            }
            tx.commit().expect("commit");
            store.settle();
            store.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)).expect("checkpoint");
        }
        let len = std::fs::metadata(&cut).expect("size").len();
        std::fs::OpenOptions::new().write(true).open(&cut).expect("open").set_len(len / 2).expect("cut");
        let text = match Store::open(&cut) {
            Err(e) => e.to_string(),
            Ok(store) => {
                let tx = store.read().expect("read");
                (0..5_000).find_map(|i| crate::ReadOps::meta_get(&tx, &format!("k{i:05}")).err()).expect("a read fails").to_string()
            }
        };
        assert!(text.contains("cut.db") && text.contains("malformed") && text.contains("move it aside"), "{text}");
    }

    /// A bulk transaction has the larger page cache while it is open, and the connection has
    /// its usual one again once it ends, committed or rolled back; its changes are as any
    /// write transaction's.
    #[test]
    fn a_bulk_transaction_has_the_larger_cache_until_it_ends() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("idflow.db")).expect("open");
        assert_eq!(cache_kib(&store), CACHE_KIB);
        let tx = store.write_bulk().expect("bulk");
        assert_eq!(cache_kib(&store), FULL_SYNC_CACHE_KIB);
        tx.meta_set("k", "kept").expect("set");
        tx.commit().expect("commit");
        assert_eq!(cache_kib(&store), CACHE_KIB, "after a commit");
        let tx = store.write_bulk().expect("bulk");
        tx.meta_set("k", "rolled back").expect("set");
        drop(tx);
        assert_eq!(cache_kib(&store), CACHE_KIB, "after a rollback");
        let tx = store.write().expect("write");
        assert_eq!(cache_kib(&store), CACHE_KIB, "a write transaction keeps the usual cache");
        assert_eq!(crate::ReadOps::meta_get(&tx, "k").expect("read").as_deref(), Some("kept"));
    }

    /// A transaction of many changes keeps them in memory up to [`CHANGED_PAGES_KIB`], the
    /// cache of pages it only reads the usual one; then the connection is as before.
    #[test]
    fn a_transaction_of_many_changes_keeps_more_changed_pages_until_it_ends() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("idflow.db")).expect("open");
        let usual = spill_pages(&store);
        assert!(usual > 10_000, "{usual} pages: 64 MiB of 4 KiB pages");
        let tx = store.write_changes().expect("changes");
        assert_eq!(cache_kib(&store), CACHE_KIB);
        let more = spill_pages(&store) - usual * (CHANGED_PAGES_KIB / CACHE_KIB);
        assert!(more.abs() <= 4, "{more} pages from four times as many");
        tx.meta_set("k", "kept").expect("set");
        tx.commit().expect("commit");
        assert_eq!((cache_kib(&store), spill_pages(&store)), (CACHE_KIB, usual), "after a commit");
        let tx = store.write_changes().expect("changes");
        drop(tx);
        assert_eq!((cache_kib(&store), spill_pages(&store)), (CACHE_KIB, usual), "after a rollback");
        let tx = store.write_bulk().expect("bulk");
        assert_eq!(cache_kib(&store), FULL_SYNC_CACHE_KIB);
        drop(tx);
        assert_eq!((cache_kib(&store), spill_pages(&store)), (CACHE_KIB, usual), "after a bulk one");
        // A rescan: the bulk one's changed pages, a smaller cache of pages only read.
        let tx = store.write_rescan().expect("rescan");
        assert_eq!(cache_kib(&store), RESCAN_READ_KIB);
        let more = spill_pages(&store) - usual * (FULL_SYNC_CACHE_KIB / CACHE_KIB);
        assert!(more.abs() <= 8, "{more} pages from eight times as many");
        drop(tx);
        assert_eq!((cache_kib(&store), spill_pages(&store)), (CACHE_KIB, usual), "after a rescan");
        assert_eq!(crate::ReadOps::meta_get(&store.read().expect("read"), "k").expect("read").as_deref(), Some("kept"));
    }
}
