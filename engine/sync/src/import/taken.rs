//! A change that adds an object at a DN another object holds here: a new anchor where an
//! object idflow imported is still present. A directory holds one object at a DN, so the add
//! means that object was deleted or renamed: by a change the same import brings later
//! (syncrepl may send its deletions, a set of entryUUIDs, after the entries), or by none it
//! will ever bring (a change file missing a record). Made at once, the two would be two people
//! in the metaverse and two accounts in every target. The add waits for the end of the import
//! instead: made then if the DN is free, else an error that names both objects.
use super::Sink;
use idflow_core::connector::{ImportedObject, ObjectKey};
use idflow_core::fast_hash::FastSet;
use idflow_core::{dn, Result};
use idflow_store::CsObject;

/// What an error about two objects at one DN asks.
const ONE_AT_A_DN: &str =
    "A directory holds one object at a DN: if the other is gone, run a full import of a current export; else correct the change";

/// The adds waiting for the end of the import, and their DNs (normalized).
#[derive(Default)]
pub(super) struct Taken {
    waiting: Vec<ImportedObject>,
    dns: FastSet<String>,
}

impl Sink<'_> {
    /// Stores `o`, a change's object, or keeps it for [`Sink::settle_taken`] when its DN is
    /// another present object's.
    pub(super) fn upsert_unless_taken(&mut self, o: ImportedObject) -> Result<()> {
        if self.holders_of(&o, false)?.is_empty() {
            return self.upsert(o);
        }
        if let Some(d) = &o.dn {
            self.taken.dns.insert(dn::norm(d));
        }
        self.taken.waiting.push(o);
        Ok(())
    }

    /// Whether a change keyed by DN alone names the DN of an add that waits: which object it
    /// is about cannot be told (an error then, not a guess).
    pub(super) fn names_waiting_add(&mut self, key: &ObjectKey, what: &str) -> bool {
        let waiting = key.anchor.is_none() && key.dn.as_deref().is_some_and(|d| self.taken.dns.contains(&dn::norm(d)));
        if waiting {
            self.stats.read += 1;
            self.obj_error(
                key,
                format!("a delta {what} {key}, which a change before it added where another object is: not applied (see that error)"),
            );
        }
        waiting
    }

    /// The end of the import: each add that waited is made if its DN is free now, else is an
    /// error. `full`: a full import, where an object it did not read is gone once it ends
    /// complete, and holds the DN only if read.
    pub(super) fn settle_taken(&mut self, full: bool) -> Result<()> {
        for o in std::mem::take(&mut self.taken.waiting) {
            let holders = self.holders_of(&o, full)?;
            let Some(first) = holders.first() else {
                self.upsert(o)?;
                continue;
            };
            self.stats.read += 1;
            let held = self.named(*first)?;
            let key = ObjectKey { anchor: o.anchor, dn: o.dn };
            let message = format!(
                "a change adds {key} (anchor {}) where idflow holds another object ({held}), and none deletes or renames that one: \
                 not applied. {ONE_AT_A_DN}",
                key.anchor.as_deref().unwrap_or_default()
            );
            self.obj_error(&key, message);
        }
        self.taken.dns.clear();
        Ok(())
    }

    /// Whether `o`'s rename to `new_dn` (by a change file, in its order) is one to the DN of
    /// another object present here: an error then, not two objects at one DN.
    pub(super) fn rename_taken(&mut self, key: &ObjectKey, o: &CsObject, new_dn: &str) -> Result<bool> {
        let states = self.tx.cs_states_by_dn(&self.connector, new_dn)?;
        let Some(other) = states.iter().find(|s| s.present && s.id != o.id) else { return Ok(false) };
        let held = self.named(other.id)?;
        self.obj_error(
            key,
            format!("a delta renames {key} to {new_dn}, where idflow holds another object ({held}): not applied. {ONE_AT_A_DN}"),
        );
        Ok(true)
    }

    /// An object here, by its anchor.
    fn named(&self, id: i64) -> Result<String> {
        Ok(match self.tx.cs_get(id)?.and_then(|h| h.anchor) {
            Some(a) => format!("anchor {a}"),
            None => format!("object {id}"),
        })
    }

    /// The objects present here at `o`'s DN, when `o` has an anchor no object here has
    /// (`read`: only those this import read).
    fn holders_of(&self, o: &ImportedObject, read: bool) -> Result<Vec<i64>> {
        let (Some(anchor), Some(d)) = (&o.anchor, &o.dn) else { return Ok(Vec::new()) };
        let key = ObjectKey { anchor: Some(anchor.clone()), dn: None };
        if self.stored_anchor(&key).is_some() && self.tx.cs_id_by_anchor(&self.connector, anchor)?.is_some() {
            return Ok(Vec::new());
        }
        let states = self.tx.cs_states_by_dn(&self.connector, d)?;
        Ok(states.iter().filter(|s| s.present && (!read || self.seen.contains(&s.id))).map(|s| s.id).collect())
    }
}
