//! An export to a connector that holds batches unwritten (`Connector::export_held`): what is
//! recorded of them is committed only once the connector wrote them, and nothing of them is
//! recorded, or written, when a later batch or the write fails.
use crate::engine::Engine;
use crate::export;
use crate::observer::Silent;
use idflow_core::connector::{Capabilities, Connector, ExportOp, ImportSink, OpResult, RefForm};
use idflow_core::{Error, Result};
use idflow_store::ReadOps;

const RULES: &str = r#"
[[rule]]
name = "hr"
direction = "inbound"
connector = "hr"
source_type = "worker"
metaverse_type = "person"
link = "provision"
[rule.flows]
mail = "source.mail"

[[rule]]
name = "out"
direction = "outbound"
connector = "cloud"
metaverse_type = "person"
target_type = "User"
link = "provision"
[rule.flows]
userName = "mv.mail"
"#;

/// Where a test's metaverse is: in memory, and in a file in a folder of its own (where an export
/// to a target whose ids are idflow's makes its batches ahead, with a connection of its own).
fn both_stores() -> [Option<tempfile::TempDir>; 2] {
    [None, Some(tempfile::tempdir().expect("a temporary folder"))]
}

/// Five people provisioned to `cloud` (the unit tests' connectors), pending export, with the
/// metaverse in `dir` (in memory when `None`).
fn five_pending(dir: &Option<tempfile::TempDir>) -> Engine {
    people_pending(5, dir)
}

/// `n` people provisioned to `cloud`, pending export.
fn people_pending(n: usize, dir: &Option<tempfile::TempDir>) -> Engine {
    use crate::tests::{engine_in, engine_on_disk, put, sync, CONFIG};
    let e = match dir {
        None => engine_in(CONFIG, RULES),
        Some(d) => engine_on_disk(CONFIG, RULES, d.path()),
    };
    for i in 0..n {
        put(&e, "hr", "worker", &format!("uid=w{i},o=hr"), &[("mail", &format!("w{i}@example.org"))]);
    }
    assert!(sync(&e).is_empty());
    assert_eq!(pending(&e), n as i64);
    e
}

fn pending(e: &Engine) -> i64 {
    e.store.read().expect("tx").cs_count_pending_export(Some("cloud")).expect("count")
}

/// Holds every batch until flushed; fails the export call numbered `fail_call`, or the flush.
#[derive(Default)]
struct Holding {
    held: Vec<ExportOp>,
    written: Vec<ExportOp>,
    calls: usize,
    flushes: usize,
    fail_call: Option<usize>,
    fail_flush: bool,
    /// The operations from this one on (counted over every call) fail, and are not held.
    fail_from: Option<usize>,
    /// The export call, so numbered, whose adds are given other ids than the ones sent (as a
    /// target that names objects anew would).
    rename_call: Option<usize>,
    /// Adds are answered with a DN (as the file target answers an object added with one).
    answer_dn: bool,
    ops: usize,
}

impl Connector for Holding {
    fn name(&self) -> &str {
        "cloud"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delta_import: false,
            delta_reads_again: false,
            export: true,
            local_anchor: true,
            reference_form: RefForm::Anchor,
            max_batch: 2,
            owner_attribute: None,
            reference_attributes: &[],
            unique_attributes: &[],
        }
    }

    fn full_import(&mut self, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn delta_import(&mut self, _watermark: &str, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        let results = self.export_held(ops)?;
        self.flush()?;
        Ok(results)
    }

    fn export_held(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.calls += 1;
        if self.fail_call == Some(self.calls) {
            return Err(Error::connector("cloud", "the directory went away"));
        }
        let mut results = Vec::new();
        for op in ops {
            self.ops += 1;
            if self.fail_from.is_some_and(|from| self.ops > from) {
                results.push(OpResult::Failed("refused".into()));
                continue;
            }
            let mut op = op.clone();
            if self.rename_call == Some(self.calls) {
                op.anchor = op.anchor.map(|a| format!("{a}-renamed"));
            }
            let dn = self.answer_dn.then(|| format!("cn={}", op.anchor.as_deref().unwrap_or_default()));
            results.push(OpResult::Done { anchor: op.anchor.clone(), dn });
            self.held.push(op);
        }
        Ok(results)
    }

    fn unwritten(&self) -> usize {
        self.held.len()
    }

    fn flush(&mut self) -> Result<()> {
        if self.fail_flush {
            return Err(Error::connector("cloud", "the disk is full"));
        }
        self.flushes += 1;
        self.written.append(&mut self.held);
        Ok(())
    }

    fn discard(&mut self) {
        self.held.clear();
    }
}

#[test]
fn batches_held_unwritten_are_recorded_once_written() {
    for dir in both_stores() {
        let taken = crate::export_ahead::TAKEN.with(|n| n.get());
        let e = five_pending(&dir);
        let mut c = Holding::default();
        let (stats, errors) = export::export(&e.store, &mut c, 100, None, &Silent).expect("export");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.added, stats.calls, c.calls), (5, 3, 3), "three batches of at most two");
        assert_eq!((c.flushes, c.written.len(), pending(&e)), (1, 5, 0), "written once, then recorded");
        // On disk, the second and the third were made ahead.
        let ahead = if dir.is_some() { 2 } else { 0 };
        assert_eq!(crate::export_ahead::TAKEN.with(|n| n.get()) - taken, ahead);
    }
}

/// A DN the target gives an object changes nothing references resolve to (they name objects by
/// anchor there): batches are still made ahead after it.
#[test]
fn a_dn_given_as_objects_are_added_leaves_batches_made_ahead() {
    let dir = Some(tempfile::tempdir().expect("a temporary folder"));
    let taken = crate::export_ahead::TAKEN.with(|n| n.get());
    let e = five_pending(&dir);
    let mut c = Holding { answer_dn: true, ..Holding::default() };
    let (stats, errors) = export::export(&e.store, &mut c, 100, None, &Silent).expect("export");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!((stats.added, c.calls, pending(&e)), (5, 3, 0));
    assert_eq!(crate::export_ahead::TAKEN.with(|n| n.get()) - taken, 2);
}

#[test]
fn a_batch_or_a_write_that_fails_leaves_every_held_batch_unrecorded_and_unwritten() {
    for (fail_call, fail_flush) in [(Some(3), false), (None, true)] {
        for dir in both_stores() {
            let e = five_pending(&dir);
            let mut c = Holding { fail_call, fail_flush, ..Holding::default() };
            let err = export::export(&e.store, &mut c, 100, None, &Silent).expect_err("fails").to_string();
            assert!(err.contains("went away") || err.contains("disk is full"), "{err}");
            assert_eq!((c.written.len(), c.held.len()), (0, 0), "nothing written, nothing still held");
            assert_eq!(pending(&e), 5, "nothing recorded: the next run sends all five");
            // The next run sends each once.
            let mut c = Holding::default();
            let (stats, _) = export::export(&e.store, &mut c, 100, None, &Silent).expect("export");
            assert_eq!((stats.added, c.written.len(), pending(&e)), (5, 5, 0));
        }
    }
}

/// Asks the export to stop once this many objects are done.
struct StopAfter(std::sync::atomic::AtomicU64, u64);

impl crate::observer::Observer for StopAfter {
    fn advanced(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn stop_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) >= self.1
    }
}

#[test]
fn a_stop_between_batches_writes_and_records_what_is_held_and_leaves_the_rest() {
    for dir in both_stores() {
        let e = five_pending(&dir);
        let mut c = Holding::default();
        let stop = StopAfter(Default::default(), 2);
        let (stats, errors) = export::export(&e.store, &mut c, 100, None, &stop).expect("export");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(stats.stopped);
        assert_eq!((c.calls, c.flushes, c.written.len(), c.held.len()), (1, 1, 2, 0), "the batch held is written");
        assert_eq!((stats.added, pending(&e)), (2, 3), "and recorded; the rest stays pending");
    }
}

#[test]
fn the_breaker_writes_and_records_what_is_held_before_it_stops_the_export() {
    for dir in both_stores() {
        let e = people_pending(30, &dir);
        // Two succeed (held), then every operation fails.
        let mut c = Holding { fail_from: Some(2), ..Holding::default() };
        let (stats, errors) = export::export(&e.store, &mut c, 100, None, &Silent).expect("export");
        assert_eq!(stats.stopped_after, Some(crate::export::BREAKER));
        assert_eq!((c.flushes, c.written.len(), c.held.len()), (1, 2, 0), "what was held is written");
        assert_eq!((stats.added, stats.failed), (2, crate::export::BREAKER));
        assert_eq!(pending(&e), 28, "the two written are recorded; the failed and the rest stay pending");
        assert!(errors.last().is_some_and(|e| e.message.contains("operations in a row failed")), "{errors:?}");
    }
}

/// Where a batch's objects were given other ids than idflow's, the batches after it are made
/// again by the stage: made ahead, they would name those objects by their old ids, and the
/// object recorded in step.
#[test]
fn references_to_objects_a_batch_renamed_name_them_anew_in_the_next_batches() {
    // People with their managers (none named "bad@x", whose flow would fail).
    use crate::tests::{engine_in, engine_on_disk, put, sync, CONFIG, PROJECTING};
    for dir in both_stores() {
        let e = match &dir {
            None => engine_in(CONFIG, PROJECTING),
            Some(d) => engine_on_disk(CONFIG, PROJECTING, d.path()),
        };
        // Two managers (the first batch: what the others reference is added first), and four
        // reports (the second and the third).
        for m in 0..2 {
            put(&e, "corp", "person", &format!("uid=m{m},o=corp"), &[("mail", &format!("m{m}@x"))]);
        }
        for r in 0..4 {
            let manager = format!("uid=m{},o=corp", r % 2);
            put(&e, "corp", "person", &format!("uid=r{r},o=corp"), &[("mail", &format!("r{r}@x")), ("manager", &manager)]);
        }
        assert!(sync(&e).is_empty());
        let taken = crate::export_ahead::TAKEN.with(|n| n.get());
        let mut c = Holding { rename_call: Some(1), ..Holding::default() };
        let (stats, errors) = export::export(&e.store, &mut c, 100, None, &Silent).expect("export");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((stats.added, c.calls, pending(&e)), (6, 3, 0));
        let managers: Vec<String> = c.written[..2].iter().filter_map(|op| op.anchor.clone()).collect();
        assert!(managers.iter().all(|a| a.ends_with("-renamed")), "{managers:?}");
        for op in &c.written[2..] {
            let named = op.attrs["manager"].clone();
            assert!(
                named.iter().all(|v| v.as_str().is_some_and(|a| managers.iter().any(|m| m == a))),
                "{:?} names {named:?}, not one of {managers:?}",
                op.anchor
            );
        }
        // Nothing was made ahead after the renaming batch.
        assert_eq!(crate::export_ahead::TAKEN.with(|n| n.get()), taken);
    }
}
