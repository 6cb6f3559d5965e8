//! Anchors as the database keeps them. Most directories anchor objects by a UUID (entryUUID,
//! objectGUID, SCIM ids, the ids idflow gives file targets' objects): one in its canonical text
//! form (lowercase hex, hyphenated) is kept as its 16 bytes, half its text, in the objects'
//! table and in the index by anchor. Any other anchor is kept as text. The two forms map one to
//! one (a canonical UUID always becomes bytes, anything else never does), so anchors compare
//! equal stored exactly when they do as text.
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row, ToSql};

/// An anchor as a statement's parameter.
pub(crate) struct Anchor<'a>(pub(crate) &'a str);

impl ToSql for Anchor<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match uuid_bytes(self.0) {
            Some(b) => ToSqlOutput::from(b.to_vec()),
            None => ToSqlOutput::from(self.0),
        })
    }
}

/// The 16 bytes of a UUID in canonical form; `None` for any other text (upper case, braces,
/// no hyphens: what would not read back the same).
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let u = uuid::Uuid::try_parse(s).ok()?;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (u.hyphenated().encode_lower(&mut text).as_bytes() == s.as_bytes()).then(|| u.into_bytes())
}

fn uuid_text(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*b).hyphenated().to_string()
}

/// The anchor in column `i` of a row.
pub(crate) fn read(r: &Row, i: usize) -> rusqlite::Result<Option<String>> {
    match r.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) if b.len() == 16 => Ok(Some(uuid_text(b.try_into().expect("16 bytes: matched above")))),
        ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            i,
            other.data_type(),
            format!("an anchor stored as {:?} of {} bytes", other.data_type(), other.as_bytes().map_or(0, <[u8]>::len)).into(),
        )),
    }
}

/// Schema 7: anchors written as text by earlier releases take the stored form.
pub(crate) fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let hex = "[0-9a-f]";
    let pattern = [8, 4, 4, 4, 12].map(|n| hex.repeat(n)).join("-");
    c.execute(
        &format!(
            "UPDATE cs_object SET anchor = unhex(replace(anchor, '-', '')) WHERE typeof(anchor) = 'text' AND length(anchor) = 36 AND anchor GLOB '{pattern}'"
        ),
        [],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{uuid_bytes, uuid_text};

    #[test]
    fn a_canonical_uuid_is_kept_as_bytes_and_read_back_the_same_anything_else_as_text() {
        for s in ["79dde6e5-fd29-4054-85de-ce66d1ce4e5f", "01a23289-c7d1-757e-8d3a-674ea47d8fb6", "00000000-0000-0000-0000-000000000000"] {
            let b = uuid_bytes(s).expect("canonical");
            assert_eq!(uuid_text(&b), s);
        }
        for s in [
            "79DDE6E5-FD29-4054-85DE-CE66D1CE4E5F",
            "79dde6e5fd29405485dece66d1ce4e5f",
            "{79dde6e5-fd29-4054-85de-ce66d1ce4e5f}",
            "79dde6e5-fd29-4054-85de-ce66d1ce4e5g",
            "79dde6e5-fd29-4054-85dece-66d1ce4e5f",
            "E000001",
            "",
        ] {
            assert_eq!(uuid_bytes(s), None, "{s}");
        }
    }

    #[test]
    fn objects_are_found_by_a_uuid_anchor_kept_as_bytes_and_a_schema_6_database_is_converted() {
        use crate::{CsObject, ReadOps, Store, WriteOps};
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idflow.db");
        let uuid = "79dde6e5-fd29-4054-85de-ce66d1ce4e5f";
        let kinds = |store: &Store| -> String {
            let tx = store.read().expect("read");
            crate::ops::on(&tx, |c| {
                c.query_row("SELECT group_concat(typeof(anchor), ' ') FROM (SELECT anchor FROM cs_object ORDER BY id)", [], |r| r.get(0))
            })
            .expect("kinds")
        };
        let found = |store: &Store| {
            let tx = store.read().expect("read");
            for a in [uuid, "E000001"] {
                let o = tx.cs_by_anchor("corp", a).expect("read").expect("found");
                assert_eq!(o.anchor.as_deref(), Some(a));
                assert_eq!(tx.cs_links(o.id).expect("links").expect("there").anchor.as_deref(), Some(a));
            }
            assert!(tx.cs_by_anchor("corp", &uuid.to_uppercase()).expect("read").is_none(), "anchors compare as text does");
        };
        {
            let store = Store::open(&path).expect("open");
            let tx = store.write().expect("write");
            for a in [uuid, "E000001"] {
                let mut o = CsObject::new("corp", "person");
                o.anchor = Some(a.into());
                tx.cs_save(&o).expect("saved");
            }
            tx.commit().expect("commit");
            assert_eq!(kinds(&store), "blob text");
            found(&store);
            // Back to what schema 6 wrote.
            let tx = store.write().expect("write");
            crate::ops::on(&tx, |c| {
                c.execute_batch(crate::schema::BACK_TO_SCHEMA_12)?;
                c.execute_batch(crate::schema::BACK_TO_SCHEMA_11)?;
                c.execute_batch(crate::schema::BACK_TO_SCHEMA_7)?;
                c.execute_batch(
                    "UPDATE cs_object SET anchor = lower(substr(hex(anchor), 1, 8) || '-' || substr(hex(anchor), 9, 4) || '-' ||
                         substr(hex(anchor), 13, 4) || '-' || substr(hex(anchor), 17, 4) || '-' || substr(hex(anchor), 21))
                         WHERE typeof(anchor) = 'blob';
                     UPDATE meta SET value = '6' WHERE key = 'schema_version';",
                )
            })
            .expect("back to 6");
            tx.commit().expect("commit");
            assert_eq!(kinds(&store), "text text");
        }
        let store = Store::open(&path).expect("migrated");
        assert_eq!(kinds(&store), "blob text");
        found(&store);
    }
}
