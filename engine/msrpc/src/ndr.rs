//! NDR 2.0 (little-endian) encoding for the few DCE/RPC calls idflow makes: alignment,
//! integers, GUIDs, unique-pointer referent ids and conformant arrays. Offsets align relative
//! to the start of the stub, as NDR requires.

/// The first referent id handed out; each pointer gets the next one.
const FIRST_REFERENT: u32 = 0x0002_0000;

#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
    next_ref: u32,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer { buf: Vec::with_capacity(256), next_ref: FIRST_REFERENT }
    }
    pub(crate) fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// A GUID as NDR lays it out (which is the same as the 16 bytes AD stores).
    pub(crate) fn guid(&mut self, g: &[u8; 16]) {
        self.align(4);
        self.buf.extend_from_slice(g);
    }
    /// A non-null unique (or embedded ref) pointer: its referent id.
    pub(crate) fn pointer(&mut self) {
        let r = self.next_ref;
        self.next_ref += 4;
        self.u32(r);
    }
    pub(crate) fn null(&mut self) {
        self.u32(0);
    }
    /// A `[string] wchar_t*` referent: max count, offset, actual count, UTF-16LE with the NUL.
    pub(crate) fn wide_string(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
        self.u32(units.len() as u32);
        self.u32(0);
        self.u32(units.len() as u32);
        for u in units {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) type NdrResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn align(&mut self, n: usize) {
        self.pos = self.pos.div_ceil(n) * n;
    }
    pub(crate) fn take(&mut self, n: usize) -> NdrResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| format!("truncated reply: {n} bytes wanted at offset {} of {}", self.pos, self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u32(&mut self) -> NdrResult<u32> {
        self.align(4);
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> NdrResult<u64> {
        self.align(8);
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn guid(&mut self) -> NdrResult<[u8; 16]> {
        self.align(4);
        let mut g = [0u8; 16];
        g.copy_from_slice(self.take(16)?);
        Ok(g)
    }
    /// A pointer's referent id: true when the referent follows (later, if deferred).
    pub(crate) fn pointer(&mut self) -> NdrResult<bool> {
        Ok(self.u32()? != 0)
    }
    /// A conformant array's size, checked against what is left so that a hostile count
    /// cannot make us allocate gigabytes.
    pub(crate) fn count(&mut self, elem_size: usize) -> NdrResult<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(elem_size.max(1)) > self.buf.len().saturating_sub(self.pos) {
            return Err(format!("array of {n} elements at offset {} runs past the reply", self.pos));
        }
        Ok(n)
    }
    /// A `[string] wchar_t*` referent.
    pub(crate) fn wide_string(&mut self) -> NdrResult<String> {
        let _max = self.u32()?;
        let _offset = self.u32()?;
        let n = self.count(2)?;
        let b = self.take(n * 2)?;
        let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|u| *u != 0).collect();
        Ok(String::from_utf16_lossy(&units))
    }
}

/// The last four bytes of a reply's stub: where a call's own return value (a WERROR) sits,
/// after every out parameter.
pub(crate) fn trailing_u32(stub: &[u8]) -> Option<u32> {
    let t = stub.get(stub.len().checked_sub(4)?..)?;
    Some(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

/// A GUID in its usual text form.
pub fn guid_text(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        hex::encode(&g[8..10]),
        hex::encode(&g[10..16])
    )
}

/// A GUID from its text form, into the NDR byte layout.
pub fn guid_from_text(s: &str) -> Option<[u8; 16]> {
    let h: String = s.trim_matches(['{', '}']).chars().filter(|c| *c != '-').collect();
    let b = hex::decode(h).ok()?;
    if b.len() != 16 {
        return None;
    }
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g[8..16].copy_from_slice(&b[8..16]);
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trips() {
        let t = "e3514235-4b06-11d1-ab04-00c04fc2dcd2";
        let g = guid_from_text(t).expect("valid");
        assert_eq!(g[0], 0x35);
        assert_eq!(guid_text(&g), t);
    }

    #[test]
    fn reader_refuses_counts_past_the_end() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0x7f]);
        assert!(r.count(1).is_err());
    }
}
