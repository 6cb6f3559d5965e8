//! Run profiles and the sync pipeline:
//! import (connector to connector space), inbound sync (scope, join/project, flows, precedence
//! into the metaverse), outbound sync (scope, provision/deprovision, flows into pending exports),
//! plan (what export would do) and export (with the deletion threshold).
//!
//! Inbound and outbound sync touch no connector: given connector-space objects, the metaverse
//! and compiled rules, they compute metaverse changes and pending exports. `plan`, `preview`
//! and `idflow test` run exactly this code inside a transaction they roll back.
use crate::connector::Capabilities;
use crate::rules::RuleSet;
use crate::store::history::ObjectError;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

pub mod diff;
pub mod export;
pub mod import;
pub mod inbound;
pub mod join;
pub mod outbound;
pub mod plan;
pub mod precedence;
pub mod preview;
pub mod profiles;
pub mod references;
#[cfg(test)]
mod tests;

/// What sync needs to know about each connector.
#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: String,
    /// Lower-cased names of the attributes that hold DNs of other objects.
    pub reference_attributes: HashSet<String>,
    pub caps: Capabilities,
}

impl Facts {
    pub fn is_reference(&self, attr: &str) -> bool {
        self.reference_attributes.contains(&attr.to_lowercase())
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncStats {
    pub inbound_objects: usize,
    pub joined: usize,
    pub projected: usize,
    pub disconnected: usize,
    pub metaverse_updated: usize,
    pub metaverse_deleted: usize,
    pub outbound_objects: usize,
    pub provisioned: usize,
    pub adopted: usize,
    pub deprovisioned: usize,
}

/// One step of a preview's explanation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceLine {
    pub stage: String,
    pub rule: Option<String>,
    pub message: String,
}

/// State shared by the sync stages of one run.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub rules: &'a RuleSet,
    pub facts: &'a BTreeMap<String, Facts>,
    pub errors: Vec<ObjectError>,
    pub stats: SyncStats,
    pub trace: Option<Vec<TraceLine>>,
    pub progress: indicatif::ProgressBar,
}

impl<'a> Ctx<'a> {
    pub fn new(conn: &'a Connection, rules: &'a RuleSet, facts: &'a BTreeMap<String, Facts>) -> Self {
        Ctx {
            conn,
            rules,
            facts,
            errors: Vec::new(),
            stats: SyncStats::default(),
            trace: None,
            progress: indicatif::ProgressBar::hidden(),
        }
    }

    pub fn trace(&mut self, stage: &str, rule: Option<&str>, message: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(TraceLine { stage: stage.into(), rule: rule.map(str::to_string), message: message() });
        }
    }

    pub fn error(&mut self, e: ObjectError) {
        tracing::debug!(
            stage = %e.stage,
            connector = e.connector.as_deref().unwrap_or("-"),
            object = e.object.as_deref().unwrap_or("-"),
            rule = e.rule.as_deref().unwrap_or("-"),
            "{}",
            e.message
        );
        if let Some(t) = self.trace.as_mut() {
            t.push(TraceLine { stage: e.stage.clone(), rule: e.rule.clone(), message: format!("error: {}", e.message) });
        }
        self.errors.push(e);
    }

    pub fn facts(&self, connector: &str) -> Option<&'a Facts> {
        self.facts.get(connector)
    }
}
