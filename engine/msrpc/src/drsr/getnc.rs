//! IDL_DRSGetNCChanges (opnum 3): request V8 out, reply V6 in.
use super::prefix::Entry;
use crate::ndr::{NdrResult, Reader, Writer};

pub const DRS_WRIT_REP: u32 = 0x0000_0010;
pub const DRS_INIT_SYNC: u32 = 0x0000_0020;
pub const DRS_NEVER_SYNCED: u32 = 0x0020_0000;
pub const EXOP_REPL_OBJ: u32 = 6;

/// A USN high-water mark: all three fields, echoed back as they came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsnVector {
    pub high_obj_update: i64,
    pub reserved: i64,
    pub high_prop_update: i64,
}

/// Which naming context (or, for EXOP_REPL_OBJ, which object) to replicate.
pub enum Target<'a> {
    Dn(&'a str),
    Guid([u8; 16]),
}

pub struct Request<'a> {
    pub dsa_dest: [u8; 16],
    pub invocation_id: [u8; 16],
    pub target: Target<'a>,
    pub from: UsnVector,
    pub flags: u32,
    pub max_objects: u32,
    pub max_bytes: u32,
    pub extended_op: u32,
    pub attids: &'a [u32],
    pub prefix: &'a [Entry],
}

fn dsname(w: &mut Writer, target: &Target) {
    let (guid, name): ([u8; 16], Vec<u16>) = match target {
        Target::Dn(dn) => ([0; 16], dn.encode_utf16().collect()),
        Target::Guid(g) => (*g, Vec::new()),
    };
    w.u32(name.len() as u32 + 1);
    w.u32(56 + 2 * (name.len() as u32 + 1));
    w.u32(0);
    w.guid(&guid);
    w.bytes(&[0u8; 28]);
    w.u32(name.len() as u32);
    for u in name.iter().chain(std::iter::once(&0)) {
        w.bytes(&u.to_le_bytes());
    }
}

pub fn encode(handle: &[u8; 20], r: &Request) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(handle);
    w.u32(8);
    w.u32(8);
    w.align(8);
    w.guid(&r.dsa_dest);
    w.guid(&r.invocation_id);
    w.pointer();
    w.u64(r.from.high_obj_update as u64);
    w.u64(r.from.reserved as u64);
    w.u64(r.from.high_prop_update as u64);
    w.null();
    w.u32(r.flags);
    w.u32(r.max_objects);
    w.u32(r.max_bytes);
    w.u32(r.extended_op);
    w.u64(0);
    w.pointer();
    w.null();
    w.u32(r.prefix.len() as u32);
    w.pointer();
    // Deferred referents, in pointer order.
    dsname(&mut w, &r.target);
    w.u32(r.attids.len() as u32);
    w.u32(1);
    w.u32(0);
    w.u32(r.attids.len() as u32);
    for a in r.attids {
        w.u32(*a);
    }
    w.u32(r.prefix.len() as u32);
    for e in r.prefix {
        w.u32(e.ndx);
        w.u32(e.prefix.len() as u32);
        w.pointer();
    }
    for e in r.prefix {
        w.u32(e.prefix.len() as u32);
        w.bytes(&e.prefix);
    }
    w.align(4);
    w.buf
}

/// One replicated object: its GUID, DN and the attributes sent (values still encrypted where
/// the attribute is secret).
#[derive(Debug, Default)]
pub struct Object {
    pub guid: [u8; 16],
    pub dn: String,
    pub attrs: Vec<(u32, Vec<Vec<u8>>)>,
}

#[derive(Debug, Default)]
pub struct Reply {
    pub dsa_src: [u8; 16],
    pub invocation_id: [u8; 16],
    pub from: UsnVector,
    pub to: UsnVector,
    pub prefix: Vec<Entry>,
    pub extended_ret: u32,
    pub more_data: bool,
    pub drs_error: u32,
    pub objects: Vec<Object>,
    /// The function's own return (a WERROR).
    pub result: u32,
}

fn usn_vector(r: &mut Reader) -> NdrResult<UsnVector> {
    Ok(UsnVector { high_obj_update: r.u64()? as i64, reserved: r.u64()? as i64, high_prop_update: r.u64()? as i64 })
}

fn read_dsname(r: &mut Reader) -> NdrResult<([u8; 16], String)> {
    let n = r.count(2)?;
    let _struct_len = r.u32()?;
    let _sid_len = r.u32()?;
    let guid = r.guid()?;
    r.take(28)?;
    let _name_len = r.u32()?;
    let b = r.take(n * 2)?;
    let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|u| *u != 0).collect();
    Ok((guid, String::from_utf16_lossy(&units)))
}

struct Flat {
    name: bool,
    attr_count: u32,
    attrs: bool,
    parent: bool,
    meta: bool,
}

pub fn decode(stub: &[u8]) -> Result<Reply, String> {
    let result = crate::ndr::trailing_u32(stub).ok_or("an empty DRSGetNCChanges reply")?;
    let mut out = Reply { result, ..Default::default() };
    let mut r = Reader::new(stub);
    let version = r.u32()?;
    let arm = r.u32()?;
    if version != 6 || arm != 6 {
        if result != 0 {
            return Ok(out);
        }
        return Err(format!("the DC answered with reply version {version}; idflow reads version 6"));
    }
    r.align(8);
    out.dsa_src = r.guid()?;
    out.invocation_id = r.guid()?;
    let has_nc = r.pointer()?;
    out.from = usn_vector(&mut r)?;
    out.to = usn_vector(&mut r)?;
    let has_utd = r.pointer()?;
    let prefix_count = r.u32()?;
    let has_prefix = r.pointer()?;
    out.extended_ret = r.u32()?;
    let num_objects = r.u32()?;
    let _num_bytes = r.u32()?;
    let has_objects = r.pointer()?;
    out.more_data = r.u32()? != 0;
    let _nc_objects = r.u32()?;
    let _nc_values = r.u32()?;
    let _num_values = r.u32()?;
    let _has_values = r.pointer()?;
    out.drs_error = r.u32()?;
    if has_nc {
        read_dsname(&mut r)?;
    }
    if has_utd {
        let n = r.count(32)?;
        r.align(8);
        r.take(16)?;
        for _ in 0..n {
            r.guid()?;
            r.u64()?;
            r.u64()?;
        }
    }
    if has_prefix {
        let n = r.count(12)?;
        if n != prefix_count as usize {
            return Err(format!("the reply's prefix table says {prefix_count} entries and carries {n}"));
        }
        let mut flat = Vec::with_capacity(n);
        for _ in 0..n {
            flat.push((r.u32()?, r.u32()?, r.pointer()?));
        }
        for (ndx, _len, present) in flat {
            let prefix = if present {
                let m = r.count(1)?;
                r.take(m)?.to_vec()
            } else {
                Vec::new()
            };
            out.prefix.push(Entry { ndx, prefix });
        }
    }
    if has_objects {
        // The list's scalars come first, one item after another, then each item's
        // referents in reverse order (each `next` pointer is followed before the rest).
        // The count is the DC's word: reserve no more than the reply could hold (each
        // object's scalars take 28 bytes).
        let mut flats = Vec::with_capacity((num_objects as usize).min(stub.len() / 28));
        loop {
            let next = r.pointer()?;
            let name = r.pointer()?;
            let _flags = r.u32()?;
            let attr_count = r.u32()?;
            let attrs = r.pointer()?;
            let _nc_prefix = r.u32()?;
            let parent = r.pointer()?;
            let meta = r.pointer()?;
            flats.push(Flat { name, attr_count, attrs, parent, meta });
            if !next {
                break;
            }
            if flats.len() > 10_000_000 {
                return Err("the reply's object list does not end".into());
            }
        }
        let mut objects = Vec::with_capacity(flats.len());
        for f in flats.iter().rev() {
            let mut o = Object::default();
            if f.name {
                let (g, dn) = read_dsname(&mut r)?;
                o.guid = g;
                o.dn = dn;
            }
            if f.attrs {
                let n = r.count(12)?;
                if n != f.attr_count as usize {
                    return Err(format!("an object says {} attributes and carries {n}", f.attr_count));
                }
                let mut heads = Vec::with_capacity(n);
                for _ in 0..n {
                    heads.push((r.u32()?, r.u32()?, r.pointer()?));
                }
                for (attid, count, present) in heads {
                    let mut values = Vec::new();
                    if present {
                        let m = r.count(8)?;
                        if m != count as usize {
                            return Err(format!("attribute {attid:#x} says {count} values and carries {m}"));
                        }
                        let mut vh = Vec::with_capacity(m);
                        for _ in 0..m {
                            vh.push((r.u32()?, r.pointer()?));
                        }
                        for (_len, p) in vh {
                            if p {
                                let k = r.count(1)?;
                                values.push(r.take(k)?.to_vec());
                            } else {
                                values.push(Vec::new());
                            }
                        }
                    }
                    o.attrs.push((attid, values));
                }
            }
            if f.parent {
                r.guid()?;
            }
            if f.meta {
                let n = r.count(40)?;
                r.align(8);
                r.u32()?;
                for _ in 0..n {
                    r.align(8);
                    r.u32()?;
                    r.u64()?;
                    r.guid()?;
                    r.u64()?;
                }
            }
            objects.push(o);
        }
        objects.reverse();
        out.objects = objects;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsname(w: &mut Writer, guid: [u8; 16], dn: &str) {
        let units: Vec<u16> = dn.encode_utf16().collect();
        w.u32(units.len() as u32 + 1);
        w.u32(0);
        w.u32(0);
        w.guid(&guid);
        w.bytes(&[0; 28]);
        w.u32(units.len() as u32);
        for u in units.iter().chain(std::iter::once(&0)) {
            w.bytes(&u.to_le_bytes());
        }
    }

    /// A reply V6 laid out as a DC lays it out: the object list's scalars one after another,
    /// then each object's referents, the last object's first.
    fn two_object_reply() -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(6);
        w.u32(6);
        w.align(8);
        w.guid(&[1; 16]);
        w.guid(&[2; 16]);
        w.null();
        for v in [0u64, 0, 0, 7, 0, 7] {
            w.u64(v);
        }
        w.null();
        w.u32(1);
        w.pointer();
        w.u32(0);
        w.u32(2);
        w.u32(0);
        w.pointer();
        w.u32(0);
        for _ in 0..3 {
            w.u32(0);
        }
        w.null();
        w.u32(0);
        // Prefix table: one entry, 1.2.840.113556.1.4 as ndx 9.
        w.u32(1);
        w.u32(9);
        w.u32(8);
        w.pointer();
        w.u32(8);
        w.bytes(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x01, 0x04]);
        // Scalars of object 1 (next set), then of object 2 (next null).
        for next in [true, false] {
            if next {
                w.pointer()
            } else {
                w.null()
            }
            w.pointer();
            w.u32(0);
            w.u32(1);
            w.pointer();
            w.u32(0);
            w.null();
            w.null();
        }
        // Referents: object 2's, then object 1's.
        for (g, dn, val) in [([0xbb; 16], "CN=two,DC=x", b"B2".as_slice()), ([0xaa; 16], "CN=one,DC=x", b"A1".as_slice())] {
            dsname(&mut w, g, dn);
            w.u32(1);
            w.u32(0x0009_00dd);
            w.u32(1);
            w.pointer();
            w.u32(1);
            w.u32(val.len() as u32);
            w.pointer();
            w.u32(val.len() as u32);
            w.bytes(val);
        }
        w.align(4);
        w.u32(0);
        w.buf
    }

    #[test]
    fn decodes_a_two_object_reply_in_ndr_order() {
        let r = decode(&two_object_reply()).expect("decodes");
        assert_eq!(r.to, UsnVector { high_obj_update: 7, reserved: 0, high_prop_update: 7 });
        assert_eq!(r.objects.len(), 2);
        assert_eq!((r.objects[0].dn.as_str(), r.objects[0].guid), ("CN=one,DC=x", [0xaa; 16]));
        assert_eq!(r.objects[0].attrs, vec![(0x0009_00dd, vec![b"A1".to_vec()])]);
        assert_eq!(r.objects[1].dn, "CN=two,DC=x");
        assert_eq!(crate::drsr::prefix::attid_in(&r.prefix, crate::drsr::prefix::SAM_ACCOUNT_NAME), Some(0x0009_00dd));
    }

    #[test]
    fn a_truncated_reply_is_an_error_not_a_panic() {
        assert!(decode(&[6, 0, 0, 0, 6, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[]).is_err());
    }

    /// A DC's reply is untrusted input: cut anywhere, or with any byte changed, it decodes or
    /// fails, and never panics or asks for more memory than it is long.
    #[test]
    fn damaged_replies_never_panic() {
        let good = two_object_reply();
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + (x % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % b.len() as u64) as usize;
                b[at] = (x >> 32) as u8;
            }
            let _ = decode(&b);
        }
        // A count of four billion objects in a short reply.
        let mut b = good.clone();
        let at = 112; // after the header, both USN vectors (8-aligned), and four more fields
        assert_eq!(b[at..at + 4], 2u32.to_le_bytes(), "num_objects is where the test thinks");
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = decode(&b);
    }
}
