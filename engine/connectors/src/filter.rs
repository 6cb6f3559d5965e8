//! LDAP search filters (RFC 4515), parsed and matched against attributes in memory:
//! how the `ldif` and `file` connectors sort objects into object types.
use idflow_core::{Attrs, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equal(String, String),
    Present(String),
    Substring { attr: String, initial: Option<String>, any: Vec<String>, fin: Option<String> },
    GreaterOrEqual(String, String),
    LessOrEqual(String, String),
    Approx(String, String),
}

/// Parses a filter; the error says at which character it went wrong.
pub(crate) fn parse(text: &str) -> Result<Filter, String> {
    let t = text.trim();
    let chars: Vec<char> = t.chars().collect();
    let mut p = Parser { c: &chars, i: 0 };
    let f = if chars.first() == Some(&'(') { p.filter()? } else { p.item(chars.len())? };
    if p.i != chars.len() {
        return Err(format!("unexpected {:?} at position {} of filter {t:?}", chars[p.i], p.i + 1));
    }
    Ok(f)
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at position {} of filter {:?}", self.i + 1, self.c.iter().collect::<String>())
    }

    fn filter(&mut self) -> Result<Filter, String> {
        if self.c.get(self.i) != Some(&'(') {
            return Err(self.err("expected '('"));
        }
        self.i += 1;
        let f = match self.c.get(self.i) {
            Some('&') => {
                self.i += 1;
                Filter::And(self.list()?)
            }
            Some('|') => {
                self.i += 1;
                Filter::Or(self.list()?)
            }
            Some('!') => {
                self.i += 1;
                Filter::Not(Box::new(self.filter()?))
            }
            Some(_) => {
                let start = self.i;
                let mut depth = 0;
                while let Some(&ch) = self.c.get(self.i) {
                    if ch == ')' && depth == 0 {
                        break;
                    }
                    if ch == '(' {
                        depth += 1;
                    }
                    self.i += 1;
                }
                let end = self.i;
                self.i = start;
                let f = self.item(end)?;
                self.i = end;
                f
            }
            None => return Err(self.err("unexpected end")),
        };
        if self.c.get(self.i) != Some(&')') {
            return Err(self.err("expected ')'"));
        }
        self.i += 1;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, String> {
        let mut v = Vec::new();
        while self.c.get(self.i) == Some(&'(') {
            v.push(self.filter()?);
        }
        Ok(v)
    }

    fn item(&mut self, end: usize) -> Result<Filter, String> {
        let s: String = self.c[self.i..end].iter().collect();
        let (attr, op, value) = if let Some(p) = s.find(">=") {
            (&s[..p], ">=", &s[p + 2..])
        } else if let Some(p) = s.find("<=") {
            (&s[..p], "<=", &s[p + 2..])
        } else if let Some(p) = s.find("~=") {
            (&s[..p], "~=", &s[p + 2..])
        } else if let Some(p) = s.find('=') {
            (&s[..p], "=", &s[p + 1..])
        } else {
            return Err(self.err("expected an attribute=value test"));
        };
        let attr = attr.trim().to_string();
        if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.') {
            return Err(self.err(&format!("bad attribute name {attr:?}")));
        }
        self.i = end;
        Ok(match op {
            ">=" => Filter::GreaterOrEqual(attr, unescape(value)?),
            "<=" => Filter::LessOrEqual(attr, unescape(value)?),
            "~=" => Filter::Approx(attr, unescape(value)?),
            _ if value == "*" => Filter::Present(attr),
            _ if value.contains('*') => {
                let parts: Vec<&str> = value.split('*').collect();
                let last = parts.len() - 1;
                let mut any = Vec::new();
                let mut initial = None;
                let mut fin = None;
                for (k, part) in parts.iter().enumerate() {
                    if part.is_empty() {
                        continue;
                    }
                    let u = unescape(part)?;
                    if k == 0 {
                        initial = Some(u);
                    } else if k == last {
                        fin = Some(u);
                    } else {
                        any.push(u);
                    }
                }
                Filter::Substring { attr, initial, any, fin }
            }
            _ => Filter::Equal(attr, unescape(value)?),
        })
    }
}

fn unescape(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let h = v.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in filter value {v:?}"))?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| format!("bad escape \\{h} in filter value {v:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("filter value {v:?} is not UTF-8"))
}

/// The text values of attribute `name` (its name in any case).
fn texts<'a>(attrs: &'a Attrs, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    attrs.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).flat_map(|(_, v)| v.iter()).filter_map(Value::as_str)
}

/// [`texts`], lower-cased.
fn values<'a>(attrs: &'a Attrs, name: &'a str) -> impl Iterator<Item = String> + 'a {
    texts(attrs, name).map(str::to_lowercase)
}

/// `a` and `b` the same, case aside (lower-cased as [`str::to_lowercase`] does; ASCII text,
/// most of what filters test, compared as it is, without lower-cased copies).
fn same_text(a: &str, b: &str) -> bool {
    match a.is_ascii() && b.is_ascii() {
        true => a.eq_ignore_ascii_case(b),
        false => a.to_lowercase() == b.to_lowercase(),
    }
}

impl Filter {
    pub(crate) fn attribute_names(&self, out: &mut Vec<String>) {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| f.attribute_names(out)),
            Filter::Not(f) => f.attribute_names(out),
            Filter::Equal(a, _)
            | Filter::Present(a)
            | Filter::GreaterOrEqual(a, _)
            | Filter::LessOrEqual(a, _)
            | Filter::Approx(a, _)
            | Filter::Substring { attr: a, .. } => out.push(a.clone()),
        }
    }

    /// Matches case-insensitively, as directories compare most attributes.
    pub(crate) fn matches(&self, attrs: &Attrs) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches(attrs)),
            Filter::Or(v) => v.iter().any(|f| f.matches(attrs)),
            Filter::Not(f) => !f.matches(attrs),
            Filter::Present(a) => attrs.iter().any(|(k, v)| k.eq_ignore_ascii_case(a) && !v.is_empty()),
            Filter::Equal(a, x) | Filter::Approx(a, x) => texts(attrs, a).any(|v| same_text(v, x)),
            Filter::GreaterOrEqual(a, x) => cmp_any(attrs, a, x, |o| o.is_ge()),
            Filter::LessOrEqual(a, x) => cmp_any(attrs, a, x, |o| o.is_le()),
            Filter::Substring { attr, initial, any, fin } => values(attrs, attr).any(|v| {
                let mut rest = v.as_str();
                if let Some(i) = initial {
                    let i = i.to_lowercase();
                    match rest.strip_prefix(i.as_str()) {
                        Some(r) => rest = r,
                        None => return false,
                    }
                }
                for a in any {
                    let a = a.to_lowercase();
                    match rest.find(a.as_str()) {
                        Some(p) => rest = &rest[p + a.len()..],
                        None => return false,
                    }
                }
                match fin {
                    Some(f) => rest.ends_with(f.to_lowercase().as_str()),
                    None => true,
                }
            }),
        }
    }
}

fn cmp_any(attrs: &Attrs, a: &str, x: &str, ok: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    let x = x.to_lowercase();
    values(attrs, a).any(|v| match (v.parse::<i64>(), x.parse::<i64>()) {
        (Ok(n), Ok(m)) => ok(n.cmp(&m)),
        _ => ok(v.as_str().cmp(x.as_str())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, &[&str])]) -> Attrs {
        pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| Value::from(*s)).collect())).collect()
    }

    #[test]
    fn matches_boolean_and_substring() {
        let o = obj(&[("objectClass", &["top", "inetOrgPerson"]), ("cn", &["Ada Lovelace"]), ("uidNumber", &["1500"])]);
        assert!(parse("(objectClass=inetorgperson)").expect("p").matches(&o));
        assert!(parse("objectClass=inetOrgPerson").expect("p").matches(&o));
        assert!(parse("(&(objectClass=inetOrgPerson)(cn=*))").expect("p").matches(&o));
        assert!(!parse("(&(objectClass=inetOrgPerson)(!(cn=ada*)))").expect("p").matches(&o));
        assert!(parse("(|(objectClass=group)(cn=*love*))").expect("p").matches(&o));
        assert!(parse("(cn=A*ce)").expect("p").matches(&o));
        assert!(!parse("(cn=*ace)").expect("p").matches(&obj(&[("cn", &["Ada Lovelacex"])])));
        assert!(parse("(uidNumber>=1000)").expect("p").matches(&o));
        assert!(!parse("(uidNumber<=999)").expect("p").matches(&o));
        assert!(parse(r"(cn=Ada\20Lovelace)").expect("p").matches(&o));
        let jorg = obj(&[("CN", &["Jörg Åberg"]), ("mail", &[])]);
        assert!(parse("(cn=JÖRG åBERG)").expect("p").matches(&jorg), "case aside beyond ASCII too");
        assert!(!parse("(cn=Jorg Aberg)").expect("p").matches(&jorg));
        assert!(parse("(CN=*)").expect("p").matches(&jorg));
        assert!(!parse("(mail=*)").expect("p").matches(&jorg), "an attribute without values is not present");
    }

    #[test]
    fn errors_name_the_position() {
        let e = parse("(&(objectClass=x)").expect_err("unbalanced");
        assert!(e.contains("position"), "{e}");
        assert!(parse("(cn)").is_err());
        assert!(parse("(cn=a))").is_err());
    }
}
