//! Expressions evaluated ahead: the scope and flow expressions of a source object's inbound
//! rules depend on nothing but the object, and those of a metaverse object's outbound rules on
//! nothing but it, so they are evaluated where it is decoded (the machine's other core) and the
//! stage takes their results as it meets them. Whether a rule is in scope, which flows count,
//! and what a failure does (a rule stopped after failing on many objects in a row, a trace) are
//! still decided by the stage, in order (`Ctx::eval_ready`). A flow's result is turned into
//! values there too, as the stage would turn it (`Ctx::eval_flow_ready`,
//! `Ctx::eval_values_ready`).
use crate::ctx::STOP_AFTER;
use idflow_core::fast_hash::FastMap;
use idflow_core::Value;
use idflow_policy::{to_flow_values, to_values, truthy, CompiledRule, Expr, RuleSet};
use idflow_store::{CsObject, MvObject};
use rhai::{Dynamic, Scope};
use std::collections::HashSet;

/// What an expression that evaluated gave, as held: as it is (scopes, DNs), or a flow's result
/// turned into values already (that can fail: a value of no kind a flow may give).
pub(crate) enum Held {
    Dynamic(Dynamic),
    /// An inbound flow's ([`to_flow_values`]).
    Flow(Result<Option<(Vec<Value>, bool)>, String>),
    /// An outbound flow's ([`to_values`]).
    Values(Result<Option<Vec<Value>>, String>),
}

/// Results by expression (its address in the rule set, which outlives the stage), for one
/// object: each taken once, and only on a scope as it was made (of `base` variables).
#[derive(Default)]
pub(crate) struct Ready {
    results: Vec<(usize, Result<Held, String>)>,
    base: usize,
}

fn address(e: &Expr) -> usize {
    e as *const Expr as usize
}

impl Ready {
    /// The result held for `e`, if any, when `scope` is as the result was evaluated on (then
    /// no longer held).
    pub(crate) fn take(&mut self, e: &Expr, scope: &Scope) -> Option<Result<Held, String>> {
        if scope.len() != self.base {
            return None;
        }
        let at = self.results.iter().position(|(x, _)| *x == address(e))?;
        Some(self.results.swap_remove(at).1)
    }

    fn put(&mut self, e: &Expr, r: Result<Held, String>) {
        self.results.push((address(e), r));
    }

    /// The results of `o`'s inbound rules' scope expressions, and (`flows`) of the flows of each
    /// rule in scope, each on `scope` as it is (the rules' view of `o`). An expression that
    /// failed on [`STOP_AFTER`] objects in a row, or that the stage stopped, is not evaluated
    /// ahead any more: the stage evaluates it if it needs it (and stops it itself).
    pub(crate) fn inbound(rules: &RuleSet, o: &CsObject, scope: &mut Scope, flows: bool, streaks: &mut Streaks) -> Ready {
        let mut ready = Ready { results: Vec::new(), base: scope.len() };
        ready.rules(rules, rules.inbound(&o.connector, &o.object_type), scope, (flows, false), streaks);
        ready
    }

    /// [`Ready::inbound`] for a metaverse object `m` (not deleted): the scope expressions of its
    /// outbound rules, for every target, and the flows and DN of each rule in scope.
    pub(crate) fn outbound(rules: &RuleSet, m: &MvObject, scope: &mut Scope, streaks: &mut Streaks) -> Ready {
        let mut ready = Ready { results: Vec::new(), base: scope.len() };
        for crules in rules.outbound(&m.object_type).into_values() {
            ready.rules(rules, crules.into_iter(), scope, (true, true), streaks);
        }
        ready
    }

    /// The scope expressions of `rules`, and (`flows`) the flows of each one in scope. For one
    /// target's outbound rules (`outbound`), by precedence, as the stage takes them: a flow only
    /// while no rule before it gave its attribute values, and the DN expression only while none
    /// before it gave a DN.
    fn rules<'r>(
        &mut self,
        set: &RuleSet,
        rules: impl Iterator<Item = &'r CompiledRule>,
        scope: &mut Scope,
        (flows, outbound): (bool, bool),
        streaks: &mut Streaks,
    ) {
        let mut flowed: HashSet<&str> = HashSet::new();
        let mut has_dn = false;
        let mut eval = |scope: &mut Scope, e: &Expr| {
            let failed = streaks.0.entry(address(e)).or_insert(0);
            if *failed >= STOP_AFTER {
                return None;
            }
            let r = set.engine.eval_expr(scope, e).map_err(|err| err.message);
            *failed = if r.is_ok() { 0 } else { *failed + 1 };
            Some(r)
        };
        for r in rules {
            if let Some(e) = &r.scope {
                let Some(r) = eval(scope, e) else { continue };
                let in_scope = r.as_ref().is_ok_and(|d| truthy(d).unwrap_or(false));
                self.put(e, r.map(Held::Dynamic));
                if !in_scope {
                    continue;
                }
            }
            if !flows {
                continue;
            }
            for (attr, e) in &r.flows {
                if outbound && flowed.contains(attr.as_str()) {
                    continue;
                }
                if let Some(d) = eval(scope, e) {
                    // A flow that gives nothing leaves the attribute to the next rule.
                    if d.as_ref().is_ok_and(|d| !d.is_unit()) {
                        flowed.insert(attr);
                    }
                    self.put(e, d.map(|d| if outbound { Held::Values(to_values(d)) } else { Held::Flow(to_flow_values(d)) }));
                }
            }
            let Some(e) = r.dn.as_ref().filter(|_| outbound && !has_dn) else { continue };
            if let Some(d) = eval(scope, e) {
                has_dn = d.as_ref().is_ok_and(Dynamic::is_string);
                self.put(e, d.map(Held::Dynamic));
            }
        }
    }
}

/// Whether rules' expressions may be evaluated ahead: not while their `print` and `debug`
/// output is shown (it goes to this log, and comes from the stage then, in order).
pub(crate) fn may_evaluate_ahead() -> bool {
    !tracing::enabled!(target: "idflow::rules", tracing::Level::DEBUG)
}

/// Per expression (by address), its failures in a row when evaluated ahead, for a run.
#[derive(Default)]
pub(crate) struct Streaks(FastMap<usize, usize>);

impl Streaks {
    /// The stage stopped `e`: not evaluated ahead again in this run.
    pub(crate) fn stop(&mut self, e: &Expr) {
        self.0.insert(address(e), STOP_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_taken_once_for_its_own_expression() {
        let engine = idflow_policy::RuleEngine::new(&[], &Default::default());
        let compile = |src: &str| Expr {
            ast: engine.compile(&["source"], src).expect("compiles"),
            src: src.into(),
            what: "flow x".into(),
            read: None,
        };
        let (a, b) = (compile("1"), compile("2"));
        let mut ready = Ready::default();
        ready.put(&a, Ok(Held::Dynamic(Dynamic::from(10_i64))));
        let mut scope = Scope::new();
        assert!(ready.take(&b, &scope).is_none(), "another expression's result is not this one's");
        scope.push("left", 1_i64);
        assert!(ready.take(&a, &scope).is_none(), "not on a scope with a variable more than it was evaluated on");
        scope.rewind(0);
        let held = ready.take(&a, &scope).and_then(Result::ok);
        assert!(matches!(held, Some(Held::Dynamic(d)) if d.as_int() == Ok(10)));
        assert!(ready.take(&a, &scope).is_none(), "taken once");
    }
}
