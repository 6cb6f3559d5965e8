//! State shared by the sync stages of one run: the write transaction, the rules, what sync
//! knows of each connector, and what the run found (statistics, per-object errors, a trace
//! for previews).
use crate::observer::Observer;
use idflow_core::connector::Capabilities;
use idflow_core::ObjectError;
use idflow_policy::RuleSet;
use idflow_store::WriteOps;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

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
    /// Source objects back before their deletion was exported: metaverse object and targets restored.
    #[serde(skip_serializing_if = "is_zero")]
    pub restored: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One step of a preview's explanation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceLine {
    pub stage: String,
    pub rule: Option<String>,
    pub message: String,
}

pub(crate) struct Ctx<'a> {
    pub(crate) tx: &'a dyn WriteOps,
    pub(crate) rules: &'a RuleSet,
    pub(crate) facts: &'a BTreeMap<String, Facts>,
    pub(crate) errors: Vec<ObjectError>,
    pub(crate) stats: SyncStats,
    pub(crate) trace: Option<Vec<TraceLine>>,
    pub(crate) observer: &'a dyn Observer,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(tx: &'a dyn WriteOps, rules: &'a RuleSet, facts: &'a BTreeMap<String, Facts>, observer: &'a dyn Observer) -> Self {
        Ctx { tx, rules, facts, errors: Vec::new(), stats: SyncStats::default(), trace: None, observer }
    }

    pub(crate) fn trace(&mut self, stage: &str, rule: Option<&str>, message: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(TraceLine { stage: stage.into(), rule: rule.map(str::to_string), message: message() });
        }
    }

    pub(crate) fn error(&mut self, e: ObjectError) {
        tracing::debug!(
            stage = %e.stage,
            connector = e.connector.as_deref().unwrap_or("-"),
            object = e.object.as_deref().unwrap_or("-"),
            rule = e.rule.as_deref().unwrap_or("-"),
            "{}",
            e.message
        );
        if let Some(t) = self.trace.as_mut() {
            t.push(TraceLine { stage: e.stage.to_string(), rule: e.rule.clone(), message: format!("error: {}", e.message) });
        }
        self.errors.push(e);
    }

    pub(crate) fn facts(&self, connector: &str) -> Option<&'a Facts> {
        self.facts.get(connector)
    }
}
