//! Errors of changes applied once (an LDIF change file: the next delta does not read its
//! records again). Such an error is carried to every later import of the connector, reported
//! again each run (its exit code says so), until a later change names that object (it imports
//! cleanly, or its error is that change's own) or a full import reads the connector whole.
use idflow_core::fast_hash::FastSet;
use idflow_core::{dn, ObjectError, Result};
use idflow_store::WriteOps;

pub(super) struct Carried {
    key: String,
    errors: Vec<ObjectError>,
    /// Whether the key is there (a text that did not read back included).
    stored: bool,
}

impl Carried {
    pub(super) fn load(tx: &dyn WriteOps, connector: &str) -> Result<Carried> {
        let key = format!("import_errors:{connector}");
        // Written by this code only; one that does not read back is dropped, not fatal.
        let text = tx.meta_get(&key)?;
        let errors = text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        Ok(Carried { key, errors, stored: text.is_some() })
    }

    pub(super) fn any(&self) -> bool {
        !self.errors.is_empty()
    }

    /// How an object a change names is compared with an error's object.
    pub(super) fn same(object: &str) -> String {
        dn::norm(object)
    }

    /// After a delta applied once: the errors carried that no change of it named go on, with
    /// its own; the carried ones are returned to report again.
    pub(super) fn after_delta(self, tx: &dyn WriteOps, named: &FastSet<String>, own: &[ObjectError]) -> Result<Vec<ObjectError>> {
        let still: Vec<ObjectError> =
            self.errors.into_iter().filter(|e| e.object.as_deref().is_none_or(|o| !named.contains(&Self::same(o)))).collect();
        let mut kept = still.clone();
        kept.extend(own.iter().cloned());
        if !kept.is_empty() {
            let text = serde_json::to_string(&kept).map_err(|e| idflow_core::Error::Config(format!("import errors to keep: {e}")))?;
            tx.meta_set(&self.key, &text)?;
        } else if self.stored {
            tx.meta_delete(&self.key)?;
        }
        Ok(still)
    }

    /// After a delta whose errors are read again (LDAP), or a full import: its errors are its own.
    pub(super) fn clear(self, tx: &dyn WriteOps) -> Result<()> {
        match self.stored {
            true => tx.meta_delete(&self.key),
            false => Ok(()),
        }
    }
}
