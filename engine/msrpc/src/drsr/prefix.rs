//! ATTRTYP and OIDs (MS-DRSR 5.16.4): an attribute travels as a 32-bit ATTRTYP whose upper
//! half indexes a prefix table of BER-encoded OID prefixes and whose lower half is the last arc.

/// The attributes password hash sync reads.
pub const UNICODE_PWD: &str = "1.2.840.113556.1.4.90";
pub const NT_PWD_HISTORY: &str = "1.2.840.113556.1.4.94";
pub const OBJECT_SID: &str = "1.2.840.113556.1.4.146";
pub const OBJECT_GUID: &str = "1.2.840.113556.1.4.148";
pub const SAM_ACCOUNT_NAME: &str = "1.2.840.113556.1.4.221";
pub const USER_ACCOUNT_CONTROL: &str = "1.2.840.113556.1.4.8";
pub const PWD_LAST_SET: &str = "1.2.840.113556.1.4.96";

/// BER encoding of a dotted OID (without tag and length).
pub fn ber(oid: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u64> = oid.split('.').map(|a| a.parse().ok()).collect::<Option<_>>()?;
    if arcs.len() < 2 {
        return None;
    }
    let mut out = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(((v & 0x7f) as u8) | 0x80);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    Some(out)
}

/// One prefix table entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub ndx: u32,
    pub prefix: Vec<u8>,
}

/// A prefix table being built for a request, and the ATTRTYPs it yields (MakeAttid).
#[derive(Debug, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
}

/// An OID split the MakeAttid way: the BER prefix a table indexes, and the ATTRTYP's lower
/// 16 bits (the last arc, marked when it does not fit in 14 bits).
fn split(oid: &str) -> Option<(Vec<u8>, u32)> {
    let last: u64 = oid.rsplit('.').next()?.parse().ok()?;
    let mut prefix = ber(oid)?;
    prefix.truncate(prefix.len().checked_sub(if last < 128 { 1 } else { 2 })?);
    let lower = (last % 16384) as u32 + if last >= 16384 { 32768 } else { 0 };
    Some((prefix, lower))
}

impl Table {
    /// The ATTRTYP for `oid`, adding its prefix to the table when new. Indexes follow the
    /// well-known table where they can (1.2.840.113556.1.4 is 9), so ids read as usual.
    pub fn attid(&mut self, oid: &str) -> Option<u32> {
        let (prefix, lower) = split(oid)?;
        let ndx = match self.entries.iter().find(|e| e.prefix == prefix) {
            Some(e) => e.ndx,
            None => {
                let well_known = (prefix == [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x01, 0x04]).then_some(9);
                let ndx = well_known
                    .filter(|n| !self.entries.iter().any(|e| e.ndx == *n))
                    .unwrap_or_else(|| (0..).find(|n| *n != 9 && !self.entries.iter().any(|e| e.ndx == *n)).unwrap_or(0));
                self.entries.push(Entry { ndx, prefix });
                ndx
            }
        };
        Some((ndx << 16) | lower)
    }
}

/// The ATTRTYP a (server's) prefix table gives `oid`, when the table has its prefix.
pub fn attid_in(entries: &[Entry], oid: &str) -> Option<u32> {
    let (prefix, lower) = split(oid)?;
    let e = entries.iter().find(|e| e.prefix == prefix)?;
    Some((e.ndx << 16) | lower)
}

/// The BER OID an ATTRTYP stands for under a (server's) prefix table (OidFromAttid).
pub fn oid_of(entries: &[Entry], attid: u32) -> Option<Vec<u8>> {
    let upper = attid >> 16;
    let mut lower = attid & 0xffff;
    let e = entries.iter().find(|e| e.ndx == upper)?;
    let mut b = e.prefix.clone();
    if lower < 128 {
        b.push(lower as u8);
    } else {
        if lower >= 32768 {
            lower -= 32768;
        }
        b.push((((lower / 128) % 128) + 128) as u8);
        b.push((lower % 128) as u8);
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_attids() {
        let mut t = Table::default();
        assert_eq!(t.attid(UNICODE_PWD), Some(0x0009_005a));
        assert_eq!(t.attid(SAM_ACCOUNT_NAME), Some(0x0009_00dd));
        assert_eq!(t.attid(USER_ACCOUNT_CONTROL), Some(0x0009_0008));
        assert_eq!(t.entries.len(), 1);
        assert_eq!(oid_of(&t.entries, 0x0009_00dd), ber(SAM_ACCOUNT_NAME));
        assert_eq!(oid_of(&t.entries, 0x0009_005a), ber(UNICODE_PWD));
        assert_eq!(attid_in(&t.entries, OBJECT_SID), Some(0x0009_0092));
        assert_eq!(attid_in(&t.entries, "2.5.4.3"), None);
    }
}
