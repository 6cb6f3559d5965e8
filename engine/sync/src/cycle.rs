//! The service's cycle: like `run`, but one connector that is down fails only its own part.
//! Each import is a transaction of its own, so a source that fails leaves its connector space
//! as it was (nothing it did not read is taken as deleted); the sync runs on what was read; each
//! target's export stands alone.
use crate::engine::{Engine, RunReport};
use crate::import::Mode;
use idflow_core::{Category, Error, ObjectError, Result, Stage};

/// What one cycle does.
#[derive(Debug, Clone, Default)]
pub struct CycleRequest {
    /// The connectors to import (empty: all).
    pub import: Vec<String>,
    /// Full import of those connectors, and full sync.
    pub full: bool,
    /// Full sync (every object through the rules), imports as they are.
    pub full_sync: bool,
    /// Password hash sync after the export.
    pub phs: bool,
    /// Only password hash sync: no import, sync or export.
    pub phs_only: bool,
}

/// A connector's stage that failed as a whole: an error of the run, not of an object.
fn connector_failed(stage: Stage, name: &str, e: &Error) -> ObjectError {
    ObjectError::connector(stage, name, e.to_string()).with_category(category_of(stage, e))
}

/// What kind of failure a whole stage's error is: from its kind and the errors under it, and
/// only for a connector's own message from its words (without the `connector "x":` prefix).
fn category_of(stage: Stage, e: &Error) -> Category {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() != std::io::ErrorKind::NotFound) {
            return Category::Connectivity;
        }
        source = s.source();
    }
    match e {
        Error::Connector { message, .. } | Error::Refused(message) => Category::of(stage, false, message),
        _ => Category::Other,
    }
}

impl Engine {
    /// Loads the configuration and rules again (the service's reload). Nothing changes unless
    /// all of it loads and compiles: an invalid new configuration keeps the old one running.
    pub fn reload(&mut self) -> Result<()> {
        let config = crate::Config::load(&self.config.file)?;
        if config.metaverse_path != self.config.metaverse_path {
            return Err(Error::Config(format!(
                "{}: the metaverse moved ({} to {}): restart the service to use another metaverse",
                config.file.display(),
                self.config.metaverse_path.display(),
                config.metaverse_path.display()
            )));
        }
        let defs = idflow_policy::defs::load(&config.rule_paths)?;
        let (facts, rules) = crate::engine::facts_and_rules(&config, defs, self.registry(), &self.store)?;
        self.config = config;
        self.facts = facts;
        self.rules = std::sync::Arc::new(rules);
        Ok(())
    }

    /// One service cycle, recorded in the history as `profile`.
    pub fn cycle(&mut self, req: &CycleRequest, profile: &str) -> Result<RunReport> {
        if req.phs_only {
            return self.recorded(profile, |e, r| e.phs_stage(false, r));
        }
        let names = self.names_or_all(&req.import)?;
        let targets = self.names_or_all(&[])?;
        let mode = if req.full { Mode::Full } else { Mode::Delta };
        self.recorded(profile, |e, r| {
            for n in &names {
                let tx = e.store.write()?;
                match e.import_stage(&tx, std::slice::from_ref(n), mode, false, r) {
                    Ok(()) => tx.commit()?,
                    Err(err) => {
                        drop(tx);
                        tracing::warn!(connector = %n, error = %err, "import failed; the other connectors go on");
                        r.errors.push(connector_failed(Stage::Import, n, &err));
                    }
                }
            }
            let full = req.full || req.full_sync;
            let tx = e.sync_txn(full)?;
            e.sync_stage(&tx, full, None, r)?;
            tx.commit()?;
            if e.config.staging_mode {
                e.export_stage(&targets, None, r)?;
            }
            for t in targets.iter().filter(|_| !e.config.staging_mode) {
                if let Err(err) = e.export_stage(std::slice::from_ref(t), None, r) {
                    tracing::warn!(connector = %t, error = %err, "export failed; the other connectors go on");
                    r.errors.push(connector_failed(Stage::Export, t, &err));
                }
            }
            if req.phs {
                if let Err(err) = e.phs_stage(false, r) {
                    r.errors.push(connector_failed(Stage::Phs, "password_hash_sync", &err));
                }
            }
            Ok(())
        })
    }
}
