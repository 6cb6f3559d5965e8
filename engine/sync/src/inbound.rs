//! Inbound sync: connector-space objects into the metaverse.
//!
//! Two passes over the objects to look at: first every object is scoped and linked (joined,
//! projected or disconnected), then flows run. So a reference to an object projected later in
//! the same pass still resolves; one to an object that has not arrived yet is remembered and
//! looked at again when it does.
use super::join::{self, Outcome};
use super::precedence::{self, Contributions};
use super::references::{self, Inbound};
use super::Ctx;
use crate::config::rules::LinkMode;
use crate::error::Result;
use crate::rules::objmap::{source_map, to_values, truthy};
use crate::rules::CompiledRule;
use crate::store::history::ObjectError;
use crate::store::{self, cs, mv, CsObject, Link, PendingImport};
use crate::value::Value;
use rhai::Scope;
use std::collections::BTreeSet;

fn scope_of(o: &CsObject) -> Scope<'static> {
    let mut s = Scope::new();
    s.push_constant("source", source_map(&o.attrs, o.dn.as_deref()));
    s
}

fn obj_error(ctx: &mut Ctx, o: &CsObject, rule: Option<&str>, message: String) {
    ctx.error(ObjectError {
        stage: "sync".into(),
        connector: Some(o.connector.clone()),
        object: Some(o.display()),
        cs_id: Some(o.id),
        mv_id: o.mv_id,
        rule: rule.map(str::to_string),
        message,
    });
}

fn linked_inbound(o: &CsObject) -> bool {
    o.mv_id.is_some() && o.link.is_some_and(Link::is_inbound)
}

/// Syncs the given connector-space objects (and whatever they make worth looking at again).
///
/// Connector by connector, those whose rules project first: a join can then find the
/// attributes a metaverse object got from another connector in this same sync (HR projects,
/// the directory joins), instead of projecting a duplicate.
pub fn run(ctx: &mut Ctx, ids: Vec<i64>) -> Result<()> {
    let mut groups: std::collections::BTreeMap<(u8, String), Vec<i64>> = std::collections::BTreeMap::new();
    for id in ids {
        let Some(connector) = cs::connector_of(ctx.conn, id)? else { continue };
        let projects = ctx.rules.rules.iter().any(|r| {
            r.def.direction == crate::config::rules::Direction::Inbound
                && r.def.connector == connector
                && r.def.link == Some(LinkMode::Provision)
        });
        groups.entry((u8::from(!projects), connector)).or_default().push(id);
    }
    for (_, ids) in groups {
        run_connector(ctx, ids)?;
    }
    Ok(())
}

fn run_connector(ctx: &mut Ctx, ids: Vec<i64>) -> Result<()> {
    let mut queue = ids;
    for _round in 0..4 {
        if queue.is_empty() {
            break;
        }
        let recheck = batch(ctx, &queue)?;
        queue = recheck.into_iter().collect();
    }
    Ok(())
}

/// One round; returns objects to look at again.
fn batch(ctx: &mut Ctx, ids: &[i64]) -> Result<BTreeSet<i64>> {
    let mut recheck = BTreeSet::new();
    let mut work: Vec<(i64, Vec<usize>)> = Vec::new();
    // Pass 1: scope and link.
    'objects: for &id in ids {
        ctx.progress.inc(1);
        let Some(mut o) = cs::get(ctx.conn, id)? else { continue };
        ctx.stats.inbound_objects += 1;
        if o.pending_import == Some(PendingImport::Delete) {
            if linked_inbound(&o) {
                ctx.trace("inbound", None, || "deleted in the source: disconnected".into());
                disconnect(ctx, &mut o, &mut recheck)?;
            }
            if o.export_state.is_some() {
                o.pending_import = None;
                cs::save(ctx.conn, &o)?;
            } else {
                cs::delete(ctx.conn, o.id)?;
            }
            continue;
        }
        let rules: Vec<(usize, &CompiledRule)> = ctx
            .rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.def.direction == crate::config::rules::Direction::Inbound
                    && r.def.connector == o.connector
                    && r.def.source_type.as_deref() == Some(o.object_type.as_str())
            })
            .collect();
        let mut scope = scope_of(&o);
        let mut in_scope = Vec::new();
        for (i, r) in &rules {
            let ok = match &r.scope {
                None => true,
                Some(e) => match ctx.rules.engine.eval(&mut scope, &e.ast).map_err(|e| e.message).and_then(|d| truthy(&d)) {
                    Ok(b) => b,
                    Err(m) => {
                        obj_error(ctx, &o, Some(r.name()), format!("scope {:?}: {m}", e.src));
                        o.error = Some(m);
                        cs::save(ctx.conn, &o)?;
                        continue 'objects;
                    }
                },
            };
            ctx.trace("scope", Some(r.name()), || if ok { "in scope".into() } else { "not in scope".into() });
            if ok {
                in_scope.push(*i);
            }
        }
        if in_scope.is_empty() {
            if linked_inbound(&o) {
                ctx.trace("inbound", None, || "no inbound rule has it in scope any more: disconnected".into());
                disconnect(ctx, &mut o, &mut recheck)?;
            }
            o.pending_import = None;
            o.error = None;
            cs::save(ctx.conn, &o)?;
            continue;
        }
        if !linked_inbound(&o) {
            let scoped: Vec<&CompiledRule> = in_scope.iter().map(|i| &ctx.rules.rules[*i]).collect();
            match join::inbound(ctx, &mut scope, &o.connector.clone(), &scoped)? {
                Err((rule, e)) => {
                    obj_error(ctx, &o, Some(&rule), format!("join: {e}"));
                    continue;
                }
                Ok(Outcome::Ambiguous { rule, group, candidates }) => {
                    let m = format!(
                        "ambiguous join: {group} matches {} metaverse objects ({}); nothing was joined",
                        candidates.len(),
                        candidates.iter().map(|c| format!("#{c}")).collect::<Vec<_>>().join(", ")
                    );
                    obj_error(ctx, &o, Some(&rule), m.clone());
                    o.error = Some(m);
                    cs::save(ctx.conn, &o)?;
                    continue;
                }
                Ok(Outcome::Joined { id: m, rule }) => {
                    o.mv_id = Some(m);
                    o.link = Some(Link::Joined);
                    o.link_rule = Some(rule);
                    ctx.stats.joined += 1;
                }
                Ok(Outcome::NoMatch) => {
                    match scoped.iter().find(|r| r.def.link == Some(LinkMode::Provision)) {
                        Some(r) => {
                            let m = mv::create(ctx.conn, &r.def.metaverse_type)?;
                            ctx.trace("inbound", Some(r.name()), || format!("no join: projected metaverse object {m}"));
                            o.mv_id = Some(m);
                            o.link = Some(Link::Projected);
                            o.link_rule = Some(r.name().to_string());
                            ctx.stats.projected += 1;
                        }
                        None => {
                            ctx.trace("inbound", None, || "no join and no rule projects: stays a disconnector".into());
                            o.pending_import = None;
                            o.error = None;
                            cs::save(ctx.conn, &o)?;
                            continue;
                        }
                    }
                }
            }
            cs::save(ctx.conn, &o)?;
            if let Some(d) = &o.dn {
                recheck.extend(cs::waiting_for(ctx.conn, &store::dn_norm(d))?);
            }
        }
        work.push((o.id, in_scope));
    }
    // Pass 2: flows and precedence.
    for (id, rule_idx) in work {
        let Some(mut o) = cs::get(ctx.conn, id)? else { continue };
        let Some(m) = o.mv_id else { continue };
        let Some(mut mv_obj) = mv::get(ctx.conn, m)? else { continue };
        let mut scope = scope_of(&o);
        let facts = ctx.facts(&o.connector);
        let mut contributions = Contributions::new();
        let mut dangling = Vec::new();
        let mut ref_errors = Vec::new();
        let mut failed = None;
        'rules: for i in rule_idx {
            let r = &ctx.rules.rules[i];
            if r.def.metaverse_type != mv_obj.object_type {
                continue;
            }
            for (attr, e) in &r.flows {
                let d = match ctx.rules.engine.eval(&mut scope, &e.ast).map_err(|e| e.message).and_then(to_values) {
                    Ok(d) => d,
                    Err(msg) => {
                        failed = Some((r.name().to_string(), format!("flow {attr} {:?}: {msg}", e.src)));
                        break 'rules;
                    }
                };
                let Some(mut vals) = d else {
                    ctx.trace("flow", Some(r.name()), || format!("{attr}: () (no contribution)"));
                    continue;
                };
                if facts.is_some_and(|f| f.is_reference(attr)) {
                    let mut refs = Vec::with_capacity(vals.len());
                    for v in vals {
                        let Value::Str(dn) = &v else {
                            ref_errors.push(format!("reference attribute {attr} holds a value that is not a DN"));
                            continue;
                        };
                        match references::resolve_dn(ctx.conn, &o.connector, dn)? {
                            Inbound::Mv(target) => refs.push(Value::Ref(target)),
                            Inbound::NotLinked => {
                                ctx.trace("flow", Some(r.name()), || {
                                    format!("{attr}: {dn} is not in the metaverse (out of scope, or not synced yet): left out")
                                });
                                dangling.push(store::dn_norm(dn))
                            }
                            Inbound::Deleted => {
                                ctx.trace("flow", Some(r.name()), || format!("{attr}: {dn} was deleted: left out"));
                            }
                            Inbound::Missing => {
                                dangling.push(store::dn_norm(dn));
                                ref_errors.push(format!("{attr} refers to {dn}, which does not exist in connector {:?}", o.connector));
                            }
                        }
                    }
                    vals = refs;
                }
                if !vals.is_empty() {
                    ctx.trace("flow", Some(r.name()), || format!("{attr}: {}", vals.iter().map(Value::display).collect::<Vec<_>>().join(", ")));
                }
                contributions.insert((attr.clone(), r.name().to_string()), (r.def.precedence, vals));
            }
        }
        if let Some((rule, msg)) = failed {
            // Nothing changes for this object: its previous contributions stay.
            obj_error(ctx, &o, Some(&rule), msg.clone());
            o.error = Some(msg);
            cs::save(ctx.conn, &o)?;
            continue;
        }
        let changed = precedence::apply(ctx.conn, &mut mv_obj, o.id, &contributions)?;
        if !changed.is_empty() {
            ctx.stats.metaverse_updated += 1;
        }
        cs::set_dangling(ctx.conn, o.id, &dangling)?;
        for m in &ref_errors {
            obj_error(ctx, &o, o.link_rule.clone().as_deref(), m.clone());
        }
        o.error = ref_errors.first().cloned();
        o.pending_import = None;
        cs::save(ctx.conn, &o)?;
    }
    Ok(recheck)
}

/// Unlinks an object from its metaverse object and removes its contributions. A metaverse object
/// left with no inbound link is deleted (outbound sync then deprovisions it), and objects that
/// referenced it are looked at again.
pub fn disconnect(ctx: &mut Ctx, o: &mut CsObject, recheck: &mut BTreeSet<i64>) -> Result<()> {
    let Some(m) = o.mv_id else { return Ok(()) };
    if let Some(mut mv_obj) = mv::get(ctx.conn, m)? {
        precedence::remove_all(ctx.conn, &mut mv_obj, o.id)?;
    }
    o.mv_id = None;
    o.link = None;
    o.link_rule = None;
    cs::save(ctx.conn, o)?;
    cs::set_dangling(ctx.conn, o.id, &[])?;
    ctx.stats.disconnected += 1;
    if mv::has_inbound_link(ctx.conn, m)? {
        mv::mark_dirty(ctx.conn, m)?;
    } else {
        for r in references::referrers(ctx.conn, m)? {
            for linked in cs::all_linked(ctx.conn, r)? {
                if linked.link.is_some_and(Link::is_inbound) {
                    recheck.insert(linked.id);
                }
            }
        }
        mv::mark_deleted(ctx.conn, m)?;
        ctx.stats.metaverse_deleted += 1;
    }
    Ok(())
}
