//! Run profiles: full/delta import, full/delta sync, export, and `run` (a whole cycle),
//! plus `plan` (the same cycle, rolled back). Each stage commits on its own, so a run killed at
//! any point leaves a consistent database that the next run completes.
use super::export::{self, ExportStats};
use super::import::{self, ImportStats, Mode};
use super::plan::{self, Plan};
use super::{diff, inbound, outbound, Ctx, Facts, SyncStats};
use crate::config::{rules as rule_config, Config};
use crate::connector::{self, Connector};
use crate::error::{Error, Result};
use crate::rules::compile::ConnectorFacts;
use crate::rules::engine::Limits;
use crate::rules::RuleSet;
use crate::store::history::{self, ObjectError};
use crate::store::{self, cs, mv, Store};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
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
    pub password_hash_sync: Option<crate::phs::stage::PhsStats>,
    pub errors: Vec<ObjectError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub duration_ms: u128,
}

pub struct Engine {
    pub config: Config,
    pub rules: RuleSet,
    pub store: Store,
    pub facts: BTreeMap<String, Facts>,
    pub show_progress: bool,
}

/// Facts about every configured connector, from its type.
pub fn facts_of(config: &Config) -> Result<BTreeMap<String, Facts>> {
    let mut facts = BTreeMap::new();
    for c in &config.connectors {
        let caps = connector::capabilities_of(&c.kind).ok_or_else(|| {
            Error::Config(format!("connector {:?}: unknown type {:?} (known: ldif, file, ldap, scim)", c.name, c.kind))
        })?;
        facts.insert(
            c.name.clone(),
            Facts {
                kind: c.kind.clone(),
                reference_attributes: c.reference_attributes.iter().map(|a| a.to_lowercase()).collect(),
                caps,
            },
        );
    }
    Ok(facts)
}

pub fn compile_rules(config: &Config, defs: Vec<rule_config::RuleDef>) -> Result<RuleSet> {
    let cf: BTreeMap<String, ConnectorFacts> = config
        .connectors
        .iter()
        .map(|c| (c.name.clone(), ConnectorFacts { kind: c.kind.clone(), reference_attributes: c.reference_attributes.clone() }))
        .collect();
    let rs = RuleSet::compile(defs, &cf, &config.rule_paths, &Limits { max_operations: config.max_operations })?;
    for r in &rs.rules {
        if r.def.direction == rule_config::Direction::Outbound {
            let caps = connector::capabilities_of(&cf[&r.def.connector].kind);
            if caps.is_some_and(|c| !c.export) {
                return Err(Error::Config(format!(
                    "rule {:?} ({}): connector {:?} is a source only; outbound rules need a target",
                    r.def.name,
                    r.def.file.display(),
                    r.def.connector
                )));
            }
        }
    }
    Ok(rs)
}

impl Engine {
    pub fn open(config_path: &Path) -> Result<Engine> {
        let config = Config::load(config_path)?;
        let defs = rule_config::load(&config.rule_paths)?;
        let store = Store::open(&config.metaverse_path)?;
        Self::from_parts(config, defs, store)
    }

    pub fn from_parts(config: Config, defs: Vec<rule_config::RuleDef>, store: Store) -> Result<Engine> {
        let facts = facts_of(&config)?;
        let rules = compile_rules(&config, defs)?;
        for (name, f) in &facts {
            diff::record_form(&store.conn, name, f.caps.reference_form)?;
        }
        Ok(Engine { config, rules, store, facts, show_progress: false })
    }

    fn progress(&self, len: Option<u64>, msg: &str) -> indicatif::ProgressBar {
        if !self.show_progress {
            return indicatif::ProgressBar::hidden();
        }
        let pb = match len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = match len {
            Some(_) => indicatif::ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"),
            None => indicatif::ProgressStyle::with_template("{msg:>16} {spinner} {pos} objects {per_sec}"),
        };
        if let Ok(s) = style {
            pb.set_style(s.progress_chars("=> "));
        }
        pb.set_message(msg.to_string());
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        pb
    }

    fn names_or_all(&self, names: &[String]) -> Result<Vec<String>> {
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

    fn open_connector(&self, name: &str) -> Result<Box<dyn Connector>> {
        let cfg = self.config.connector(name).ok_or_else(|| Error::Config(format!("no connector named {name:?}")))?;
        let mut c = connector::open(cfg)?;
        c.want_attributes(self.rules.attributes_used(name));
        Ok(c)
    }

    fn import_stage(&self, conn: &Connection, names: &[String], mode: Mode, allow_empty: bool, report: &mut RunReport) -> Result<()> {
        for name in names {
            let mut c = self.open_connector(name)?;
            let pb = self.progress(None, &format!("import {name}"));
            let secret = crate::phs::stage::secret_attributes(&self.config, name);
            let (stats, errors) = import::import(conn, c.as_mut(), &self.rules, mode, allow_empty, &secret, &pb)?;
            pb.finish_and_clear();
            tracing::info!(connector = %name, mode = %stats.mode, read = stats.read, added = stats.added, updated = stats.updated, deleted = stats.deleted, "import done");
            report.import.push(stats);
            report.errors.extend(errors);
        }
        Ok(())
    }

    /// Inbound and outbound sync. Delta looks only at what changed; a changed rule set makes it full.
    fn sync_stage(&self, conn: &Connection, full: bool, report: &mut RunReport) -> Result<()> {
        let stored = store::get_meta(conn, "rules_fingerprint")?;
        let full = full || stored.as_deref() != Some(self.rules.fingerprint.as_str());
        if stored.as_deref().is_some_and(|s| s != self.rules.fingerprint) {
            report.notes.push("the rules changed since the last sync: running a full sync".into());
        }
        let in_ids = if full {
            // Every object of a connector with inbound rules, and every object still linked
            // inbound (its connector may have lost its rules), and whatever is pending.
            let sources: Vec<String> =
                self.config.connectors.iter().map(|c| c.name.clone()).filter(|n| self.rules.has_inbound(n)).collect();
            let list = sources.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(",");
            cs::ids_where(
                conn,
                &format!("connector IN ({list}) OR link IN ('joined','projected') OR pending_import IS NOT NULL"),
                [],
            )?
        } else {
            cs::ids_where(conn, "pending_import IS NOT NULL", [])?
        };
        let mut ctx = Ctx::new(conn, &self.rules, &self.facts);
        ctx.progress = self.progress(Some(in_ids.len() as u64), "inbound sync");
        inbound::run(&mut ctx, in_ids)?;
        ctx.progress.finish_and_clear();
        let out_ids = if full { mv::all_ids(conn)? } else { mv::dirty_ids(conn)? };
        ctx.progress = self.progress(Some(out_ids.len() as u64), "outbound sync");
        outbound::run(&mut ctx, out_ids)?;
        ctx.progress.finish_and_clear();
        store::set_meta(conn, "rules_fingerprint", &self.rules.fingerprint)?;
        report.full_sync = Some(full);
        report.sync = Some(ctx.stats);
        report.errors.extend(ctx.errors);
        Ok(())
    }

    fn export_stage(&self, names: &[String], allow_deletes: Option<usize>, report: &mut RunReport) -> Result<()> {
        if self.config.staging_mode {
            let pending: i64 = self.store.conn.query_row("SELECT count(*) FROM cs_object WHERE pending_export=1", [], |r| r.get(0))?;
            report.notes.push(format!("staging mode: export is off; {pending} objects have changes held"));
            return Ok(());
        }
        for name in names {
            if !self.facts.get(name).is_some_and(|f| f.caps.export) {
                continue;
            }
            let pending: i64 =
                self.store.conn.query_row("SELECT count(*) FROM cs_object WHERE connector=?1 AND pending_export=1", [name], |r| r.get(0))?;
            if pending == 0 {
                continue;
            }
            let mut c = self.open_connector(name)?;
            let pb = self.progress(Some(pending as u64), &format!("export {name}"));
            let (stats, errors) = export::export(&self.store.conn, c.as_mut(), self.config.deletion_threshold, allow_deletes, &pb)?;
            pb.finish_and_clear();
            tracing::info!(connector = %name, added = stats.added, updated = stats.updated, deleted = stats.deleted, failed = stats.failed, "export done");
            report.export.push(stats);
            report.errors.extend(errors);
        }
        Ok(())
    }

    /// Wraps a profile in run history: a row when it starts, its summary and errors when it ends.
    fn recorded(&mut self, profile: &str, f: impl FnOnce(&Engine, &mut RunReport) -> Result<()>) -> Result<RunReport> {
        let started = Instant::now();
        let run_id = history::start(&self.store.conn, profile)?;
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
        let tx = self.store.conn.unchecked_transaction()?;
        for e in &report.errors {
            history::record(&tx, run_id, e)?;
        }
        history::finish(&tx, run_id, status, &summary)?;
        tx.commit()?;
        // Hand the write-ahead log back to the database file, so it does not stay at its peak size.
        let _ = self.store.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        result.map(|()| report)
    }

    pub fn import(&mut self, names: &[String], mode: Mode, allow_empty: bool) -> Result<RunReport> {
        let names = self.names_or_all(names)?;
        let profile = if mode == Mode::Full { "full-import" } else { "delta-import" };
        self.recorded(profile, |e, r| {
            for n in &names {
                let tx = e.store.conn.unchecked_transaction()?;
                e.import_stage(&tx, std::slice::from_ref(n), mode, allow_empty, r)?;
                tx.commit()?;
            }
            Ok(())
        })
    }

    pub fn sync(&mut self, full: bool) -> Result<RunReport> {
        self.recorded(if full { "full-sync" } else { "delta-sync" }, |e, r| {
            let tx = e.store.conn.unchecked_transaction()?;
            e.sync_stage(&tx, full, r)?;
            tx.commit()?;
            Ok(())
        })
    }

    pub fn export(&mut self, names: &[String], allow_deletes: Option<usize>) -> Result<RunReport> {
        let names = self.names_or_all(names)?;
        self.recorded("export", |e, r| e.export_stage(&names, allow_deletes, r))
    }

    /// The password hash sync stage (paused in staging mode; it catches up after).
    fn phs_stage(&self, full: bool, report: &mut RunReport) -> Result<()> {
        let Some(p) = &self.config.password_hash_sync else { return Ok(()) };
        if self.config.staging_mode {
            report.notes.push("staging mode: password hash sync is paused".into());
            return Ok(());
        }
        let cfg = self.config.connector(&p.source).ok_or_else(|| Error::Config(format!("no connector named {:?}", p.source)))?;
        let mut source = crate::phs::drsr_source::open(cfg, &p.hash_attribute)?;
        let open = |name: &str| self.open_connector(name);
        let stats = crate::phs::stage::run(&self.store.conn, &self.config, source.as_mut(), &open, full, &mut report.errors)?;
        tracing::info!(delivered = stats.delivered, unchanged = stats.unchanged, failed = stats.failed, "password hash sync done");
        report.password_hash_sync = Some(stats);
        Ok(())
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
            for n in &names {
                let tx = e.store.conn.unchecked_transaction()?;
                e.import_stage(&tx, std::slice::from_ref(n), Mode::Delta, false, r)?;
                tx.commit()?;
            }
            let tx = e.store.conn.unchecked_transaction()?;
            e.sync_stage(&tx, false, r)?;
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
        let tx = self.store.conn.unchecked_transaction()?;
        self.import_stage(&tx, &names, Mode::Delta, false, &mut report)?;
        self.sync_stage(&tx, false, &mut report)?;
        let targets: Vec<String> = names.iter().filter(|n| self.facts.get(*n).is_some_and(|f| f.caps.export)).cloned().collect();
        let mut p = plan::build(&tx, &targets)?;
        // The plan has counted each connector's deletes already: the threshold warns from those.
        for cp in &p.connectors {
            if let Err(e) = export::check_threshold(&cp.connector, cp.totals.delete, self.config.deletion_threshold, None) {
                report.notes.push(e.to_string());
            }
        }
        tx.rollback()?;
        p.errors = report.errors.clone();
        p.staging_mode = self.config.staging_mode;
        report.duration_ms = started.elapsed().as_millis();
        Ok((p, report))
    }
}
