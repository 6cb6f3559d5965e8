//! New metaverse objects' rows, written behind. A first full sync projects every object: its
//! winning values compressed on the stage's thread took a tenth of that thread's time (at
//! 300,000 people). Here a new object's id is given out at once (the one SQLite would give:
//! one more than the table's largest), its row held, and the rows' values compressed a few
//! hundred at a time on a thread of the store's own while the stage goes on; the rows are
//! written in id order once packed.
//!
//! A held row is still found: every statement that reads or writes `mv_object` first writes
//! what is held ([`Behind::flush`]), as does a commit; a transaction that rolls back drops
//! them with it. Should writing them fail, every later statement on `mv_object` in the
//! transaction fails too, and so does its commit: nothing held is lost silently.
//!
//! Values are packed with the column's dictionary as it is in this transaction ([`crate::packed::PackSeed`]);
//! before the column has one, they are packed as they are written, in order, as
//! [`crate::packed::Codec::pack`] trains it.
use crate::packed::{Column, Db};
use rusqlite::params;
use rusqlite::types::Value as SqlValue;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};

/// Rows packed at once. Tests hold a few, so that the store's tests write rows behind too.
const AT_ONCE: usize = if cfg!(test) { 3 } else { 256 };
/// Batches held while being packed elsewhere, at most: the next waits for the oldest.
const IN_FLIGHT: usize = 2;

#[derive(Default)]
pub(crate) struct Behind(RefCell<State>);

#[derive(Default)]
struct State {
    /// The id the next new object gets (`None`: ask the table).
    next: Option<i64>,
    /// Rows not handed on yet, in id order.
    filling: Batch,
    /// Batches handed on, oldest (lowest ids) first.
    batches: VecDeque<Batch>,
    /// Writing held rows failed in this transaction.
    failed: bool,
}

/// Rows in id order: each's id, object type and contributions as stored, and its winning
/// values as JSON (shared with the packing thread while it packs them).
#[derive(Default)]
struct Batch {
    rows: Vec<(i64, String, Option<SqlValue>)>,
    json: Arc<Vec<String>>,
    /// What the packing thread makes of `json` (by position), while it is at it.
    packing: Option<Receiver<Packed>>,
}

/// Each value packed, or `None`: packed when written.
type Packed = Vec<Option<Vec<u8>>>;

impl Behind {
    /// Holds a new object's row: its id.
    pub(crate) fn create(&self, c: &Db, object_type: &str, attrs_json: String, contrib: Option<SqlValue>) -> rusqlite::Result<i64> {
        let mut st = self.0.borrow_mut();
        if st.failed {
            return Err(failed_before());
        }
        let id = match st.next {
            Some(id) => id,
            None => c.query_row("SELECT coalesce(max(id), 0) + 1 FROM mv_object", [], |r| r.get(0))?,
        };
        st.next = Some(id + 1);
        st.filling.rows.push((id, object_type.to_string(), contrib));
        Arc::make_mut(&mut st.filling.json).push(attrs_json);
        if st.filling.rows.len() >= AT_ONCE {
            let batch = std::mem::take(&mut st.filling);
            let batch = hand_on(c, batch).inspect_err(|_| st.failed = true)?;
            st.batches.push_back(batch);
            while st.batches.len() > IN_FLIGHT {
                write_front(c, &mut st)?;
            }
        }
        Ok(id)
    }

    /// Writes every row held (before any statement on `mv_object`, and a commit).
    pub(crate) fn flush(&self, c: &Db) -> rusqlite::Result<()> {
        let mut st = self.0.borrow_mut();
        if st.failed {
            return Err(failed_before());
        }
        if !st.filling.rows.is_empty() {
            let batch = std::mem::take(&mut st.filling);
            st.batches.push_back(batch);
        }
        if st.batches.is_empty() {
            return Ok(());
        }
        while !st.batches.is_empty() {
            write_front(c, &mut st)?;
        }
        // The next id is the table's again (an object removed since may have had the largest).
        st.next = None;
        Ok(())
    }

    /// A write transaction begins or ends: ids are the table's; rolled back, the rows go.
    pub(crate) fn reset(&self) {
        *self.0.borrow_mut() = State::default();
    }
}

fn failed_before() -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure("new metaverse objects could not be written earlier in this transaction".into())
}

/// `batch` sent to the packing thread, given the column's dictionary (else packed as written).
fn hand_on(c: &Db, mut batch: Batch) -> rusqlite::Result<Batch> {
    let (Some(seed), Some(packer)) = (c.seed(Column::MvAttrs, "")?, packer()) else { return Ok(batch) };
    let (done, packing) = sync_channel(1);
    let json = Arc::clone(&batch.json);
    let job: Job = Box::new(move || {
        let packed: Packed = match seed.packer() {
            Ok(mut p) => json.iter().map(|j| p.pack(j)).collect(),
            Err(_) => Vec::new(),
        };
        // Let go before answering, so that the stage takes the JSON back without a copy.
        drop(json);
        // The transaction may have rolled back meanwhile: nobody waits.
        let _ = done.send(packed);
    });
    if packer.send(job).is_ok() {
        batch.packing = Some(packing);
    }
    Ok(batch)
}

/// Writes the oldest batch: its values packed (by the packing thread, else here), then its
/// rows inserted. A failure fails the transaction ([`State::failed`]).
fn write_front(c: &Db, st: &mut State) -> rusqlite::Result<()> {
    let Some(batch) = st.batches.pop_front() else { return Ok(()) };
    write(c, batch).inspect_err(|_| st.failed = true)
}

fn write(c: &Db, batch: Batch) -> rusqlite::Result<()> {
    // Nothing back (no thread, or it panicked): each is packed here.
    let packed = batch.packing.and_then(|p| p.recv().ok()).unwrap_or_default();
    let mut packed = packed.into_iter();
    let mut insert = c.prepare_cached("INSERT INTO mv_object(id, object_type, attrs, dirty, contrib) VALUES (?1, ?2, ?3, 0, ?4)")?;
    for ((id, object_type, contrib), json) in batch.rows.into_iter().zip(Arc::unwrap_or_clone(batch.json)) {
        let attrs = match packed.next().flatten() {
            Some(p) => c.pack_given(Column::MvAttrs, "", json, p)?,
            None => c.pack(Column::MvAttrs, "", json)?,
        };
        insert.execute(params![id, object_type, attrs, contrib])?;
    }
    Ok(())
}

/// A job for the packing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The thread that packs rows written behind: one for the process, started when first needed.
fn packer() -> Option<&'static Sender<Job>> {
    static PACKER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    PACKER
        .get_or_init(|| {
            let (jobs, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new().name("idflow-pack".into()).spawn(move || {
                for job in rx {
                    // A job that panics sends nothing: its rows are packed on the stage's thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            spawned.ok().map(|_| jobs)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use crate::{MvAttr, ReadOps, Store, WriteOps};
    use std::collections::BTreeMap;

    fn person(i: usize) -> BTreeMap<String, MvAttr> {
        let a = |v: String| MvAttr { values: vec![v.as_str().into()], rule: "hr".into(), cs: i as i64, precedence: 100 };
        BTreeMap::from([
            ("displayName".to_string(), a(format!("Person Number {i}"))),
            ("mail".to_string(), a(format!("person.{i}@corp.example.org"))),
            ("title".to_string(), a(format!("Specialist, level {}", i % 7))),
        ])
    }

    fn count(store: &Store, sql: &str) -> i64 {
        let tx = store.read().expect("read");
        crate::ops::on(&tx, |c| c.query_row(sql, [], |r| r.get(0))).expect("count")
    }

    /// Enough new objects that a dictionary is trained and the rest are packed on the packing
    /// thread: each has the id SQLite would give it, is found while held (read, changed,
    /// deleted, removed), and reads back the same once written; a rollback leaves none.
    #[test]
    fn new_objects_written_behind_are_found_while_held_and_read_back_the_same() {
        let store = Store::in_memory().expect("store");
        let n = 2600;
        let tx = store.write().expect("write");
        let ids: Vec<i64> = (0..n).map(|i| tx.mv_create("person", &person(i)).expect("created")).collect();
        drop(tx);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM mv_object"), 0, "rolled back: none written");
        let tx = store.write().expect("write");
        let mut again = Vec::new();
        for i in 0..n {
            again.push(tx.mv_create("person", &person(i)).expect("created"));
            // Now and then, one just made is read, given new winners, or deleted and removed.
            if i % 500 == 499 {
                let id = again[i];
                assert_eq!(tx.mv_get(id).expect("read").expect("there").attrs, person(i));
                let winners = person(i + n);
                tx.mv_save_contributed(id, &[], Some(crate::Winners { attrs: &winners, changed: &[], old: &[] })).expect("saved");
            }
        }
        assert_eq!(again, ids, "the ids a rolled-back transaction gave: one more than the largest");
        let last = *again.last().expect("some");
        tx.mv_purge(last).expect("purged");
        // The largest removed, SQLite gives its id again: so does the store.
        assert_eq!(tx.mv_create("person", &person(n - 1)).expect("created"), last);
        tx.commit().expect("commit");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM mv_object"), n as i64);
        assert!(count(&store, "SELECT COUNT(*) FROM mv_object WHERE typeof(attrs) = 'blob'") > 500, "packed");
        let tx = store.read().expect("read");
        let got = tx.mv_get_many(&again).expect("read");
        assert_eq!(got.len(), n);
        for (i, o) in got.iter().enumerate() {
            let want = if i % 500 == 499 { person(i + n) } else { person(i) };
            assert_eq!((o.id, &o.attrs), (again[i], &want));
        }
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), again, "each new object is dirty");
    }
}
