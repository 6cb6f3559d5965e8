//! Joins. Inbound: join groups tried in order; the first group that finds exactly one metaverse
//! object wins; more than one is an error on that object, never a guess. Outbound: the same,
//! against objects already in the target that no metaverse object owns (adoption instead of
//! duplication on a first run).
use crate::ctx::Ctx;
use idflow_core::{Result, Value};
use idflow_policy::{to_values, CompiledRule, EvalError, JoinCond};
use rhai::Scope;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Joined { id: i64, rule: String },
    Ambiguous { rule: String, group: String, candidates: Vec<i64> },
    NoMatch,
}

fn describe(group: &[JoinCond]) -> String {
    group.iter().map(|c| format!("{} = {}", c.attr, c.expr.src)).collect::<Vec<_>>().join(" and ")
}

/// Evaluates a group's expressions; `None` when one of them gives `()` (the group does not apply).
fn group_values(
    ctx: &mut Ctx,
    rule: &str,
    scope: &mut Scope,
    group: &[JoinCond],
) -> std::result::Result<Option<Vec<Vec<Value>>>, EvalError> {
    let mut out = Vec::new();
    for c in group {
        let d = ctx.eval(rule, &c.expr, scope).map_err(|message| EvalError { message })?;
        match to_values(d).map_err(|message| EvalError { message })? {
            Some(v) if !v.is_empty() => out.push(v),
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Inbound join for connector-space object `cs_connector`'s object in `scope`.
pub(crate) fn inbound(
    ctx: &mut Ctx,
    scope: &mut Scope,
    cs_connector: &str,
    rules: &[&CompiledRule],
) -> Result<std::result::Result<Outcome, (String, EvalError)>> {
    for r in rules {
        for group in &r.joins {
            let vals = match group_values(ctx, r.name(), scope, group) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    ctx.trace("join", Some(r.name()), || format!("{}: gives () so the group is skipped", describe(group)));
                    continue;
                }
                Err(e) => return Ok(Err((r.name().to_string(), e))),
            };
            let mut candidates: Option<BTreeSet<i64>> = None;
            for (cond, values) in group.iter().zip(vals) {
                let mut found = BTreeSet::new();
                for v in &values {
                    found.extend(ctx.tx.mv_find_by_value(&r.def.metaverse_type, &cond.attr, v, cond.ignore_case)?);
                }
                candidates = Some(match candidates {
                    None => found,
                    Some(prev) => prev.intersection(&found).copied().collect(),
                });
            }
            // A metaverse object already joined to another object of this connector is taken.
            let mut free = Vec::new();
            for id in candidates.unwrap_or_default() {
                if ctx.tx.cs_state_linked(cs_connector, id)?.is_none() {
                    free.push(id);
                }
            }
            // The group is described only where it is told (a trace, an ambiguous join): a full
            // sync tries the join of every object it projects.
            match free.len() {
                0 => ctx.trace("join", Some(r.name()), || format!("{}: no metaverse object matches", describe(group))),
                1 => {
                    ctx.trace("join", Some(r.name()), || format!("{}: joins metaverse object {}", describe(group), free[0]));
                    return Ok(Ok(Outcome::Joined { id: free[0], rule: r.name().to_string() }));
                }
                _ => return Ok(Ok(Outcome::Ambiguous { rule: r.name().to_string(), group: describe(group), candidates: free })),
            }
        }
    }
    Ok(Ok(Outcome::NoMatch))
}

/// Unlinked objects of a target connector, by attribute value, for outbound joins (built once per sync).
/// (object type, lower-cased attribute, lower-cased value) to unlinked connector-space objects.
type ValueIndex = HashMap<(String, String, String), Vec<i64>>;

#[derive(Default)]
pub(crate) struct AdoptIndex {
    built: HashMap<String, ValueIndex>,
}

impl AdoptIndex {
    fn build(ctx: &Ctx, connector: &str) -> Result<ValueIndex> {
        let mut m = ValueIndex::new();
        for o in ctx.tx.cs_unlinked_present(connector)? {
            for (a, vals) in &o.attrs {
                for v in vals {
                    m.entry((o.object_type.clone(), a.to_lowercase(), v.index_key().to_lowercase())).or_default().push(o.id);
                }
            }
        }
        Ok(m)
    }

    pub(crate) fn take(&mut self, connector: &str, cs_id: i64) {
        if let Some(m) = self.built.get_mut(connector) {
            for v in m.values_mut() {
                v.retain(|x| *x != cs_id);
            }
        }
    }

    /// Outbound join of one metaverse object (in `scope`) against `connector`'s unlinked objects.
    pub(crate) fn find(
        &mut self,
        ctx: &mut Ctx,
        scope: &mut Scope,
        connector: &str,
        rules: &[&CompiledRule],
    ) -> Result<std::result::Result<Outcome, (String, EvalError)>> {
        if rules.iter().all(|r| r.joins.is_empty()) {
            return Ok(Ok(Outcome::NoMatch));
        }
        if !self.built.contains_key(connector) {
            let idx = Self::build(ctx, connector)?;
            self.built.insert(connector.to_string(), idx);
        }
        for r in rules {
            let target_type = r.def.target_type.clone().unwrap_or_default();
            for group in &r.joins {
                let vals = match group_values(ctx, r.name(), scope, group) {
                    Ok(Some(v)) => v,
                    Ok(None) => continue,
                    Err(e) => return Ok(Err((r.name().to_string(), e))),
                };
                let idx = self.built.get(connector).expect("built above");
                let mut candidates: Option<BTreeSet<i64>> = None;
                for (cond, values) in group.iter().zip(vals) {
                    let mut found = BTreeSet::new();
                    for v in &values {
                        let key = v.index_key();
                        // Outbound matches compare case-insensitively only when asked; the index is lower-cased.
                        for id in idx.get(&(target_type.clone(), cond.attr.to_lowercase(), key.to_lowercase())).into_iter().flatten() {
                            if cond.ignore_case || exact(ctx, *id, &cond.attr, &key)? {
                                found.insert(*id);
                            }
                        }
                    }
                    candidates = Some(match candidates {
                        None => found,
                        Some(prev) => prev.intersection(&found).copied().collect(),
                    });
                }
                let found: Vec<i64> = candidates.unwrap_or_default().into_iter().collect();
                match found.len() {
                    0 => {}
                    1 => {
                        ctx.trace("outbound join", Some(r.name()), || {
                            format!("{}: adopts existing {connector} object #{}", describe(group), found[0])
                        });
                        return Ok(Ok(Outcome::Joined { id: found[0], rule: r.name().to_string() }));
                    }
                    _ => return Ok(Ok(Outcome::Ambiguous { rule: r.name().to_string(), group: describe(group), candidates: found })),
                }
            }
        }
        Ok(Ok(Outcome::NoMatch))
    }
}

fn exact(ctx: &Ctx, cs_id: i64, attr: &str, key: &str) -> Result<bool> {
    Ok(ctx
        .tx
        .cs_get(cs_id)?
        .is_some_and(|o| o.attrs.iter().any(|(a, vals)| a.eq_ignore_ascii_case(attr) && vals.iter().any(|v| v.index_key() == key))))
}
