//! Entries that move between the bases an import reads one after another.
//!
//! A full import over several bases (`include_ous`) reads them in turn: an entry moved from a
//! base not read yet into one read already is in neither read, and would look deleted (its
//! account deprovisioned, made again by the next delta). So once the bases are read, the
//! changes since the watermark (taken before the read) are asked for, and the entries among
//! them the read missed are read now. A syncrepl delta reads its bases in turn too: an entry
//! that moved into a base read earlier is a deletion to the one it left and nothing yet to the
//! one it joined, so each deletion is looked up by its entryUUID before it is believed.
use super::conf::Conf;
use super::entry;
use super::import::to_object;
use super::session;
use idflow_core::connector::{DeltaChange, ImportSink, ImportedObject, ObjectKey};
use idflow_core::fast_hash::FastSet;
use idflow_core::Result;
use ldap3::{Ldap, Scope};

/// What a full import takes of the changes made while it read: the entries it did not read,
/// read whole, as objects it read. Everything else (changes to entries it read, deletions) the
/// next delta applies, from the watermark taken before the read.
pub(super) struct CatchUp<'a> {
    pub inner: &'a mut dyn ImportSink,
    /// The anchors the read gave.
    pub seen: &'a mut FastSet<String>,
    /// Entries read now.
    pub found: usize,
}

impl ImportSink for CatchUp<'_> {
    fn object(&mut self, obj: ImportedObject) -> Result<()> {
        self.change(DeltaChange::Upsert(obj))
    }

    fn change(&mut self, change: DeltaChange) -> Result<()> {
        match change {
            DeltaChange::Upsert(o) if o.anchor.as_ref().is_some_and(|a| self.seen.insert(a.clone())) => {
                self.found += 1;
                self.inner.object(o)
            }
            _ => Ok(()),
        }
    }

    fn error(&mut self, key: ObjectKey, message: String) {
        self.inner.error(key, message);
    }

    /// An entry the read gave is held: DirSync's partial entry of it is not read whole again.
    fn holds(&mut self, key: &ObjectKey) -> Result<bool> {
        Ok(key.anchor.as_ref().is_some_and(|a| self.seen.contains(a)))
    }
}

/// Each deletion in `changes` (several bases read in turn) looked up by its entryUUID below
/// every base: an entry found there, of a configured type, is what the delta reports instead.
pub(super) async fn confirm_deletions(conf: &Conf, ldap: &mut Ldap, attrs: &[String], changes: &mut [DeltaChange]) -> Result<()> {
    for c in changes.iter_mut() {
        let DeltaChange::Delete(key) = c else { continue };
        let Some(uuid) = key.anchor.clone() else { continue };
        if let Some(o) = by_entry_uuid(conf, ldap, attrs, &uuid).await? {
            tracing::debug!(connector = %conf.name, dn = ?o.dn, "a deletion in the delta is an entry that moved to another base");
            *c = DeltaChange::Upsert(o);
        }
    }
    Ok(())
}

/// The entry with this entryUUID below any base, as an object of a configured type.
async fn by_entry_uuid(conf: &Conf, ldap: &mut Ldap, attrs: &[String], uuid: &str) -> Result<Option<ImportedObject>> {
    // An entryUUID is hex digits and dashes; anything else names no entry.
    if !uuid.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '-') {
        return Ok(None);
    }
    let filter = format!("(&{}(entryUUID={uuid}))", conf.filter);
    for base in &conf.bases {
        let what = format!("looking up entryUUID {uuid} below {base}");
        let found = ldap
            .with_timeout(conf.timeout)
            .search(base, Scope::Subtree, &filter, attrs.to_vec())
            .await
            .map_err(|e| session::failed(conf, &what, e))?;
        let (entries, res) = (found.0, found.1);
        session::check(conf, &what, &res)?;
        for e in entries {
            let e = entry::decode(e.0, &conf.binary).map_err(|m| idflow_core::Error::connector(&conf.name, format!("{what}: {m}")))?;
            if let Ok(Some(mut o)) = to_object(conf, e) {
                o.anchor = o.anchor.or_else(|| Some(uuid.to_string()));
                return Ok(Some(o));
            }
        }
    }
    Ok(None)
}
