//! Attributes as the JSON the database keeps, written straight into one string.
//!
//! The same text serde_json writes for [`Attrs`] (the tests compare the two), without its
//! serializer's calls per value and its table look-up per byte: names and values are mostly
//! plain text, copied whole once a quick scan finds nothing to escape. A string that has
//! something to escape is written by serde_json itself, so escapes are exactly its own.
use crate::value::{Attrs, Value};
use base64::Engine as _;

/// Encodes attributes for the database: `{"name":["value",{"bin":"base64"},{"ref":7}],...}`.
pub fn attrs_to_json(a: &Attrs) -> String {
    let size: usize = a.iter().map(|(k, vs)| k.len() + 6 + vs.iter().map(value_size).sum::<usize>()).sum();
    let mut out = String::with_capacity(size + 2);
    out.push('{');
    for (i, (k, vs)) in a.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, k);
        out.push_str(":[");
        for (j, v) in vs.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            match v {
                Value::Str(s) => string(&mut out, s),
                Value::Bin(b) => {
                    out.push_str(r#"{"bin":""#);
                    base64::engine::general_purpose::STANDARD.encode_string(b, &mut out);
                    out.push_str(r#""}"#);
                }
                Value::Ref(r) => {
                    out.push_str(r#"{"ref":"#);
                    out.push_str(itoa::Buffer::new().format(*r));
                    out.push('}');
                }
            }
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// About what a value takes written: its text and quotes, or its base64, or its number.
fn value_size(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 3,
        Value::Bin(b) => b.len() * 4 / 3 + 14,
        Value::Ref(_) => 12,
    }
}

/// `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    if plain(s.as_bytes()) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json writes a string it is given; what it writes is JSON text, so UTF-8.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// Nothing in `b` to escape: no control character, quote or backslash. Eight bytes at a time
/// (a word's bytes tested together, as in "Bit Twiddling Hacks": a byte is zero, or below
/// `n` for `n` up to 128, exactly when the expression below is not zero).
fn plain(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().expect("chunks_exact gives 8 bytes"));
        if below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1) != 0 {
            return false;
        }
    }
    !words.remainder().iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(a: &Attrs) -> String {
        serde_json::to_string(a).expect("serde_json writes attributes")
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let mut a = Attrs::new();
        assert_eq!(attrs_to_json(&a), serde(&a));
        a.insert("cn".into(), vec![Value::from("Jörg"), Value::from("")]);
        a.insert("objectGUID".into(), vec![Value::Bin(vec![0, 1, 255]), Value::Bin(vec![])]);
        a.insert("manager".into(), vec![Value::Ref(42), Value::Ref(-7), Value::Ref(i64::MAX), Value::Ref(i64::MIN)]);
        a.insert("empty".into(), vec![]);
        a.insert("quote\"d".into(), vec![Value::from("a \"b\" \\ c\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} / é 😀")]);
        a.insert(
            "long".into(),
            vec![Value::from("x".repeat(15) + "\""), Value::from("y".repeat(16) + "\u{0}"), Value::from("z".repeat(33))],
        );
        assert_eq!(attrs_to_json(&a), serde(&a));
        for c in (0u8..=127).map(char::from).chain(['\u{80}', 'ÿ', 'é', '😀']) {
            for at in [0usize, 5, 7, 8, 9, 15, 16, 17, 31, 40] {
                let mut s = "a".repeat(at);
                s.push(c);
                s.push_str("tail");
                let one = Attrs::from([(s.clone(), vec![Value::Str(s)])]);
                assert_eq!(attrs_to_json(&one), serde(&one), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn reads_back() {
        let mut a = Attrs::new();
        a.insert("member".into(), vec![Value::Ref(3), Value::from("uid=x,dc=example")]);
        a.insert("photo".into(), vec![Value::Bin((0..=255).collect())]);
        assert_eq!(crate::attrs_from_json(&attrs_to_json(&a)).expect("reads"), a);
    }
}
