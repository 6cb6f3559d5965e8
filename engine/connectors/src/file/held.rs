//! The file as an export holds it between batches: where each object's text is in the file,
//! found by id, not the texts themselves. Only the objects an export makes or changes are held
//! as text; every other object's text is copied from the file it was read from into the next
//! one, as it was. A million objects hold about a hundred megabytes, not the document.
use super::scan::Span;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub(super) enum Slot {
    /// In the file, as it was read or last written.
    At(Span),
    /// Made or changed by this export, not written yet.
    Made(String),
    /// Deleted.
    Gone,
}

/// How deep an object sits in the file (`{"objects": [ ... ]}`), pretty-printed.
pub(super) const OBJECT_INDENT: &str = "    ";

#[derive(Default, Clone)]
pub(super) struct Held {
    /// The file the spans point into (kept open: a file put in its place since does not
    /// change what it holds).
    file: Option<Arc<std::fs::File>>,
    /// Every object in the file's order.
    slots: Vec<Slot>,
    pub(super) index: HashMap<String, usize>,
}

impl Held {
    pub(super) fn new(file: Option<Arc<std::fs::File>>) -> Self {
        Held { file, slots: Vec::new(), index: HashMap::new() }
    }

    pub(super) fn push(&mut self, id: String, slot: Slot) {
        self.index.insert(id, self.slots.len());
        self.slots.push(slot);
    }

    pub(super) fn set(&mut self, i: usize, slot: Slot) {
        if let Some(s) = self.slots.get_mut(i) {
            *s = slot;
        }
    }

    /// The file the spans point into.
    pub(super) fn file(&self) -> Option<Arc<std::fs::File>> {
        self.file.clone()
    }

    /// Where object `i` is in the file (`None`: not written yet).
    pub(super) fn span(&self, i: usize) -> Option<Span> {
        match self.slots.get(i) {
            Some(Slot::At(s)) => Some(*s),
            _ => None,
        }
    }

    /// Object `i`'s text (`None`: deleted).
    pub(super) fn text(&self, i: usize) -> std::io::Result<Option<String>> {
        match self.slots.get(i) {
            Some(Slot::At(span)) => {
                let mut buf = vec![0; usize::try_from(span.len).map_err(std::io::Error::other)?];
                read_at(self.file.as_deref(), span.offset, &mut buf)?;
                String::from_utf8(buf).map(Some).map_err(std::io::Error::other)
            }
            Some(Slot::Made(t)) => Ok(Some(t.clone())),
            Some(Slot::Gone) | None => Ok(None),
        }
    }

    /// Writes the document as `serde_json::to_writer_pretty` would write it whole, and returns
    /// what is held once it is the file written: every object at its place in it.
    pub(super) fn write_to(self, w: &mut dyn Write, file: Arc<std::fs::File>) -> std::io::Result<Held> {
        let Held { file: old, slots: held, index } = self;
        let mut w = Tally { inner: w, bytes: 0, newlines: 0 };
        let mut window = Window { file: old.as_deref(), start: 0, buf: Vec::new() };
        let mut slots = Vec::with_capacity(held.len());
        let mut first = true;
        w.put(b"{\n  \"objects\": [")?;
        for slot in held {
            let text: &[u8] = match &slot {
                Slot::Gone => {
                    slots.push(Slot::Gone);
                    continue;
                }
                Slot::At(span) => window.bytes(*span)?,
                Slot::Made(t) => t.as_bytes(),
            };
            w.put(if first { b"\n" } else { b",\n" })?;
            w.put(OBJECT_INDENT.as_bytes())?;
            let span = Span { offset: w.bytes, len: text.len() as u64, line: w.newlines + 1 };
            w.put(text)?;
            slots.push(Slot::At(span));
            first = false;
        }
        w.put(if first { b"]\n}\n" } else { b"\n  ]\n}\n" })?;
        Ok(Held { file: Some(file), slots, index })
    }
}

/// Counts what is written: where the next object starts.
struct Tally<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
    newlines: usize,
}

impl Tally<'_> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(b)?;
        self.bytes += b.len() as u64;
        self.newlines += b.iter().filter(|c| **c == b'\n').count();
        Ok(())
    }
}

/// A megabyte of the file at a time: objects are copied in the file's order, so each read
/// serves many of them.
struct Window<'a> {
    file: Option<&'a std::fs::File>,
    start: u64,
    buf: Vec<u8>,
}

impl Window<'_> {
    fn bytes(&mut self, span: Span) -> std::io::Result<&[u8]> {
        let end = span.offset + span.len;
        if span.offset < self.start || end > self.start + self.buf.len() as u64 {
            let want = usize::try_from(span.len).map_err(std::io::Error::other)?.max(1 << 20);
            self.buf.resize(want, 0);
            let got = read_some_at(self.file, span.offset, &mut self.buf)?;
            self.buf.truncate(got);
            self.start = span.offset;
            if (got as u64) < span.len {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter than when it was read"));
            }
        }
        let from = usize::try_from(span.offset - self.start).map_err(std::io::Error::other)?;
        let to = usize::try_from(end - self.start).map_err(std::io::Error::other)?;
        self.buf.get(from..to).ok_or_else(|| std::io::Error::other("a span outside what was read"))
    }
}

fn no_file() -> std::io::Error {
    std::io::Error::other("an object is held in no file")
}

fn read_at(file: Option<&std::fs::File>, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let len = buf.len();
    if read_some_at(file, offset, buf)? < len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter than when it was read"));
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file. On Unix the
/// reads are positioned (the handle's own position is left alone); elsewhere they seek first.
fn read_some_at(file: Option<&std::fs::File>, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let f = file.ok_or_else(no_file)?;
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match at(f, rest, offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(unix)]
fn at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, offset)
}

#[cfg(not(unix))]
fn at(mut f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    f.read(buf)
}
