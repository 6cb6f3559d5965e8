//! The file as an export holds it between batches: where each object's text is in the file,
//! found by id, not the texts themselves. Only the objects an export makes or changes are held
//! as text; every other object's text is copied from the file it was read from into the next
//! one, as it was. A million objects hold about a hundred megabytes, not the document.
use super::scan::Span;
use idflow_core::fast_hash::FastMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
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

// The document as idflow writes it (as serde_json's pretty printer writes it whole), written
// here and read back fast by plain.rs: its head, what comes before its first object (a line
// break, the indent of an object's depth), between two objects (a comma too), and its tail
// after objects or after none.
pub(super) const HEAD: &[u8] = b"{\n  \"objects\": [";
pub(super) const FIRST: &[u8] = b"\n    ";
pub(super) const SEPARATOR: &[u8] = b",\n    ";
pub(super) const TAIL: &[u8] = b"\n  ]\n}\n";
pub(super) const EMPTY_TAIL: &[u8] = b"]\n}\n";

#[derive(Default, Clone)]
pub(super) struct Held {
    /// The file the spans point into (kept open: a file put in its place since does not
    /// change what it holds).
    file: Option<Arc<std::fs::File>>,
    /// Every object in the file's order.
    slots: Vec<Slot>,
    /// By id: foldhash, not SipHash (a first export of a million hashes each id a few times;
    /// the ids are the ones idflow assigned, in an owner-only file).
    pub(super) index: FastMap<String, usize>,
    /// The file is one idflow wrote (objects apart by [`SEPARATOR`] alone), not one it read.
    written: bool,
}

impl Held {
    pub(super) fn new(file: Option<Arc<std::fs::File>>) -> Self {
        Held { file, slots: Vec::new(), index: FastMap::default(), written: false }
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
    /// what is held once it is the file written: every object at its place in it. Objects kept
    /// from a file idflow wrote, one after the other there, are copied as one range by the
    /// kernel (`copy_file_range` on Linux), not through this process: a first export of
    /// 1,000,000 objects writes the file again after each batch.
    pub(super) fn write_to(self, w: &mut BufWriter<File>, file: Arc<File>) -> std::io::Result<Held> {
        let Held { file: old, slots: held, index, written } = self;
        let mut w = Tally { inner: w, bytes: 0, newlines: 0 };
        let mut window = Window { file: old.as_deref(), start: 0, buf: Vec::new() };
        let mut run: Option<Run> = None;
        let mut slots = Vec::with_capacity(held.len());
        let mut first = true;
        w.put(HEAD)?;
        for slot in held {
            if let (Slot::At(span), Some(r)) = (&slot, run.as_mut()) {
                if written && span.offset == r.to + SEPARATOR.len() as u64 {
                    slots.push(Slot::At(r.extend(*span)));
                    continue;
                }
            }
            if let Some(r) = run.take() {
                r.copy(&mut w, old.as_deref())?;
            }
            if matches!(slot, Slot::Gone) {
                slots.push(Slot::Gone);
                continue;
            }
            w.put(if first { FIRST } else { SEPARATOR })?;
            first = false;
            let (offset, line) = (w.bytes, w.newlines + 1);
            let span = match slot {
                Slot::At(span) if written => {
                    let r = Run { from: span.offset, to: span.offset + span.len, first: span, last: span, offset, line };
                    run = Some(r);
                    Span { offset, line, ..span }
                }
                Slot::At(span) => {
                    w.put(window.bytes(span)?)?;
                    Span { offset, line, ..span }
                }
                Slot::Made(t) => {
                    w.put(t.as_bytes())?;
                    Span { offset, len: t.len() as u64, line, newlines: w.newlines + 1 - line }
                }
                Slot::Gone => continue,
            };
            slots.push(Slot::At(span));
        }
        if let Some(r) = run.take() {
            r.copy(&mut w, old.as_deref())?;
        }
        w.put(if first { EMPTY_TAIL } else { TAIL })?;
        Ok(Held { file: Some(file), slots, index, written: true })
    }
}

/// Objects one after the other in the file read, apart by [`SEPARATOR`] alone: the bytes from
/// the first's start to the last's end, to be copied as they are.
struct Run {
    from: u64,
    to: u64,
    first: Span,
    last: Span,
    /// Where the first goes in the file written, and on which line.
    offset: u64,
    line: usize,
}

impl Run {
    /// Takes in the object that follows the run in the file read; returns where it goes.
    fn extend(&mut self, span: Span) -> Span {
        self.to = span.offset + span.len;
        self.last = span;
        Span { offset: self.offset + (span.offset - self.from), line: self.line + (span.line - self.first.line), ..span }
    }

    fn copy(self, w: &mut Tally<'_>, from: Option<&File>) -> std::io::Result<()> {
        let newlines = self.last.line - self.first.line + self.last.newlines;
        w.copy(from.ok_or_else(no_file)?, self.from, self.to - self.from, newlines)
    }
}

/// Counts what is written: where the next object starts.
struct Tally<'a> {
    inner: &'a mut BufWriter<File>,
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

    /// `len` bytes of `from` at `offset`, holding `newlines` line breaks. (`std::io::copy`
    /// between files is the kernel's copy where there is one: the buffer is written out first,
    /// then the range copied from file to file.)
    fn copy(&mut self, from: &File, offset: u64, len: u64, newlines: usize) -> std::io::Result<()> {
        let mut src = from;
        src.seek(SeekFrom::Start(offset))?;
        if std::io::copy(&mut src.take(len), self.inner)? < len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter than when it was read"));
        }
        self.bytes += len;
        self.newlines += newlines;
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
