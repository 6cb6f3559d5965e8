//! A change that adds an object at a DN another object holds here: a new anchor where an
//! object idflow imported is still present. A directory holds one object at a DN, so the add
//! means that object was deleted or renamed: by a change the same import brings later
//! (syncrepl may send its deletions, a set of entryUUIDs, after the entries), or by none it
//! will ever bring (a change file missing a record). Made at once, the two would be two people
//! in the metaverse and two accounts in every target. The add waits for the end of the import
//! instead: made then if the DN is free, else an error that names both objects. A full import
//! frees the DNs of the objects it did not read, once it ends complete. An object that comes
//! again at a DN another object holds (a rename, as syncrepl sends one: the entry whole) waits
//! the same way; at the end, renames that wait for one another (DNs swapped) are made together.
use super::Sink;
use idflow_core::connector::{ImportedObject, ObjectKey};
use idflow_core::{dn, Result};
use idflow_store::CsObject;
use std::collections::{HashMap, HashSet};

/// What an error about two objects at one DN asks.
const ONE_AT_A_DN: &str =
    "A directory holds one object at a DN: if the other is gone, run a full import of a current export; else correct the change";

/// The adds and renames waiting for the end of the import, in the order they came: one per
/// anchor (a later change of the object replaces what of it waits), each with one.
#[derive(Default)]
pub(super) struct Taken {
    waiting: Vec<ImportedObject>,
    /// The anchors of what waits.
    anchors: HashSet<String>,
    /// The DNs (normalized) what waits is at, and how many wait at each.
    dns: HashMap<String, usize>,
}

impl Taken {
    pub(super) fn any(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn push(&mut self, o: ImportedObject) {
        if let Some(a) = &o.anchor {
            self.anchors.insert(a.clone());
        }
        if let Some(d) = &o.dn {
            *self.dns.entry(dn::norm(d)).or_default() += 1;
        }
        self.waiting.push(o);
    }

    /// What waits of the object with `anchor`, taken out.
    fn take(&mut self, anchor: &str) -> Option<ImportedObject> {
        if !self.anchors.remove(anchor) {
            return None;
        }
        let i = self.waiting.iter().position(|o| o.anchor.as_deref() == Some(anchor))?;
        let o = self.waiting.remove(i);
        if let Some(d) = &o.dn {
            let d = dn::norm(d);
            if let Some(n) = self.dns.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    self.dns.remove(&d);
                }
            }
        }
        Some(o)
    }

    /// Everything that waits, taken out.
    fn take_all(&mut self) -> Vec<ImportedObject> {
        self.anchors.clear();
        self.dns.clear();
        std::mem::take(&mut self.waiting)
    }

    /// The add waiting at `dn` (normalized), if any.
    fn at(&self, dn_norm: &str) -> Option<&ImportedObject> {
        if !self.dns.contains_key(dn_norm) {
            return None;
        }
        self.waiting.iter().find(|o| o.dn.as_deref().is_some_and(|d| dn::norm(d) == dn_norm))
    }
}

impl Sink<'_> {
    /// Stores `o`, a change's object, or keeps it for [`Sink::settle_taken`] when its DN is
    /// another present object's.
    pub(super) fn upsert_unless_taken(&mut self, o: ImportedObject) -> Result<()> {
        // The object whole as it is now: what waits of it from earlier in the import is older.
        self.drop_waiting(o.anchor.as_deref());
        if self.holders_of(&o, false)?.is_empty() {
            return self.upsert(o);
        }
        tracing::debug!(
            connector = %self.connector,
            dn = o.dn.as_deref().unwrap_or_default(),
            "an added or renamed object waits for the end of the import: another object here has its DN"
        );
        // Read, as far as a delta that turns into a full import can tell.
        self.stats.read += 1;
        self.taken.push(o);
        Ok(())
    }

    /// What waits of the object with `anchor`, dropped: a later change of it replaces it whole
    /// (a deletion, or the object as it is now), not to be made or renamed at the end of the
    /// import over that change.
    pub(super) fn drop_waiting(&mut self, anchor: Option<&str>) {
        self.take_waiting(anchor);
    }

    /// What waits of the object with `anchor`, taken out: a change that merges into the
    /// object merges into it.
    pub(super) fn take_waiting(&mut self, anchor: Option<&str>) -> Option<ImportedObject> {
        anchor.and_then(|a| self.taken.take(a))
    }

    /// Whether a change of part of object `o` (`what` it does), by anchor or by DN, comes after
    /// a change of it that waits: an error then (applied to what idflow holds, it would be
    /// undone at the end of the import).
    pub(super) fn changes_waiting(&mut self, key: &ObjectKey, o: &CsObject, what: &str) -> bool {
        if !o.anchor.as_deref().is_some_and(|a| self.taken.anchors.contains(a)) {
            return false;
        }
        self.obj_error(
            key,
            format!(
                "a delta {what} {key} after a change of it that waits for its DN (another object idflow holds has it): not \
                 applied. Run a full import"
            ),
        );
        true
    }

    /// Whether a change keyed by DN alone names the DN of an add that waits: which of the two
    /// objects it is about cannot be told (an error then, not a guess).
    pub(super) fn names_waiting_add(&mut self, key: &ObjectKey, what: &str) -> Result<bool> {
        let Some(d) = key.dn.as_deref().filter(|_| key.anchor.is_none()) else { return Ok(false) };
        let Some(added) = self.taken.at(&dn::norm(d)).map(|o| o.anchor.clone().unwrap_or_default()) else { return Ok(false) };
        let held = match self.present_at(d)?.first() {
            Some(id) => self.named(*id)?,
            None => "another object".into(),
        };
        self.stats.read += 1;
        self.obj_error(
            key,
            format!(
                "a delta {what} {key} after a change that added an object there (anchor {added}) while idflow holds one ({held}): \
                 which of the two it is about cannot be told, not applied. {ONE_AT_A_DN}"
            ),
        );
        Ok(true)
    }

    /// The end of the import: each add or rename that waited is made if its DN is free by now,
    /// or held only by objects whose own changes that wait move them away and are made (a
    /// chain of renames, DNs swapped, or moved round a ring); the rest are errors, those
    /// objects left where they were. A full import that ends complete (no error, and no add
    /// that waits for an object it read) frees the DNs of the objects it did not read: they
    /// are gone.
    pub(super) fn settle_taken(&mut self) -> Result<()> {
        let mut complete = self.full && self.stats.errors == 0;
        for o in &self.taken.waiting {
            if complete && !self.holders_of(o, true)?.is_empty() {
                complete = false;
            }
        }
        let waiting = self.taken.take_all();
        if waiting.is_empty() {
            return Ok(());
        }
        // The object each change is of, where idflow holds it (a rename; else an add).
        let mut ids = Vec::with_capacity(waiting.len());
        for o in &waiting {
            ids.push(o.anchor.as_deref().map(|a| self.tx.cs_id_by_anchor(&self.connector, a)).transpose()?.flatten());
        }
        let kept = self.kept_by(&waiting, &ids, complete)?;
        // The DNs those that are made leave are free for the others from the start (in whatever
        // order they are made). Two made at one DN are a duplicate: upsert finds it.
        for (id, held) in ids.iter().zip(&kept) {
            if let (Some(id), None) = (*id, held) {
                let old = self.tx.cs_get(id)?.and_then(|o| o.dn);
                self.dn_left(old.as_deref(), id);
            }
        }
        for ((o, held), id) in waiting.into_iter().zip(kept).zip(ids) {
            self.stats.read -= 1;
            match held {
                Some(held) => self.not_made(o, held, id.is_some())?,
                None => self.upsert(o)?,
            }
        }
        Ok(())
    }

    /// Of the changes that waited (`ids`: the object each is of, where idflow holds it): for
    /// each, an object present at its DN that keeps it from being made (`None`: it is made).
    /// An object holds a DN for good unless its own change moves it away and is made; one this
    /// import added does not (two adds at one DN are a duplicate, as in a full import: both
    /// records errors, the first taken out again).
    fn kept_by(&self, waiting: &[ImportedObject], ids: &[Option<i64>], read: bool) -> Result<Vec<Option<i64>>> {
        // Objects idflow holds whose changes wait, by id: the index of their change.
        let movers: HashMap<i64, usize> = ids.iter().enumerate().filter_map(|(i, id)| id.map(|id| (id, i))).collect();
        let mut holders = Vec::with_capacity(waiting.len());
        for o in waiting {
            let mut h = self.holders_of(o, read)?;
            h.retain(|h| !self.added.contains(h));
            holders.push(h);
        }
        let mut kept: Vec<Option<i64>> = vec![None; waiting.len()];
        loop {
            let mut changed = false;
            for i in 0..waiting.len() {
                if kept[i].is_some() {
                    continue;
                }
                if let Some(&h) = holders[i].iter().find(|h| movers.get(h).is_none_or(|&j| kept[j].is_some())) {
                    kept[i] = Some(h);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(kept)
    }

    /// A change that waited and is not made (a rename of an object idflow holds, or an add): an
    /// error naming `held`, which has its DN.
    fn not_made(&mut self, o: ImportedObject, held: i64, rename: bool) -> Result<()> {
        self.stats.read += 1;
        let held = self.named(held)?;
        let key = ObjectKey { anchor: o.anchor, dn: o.dn };
        let anchor = key.anchor.as_deref().unwrap_or_default();
        let verb = if rename { "renames an object to" } else { "adds" };
        self.obj_error(
            &key,
            format!(
                "a change {verb} {key} (anchor {anchor}) where idflow holds another object ({held}), and none deletes or renames \
                 that one: not applied. {ONE_AT_A_DN}"
            ),
        );
        Ok(())
    }

    /// Whether `o`'s rename to `new_dn` (by a change file, in its order) is one to the DN of
    /// another object present here (in a full import, one it read): an error then, not two
    /// objects at one DN.
    pub(super) fn rename_taken(&mut self, key: &ObjectKey, o: &CsObject, new_dn: &str) -> Result<bool> {
        let present = self.present_at(new_dn)?;
        let Some(other) = present.into_iter().find(|id| *id != o.id && (!self.full || self.seen.contains(id))) else {
            return Ok(false);
        };
        let held = self.named(other)?;
        self.obj_error(
            key,
            format!("a delta renames {key} to {new_dn}, where idflow holds another object ({held}): not applied. {ONE_AT_A_DN}"),
        );
        Ok(true)
    }

    /// Why a change by `key` finds no object to change (`what` it does).
    pub(super) fn not_held(&self, what: &str, key: &ObjectKey) -> Result<String> {
        if let (None, Some(d)) = (&key.anchor, &key.dn) {
            let present = self.present_at(d)?;
            if present.len() > 1 {
                let named = present.iter().map(|id| self.named(*id)).collect::<Result<Vec<_>>>()?.join(", ");
                return Ok(format!(
                    "a delta {what} {key}, which {} objects idflow holds have ({named}): which one it is about cannot be told, not \
                     applied. {ONE_AT_A_DN}",
                    present.len()
                ));
            }
        }
        Ok(format!("a delta {what} an object idflow has not imported; run a full import"))
    }

    /// An object here, by its anchor.
    fn named(&self, id: i64) -> Result<String> {
        Ok(match self.tx.cs_get(id)?.and_then(|h| h.anchor) {
            Some(a) => format!("anchor {a}"),
            None => format!("object {id}"),
        })
    }

    /// The other objects present here at `o`'s DN, when `o` is a new object (an anchor no
    /// object here has, and not a create idflow made that it would confirm) or one it moves
    /// there (an object here at another DN: a rename); `read`: only those this import read.
    fn holders_of(&self, o: &ImportedObject, read: bool) -> Result<Vec<i64>> {
        let (Some(anchor), Some(d)) = (&o.anchor, &o.dn) else { return Ok(Vec::new()) };
        let key = ObjectKey { anchor: Some(anchor.clone()), dn: Some(d.clone()) };
        if self.stored_anchor(&key).is_some() {
            if let Some(id) = self.tx.cs_id_by_anchor(&self.connector, anchor)? {
                let mut present = self.present_at(d)?;
                // At this DN already: no rename (whoever else is there was there before).
                if present.contains(&id) {
                    return Ok(Vec::new());
                }
                present.retain(|p| !read || self.seen.contains(p));
                return Ok(present);
            }
        }
        // An object without an anchor yet (a create not confirmed) is this one: found by its DN.
        if self.anchorless && self.find_by_dn(&key)?.is_some() {
            return Ok(Vec::new());
        }
        let mut present = self.present_at(d)?;
        present.retain(|id| !read || self.seen.contains(id));
        Ok(present)
    }

    /// The objects present (not deleted) here at `dn`, their rows not read.
    pub(super) fn present_at(&self, dn: &str) -> Result<Vec<i64>> {
        Ok(self.tx.cs_states_by_dn(&self.connector, dn)?.into_iter().filter(|s| s.present).map(|s| s.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::import::{import, ImportStats, Mode};
    use crate::observer::Silent;
    use crate::tests::{engine_in, CONFIG, RULES};
    use idflow_core::connector::{
        Capabilities, Connector, DeltaChange, ExportOp, ImportSink, ImportedObject, ObjectKey, OpResult, RefForm,
    };
    use idflow_core::ObjectError;
    use idflow_core::Result;
    use idflow_policy::RuleSet;
    use idflow_store::ReadOps;
    use idflow_store::WriteOps;

    /// A directory whose full import reads `objects` and whose delta import sends `changes`, in
    /// their order (as syncrepl may: an entry made again before the old one's deletion).
    struct Changes {
        objects: Vec<ImportedObject>,
        changes: Vec<DeltaChange>,
        /// As LDAP's deltas (true), or an LDIF change file (false).
        reads_again: bool,
    }

    impl Connector for Changes {
        fn name(&self) -> &str {
            "corp"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                delta_import: true,
                delta_reads_again: self.reads_again,
                export: false,
                local_anchor: false,
                reference_form: RefForm::Dn,
                max_batch: 1,
                owner_attribute: None,
                reference_attributes: &[],
                unique_attributes: &[],
            }
        }
        fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
            for o in &self.objects {
                sink.object(o.clone())?;
            }
            Ok(Some("w".into()))
        }
        fn delta_import(&mut self, watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>> {
            for c in std::mem::take(&mut self.changes) {
                sink.change(c)?;
            }
            Ok(Some(format!("{watermark}+")))
        }
        fn export(&mut self, _ops: &[ExportOp]) -> Result<Vec<OpResult>> {
            Ok(Vec::new())
        }
    }

    /// A directory of ada (anchor a0) and bob (b0), its deltas read again as LDAP's are.
    fn ada_and_bob() -> Changes {
        Changes { objects: vec![person("a0", "ada"), person("b0", "bob")], changes: Vec::new(), reads_again: true }
    }

    fn run_import(tx: &dyn WriteOps, rules: &RuleSet, c: &mut Changes, mode: Mode) -> (ImportStats, Vec<ObjectError>) {
        import(tx, c, rules, mode, false, &Default::default(), &Silent).expect("import")
    }

    /// The anchors of the objects present at `uid=<uid>,dc=example,dc=org`.
    fn anchors_at(tx: &dyn WriteOps, uid: &str) -> Vec<String> {
        let dn = format!("uid={uid},dc=example,dc=org");
        let ids = tx.cs_states_by_dn("corp", &dn).expect("states").into_iter().filter(|s| s.present).map(|s| s.id);
        ids.map(|id| tx.cs_get(id).expect("read").and_then(|o| o.anchor).unwrap_or_default()).collect()
    }

    fn person(anchor: &str, uid: &str) -> ImportedObject {
        ImportedObject {
            anchor: Some(anchor.into()),
            dn: Some(format!("uid={uid},dc=example,dc=org")),
            object_type: "person".into(),
            attrs: Default::default(),
        }
    }

    #[test]
    fn a_dn_names_the_object_present_there_and_in_a_full_import_the_one_read() {
        use crate::import::the_one_at_dn;
        let cs = |id: i64, present: bool| {
            let mut o = idflow_store::CsObject::new("corp", "person");
            (o.id, o.present) = (id, present);
            o
        };
        let one = |found: Vec<idflow_store::CsObject>, read: Option<&[i64]>| {
            let read: Option<idflow_core::fast_hash::FastSet<i64>> = read.map(|r| r.iter().copied().collect());
            the_one_at_dn(found, read.as_ref()).map(|o| o.id)
        };
        assert_eq!(one(vec![cs(1, false)], None), Some(1), "the only one, deleted: the change meets the deletion");
        assert_eq!(one(vec![cs(1, false), cs(2, true)], None), Some(2), "deleted and made again");
        assert_eq!(one(vec![cs(1, false), cs(2, false)], None), Some(2), "all deleted: the last made");
        assert_eq!(one(vec![cs(1, true), cs(2, true)], None), None, "two present: which cannot be told");
        assert_eq!(one(vec![cs(1, true), cs(2, true)], Some(&[2])), Some(2), "a full import: the one it read");
        assert_eq!(one(vec![cs(1, true), cs(2, true)], Some(&[])), None, "neither read");
        assert_eq!(one(vec![], None), None);
    }

    #[test]
    fn an_add_waits_for_a_deletion_later_in_the_import_and_is_an_error_without_one() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        // Made again at her DN, then the old one's deletion: one ada, the new one.
        corp.changes =
            vec![DeltaChange::Upsert(person("a2", "ada")), DeltaChange::Delete(ObjectKey { anchor: Some("a0".into()), dn: None })];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.read, stats.added, stats.deleted), (2, 1, 1), "{stats:?}");
        let at = |dn: &str| tx.cs_states_by_dn("corp", dn).expect("states").into_iter().filter(|s| s.present).count();
        assert_eq!(at("uid=ada,dc=example,dc=org"), 1);
        assert!(tx.cs_by_anchor("corp", "a2").expect("read").is_some_and(|o| o.present));
        assert!(tx.cs_by_anchor("corp", "a0").expect("read").is_some_and(|o| !o.present));
        // Made at bob's DN with no change to bob: an error naming him, nothing made.
        corp.changes = vec![DeltaChange::Upsert(person("b3", "bob"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.read, stats.added, stats.errors), (1, 0, 1), "{stats:?}");
        assert!(errors[0].message.contains("where idflow holds another object (anchor b0)"), "{errors:?}");
        assert!(tx.cs_by_anchor("corp", "b3").expect("read").is_none());
        assert_eq!(at("uid=bob,dc=example,dc=org"), 1);
        // A full import that reads only the new one: bob's DN is free once it ends, bob gone.
        corp.objects = vec![person("a2", "ada"), person("b3", "bob")];
        let (stats, errors) = run(&mut corp, Mode::Full);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.added, stats.deleted), (1, 1), "{stats:?}");
        assert_eq!(at("uid=bob,dc=example,dc=org"), 1);
        assert!(tx.cs_by_anchor("corp", "b0").expect("read").is_some_and(|o| !o.present));
    }

    /// A rename (an object syncrepl sends again at another DN) onto a DN another object holds
    /// waits for the end of the import, as an add there does: made if a later change frees the
    /// DN, else an error naming the other, the object left where it was. A later change of the
    /// same object replaces what of it waits.
    #[test]
    fn a_rename_onto_a_dn_another_object_holds_waits_for_the_end_of_the_import() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        corp.objects.push(person("c0", "carol"));
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        let at = |uid: &str| anchors_at(&tx, uid);
        let gone = |a: &str| ObjectKey { anchor: Some(a.into()), dn: None };
        // Ada renamed to bob's DN, then bob's deletion: ada at bob's DN, bob gone.
        corp.changes = vec![DeltaChange::Upsert(person("a0", "bob")), DeltaChange::Delete(gone("b0"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.read, stats.renamed, stats.deleted), (2, 1, 1), "{stats:?}");
        assert_eq!((at("bob"), at("ada")), (vec!["a0".to_string()], vec![]));
        // Ada renamed to carol's DN, and nothing moves carol: an error naming carol, ada stays.
        corp.changes = vec![DeltaChange::Upsert(person("a0", "carol"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.read, stats.renamed, stats.errors), (1, 0, 1), "{stats:?}");
        assert!(errors[0].message.contains("a change renames an object to uid=carol"), "{errors:?}");
        assert!(errors[0].message.contains("where idflow holds another object (anchor c0)"), "{errors:?}");
        assert_eq!((at("bob"), at("carol")), (vec!["a0".to_string()], vec!["c0".to_string()]));
        // Renamed to carol's DN, then (later in the import) to a free one: the later applies.
        corp.changes = vec![DeltaChange::Upsert(person("a0", "carol")), DeltaChange::Upsert(person("a0", "dora"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.read, stats.renamed), (2, 1), "{stats:?}");
        assert_eq!((at("dora"), at("bob"), at("carol")), (vec!["a0".to_string()], vec![], vec!["c0".to_string()]));
        // Renamed onto carol's DN, then deleted: deleted, not made again at the end.
        corp.changes = vec![DeltaChange::Upsert(person("a0", "carol")), DeltaChange::Delete(gone("a0")), DeltaChange::Delete(gone("c0"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(stats.deleted, 2, "{stats:?}");
        assert!(at("carol").is_empty() && at("dora").is_empty());
        // An object sent again at its own DN, which another object shares already (a store an
        // older release left so), is no rename.
        corp.changes = vec![DeltaChange::Upsert(person("b9", "bob"))];
        run(&mut corp, Mode::Delta);
        let mut other = idflow_store::CsObject::new("corp", "person");
        (other.anchor, other.dn, other.present) = (Some("z9".into()), Some("uid=bob,dc=example,dc=org".into()), true);
        tx.cs_save(&other).expect("save");
        assert_eq!(at("bob").len(), 2);
        let mut titled = person("b9", "bob");
        titled.attrs.insert("title".into(), vec![idflow_core::Value::Str("Clerk".into())]);
        corp.changes = vec![DeltaChange::Upsert(titled)];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty() && stats.updated == 1, "{stats:?} {errors:?}");
        // Two DNs swapped in one import, in either order: no error, each at the other's DN.
        for (first, second) in [("x1", "y1"), ("y1", "x1")] {
            corp.changes = vec![DeltaChange::Upsert(person("x1", "xena")), DeltaChange::Upsert(person("y1", "yuri"))];
            run(&mut corp, Mode::Delta);
            let to = |a: &str| person(a, if a == "x1" { "yuri" } else { "xena" });
            corp.changes = vec![DeltaChange::Upsert(to(first)), DeltaChange::Upsert(to(second))];
            let (stats, errors) = run(&mut corp, Mode::Delta);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!((stats.read, stats.renamed), (2, 2), "{stats:?}");
            assert_eq!((at("xena"), at("yuri")), (vec!["y1".to_string()], vec!["x1".to_string()]));
        }
    }

    /// Renames that wait: a chain moves along, a ring is made together, one whose holder stays
    /// is an error (and so is one onto the DN that one keeps); a deletion by DN, a merge and a
    /// change by anchor of an object whose rename waits.
    #[test]
    fn renames_that_wait_for_one_another() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        corp.objects = ["xena", "yuri", "zed"].iter().map(|u| person(&u[..1], u)).collect();
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        let at = |uid: &str| anchors_at(&tx, uid);
        let where_ = || [at("xena"), at("yuri"), at("zed"), at("wolf")].map(|v| v.join(","));
        let up = |a: &str, u: &str| DeltaChange::Upsert(person(a, u));
        // x to zed, which z keeps; then y to x's DN, which x then keeps: two errors, nothing moves.
        corp.changes = vec![up("x", "zed"), up("y", "xena")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.renamed, errors.len()), (0, 2), "{stats:?} {errors:?}");
        assert!(errors.iter().any(|x| x.message.contains("renames an object to uid=xena") && x.message.contains("(anchor x)")));
        assert_eq!(where_(), ["x", "y", "z", ""]);
        // x to y's DN, y to x's, then x sent again at its own DN: y's rename is an error.
        corp.changes = vec![up("x", "yuri"), up("y", "xena"), up("x", "xena")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.renamed, errors.len()), (0, 1), "{stats:?} {errors:?}");
        assert_eq!(where_(), ["x", "y", "z", ""]);
        // A ring of three: made together.
        corp.changes = vec![up("x", "yuri"), up("y", "zed"), up("z", "xena")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.read, stats.renamed), (3, 3), "{stats:?}");
        assert_eq!(where_(), ["z", "x", "y", ""]);
        // A chain met from its far end: moves along.
        corp.changes = vec![up("y", "yuri"), up("x", "xena"), up("z", "wolf")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(stats.renamed, 3, "{stats:?}");
        assert_eq!(where_(), ["x", "y", "", "z"]);
        // Renamed onto y's DN, then deleted by its DN alone: deleted, nothing made at the end.
        let by_dn = |u: &str| ObjectKey { anchor: None, dn: Some(format!("uid={u},dc=example,dc=org")) };
        corp.changes = vec![up("x", "yuri"), DeltaChange::Delete(by_dn("xena"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.renamed, stats.deleted), (0, 1), "{stats:?}");
        assert_eq!(where_(), ["", "y", "", "z"]);
        // A rename that waits, then a merge of part of the object: merged into what waits.
        let mut renamed = person("y", "wolf");
        renamed.attrs.insert("sn".into(), vec![idflow_core::Value::Str("Yule".into())]);
        let mut part = person("y", "wolf");
        part.attrs.insert("title".into(), vec![idflow_core::Value::Str("Clerk".into())]);
        let gone = ObjectKey { anchor: Some("z".into()), dn: None };
        corp.changes = vec![DeltaChange::Upsert(renamed), DeltaChange::Merge(part), DeltaChange::Delete(gone)];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.renamed, stats.deleted), (1, 1), "{stats:?}");
        assert_eq!(where_(), ["", "", "", "y"]);
        let y = tx.cs_by_anchor("corp", "y").expect("read").expect("y");
        assert!(y.attrs.contains_key("sn") && y.attrs.contains_key("title"), "{:?}", y.attrs);
        // A change by anchor of part of an object whose rename waits: an error, not applied.
        corp.changes = vec![up("q", "xena")];
        run(&mut corp, Mode::Delta);
        let key = ObjectKey { anchor: Some("q".into()), dn: None };
        let modify = |key| DeltaChange::Modify { key, changes: Vec::new() };
        corp.changes = vec![up("q", "wolf"), modify(key), modify(by_dn("xena"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.read, errors.len()), (3, 3), "{errors:?}");
        assert_eq!(errors.iter().filter(|x| x.message.contains("after a change of it that waits for its DN")).count(), 2, "{errors:?}");
        assert_eq!(where_(), ["q", "", "", "y"]);
        // DNs swapped by merges (DirSync), one of the two met at its own DN first in the import:
        // its DN is free for the other all the same.
        let merge = |a: &str, u: &str| DeltaChange::Merge(person(a, u));
        corp.changes = vec![merge("y", "wolf"), merge("q", "wolf"), merge("y", "xena")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.read, stats.renamed), (3, 2), "{stats:?}");
        assert_eq!(where_(), ["y", "", "", "q"]);
    }

    /// A delta that met an error keeps its watermark where a delta reads the same objects again
    /// (LDAP): the next run retries them, and what the delta did import is unchanged then (a
    /// deletion read again deletes nothing). An LDIF change file's errors are its run's.
    #[test]
    fn a_delta_that_met_errors_keeps_its_watermark_where_it_reads_them_again() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        let changes =
            || vec![DeltaChange::Upsert(person("b3", "bob")), DeltaChange::Delete(ObjectKey { anchor: Some("a0".into()), dn: None })];
        let watermark = || tx.watermark("corp").expect("watermark");
        for (round, deleted) in [(1, 1), (2, 0)] {
            corp.changes = changes();
            let (stats, errors) = run(&mut corp, Mode::Delta);
            assert_eq!((stats.errors, stats.deleted, stats.read_again), (1, deleted, true), "round {round}: {stats:?}");
            assert!(errors[0].message.contains("where idflow holds another object (anchor b0)"), "{errors:?}");
            assert_eq!(watermark().as_deref(), Some("w"), "round {round}");
        }
        assert!(tx.cs_by_anchor("corp", "a0").expect("read").is_some_and(|o| !o.present));
        // Fixed (bob's deletion read): the watermark moves.
        corp.changes =
            vec![DeltaChange::Delete(ObjectKey { anchor: Some("b0".into()), dn: None }), DeltaChange::Upsert(person("b3", "bob"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty() && !stats.read_again, "{errors:?}");
        assert_eq!(watermark().as_deref(), Some("w+"));
        // A change file: applied once (the engine carries its errors to later runs instead).
        corp.reads_again = false;
        corp.changes = vec![DeltaChange::Upsert(person("c4", "bob"))];
        let (stats, _) = run(&mut corp, Mode::Delta);
        assert_eq!((stats.errors, stats.read_again), (1, false), "{stats:?}");
        assert_eq!(watermark().as_deref(), Some("w++"));
    }

    /// A watermark kept by objects in error for an hour: the next import is full, and settles
    /// an add that waits for a deletion no delta reports any more; the watermark moves again.
    #[test]
    fn a_watermark_kept_for_an_hour_gives_way_to_a_full_import() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        let kept = crate::import::Kept::of("corp");
        for _ in 0..2 {
            corp.changes = vec![DeltaChange::Upsert(person("b3", "bob"))];
            let (stats, _) = run(&mut corp, Mode::Delta);
            assert_eq!((stats.mode.as_str(), stats.errors), ("delta", 1), "{stats:?}");
        }
        assert!(tx.meta_get(&kept.key).expect("meta").is_some());
        let hour_ago = (chrono::Utc::now() - chrono::TimeDelta::minutes(61)).to_rfc3339();
        idflow_store::WriteOps::meta_set(&tx, &kept.key, &hour_ago).expect("meta");
        // The directory as it is: bob's deletion was missed, the new bob is at his DN.
        corp.objects = vec![person("a0", "ada"), person("b3", "bob")];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.mode.as_str(), stats.added, stats.deleted), ("full", 1, 1), "{stats:?}");
        assert_eq!(tx.watermark("corp").expect("watermark").as_deref(), Some("w"));
        assert!(tx.meta_get(&kept.key).expect("meta").is_none());
    }

    /// A delta that names an object twice (DirSync, when it changed again between two pages)
    /// applies the later; in a full import, two objects read with one anchor are an error.
    #[test]
    fn a_delta_naming_an_object_twice_applies_the_later() {
        let e = engine_in(CONFIG, RULES);
        let tx = e.store.write().expect("tx");
        let mut corp = ada_and_bob();
        let run = |c: &mut Changes, mode| run_import(&tx, &e.rules, c, mode);
        run(&mut corp, Mode::Full);
        let titled = |t: &str| {
            let mut o = person("a0", "ada");
            o.attrs.insert("title".into(), vec![idflow_core::Value::Str(t.into())]);
            o
        };
        corp.changes = vec![DeltaChange::Upsert(titled("Analyst")), DeltaChange::Upsert(titled("Director"))];
        let (stats, errors) = run(&mut corp, Mode::Delta);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(stats.updated, 2, "{stats:?}");
        let ada = tx.cs_by_anchor("corp", "a0").expect("read").expect("ada");
        assert_eq!(ada.attrs.get("title"), Some(&vec![idflow_core::Value::Str("Director".into())]));
        corp.objects = vec![person("a0", "ada"), person("a0", "bob")];
        let (_, errors) = run(&mut corp, Mode::Full);
        assert!(errors.iter().any(|x| x.message.contains("duplicate anchor")), "{errors:?}");
    }
}
