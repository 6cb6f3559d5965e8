//! A search result entry read straight into idflow's attributes.
//!
//! ldap3's `SearchEntry::construct` builds hash maps and copies every value before idflow
//! builds its own map from them; an import of 100,000 entries spent a tenth of its reading
//! thread there. Here each value's bytes become its text without a copy.
use idflow_core::{Attrs, Value};
use ldap3::asn1::StructureTag;

/// A directory entry: its DN and its attributes, each value text, or bytes (see [`decode`]).
pub(super) struct Entry {
    pub dn: String,
    pub attrs: Attrs,
}

/// An attribute's values: bytes when the attribute is `binary` or when any value is not UTF-8
/// (then all of them, as ldap3 has them), else text. `None` for a value that is not an octet
/// string. One vector, each value's bytes kept as they came.
fn values(set: Vec<StructureTag>, binary: bool) -> Option<Vec<Value>> {
    let mut out = Vec::with_capacity(set.len());
    let mut text = !binary;
    for t in set {
        let b = t.expect_primitive()?;
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

/// Decodes a SearchResultEntry (RFC 4511 4.5.2), a `ResultEntry`'s tag; `binary` names the
/// attributes kept as bytes. An entry that is not one (a protocol error on the server's side)
/// is an error naming what was wrong with it.
pub(super) fn decode(tag: StructureTag, binary: &[String]) -> Result<Entry, String> {
    let bad = |what: &str| format!("the server sent a search result entry idflow cannot read ({what})");
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
        // Binary by the attribute's own name: `member;range=0-1499` (AD's ranges) or
        // `userCertificate;binary` is the attribute before its options.
        let base = name.split(';').next().unwrap_or(&name);
        let is_binary = binary.iter().any(|b| b.eq_ignore_ascii_case(base));
        let vals = a.next().and_then(StructureTag::expect_constructed).and_then(|set| values(set, is_binary)).ok_or_else(malformed)?;
        match attrs.entry(name) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(vals);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(vals),
        }
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
