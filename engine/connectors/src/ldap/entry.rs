//! A search result entry read straight into idflow's attributes: from ldap3's tree of it
//! (deltas, DirSync, ranges), or from the bytes received (the full import, see `wire`).
//!
//! ldap3's `SearchEntry::construct` builds hash maps and copies every value before idflow
//! builds its own map from them; an import of 100,000 entries spent a tenth of its reading
//! thread there. Here each value's bytes become its text without a further copy.
use super::wire::ber::Reader;
use idflow_core::{Attrs, Value};
use ldap3::asn1::StructureTag;

/// A directory entry: its DN and its attributes, each value text, or bytes (see [`decode`]).
pub(super) struct Entry {
    pub dn: String,
    pub attrs: Attrs,
}

/// An attribute's values: bytes when the attribute is `binary` or when any value is not UTF-8
/// (then all of them, as the server sent them), else text. `None` for a value that is not an
/// octet string. One vector, each value's bytes kept as they came.
fn values(set: impl ExactSizeIterator<Item = Option<Vec<u8>>>, binary: bool) -> Option<Vec<Value>> {
    let mut out = Vec::with_capacity(set.len());
    let mut text = !binary;
    for b in set {
        let b = b?;
        if !text {
            out.push(Value::Bin(b));
            continue;
        }
        match String::from_utf8(b) {
            Ok(s) => out.push(Value::Str(s)),
            Err(e) => {
                text = false;
                for v in out.iter_mut() {
                    if let Value::Str(s) = v {
                        *v = Value::Bin(std::mem::take(s).into_bytes());
                    }
                }
                out.push(Value::Bin(e.into_bytes()));
            }
        }
    }
    Some(out)
}

/// Whether `name` (`member;range=0-1499` or `userCertificate;binary` is the attribute before
/// its options) is among the attributes kept as bytes.
pub(super) fn is_binary(name: &str, binary: &[String]) -> bool {
    let base = name.split(';').next().unwrap_or(name);
    binary.iter().any(|b| b.eq_ignore_ascii_case(base))
}

/// Adds an attribute's values to what the entry has under that name.
fn add(attrs: &mut Attrs, name: String, vals: Vec<Value>) {
    match attrs.entry(name) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(vals);
        }
        std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(vals),
    }
}

fn bad(what: &str) -> String {
    format!("the server sent a search result entry idflow cannot read ({what})")
}

/// Decodes a SearchResultEntry (RFC 4511 4.5.2), a `ResultEntry`'s tag; `binary` names the
/// attributes kept as bytes. An entry that is not one (a protocol error on the server's side)
/// is an error naming what was wrong with it.
pub(super) fn decode(tag: StructureTag, binary: &[String]) -> Result<Entry, String> {
    if tag.id != 4 {
        return Err(bad(&format!("protocol operation {} where an entry (4) was expected", tag.id)));
    }
    let mut parts = tag.expect_constructed().ok_or_else(|| bad("not a sequence"))?.into_iter();
    let dn = parts.next().and_then(StructureTag::expect_primitive).ok_or_else(|| bad("no DN"))?;
    let dn = String::from_utf8(dn).map_err(|_| bad("a DN that is not UTF-8"))?;
    let mut attrs = Attrs::new();
    for a in parts.next().and_then(StructureTag::expect_constructed).ok_or_else(|| bad(&format!("no attribute list for {dn}")))? {
        let malformed = || bad(&format!("a malformed attribute of {dn}"));
        let mut a = a.expect_constructed().ok_or_else(malformed)?.into_iter();
        let name = a.next().and_then(StructureTag::expect_primitive).and_then(|n| String::from_utf8(n).ok()).ok_or_else(malformed)?;
        let bin = is_binary(&name, binary);
        let vals = a
            .next()
            .and_then(StructureTag::expect_constructed)
            .and_then(|set| values(set.into_iter().map(StructureTag::expect_primitive), bin))
            .ok_or_else(malformed)?;
        add(&mut attrs, name, vals);
    }
    Ok(Entry { dn, attrs })
}

/// Decodes a SearchResultEntry's contents as received (RFC 4511 4.5.2), as [`decode`] does
/// ldap3's tree of it, reading each value in place and copying it once.
pub(super) fn decode_ber(body: &[u8], binary: &[String]) -> Result<Entry, String> {
    let mut parts = Reader::new(body);
    let dn = parts.expect(0x04).ok_or_else(|| bad("no DN"))?;
    let dn = std::str::from_utf8(dn).map_err(|_| bad("a DN that is not UTF-8"))?.to_string();
    let list = parts.expect(0x30).ok_or_else(|| bad(&format!("no attribute list for {dn}")))?;
    let mut list = Reader::new(list);
    let mut attrs = Attrs::new();
    while !list.is_empty() {
        let malformed = || bad(&format!("a malformed attribute of {dn}"));
        let mut a = Reader::new(list.expect(0x30).ok_or_else(malformed)?);
        let name = a.expect(0x04).and_then(|n| std::str::from_utf8(n).ok()).ok_or_else(malformed)?;
        let set = a.expect(0x31).ok_or_else(malformed)?;
        let mut r = Reader::new(set);
        let mut count = 0;
        while r.next().is_some() {
            count += 1;
        }
        if !r.is_empty() {
            return Err(malformed());
        }
        let mut r = Reader::new(set);
        let each = (0..count).map(|_| match r.next() {
            Some((0x04, v)) => Some(v.to_vec()),
            _ => None,
        });
        let vals = values(each, is_binary(name, binary)).ok_or_else(malformed)?;
        add(&mut attrs, name.to_string(), vals);
    }
    Ok(Entry { dn, attrs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{TagClass, PL};

    fn prim(id: u64, v: &[u8]) -> StructureTag {
        StructureTag { class: TagClass::Universal, id, payload: PL::P(v.to_vec()) }
    }
    fn cons(class: TagClass, id: u64, v: Vec<StructureTag>) -> StructureTag {
        StructureTag { class, id, payload: PL::C(v) }
    }
    fn attr(name: &str, vals: &[&[u8]]) -> StructureTag {
        let set = cons(TagClass::Universal, 17, vals.iter().map(|v| prim(4, v)).collect());
        cons(TagClass::Universal, 16, vec![prim(4, name.as_bytes()), set])
    }
    fn entry(dn: &str, attrs: Vec<StructureTag>) -> StructureTag {
        cons(TagClass::Application, 4, vec![prim(4, dn.as_bytes()), cons(TagClass::Universal, 16, attrs)])
    }

    /// `tag` decoded from ldap3's tree and from its bytes as they cross the wire: the same
    /// entry, or the same error.
    fn decode(tag: StructureTag, binary: &[String]) -> Result<Entry, String> {
        let mut bytes = bytes::BytesMut::new();
        ldap3::asn1::write::encode_into(&mut bytes, tag.clone()).expect("encoded");
        let (op, body) = Reader::new(&bytes).next().expect("one element");
        let from_tree = super::decode(tag, binary);
        if op == 0x64 {
            let from_bytes = decode_ber(body, binary);
            match (&from_tree, &from_bytes) {
                (Ok(a), Ok(b)) => assert!(a.dn == b.dn && a.attrs == b.attrs, "{:?} against {:?}", a.attrs, b.attrs),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("the decoders disagree: {:?} against {:?}", from_tree.as_ref().err(), from_bytes.as_ref().err()),
            }
        }
        from_tree
    }

    #[test]
    fn values_are_text_unless_binary_by_name_or_by_content() {
        let e = decode(
            entry(
                "uid=ada,ou=people",
                vec![
                    attr("cn", &[b"Ada", "Åda".as_bytes()]),
                    attr("jpegPhoto", &[b"\xff\xd8", b"text"]),
                    attr("photo", &[b"text", b"\xff\xd8"]),
                    attr("objectGUID", &[b"abc"]),
                    attr("cn", &[b"Ada L"]),
                    attr("thumbnail;range=0-1", &[b"ab", b"cd"]),
                ],
            ),
            &["objectguid".into(), "thumbnail".into()],
        )
        .expect("an entry");
        assert_eq!(e.dn, "uid=ada,ou=people");
        let s = |v: &str| Value::Str(v.into());
        let b = |v: &[u8]| Value::Bin(v.to_vec());
        assert_eq!(e.attrs["cn"], vec![s("Ada"), s("Åda"), s("Ada L")]);
        assert_eq!(e.attrs["jpegPhoto"], vec![b(b"\xff\xd8"), b(b"text")]);
        assert_eq!(e.attrs["photo"], vec![b(b"text"), b(b"\xff\xd8")], "text read before the first bytes becomes bytes too");
        assert_eq!(e.attrs["objectGUID"], vec![b(b"abc")]);
        assert_eq!(e.attrs["thumbnail;range=0-1"], vec![b(b"ab"), b(b"cd")], "binary by its name before the range");
    }

    #[test]
    fn a_malformed_entry_is_an_error_naming_what_is_wrong() {
        let no_list = cons(TagClass::Application, 4, vec![prim(4, b"uid=x")]);
        assert!(decode(no_list, &[]).err().is_some_and(|m| m.contains("no attribute list for uid=x")));
        let bad_dn = cons(TagClass::Application, 4, vec![prim(4, b"\xff"), cons(TagClass::Universal, 16, vec![])]);
        assert!(decode(bad_dn, &[]).err().is_some_and(|m| m.contains("not UTF-8")));
        let reference = cons(TagClass::Application, 19, vec![]);
        assert!(decode(reference, &[]).is_err());
        let flat = entry("uid=y", vec![prim(4, b"cn")]);
        assert!(decode(flat, &[]).err().is_some_and(|m| m.contains("malformed attribute of uid=y")));
    }
}
