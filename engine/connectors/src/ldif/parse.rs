//! RFC 2849 LDIF: content records and change records, folded lines, base64 values, comments.
//! Errors carry the line number.
use base64::Engine as _;
use idflow_core::Value;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Record {
    /// A content record: an entry as it is.
    Entry { dn: String, attrs: Vec<(String, Value)>, line: usize },
    /// A change record (`changetype:`), as delta files carry them.
    Change { dn: String, change: Change, line: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    Add(Vec<(String, Value)>),
    Delete,
    Modify(Vec<Modification>),
    ModRdn { new_rdn: String, delete_old_rdn: bool, new_superior: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ModKind {
    Add,
    Delete,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Modification {
    pub kind: ModKind,
    pub attr: String,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LdifError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LdifError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LdifError {}

/// Lines of LDIF without their line breaks, or why the next one could not be read.
type Lines<'a> = Box<dyn Iterator<Item = Result<String, LdifError>> + 'a>;

/// Iterates the records of an LDIF text, reading its lines as it needs them. `binary` names
/// attributes kept as bytes even when they happen to be valid UTF-8 (objectGUID, objectSid, ...).
pub(super) struct Reader<'a> {
    lines: std::iter::Enumerate<Lines<'a>>,
    binary: Vec<String>,
    first: bool,
}

impl<'a> Reader<'a> {
    /// Records of a text held in memory.
    #[cfg(test)]
    pub(super) fn new(text: &'a str, binary: &[String]) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Reader::over(Box::new(text.lines().map(|l| Ok(l.to_string()))), binary)
    }

    /// Records of the lines `lines` gives (a [`super::source::Source`] reads a file).
    pub(super) fn over(lines: Lines<'a>, binary: &[String]) -> Self {
        Reader { lines: lines.enumerate(), binary: binary.iter().map(|b| b.to_ascii_lowercase()).collect(), first: true }
    }

    /// The next record's logical lines (unfolded), each with its 1-based starting line number.
    fn next_block(&mut self) -> Option<Result<Vec<(usize, String)>, LdifError>> {
        let mut block: Vec<(usize, String)> = Vec::new();
        let mut in_comment = false;
        for (n, raw) in self.lines.by_ref() {
            let mut raw = match raw {
                Ok(raw) => raw,
                Err(e) => return Some(Err(e)),
            };
            if raw.ends_with('\r') {
                raw.pop();
            }
            if raw.is_empty() {
                if block.is_empty() {
                    in_comment = false;
                    continue;
                }
                break;
            }
            if let Some(cont) = raw.strip_prefix(' ') {
                if in_comment {
                    continue;
                }
                if let Some(last) = block.last_mut() {
                    last.1.push_str(cont);
                    continue;
                }
            }
            if raw.starts_with('#') {
                in_comment = true;
                continue;
            }
            in_comment = false;
            // The line read is kept as it is (not copied): most are a logical line whole.
            block.push((n + 1, raw));
        }
        if block.is_empty() {
            None
        } else {
            Some(Ok(block))
        }
    }

    /// Is `attr` one of those kept as bytes? (Compared without making its name lower case:
    /// a directory of a million entries has about twenty million values.)
    fn is_binary(&self, attr: &str) -> bool {
        self.binary.iter().any(|b| b.eq_ignore_ascii_case(attr))
    }

    fn value(&self, line: usize, attr: &str, rest: &str) -> Result<Value, LdifError> {
        if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| LdifError { line, message: format!("attribute {attr:?}: bad base64 value ({e})") })?;
            if self.is_binary(attr) {
                return Ok(Value::Bin(bytes));
            }
            Ok(match String::from_utf8(bytes) {
                Ok(s) => Value::Str(s),
                Err(e) => Value::Bin(e.into_bytes()),
            })
        } else if rest.starts_with('<') {
            Err(LdifError { line, message: format!("attribute {attr:?}: URL values (:<) are not supported") })
        } else {
            let v = rest.strip_prefix(' ').unwrap_or(rest).trim_start_matches(' ');
            if self.is_binary(attr) {
                return Ok(Value::Bin(v.as_bytes().to_vec()));
            }
            Ok(Value::Str(v.to_string()))
        }
    }

    fn split_line(line: usize, l: &str) -> Result<(String, &str), LdifError> {
        let colon = l.find(':').ok_or_else(|| LdifError { line, message: format!("expected 'attribute: value', got {l:?}") })?;
        let name = &l[..colon];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.') {
            return Err(LdifError { line, message: format!("bad attribute name {name:?}") });
        }
        // ";binary" is a transfer option, not part of the name.
        let name = name.strip_suffix(";binary").unwrap_or(name);
        Ok((name.to_string(), &l[colon + 1..]))
    }

    fn parse_block(&self, block: Vec<(usize, String)>) -> Result<Record, LdifError> {
        let mut it = block.into_iter().peekable();
        let (line, first) = it.next().ok_or(LdifError { line: 0, message: "empty record".into() })?;
        let (name, rest) = Self::split_line(line, &first)?;
        if !name.eq_ignore_ascii_case("dn") {
            return Err(LdifError { line, message: format!("a record must start with 'dn:', got {name:?}") });
        }
        let dn = match self.value(line, "dn", rest)? {
            Value::Str(s) => s,
            _ => return Err(LdifError { line, message: "the DN is not UTF-8".into() }),
        };
        if !dn.is_empty() {
            idflow_core::dn::parse(&dn).map_err(|e| LdifError { line, message: format!("bad DN: {e}") })?;
        }
        let mut attrs = Vec::new();
        let mut changetype: Option<String> = None;
        while let Some((l, text)) = it.next() {
            let (name, rest) = Self::split_line(l, &text)?;
            if name.eq_ignore_ascii_case("control") {
                continue;
            }
            if name.eq_ignore_ascii_case("changetype") && attrs.is_empty() && changetype.is_none() {
                changetype = Some(rest.trim().to_ascii_lowercase());
                if changetype.as_deref() == Some("modify") {
                    return Ok(Record::Change { dn, change: Change::Modify(self.modifications(&mut it)?), line });
                }
                continue;
            }
            let v = self.value(l, &name, rest)?;
            attrs.push((name, v));
        }
        let text = |v: &Value| v.as_str().map(str::to_string);
        match changetype.as_deref() {
            None => Ok(Record::Entry { dn, attrs, line }),
            Some("add") => Ok(Record::Change { dn, change: Change::Add(attrs), line }),
            Some("delete") => {
                if !attrs.is_empty() {
                    return Err(LdifError { line, message: "a delete record has no attributes".into() });
                }
                Ok(Record::Change { dn, change: Change::Delete, line })
            }
            Some("modrdn") | Some("moddn") => {
                let get = |n: &str| attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).and_then(|(_, v)| text(v));
                let new_rdn = get("newrdn").ok_or(LdifError { line, message: "modrdn without newrdn".into() })?;
                let delete_old_rdn = get("deleteoldrdn").map(|v| v.trim() == "1").unwrap_or(true);
                Ok(Record::Change { dn, change: Change::ModRdn { new_rdn, delete_old_rdn, new_superior: get("newsuperior") }, line })
            }
            Some(other) => Err(LdifError { line, message: format!("unknown changetype {other:?}") }),
        }
    }

    fn modifications(&self, it: &mut impl Iterator<Item = (usize, String)>) -> Result<Vec<Modification>, LdifError> {
        let mut mods = Vec::new();
        while let Some((l, text)) = it.next() {
            if text == "-" {
                continue;
            }
            let (op, rest) = Self::split_line(l, &text)?;
            let kind = match op.to_ascii_lowercase().as_str() {
                "add" => ModKind::Add,
                "delete" => ModKind::Delete,
                "replace" => ModKind::Replace,
                o => return Err(LdifError { line: l, message: format!("expected add:, delete: or replace:, got {o:?}") }),
            };
            let attr = rest.trim().to_string();
            let mut values = Vec::new();
            for (vl, vt) in it.by_ref() {
                if vt == "-" {
                    break;
                }
                let (name, vrest) = Self::split_line(vl, &vt)?;
                if !name.eq_ignore_ascii_case(&attr) {
                    return Err(LdifError { line: vl, message: format!("value of {name:?} inside a modification of {attr:?}") });
                }
                values.push(self.value(vl, &name, vrest)?);
            }
            mods.push(Modification { kind, attr, values });
        }
        Ok(mods)
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<Record, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let block = match self.next_block()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            if self.first {
                self.first = false;
                if block.len() == 1 && block[0].1.to_ascii_lowercase().starts_with("version:") {
                    let v = block[0].1[8..].trim();
                    if v != "1" {
                        return Some(Err(LdifError { line: block[0].0, message: format!("unsupported LDIF version {v:?}") }));
                    }
                    continue;
                }
                if block[0].1.to_ascii_lowercase().starts_with("version:") {
                    let rest = block[1..].to_vec();
                    return Some(self.parse_block(rest));
                }
            }
            return Some(self.parse_block(block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "version: 1\n\n# a comment\n#  folded comment\n dn: not really\ndn: uid=ada,ou=People,\n dc=example,dc=org\nobjectClass: inetOrgPerson\ncn:: SsO2cmcgTcO8bGxlcg==\ndescription: line one and\n  two\nmail:\n\ndn: uid=b,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: b@x.org\n-\nadd: member\nmember: uid=a,dc=x\nmember: uid=c,dc=x\n-\ndelete: phone\n-\n\ndn: uid=c,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=c2\ndeleteoldrdn: 1\nnewsuperior: ou=x,dc=example,dc=org\n\ndn: uid=d,dc=example,dc=org\nchangetype: delete\n";

    #[test]
    fn reads_entries_and_changes() {
        let recs: Vec<_> = Reader::new(SAMPLE, &[]).collect::<Result<_, _>>().expect("parses");
        assert_eq!(recs.len(), 4);
        match &recs[0] {
            Record::Entry { dn, attrs, line } => {
                assert_eq!(dn, "uid=ada,ou=People,dc=example,dc=org");
                assert_eq!(*line, 6);
                assert_eq!(attrs[1], ("cn".to_string(), Value::from("Jörg Müller")));
                assert_eq!(attrs[2].1, Value::from("line one and two"));
                assert_eq!(attrs[3].1, Value::from(""));
            }
            other => panic!("unexpected {other:?}"),
        }
        match &recs[1] {
            Record::Change { change: Change::Modify(m), .. } => {
                assert_eq!(m.len(), 3);
                assert_eq!(m[1].values.len(), 2);
                assert_eq!(m[2].kind, ModKind::Delete);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(&recs[2], Record::Change { change: Change::ModRdn { delete_old_rdn: true, .. }, .. }));
        assert!(matches!(&recs[3], Record::Change { change: Change::Delete, .. }));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let bad = "dn: uid=a,dc=x\ncn: a\nthis is not ldif\n";
        let e = Reader::new(bad, &[]).next().expect("one").expect_err("bad");
        assert_eq!(e.line, 3);
        let bad64 = "\ndn: uid=a,dc=x\ncn:: !!!\n";
        assert_eq!(Reader::new(bad64, &[]).next().expect("one").expect_err("bad").line, 3);
        let baddn = "dn: uid=a,,dc=x\n";
        assert!(Reader::new(baddn, &[]).next().expect("one").expect_err("bad").message.contains("bad DN"));
        let nodn = "cn: a\n";
        assert!(Reader::new(nodn, &[]).next().expect("one").is_err());
    }

    #[test]
    fn binary_attributes_stay_bytes() {
        let t = "dn: cn=a,dc=x\nobjectGUID:: YWJj\n";
        let r = Reader::new(t, &["objectGUID".into()]).next().expect("one").expect("ok");
        match r {
            Record::Entry { attrs, .. } => assert_eq!(attrs[0].1, Value::Bin(b"abc".to_vec())),
            other => panic!("unexpected {other:?}"),
        }
    }
}
