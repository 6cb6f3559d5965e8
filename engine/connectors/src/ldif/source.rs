//! An LDIF file read a line at a time, so that a directory of a million entries is never held
//! whole in memory. It hashes what it reads (the fingerprint a delta import compares) and
//! remembers whether the file's last line ended with a line break (a file cut off mid-copy
//! does not).
use super::parse::LdifError;
use sha2::Digest;
use std::cell::Cell;
use std::io::BufRead;
use std::path::Path;
use std::rc::Rc;

pub(super) struct Source<R> {
    reader: R,
    /// Lines read so far (the number of the last one).
    line: usize,
    hasher: sha2::Sha256,
    /// The line being read.
    buf: Vec<u8>,
    /// Did the last line read end with a line break? True for an empty file.
    ended: Rc<Cell<bool>>,
    done: bool,
    /// Why reading stopped before the end, if it did.
    failure: Option<LdifError>,
}

impl Source<std::io::BufReader<std::fs::File>> {
    /// Opens `path` for reading.
    pub(super) fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Source::new(std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?)))
    }
}

impl<R: BufRead> Source<R> {
    pub(super) fn new(reader: R) -> Self {
        Source {
            reader,
            line: 0,
            hasher: sha2::Sha256::new(),
            buf: Vec::new(),
            ended: Rc::new(Cell::new(true)),
            done: false,
            failure: None,
        }
    }

    /// Whether the last line read ended with a line break; meaningful once the lines ran out.
    pub(super) fn ended_with_line_break(&self) -> Rc<Cell<bool>> {
        Rc::clone(&self.ended)
    }

    /// Why the lines stopped before the file's end (not UTF-8, or a read error), if they did: a
    /// reader that skips records it cannot use must still not take a file half read for whole.
    pub(super) fn failure(&self) -> Option<&LdifError> {
        self.failure.as_ref()
    }

    /// The SHA-256 of everything read, in hex.
    pub(super) fn digest(self) -> String {
        hex::encode(self.hasher.finalize())
    }

    /// Reads what is left (unparsed), so that the digest covers the whole file.
    pub(super) fn finish(mut self) -> std::io::Result<String> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(self.digest());
            }
            self.hasher.update(buf);
            let n = buf.len();
            self.reader.consume(n);
        }
    }
}

impl<R> Source<R> {
    fn fail(&mut self, e: LdifError) -> LdifError {
        self.done = true;
        self.failure = Some(e.clone());
        e
    }
}

impl<R: BufRead> Iterator for Source<R> {
    /// A line without its line break.
    type Item = Result<String, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Read into a buffer kept from line to line, then copied at the line's own length: a
        // new buffer per line grew three or four times on the way.
        let buf = &mut self.buf;
        buf.clear();
        match self.reader.read_until(b'\n', buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line += 1;
                self.hasher.update(&buf);
                let ended = buf.last() == Some(&b'\n');
                self.ended.set(ended);
                if ended {
                    buf.pop();
                    // As `str::lines` does: a line break is "\n" or "\r\n".
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let text = match self.line == 1 && buf.starts_with("\u{feff}".as_bytes()) {
                    true => &buf[3..],
                    false => &buf[..],
                };
                match std::str::from_utf8(text) {
                    Ok(s) => Some(Ok(s.to_string())),
                    Err(_) => {
                        let message = "this line is not UTF-8 text: LDIF is UTF-8, with other values in base64 after '::'".into();
                        Some(Err(self.fail(LdifError { line: self.line, message })))
                    }
                }
            }
            Err(e) => Some(Err(self.fail(LdifError { line: self.line + 1, message: format!("cannot read: {e}") }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> (Vec<Result<String, LdifError>>, bool, String) {
        let mut s = Source::new(bytes);
        let ended = s.ended_with_line_break();
        let lines: Vec<_> = s.by_ref().collect();
        (lines, ended.get(), s.digest())
    }

    #[test]
    fn lines_come_as_str_lines_gives_them_and_the_digest_is_the_whole_file() {
        let text = "\u{feff}version: 1\r\n\ndn: cn=a\n cont\nlast";
        let (lines, ended, digest) = read(text.as_bytes());
        let want: Vec<String> = text.trim_start_matches('\u{feff}').lines().map(str::to_string).collect();
        assert_eq!(lines.into_iter().collect::<Result<Vec<_>, _>>().expect("text"), want);
        assert!(!ended, "the last line has no line break");
        assert_eq!(digest, hex::encode(sha2::Sha256::digest(text.as_bytes())));
        let (_, ended, _) = read(b"dn: cn=a\n");
        assert!(ended);
        let (lines, _, _) = read(b"");
        assert!(lines.is_empty());
        let (lines, _, _) = read(b"a\r\r\nb\r\n");
        let lines: Vec<String> = lines.into_iter().collect::<Result<_, _>>().expect("text");
        assert_eq!(lines, "a\r\r\nb\r\n".lines().collect::<Vec<_>>(), "one \\r goes with the line break, as str::lines takes it");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_naming_it_and_reading_stops() {
        let (lines, _, _) = read(b"dn: cn=a\ncn: \xff\xfe\ncn: b\n");
        assert_eq!(lines.len(), 2);
        let e = lines[1].as_ref().expect_err("not text");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not UTF-8"), "{e}");
        let mut s = Source::new(&b"dn: cn=a\n\xff\n"[..]);
        assert!(s.failure().is_none());
        s.by_ref().for_each(drop);
        assert_eq!(s.failure().map(|e| e.line), Some(2), "the source says it stopped early");
    }

    #[test]
    fn finish_hashes_what_was_not_read() {
        let text = b"dn: cn=a\n\ndn: cn=b\n";
        let mut s = Source::new(&text[..]);
        s.next();
        assert_eq!(s.finish().expect("read"), hex::encode(sha2::Sha256::digest(text)));
    }
}
