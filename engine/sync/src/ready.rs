//! Expressions evaluated ahead: the scope and flow expressions of a source object's inbound
//! rules depend on nothing but the object, so they are evaluated where it is decoded (the
//! machine's other core) and the stage takes their results as it meets them. Whether a rule
//! is in scope, which flows count, and what a failure does (a rule stopped after failing on
//! many objects in a row, a trace) are still decided by the stage, in order (`Ctx::eval_ready`).
use crate::ctx::STOP_AFTER;
use idflow_core::fast_hash::FastMap;
use idflow_policy::{truthy, Expr, RuleSet};
use idflow_store::CsObject;
use rhai::{Dynamic, Scope};

/// Results by expression (its address in the rule set, which outlives the stage), for one
/// object: each taken once.
#[derive(Default)]
pub(crate) struct Ready(Vec<(usize, Result<Dynamic, String>)>);

fn address(e: &Expr) -> usize {
    e as *const Expr as usize
}

impl Ready {
    /// The result held for `e`, if any (then no longer held).
    pub(crate) fn take(&mut self, e: &Expr) -> Option<Result<Dynamic, String>> {
        let at = self.0.iter().position(|(x, _)| *x == address(e))?;
        Some(self.0.swap_remove(at).1)
    }

    fn put(&mut self, e: &Expr, r: Result<Dynamic, String>) {
        self.0.push((address(e), r));
    }

    /// The results of `o`'s inbound rules' scope expressions, and of the flows of each rule in
    /// scope, on `scope` (the rules' view of `o`). The scope is left as it was. An expression
    /// that failed on [`STOP_AFTER`] objects in a row is not evaluated ahead any more: the
    /// stage evaluates it if it needs it (and stops it itself).
    pub(crate) fn inbound(rules: &RuleSet, o: &CsObject, scope: &mut Scope, streaks: &mut Streaks) -> Ready {
        let mut ready = Ready::default();
        let base = scope.len();
        let mut eval = |scope: &mut Scope, e: &Expr| {
            let failed = streaks.0.entry(address(e)).or_insert(0);
            if *failed >= STOP_AFTER {
                return None;
            }
            let r = rules.engine.eval_expr(scope, e).map_err(|err| err.message);
            *failed = if r.is_ok() { 0 } else { *failed + 1 };
            Some(r)
        };
        for r in rules.inbound(&o.connector, &o.object_type) {
            if let Some(e) = &r.scope {
                let Some(r) = eval(scope, e) else { continue };
                let in_scope = r.as_ref().is_ok_and(|d| truthy(d).unwrap_or(false));
                ready.put(e, r);
                if !in_scope {
                    continue;
                }
            }
            for (_, e) in &r.flows {
                if let Some(d) = eval(scope, e) {
                    ready.put(e, d);
                }
            }
        }
        scope.rewind(base);
        ready
    }
}

/// Per expression (by address), its failures in a row when evaluated ahead.
#[derive(Default)]
pub(crate) struct Streaks(FastMap<usize, usize>);

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
        ready.put(&a, Ok(Dynamic::from(10_i64)));
        assert!(ready.take(&b).is_none(), "another expression's result is not this one's");
        assert_eq!(ready.take(&a).and_then(Result::ok).map(|d| d.as_int()), Some(Ok(10)));
        assert!(ready.take(&a).is_none(), "taken once");
    }
}
