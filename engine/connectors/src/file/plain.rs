//! The file as idflow writes it (`{\n  "objects": [`, objects apart by `,\n    `, `\n  ]\n}\n`),
//! read a megabyte at a time and cut into objects here, each object checked by serde_json from
//! its bytes. serde_json's streaming reader takes one byte per call: reading the file that way
//! was 60% of a 1% delta's export at 100,000 people. Anything else in the file stops this
//! ([`Stop::NotPlain`]) and the careful reading (scan.rs) goes on from the object it stopped at.
use super::held::{EMPTY_TAIL, FIRST, HEAD, SEPARATOR, TAIL};
use super::scan::Span;
use serde_json::value::RawValue;
use std::io::Read;

const BLOCK: usize = 1 << 20;

pub(super) enum Stop<E> {
    /// The file is not (or not only) as idflow writes it.
    NotPlain,
    Each(E),
    Io(std::io::Error),
}

impl<E> From<std::io::Error> for Stop<E> {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

/// Calls `each` with every object of the file read from `r`, in order, as long as the file is
/// as idflow writes it; `delivered` counts the objects given to `each`.
pub(super) fn objects<R: Read, E>(
    r: R,
    each: &mut dyn FnMut(&RawValue, Span) -> Result<(), E>,
    delivered: &mut usize,
) -> Result<(), Stop<E>> {
    Buffer::new(r).objects(each, delivered)
}

impl<R: Read> Buffer<R> {
    fn new(r: R) -> Self {
        Buffer { r, data: Vec::with_capacity(BLOCK), at: 0, offset: 0, newlines: 0, eof: false }
    }

    fn objects<E>(&mut self, each: &mut dyn FnMut(&RawValue, Span) -> Result<(), E>, delivered: &mut usize) -> Result<(), Stop<E>> {
        let b = self;
        if !b.eat(HEAD)? {
            return Err(Stop::NotPlain);
        }
        if b.eat(EMPTY_TAIL)? {
            return b.end();
        }
        let mut sep = FIRST;
        while b.eat(sep)? {
            sep = SEPARATOR;
            let (raw, span) = b.object()?;
            let raw: &RawValue = serde_json::from_slice(raw).map_err(|_| Stop::NotPlain)?;
            each(raw, span).map_err(Stop::Each)?;
            *delivered += 1;
        }
        match b.eat(TAIL)? {
            true => b.end(),
            false => Err(Stop::NotPlain),
        }
    }
}

struct Buffer<R> {
    r: R,
    data: Vec<u8>,
    /// Where reading stands in `data`.
    at: usize,
    /// The file offset of `data[at]`, and the line breaks before it.
    offset: u64,
    newlines: usize,
    eof: bool,
}

impl<R: Read> Buffer<R> {
    /// Whether `n` bytes are there from `at`, reading more (and dropping what was read) if not.
    fn have(&mut self, n: usize) -> std::io::Result<bool> {
        while self.data.len() - self.at < n && !self.eof {
            if self.at > 0 {
                self.data.drain(..self.at);
                self.at = 0;
            }
            self.more()?;
        }
        Ok(self.data.len() - self.at >= n)
    }

    /// Reads up to a block more at the end of `data`.
    fn more(&mut self) -> std::io::Result<()> {
        let len = self.data.len();
        self.data.resize(len + BLOCK, 0);
        let got = loop {
            match self.r.read(&mut self.data[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.data.truncate(len);
                    return Err(e);
                }
            }
        };
        self.data.truncate(len + got);
        self.eof = got == 0;
        Ok(())
    }

    /// Steps over `lit` if it comes next.
    fn eat(&mut self, lit: &[u8]) -> std::io::Result<bool> {
        if !self.have(lit.len())? || !self.data[self.at..].starts_with(lit) {
            return Ok(false);
        }
        self.step(lit.len());
        Ok(true)
    }

    fn step(&mut self, n: usize) {
        self.newlines += self.data[self.at..self.at + n].iter().filter(|b| **b == b'\n').count();
        self.at += n;
        self.offset += n as u64;
    }

    /// The object that starts here (`{` to its `}`, strings minded), and where it is.
    fn object<E>(&mut self) -> Result<(&[u8], Span), Stop<E>> {
        if !self.have(1)? || self.data[self.at] != b'{' {
            return Err(Stop::NotPlain);
        }
        // What was read before the object goes, so that the buffer holds a block or two (and
        // the object), not the file.
        if self.at >= BLOCK {
            self.data.drain(..self.at);
            self.at = 0;
        }
        let (mut depth, mut string, mut escaped) = (0usize, false, false);
        let mut i = self.at;
        loop {
            if i == self.data.len() {
                if self.eof {
                    return Err(Stop::NotPlain);
                }
                // `at` stays where it is: the object's bytes stay where they are too.
                self.more()?;
                continue;
            }
            let c = self.data[i];
            i += 1;
            if string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1).ok_or(Stop::NotPlain)?;
                    if depth == 0 {
                        if c != b'}' {
                            return Err(Stop::NotPlain);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        let (start, len) = (self.at, i - self.at);
        let span = Span { offset: self.offset, len: len as u64, line: self.newlines + 1, newlines: 0 };
        self.step(len);
        let span = Span { newlines: self.newlines + 1 - span.line, ..span };
        Ok((&self.data[start..start + len], span))
    }

    /// Nothing may follow the document.
    fn end<E>(&mut self) -> Result<(), Stop<E>> {
        match self.have(1)? {
            true => Err(Stop::NotPlain),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of many megabytes is read through a buffer of a block or two, not held whole.
    #[test]
    fn the_buffer_holds_a_block_or_two_not_the_file() {
        let objects: Vec<serde_json::Value> =
            (0..20_000).map(|i| serde_json::json!({"id": format!("u{i}"), "attributes": {"cn": "x".repeat(500)}})).collect();
        let text = format!("{}\n", serde_json::to_string_pretty(&serde_json::json!({ "objects": objects })).expect("json"));
        assert!(text.len() > 10 * BLOCK);
        let mut b = Buffer::new(text.as_bytes());
        let (mut n, mut delivered) = (0, 0);
        let r = b.objects::<()>(
            &mut |_, _| {
                n += 1;
                Ok(())
            },
            &mut delivered,
        );
        assert!(r.is_ok());
        assert_eq!((n, delivered), (20_000, 20_000));
        assert!(b.data.capacity() <= 3 * BLOCK, "{} bytes held", b.data.capacity());
    }
}
