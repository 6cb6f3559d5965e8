//! State shared by the sync stages of one run: the write transaction, the rules, what sync
//! knows of each connector, and what the run found (statistics, per-object errors, a trace
//! for previews).
use crate::diff::{self, Idents};
use crate::observer::Observer;
use crate::ready::{Held, Ready, Streaks};
use idflow_core::connector::{Capabilities, RefForm};
use idflow_core::fast_hash::FastMap;
use idflow_core::{ObjectError, Result, Value};
use idflow_policy::RuleSet;
use idflow_policy::{to_flow_values, to_values, Expr};
use idflow_store::{CsObject, WriteOps};
use rhai::{Dynamic, Scope};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// What sync needs to know about each connector.
#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: String,
    /// Lower-cased names of the attributes that hold DNs of other objects (read as references).
    pub reference_attributes: HashSet<String>,
    /// As a target: the attributes that hold references there (the configured ones, and the
    /// kind's own, such as SCIM's `members`): only references are sent to them.
    pub target_references: HashSet<String>,
    pub caps: Capabilities,
    /// The attribute naming a target object's owning source (configured, or the kind's).
    pub owner_attribute: Option<String>,
    /// As a target: attributes it keeps unique (configured, and the kind's own).
    pub unique_attributes: Vec<String>,
}

impl Facts {
    /// Does `attr` hold references in this connector as a target?
    pub fn is_target_reference(&self, attr: &str) -> bool {
        self.target_references.contains(&attr.to_lowercase())
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

/// A rule whose expressions failed on this many objects in a row is not evaluated again in
/// the run: one broken rule must not cost a run an evaluation (up to its limits) per object.
pub(crate) const STOP_AFTER: usize = 50;

pub(crate) struct Ctx<'a> {
    pub(crate) tx: &'a dyn WriteOps,
    /// Shared with the thread that evaluates ahead.
    pub(crate) rules: &'a Arc<RuleSet>,
    /// How expressions evaluated ahead fail, for the run (the stage's stopped ones included).
    pub(crate) ahead: Arc<Mutex<Streaks>>,
    pub(crate) facts: &'a BTreeMap<String, Facts>,
    pub(crate) errors: Vec<ObjectError>,
    pub(crate) stats: SyncStats,
    pub(crate) trace: Option<Vec<TraceLine>>,
    pub(crate) observer: &'a dyn Observer,
    /// What the run should say once (a rule stopped).
    pub(crate) notes: Vec<String>,
    /// Metaverse objects an outbound stage failed on: looked at again by the next run.
    pub(crate) mv_in_error: BTreeSet<i64>,
    /// Metaverse objects whose inbound flows failed in this run: not provisioned anywhere new.
    pub(crate) incomplete: BTreeSet<i64>,
    /// References resolved in a pass that changes no link.
    pub(crate) memo: crate::references::Memo,
    /// What outbound sync's comparisons resolve references to, by target connector
    /// ([`Ctx::has_changes`]): kept for the stage, and forgotten object by object where the
    /// stage changes or removes an identifier ([`Ctx::forget_ident`]).
    idents: FastMap<String, Idents>,
    /// A full sync: the first round of each stage looks at every object of its connectors.
    pub(crate) full: bool,
    /// Objects whose flows waited for pass 2 as what they gave (inbound/waiting.rs).
    pub(crate) waited: usize,
    /// Per rule, failures in a row; and the rules stopped, with their last error.
    failures_in_a_row: HashMap<String, usize>,
    stopped: HashMap<String, String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        tx: &'a dyn WriteOps,
        rules: &'a Arc<RuleSet>,
        facts: &'a BTreeMap<String, Facts>,
        observer: &'a dyn Observer,
    ) -> Self {
        Ctx {
            tx,
            rules,
            ahead: Arc::default(),
            facts,
            errors: Vec::new(),
            stats: SyncStats::default(),
            trace: None,
            observer,
            notes: Vec::new(),
            mv_in_error: BTreeSet::new(),
            memo: Default::default(),
            idents: FastMap::default(),
            full: false,
            waited: 0,
            incomplete: BTreeSet::new(),
            failures_in_a_row: HashMap::new(),
            stopped: HashMap::new(),
        }
    }

    /// Evaluates one of `rule`'s expressions, unless it failed on [`STOP_AFTER`] objects in a row
    /// in this run: then it fails at once, saying so.
    pub(crate) fn eval(&mut self, rule: &str, e: &Expr, scope: &mut Scope) -> std::result::Result<Dynamic, String> {
        self.eval_ready(rule, e, scope, &mut Ready::default())
    }

    /// [`Ctx::eval`], with the result `ready` holds for `e` if it holds one (evaluated ahead on
    /// the same scope).
    pub(crate) fn eval_ready(
        &mut self,
        rule: &str,
        e: &Expr,
        scope: &mut Scope,
        ready: &mut Ready,
    ) -> std::result::Result<Dynamic, String> {
        let held = |h| if let Held::Dynamic(d) = h { Some(d) } else { None };
        self.eval_as(rule, e, scope, ready, (held, |d| d))
    }

    /// [`Ctx::eval_ready`] for an inbound flow, its result turned into values
    /// ([`to_flow_values`]; turned already when it was evaluated ahead).
    pub(crate) fn eval_flow_ready(
        &mut self,
        rule: &str,
        e: &Expr,
        scope: &mut Scope,
        ready: &mut Ready,
    ) -> std::result::Result<Option<(Vec<Value>, bool)>, String> {
        let held = |h| if let Held::Flow(f) = h { Some(f) } else { None };
        self.eval_as(rule, e, scope, ready, (held, to_flow_values)).and_then(|f| f)
    }

    /// [`Ctx::eval_flow_ready`] for an outbound flow ([`to_values`]).
    pub(crate) fn eval_values_ready(
        &mut self,
        rule: &str,
        e: &Expr,
        scope: &mut Scope,
        ready: &mut Ready,
    ) -> std::result::Result<Option<Vec<Value>>, String> {
        let held = |h| if let Held::Values(v) = h { Some(v) } else { None };
        self.eval_as(rule, e, scope, ready, (held, to_values)).and_then(|v| v)
    }

    /// [`Ctx::eval_ready`], its result in the form `held` takes from what `ready` holds (or, when
    /// it holds it otherwise or not at all, `fresh` makes of it, evaluated now). Only failing to
    /// evaluate counts toward stopping the expression, not what the form makes of its result.
    fn eval_as<T>(
        &mut self,
        rule: &str,
        e: &Expr,
        scope: &mut Scope,
        ready: &mut Ready,
        (held, fresh): (impl FnOnce(Held) -> Option<T>, impl FnOnce(Dynamic) -> T),
    ) -> std::result::Result<T, String> {
        // The key is made only when a rule failed in this run (most runs: never).
        let key = || format!("{rule}\u{0}{}", e.what);
        if let Some(last) = (!self.stopped.is_empty()).then(|| self.stopped.get(&key())).flatten() {
            return Err(format!(
                "not evaluated: {} of rule {rule:?} failed on {STOP_AFTER} objects in a row and is stopped for this run (the last error: {last})",
                e.what
            ));
        }
        let result = match ready.take(e, scope).map(|r| r.map(held)) {
            Some(Ok(Some(t))) => Ok(t),
            Some(Err(message)) => Err(message),
            Some(Ok(None)) | None => self.rules.engine.eval_expr(scope, e).map_err(|err| err.message).map(fresh),
        };
        match result {
            Ok(d) => {
                if !self.failures_in_a_row.is_empty() {
                    self.failures_in_a_row.remove(&key());
                }
                Ok(d)
            }
            Err(message) => {
                let key = key();
                let n = self.failures_in_a_row.entry(key.clone()).or_insert(0);
                *n += 1;
                if *n >= STOP_AFTER {
                    self.stopped.insert(key, message.clone());
                    self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stop(e);
                    // One error for the rule itself, besides the objects': the run says it stopped it.
                    self.error(ObjectError {
                        stage: idflow_core::Stage::Sync,
                        connector: None,
                        object: None,
                        cs_id: None,
                        mv_id: None,
                        rule: Some(rule.to_string()),
                        category: idflow_core::Category::RuleError,
                        attribute: None,
                        conflict: None,
                        message: format!(
                            "{} {:?} failed on {STOP_AFTER} objects in a row, so it is not evaluated again in this run; \
                             the objects it handles stay in error until it is fixed (the last error: {})",
                            e.what, e.src, message
                        ),
                    });
                }
                Err(message)
            }
        }
    }

    pub(crate) fn trace(&mut self, stage: &str, rule: Option<&str>, message: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(TraceLine { stage: stage.into(), rule: rule.map(str::to_string), message: message() });
        }
    }

    /// The error just recorded is a conflict with `other` (another object holding the same value,
    /// the owner of a refused match).
    pub(crate) fn conflict_with(&mut self, other: String) {
        if let Some(e) = self.errors.last_mut() {
            e.conflict = Some(other);
        }
    }

    pub(crate) fn error(&mut self, e: ObjectError) {
        let e = e.classified();
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

    /// Whether target object `o`, of a connector naming references in `form`, has changes to
    /// export ([`diff::has_changes`]). The identifiers its references resolve to are kept for
    /// the stage, by connector; a full sync reads a connector's whole first, when they fit
    /// (in step at 1,000,000 people, each reference was a read of its target's row: a sixth
    /// of the stage).
    pub(crate) fn has_changes(&mut self, o: &CsObject, form: RefForm) -> Result<bool> {
        if let Some(known) = diff::known_without_diff(o) {
            return Ok(known);
        }
        let tx = self.tx;
        if !self.idents.contains_key(&o.connector) {
            let mut idents = Idents::new(form);
            if self.full {
                idents.preload_if_it_fits(tx, &o.connector)?;
            }
            self.idents.insert(o.connector.clone(), idents);
        }
        let idents = self.idents.get_mut(&o.connector).expect("made just above");
        let changes = diff::has_changes_with(tx, o, idents)?;
        // Debug builds compare with what reads every identifier now: an identifier the stage
        // changed and did not forget shows here.
        #[cfg(debug_assertions)]
        assert_eq!(changes, diff::change_for(tx, o, form)?.is_some(), "identifiers kept for the stage are out of date: {o:?}");
        Ok(changes)
    }

    /// Object `id`'s identifier (its anchor, DN or desired DN) changed, or it is gone: called
    /// once that is written (what is read before may be kept), so that [`Ctx::has_changes`]
    /// reads it again when a reference needs it.
    pub(crate) fn forget_ident(&mut self, id: i64) {
        for idents in self.idents.values_mut() {
            idents.forget(id);
        }
    }
}
