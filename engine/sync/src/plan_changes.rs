//! A plan's changes, held in a compact binary form (plan_codec.rs) in a file of their own (owner-only, in the
//! metaverse's folder, deleted as it is created so nothing is left behind even by kill -9),
//! with only their order in memory: a plan of a million changes holds tens of megabytes
//! instead of gigabytes. Readers take the changes one at a time, in the plan's order.
//!
//! The file is written on a thread of its own while the plan goes on (at a million changes,
//! writing it was a seventh of the planning thread's time, most of it the kernel copying).
//! The first read waits for that thread to end; an error it met is the next spill's or that
//! read's.
use crate::plan::PlanChange;
use idflow_core::{Error, Result};
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

/// Bytes kept in memory before they go to the file.
const IN_MEMORY: usize = 4 << 20;

/// Adds first, then updates, then deletes.
fn rank(op: &str) -> u8 {
    match op {
        "add" => 0,
        "update" => 1,
        _ => 2,
    }
}

#[derive(Default)]
pub struct Changes {
    /// Where the file is made; the system's temporary folder when `None`.
    dir: Option<PathBuf>,
    /// The file, once nothing is being written to it.
    file: std::sync::OnceLock<std::fs::File>,
    /// The thread writing the file, while there is one.
    writer: std::sync::Mutex<Option<Writer>>,
    /// Bytes in the file; `buf` holds those after them.
    on_disk: u64,
    buf: Vec<u8>,
    /// Where each change is (offset, length), in the plan's order once sorted.
    at: Vec<(u64, u32)>,
    /// While changes are added: what they are sorted by (operation, type, object).
    keys: Vec<(u8, u16, Box<str>)>,
    types: Vec<String>,
}

impl Changes {
    /// Changes whose file, once they outgrow memory, is made in `dir`.
    pub fn in_dir(dir: PathBuf) -> Changes {
        Changes { dir: Some(dir), ..Changes::default() }
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The folder of the file, for errors.
    fn place(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::io(self.place(), "cannot hold the plan's changes", e)
    }

    /// Adds a change at the end (`sort` puts them in the plan's order).
    pub fn push(&mut self, ch: &PlanChange) -> Result<()> {
        let ty = match self.types.iter().position(|t| *t == ch.object_type) {
            Some(i) => i,
            None => {
                self.types.push(ch.object_type.clone());
                self.types.len() - 1
            }
        };
        self.keys.push((rank(&ch.op), ty as u16, ch.object.as_str().into()));
        self.append(ch)
    }

    /// Adds a change at the end, without what `sort` needs (a saved plan is in order).
    fn append(&mut self, ch: &PlanChange) -> Result<()> {
        let start = self.on_disk + self.buf.len() as u64;
        crate::plan_codec::encode(ch, &mut self.buf);
        let len = (self.on_disk + self.buf.len() as u64 - start) as u32;
        self.at.push((start, len));
        if self.buf.len() >= IN_MEMORY {
            self.spill()?;
        }
        Ok(())
    }

    #[cfg(unix)]
    fn spill(&mut self) -> Result<()> {
        if self.file.get().is_none() && self.writer_mut().is_none() {
            let made = match &self.dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            };
            match Writer::start(made.map_err(|e| self.error(e))?) {
                Ok(w) => *self.writer_mut() = Some(w),
                Err(file) => {
                    let _ = self.file.set(file);
                }
            }
        }
        let full = std::mem::take(&mut self.buf);
        self.on_disk += full.len() as u64;
        if let Some(w) = self.writer_mut() {
            match w.hand(full) {
                Ok(empty) => self.buf = empty,
                // The thread stopped: it met an error, which waiting for it gives.
                Err(()) => {
                    self.written()?;
                    return Err(Error::file(self.place(), "the thread writing the plan's changes stopped"));
                }
            }
            return Ok(());
        }
        // No thread could be started: written here.
        use std::io::Write as _;
        let mut f = self.written()?;
        f.write_all(&full).map_err(|e| self.error(e))?;
        self.buf = full;
        self.buf.clear();
        Ok(())
    }

    /// The thread writing the file, if there is one (the planning thread alone holds `self`
    /// mutably: no lock is taken).
    #[cfg(unix)]
    fn writer_mut(&mut self) -> &mut Option<Writer> {
        self.writer.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file, once the thread writing it (if any) has written all it was handed.
    #[cfg(unix)]
    fn written(&self) -> Result<&std::fs::File> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let w = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(w) = w {
            let file = w.end().map_err(|e| self.error(e))?;
            let _ = self.file.set(file);
        }
        self.file.get().ok_or_else(|| Error::file(self.place(), "the plan's changes are not on disk"))
    }

    /// Elsewhere the changes stay in memory.
    #[cfg(not(unix))]
    fn spill(&mut self) -> Result<()> {
        Ok(())
    }

    /// Puts the changes in the plan's order: adds, updates, deletes; by type, then object; in
    /// the order they were added where those are the same.
    pub fn sort(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        let mut order: Vec<u32> = (0..self.at.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (ka, kb) = (&keys[a as usize], &keys[b as usize]);
            ka.0.cmp(&kb.0).then_with(|| self.types[ka.1 as usize].cmp(&self.types[kb.1 as usize])).then_with(|| ka.2.cmp(&kb.2))
        });
        drop(keys);
        self.at = order.into_iter().map(|i| self.at[i as usize]).collect();
    }

    /// The `i`th change.
    pub fn get(&self, i: usize) -> Result<PlanChange> {
        let Some(&(off, len)) = self.at.get(i) else { return Err(Error::file(self.place(), format!("no change {i} in the plan"))) };
        self.decode(&self.bytes(off, len as usize)?)
    }

    /// A change from the bytes it was written as.
    fn decode(&self, bytes: &[u8]) -> Result<PlanChange> {
        crate::plan_codec::decode(bytes).map_err(|why| Error::file(self.place(), format!("cannot read back a plan's change: {why}")))
    }

    fn bytes(&self, off: u64, len: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
        if off >= self.on_disk {
            let start = (off - self.on_disk) as usize;
            return Ok(std::borrow::Cow::Borrowed(&self.buf[start..start + len]));
        }
        self.read_at(off, len).map(std::borrow::Cow::Owned)
    }

    #[cfg(unix)]
    fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt as _;
        let mut v = vec![0; len];
        let f = self.written()?;
        f.read_exact_at(&mut v, off).map_err(|e| self.error(e))?;
        Ok(v)
    }

    #[cfg(not(unix))]
    fn read_at(&self, _off: u64, _len: usize) -> Result<Vec<u8>> {
        Err(Error::file(self.place(), "the plan's changes are not on disk"))
    }

    /// The changes one at a time, in order. (Decoded here: decoding them on the read-ahead
    /// thread was slower at 300,000 changes, the changes then being freed by another thread
    /// than the one that made them.) Changes that follow each other in the file as in the
    /// order (most of a plan: its objects' order is mostly their names') are read from it a
    /// block at a time, not each by itself.
    pub fn iter(&self) -> impl Iterator<Item = Result<PlanChange>> + '_ {
        let mut block = Block::default();
        (0..self.len()).map(move |i| {
            let (off, len) = self.at[i];
            match off >= self.on_disk {
                true => self.decode(&self.bytes(off, len as usize)?),
                false => self.decode(block.slice(self, i)?),
            }
        })
    }

    /// Where the run of changes that follow change `i` in the file ends (those after it in the
    /// order that are also the next ones on disk), up to [`BLOCK`] bytes from its start.
    fn run_end(&self, i: usize) -> u64 {
        let (start, len) = self.at[i];
        let mut end = start + u64::from(len);
        for &(off, len) in &self.at[i + 1..] {
            if off != end || off + u64::from(len) > start + BLOCK || off + u64::from(len) > self.on_disk {
                break;
            }
            end = off + u64::from(len);
        }
        end
    }
}

/// The thread that writes a plan's file: handed full buffers, it hands them back empty.
#[cfg(unix)]
struct Writer {
    full: std::sync::mpsc::SyncSender<Vec<u8>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<std::io::Result<std::fs::File>>,
}

#[cfg(not(unix))]
struct Writer;

/// Buffers handed to the writing thread and not yet written, at most (memory stays bounded
/// when the disk is slower than the plan).
#[cfg(unix)]
const WAITING: usize = 2;

#[cfg(unix)]
impl Writer {
    /// A thread writing to `file`; the file back when no thread can be started.
    fn start(file: std::fs::File) -> std::result::Result<Writer, std::fs::File> {
        use std::io::Write as _;
        let (full, to_write) = std::sync::mpsc::sync_channel::<Vec<u8>>(WAITING);
        let (done, empty) = std::sync::mpsc::sync_channel(WAITING);
        // The file goes to the thread only once it has started (handed on a channel).
        let (give, given) = std::sync::mpsc::sync_channel::<std::fs::File>(1);
        let spawned = std::thread::Builder::new().name("idflow-plan-spill".into()).spawn(move || {
            let mut f = given.recv().map_err(|_| std::io::Error::other("no file was handed to the writing thread"))?;
            for mut buf in to_write {
                f.write_all(&buf)?;
                buf.clear();
                // Dropped when the planner holds enough empty ones already.
                let _ = done.try_send(buf);
            }
            Ok(f)
        });
        match spawned {
            Ok(thread) => {
                let _ = give.send(file);
                Ok(Writer { full, empty, thread })
            }
            Err(_) => Err(file),
        }
    }

    /// Hands `buf` to be written; returns an empty buffer to fill next. `Err`: the thread
    /// stopped (an error it met).
    fn hand(&mut self, buf: Vec<u8>) -> std::result::Result<Vec<u8>, ()> {
        self.full.send(buf).map_err(|_| ())?;
        Ok(self.empty.try_recv().unwrap_or_default())
    }

    /// Waits for everything handed to be written; the file.
    fn end(self) -> std::io::Result<std::fs::File> {
        drop(self.full);
        self.thread.join().map_err(|_| std::io::Error::other("the thread writing the plan's changes panicked"))?
    }
}

/// Bytes read from the file at once, at most, for changes that follow each other there.
const BLOCK: u64 = 1 << 20;

/// The part of the file read last, for [`Changes::iter`].
#[derive(Default)]
struct Block {
    at: u64,
    bytes: Vec<u8>,
}

impl Block {
    /// Change `i`'s bytes (on disk), read with the changes that follow it unless already here.
    fn slice(&mut self, c: &Changes, i: usize) -> Result<&[u8]> {
        let (off, len) = c.at[i];
        let end = off + u64::from(len);
        if off < self.at || end > self.at + self.bytes.len() as u64 {
            self.bytes = c.read_at(off, (c.run_end(i) - off) as usize)?;
            self.at = off;
        }
        let from = (off - self.at) as usize;
        Ok(&self.bytes[from..from + len as usize])
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Changes({} changes, {} bytes)", self.len(), self.on_disk + self.buf.len() as u64)
    }
}

impl PartialEq for Changes {
    fn eq(&self, other: &Changes) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| matches!((a, b), (Ok(a), Ok(b)) if a == b))
    }
}

impl Serialize for Changes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for ch in self.iter() {
            seq.serialize_element(&ch.map_err(serde::ser::Error::custom)?)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Changes {
    /// As saved: already in order.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Changes, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Changes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of changes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Changes, A::Error> {
                let mut out = Changes::default();
                while let Some(ch) = seq.next_element::<PlanChange>()? {
                    out.append(&ch).map_err(serde::de::Error::custom)?;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Identity, PlanAttr, PlanValue};

    fn change(op: &str, ty: &str, object: &str) -> PlanChange {
        PlanChange {
            op: op.into(),
            object_type: ty.into(),
            object: object.into(),
            identity: Identity { target_id: Some(format!("id-{object}")), ..Identity::default() },
            new_dn: None,
            rule: Some("out".into()),
            attributes: vec![PlanAttr { name: "displayName".into(), old: vec![], new: vec![PlanValue::Text("x".repeat(300))], rule: None }],
        }
    }

    #[test]
    fn a_change_that_does_not_read_back_is_the_error_of_that_change_alone() {
        let mut c = Changes::default();
        let n = 600;
        for i in 0..n {
            c.push(&change("add", "User", &format!("o{i:03}"))).expect("push");
        }
        // Change 300's first byte broken (in memory: nothing went to disk).
        let (off, _) = c.at[300];
        c.buf[off as usize] = b'!';
        let read: Vec<Result<PlanChange>> = c.iter().collect();
        assert_eq!(read.len(), n);
        for (i, r) in read.iter().enumerate() {
            match r {
                Ok(ch) => assert_eq!(ch.object, format!("o{i:03}"), "change {i}"),
                Err(e) => assert!(i == 300 && e.to_string().contains("cannot read back"), "change {i}: {e}"),
            }
        }
        assert!(read[300].is_err());
        // Read part of the way only (a reader that goes, as `plan | head`): nothing waits.
        assert_eq!(c.iter().take(3).count(), 3);
        assert_eq!(Changes::default().iter().count(), 0);
    }

    #[test]
    fn changes_outgrow_memory_into_a_file_and_come_back_in_the_plans_order() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut c = Changes::in_dir(dir.path().to_path_buf());
        let n = 40_000; // about 16 MB: most of them on disk
        for i in (0..n).rev() {
            let op = ["delete", "update", "add"][i % 3];
            c.push(&change(op, if i % 2 == 0 { "User" } else { "Group" }, &format!("o{i:06}"))).expect("push");
        }
        assert!(c.on_disk > 0, "nothing went to disk");
        // The file is deleted as it is made: the folder stays empty.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        c.sort();
        let all: Vec<PlanChange> = c.iter().collect::<Result<_>>().expect("read back");
        assert_eq!(all.len(), n);
        let key = |ch: &PlanChange| (rank(&ch.op), ch.object_type.clone(), ch.object.clone());
        assert!(all.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "not in order");
        // Adds are i % 3 == 2, groups odd i: the first add of a group is o000005.
        assert_eq!(all[0], change("add", "Group", "o000005"));
        // Saved and read again: the same changes, in the same order.
        let text = serde_json::to_string(&c).expect("serialize");
        let back: Changes = serde_json::from_str(&text).expect("deserialize");
        assert!(back == c);
        // A saved plan is in its file's order: read in blocks, each change as read alone.
        assert!(back.on_disk > BLOCK);
        assert!(back.iter().enumerate().all(|(i, ch)| matches!((ch, back.get(i)), (Ok(a), Ok(b)) if a == b)));
    }

    /// What the writing thread meets is the error of the spill after it or of the first read,
    /// never a plan read back short.
    #[cfg(unix)]
    #[test]
    fn an_error_writing_the_file_is_the_plans_error() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let read_only = dir.path().join("read-only");
        std::fs::write(&read_only, b"").expect("a file");
        let file = std::fs::File::open(&read_only).expect("opened to read only");
        let writer = Writer::start(file).unwrap_or_else(|_| panic!("no thread"));
        let mut c = Changes { dir: Some(dir.path().to_path_buf()), writer: std::sync::Mutex::new(Some(writer)), ..Changes::default() };
        let mut pushed = Ok(());
        for i in 0..40_000 {
            pushed = pushed.and_then(|_| c.push(&change("add", "User", &format!("o{i:06}"))));
        }
        let err = match pushed {
            Err(e) => e,
            Ok(()) => {
                c.sort();
                c.iter().find_map(|r| r.err()).expect("a read fails")
            }
        };
        assert!(err.to_string().contains("cannot hold the plan's changes"), "{err}");
    }

    #[test]
    fn equal_keys_keep_the_order_they_were_added_in() {
        let mut c = Changes::default();
        for i in 0..5 {
            let mut ch = change("update", "User", "same");
            ch.identity.target_id = Some(i.to_string());
            c.push(&ch).expect("push");
        }
        c.sort();
        let ids: Vec<String> = c.iter().map(|ch| ch.expect("read").identity.target_id.unwrap_or_default()).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"]);
    }
}
