//! Objects' attributes as the database keeps them: JSON, compressed with a dictionary trained
//! on the database's own objects.
//!
//! Identity data repeats itself: every person has the same attribute names, object classes,
//! DN suffixes and mail domain. A few hundred bytes of JSON compressed alone barely shrink;
//! with a dictionary of what objects of the same kind share they shrink five to eight times
//! (zstd). Each column of each connector (its attributes, its desired state) and each of the
//! metaverse's (winning attributes, contributions) gets its own dictionary, trained from the
//! first objects written there (table `dict`). A dictionary is never changed or removed: the
//! rows it compressed name it.
//!
//! A stored value is TEXT (JSON: written before its dictionary existed, by an older idflow, or
//! too small to gain) or a BLOB: the dictionary's id and the JSON's length as LEB128 varints,
//! then the zstd frame (no magic number, checksum or dictionary id: the row says which).
//!
//! A dictionary made in a write transaction that rolls back (a plan, a failed stage) is
//! forgotten with it, so an id SQLite hands out again never finds a stale one.
use idflow_core::varint;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use zstd::dict::DecoderDictionary;

/// The columns that hold attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// `cs_object.attrs`: what a connector read.
    CsAttrs,
    /// `cs_object.desired`: what outbound sync wants a target object to hold.
    CsDesired,
    /// `mv_object.attrs`: winning values and who won.
    MvAttrs,
    /// `mv_object.contrib`: what each source object contributes.
    MvContrib,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::CsAttrs => "cs.attrs",
            Column::CsDesired => "cs.desired",
            Column::MvAttrs => "mv.attrs",
            Column::MvContrib => "mv.contrib",
        }
    }
}

/// zstd's fastest level: a few percent larger than its default here, and faster.
const LEVEL: i32 = 1;
/// A dictionary's size: enough for the names, classes and suffixes objects share.
const DICT_SIZE: usize = 16 * 1024;
/// A dictionary is trained once this many different values were written without one...
const TRAIN_SAMPLES: usize = 2000;
/// ... or this many bytes of them (with at least [`MIN_SAMPLES`] values).
const TRAIN_BYTES: usize = 1 << 20;
const MIN_SAMPLES: usize = 200;
/// Shorter JSON (`{}`, one short value) is kept as it is: the frame would not gain.
const MIN_LEN: usize = 48;
/// No object's attributes come near this: a header saying more is damaged.
const MAX_LEN: usize = 256 << 20;
/// Longer values (a photo, a group of thousands) are not samples: they say little about what
/// objects share, and would be held in memory until a dictionary is trained.
const MAX_SAMPLE: usize = 64 << 10;

/// The dictionaries of one database connection, and the samples of columns without one yet.
#[derive(Default)]
pub(crate) struct Codec(RefCell<State>);

#[derive(Default)]
struct State {
    dicts: HashMap<i64, Dict>,
    /// Made in the open write transaction: forgotten if it rolls back.
    made: Vec<i64>,
    families: Vec<Family>,
    scratch: Vec<u8>,
}

/// One column of one connector (`""` for the metaverse's).
struct Family {
    column: Column,
    connector: String,
    /// The dictionary values are compressed with now.
    dict: Option<i64>,
    /// Has the open write transaction looked for a dictionary (another process may have made one)?
    looked: bool,
    samples: Vec<Vec<u8>>,
    /// Hashes of the samples: a value written again (an object saved twice) is not a new one.
    seen: HashSet<u64>,
    bytes: usize,
    /// Training failed (too little or too uniform data): values stay JSON in this process.
    untrainable: bool,
}

impl Family {
    fn key(&self) -> String {
        format!("{}:{}", self.column.name(), self.connector)
    }

    /// Keeps `json` as a sample; once there are enough, a dictionary trained from them (its
    /// bytes). A training that fails leaves the column uncompressed in this process.
    fn offer(&mut self, json: &str) -> Option<Vec<u8>> {
        if self.untrainable {
            return None;
        }
        if json.len() <= MAX_SAMPLE {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            json.hash(&mut h);
            if self.seen.insert(h.finish()) {
                self.samples.push(json.as_bytes().to_vec());
                self.bytes += json.len();
            }
        }
        if self.samples.len() < TRAIN_SAMPLES && (self.bytes < TRAIN_BYTES || self.samples.len() < MIN_SAMPLES) {
            return None;
        }
        let samples = std::mem::take(&mut self.samples);
        self.seen = HashSet::new();
        self.bytes = 0;
        match crate::dict_train::train(&samples, DICT_SIZE, LEVEL) {
            Ok(data) => Some(data),
            Err(e) => {
                tracing::debug!(family = self.key(), "no dictionary: {e}; values stay uncompressed");
                self.untrainable = true;
                None
            }
        }
    }
}

struct Dict {
    compress: zstd::bulk::Compressor<'static>,
    decompress: zstd::bulk::Decompressor<'static>,
    /// The same dictionary, for values unpacked on another thread ([`Unpacker`]).
    shared: Arc<DecoderDictionary<'static>>,
    /// Its bytes, for values packed on another thread ([`PackSeed`]).
    data: Arc<[u8]>,
}

impl Dict {
    fn new(data: &[u8]) -> std::io::Result<Dict> {
        let mut decompress = zstd::bulk::Decompressor::with_dictionary(data)?;
        decompress.include_magicbytes(false)?;
        Ok(Dict { compress: compressor(data)?, decompress, shared: Arc::new(DecoderDictionary::copy(data)), data: data.into() })
    }
}

/// A compression context with dictionary `data`, writing frames as values are stored: no magic
/// number, checksum, dictionary id or size (the value's header says which and how long).
fn compressor(data: &[u8]) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut compress = zstd::bulk::Compressor::with_dictionary(LEVEL, data)?;
    compress.include_magicbytes(false)?;
    compress.include_checksum(false)?;
    compress.include_dictid(false)?;
    compress.include_contentsize(false)?;
    Ok(compress)
}

/// `json` compressed with dictionary `id` as a stored value (header, then frame); `None` when
/// it is kept as text instead (too short, or the frame would not gain).
fn frame(compress: &mut zstd::bulk::Compressor<'_>, scratch: &mut Vec<u8>, id: i64, json: &str) -> std::io::Result<Option<Vec<u8>>> {
    if json.len() < MIN_LEN {
        return Ok(None);
    }
    scratch.clear();
    scratch.reserve(zstd::zstd_safe::compress_bound(json.len()));
    compress.compress_to_buffer(json.as_bytes(), scratch)?;
    if scratch.len() + 8 >= json.len() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(scratch.len() + 8);
    varint::put(&mut out, id as u64);
    varint::put(&mut out, json.len() as u64);
    out.extend_from_slice(scratch);
    Ok(Some(out))
}

/// A column's dictionary as it is in a write transaction, to pack values the way the store
/// would on another thread: an import's reader packs the objects it reads
/// ([`crate::WriteOps::cs_attrs_pack_seed`]), and the store keeps what it packed
/// ([`crate::WriteOps::cs_save_read`]) instead of packing them again on the thread that writes.
///
/// For that transaction only, and for values handed to the store with the JSON they were
/// packed from: the store checks the dictionary's id and the JSON's length, not the bytes (a
/// dictionary made in a transaction that rolls back leaves its id to the next one made; debug
/// builds unpack each value to check it).
#[derive(Clone)]
pub struct PackSeed {
    id: i64,
    data: Arc<[u8]>,
}

impl PackSeed {
    /// A packer for one thread.
    pub fn packer(&self) -> std::io::Result<Packer> {
        Ok(Packer { id: self.id, compress: compressor(&self.data)?, scratch: Vec::new() })
    }
}

/// Packs values with one dictionary ([`PackSeed`]).
pub struct Packer {
    id: i64,
    compress: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Packer {
    /// What the store keeps of `json` (attributes' JSON text); `None`: the text itself, or it
    /// could not be packed here (the store packs it then).
    pub fn pack(&mut self, json: &str) -> Option<Vec<u8>> {
        frame(&mut self.compress, &mut self.scratch, self.id, json).ok().flatten()
    }
}

fn io_err(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn unreadable(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, what.into())
}

/// `e` with `whose` (given the column) before what went wrong, when it is a value that does not
/// read back: a stored value does not know whose it is. Any other error as it is.
pub(crate) fn naming(e: rusqlite::Error, whose: impl FnOnce(usize) -> String) -> rusqlite::Error {
    match e {
        rusqlite::Error::FromSqlConversionFailure(i, t, inner) => {
            rusqlite::Error::FromSqlConversionFailure(i, t, Box::new(Named(format!("{}: {inner}", whose(i)))))
        }
        other => other,
    }
}

/// What went wrong with a stored value, said with whose value it is ([`naming`]): all an admin
/// needs, without the column SQLite read it from.
#[derive(Debug)]
pub(crate) struct Named(String);

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Named {}

/// Dictionary `id`, read from the database the first time it is needed.
fn load<'d>(c: &Connection, dicts: &'d mut HashMap<i64, Dict>, id: i64) -> rusqlite::Result<&'d mut Dict> {
    match dicts.entry(id) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let data: Option<Vec<u8>> = c.prepare_cached("SELECT data FROM dict WHERE id=?1")?.query_row([id], |r| r.get(0)).optional()?;
            let data = data.ok_or_else(|| unreadable(format!("compressed with dictionary {id}, which the database does not hold")))?;
            Ok(e.insert(Dict::new(&data).map_err(|e| unreadable(format!("dictionary {id}: {e}")))?))
        }
    }
}

fn text(b: &[u8]) -> rusqlite::Result<&str> {
    std::str::from_utf8(b).map_err(|e| unreadable(format!("not UTF-8: {e}")))
}

impl Codec {
    /// A write transaction begins: columns without a dictionary look again (another process
    /// may have trained one since).
    pub(crate) fn begin_write(&self) {
        for f in self.0.borrow_mut().families.iter_mut() {
            if f.dict.is_none() {
                f.looked = false;
            }
        }
    }

    /// The write transaction ended: committed, its dictionaries are for good; rolled back,
    /// they are forgotten (their rows are gone with them).
    pub(crate) fn end_write(&self, committed: bool) {
        let mut st = self.0.borrow_mut();
        let made = std::mem::take(&mut st.made);
        if committed {
            return;
        }
        for id in made {
            st.dicts.remove(&id);
            for f in st.families.iter_mut().filter(|f| f.dict == Some(id)) {
                f.dict = None;
                f.looked = false;
            }
        }
    }

    /// What to store for `json` in `column` of `connector` (`""`: the metaverse's).
    pub(crate) fn pack(&self, c: &Connection, column: Column, connector: &str, json: String) -> rusqlite::Result<SqlValue> {
        if json.len() < MIN_LEN {
            return Ok(SqlValue::Text(json));
        }
        let mut st = self.0.borrow_mut();
        let State { dicts, made, families, scratch } = &mut *st;
        let f = family(c, families, column, connector)?;
        let (id, dict) = match f.dict {
            Some(id) => (id, load(c, dicts, id)?),
            None => {
                let Some(data) = f.offer(&json) else { return Ok(SqlValue::Text(json)) };
                let dict = Dict::new(&data).map_err(io_err)?;
                c.prepare_cached("INSERT INTO dict(family, data) VALUES (?1, ?2)")?.execute(params![f.key(), data])?;
                let id = c.last_insert_rowid();
                made.push(id);
                f.dict = Some(id);
                (id, dicts.entry(id).insert_entry(dict).into_mut())
            }
        };
        Ok(match frame(&mut dict.compress, scratch, id, &json).map_err(io_err)? {
            Some(packed) => SqlValue::Blob(packed),
            None => SqlValue::Text(json),
        })
    }

    /// The dictionary `column` of `connector` is packed with now, if it has one.
    pub(crate) fn seed(&self, c: &Connection, column: Column, connector: &str) -> rusqlite::Result<Option<PackSeed>> {
        let mut st = self.0.borrow_mut();
        let State { dicts, families, .. } = &mut *st;
        let Some(id) = family(c, families, column, connector)?.dict else { return Ok(None) };
        Ok(Some(PackSeed { id, data: Arc::clone(&load(c, dicts, id)?.data) }))
    }

    /// What to store for `json` in `column` of `connector`, given what a [`Packer`] made of
    /// it: taken when it is packed with the dictionary the column is packed with now and says
    /// the length of `json` (debug builds check that it unpacks to `json`); else packed here.
    pub(crate) fn pack_given(
        &self,
        c: &Connection,
        column: Column,
        connector: &str,
        json: String,
        given: Vec<u8>,
    ) -> rusqlite::Result<SqlValue> {
        let now = family(c, &mut self.0.borrow_mut().families, column, connector)?.dict;
        match header(&given) {
            Ok((id, len, _)) if Some(id) == now && len == json.len() => {
                debug_assert_eq!(self.unpack(c, ValueRef::Blob(&given), str::to_string).ok().as_deref(), Some(json.as_str()));
                Ok(SqlValue::Blob(given))
            }
            _ => self.pack(c, column, connector, json),
        }
    }

    /// Reads a stored value as JSON text, handing it to `f`.
    pub(crate) fn unpack<T>(&self, c: &Connection, v: ValueRef<'_>, f: impl FnOnce(&str) -> T) -> rusqlite::Result<T> {
        let b = match v {
            ValueRef::Text(b) => return Ok(f(text(b)?)),
            ValueRef::Blob(b) => b,
            other => return Err(unstored(other)),
        };
        let (id, len, frame) = header(b)?;
        let mut st = self.0.borrow_mut();
        let State { dicts, scratch, .. } = &mut *st;
        let dict = load(c, dicts, id)?;
        Ok(f(inflate(&mut dict.decompress, frame, len, scratch)?))
    }

    /// A stored value copied as it is, to be unpacked later on any thread by an [`Unpacker`]
    /// given `dicts`, to which the dictionary it needs is added.
    pub(crate) fn keep(&self, c: &Connection, v: ValueRef<'_>, dicts: &mut Dicts) -> rusqlite::Result<Kept> {
        let b = match v {
            ValueRef::Text(b) => return Ok(Kept::Text(text(b)?.to_string())),
            ValueRef::Blob(b) => b,
            other => return Err(unstored(other)),
        };
        let (id, len, frame) = header(b)?;
        if let Entry::Vacant(e) = dicts.0.entry(id) {
            e.insert(load(c, &mut self.0.borrow_mut().dicts, id)?.shared.clone());
        }
        Ok(Kept::Packed { dict: id, len, frame: frame.to_vec() })
    }
}

/// The family of `column` of `connector`, made if it is new, its dictionary looked for once a
/// write transaction (another process may have made one).
fn family<'f>(c: &Connection, families: &'f mut Vec<Family>, column: Column, connector: &str) -> rusqlite::Result<&'f mut Family> {
    let i = match families.iter().position(|f| f.column == column && f.connector == connector) {
        Some(i) => i,
        None => {
            families.push(Family {
                column,
                connector: connector.to_string(),
                dict: None,
                looked: false,
                samples: Vec::new(),
                seen: HashSet::new(),
                bytes: 0,
                untrainable: false,
            });
            families.len() - 1
        }
    };
    let f = &mut families[i];
    if !f.looked {
        f.dict = c
            .prepare_cached("SELECT id FROM dict WHERE family=?1 ORDER BY id DESC LIMIT 1")?
            .query_row([f.key()], |r| r.get(0))
            .optional()?;
        f.looked = true;
    }
    Ok(f)
}

fn unstored(v: ValueRef<'_>) -> rusqlite::Error {
    unreadable(format!("attributes stored as {:?}", v.data_type()))
}

/// A compressed value's dictionary, length and frame.
fn header(b: &[u8]) -> rusqlite::Result<(i64, usize, &[u8])> {
    let bad = || unreadable("a compressed value's header is cut short".into());
    let (id, rest) = varint::get(b).ok_or_else(bad)?;
    let (len, frame) = varint::get(rest).ok_or_else(bad)?;
    let id = i64::try_from(id).map_err(|_| bad())?;
    let len = usize::try_from(len).ok().filter(|&l| l <= MAX_LEN).ok_or_else(bad)?;
    Ok((id, len, frame))
}

/// `frame` decompressed into `scratch`: the JSON of `len` bytes its header promised.
fn inflate<'s>(d: &mut zstd::bulk::Decompressor<'_>, frame: &[u8], len: usize, scratch: &'s mut Vec<u8>) -> rusqlite::Result<&'s str> {
    scratch.clear();
    scratch.reserve(len);
    let n = d.decompress_to_buffer(frame, scratch).map_err(|e| unreadable(format!("cannot decompress: {e}")))?;
    if n != len {
        return Err(unreadable(format!("decompressed {n} bytes where its header says {len}")));
    }
    text(scratch)
}

/// A value as the database stores it, copied out of its row ([`Codec::keep`]).
pub(crate) enum Kept {
    Text(String),
    Packed { dict: i64, len: usize, frame: Vec<u8> },
}

/// The dictionaries values kept by [`Codec::keep`] need, shared with the thread that unpacks them.
#[derive(Default)]
pub(crate) struct Dicts(HashMap<i64, Arc<DecoderDictionary<'static>>>);

/// Unpacks kept values away from the connection (on another thread): one decompression
/// context per dictionary, made when first needed.
pub(crate) struct Unpacker<'d> {
    dicts: &'d Dicts,
    contexts: HashMap<i64, zstd::bulk::Decompressor<'d>>,
    scratch: Vec<u8>,
}

impl<'d> Unpacker<'d> {
    pub(crate) fn new(dicts: &'d Dicts) -> Self {
        Unpacker { dicts, contexts: HashMap::new(), scratch: Vec::new() }
    }

    /// [`Codec::unpack`] of a kept value.
    pub(crate) fn unpack<T>(&mut self, v: &Kept, f: impl FnOnce(&str) -> T) -> rusqlite::Result<T> {
        let (id, len, frame) = match v {
            Kept::Text(s) => return Ok(f(s)),
            Kept::Packed { dict, len, frame } => (*dict, *len, frame),
        };
        let d = match self.contexts.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let shared = self.dicts.0.get(&id).ok_or_else(|| unreadable(format!("dictionary {id} was not read with the value")))?;
                // Named as a value that does not read back (with whose it is), as the others are.
                let setup = |e: std::io::Error| unreadable(format!("cannot set up decompression with dictionary {id}: {e}"));
                let mut d = zstd::bulk::Decompressor::with_prepared_dictionary(shared).map_err(setup)?;
                d.include_magicbytes(false).map_err(setup)?;
                e.insert(d)
            }
        };
        Ok(f(inflate(d, frame, len, &mut self.scratch)?))
    }
}

/// A connection inside a transaction, with its dictionaries: what the store's functions get.
/// It dereferences to the connection, so those that do not read or write attributes take it
/// as one.
pub(crate) struct Db<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) codec: &'a Codec,
    pub(crate) index: &'a crate::mv_index::Deferred,
    pub(crate) dirty: &'a crate::mv_dirty::HeldDirty,
    pub(crate) dangling: &'a crate::cs_dangling::Dangling,
    pub(crate) anchors: &'a crate::anchors_later::AnchorsLater,
    /// The transaction's statements of a fixed text (prepared.rs).
    pub(crate) statements: &'a dyn crate::prepared::Prepared,
}

impl std::ops::Deref for Db<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Db<'_> {
    /// [`Codec::pack`] on this connection.
    pub(crate) fn pack(&self, column: Column, connector: &str, json: String) -> rusqlite::Result<SqlValue> {
        self.codec.pack(self.conn, column, connector, json)
    }

    /// [`Codec::pack_given`] on this connection.
    pub(crate) fn pack_given(&self, column: Column, connector: &str, json: String, given: Vec<u8>) -> rusqlite::Result<SqlValue> {
        self.codec.pack_given(self.conn, column, connector, json, given)
    }

    /// [`Codec::seed`] on this connection.
    pub(crate) fn seed(&self, column: Column, connector: &str) -> rusqlite::Result<Option<PackSeed>> {
        self.codec.seed(self.conn, column, connector)
    }

    /// [`Codec::unpack`] on this connection.
    pub(crate) fn unpack<T>(&self, v: ValueRef<'_>, f: impl FnOnce(&str) -> T) -> rusqlite::Result<T> {
        self.codec.unpack(self.conn, v, f)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CsObject, ReadOps, Store, WriteOps};
    use idflow_core::Value;

    /// A person as a directory would hold one; `flavour` changes what people share, so that
    /// a dictionary trained on one flavour decompresses another's values into garbage.
    fn person(i: usize, flavour: &str) -> CsObject {
        let mut o = CsObject::new("corp", "person");
        o.anchor = Some(format!("{flavour}-{i:06}"));
        o.dn = Some(format!("uid=u{i:06},ou=People,dc={flavour},dc=org"));
        o.present = true;
        let mut put = |a: &str, v: String| {
            o.attrs.insert(a.to_string(), vec![Value::from(v.as_str())]);
        };
        put("cn", format!("{flavour} Person {i}"));
        put("mail", format!("u{i:06}@{flavour}.example.org"));
        put("title", format!("{flavour} specialist, level {}", i % 7));
        put("manager", format!("uid=u{:06},ou=People,dc={flavour},dc=org", i / 10));
        o
    }

    fn write<'s>(store: &'s Store, flavour: &str, n: usize) -> crate::WriteTxn<'s> {
        let tx = store.write().expect("write");
        for i in 0..n {
            tx.cs_save(&person(i, flavour)).expect("saved");
        }
        tx
    }

    fn stored_as(store: &Store) -> (i64, i64, i64) {
        let tx = store.read().expect("read");
        let count = |sql: &str| -> i64 { crate::ops::on(&tx, |c| c.query_row(sql, [], |r| r.get(0))).expect("count") };
        (
            count("SELECT COUNT(*) FROM cs_object WHERE typeof(attrs) = 'text'"),
            count("SELECT COUNT(*) FROM cs_object WHERE typeof(attrs) = 'blob'"),
            count("SELECT COUNT(*) FROM dict"),
        )
    }

    fn read_back(store: &Store, flavour: &str, n: usize) {
        let tx = store.read().expect("read");
        for i in 0..n {
            let o = tx.cs_by_anchor("corp", &format!("{flavour}-{i:06}")).expect("read").expect("there");
            assert_eq!(o.attrs, person(i, flavour).attrs, "object {i}");
        }
    }

    #[test]
    fn values_are_compressed_once_a_dictionary_is_trained_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idflow.db");
        let n = super::TRAIN_SAMPLES + 500;
        {
            let store = Store::open(&path).expect("open");
            write(&store, "alpha", n).commit().expect("commit");
            // The first values trained the dictionary and stay JSON; the rest are compressed.
            let (text, blob, dicts) = stored_as(&store);
            assert_eq!((text, blob, dicts), (super::TRAIN_SAMPLES as i64 - 1, 501, 1));
            read_back(&store, "alpha", n);
        }
        // Another connection finds the dictionary in the database.
        let store = Store::open(&path).expect("open again");
        read_back(&store, "alpha", n);
        let size: i64 = {
            let tx = store.read().expect("read");
            crate::ops::on(&tx, |c| c.query_row("SELECT SUM(length(attrs)) FROM cs_object WHERE typeof(attrs) = 'blob'", [], |r| r.get(0)))
                .expect("size")
        };
        assert!(size < 501 * 60, "compressed: {size} bytes for 501 objects");
    }

    /// What a reader's packer makes of an object's JSON is what the store would have made and
    /// kept as it is; what another dictionary or another text made is packed again.
    #[test]
    fn values_packed_where_they_are_read_are_kept_as_the_store_would_pack_them() {
        let store = Store::in_memory().expect("store");
        let tx = write(&store, "alpha", super::TRAIN_SAMPLES + 10);
        let seed = tx.cs_attrs_pack_seed("corp").expect("seed").expect("trained");
        assert!(tx.cs_attrs_pack_seed("cloud").expect("seed").is_none(), "nothing packed there");
        let mut packer = std::thread::spawn(move || seed.packer().expect("packer")).join().expect("made on another thread");
        let stored = |tx: &crate::WriteTxn<'_>, id: i64| -> Vec<u8> {
            crate::ops::on(tx, |c| c.query_row("SELECT attrs FROM cs_object WHERE id=?1", [id], |r| r.get(0))).expect("row")
        };
        // Each a new object (without an anchor: the same person saved again is another row).
        let saved = |o: &CsObject, packed: Option<Vec<u8>>| {
            let o = CsObject { anchor: None, ..o.clone() };
            tx.cs_save_read(&o, idflow_core::attrs_to_json(&o.attrs), packed).expect("saved")
        };
        let (a, b) = (person(90_001, "alpha"), person(90_002, "alpha"));
        let (json_a, json_b) = (idflow_core::attrs_to_json(&a.attrs), idflow_core::attrs_to_json(&b.attrs));
        let given = packer.pack(&json_a).expect("packed");
        let by_store = saved(&a, None);
        let by_reader = saved(&person(90_001, "beta"), Some(given.clone()));
        assert_ne!(stored(&tx, by_reader), given, "another text's (beta's, of another length) is packed by the store, not taken");
        let by_reader = saved(&a, Some(given.clone()));
        assert_eq!(stored(&tx, by_reader), given, "taken as it is");
        assert_eq!(stored(&tx, by_store), given, "the same bytes as the store's");
        // A value of another length, or of a dictionary the column is not packed with: packed again.
        let mut other_len = given.clone();
        other_len[1] ^= 1;
        let id = saved(&b, Some(other_len));
        assert_eq!(tx.cs_get(id).expect("read").expect("there").attrs, b.attrs);
        let mut other_dict = packer.pack(&json_b).expect("packed");
        other_dict[0] += 1;
        let id = saved(&b, Some(other_dict));
        assert_eq!(tx.cs_get(id).expect("read").expect("there").attrs, b.attrs);
        assert!(packer.pack("{}").is_none(), "too short: kept as text");
    }

    #[test]
    fn a_dictionary_made_in_a_transaction_rolled_back_is_forgotten_with_it() {
        let store = Store::in_memory().expect("store");
        let n = super::TRAIN_SAMPLES + 500;
        // A plan: trains a dictionary (id 1), then rolls back.
        drop(write(&store, "alpha", n));
        assert_eq!(stored_as(&store), (0, 0, 0));
        // The next run trains its own, which SQLite gives the same id: read with the new one.
        write(&store, "omega", n).commit().expect("commit");
        assert_eq!(stored_as(&store).2, 1);
        read_back(&store, "omega", n);
    }

    #[test]
    fn a_target_object_in_step_keeps_one_copy_and_its_attributes_stay_when_desired_changes() {
        let store = Store::in_memory().expect("store");
        let mut o = person(1, "alpha");
        o.connector = "cloud".into();
        o.desired = Some(o.attrs.clone());
        let tx = store.write().expect("write");
        o.id = tx.cs_save(&o).expect("saved");
        let kept = |tx: &crate::WriteTxn<'_>| -> String {
            crate::ops::on(tx, |c| c.query_row("SELECT hex(attrs) FROM cs_object WHERE id=?1", [o.id], |r| r.get(0))).expect("row")
        };
        assert_eq!(kept(&tx), "", "the attributes are the desired state's");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), o);
        // Sync wants the same again: still one copy.
        tx.cs_set_desired(&o, None).expect("desired");
        assert_eq!(kept(&tx), "");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), o);
        // Sync wants something else: the attributes are still what the directory holds.
        let mut wants = o.clone();
        wants.desired = Some(person(2, "alpha").attrs);
        tx.cs_set_desired(&wants, None).expect("desired");
        assert_ne!(kept(&tx), "");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), wants);
        // And when it wants nothing any more.
        tx.cs_save(&o).expect("saved again");
        let mut nothing = o.clone();
        nothing.desired = None;
        tx.cs_set_desired(&nothing, None).expect("desired");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), nothing);
    }

    #[test]
    fn objects_read_now_and_decoded_on_another_thread_are_the_objects_read_at_once() {
        let store = Store::in_memory().expect("store");
        let n = super::TRAIN_SAMPLES + 300;
        let tx = write(&store, "alpha", n);
        // Target objects: one in step with what sync wants (one copy kept), one not.
        let mut ids: Vec<i64> = (1..=n as i64).collect();
        for (i, same) in [(0, true), (1, false)] {
            let mut o = person(i, "beta");
            o.connector = "cloud".into();
            o.desired = Some(if same { o.attrs.clone() } else { person(i + 5, "beta").attrs });
            ids.push(tx.cs_save(&o).expect("saved"));
        }
        let mut attrs = std::collections::BTreeMap::new();
        for i in 0..n {
            let values = person(i, "alpha").attrs.into_values().flatten().collect();
            attrs.insert("all".to_string(), crate::MvAttr { values, rule: "people".into(), cs: i as i64 + 1, precedence: 10 });
            tx.mv_create("person", &attrs).expect("made");
        }
        tx.commit().expect("commit");
        let tx = store.read().expect("read");
        let sorted = |mut v: Vec<CsObject>| {
            v.sort_by_key(|o| o.id);
            v
        };
        let later = tx.cs_get_many_later(&ids).expect("read");
        let decoded = std::thread::spawn(later).join().expect("decoded").expect("readable");
        assert_eq!(sorted(decoded), sorted(tx.cs_get_many(&ids).expect("read")));
        let mv_ids: Vec<i64> = (1..=n as i64).collect();
        let later = tx.mv_get_many_later(&mv_ids).expect("read");
        let mut decoded = std::thread::spawn(later).join().expect("decoded").expect("readable");
        let mut at_once = tx.mv_get_many(&mv_ids).expect("read");
        decoded.sort_by_key(|m| m.id);
        at_once.sort_by_key(|m| m.id);
        assert_eq!(decoded.len(), n);
        assert_eq!(decoded, at_once);
        drop(tx);
        // Both read compressed values (corp's and the metaverse's dictionaries) and JSON.
        assert_eq!(stored_as(&store).2, 2);
    }
}
