//! Distinguished names (RFC 4514): parsing with escapes, normalizing for comparison, escaping values.
//! Pure Rust, shared by the stdlib's directory functions, the connectors and the engine's
//! reference resolution.

/// One relative distinguished name: `attr=value` pairs (more than one when multi-valued with `+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    pub pairs: Vec<(String, String)>,
}

/// Why a DN could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(pub String);

impl std::fmt::Display for DnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnError {}

/// Parses a DN into RDNs, left (most specific) first. Values are unescaped.
pub fn parse(dn: &str) -> Result<Vec<Rdn>, DnError> {
    let mut rdns = Vec::new();
    if dn.trim().is_empty() {
        return Ok(rdns);
    }
    let chars: Vec<char> = dn.chars().collect();
    let mut i = 0;
    let mut pairs = Vec::new();
    loop {
        // attribute type
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            if chars[i] == ',' || chars[i] == '+' {
                return Err(DnError(format!("missing '=' in RDN at position {start} of {dn:?}")));
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(DnError(format!("missing '=' in RDN at position {start} of {dn:?}")));
        }
        let attr: String = chars[start..i].iter().collect::<String>().trim().to_string();
        if attr.is_empty() {
            return Err(DnError(format!("empty attribute type at position {start} of {dn:?}")));
        }
        i += 1; // '='
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_spaces = 0usize;
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                let mut b = [0u8; 4];
                value.extend_from_slice(chars[i].encode_utf8(&mut b).as_bytes());
                i += 1;
            }
            if i >= chars.len() {
                return Err(DnError(format!("unterminated quoted value in {dn:?}")));
            }
            i += 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
        } else {
            while i < chars.len() && chars[i] != ',' && chars[i] != '+' && chars[i] != ';' {
                let c = chars[i];
                if c == '\\' {
                    if i + 1 >= chars.len() {
                        return Err(DnError(format!("dangling '\\' at the end of {dn:?}")));
                    }
                    let n = chars[i + 1];
                    if n.is_ascii_hexdigit() && i + 2 < chars.len() && chars[i + 2].is_ascii_hexdigit() {
                        let h: String = [n, chars[i + 2]].iter().collect();
                        let byte = u8::from_str_radix(&h, 16).map_err(|e| DnError(e.to_string()))?;
                        value.push(byte);
                        i += 3;
                    } else {
                        let mut b = [0u8; 4];
                        value.extend_from_slice(n.encode_utf8(&mut b).as_bytes());
                        i += 2;
                    }
                    trailing_spaces = 0;
                    continue;
                }
                if c == ' ' {
                    trailing_spaces += 1;
                } else {
                    trailing_spaces = 0;
                }
                let mut b = [0u8; 4];
                value.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                i += 1;
            }
            value.truncate(value.len() - trailing_spaces);
        }
        let value = String::from_utf8(value).map_err(|_| DnError(format!("invalid UTF-8 escape in {dn:?}")))?;
        pairs.push((attr, value));
        if i >= chars.len() {
            rdns.push(Rdn { pairs: std::mem::take(&mut pairs) });
            break;
        }
        let sep = chars[i];
        i += 1;
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if sep != '+' {
            rdns.push(Rdn { pairs: std::mem::take(&mut pairs) });
        }
        if i >= chars.len() {
            return Err(DnError(format!("DN ends with a separator: {dn:?}")));
        }
    }
    Ok(rdns)
}

/// Escapes one attribute value for use in a DN (RFC 4514 section 2.4).
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let n = v.chars().count();
    for (idx, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (idx == 0 && (c == '#' || c == ' '))
            || (idx + 1 == n && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
        } else if special {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes RDNs back as a DN string with minimal escaping.
pub fn format(rdns: &[Rdn]) -> String {
    rdns.iter()
        .map(|r| r.pairs.iter().map(|(a, v)| format!("{a}={}", escape_value(v))).collect::<Vec<_>>().join("+"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A canonical form for comparing DNs: attribute types and values lower-cased, escapes resolved,
/// multi-valued RDNs sorted. Two DNs naming the same entry normalize equal.
pub fn normalize(dn: &str) -> Result<String, DnError> {
    let rdns = parse(dn)?;
    Ok(rdns
        .iter()
        .map(|r| {
            let mut p: Vec<String> =
                r.pairs.iter().map(|(a, v)| format!("{}={}", a.to_lowercase(), escape_value(&v.to_lowercase()))).collect();
            p.sort();
            p.join("+")
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// The form DNs are looked up and compared by: [`normalize`]d, or lower-cased text when the DN
/// does not parse.
pub fn norm(dn: &str) -> String {
    if plain(dn) {
        // What normalize would make of it: nothing to unescape, trim or sort.
        return dn.to_ascii_lowercase();
    }
    normalize(dn).unwrap_or_else(|_| dn.to_lowercase())
}

/// A DN whose normal form is its ASCII lower case: printable ASCII, one `=` per RDN, no
/// multi-valued RDNs, no character that is escaped or quoted, no space around a separator.
/// Most DNs are; [`norm`] takes this path for them (import and reference resolution
/// normalize every DN they meet).
fn plain(dn: &str) -> bool {
    let mut eq = 0;
    let mut prev = b',';
    for &c in dn.as_bytes() {
        match c {
            b'\\' | b'+' | b'"' | b';' | b'<' | b'>' | b'#' => return false,
            b'=' if eq > 0 || prev == b',' || prev == b' ' => return false,
            b'=' => eq += 1,
            b',' if eq != 1 || prev == b' ' || prev == b'=' => return false,
            b',' => eq = 0,
            b' ' if eq == 0 || prev == b'=' => return false,
            c if !(0x20..0x7f).contains(&c) => return false,
            _ => {}
        }
        prev = c;
    }
    eq == 1 && prev != b' ' && prev != b'='
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_path_agrees_with_normalize() {
        for dn in ["uid=u000001,ou=People,dc=example,dc=org", "CN=John Smith,OU=Sales,DC=Corp", "cn=a"] {
            assert!(plain(dn), "{dn}");
            assert_eq!(norm(dn), normalize(dn).expect("parses"), "{dn}");
        }
        for dn in [
            "cn=,dc=x",
            "cn=a ,dc=x",
            "cn= a,dc=x",
            "cn=a=b",
            "cn=a,,dc=x",
            "cn=a,",
            " cn=a",
            "c n=a",
            "=a",
            "cn=a+uid=b",
            "cn=J\\C3\\B6rg",
            "cn=Jörg",
        ] {
            assert!(!plain(dn), "{dn}");
        }
        // Every string of a small alphabet up to six characters: the same as the long way.
        let alphabet = ['a', 'B', '=', ',', ' ', '+', '\\', '#', '"'];
        let mut dn = Vec::new();
        fn all(dn: &mut Vec<char>, alphabet: &[char], left: usize) {
            let s: String = dn.iter().collect();
            assert_eq!(norm(&s), normalize(&s).unwrap_or_else(|_| s.to_lowercase()), "{s:?}");
            if left > 0 {
                for c in alphabet {
                    dn.push(*c);
                    all(dn, alphabet, left - 1);
                    dn.pop();
                }
            }
        }
        all(&mut dn, &alphabet, 6);
    }

    #[test]
    fn parses_escapes_and_plus() {
        let r = parse(r"cn=Smith\, John+uid=js,ou=R\2CD,dc=example,dc=org").expect("parses");
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].pairs, vec![("cn".into(), "Smith, John".into()), ("uid".into(), "js".into())]);
        assert_eq!(r[1].pairs[0].1, "R,D");
        assert_eq!(format(&r), r"cn=Smith\, John+uid=js,ou=R\,D,dc=example,dc=org");
    }

    #[test]
    fn normalizes_case_spaces_and_hex_escapes() {
        let a = normalize(r"CN=Jörg Müller, OU=People,DC=Example,DC=org").expect("a");
        let b = normalize(r"cn=j\C3\B6rg m\C3\BCller,ou=people,dc=example,dc=org").expect("b");
        assert_eq!(a, b);
        assert_eq!(normalize("uid=b+cn=a,dc=x").expect("c"), normalize("cn=a+uid=b,dc=x").expect("d"));
    }

    #[test]
    fn rejects_broken() {
        assert!(parse("cn").is_err());
        assert!(parse("cn=a,").is_err());
        assert!(parse("cn=a\\").is_err());
        assert!(parse("cn=\"open").is_err());
    }

    #[test]
    fn escapes_leading_hash_and_trailing_space() {
        assert_eq!(escape_value("#1 a "), "\\#1 a\\ ");
        assert_eq!(escape_value("a,b+c"), "a\\,b\\+c");
    }
}
