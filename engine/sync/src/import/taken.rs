//! A change that adds an object at a DN another object holds here: a new anchor where an
//! object idflow imported is still present. A directory holds one object at a DN, so the add
//! means that object was deleted or renamed: by a change the same import brings later
//! (syncrepl may send its deletions, a set of entryUUIDs, after the entries), or by none it
//! will ever bring (a change file missing a record). Made at once, the two would be two people
//! in the metaverse and two accounts in every target. The add waits for the end of the import
//! instead: made then if the DN is free, else an error that names both objects. A full import
//! frees the DNs of the objects it did not read, once it ends complete. An object that comes
//! again at a DN another object holds (a rename, as syncrepl sends one: the entry whole) waits
//! the same way, unless that other object's own change that waits moves it away (DNs swapped).
use super::Sink;
use idflow_core::connector::{ImportedObject, ObjectKey};
use idflow_core::{dn, Result};
use idflow_store::CsObject;
use std::collections::VecDeque;

/// What an error about two objects at one DN asks.
const ONE_AT_A_DN: &str =
    "A directory holds one object at a DN: if the other is gone, run a full import of a current export; else correct the change";

/// The adds and renames waiting for the end of the import, in the order they came.
#[derive(Default)]
pub(super) struct Taken {
    waiting: VecDeque<ImportedObject>,
}

impl Taken {
    pub(super) fn any(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The add waiting at `dn` (normalized), if any.
    fn at(&self, dn_norm: &str) -> Option<&ImportedObject> {
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
            "an added object waits for the end of the import: another object here has its DN"
        );
        // Read, as far as a delta that turns into a full import can tell.
        self.stats.read += 1;
        self.taken.waiting.push_back(o);
        Ok(())
    }

    /// What waits of the object with `anchor`, dropped: a later change of it replaces it whole
    /// (a deletion, or the object as it is now), not to be made or renamed at the end of the
    /// import over that change.
    pub(super) fn drop_waiting(&mut self, anchor: Option<&str>) {
        if let Some(a) = anchor {
            self.taken.waiting.retain(|o| o.anchor.as_deref() != Some(a));
        }
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

    /// The end of the import: each add or rename that waited is made if its DN is free now
    /// (or its holder's own change that waits moves it away), else is an error. In their order:
    /// what waits still counts as on its way. A full import that ends complete (no error, and
    /// no add that waits for an object it read) frees the DNs of the objects it did not read:
    /// they are gone.
    pub(super) fn settle_taken(&mut self) -> Result<()> {
        let mut complete = self.full && self.stats.errors == 0;
        for o in &self.taken.waiting {
            if complete && !self.holders_of(o, true)?.is_empty() {
                complete = false;
            }
        }
        while let Some(o) = self.taken.waiting.pop_front() {
            self.stats.read -= 1;
            let holders = self.holders_of(&o, complete)?;
            // None, or one this import added (two adds at one DN: a duplicate, as in a full
            // import, both records errors and the first taken out again).
            match holders.first() {
                Some(first) if !self.added.contains(first) => {
                    self.stats.read += 1;
                    let held = self.named(*first)?;
                    let key = ObjectKey { anchor: o.anchor, dn: o.dn };
                    let anchor = key.anchor.as_deref().unwrap_or_default();
                    let verb = match self.tx.cs_id_by_anchor(&self.connector, anchor)? {
                        Some(_) => "renames an object to",
                        None => "adds",
                    };
                    self.obj_error(
                        &key,
                        format!(
                            "a change {verb} {key} (anchor {anchor}) where idflow holds another object ({held}), and none deletes or \
                             renames that one: not applied. {ONE_AT_A_DN}"
                        ),
                    );
                }
                _ => self.upsert(o)?,
            }
        }
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
                return self.staying(present, d);
            }
        }
        // An object without an anchor yet (a create not confirmed) is this one: found by its DN.
        if self.anchorless && self.find_by_dn(&key)?.is_some() {
            return Ok(Vec::new());
        }
        let mut present = self.present_at(d)?;
        present.retain(|id| !read || self.seen.contains(id));
        self.staying(present, d)
    }

    /// `holders` of `dn` but those a change that waits moves to another DN: DNs swapped, or
    /// moved along a chain, in one import wait for no one. (Should that change fail at the
    /// end, its object stays where it was, in error, and shares its DN until it is fixed.)
    fn staying(&self, mut holders: Vec<i64>, dn: &str) -> Result<Vec<i64>> {
        if holders.is_empty() || self.taken.waiting.is_empty() {
            return Ok(holders);
        }
        let dn = dn::norm(dn);
        let mut leaving = Vec::new();
        for w in &self.taken.waiting {
            let (Some(anchor), Some(to)) = (&w.anchor, &w.dn) else { continue };
            if dn::norm(to) != dn {
                leaving.extend(self.tx.cs_id_by_anchor(&self.connector, anchor)?);
            }
        }
        holders.retain(|h| !leaving.contains(h));
        Ok(holders)
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
        let at = |dn: &str| -> Vec<String> {
            let dn = format!("uid={dn},dc=example,dc=org");
            let ids = tx.cs_states_by_dn("corp", &dn).expect("states").into_iter().filter(|s| s.present).map(|s| s.id);
            ids.map(|id| tx.cs_get(id).expect("read").and_then(|o| o.anchor).unwrap_or_default()).collect()
        };
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
        // An object sent again at its own DN, which another object shares already, is no rename.
        corp.changes = vec![DeltaChange::Upsert(person("b9", "bob"))];
        run(&mut corp, Mode::Delta);
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
