//! The `file` connector: a target directory kept as one JSON file, so the quickstart needs no
//! server. idflow assigns each object a stable id (its anchor) when it provisions it, and every
//! export rewrites the file atomically (write, fsync, rename).
use super::config::Settings;
use super::held::{Held, Slot};
use super::scan::{self, ScanError};
use super::CAPABILITIES;
use idflow_core::connector::{Capabilities, Connector, ExportOp, ImportSink, ImportedObject, OpKind, OpResult};
use idflow_core::{Attrs, ConnectorConfig, Error, Result, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The file's shape: `{"objects": [{"id", "type", "dn"?, "attributes": {name: value or [values]}}]}`,
/// read whole only by tests (import and export read an object at a time).
#[cfg(test)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct FileModel {
    pub objects: Vec<FileObject>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FileObject {
    pub id: String,
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Clone)]
pub(super) enum OneOrMany {
    Many(Vec<Value>),
    One(Value),
}

impl Serialize for OneOrMany {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::Many(v) => v.serialize(s),
            OneOrMany::One(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    /// Read without serde's untagged buffering: a file of 100,000 objects parses several times faster.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(OneOrMany::Many(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<OneOrMany, A::Error> {
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V)
    }
}

impl OneOrMany {
    fn into_vec(self) -> Vec<Value> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(v) => vec![v],
        }
    }
    fn from_vec(mut v: Vec<Value>) -> Self {
        if v.len() == 1 {
            OneOrMany::One(v.remove(0))
        } else {
            OneOrMany::Many(v)
        }
    }
}

/// A [`FileObject`] as an add makes it, written from the operation as it is (nothing copied).
#[derive(Serialize)]
struct AddedObject<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    object_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dn: Option<&'a str>,
    attributes: NonEmpty<'a>,
}

/// Attributes with values, each as [`OneOrMany`] writes it.
struct NonEmpty<'a>(&'a Attrs);

impl Serialize for NonEmpty<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| !v.is_empty()) {
            match v.as_slice() {
                [one] => m.serialize_entry(k, one)?,
                many => m.serialize_entry(k, many)?,
            }
        }
        m.end()
    }
}

pub(crate) struct FileConnector {
    name: String,
    path: PathBuf,
    /// The file as this connector's last export call wrote it, with the size and time it had
    /// then: the next batch of the same export starts from it, unless the file changed since.
    held: Option<(Held, Stamp)>,
    /// What [`Connector::export_held`] answered and did not write yet: the file as read (with
    /// the stamp it had then) with those changes, and how many operations they are.
    unwritten: Option<(Held, Option<Stamp>, usize)>,
    /// The write of what was held that [`Connector::export_held`] began on a thread of its own
    /// once `write_every` operations were held: the caller records the batch while the file is
    /// written, and [`Connector::flush`] waits for the write to end (so does a drop).
    writing: Option<std::thread::JoinHandle<Result<Written>>>,
    /// [`WRITE_EVERY`] (fewer in tests).
    write_every: usize,
}

/// What a write leaves: what is held then, with the new file's stamp.
type Written = (Held, Option<Stamp>);

impl Drop for FileConnector {
    /// A write under way ends before the connector goes (a run that failed, or panicked,
    /// between a batch and its flush): the next run's write of the same file never overlaps it.
    fn drop(&mut self) {
        let _ = self.written();
    }
}

impl Clone for FileConnector {
    /// A copy with what is held, and no write under way (the registry's copy, which every
    /// run's connector is made from, never exports).
    fn clone(&self) -> Self {
        FileConnector {
            name: self.name.clone(),
            path: self.path.clone(),
            held: self.held.clone(),
            unwritten: self.unwritten.clone(),
            writing: None,
            write_every: self.write_every,
        }
    }
}

/// Operations held unwritten at most (their objects' text, about 300 bytes each in the
/// benchmark): a first export of a million objects writes the file five times, not once per
/// batch (each time copying what it holds already: about 3 GB in all at 50,000 a batch, 0.9
/// GB so).
const WRITE_EVERY: usize = 200_000;

/// What tells one version of the file from another: which file it is (device and inode: a
/// file put in its place by a rename is another one), its size and its times. A program that
/// rewrites the file in place changes its times (to the kernel's clock tick, a few ms).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    file: (u64, u64),
    len: u64,
    modified: Option<std::time::SystemTime>,
    changed: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let (file, changed) = {
            use std::os::unix::fs::MetadataExt;
            ((m.dev(), m.ino()), (m.ctime(), m.ctime_nsec()))
        };
        #[cfg(not(unix))]
        let (file, changed) = ((0, 0), (0, 0));
        Stamp { file, len: m.len(), modified: m.modified().ok(), changed }
    }
}

impl FileConnector {
    /// Checks the settings; the file is read at import and written at export.
    pub(crate) fn new(cfg: &ConnectorConfig) -> Result<Self> {
        let s: Settings = cfg.settings()?;
        Ok(FileConnector::at(&cfg.name, cfg.resolve(&s.path)))
    }

    fn at(name: &str, path: PathBuf) -> Self {
        FileConnector { name: name.to_string(), path, held: None, unwritten: None, writing: None, write_every: WRITE_EVERY }
    }

    #[cfg(test)]
    fn load(&self) -> Result<FileModel> {
        if !self.path.exists() {
            return Ok(FileModel::default());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, "cannot read", e))?;
        serde_json::from_str(&text).map_err(|e: serde_json::Error| Error::Parse {
            file: self.path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Writes the file through `body` atomically: a temporary file, fsync, rename. Returns the
    /// new file's stamp, unless another file took its place right after the rename.
    fn write_atomically<T>(
        &self,
        body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>, Arc<std::fs::File>) -> std::io::Result<T>,
    ) -> Result<(T, Option<Stamp>)> {
        let io = |e: std::io::Error| Error::io(&self.path, "cannot write", e);
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let tmp = self.path.with_extension("json.tmp");
        // The file holds identities (and, as a password hash sync target, their hashes): it is
        // written owner-only, and the rename replaces a file others could read with one they can't.
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A temporary file left by a killed run keeps its old mode: set it.
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        // What is written can be read back through this handle once it is the file.
        let reader = Arc::new(f.try_clone().map_err(io)?);
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let out = body(&mut w, reader).map_err(io)?;
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        let written = Stamp::of(&f.metadata().map_err(io)?).file;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        // The rename is made durable too: the export commits its record of what it wrote only
        // after this returns, and a power loss must not bring back the file from before.
        #[cfg(unix)]
        {
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok((out, self.stamp().filter(|s| s.file == written)))
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

/// A line break inside an object, followed by its indent.
const OBJECT_NEWLINE: &str = "\n    ";

/// Pretty JSON as it is written, each line break followed by the indent of an object's depth
/// ([`OBJECT_NEWLINE`]). JSON text breaks lines only between its tokens (a line break in a
/// string is written escaped).
struct Indented<'a>(&'a mut Vec<u8>);

impl std::io::Write for Indented<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut lines = buf.split(|b| *b == b'\n');
        if let Some(first) = lines.next() {
            self.0.extend_from_slice(first);
        }
        for line in lines {
            self.0.extend_from_slice(OBJECT_NEWLINE.as_bytes());
            self.0.extend_from_slice(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FileConnector {
    fn stamp(&self) -> Option<Stamp> {
        std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m))
    }

    fn parse_error(&self, e: serde_json::Error) -> Error {
        Error::Parse { file: self.path.clone(), line: e.line(), column: e.column(), message: e.to_string() }
    }

    /// Reads where each object of the file is, and checks each has an id of its own.
    fn load_held(&self) -> Result<(Held, Option<Stamp>)> {
        if !self.path.exists() {
            return Ok((Held::default(), None));
        }
        let io = |e: std::io::Error| Error::io(&self.path, "cannot read", e);
        let f = Arc::new(std::fs::File::open(&self.path).map_err(io)?);
        let at = Stamp::of(&f.metadata().map_err(io)?);
        let mut held = Held::new(Some(Arc::clone(&f)));
        self.scan(&f, &mut |raw, span| {
            let id: IdOnly = serde_json::from_str(raw.get()).map_err(|e| self.object_error(Some(span), e))?;
            if held.index.contains_key(&id.id) {
                let message = format!("the id {:?} is in the file twice; remove one of the two objects", id.id);
                return Err(Error::Parse { file: self.path.clone(), line: span.line, column: 1, message });
            }
            held.push(id.id, Slot::At(span));
            Ok(())
        })?;
        Ok((held, Some(at)))
    }

    /// Calls `each` with every object of the file, read a block at a time.
    fn scan(&self, f: &std::fs::File, each: &mut dyn FnMut(&serde_json::value::RawValue, scan::Span) -> Result<()>) -> Result<()> {
        scan::objects(f, each).map_err(|e| match e {
            ScanError::Json(e) if e.is_io() => Error::io(&self.path, "cannot read", std::io::Error::other(e)),
            ScanError::Json(e) => self.parse_error(e),
            ScanError::Each(e) => e,
        })
    }

    /// An error in the object that starts on line `line` of the file.
    /// serde_json places the error inside the object's text: the position given is the file's
    /// (the object's first line starts where the object does), and the message has no other.
    fn object_error(&self, at: Option<scan::Span>, e: serde_json::Error) -> Error {
        let line = at.map(|s| s.line).unwrap_or(0);
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = text.strip_suffix(&suffix).unwrap_or(&text);
        let message = format!("in the object starting on line {line}: {what}");
        let column = match at {
            Some(s) if e.line() <= 1 => self.column_of(s.offset).unwrap_or(1) + e.column().saturating_sub(1),
            _ => e.column(),
        };
        Error::Parse { file: self.path.clone(), line: line + e.line().saturating_sub(1), column, message }
    }

    /// The column (1-based) of byte `offset` in the file, found by reading back to the line
    /// break before it (an error's position, so the cost does not matter).
    fn column_of(&self, offset: u64) -> Option<usize> {
        use std::io::{Read, Seek, SeekFrom};
        let back = offset.min(1 << 16);
        let mut f = std::fs::File::open(&self.path).ok()?;
        f.seek(SeekFrom::Start(offset - back)).ok()?;
        let mut before = vec![0; usize::try_from(back).ok()?];
        f.read_exact(&mut before).ok()?;
        Some(before.iter().rev().position(|b| *b == b'\n').unwrap_or(before.len()) + 1)
    }

    fn parse_object(&self, held: &Held, i: usize) -> Result<FileObject> {
        let text = self.held_text(held, i)?.unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| self.object_error(held.span(i), e))
    }

    fn held_text(&self, held: &Held, i: usize) -> Result<Option<String>> {
        held.text(i).map_err(|e| Error::io(&self.path, "cannot read", e))
    }

    /// An object's text as it sits in the file: pretty, indented to its depth (written so,
    /// not indented after: a first export of a million spent a third of its rendering there).
    fn text(&self, o: &impl Serialize) -> Result<String> {
        let failed = |e| Error::io(&self.path, "cannot write", e);
        let mut out = Vec::with_capacity(256);
        serde_json::to_writer_pretty(Indented(&mut out), o).map_err(|e| failed(std::io::Error::other(e)))?;
        String::from_utf8(out).map_err(|e| failed(std::io::Error::other(e)))
    }

    /// [`FileConnector::save_held`], unless the file changed since it was read (rewritten,
    /// another put in its place, or one made where there was none): the changes held are not
    /// written over it.
    fn save_held_checked(&self, held: Held, at: Option<Stamp>) -> Result<(Held, Option<Stamp>)> {
        if self.stamp() != at {
            let m = "the file changed while idflow held changes for it (another program writes it?): nothing was written; run again";
            return Err(Error::io(&self.path, "cannot write", std::io::Error::other(m)));
        }
        self.save_held(held, at)
    }

    /// Begins writing what is held on a thread of its own (written here when no thread can
    /// be started).
    fn begin_write(&mut self) -> Result<()> {
        let Some((held, at, _)) = self.unwritten.take() else { return Ok(()) };
        // Writing needs the file's path alone.
        let writer = FileConnector::at(&self.name, self.path.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("idflow-file-write".into()).spawn(move || {
            let gone = |_| Error::io(&writer.path, "cannot write", std::io::Error::other("nothing was handed to the write"));
            rx.recv().map_err(gone).and_then(|(held, at)| writer.save_held_checked(held, at))
        });
        match spawned {
            Ok(thread) => {
                // The thread started: it is handed what it writes (sent on a channel so that,
                // had it not started, what is held would still be here).
                let _ = tx.send((held, at));
                self.writing = Some(thread);
                Ok(())
            }
            Err(_) => {
                let (held, written) = self.save_held_checked(held, at)?;
                self.held = written.map(|at| (held, at));
                Ok(())
            }
        }
    }

    /// Waits for the write under way, if any, to end: the file as it wrote it is what the
    /// next batch starts from.
    fn written(&mut self) -> Result<()> {
        let Some(thread) = self.writing.take() else { return Ok(()) };
        let panicked = || Error::io(&self.path, "cannot write", std::io::Error::other("the thread writing it panicked"));
        let (held, written) = thread.join().map_err(|_| panicked())??;
        self.held = written.map(|at| (held, at));
        Ok(())
    }

    /// Writes the objects as `serde_json::to_writer_pretty` writes the whole document, and
    /// returns what is held then, with the new file's stamp (none if another file took its
    /// place right after the rename).
    fn save_held(&self, held: Held, at: Option<Stamp>) -> Result<(Held, Option<Stamp>)> {
        let source = held.file();
        self.write_atomically(|w, written| {
            let held = held.write_to(w, written)?;
            // The objects nothing changed were copied from the file as it was read: a program
            // that rewrote it in place meanwhile would have left a mix of both in the copy.
            if let Some(f) = &source {
                if Some(Stamp::of(&f.metadata()?)) != at {
                    return Err(std::io::Error::other(
                        "the file changed while idflow rewrote it (another program writes it?): nothing was written; run again",
                    ));
                }
            }
            Ok(held)
        })
    }
}

impl Connector for FileConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, "cannot read", e))?;
        self.scan(&f, &mut |raw, span| {
            let o: FileObject = serde_json::from_str(raw.get()).map_err(|e| self.object_error(Some(span), e))?;
            let attrs: Attrs = o.attributes.into_iter().map(|(k, v)| (k, v.into_vec())).collect();
            sink.object(ImportedObject { anchor: Some(o.id), dn: o.dn, object_type: o.object_type, attrs })
        })?;
        Ok(None)
    }

    fn delta_import(&mut self, _watermark: &str, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        let results = self.export_held(ops)?;
        self.flush()?;
        Ok(results)
    }

    /// Operations answered and held; those of a write under way are not counted (it writes
    /// all of them, and [`Connector::flush`] waits for it).
    fn unwritten(&self) -> usize {
        self.unwritten.as_ref().map_or(0, |u| u.2)
    }

    fn flush(&mut self) -> Result<()> {
        self.written()?;
        if let Some((held, at, _)) = self.unwritten.take() {
            let (held, written) = self.save_held_checked(held, at)?;
            self.held = written.map(|at| (held, at));
        }
        Ok(())
    }

    /// A write under way ends first (it cannot be taken back; what it wrote is recognized by
    /// the next export or import, as after a run killed between writing and recording).
    fn discard(&mut self) {
        let _ = self.written();
        self.unwritten = None;
    }

    /// Written once `write_every` operations are held (or at [`Connector::flush`]). Changes
    /// held unwritten are not checked against the file until it is written: the objects kept
    /// are copied then, from the file as it was read, and nothing is written if it changed.
    fn export_held(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.written()?;
        let (mut held, at, before) = match self.unwritten.take() {
            Some(u) => u,
            None => match self.held.take() {
                Some((held, at)) if self.stamp() == Some(at) => (held, Some(at), 0),
                _ => {
                    let (held, at) = self.load_held()?;
                    (held, at, 0)
                }
            },
        };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op.kind {
                OpKind::Add => match &op.anchor {
                    None => OpResult::Failed("the file connector needs an id assigned at provisioning".into()),
                    Some(id) => {
                        let dn = op.new_dn.clone().or_else(|| op.dn.clone());
                        let o = AddedObject { id, object_type: &op.object_type, dn: dn.as_deref(), attributes: NonEmpty(&op.attrs) };
                        let text = self.text(&o)?;
                        match held.index.get(id).copied() {
                            // Written by an export killed before it recorded the answer: done.
                            Some(i) if self.held_text(&held, i)?.as_deref() == Some(text.as_str()) => {
                                OpResult::Done { anchor: Some(id.clone()), dn }
                            }
                            Some(_) => OpResult::Failed(format!("an object with id {id} exists already")),
                            None => {
                                held.push(id.clone(), Slot::Made(text));
                                OpResult::Done { anchor: Some(id.clone()), dn }
                            }
                        }
                    }
                },
                OpKind::Update => match op.anchor.as_ref().and_then(|a| held.index.get(a).copied()) {
                    None => OpResult::Failed("no such object in the file".into()),
                    Some(i) => {
                        let mut o = self.parse_object(&held, i)?;
                        let mut attrs: Attrs = std::mem::take(&mut o.attributes).into_iter().map(|(k, v)| (k, v.into_vec())).collect();
                        idflow_core::connector::apply_changes(&mut attrs, &op.changes);
                        o.attributes = attrs.into_iter().map(|(k, v)| (k, OneOrMany::from_vec(v))).collect();
                        if let Some(d) = &op.new_dn {
                            o.dn = Some(d.clone());
                        }
                        held.set(i, Slot::Made(self.text(&o)?));
                        OpResult::Done { anchor: Some(o.id), dn: o.dn }
                    }
                },
                OpKind::Delete => {
                    if let Some(i) = op.anchor.as_ref().and_then(|a| held.index.remove(a)) {
                        held.set(i, Slot::Gone);
                    }
                    // Gone already counts as done.
                    OpResult::Done { anchor: op.anchor.clone(), dn: None }
                }
            };
            results.push(r);
        }
        self.unwritten = Some((held, at, before + ops.len()));
        if before + ops.len() >= self.write_every {
            self.begin_write()?;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idflow_core::connector::{AttrChange, ChangeKind};

    /// An add is written from its operation as the file's own objects are written.
    #[test]
    fn an_added_object_is_written_as_a_file_object_is() {
        let c = FileConnector::at("cloud", PathBuf::from("unused.json"));
        let add = op(OpKind::Add, "u1", &[("userName", &["ada"]), ("emails", &["a@x", "b@x"]), ("nickName", &[])], vec![]);
        for dn in [None, Some("uid=ada,o=corp")] {
            let attributes =
                add.attrs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), OneOrMany::from_vec(v.clone()))).collect();
            let whole = FileObject { id: "u1".into(), object_type: "User".into(), dn: dn.map(str::to_string), attributes };
            let added = AddedObject { id: "u1", object_type: "User", dn, attributes: NonEmpty(&add.attrs) };
            assert_eq!(c.text(&added).expect("text"), c.text(&whole).expect("text"));
        }
        let none = AddedObject { id: "u2", object_type: "User", dn: None, attributes: NonEmpty(&Attrs::new()) };
        let whole = FileObject { id: "u2".into(), object_type: "User".into(), dn: None, attributes: BTreeMap::new() };
        assert_eq!(c.text(&none).expect("text"), c.text(&whole).expect("text"));
    }

    fn op(kind: OpKind, id: &str, attrs: &[(&str, &[&str])], changes: Vec<AttrChange>) -> ExportOp {
        ExportOp {
            cs_id: 0,
            kind,
            object_type: "User".into(),
            anchor: Some(id.into()),
            dn: None,
            new_dn: None,
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|x| Value::from(*x)).collect())).collect(),
            changes,
        }
    }

    /// What the file held whole and written by serde_json's pretty printer looks like.
    fn pretty(c: &FileConnector) -> String {
        let m = c.load().expect("loads");
        format!("{}\n", serde_json::to_string_pretty(&m).expect("serializes"))
    }

    #[test]
    fn objects_kept_as_text_are_written_as_the_whole_document_would_be() {
        let dir = std::env::temp_dir().join(format!("idflow-file-test-{}", std::process::id()));
        let c = &mut FileConnector::at("cloud", dir.join("cloud.json"));
        let add = c
            .export(&[
                op(OpKind::Add, "a", &[("userName", &["ada"]), ("mail", &["ada@x", "ada@y"])], vec![]),
                op(OpKind::Add, "b", &[("userName", &["bob \"the\" builder\nü"])], vec![]),
            ])
            .expect("adds");
        assert!(add.iter().all(|r| matches!(r, OpResult::Done { .. })));
        let text = std::fs::read_to_string(&c.path).expect("written");
        assert_eq!(text, pretty(c));
        assert!(c.held.as_ref().is_some_and(|(_, at)| Some(*at) == c.stamp()), "the next batch starts from what was written");
        // Another program puts a file of the same size in its place between two batches: the
        // next batch starts from that file, not from the document it remembers.
        let tmp = dir.join("other.json");
        std::fs::write(&tmp, text.replace("\"ada\"", "\"ida\"")).expect("other");
        std::fs::rename(&tmp, &c.path).expect("replaced");
        c.export(&[op(OpKind::Delete, "nobody", &[], vec![])]).expect("a batch");
        assert!(std::fs::read_to_string(&c.path).expect("written").contains("\"ida\""), "the other program's change is kept");
        let change = AttrChange { attr: "mail".into(), kind: ChangeKind::Replace, values: vec!["ada@z".into()] };
        // The same add again (an export killed before it recorded the answer) is done; another
        // object under a taken id is not.
        let again = c.export(&[op(OpKind::Add, "b", &[("userName", &["bob \"the\" builder\nü"])], vec![])]).expect("again");
        assert!(matches!(again[0], OpResult::Done { .. }), "{again:?}");
        let results = c.export(&[op(OpKind::Update, "a", &[], vec![change]), op(OpKind::Add, "a", &[], vec![])]).expect("updates");
        assert!(matches!(&results[1], OpResult::Failed(m) if m.contains("exists already")), "{results:?}");
        let text = std::fs::read_to_string(&c.path).expect("written");
        assert_eq!(text, pretty(c));
        assert!(text.contains("\"mail\": \"ada@z\"") && text.contains("builder\\nü"), "{text}");
        c.export(&[op(OpKind::Delete, "a", &[], vec![]), op(OpKind::Delete, "b", &[], vec![])]).expect("deletes");
        assert_eq!(std::fs::read_to_string(&c.path).expect("written"), "{\n  \"objects\": []\n}\n");
        // An object that is not one is named by its line, found when an update needs it.
        std::fs::write(
            &c.path,
            "{\"objects\": [\n{\"id\": \"a\", \"type\": \"User\", \"attributes\": {}},\n{\"id\": \"b\", \"attributes\": 5}\n]}",
        )
        .expect("written");
        let err = c.export(&[op(OpKind::Update, "b", &[], vec![])]).expect_err("not an object").to_string();
        assert!(err.contains("cloud.json:3:27: in the object starting on line 3: invalid type"), "{err}");
        assert!(!err.contains("at line 1 column"), "one position, the file's: {err}");
        // An object that starts inside a line: its first line's columns are the file's.
        std::fs::write(&c.path, "{\"objects\": [{\"id\": \"a\", \"type\": 5}]}").expect("written");
        let err = c.export(&[op(OpKind::Update, "a", &[], vec![])]).expect_err("not an object").to_string();
        assert!(err.contains("cloud.json:1:34: in the object starting on line 1"), "{err}");
        std::fs::write(&c.path, "{\"objects\": [\n{\"id\": \"a\"},\n{\"id\": \"a\"}]}").expect("written");
        let err = c.export(&[]).expect_err("twice").to_string();
        assert!(err.contains("cloud.json:3:1: the id \"a\" is in the file twice"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Batch after batch, the objects kept from the file the last batch wrote are copied from
    /// it in ranges (between the ones made, changed or deleted), and the file is still the
    /// document as written whole, each object held at its place and line.
    #[test]
    fn objects_copied_in_ranges_from_the_last_batch_land_where_the_whole_document_has_them() {
        let dir = std::env::temp_dir().join(format!("idflow-file-runs-{}", std::process::id()));
        let c = &mut FileConnector::at("cloud", dir.join("cloud.json"));
        let check = |c: &FileConnector| {
            let text = std::fs::read_to_string(&c.path).expect("written");
            assert_eq!(text, pretty(c));
            let (held, _) = c.held.as_ref().expect("held");
            for i in held.index.values() {
                let span = held.span(*i).expect("in the file");
                let at = usize::try_from(span.offset).expect("small");
                let object = held.text(*i).expect("reads").expect("there");
                assert_eq!(&text[at..at + object.len()], object);
                assert_eq!(text[..at].matches('\n').count() + 1, span.line, "{object}");
                assert_eq!(object.matches('\n').count(), span.newlines, "{object}");
            }
        };
        let adds = |ids: &[&str]| ids.iter().map(|id| op(OpKind::Add, id, &[("userName", &[id, "x\ny"])], vec![])).collect::<Vec<_>>();
        c.export(&adds(&["a", "b", "c", "d"])).expect("first batch");
        check(c);
        c.export(&adds(&["e"])).expect("second batch");
        check(c);
        let change = AttrChange { attr: "mail".into(), kind: ChangeKind::Replace, values: vec!["b@x".into()] };
        c.export(&[op(OpKind::Update, "b", &[], vec![change]), op(OpKind::Delete, "d", &[], vec![])]).expect("third batch");
        check(c);
        c.export(&[op(OpKind::Delete, "a", &[], vec![])]).expect("fourth batch");
        check(c);
        let text = std::fs::read_to_string(&c.path).expect("written");
        assert!(text.contains("b@x") && !text.contains("\"a\"") && !text.contains("\"d\""), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Batches answered by `export_held` are written together: at `flush`, or once as many
    /// operations as `write_every` are held; until then the file is as it was, and what is
    /// discarded is never written (the next batch starts from the file).
    #[test]
    fn batches_held_unwritten_are_written_together_or_never() {
        let dir = std::env::temp_dir().join(format!("idflow-file-held-{}", std::process::id()));
        let c = &mut FileConnector::at("cloud", dir.join("cloud.json"));
        c.write_every = 3;
        c.export(&[op(OpKind::Add, "a", &[("userName", &["ada"])], vec![])]).expect("written");
        let first = std::fs::read_to_string(&c.path).expect("written");
        assert_eq!(c.unwritten(), 0);
        let done = c.export_held(&[op(OpKind::Add, "b", &[("userName", &["bob"])], vec![])]).expect("held");
        assert!(matches!(&done[0], OpResult::Done { anchor: Some(a), .. } if a == "b"), "{done:?}");
        assert_eq!((c.unwritten(), std::fs::read_to_string(&c.path).expect("kept")), (1, first.clone()), "not written yet");
        // Discarded (the answers were not recorded): the next batch starts from the file.
        c.discard();
        let change = AttrChange { attr: "mail".into(), kind: ChangeKind::Replace, values: vec!["ada@x".into()] };
        c.export_held(&[op(OpKind::Update, "a", &[], vec![change])]).expect("held");
        c.export_held(&[op(OpKind::Add, "c", &[("userName", &["cy"])], vec![])]).expect("held");
        assert_eq!(std::fs::read_to_string(&c.path).expect("kept"), first, "two held, not written");
        c.flush().expect("flushed");
        let text = std::fs::read_to_string(&c.path).expect("written");
        assert_eq!(text, pretty(c));
        assert!(text.contains("ada@x") && text.contains("\"cy\"") && !text.contains("\"bob\""), "{text}");
        assert_eq!(c.unwritten(), 0);
        c.flush().expect("nothing to write");
        // Three held: written without a flush.
        let adds: Vec<_> = ["d", "e", "f"].iter().map(|id| op(OpKind::Add, id, &[("userName", &[id])], vec![])).collect();
        c.export_held(&adds[..2]).expect("held");
        assert!(!std::fs::read_to_string(&c.path).expect("kept").contains("\"d\""));
        c.export_held(&adds[2..]).expect("written");
        // The write began: the flush waits for it to end.
        assert_eq!(c.unwritten(), 0);
        c.flush().expect("written");
        let text = std::fs::read_to_string(&c.path).expect("written");
        assert!(["\"d\"", "\"e\"", "\"f\""].iter().all(|id| text.contains(id)), "{text}");
        assert_eq!(text, pretty(c));
        // Another file put in its place while a batch is held: not written over, and nothing
        // is held any more (the export rolls back; the next one starts from that file).
        c.export_held(&[op(OpKind::Add, "g", &[("userName", &["gus"])], vec![])]).expect("held");
        let tmp = dir.join("other.json");
        std::fs::write(&tmp, "{\"objects\": []}").expect("other");
        std::fs::rename(&tmp, &c.path).expect("replaced");
        let err = c.flush().expect_err("changed").to_string();
        assert!(err.contains("the file changed while idflow held changes for it"), "{err}");
        assert_eq!(std::fs::read_to_string(&c.path).expect("kept"), "{\"objects\": []}");
        assert_eq!(c.unwritten(), 0);
        // The same while the write a third operation began is under way: its error is the
        // flush's, and the file is not written over.
        let adds: Vec<_> = ["h", "i", "j"].iter().map(|id| op(OpKind::Add, id, &[("userName", &[id])], vec![])).collect();
        c.export_held(&adds[..2]).expect("held");
        std::fs::write(&tmp, "{\"objects\": [{\"id\": \"z\", \"type\": \"User\"}]}").expect("other");
        std::fs::rename(&tmp, &c.path).expect("replaced");
        c.export_held(&adds[2..]).expect("the write begins");
        let err = c.flush().expect_err("changed").to_string();
        assert!(err.contains("the file changed while idflow held changes for it"), "{err}");
        assert!(!std::fs::read_to_string(&c.path).expect("kept").contains("\"h\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Objects nothing changed are copied from the file they were read from: if that file is
    /// not as it was when read (another program rewrote it in place), nothing is written.
    #[test]
    fn a_file_rewritten_in_place_while_copied_is_not_half_copied() {
        let dir = std::env::temp_dir().join(format!("idflow-file-inplace-{}", std::process::id()));
        let c = &mut FileConnector::at("cloud", dir.join("cloud.json"));
        c.export(&[op(OpKind::Add, "a", &[("userName", &["ada"])], vec![])]).expect("adds");
        let before = std::fs::read_to_string(&c.path).expect("written");
        let (held, at) = c.load_held().expect("loads");
        let at = at.map(|s| Stamp { len: s.len + 1, ..s });
        let Err(err) = c.save_held(held, at) else { panic!("written over a file that changed") };
        let err = err.to_string();
        assert!(err.contains("the file changed while idflow rewrote it"), "{err}");
        assert_eq!(std::fs::read_to_string(&c.path).expect("kept"), before, "the file is as it was");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
