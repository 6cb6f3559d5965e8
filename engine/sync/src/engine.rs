//! The engine and its run profiles: full/delta import, full/delta sync, export, password hash
//! sync, and `run` (a whole cycle), plus `plan` (the same cycle, rolled back). Each stage
//! commits on its own, so a run killed at any point leaves a consistent database that the next
//! run completes.
use crate::config::Config;
use crate::ctx::{Ctx, Facts, SyncStats};
use crate::export::{self, ExportStats};
use crate::import::{self, ImportStats, Mode};
use crate::observer::{self, Observer, Silent, Step};
use crate::phs::stage::{self as phs_stage, PhsStats};
use crate::plan::{self, Plan};
use crate::{diff, inbound, outbound};
use idflow_core::connector::Connector;
use idflow_core::registry::{ConnectorSpec, Registry};
use idflow_core::{Error, ObjectError, Result};
use idflow_policy::defs::{self, Direction, RuleDef};
use idflow_policy::{ConnectorFacts, Limits, RuleSet};
use idflow_store::{ReadOps, RunLock, Store, WriteOps};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    pub import: Vec<ImportStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_sync: Option<bool>,
    pub export: Vec<ExportStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash_sync: Option<PhsStats>,
    pub errors: Vec<ObjectError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub duration_ms: u128,
}

/// What `validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub connectors: usize,
    pub rules: usize,
    pub expressions: usize,
    /// What compiles but looks wrong.
    pub warnings: Vec<String>,
}

pub struct Engine {
    pub config: Config,
    pub rules: Arc<RuleSet>,
    pub store: Store,
    pub facts: BTreeMap<String, Facts>,
    /// The connector kinds: a connector's settings are checked by its kind when it is opened.
    registry: Arc<Registry>,
    observer: Arc<dyn Observer>,
    /// One run at a time per metaverse: held for the engine's life.
    _lock: Option<RunLock>,
}

/// Facts about every configured connector, from its type.
fn facts_of(config: &Config, registry: &Registry) -> Result<BTreeMap<String, Facts>> {
    let mut facts = BTreeMap::new();
    for c in &config.connectors {
        let caps = registry.capabilities(c)?;
        facts.insert(
            c.name.clone(),
            Facts {
                kind: c.kind.clone(),
                reference_attributes: c.reference_attributes.iter().map(|a| a.to_lowercase()).collect(),
                target_references: c
                    .reference_attributes
                    .iter()
                    .map(String::as_str)
                    .chain(caps.reference_attributes.iter().copied())
                    .map(str::to_lowercase)
                    .collect(),
                unique_attributes: {
                    let mut u: Vec<String> = caps.unique_attributes.iter().map(|a| a.to_string()).collect();
                    u.extend(c.unique_attributes.iter().filter(|a| !caps.unique_attributes.contains(&a.as_str())).cloned());
                    u
                },
                caps,
                owner_attribute: c.owner_attribute.clone().or_else(|| registry.capabilities(c).ok()?.owner_attribute.map(str::to_string)),
            },
        );
    }
    Ok(facts)
}

/// The connectors' facts and the compiled rules of a configuration, with each connector's
/// reference form recorded in the metaverse (diffs compare references in that form).
pub(crate) fn facts_and_rules(
    config: &Config,
    defs: Vec<RuleDef>,
    registry: &Registry,
    store: &Store,
) -> Result<(BTreeMap<String, Facts>, RuleSet)> {
    let facts = facts_of(config, registry)?;
    let rules = compile_rules(config, defs, &facts)?;
    let tx = store.write()?;
    for (name, f) in &facts {
        diff::record_form(&tx, name, f.caps.reference_form)?;
    }
    tx.commit()?;
    Ok((facts, rules))
}

/// Every connector's settings, checked by its type (no I/O).
fn specs_of(config: &Config, registry: &Registry) -> Result<BTreeMap<String, Box<dyn ConnectorSpec>>> {
    config.connectors.iter().map(|c| Ok((c.name.clone(), registry.parse(c)?))).collect()
}

fn compile_rules(config: &Config, defs: Vec<RuleDef>, facts: &BTreeMap<String, Facts>) -> Result<RuleSet> {
    let cf: BTreeMap<String, ConnectorFacts> = config
        .connectors
        .iter()
        .map(|c| (c.name.clone(), ConnectorFacts { kind: c.kind.clone(), reference_attributes: c.reference_attributes.clone() }))
        .collect();
    let rs = RuleSet::compile(
        defs,
        &cf,
        &config.rule_paths,
        &Limits { max_operations: config.max_operations, max_milliseconds: config.max_milliseconds },
    )?;
    for r in &rs.rules {
        if r.def.direction == Direction::Outbound && facts.get(&r.def.connector).is_some_and(|f| !f.caps.export) {
            return Err(Error::Config(format!(
                "rule {:?} ({}): connector {:?} is a source only; outbound rules need a target",
                r.def.name,
                r.def.file.display(),
                r.def.connector
            )));
        }
    }
    Ok(rs)
}

impl Engine {
    /// Loads `idflow.toml`, its rules and its metaverse, with connectors from `registry`, and
    /// takes the metaverse's run lock: one run at a time. A run that was killed shows as
    /// interrupted in the history from here on.
    pub fn open(config_path: &Path, registry: Arc<Registry>) -> Result<Engine> {
        let config = Config::load(config_path)?;
        let defs = defs::load(&config.rule_paths)?;
        let lock = RunLock::take_for_this_run(&config.metaverse_path)?;
        let mut e = Self::open_loaded(config, defs, registry)?;
        e._lock = Some(lock);
        Ok(e)
    }

    /// As [`Engine::open`], under a run lock the caller took and keeps: for a caller that must
    /// hold the metaverse before it opens it (the bench removes the database first) or across
    /// several engines. Refused when `lock` is for another metaverse than the configuration's.
    pub fn open_held(config_path: &Path, registry: Arc<Registry>, lock: &RunLock) -> Result<Engine> {
        let config = Config::load(config_path)?;
        if lock.db() != config.metaverse_path {
            return Err(Error::Refused(format!(
                "the run lock held is for {}, but {} keeps its metaverse at {}",
                lock.db().display(),
                config_path.display(),
                config.metaverse_path.display()
            )));
        }
        let defs = defs::load(&config.rule_paths)?;
        Self::open_loaded(config, defs, registry)
    }

    fn open_loaded(config: Config, defs: Vec<RuleDef>, registry: Arc<Registry>) -> Result<Engine> {
        let store = Store::open(&config.metaverse_path)?;
        let tx = store.write()?;
        let interrupted = tx.history_interrupt_running()?;
        tx.commit()?;
        if interrupted > 0 {
            tracing::warn!(runs = interrupted, "runs that were stopped before they ended are marked interrupted in the history");
        }
        Self::from_parts(config, defs, store, registry)
    }

    pub fn from_parts(config: Config, defs: Vec<RuleDef>, store: Store, registry: Arc<Registry>) -> Result<Engine> {
        let (facts, rules) = facts_and_rules(&config, defs, &registry, &store)?;
        Ok(Engine { config, rules: Arc::new(rules), store, facts, registry, observer: Arc::new(Silent), _lock: None })
    }

    /// Checks a configuration: the file, every connector's settings (by its type), every rule
    /// expression. Unless `offline`, also opens every connector, the password hash source and
    /// the metaverse.
    pub fn validate(config_path: &Path, registry: &Registry, offline: bool) -> Result<Validation> {
        let config = Config::load(config_path)?;
        let defs = defs::load(&config.rule_paths)?;
        let n = defs.len();
        let facts = facts_of(&config, registry)?;
        let rules = compile_rules(&config, defs, &facts)?;
        let specs = specs_of(&config, registry)?;
        // Object types a rule names must be ones its connector has.
        for r in &rules.rules {
            let (field, ty) = match (&r.def.source_type, &r.def.target_type) {
                (Some(t), _) => ("source_type", t),
                (None, Some(t)) => ("target_type", t),
                (None, None) => continue,
            };
            let Some(known) = specs.get(&r.def.connector).and_then(|s| s.object_types()) else { continue };
            if !known.contains(ty) {
                let close = known.iter().min_by_key(|k| idflow_policy::distance(&k.to_lowercase(), &ty.to_lowercase()));
                return Err(Error::Config(format!(
                    "{}:{}: rule {:?}: {field} {ty:?} is not an object type of connector {:?} (it has: {}){}",
                    r.def.file.display(),
                    r.def.line_of(field),
                    r.def.name,
                    r.def.connector,
                    known.join(", "),
                    close
                        .filter(|c| idflow_policy::distance(&c.to_lowercase(), &ty.to_lowercase()) <= 2)
                        .map(|c| format!("; did you mean {c:?}?"))
                        .unwrap_or_default()
                )));
            }
        }
        if !offline {
            for c in &config.connectors {
                if let Some(s) = specs.get(&c.name) {
                    s.open()?;
                }
            }
            // The password hash source's own settings ([connector.replication] for AD).
            if let Some(p) = &config.password_hash_sync {
                hash_source(&config, registry, p)?;
            }
            Store::open(&config.metaverse_path)?;
        }
        let expressions = rules.rules.iter().map(|r| r.flows.len() + r.joins.len() + usize::from(r.scope.is_some())).sum();
        Ok(Validation { connectors: config.connectors.len(), rules: n, expressions, warnings: rules.warnings.clone() })
    }

    /// Whoever runs the engine hears of its progress through `observer`.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// How the service learns that a connector's directory changed: `None` when its kind cannot tell.
    pub fn change_feed(&self, name: &str, poll: std::time::Duration) -> Option<Result<Box<dyn idflow_core::change_feed::ChangeFeed>>> {
        let cfg = self.config.connector(name)?;
        match self.registry.parse(cfg) {
            Ok(spec) => spec.change_feed(poll),
            Err(e) => Some(Err(e)),
        }
    }

    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = observer;
    }

    pub(crate) fn names_or_all(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(self.config.connectors.iter().map(|c| c.name.clone()).collect());
        }
        for n in names {
            if self.config.connector(n).is_none() {
                return Err(Error::Config(format!("no connector named {n:?}")));
            }
        }
        Ok(names.to_vec())
    }

    pub(crate) fn open_connector(&self, name: &str) -> Result<Box<dyn Connector>> {
        let cfg = self.config.connector(name).ok_or_else(|| Error::Config(format!("no connector named {name:?}")))?;
        let mut c = self.registry.parse(cfg)?.open()?;
        c.want_attributes(self.rules.attributes_used(name));
        Ok(c)
    }

    /// Imports `connector` into its connector space inside `tx`.
    pub(crate) fn import_one(
        &self,
        tx: &dyn WriteOps,
        connector: &mut dyn Connector,
        mode: Mode,
        allow_empty: bool,
        report: &mut RunReport,
    ) -> Result<()> {
        let name = connector.name().to_string();
        let secret = phs_stage::secret_attributes(&self.config, &name);
        let began = Instant::now();
        let (mut stats, errors) = import::import(tx, connector, &self.rules, mode, allow_empty, &secret, self.observer.as_ref())?;
        // The index by anchor a first import went without is made now rather than at the
        // commit: what comes after it in the same transaction (a plan's other imports, its
        // sync) reads a connector's objects through it.
        tx.cs_index_anchors_now()?;
        stats.ms = began.elapsed().as_millis() as u64;
        tracing::info!(connector = %name, mode = %stats.mode, read = stats.read, added = stats.added, updated = stats.updated, deleted = stats.deleted, "import done");
        if stats.incomplete {
            report.notes.push(format!(
                "import {name}: the read met {} errors, so it is incomplete: nothing it did not see is inferred deleted \
                 until a full import reads cleanly",
                stats.errors - stats.carried
            ));
        }
        if stats.read_again {
            report.notes.push(format!(
                "import {name}: the delta met {} errors, so its watermark stays: the next run reads those objects again, \
                 until they import cleanly (after an hour of this, a full import reads them)",
                stats.errors - stats.carried
            ));
        }
        if stats.carried > 0 {
            report.notes.push(format!(
                "import {name}: {} errors of earlier runs are still there (no change has brought those objects since): \
                 a change that brings them, or a full import without them (`idflow import --full {name}`), clears them",
                stats.carried
            ));
        }
        report.import.push(stats);
        self.failed(report, errors);
        Ok(())
    }

    /// Per-object errors of a stage: told to the observer, kept in the report.
    fn failed(&self, report: &mut RunReport, errors: Vec<ObjectError>) {
        for e in errors {
            let e = e.classified();
            self.observer.object_error(&e);
            report.errors.push(e);
        }
    }

    pub(crate) fn import_stage(
        &self,
        tx: &dyn WriteOps,
        names: &[String],
        mode: Mode,
        allow_empty: bool,
        report: &mut RunReport,
    ) -> Result<()> {
        for name in names {
            let mut c = self.open_connector(name)?;
            self.import_one(tx, c.as_mut(), mode, allow_empty, report)?;
        }
        Ok(())
    }

    /// The transaction a sync stage runs in: a full sync (asked for, or a delta the rules'
    /// change makes full) reads and writes most of the database, so it takes the store's bulk
    /// transaction (a larger page cache until it ends); a delta may change many pages,
    /// scattered, and keeps them in memory until it commits.
    pub(crate) fn sync_txn(&self, full: bool) -> Result<idflow_store::WriteTxn<'_>> {
        // A first sync, or one under new rules, changes most of the metaverse; a full sync
        // under the same rules reads all of it, and changes what changed.
        // (The read ends before the write begins.)
        let since = self.rules_since(&self.store.read()?)?;
        match (full, since) {
            (_, RulesSince::NoSync | RulesSince::Changed) => self.store.write_bulk(),
            (true, RulesSince::Same) => self.store.write_rescan(),
            (false, RulesSince::Same) => self.store.write_changes(),
        }
    }

    /// The rules now against those the last sync ran with.
    fn rules_since(&self, r: &dyn ReadOps) -> Result<RulesSince> {
        Ok(match r.meta_get("rules_fingerprint")? {
            None => RulesSince::NoSync,
            Some(s) if s == self.rules.fingerprint => RulesSince::Same,
            // Written before rules were fingerprinted from a stable serialization: the same rules.
            Some(s) if s == self.rules.legacy_fingerprint => RulesSince::Same,
            Some(_) => RulesSince::Changed,
        })
    }

    /// Inbound and outbound sync. Delta looks only at what changed; a changed rule set makes it full.
    pub(crate) fn sync_stage(&self, tx: &dyn WriteOps, full: bool, allow_deletes: Option<usize>, report: &mut RunReport) -> Result<()> {
        let since = self.rules_since(tx)?;
        let full = full || since != RulesSince::Same;
        if since == RulesSince::Changed {
            report.notes.push("the rules changed since the last sync: running a full sync".into());
        }
        let in_ids = if full {
            // Every object of a connector with inbound rules, and every object still linked
            // inbound (its connector may have lost its rules), and whatever is pending.
            let sources: Vec<String> =
                self.config.connectors.iter().map(|c| c.name.clone()).filter(|n| self.rules.has_inbound(n)).collect();
            tx.cs_ids_full_sync(&sources)?
        } else {
            // What changed, and what is still in error: a delta sync retries it every run.
            let mut ids = tx.cs_ids_pending_import()?;
            ids.extend(tx.cs_ids_inbound_in_error()?);
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let observer = self.observer.as_ref();
        let mut ctx = Ctx::new(tx, &self.rules, &self.facts, observer);
        ctx.full = full;
        {
            let _step = observer::start(observer, Step::InboundSync, Some(in_ids.len() as u64));
            inbound::run(&mut ctx, in_ids)?;
        }
        let out_ids = if full { tx.mv_all_ids()? } else { tx.mv_dirty_ids()? };
        {
            let _step = observer::start(observer, Step::OutboundSync, Some(out_ids.len() as u64));
            outbound::run(&mut ctx, out_ids)?;
        }
        tx.meta_set("rules_fingerprint", &self.rules.fingerprint)?;
        for (name, f) in &self.facts {
            let deletes = usize::try_from(tx.cs_count_pending_deletes(name)?).unwrap_or(usize::MAX);
            if f.caps.export && deletes > self.config.deletion_threshold && allow_deletes.is_none_or(|n| deletes > n) {
                report.notes.push(export::held(name, deletes, self.config.deletion_threshold));
            }
        }
        report.full_sync = Some(full);
        report.notes.append(&mut ctx.notes);
        report.sync = Some(ctx.stats);
        self.failed(report, ctx.errors);
        Ok(())
    }

    pub(crate) fn export_stage(&self, names: &[String], allow_deletes: Option<usize>, report: &mut RunReport) -> Result<()> {
        if self.config.staging_mode {
            let pending = self.store.read()?.cs_count_pending_export(None)?;
            report.notes.push(format!("staging mode: export is off; {pending} objects have changes held"));
            return Ok(());
        }
        for name in names {
            if !self.facts.get(name).is_some_and(|f| f.caps.export) {
                continue;
            }
            let pending = self.store.read()?.cs_count_pending_export(Some(name))?;
            if pending == 0 {
                continue;
            }
            let mut c = self.open_connector(name)?;
            let observer = self.observer.as_ref();
            let step = observer::start(observer, Step::Export(name), Some(pending as u64));
            let began = Instant::now();
            let (mut stats, errors) = export::export(&self.store, c.as_mut(), self.config.deletion_threshold, allow_deletes, observer)?;
            stats.ms = began.elapsed().as_millis() as u64;
            drop(step);
            tracing::info!(connector = %name, added = stats.added, updated = stats.updated, deleted = stats.deleted, failed = stats.failed, "export done");
            report.export.push(stats);
            self.failed(report, errors);
        }
        Ok(())
    }

    /// Wraps a profile in run history: a row when it starts, its summary and errors when it ends.
    pub(crate) fn recorded(&mut self, profile: &str, f: impl FnOnce(&Engine, &mut RunReport) -> Result<()>) -> Result<RunReport> {
        let started = Instant::now();
        let run_id = {
            let tx = self.store.write()?;
            let id = tx.history_start(profile)?;
            tx.commit()?;
            id
        };
        let mut report = RunReport { profile: profile.into(), run_id: Some(run_id), ..Default::default() };
        let result = f(self, &mut report);
        report.duration_ms = started.elapsed().as_millis();
        let status = match (&result, report.errors.is_empty()) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "ok",
            (Ok(()), false) => "errors",
        };
        let mut summary = serde_json::to_value(&report).unwrap_or_default();
        if let Err(e) = &result {
            summary["failure"] = serde_json::Value::String(e.to_string());
        }
        let tx = self.store.write()?;
        for e in &report.errors {
            tx.history_record(run_id, e)?;
        }
        tx.history_finish(run_id, status, &summary)?;
        tx.commit()?;
        self.store.checkpoint();
        result.map(|()| report)
    }

    /// Imports each connector in a transaction of its own.
    fn import_each(&self, names: &[String], mode: Mode, allow_empty: bool, report: &mut RunReport) -> Result<()> {
        for n in names {
            let tx = self.store.write()?;
            self.import_stage(&tx, std::slice::from_ref(n), mode, allow_empty, report)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn import(&mut self, names: &[String], mode: Mode, allow_empty: bool) -> Result<RunReport> {
        let names = self.names_or_all(names)?;
        let profile = if mode == Mode::Full { "full-import" } else { "delta-import" };
        self.recorded(profile, |e, r| e.import_each(&names, mode, allow_empty, r))
    }

    pub fn sync(&mut self, full: bool) -> Result<RunReport> {
        self.recorded(if full { "full-sync" } else { "delta-sync" }, |e, r| {
            let tx = e.sync_txn(full)?;
            e.sync_stage(&tx, full, None, r)?;
            tx.commit()
        })
    }

    pub fn export(&mut self, names: &[String], allow_deletes: Option<usize>) -> Result<RunReport> {
        let names = self.names_or_all(names)?;
        self.recorded("export", |e, r| e.export_stage(&names, allow_deletes, r))
    }

    /// The password hash sync stage (paused in staging mode; it catches up after).
    pub(crate) fn phs_stage(&self, full: bool, report: &mut RunReport) -> Result<()> {
        let Some(p) = &self.config.password_hash_sync else { return Ok(()) };
        if self.config.staging_mode {
            report.notes.push("staging mode: password hash sync is paused".into());
            return Ok(());
        }
        let mut source = hash_source(&self.config, &self.registry, p)?;
        let open = |name: &str| self.open_connector(name);
        let mut errors = Vec::new();
        let result = phs_stage::run(&self.store, &self.config, source.as_mut(), &open, full, &mut errors);
        self.failed(report, errors);
        let stats = result?;
        tracing::info!(delivered = stats.delivered, unchanged = stats.unchanged, failed = stats.failed, "password hash sync done");
        report.password_hash_sync = Some(stats);
        Ok(())
    }

    /// The configured password hash source, opened.
    pub fn hash_source(&self) -> Result<Box<dyn idflow_core::hash::HashSource>> {
        let p = self.config.password_hash_sync.as_ref().ok_or_else(|| Error::Config("no [password_hash_sync] section".into()))?;
        hash_source(&self.config, &self.registry, p)
    }

    /// The password hash sync stage with hashes from `source` instead of the configured one
    /// (benchmarks and tests of the stage itself); targets are the configured connectors.
    pub fn phs_from(&self, source: &mut dyn idflow_core::hash::HashSource, full: bool, errors: &mut Vec<ObjectError>) -> Result<PhsStats> {
        let open = |name: &str| self.open_connector(name);
        phs_stage::run(&self.store, &self.config, source, &open, full, errors)
    }

    /// `idflow phs`: only the password hash sync stage.
    pub fn phs(&mut self, full: bool) -> Result<RunReport> {
        if self.config.password_hash_sync.is_none() {
            return Err(Error::Config(format!("{} has no [password_hash_sync] section", self.config.file.display())));
        }
        self.recorded(if full { "phs-full" } else { "phs" }, |e, r| e.phs_stage(full, r))
    }

    /// A whole cycle: import every connector (delta where it can), sync, export.
    pub fn run(&mut self, allow_deletes: Option<usize>, profile: &str) -> Result<RunReport> {
        let names = self.names_or_all(&[])?;
        self.recorded(profile, |e, r| {
            e.import_each(&names, Mode::Delta, false, r)?;
            let tx = e.sync_txn(false)?;
            e.sync_stage(&tx, false, allow_deletes, r)?;
            tx.commit()?;
            e.export_stage(&names, allow_deletes, r)?;
            if profile == "run" {
                e.phs_stage(false, r)?;
            }
            Ok(())
        })
    }

    /// What `run` would export, computed in a transaction that is rolled back: no target is
    /// written, no watermark moves, nothing is kept.
    pub fn plan(&mut self) -> Result<(Plan, RunReport)> {
        let names = self.names_or_all(&[])?;
        let started = Instant::now();
        let mut report = RunReport { profile: "plan".into(), ..Default::default() };
        let tx = self.store.write()?;
        let mut p = self.plan_in(&tx, &names, &mut report)?;
        drop(tx);
        p.errors = report.errors.clone();
        p.in_error = p
            .errors
            .iter()
            .filter(|e| e.object.is_some())
            .map(|e| (e.connector.as_deref(), e.cs_id, e.mv_id, e.object.as_deref()))
            .collect::<HashSet<_>>()
            .len();
        p.staging_mode = self.config.staging_mode;
        report.duration_ms = started.elapsed().as_millis();
        Ok((p, report))
    }
}

impl Engine {
    /// Imports (delta) and syncs in `tx`, then what export would do: the plan. The caller
    /// drops `tx` (a plan) or commits it (`apply --plan`, once the plan is the saved one).
    pub(crate) fn plan_in(&self, tx: &dyn WriteOps, names: &[String], report: &mut RunReport) -> Result<Plan> {
        self.import_stage(tx, names, Mode::Delta, false, report)?;
        self.sync_stage(tx, false, None, report)?;
        let targets: Vec<String> = names.iter().filter(|n| self.facts.get(*n).is_some_and(|f| f.caps.export)).cloned().collect();
        let unique = crate::collisions::Unique(
            targets.iter().filter_map(|t| Some((t.clone(), self.facts.get(t)?.unique_attributes.clone()))).collect(),
        );
        // A large plan's changes wait on disk next to the metaverse (owner-only, like it).
        let spill = self.config.metaverse_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        plan::build(tx, &targets, &self.rules, &unique, spill)
    }
}

/// The password hash source of `[password_hash_sync]`: what its connector's type offers.
fn hash_source(config: &Config, registry: &Registry, p: &crate::config::PhsSection) -> Result<Box<dyn idflow_core::hash::HashSource>> {
    let cfg = config.connector(&p.source).ok_or_else(|| Error::Config(format!("no connector named {:?}", p.source)))?;
    registry.parse(cfg)?.hash_source(&p.hash_attribute).unwrap_or_else(|| {
        Err(Error::Config(format!(
            "[password_hash_sync] source {:?} is a {:?} connector; hashes are read from an ldap connector",
            cfg.name, cfg.kind
        )))
    })
}

/// The rules a sync runs with, against the last sync's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RulesSince {
    /// No sync ran yet.
    NoSync,
    Same,
    Changed,
}
