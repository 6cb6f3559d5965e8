//! Import errors a later run would not meet again: those of changes applied once (an LDIF
//! change file: the next delta does not read its records again), and those of a full import
//! that ended incomplete (its watermark stays; the next delta reads an object again only if it
//! changes). Such an error is carried to every later import of the connector and reported
//! again each run (its exit code says so), until a change names that object (it imports
//! cleanly, or its error is that change's own) or a full import ends without it.
use idflow_core::connector::ObjectKey;
use idflow_core::fast_hash::FastSet;
use idflow_core::{dn, ObjectError, Result};
use idflow_store::WriteOps;
use serde::{Deserialize, Serialize};

/// An error and what clears it: a change bringing its anchor, or, for an object it named by
/// DN alone, a change naming that DN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Carry {
    pub by: String,
    pub error: ObjectError,
}

pub(super) struct Carried {
    key: String,
    carries: Vec<Carry>,
    /// Whether the key is there (a text that did not read back included).
    stored: bool,
}

/// How a carried error and a change name an object by its anchor ...
fn by_anchor(a: &str) -> String {
    format!("anchor:{a}")
}

/// ... and by its DN.
fn by_dn(d: &str) -> String {
    format!("dn:{}", dn::norm(d))
}

/// What clears an error about `key`: its anchor where it has one, else its DN.
pub(super) fn cleared_by(key: &ObjectKey) -> Option<String> {
    match (&key.anchor, &key.dn) {
        (Some(a), _) => Some(by_anchor(a)),
        (None, Some(d)) => Some(by_dn(d)),
        (None, None) => None,
    }
}

/// What a change about `key` names: its anchor and its DN.
pub(super) fn names(key: &ObjectKey, named: &mut FastSet<String>) {
    if let Some(a) = &key.anchor {
        named.insert(by_anchor(a));
    }
    if let Some(d) = &key.dn {
        named.insert(by_dn(d));
    }
}

impl Carried {
    pub(super) fn load(tx: &dyn WriteOps, connector: &str) -> Result<Carried> {
        let key = format!("import_errors:{connector}");
        let text = tx.meta_get(&key)?;
        let carries = match text.as_deref().map(serde_json::from_str::<Vec<Carry>>) {
            None => Vec::new(),
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(connector, "the import errors kept from earlier runs do not read back ({e}); they are dropped");
                Vec::new()
            }
        };
        Ok(Carried { key, carries, stored: text.is_some() })
    }

    pub(super) fn any(&self) -> bool {
        !self.carries.is_empty()
    }

    /// After an import: the errors carried that no change of it named go on (none after a full
    /// import), with its own; the carried ones are returned to report again.
    pub(super) fn after(self, tx: &dyn WriteOps, full: bool, named: &FastSet<String>, own: Vec<Carry>) -> Result<Vec<ObjectError>> {
        let mut still: Vec<Carry> = if full { Vec::new() } else { self.carries.into_iter().filter(|c| !named.contains(&c.by)).collect() };
        // One met again is reported once (as this import's own).
        still.retain(|c| !own.iter().any(|o| o.error.object == c.error.object && o.error.message == c.error.message));
        let again: Vec<ObjectError> = still.iter().map(|c| c.error.clone()).collect();
        let mut kept = still;
        kept.extend(own);
        if !kept.is_empty() {
            let text = serde_json::to_string(&kept).map_err(|e| idflow_core::Error::Config(format!("import errors to keep: {e}")))?;
            tx.meta_set(&self.key, &text)?;
        } else if self.stored {
            tx.meta_delete(&self.key)?;
        }
        Ok(again)
    }
}
