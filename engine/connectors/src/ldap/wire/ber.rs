//! The few BER forms LDAP uses (RFC 4511 section 5.1: definite lengths, one-byte tags), read
//! in place from a received message and written into a request.

/// A BER reader over a message's bytes: each element's tag and contents, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag byte, without taking it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: its tag byte and its contents. `None` when nothing is left or the
    /// element is not whole (a length beyond the bytes there are, or not a form LDAP uses).
    pub(crate) fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (tag, head, len) = header(self.rest)?;
        let body = self.rest.get(head..head.checked_add(len)?)?;
        self.rest = &self.rest[head + len..];
        Some((tag, body))
    }

    /// The next element's contents when its tag is `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, body) if t == tag => Some(body),
            _ => None,
        }
    }
}

/// A header at the start of `b`: the tag byte, the header's length and the contents' length.
/// `None` while `b` does not hold the whole header, or when it is a form LDAP does not use
/// (multi-byte tags, indefinite lengths, lengths of more than four bytes).
pub(crate) fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = b.get(2..2 + n)?.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
    Some((tag, 2 + n, len))
}

/// Whether `b` starts with a header LDAP cannot use (as opposed to one not yet received whole).
pub(crate) fn bad_header(b: &[u8]) -> bool {
    match (b.first(), b.get(1)) {
        (Some(t), _) if t & 0x1f == 0x1f => true,
        (_, Some(&l)) => l == 0x80 || l > 0x84,
        _ => false,
    }
}

/// An INTEGER or ENUMERATED's contents as a number (two's complement, at most eight bytes).
pub(crate) fn int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let neg = b[0] & 0x80 != 0;
    Some(b.iter().fold(if neg { -1i64 } else { 0 }, |acc, &x| (acc << 8) | i64::from(x)))
}

/// Appends an element: `tag`, the length, `body`.
pub(crate) fn put(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    put_len(out, body.len());
    out.extend_from_slice(body);
}

/// Appends a length in its shortest definite form.
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = (len as u64).to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (8 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends an INTEGER (or, with tag 0x0a, an ENUMERATED) in its shortest form.
pub(crate) fn put_int(out: &mut Vec<u8>, tag: u8, v: i64) {
    let bytes = v.to_be_bytes();
    let mut i = 0;
    while i < 7 && ((bytes[i] == 0 && bytes[i + 1] & 0x80 == 0) || (bytes[i] == 0xff && bytes[i + 1] & 0x80 != 0)) {
        i += 1;
    }
    put(out, tag, &bytes[i..]);
}

/// Appends a constructed element whose contents `fill` writes.
pub(crate) fn put_with(out: &mut Vec<u8>, tag: u8, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    fill(&mut body);
    put(out, tag, &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 16_777_216] {
            let mut out = vec![0x04];
            put_len(&mut out, len);
            let head = out.len();
            out.resize(head + len, 7);
            assert_eq!(header(&out), Some((0x04, head, len)), "length {len}");
            assert_eq!(Reader::new(&out).next().map(|(t, b)| (t, b.len())), Some((0x04, len)));
        }
        for v in [0i64, 1, 127, 128, 255, 256, -1, -128, -129, 1000, i64::from(i32::MAX), i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_int(&mut out, 0x02, v);
            let (tag, body) = Reader::new(&out).next().expect("an element");
            assert_eq!((tag, int(body)), (0x02, Some(v)), "{v} as {out:02x?}");
        }
        let mut out = Vec::new();
        put_int(&mut out, 0x02, 128);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80], "128 needs a leading zero");
    }

    #[test]
    fn partial_and_unusable_headers_are_told_apart() {
        assert_eq!(header(&[0x30]), None);
        assert!(!bad_header(&[0x30]), "one byte: wait for more");
        assert_eq!(header(&[0x30, 0x82, 0x01]), None);
        assert!(!bad_header(&[0x30, 0x82, 0x01]), "a long length cut short: wait for more");
        assert!(bad_header(&[0x30, 0x80]), "indefinite length");
        assert!(bad_header(&[0x30, 0x89]), "a nine-byte length");
        assert!(bad_header(&[0x3f, 0x01]), "a multi-byte tag");
        let mut r = Reader::new(&[0x04, 0x05, b'a']);
        assert_eq!(r.next(), None, "contents cut short");
    }
}
