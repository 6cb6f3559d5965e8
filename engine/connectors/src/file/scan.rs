//! Reads the file's objects one at a time, each with where it sits in the file (its byte
//! offset, length and first line), so that neither import nor export holds the document whole:
//! a million objects make half a gigabyte of JSON.
use super::plain::Stop;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

/// Where one object's text is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub offset: u64,
    pub len: u64,
    /// The line its first character is on (1-based).
    pub line: usize,
    /// The line breaks inside it.
    pub newlines: usize,
}

/// What has gone by: bytes and line breaks read from the file.
#[derive(Default)]
struct Progress {
    bytes: Cell<u64>,
    newlines: Cell<usize>,
}

/// Counts what serde_json reads. It must wrap the buffered reader, not be wrapped by one:
/// serde_json reads a byte at a time, and looks one ahead only when it must (after an object's
/// closing brace it has read nothing more; after a number it has), so the count says where an
/// object ended.
struct Counting<R> {
    inner: R,
    seen: Rc<Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        self.seen.bytes.set(self.seen.bytes.get() + n as u64);
        self.seen.newlines.set(self.seen.newlines.get() + got.iter().filter(|b| **b == b'\n').count());
        Ok(n)
    }
}

/// Calls `each` with every object of `{"objects": [...]}` read from `reader`, in order, with its
/// span; other keys are ignored. A syntax error anywhere, or an error from `each`, ends it.
/// A file as idflow writes it is read fast (plain.rs); any other, or the rest of one that turns
/// out not to be, is read here with serde_json's streaming reader.
pub(super) fn objects<R: Read + Seek, E>(
    mut reader: R,
    each: &mut dyn FnMut(&RawValue, Span) -> std::result::Result<(), E>,
) -> std::result::Result<(), ScanError<E>> {
    let mut delivered = 0;
    match super::plain::objects(&mut reader, each, &mut delivered) {
        Ok(()) => return Ok(()),
        Err(Stop::Each(e)) => return Err(ScanError::Each(e)),
        Err(Stop::Io(e)) => return Err(ScanError::Json(serde_json::Error::io(e))),
        Err(Stop::NotPlain) => {}
    }
    reader.seek(SeekFrom::Start(0)).map_err(|e| ScanError::Json(serde_json::Error::io(e)))?;
    careful(std::io::BufReader::with_capacity(1 << 16, reader), each, delivered)
}

/// [`objects`] by serde_json's streaming reader, from the start; the first `skip` objects are
/// not given to `each` (the fast reading gave them).
fn careful<R: Read, E>(
    reader: R,
    each: &mut dyn FnMut(&RawValue, Span) -> std::result::Result<(), E>,
    skip: usize,
) -> std::result::Result<(), ScanError<E>> {
    let seen = Rc::new(Progress::default());
    let mut de = serde_json::Deserializer::from_reader(Counting { inner: reader, seen: Rc::clone(&seen) });
    let mut failed = None;
    let top = Top(List { seen: &seen, each, failed: &mut failed, skip });
    let r = top.deserialize(&mut de).and_then(|()| de.end());
    match (failed, r) {
        (Some(e), _) => Err(ScanError::Each(e)),
        (None, Err(e)) => Err(ScanError::Json(e)),
        (None, Ok(())) => Ok(()),
    }
}

/// Why [`objects`] stopped.
pub(super) enum ScanError<E> {
    /// The file is not the JSON it should be.
    Json(serde_json::Error),
    /// The callback refused an object.
    Each(E),
}

/// The document: a map whose "objects" [`List`] is read, everything else skipped.
struct Top<'a, E>(List<'a, E>);

impl<'de, E> DeserializeSeed<'de> for Top<'_, E> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, E> Visitor<'de> for Top<'_, E> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with a list of objects under \"objects\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut list = Some(self.0);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "objects" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match list.take() {
                Some(l) => map.next_value_seed(l)?,
                None => return Err(serde::de::Error::duplicate_field("objects")),
            }
        }
        match list {
            Some(_) => Err(serde::de::Error::missing_field("objects")),
            None => Ok(()),
        }
    }
}

struct List<'a, E> {
    seen: &'a Progress,
    each: &'a mut dyn FnMut(&RawValue, Span) -> std::result::Result<(), E>,
    failed: &'a mut Option<E>,
    /// The first objects, already given to `each` by the fast reading.
    skip: usize,
}

impl<'de, E> DeserializeSeed<'de> for List<'_, E> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, E> Visitor<'de> for List<'_, E> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let text = raw.get();
            // Only an object's end is known exactly (see `Counting`), and only objects belong here.
            if !text.ends_with('}') {
                return Err(serde::de::Error::invalid_type(serde::de::Unexpected::Other("a value that is not an object"), &self));
            }
            // Nothing has been read past the value: it ends where the reading stands.
            let end = self.seen.bytes.get();
            let newlines_in = text.bytes().filter(|b| *b == b'\n').count();
            let span = Span {
                offset: end.saturating_sub(text.len() as u64),
                len: text.len() as u64,
                line: self.seen.newlines.get().saturating_sub(newlines_in) + 1,
                newlines: newlines_in,
            };
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            if let Err(e) = (self.each)(&raw, span) {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        let r = objects::<_, ()>(std::io::Cursor::new(text.as_bytes()), &mut |raw, span| {
            out.push((raw.get().to_string(), span));
            Ok(())
        });
        assert!(r.is_ok(), "scans");
        out
    }

    #[test]
    fn each_object_comes_with_its_offset_length_and_line() {
        let text = "{\"before\": [1, {\"x\": 2}],\n  \"objects\": [\n    {\"id\": \"a\",\n \"n\": \"x\\ny\"},\n{\"id\": \"b\"}  ,{\"id\":\"c\"}\n], \"after\": {}}\n";
        let got = spans(text);
        assert_eq!(got.len(), 3);
        for (raw, s) in &got {
            let at = usize::try_from(s.offset).expect("small");
            assert_eq!(&text[at..at + raw.len()], raw, "the span is the object's text");
            assert_eq!(text[..at].matches('\n').count() + 1, s.line, "{raw}");
        }
        assert_eq!(got[0].1.line, 3);
        assert_eq!(got[2].1.line, 5);
    }

    /// A file as idflow writes it (read fast) gives each object with the span the careful
    /// reading gives, strings holding braces, brackets, quotes and line breaks included.
    #[test]
    fn the_fast_reading_finds_what_the_careful_one_finds() {
        let objects: Vec<serde_json::Value> = vec![
            serde_json::json!({"id": "a", "attributes": {"cn": "{[\"}]", "mail": ["x\\", "y\ny"]}}),
            serde_json::json!({"id": "b", "dn": "cn=b\\,o", "attributes": {}}),
            serde_json::json!({"id": "c", "attributes": {"list": [[], {}, [{"x": "]"}]]}}),
        ];
        for n in 0..=objects.len() {
            let text = format!("{}\n", serde_json::to_string_pretty(&serde_json::json!({ "objects": objects[..n] })).expect("json"));
            let fast = spans(&text);
            let mut slow = Vec::new();
            let r = careful::<_, ()>(
                text.as_bytes(),
                &mut |raw, span| {
                    slow.push((raw.get().to_string(), span));
                    Ok(())
                },
                0,
            );
            assert!(r.is_ok());
            assert_eq!(fast, slow, "{text}");
            assert_eq!(fast.len(), n);
            let mut delivered = 0;
            assert!(crate::file::plain::objects::<_, ()>(text.as_bytes(), &mut |_, _| Ok(()), &mut delivered).is_ok(), "read fast: {text}");
        }
    }

    /// A file that starts as idflow writes it and then is not: each object is given once, in
    /// order, and the error is the careful reading's, with its line.
    #[test]
    fn a_file_that_stops_being_plain_gives_each_object_once_then_its_error() {
        let good = "{\n  \"objects\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\"}";
        for (rest, fails) in [
            (",\n    {\"id\": \"c\"}\n  ]\n}\n   \n", false),
            (",\n  {\"id\": \"c\"}\n  ]\n}\n", false),
            (",\n    {\"id\": \"c\"}\n  ],\n  \"other\": 1\n}\n", false),
            (",\n    {\"id\": \"c\"\n  ]\n}\n", true),
            (",\n    5\n  ]\n}\n", true),
            ("\n  ]\n}\ntrailing", true),
        ] {
            let text = format!("{good}{rest}");
            let mut got = Vec::new();
            let r = objects::<_, ()>(std::io::Cursor::new(text.as_bytes()), &mut |raw, _| {
                got.push(raw.get().to_string());
                Ok(())
            });
            let want: Vec<&str> =
                ["{\"id\": \"a\"}", "{\"id\": \"b\"}", "{\"id\": \"c\"}"].into_iter().take(if fails { 2 } else { 3 }).collect();
            assert_eq!(got, want, "{text}");
            match r {
                Err(ScanError::Json(e)) => assert!(fails && e.line() >= 3, "{text}: {e}"),
                Err(ScanError::Each(())) => panic!("{text}"),
                Ok(()) => assert!(!fails, "{text}"),
            }
        }
    }

    #[test]
    fn a_file_that_is_not_the_document_is_a_json_error_with_its_line() {
        let twice = "{\"objects\": [], \"objects\": []}";
        for bad in ["{\"objects\": [{\"id\": \"a\"},\n{\"id\": ]}", "{\"other\": []}", "[]", "{\"objects\": []} trailing", twice] {
            match objects::<_, ()>(std::io::Cursor::new(bad.as_bytes()), &mut |_, _| Ok(())) {
                Err(ScanError::Json(e)) => assert!(e.line() >= 1, "{bad}: {e}"),
                _ => panic!("{bad} is not the document"),
            }
        }
        let stopped = objects(std::io::Cursor::new(b"{\"objects\": [{}, {}]}".as_slice()), &mut |_, s| {
            if s.offset > 14 {
                Err(s.offset)
            } else {
                Ok(())
            }
        });
        assert!(matches!(stopped, Err(ScanError::Each(17))));
    }
}
