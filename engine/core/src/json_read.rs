//! Attributes read back from the JSON the database keeps, without serde_json's calls per value
//! and its intermediate `serde_json::Value` per value: the text [`crate::attrs_to_json`] writes
//! (compact, no escapes in most strings) is read in one pass.
//!
//! Only that form is read here: anything else (whitespace, an escape, a number where a value is
//! expected, a value object of another shape) makes [`Reader`] give up, and the caller reads
//! the text with serde_json instead, which reads it as it always has or names what is wrong.
//! So what is read here is exactly what serde_json would read (the tests compare the two).
use crate::value::{Attrs, Value};
use base64::Engine as _;

/// A position in JSON text being read. Each method reads one thing at the position and moves
/// past it, or gives `None` (the text is not in the form read here; where the reader then
/// stands does not matter, it is dropped).
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text, at: 0 }
    }

    /// All of the text has been read.
    pub fn at_end(&self) -> bool {
        self.at == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Reads `lit` exactly.
    pub fn lit(&mut self, lit: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.at..)?;
        rest.starts_with(lit.as_bytes()).then(|| self.at += lit.len())
    }

    /// Reads `c`, if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        let next = self.peek() == Some(c);
        self.at += usize::from(next);
        next
    }

    /// A string with nothing escaped in it (and no control character, which JSON does not
    /// allow unescaped), borrowed from the text.
    pub fn str(&mut self) -> Option<&'a str> {
        self.lit("\"")?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let len = bytes.get(start..)?.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are at ASCII bytes, so on character boundaries.
        self.text.get(start..start + len)
    }

    /// An integer as JSON writes one that fits an `i64`: no leading zero, no `-0` (serde_json
    /// reads that as a float), no fraction or exponent.
    pub fn int(&mut self) -> Option<i64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let digits = start + usize::from(bytes.get(start) == Some(&b'-'));
        let len = bytes.get(digits..)?.iter().position(|c| !c.is_ascii_digit()).unwrap_or(bytes.len() - digits);
        let (negative, zero_first) = (digits > start, bytes.get(digits) == Some(&b'0'));
        // No digit; a leading zero (`01`); or `-0`.
        if len == 0 || (zero_first && (len > 1 || negative)) {
            return None;
        }
        if matches!(bytes.get(digits + len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at = digits + len;
        self.text.get(start..self.at)?.parse().ok()
    }

    /// One attribute value: a string, `{"bin":"base64"}` or `{"ref":id}`.
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => Some(Value::Str(self.str()?.to_string())),
            b'{' if self.lit(r#"{"bin":"#).is_some() => {
                let b = base64::engine::general_purpose::STANDARD.decode(self.str()?).ok()?;
                self.lit("}")?;
                Some(Value::Bin(b))
            }
            b'{' if self.lit(r#"{"ref":"#).is_some() => {
                let r = self.int()?;
                self.lit("}")?;
                Some(Value::Ref(r))
            }
            _ => None,
        }
    }

    /// `[item,item,...]`, each read by `item`.
    pub fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.lit("[")?;
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b']') {
                return Some(out);
            }
            self.lit(",")?;
        }
    }

    /// Attributes: `{"name":[values],...}`. A name given twice keeps its last values, as
    /// serde_json reads a map.
    pub fn attrs(&mut self) -> Option<Attrs> {
        self.lit("{")?;
        if self.eat(b'}') {
            return Some(Attrs::new());
        }
        // The store writes names in order: the map is built from them at once (a sort that
        // finds them sorted, then nodes filled left to right), not searched and split for
        // each. Of names given twice the later stays, as with inserts (the sort is stable).
        let mut out = Vec::new();
        loop {
            let name = self.str()?.to_string();
            self.lit(":")?;
            let values = self.list(Self::value)?;
            out.push((name, values));
            if self.eat(b'}') {
                return Some(out.into_iter().collect());
            }
            self.lit(",")?;
        }
    }
}

/// Attributes in the form [`crate::attrs_to_json`] writes, all of `text`; `None`: the text is
/// not in that form (it may still be JSON serde_json reads).
pub(crate) fn attrs(text: &str) -> Option<Attrs> {
    let mut r = Reader::new(text);
    let a = r.attrs()?;
    r.at_end().then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs_to_json;

    fn serde(text: &str) -> Option<Attrs> {
        serde_json::from_str(text).ok()
    }

    /// What is read here is what serde_json reads; what is not, serde_json reads or refuses.
    #[test]
    fn reads_what_serde_json_reads() {
        let mut a = Attrs::new();
        a.insert("cn".into(), vec![Value::from("Jörg 😀"), Value::from("")]);
        a.insert("".into(), vec![]);
        a.insert("objectGUID".into(), vec![Value::Bin(vec![0, 1, 255]), Value::Bin(vec![])]);
        a.insert("manager".into(), vec![Value::Ref(0), Value::Ref(42), Value::Ref(-7), Value::Ref(i64::MAX), Value::Ref(i64::MIN)]);
        let text = attrs_to_json(&a);
        assert_eq!(attrs(&text), Some(a.clone()));
        assert_eq!(attrs("{}"), Some(Attrs::new()));
        // Read elsewhere (serde_json), or refused there too.
        for other in [
            r#"{"cn":["a\"b"]}"#,
            r#"{"c\u006e":["x"]}"#,
            r#"{ "cn":["x"]}"#,
            r#"{"cn":["x"] }"#,
            r#"{"cn":[1]}"#,
            r#"{"cn":[true]}"#,
            r#"{"cn":[null]}"#,
            r#"{"m":[{"ref":7,"x":1}]}"#,
            r#"{"m":[{"ref":07}]}"#,
            r#"{"m":[{"ref":-0}]}"#,
            r#"{"m":[{"ref":1.0}]}"#,
            r#"{"m":[{"ref":1e3}]}"#,
            r#"{"m":[{"ref":9223372036854775808}]}"#,
            r#"{"m":[{"ref":-9223372036854775809}]}"#,
            r#"{"m":[{"ref":-}]}"#,
            r#"{"b":[{"bin":"*"}]}"#,
            r#"{"b":[{"bin":"AAH/","x":1}]}"#,
            "{\"cn\":[\"a\u{1}\"]}",
            r#"{"cn":["x"]}x"#,
            r#"{"cn":["x"],}"#,
            r#"{"cn":["x",]}"#,
            r#"{"cn":["x"]"#,
            r#"{"cn":["x"#,
            r#"{"cn""#,
            "",
            "[]",
        ] {
            let fast = attrs(other);
            assert!(fast.is_none() || fast == serde(other), "{other}: {fast:?}");
        }
        // A name given twice keeps its last values in both.
        let twice = r#"{"cn":["a"],"cn":["b"]}"#;
        assert_eq!(attrs(twice), serde(twice));
        assert_eq!(attrs(twice).and_then(|a| a.get("cn").cloned()), Some(vec![Value::from("b")]));
        // Names out of order, and given twice apart from each other: as serde_json reads them.
        let unordered = r#"{"sn":["s"],"cn":["a"],"mail":["m"],"cn":["b"],"a":[],"sn":["t"],"cn":["c"]}"#;
        assert_eq!(attrs(unordered), serde(unordered));
    }

    /// Every text written for strings of every character at every position reads back as
    /// written, here or (escaped) through serde_json.
    #[test]
    fn every_character_reads_back() {
        for c in (0u8..=127).map(char::from).chain(['\u{80}', 'ÿ', 'é', '😀']) {
            for at in [0usize, 1, 7, 8, 9, 16] {
                let mut s = "a".repeat(at);
                s.push(c);
                let one = Attrs::from([(s.clone(), vec![Value::Str(s)])]);
                let text = attrs_to_json(&one);
                assert_eq!(crate::attrs_from_json(&text).expect("reads"), one, "{c:?} at {at}");
                if let Some(fast) = attrs(&text) {
                    assert_eq!(fast, one);
                }
            }
        }
    }

    /// Text cut anywhere, or with any one character changed into one of JSON's, is read here
    /// as serde_json reads it, or left to serde_json.
    #[test]
    fn damaged_text_is_read_as_serde_json_reads_it() {
        let mut a = Attrs::new();
        a.insert("cn".into(), vec![Value::from("Ada"), Value::from("B")]);
        a.insert("m".into(), vec![Value::Ref(-12), Value::Ref(305)]);
        a.insert("g".into(), vec![Value::Bin(vec![1, 2, 3, 4])]);
        let text = attrs_to_json(&a);
        let same = |t: &str| {
            let fast = attrs(t);
            assert!(fast.is_none() || fast == serde(t), "{t}: {fast:?}");
        };
        for cut in 0..text.len() {
            same(&text[..cut]);
        }
        for at in 0..text.len() {
            for c in ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '0', '1', '-', '.', 'e', 'x', 'A', '='] {
                let mut t = text.clone().into_bytes();
                t[at] = c as u8;
                if let Ok(t) = String::from_utf8(t) {
                    same(&t);
                }
                let mut t = text.clone();
                t.insert(at, c);
                same(&t);
            }
        }
    }

    #[test]
    fn integers_as_json_writes_them() {
        let int = |t: &str| {
            let mut r = Reader::new(t);
            r.int().filter(|_| r.at_end())
        };
        assert_eq!(int("0"), Some(0));
        assert_eq!(int("-12"), Some(-12));
        assert_eq!(int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(int("-9223372036854775808"), Some(i64::MIN));
        for bad in ["", "-", "-0", "00", "01", "+1", "1.5", "1e2", "9223372036854775808", "x"] {
            assert_eq!(int(bad), None, "{bad}");
        }
    }
}
