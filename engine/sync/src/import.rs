//! Import: a connector's objects into its connector space, marking what sync must look at.
//!
//! A full import that reads nothing while the connector space holds objects is refused: an
//! empty or failed read is never "everyone left". Objects missing from a *complete* full import
//! become deletions. The watermark is written in the same transaction as the changes it covers.
use crate::ahead::Spent;
use crate::diff;
use crate::import_names::{Names, Prepared};
use crate::observer::{self, Observer, Step};
use idflow_core::connector::{
    apply_changes, AttrChange, Connector, DeltaChange, ImportSink, ImportedObject, ObjectKey, Prepare, PreparedObject,
};
use idflow_core::fast_hash::{FastMap, FastSet};
use idflow_core::{attrs_from_json, attrs_to_json, dn, same_values, Attrs, Error, ObjectError, Result, Stage};
use idflow_policy::RuleSet;
use idflow_store::{AttrsRead, CsObject, ExportState, Link, PendingImport, ReadText, WriteOps};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

mod carried;
mod taken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    /// Delta where the connector can, else full.
    Delta,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ImportStats {
    pub connector: String,
    pub mode: String,
    pub read: usize,
    pub added: usize,
    pub updated: usize,
    pub renamed: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub errors: usize,
    /// A full import that met read errors: nothing it did not see was inferred deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// A delta that met errors and kept its watermark: the next run reads those objects again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_again: bool,
    /// Errors of earlier changes applied once (an LDIF change file) that no change has named
    /// since: reported again, counted in `errors` (import/carried.rs).
    #[serde(skip_serializing_if = "is_zero")]
    pub carried: usize,
    /// Objects a full import did not read, looked up by their anchors before they were taken for
    /// gone (the connector's read is not one snapshot: `Connector::looks_up_unseen`).
    #[serde(skip_serializing_if = "is_zero")]
    pub looked_up: usize,
    /// How long the import took, in milliseconds.
    #[serde(default)]
    pub ms: u64,
}

struct Sink<'a> {
    tx: &'a dyn WriteOps,
    connector: String,
    seen: FastSet<i64>,
    /// The object each DN (normalized) was read for in this import.
    seen_dn: FastMap<String, i64>,
    /// Objects this import added (not there before).
    added: FastSet<i64>,
    /// Objects already reported as read twice.
    duplicated: FastSet<i64>,
    stats: ImportStats,
    errors: Vec<ObjectError>,
    observer: &'a dyn Observer,
    /// Attribute names as read, to the spelling the rules use.
    names: Names,
    /// Objects without an anchor exist (creates not yet confirmed): only then is a miss by
    /// anchor worth a lookup by DN.
    anchorless: bool,
    /// The connector remembers former DNs: only then is one cleared when a DN is read.
    former_dns: bool,
    /// What references resolve to in this connector, looked up once per import; an object
    /// this import writes is forgotten (its anchor or DN may be new).
    idents: diff::Idents,
    /// The identifiers are read in one pass before the first object that needs them (a target
    /// read whole); none are when it reads none (a target not written yet).
    preload: bool,
    /// When the connector space held nothing as the import began (a first import): the
    /// anchors, hashed, of the objects this import wrote since. An anchor not among them is
    /// in no row, so a first import does not look every object up by its anchor; a hash two
    /// anchors share only costs the lookup.
    fresh: Option<FastSet<u64>>,
    /// Objects written, dropped a few hundred at a time on the read-ahead thread: freeing
    /// what the connector's reading thread allocated is a tenth of a first import's work.
    spent: Spent<CsObject>,
    /// Adds at a DN another object holds, waiting for the end of the import (taken.rs).
    taken: taken::Taken,
    /// The dictionary the connector's attributes are packed with, for the thread that reads
    /// them ([`Prepared`]): set once there is one, while that thread prepares objects.
    pack_seed: Option<Arc<OnceLock<idflow_store::PackSeed>>>,
    /// A full import: an object it does not read is gone once it ends complete.
    full: bool,
    /// Objects the directory's read itself gave (records that did not read whole included),
    /// changes of a change file applied on top of it not: a full import whose read gave none
    /// is refused, whatever a change file added.
    listed: usize,
    /// The objects this import's changes name, kept while errors of earlier runs are carried
    /// (import/carried.rs).
    named: Option<FastSet<String>>,
    /// This import's errors, as they are carried to later runs.
    carries: Vec<carried::Carry>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn anchor_hash(anchor: &str) -> u64 {
    idflow_core::fast_hash::fixed_hash(anchor)
}

impl Sink<'_> {
    fn find(&self, key: &ObjectKey) -> Result<Option<CsObject>> {
        if let Some(a) = self.stored_anchor(key) {
            if let Some(o) = self.tx.cs_by_anchor(&self.connector, a)? {
                return Ok(Some(o));
            }
        }
        self.find_by_dn(key)
    }

    /// [`Self::find`] for an object read whole, `attrs` its attributes as they would be kept.
    /// `true`: the attributes kept are `attrs`, known from their stored text without decoding
    /// it, and the object comes back without them (a full import of a directory that did not
    /// change decodes none). `false`: not known; the object comes back whole to compare.
    fn find_read(&self, key: &ObjectKey, read: &AttrsRead) -> Result<Option<(CsObject, bool)>> {
        if let Some(a) = self.stored_anchor(key) {
            if let Some(found) = self.tx.cs_by_anchor_against(&self.connector, a, read)? {
                return Ok(Some(found));
            }
        }
        Ok(self.find_by_dn(key)?.map(|o| (o, false)))
    }

    /// The anchor to look `key` up by, unless it is known not to be stored.
    fn stored_anchor<'k>(&self, key: &'k ObjectKey) -> Option<&'k str> {
        key.anchor.as_deref().filter(|a| self.fresh.as_ref().is_none_or(|f| f.contains(&anchor_hash(a))))
    }

    /// The object `key` names by its DN: only when it has no anchor, or the connector keeps
    /// objects without one.
    fn find_by_dn(&self, key: &ObjectKey) -> Result<Option<CsObject>> {
        if key.anchor.is_some() && !self.anchorless {
            return Ok(None);
        }
        let Some(d) = &key.dn else { return Ok(None) };
        let mut found = self.tx.cs_by_dn(&self.connector, d)?;
        found.retain(|o| key.anchor.is_none() || o.anchor.is_none());
        Ok(the_one_at_dn(found, self.full.then_some(&self.seen)))
    }

    /// Hands the thread that reads the connector's dictionary over once there is one (the
    /// first objects written train it). Only to spare this thread work: should the dictionary
    /// not be read, the store packs as it would have, and the import goes on.
    fn share_pack_seed(&self) {
        let Some(slot) = self.pack_seed.as_ref().filter(|s| s.get().is_none()) else { return };
        match self.tx.cs_attrs_pack_seed(&self.connector) {
            Ok(Some(seed)) => {
                let _ = slot.set(seed);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(connector = %self.connector, "objects are packed where they are stored: {e}"),
        }
    }

    fn obj_error(&mut self, key: &ObjectKey, message: String) {
        self.stats.errors += 1;
        let e = ObjectError::new(Stage::Import, &self.connector, key.to_string(), message);
        if let Some(named) = &mut self.named {
            carried::names(key, named);
        }
        self.carries.push(carried::Carry { by: carried::cleared_by(key).unwrap_or_default(), error: e.clone() });
        self.errors.push(e);
    }

    fn mark(&mut self, o: &mut CsObject, p: PendingImport) {
        o.pending_import = match (o.pending_import, p) {
            (Some(PendingImport::Add), PendingImport::Update) => Some(PendingImport::Add),
            _ => Some(p),
        };
    }

    /// Saves what was read (`as_stored`: the object read is the one stored, value for value).
    /// `read`: the JSON text of its attributes, when made already, and what was packed of it.
    fn finish_object(&mut self, mut o: CsObject, as_stored: bool, read: Option<ReadText>) -> Result<i64> {
        let was_pending = o.pending_export;
        if o.export_state.is_some() {
            if std::mem::take(&mut self.preload) {
                self.idents.preload_if_it_fits(self.tx, &self.connector)?;
            }
            o.pending_export = diff::has_changes_with(self.tx, &o, &mut self.idents)?;
        }
        let added = o.id == 0;
        // What is in step is not written again: a full import of a directory that did not
        // change writes nothing.
        let id = if as_stored && !added && o.pending_export == was_pending {
            o.id
        } else {
            let id = match read {
                Some((json, packed)) => self.tx.cs_save_read(&o, json, packed)?,
                None => self.tx.cs_save(&o)?,
            };
            self.idents.forget(id);
            self.share_pack_seed();
            id
        };
        self.seen.insert(id);
        if let (Some(fresh), Some(a)) = (&mut self.fresh, &o.anchor) {
            fresh.insert(anchor_hash(a));
        }
        if let Some(d) = &o.dn {
            self.seen_dn.insert(dn::norm(d), id);
        }
        if added {
            self.added.insert(id);
        }
        self.spent.push(o);
        Ok(id)
    }

    /// The object read as `key` is one already read in this import (same anchor, or same DN):
    /// an error on both records, and nothing is made twice. A first copy that this import
    /// added is taken out again: which record is right is for the directory's owner to say.
    fn duplicate(&mut self, first: i64, key: &ObjectKey, message: String) -> Result<()> {
        self.obj_error(key, message.clone());
        if !self.duplicated.insert(first) {
            return Ok(());
        }
        let Some(o) = self.tx.cs_get(first)? else { return Ok(()) };
        let first_key = ObjectKey { anchor: o.anchor.clone(), dn: o.dn.clone() };
        self.obj_error(&first_key, message);
        if self.added.remove(&first) {
            self.tx.cs_delete(first)?;
            self.idents.forget(first);
            self.stats.added = self.stats.added.saturating_sub(1);
        }
        Ok(())
    }

    /// Object `id` no longer has the DN `dn` (deleted or renamed): another record of this
    /// import may give it to another object.
    fn dn_left(&mut self, dn: Option<&str>, id: i64) {
        if let Some(d) = dn {
            let d = dn::norm(d);
            if self.seen_dn.get(&d) == Some(&id) {
                self.seen_dn.remove(&d);
            }
        }
    }

    /// The object another record of this import has the DN `dn`, if any other than `id`.
    fn dn_taken(&self, dn: Option<&str>, id: i64) -> Option<i64> {
        dn.and_then(|d| self.seen_dn.get(&dn::norm(d))).copied().filter(|x| *x != id)
    }

    fn upsert(&mut self, obj: ImportedObject) -> Result<()> {
        self.upsert_read(obj, None)
    }

    /// [`Self::upsert`] of an object made ready where it was read ([`Prepared`]): its
    /// attributes named as kept already, and their JSON text. Those attributes were left out
    /// there when a first import needs only their text: read back from it should the object
    /// be one kept already after all (the same object twice).
    fn upsert_read(&mut self, mut obj: ImportedObject, prepared: Option<(String, bool, Option<Vec<u8>>)>) -> Result<()> {
        self.stats.read += 1;
        self.observer.advanced(1);
        let key = ObjectKey { anchor: obj.anchor.clone(), dn: obj.dn.clone() };
        let (attrs, json, packed) = match prepared {
            Some((json, with_attrs, packed)) => {
                if !with_attrs {
                    if !self.may_find(&key) {
                        // Nothing kept has its anchor or DN: added, kept as its text.
                        return self.add(obj, &key, (json, packed));
                    }
                    obj.attrs = attrs_from_json(&json).map_err(|e| Error::connector(&self.connector, format!("{key}: {e}")))?;
                }
                (obj.attrs, json, packed)
            }
            None => {
                let attrs = self.names.canonical(obj.attrs);
                let json = attrs_to_json(&attrs);
                (attrs, json, None)
            }
        };
        let found = self.find_read(&key, &AttrsRead::with_json(&attrs, &json))?;
        match found {
            Some((mut o, same_attrs)) => {
                // Read twice in a full import: two objects claim one anchor. A delta may name
                // an object twice (DirSync, when it changed again between two pages): the later
                // is how it is now.
                if self.full && self.seen.contains(&o.id) {
                    let other = o.dn.clone().unwrap_or_default();
                    let m = format!("duplicate anchor {:?}: read for {other} and for {key}", obj.anchor.unwrap_or_default());
                    return self.duplicate(o.id, &key, m);
                }
                if let Some(first) = self.dn_taken(obj.dn.as_deref(), o.id) {
                    let m = format!("duplicate DN: {key} is read for two objects (anchors differ)");
                    return self.duplicate(first, &key, m);
                }
                let renamed = obj.dn.is_some() && o.dn.as_deref().map(dn::norm) != obj.dn.as_deref().map(dn::norm);
                let changed = !(same_attrs || attrs_equal(&o.attrs, &attrs)) || o.object_type != obj.object_type || !o.present;
                let same_text = obj.anchor.as_ref().is_none_or(|a| o.anchor.as_ref() == Some(a))
                    && obj.dn.as_ref().is_none_or(|d| o.dn.as_ref() == Some(d));
                let as_stored = !renamed && !changed && same_text;
                if renamed {
                    self.stats.renamed += 1;
                } else if changed {
                    self.stats.updated += 1;
                } else {
                    self.stats.unchanged += 1;
                }
                if renamed {
                    self.dn_left(o.dn.as_deref(), o.id);
                    if let Some(old) = &o.dn {
                        self.set_former_dn(old, Some(o.id))?;
                    }
                    if let Some(new) = &obj.dn {
                        self.clear_former_dn(new)?;
                    }
                }
                if renamed || changed {
                    if o.pending_import == Some(PendingImport::Delete) {
                        o.pending_import = None;
                    }
                    self.mark(&mut o, PendingImport::Update);
                }
                o.anchor = obj.anchor.or(o.anchor);
                o.dn = obj.dn.or(o.dn);
                o.object_type = obj.object_type;
                o.attrs = attrs;
                o.present = true;
                self.finish_object(o, as_stored, Some((json, packed)))?;
            }
            None => {
                obj.attrs = attrs;
                self.add(obj, &key, (json, packed))?;
            }
        }
        Ok(())
    }

    /// Whether [`Self::find_read`] may find something for `key`.
    fn may_find(&self, key: &ObjectKey) -> bool {
        self.stored_anchor(key).is_some() || ((key.anchor.is_none() || self.anchorless) && key.dn.is_some())
    }

    /// Adds an object nothing kept is (`obj.attrs` left empty when `json` alone holds them).
    fn add(&mut self, obj: ImportedObject, key: &ObjectKey, read: ReadText) -> Result<()> {
        if let Some(first) = self.dn_taken(obj.dn.as_deref(), 0) {
            let m = format!("duplicate DN: {key} is read for two objects (anchors differ)");
            return self.duplicate(first, key, m);
        }
        if let Some(d) = &obj.dn {
            self.clear_former_dn(d)?;
        }
        let mut o = CsObject::new(&self.connector, &obj.object_type);
        o.anchor = obj.anchor;
        o.dn = obj.dn;
        o.attrs = obj.attrs;
        o.present = true;
        o.pending_import = Some(PendingImport::Add);
        self.stats.added += 1;
        self.finish_object(o, false, Some(read))?;
        Ok(())
    }

    /// A delta's changes to an object, named as the rules spell them; a secret's are dropped.
    fn apply_changes(&mut self, attrs: &mut Attrs, changes: Vec<AttrChange>) {
        let changes: Vec<AttrChange> =
            changes.into_iter().filter_map(|c| self.names.name_for(&c.attr).clone().map(|attr| AttrChange { attr, ..c })).collect();
        apply_changes(attrs, &changes);
    }
}

fn attrs_equal(a: &Attrs, b: &Attrs) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_values(v, w)))
}

/// Of the objects a DN names, the one a change to that DN is about: the only one; else the
/// only one present (an object deleted and one made again at its DN, before a sync saw the
/// deletion: the directory changed the new one); in a full import (`read`: the objects it
/// read), the only one present it read (one it did not read is gone once it ends); else, when
/// all are deleted, the last made (the change meets a deletion, and says so). `None` when two
/// are present (ambiguous).
fn the_one_at_dn(mut found: Vec<CsObject>, read: Option<&FastSet<i64>>) -> Option<CsObject> {
    if found.len() <= 1 {
        return found.pop();
    }
    let any_present = found.iter().any(|o| o.present);
    found.retain(|o| o.present || !any_present);
    if found.len() > 1 && found.iter().all(|o| o.present) {
        if let Some(read) = read {
            found.retain(|o| read.contains(&o.id));
        }
    }
    match found.len() {
        0 => None,
        1 => found.pop(),
        _ if found.iter().all(|o| !o.present) => found.into_iter().max_by_key(|o| o.id),
        _ => None,
    }
}

/// What a change keyed by DN does, as its errors say it.
fn change_verb(change: &DeltaChange) -> &'static str {
    match change {
        DeltaChange::Modify { .. } => "changes",
        DeltaChange::Rename { .. } => "renames",
        DeltaChange::Delete(_) => "deletes",
        DeltaChange::Upsert(_) | DeltaChange::Merge(_) => "adds",
    }
}

/// Why a delta's change (`what` it does) to an object a change before it deleted (not synced
/// yet) is not applied: the deletion stands (the change would otherwise take it back unseen).
fn deleted_before(what: &str) -> String {
    format!("a delta {what} an object an earlier change deleted: not applied, the deletion stands; if the object exists, run a full import")
}

impl ImportSink for Sink<'_> {
    fn object(&mut self, obj: ImportedObject) -> Result<()> {
        self.listed += 1;
        self.upsert(obj)
    }

    fn preparer(&mut self) -> Option<Box<dyn Prepare>> {
        // A first import has nothing kept to compare with: the attributes' text is all it
        // needs of them (an object met twice is read back from it).
        let seed = Arc::new(OnceLock::new());
        self.pack_seed = Some(Arc::clone(&seed));
        Some(Box::new(Prepared::new(self.names.clone(), self.fresh.is_some(), seed)))
    }

    fn prepared(&mut self, p: PreparedObject) -> Result<()> {
        self.listed += 1;
        self.upsert_read(p.obj, Some((p.attrs_json, p.with_attrs, p.packed)))
    }

    fn holds(&mut self, key: &ObjectKey) -> Result<bool> {
        // Present: a change to an object deleted here stays the connector's to tell apart.
        match (&key.anchor, &key.dn) {
            // What find_by_dn finds (the one object present at this DN), its row not read.
            (None, Some(dn)) => Ok(self.present_at(dn)?.len() == 1),
            _ => Ok(self.find(key)?.is_some_and(|o| o.present)),
        }
    }

    fn change(&mut self, change: DeltaChange) -> Result<()> {
        if let Some(named) = &mut self.named {
            match &change {
                DeltaChange::Upsert(o) | DeltaChange::Merge(o) => {
                    carried::names(&ObjectKey { anchor: o.anchor.clone(), dn: o.dn.clone() }, named)
                }
                DeltaChange::Modify { key, .. } | DeltaChange::Rename { key, .. } | DeltaChange::Delete(key) => carried::names(key, named),
            }
        }
        match change {
            DeltaChange::Upsert(o) => self.upsert_unless_taken(o),
            DeltaChange::Merge(mut o) => {
                let key = ObjectKey { anchor: o.anchor.clone(), dn: o.dn.clone() };
                // Into what waits of the object, if anything does: it is the later state.
                let base = match self.take_waiting(o.anchor.as_deref()) {
                    Some(w) => Some((w.attrs, w.object_type)),
                    None => self.find(&key)?.map(|e| (e.attrs, e.object_type)),
                };
                match base {
                    Some((mut attrs, object_type)) => {
                        for (k, v) in self.names.canonical(std::mem::take(&mut o.attrs)) {
                            let name = attrs.keys().find(|x| x.eq_ignore_ascii_case(&k)).cloned().unwrap_or(k);
                            if v.is_empty() {
                                attrs.remove(&name);
                            } else {
                                attrs.insert(name, v);
                            }
                        }
                        o.attrs = attrs;
                        if o.object_type.is_empty() {
                            o.object_type = object_type;
                        }
                        self.upsert_unless_taken(o)
                    }
                    None if o.object_type.is_empty() => {
                        self.stats.read += 1;
                        Ok(())
                    }
                    None => self.upsert_unless_taken(o),
                }
            }
            DeltaChange::Modify { key, .. } | DeltaChange::Rename { key, .. } | DeltaChange::Delete(key)
                if self.names_waiting_add(&key, change_verb(&change))? =>
            {
                Ok(())
            }
            DeltaChange::Modify { key, changes } => {
                self.stats.read += 1;
                match self.find(&key)? {
                    None => {
                        let m = self.not_held("changes", &key)?;
                        self.obj_error(&key, m)
                    }
                    Some(o) if !o.present => self.obj_error(&key, deleted_before("changes")),
                    Some(o) if self.changes_waiting(&key, &o, "changes") => {}
                    Some(mut o) => {
                        self.apply_changes(&mut o.attrs, changes);
                        self.mark(&mut o, PendingImport::Update);
                        self.stats.updated += 1;
                        self.finish_object(o, false, None)?;
                    }
                }
                Ok(())
            }
            DeltaChange::Rename { key, new_dn, changes } => {
                self.stats.read += 1;
                match self.find(&key)? {
                    None => {
                        let m = self.not_held("renames", &key)?;
                        self.obj_error(&key, m)
                    }
                    Some(o) if !o.present => self.obj_error(&key, deleted_before("renames")),
                    Some(o) if self.changes_waiting(&key, &o, "renames") => {}
                    Some(o) if self.rename_taken(&key, &o, &new_dn)? => {}
                    Some(mut o) => {
                        self.apply_changes(&mut o.attrs, changes);
                        self.dn_left(o.dn.as_deref(), o.id);
                        if let Some(old) = &o.dn {
                            self.set_former_dn(old, Some(o.id))?;
                        }
                        self.clear_former_dn(&new_dn)?;
                        o.dn = Some(new_dn);
                        self.mark(&mut o, PendingImport::Update);
                        self.stats.renamed += 1;
                        self.finish_object(o, false, None)?;
                    }
                }
                Ok(())
            }
            DeltaChange::Delete(key) => {
                self.stats.read += 1;
                self.drop_waiting(key.anchor.as_deref());
                // One gone already (a delta read again) stays as it is.
                if let Some(mut o) = self.find(&key)?.filter(|o| o.present) {
                    // Named by its DN alone: what waits of it goes too.
                    self.drop_waiting(o.anchor.as_deref());
                    self.vanish(&mut o)?;
                }
                Ok(())
            }
        }
    }

    fn error(&mut self, key: ObjectKey, message: String) {
        self.stats.read += 1;
        self.listed += 1;
        if let Some(a) = &key.anchor {
            if let Ok(Some(o)) = self.tx.cs_by_anchor(&self.connector, a) {
                self.seen.insert(o.id);
            }
        }
        self.obj_error(&key, message);
    }
}

impl Sink<'_> {
    /// Carries this import's errors to later runs (`keep`: a connector with deltas; one that
    /// only imports whole meets them again each run), and reports again those of earlier runs
    /// that no change of it named (import/carried.rs).
    fn carry(&mut self, tx: &dyn WriteOps, carried: carried::Carried, full: bool, keep: bool) -> Result<()> {
        let named = self.named.take().unwrap_or_default();
        let own = if keep { std::mem::take(&mut self.carries) } else { Vec::new() };
        let again = carried.after(tx, full, &named, own)?;
        self.stats.carried = again.len();
        self.stats.errors += again.len();
        self.errors.extend(again);
        Ok(())
    }

    /// A full import that met errors: nothing it did not see is inferred deleted. A watermark
    /// a delta reads again from stays (the next delta reads those objects again; after an
    /// hour, a full import); one of changes applied once (an LDIF change file) moves, as this
    /// import applied them (applied again, a rename or a deletion would meet what it did), and
    /// the errors are carried.
    fn ended_incomplete(
        mut self,
        tx: &dyn WriteOps,
        connector: &dyn Connector,
        kept: Kept,
        carried: carried::Carried,
        new: Option<&str>,
    ) -> Result<(ImportStats, Vec<ObjectError>)> {
        self.stats.incomplete = true;
        let caps = connector.capabilities();
        if caps.delta_reads_again {
            kept.begin(tx, true)?;
        } else if caps.delta_import {
            tx.set_watermark(&self.connector, new)?;
        }
        self.carry(tx, carried, true, caps.delta_import)?;
        Ok((self.stats, self.errors))
    }

    /// Remembers that `dn` was an object's (renamed to `cs_id`, or deleted).
    fn set_former_dn(&mut self, dn: &str, cs_id: Option<i64>) -> Result<()> {
        self.former_dns = true;
        self.tx.cs_set_former_dn(&self.connector, dn, cs_id)
    }

    /// `dn` is an object's now: it is no former DN any more.
    fn clear_former_dn(&mut self, dn: &str) -> Result<()> {
        match self.former_dns {
            true => self.tx.cs_clear_former_dn(&self.connector, dn),
            false => Ok(()),
        }
    }

    /// The object is gone from the directory.
    fn vanish(&mut self, o: &mut CsObject) -> Result<()> {
        self.stats.deleted += 1;
        self.idents.forget(o.id);
        self.dn_left(o.dn.as_deref(), o.id);
        if o.link.is_none_or(Link::is_inbound) {
            if let Some(d) = &o.dn {
                self.set_former_dn(d, None)?;
            }
        }
        match (o.export_state, o.link) {
            // Deprovisioned and now gone: done.
            (Some(ExportState::Delete), _) => self.tx.cs_delete(o.id),
            // Managed by outbound rules and gone from the target: export adds it again.
            // The password hash delivered to it went with it: the copy made again gets it again.
            (Some(ExportState::Present), Some(Link::Provisioned | Link::Adopted)) => {
                o.present = false;
                o.pending_export = true;
                self.tx.phs_forget(o.id)?;
                self.tx.cs_save(o).map(|_| ())
            }
            _ => {
                o.pending_import = Some(PendingImport::Delete);
                o.present = false;
                self.tx.cs_save(o).map(|_| ())
            }
        }
    }
}

/// Imports one connector inside the caller's transaction.
pub(crate) fn import(
    tx: &dyn WriteOps,
    connector: &mut dyn Connector,
    rules: &RuleSet,
    mode: Mode,
    allow_empty: bool,
    secret: &HashSet<String>,
    observer: &dyn Observer,
) -> Result<(ImportStats, Vec<ObjectError>)> {
    let name = connector.name().to_string();
    let _step = observer::start(observer, Step::Import(&name), None);
    let mut sink = Sink {
        tx,
        connector: name.clone(),
        seen: FastSet::default(),
        seen_dn: FastMap::default(),
        added: FastSet::default(),
        duplicated: FastSet::default(),
        stats: ImportStats { connector: name.clone(), ..Default::default() },
        errors: Vec::new(),
        observer,
        names: Names::new(rules.spellings(&name), secret),
        anchorless: tx.cs_has_anchorless(&name)?,
        former_dns: tx.cs_has_former_dns(&name)?,
        idents: diff::Idents::new(diff::form_of(tx, &name)?),
        preload: false,
        fresh: (!tx.cs_has_any(&name)?).then(FastSet::default),
        spent: Spent::default(),
        taken: taken::Taken::default(),
        pack_seed: None,
        full: false,
        listed: 0,
        named: None,
        carries: Vec::new(),
    };
    let carried = carried::Carried::load(tx, &name)?;
    sink.named = carried.any().then(FastSet::default);
    if sink.fresh.is_some() {
        // A first import into an empty database: its anchors, in no order, are indexed once
        // as the import ends rather than one by one.
        tx.cs_index_anchors_at_commit()?;
    }
    let watermark = tx.watermark(&name)?;
    let kept = Kept::of(&name);
    if mode == Mode::Delta && connector.capabilities().delta_import && !kept.too_long(tx)? {
        if let Some(w) = watermark.as_deref() {
            if let Some(new) = connector.delta_import(w, &mut sink)? {
                sink.settle_taken()?;
                sink.stats.mode = "delta".into();
                // An object a delta could not import would be in no later delta (the watermark
                // is past it) until it changes again: where a delta from the same watermark
                // reads it again, the watermark stays, and every run retries it. What the delta
                // did import stands; read again, it is unchanged.
                let reads_again = connector.capabilities().delta_reads_again;
                sink.stats.read_again = sink.stats.errors > 0 && reads_again;
                if !sink.stats.read_again {
                    tx.set_watermark(&name, Some(&new))?;
                }
                sink.carry(tx, carried, false, true)?;
                // Objects in error, read again or carried: after an hour, a full import.
                match (reads_again, sink.stats.errors > 0) {
                    (true, true) => kept.begin(tx, false)?,
                    _ => kept.end(tx)?,
                }
                return Ok((sink.stats, sink.errors));
            }
            tracing::warn!(connector = %name, "the delta watermark was not accepted; running a full import instead");
            if sink.stats.read > 0 || sink.taken.any() {
                return Err(Error::connector(&name, "a delta import asked for a full import after reading changes"));
            }
        }
    }
    sink.stats.mode = "full".into();
    sink.full = true;
    // A full import of a target compares every object with what export would send it, which
    // resolves every reference: the target's identifiers are read in one pass, once the first
    // object needs them.
    sink.preload = connector.capabilities().export;
    let new = connector.full_import(&mut sink)?;
    sink.settle_taken()?;
    // Counted only for an empty read (a count reads the whole connector space). A change file
    // applied on top of an empty export does not make the read any less empty.
    let had = if sink.listed == 0 && !allow_empty { tx.cs_count_present(&name)? } else { 0 };
    if had > 0 {
        return Err(Error::Refused(format!(
            "connector {name:?}: the import read no objects, but the connector space holds {had}. \
             An empty read is treated as an error, never as \"everyone was deleted\". If the directory \
             really is empty now, run `idflow import --full --allow-empty {name}`"
        )));
    }
    // A read that met any error (a record that did not parse whole, a record without its anchor,
    // the same object twice) is not complete: what it did not see is not inferred deleted
    // until a full import reads cleanly.
    if sink.stats.errors > 0 {
        return sink.ended_incomplete(tx, connector, kept, carried, new.as_deref());
    }
    // Whatever a complete full import did not see is gone, unless the connector, asked again,
    // finds it (it read its directory in parts, and the object moved between two).
    // Ids first: the objects themselves are read only for the few not seen.
    let unseen: Vec<i64> = tx.cs_present_ids(&name)?.into_iter().filter(|id| !sink.seen.contains(id)).collect();
    let mut keys = Vec::new();
    if connector.looks_up_unseen() {
        for id in &unseen {
            if let Some(o) = tx.cs_get(*id)? {
                keys.push(ObjectKey { anchor: o.anchor, dn: o.dn });
            }
        }
    }
    if !keys.is_empty() {
        sink.stats.looked_up = keys.iter().filter(|k| k.anchor.is_some()).count();
        connector.read_again(&keys, &mut sink)?;
        if sink.stats.errors > 0 {
            return sink.ended_incomplete(tx, connector, kept, carried, new.as_deref());
        }
    }
    for id in unseen {
        if sink.seen.contains(&id) {
            continue;
        }
        if let Some(mut o) = tx.cs_get(id)? {
            sink.vanish(&mut o)?;
        }
    }
    tx.set_watermark(&name, new.as_deref())?;
    kept.end(tx)?;
    sink.carry(tx, carried, true, true)?;
    Ok((sink.stats, sink.errors))
}

/// How long a delta watermark is kept by objects in error before a full import reads them
/// again: a delta from a kept watermark reads everything since it, more every run (DirSync's
/// cookies stay valid for months), and an add that waits for a deletion the directory no
/// longer reports is settled only by a full import.
const KEPT_AT_MOST: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Since when a connector's delta watermark has been kept by objects in error (`meta`).
pub(crate) struct Kept {
    pub(crate) key: String,
    connector: String,
}

impl Kept {
    pub(crate) fn of(connector: &str) -> Kept {
        Kept { key: format!("delta_kept_since:{connector}"), connector: connector.to_string() }
    }

    fn since(&self, tx: &dyn WriteOps) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(tx.meta_get(&self.key)?.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc()))
    }

    fn too_long(&self, tx: &dyn WriteOps) -> Result<bool> {
        let Some(since) = self.since(tx)? else { return Ok(false) };
        let long = chrono::Utc::now() - since >= KEPT_AT_MOST;
        if long {
            tracing::warn!(
                connector = %self.connector,
                "objects in error have kept the delta watermark since {since}: a full import reads them again"
            );
        }
        Ok(long)
    }

    /// Kept from now on, unless it was already (`again`: from now in any case, after a full
    /// import that met errors).
    fn begin(&self, tx: &dyn WriteOps, again: bool) -> Result<()> {
        match (self.since(tx)?, again) {
            (None, _) | (Some(_), true) => tx.meta_set(&self.key, &chrono::Utc::now().to_rfc3339()),
            _ => Ok(()),
        }
    }

    fn end(&self, tx: &dyn WriteOps) -> Result<()> {
        match self.since(tx)? {
            Some(_) => tx.meta_delete(&self.key),
            None => Ok(()),
        }
    }
}
