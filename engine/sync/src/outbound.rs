//! Outbound sync: metaverse objects into target connector spaces as pending exports.
//!
//! Per target connector: scope; adopt (outbound join) or provision when nothing is linked;
//! flows by precedence into the object's desired state; deprovision (delete, disable or
//! disconnect) when the object leaves scope or its metaverse object is deleted. Like inbound,
//! two passes: every provisioning first, then flows, so references among new objects resolve.
use crate::ahead::{Ahead, Spent};
use crate::ctx::Ctx;
use crate::diff;
use crate::early::Early;
use crate::join::{AdoptIndex, Outcome};
use crate::ready::Ready;
use crate::references;
use idflow_core::connector::RefForm;
use idflow_core::fast_hash::FastMap;
use idflow_core::{Attrs, Category, ObjectError, Result, Stage, Value};
use idflow_policy::defs::{Deprovision, Direction, LinkMode};
use idflow_policy::{object_map, to_values, truthy, CompiledRule};
use idflow_store::{CsObject, ExportState, Link, LinkState, MvObject, WriteOps};
use rhai::Scope;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// `m` as outbound rules see it: only the attributes they read, when they read them by name.
fn scope_of(ctx: &Ctx, m: &MvObject) -> Scope<'static> {
    mv_scope(m, ctx.rules.mv_reads())
}

fn mv_scope(m: &MvObject, reads: Option<&BTreeSet<String>>) -> Scope<'static> {
    let mut s = Scope::new();
    s.push_constant("mv", object_map(m.attrs.iter().map(|(k, a)| (k, a.values.as_slice())), None, reads));
    s
}

fn mv_error(ctx: &mut Ctx, m: &MvObject, connector: &str, cs_id: Option<i64>, rule: Option<&str>, message: String) {
    let object = m
        .attrs
        .get("displayName")
        .or_else(|| m.attrs.get("mail"))
        .and_then(|a| a.values.first())
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("metaverse #{}", m.id));
    ctx.mv_in_error.insert(m.id);
    ctx.error(ObjectError {
        stage: Stage::Sync,
        connector: Some(connector.to_string()),
        object: Some(object),
        cs_id,
        mv_id: Some(m.id),
        rule: rule.map(str::to_string),
        message,
        category: Category::Other,
        attribute: None,
        conflict: None,
    });
}

/// Syncs the given metaverse objects out to every target.
pub(crate) fn run(ctx: &mut Ctx, ids: Vec<i64>) -> Result<()> {
    let mut adopt = AdoptIndex::default();
    let mut queue = ids;
    let mut purge = Vec::new();
    for round in 0..4 {
        if queue.is_empty() {
            break;
        }
        // A full sync's first round holds every metaverse object: each one referring to an
        // object it provisions or adopts is in it already (its flows wait for pass 2 when a
        // reference names no target object yet).
        let every = ctx.full && round == 0;
        let recheck = batch(ctx, &queue, every, &mut adopt, &mut purge)?;
        ctx.tx.mv_clear_dirty(&queue)?;
        queue = recheck.into_iter().collect();
    }
    for id in purge {
        for gone in release(ctx.tx, id)? {
            ctx.forget_ident(gone);
        }
    }
    // Objects in error are looked at again by the next run, delta or not, until they are fixed.
    for id in std::mem::take(&mut ctx.mv_in_error) {
        if ctx.tx.mv_get(id)?.is_some_and(|m| !m.deleted) {
            ctx.tx.mv_mark_dirty(id)?;
        }
    }
    Ok(())
}

/// One round; returns objects to look at again.
///
/// Like inbound sync, pass 1 runs an object's flows as soon as its target object is known when
/// every reference they hold names a target object already there whose flows are not left to
/// pass 2 (so its identifier is what pass 2 would see): pass 1 only adds target objects until
/// it deprovisions one. Once it has, those early flows are run again in pass 2.
fn batch(ctx: &mut Ctx, ids: &[i64], every: bool, adopt: &mut AdoptIndex, purge: &mut Vec<i64>) -> Result<BTreeSet<i64>> {
    let mut recheck = BTreeSet::new();
    let mut work: Vec<(i64, &str, Vec<usize>, i64, Early)> = Vec::new();
    let rules = ctx.rules;
    let deprovisioned = ctx.stats.deprovisioned;
    // A preview's trace tells each step once, in the order of the two passes.
    let early = ctx.trace.is_none();
    // Target objects whose flows pass 2 runs.
    let mut later: HashSet<i64> = HashSet::new();
    ctx.memo.clear();
    // A full sync's first pass into a target where nothing is linked yet links every target
    // object there is, and remembers each: a reference to one not remembered waits for pass 2
    // without a lookup (as a lookup would have it wait).
    if every && early {
        for c in rules.outbound_connectors() {
            if !ctx.tx.cs_has_linked(c)? {
                ctx.memo.remember_all_targets(c);
            }
        }
    }
    // Read ahead: handling an object changes only its own links (it provisions, adopts or
    // deprovisions its own target objects), and nothing here writes metaverse objects.
    let mut ahead: Ahead<ReadAhead> = Ahead::default();
    let mut spent = Spent::default();
    let reads = ctx.rules.mv_reads().cloned().map(Arc::new);
    // The rules' expressions are evaluated ahead too.
    let evaluates = crate::ready::may_evaluate_ahead().then(|| Arc::clone(ctx.rules));
    for (i, &id) in ids.iter().enumerate() {
        ctx.observer.advanced(1);
        // With every object linked to it, their attributes not read: whole objects are read
        // only to be deprovisioned. The rules' view of each one still there is made where it
        // is decoded (the machine's other core), and its rules' expressions evaluated there.
        // The target objects linked to them are read with them, for their flows: handling an
        // object changes no other object's targets.
        let Some((m, links, viewed, mut read_targets)) = ahead.take(ids, i, |chunk| {
            let mut links = ctx.tx.cs_states_of_mvs(chunk)?;
            let objects = ctx.tx.mv_get_many_later(chunk)?;
            // Only where early flows read them (not in a preview).
            let target_ids: Vec<i64> = match early {
                true => links.values().flatten().filter(|(_, l)| l.is_target()).map(|(_, l)| l.id).collect(),
                false => Vec::new(),
            };
            let linked = ctx.tx.cs_get_many_later(&target_ids)?;
            let reads = reads.clone();
            let (evaluates, streaks) = (evaluates.clone(), Arc::clone(&ctx.ahead));
            Ok(Box::new(move || {
                // One that cannot be read is read by the stage if it needs it, and fails there:
                // a damaged object the stage never looks at does not fail the sync.
                let mut linked: FastMap<i64, CsObject> = linked().map(|v| v.into_iter().map(|o| (o.id, o)).collect()).unwrap_or_default();
                let objects = objects()?;
                // Held while a chunk's expressions are evaluated (so chunks' are, one at a time);
                // not while it is decoded, so that a stage stopping a rule waits for less.
                let mut streaks = streaks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(objects
                    .into_iter()
                    .map(|m| {
                        let l = links.remove(&m.id).unwrap_or_default();
                        let viewed = (!m.deleted).then(|| {
                            let mut scope = mv_scope(&m, reads.as_deref());
                            let ready = match &evaluates {
                                Some(rules) => Ready::outbound(rules, &m, &mut scope, &mut streaks),
                                None => Ready::default(),
                            };
                            (scope, ready)
                        });
                        let targets = l.iter().filter_map(|(_, s)| linked.remove(&s.id)).collect();
                        (m.id, (m, l, viewed, targets))
                    })
                    .collect())
            }))
        })?
        else {
            continue;
        };
        ctx.stats.outbound_objects += 1;
        let targets = || links.iter().filter(|(_, l)| l.is_target());
        if m.deleted {
            // Deletions already pending (held by the threshold, or not exported yet) stay as they are.
            for (_, l) in targets().filter(|(_, l)| l.export_state != Some(ExportState::Delete)) {
                deprovision_id(ctx, &m, l.id, &mut recheck)?;
            }
            purge.push(id);
            continue;
        }
        let (mut scope, mut ready) = viewed.unwrap_or_else(|| (scope_of(ctx, &m), Ready::default()));
        let by_connector = rules.outbound(&m.object_type);
        // Targets this object is linked to but no outbound rule serves any more.
        for (_, l) in targets().filter(|(c, _)| !by_connector.contains_key(c.as_str())) {
            deprovision_id(ctx, &m, l.id, &mut recheck)?;
        }
        for (connector, crules) in by_connector {
            let mut in_scope = Vec::new();
            let mut failed = false;
            for r in &crules {
                let ok = match &r.scope {
                    None => true,
                    Some(e) => match ctx.eval_ready(r.name(), e, &mut scope, &mut ready).and_then(|d| truthy(&d)) {
                        Ok(b) => b,
                        Err(msg) => {
                            mv_error(ctx, &m, connector, None, Some(r.name()), format!("scope {:?}: {msg}", e.src));
                            failed = true;
                            break;
                        }
                    },
                };
                ctx.trace("outbound scope", Some(r.name()), || format!("{connector}: {}", if ok { "in scope" } else { "not in scope" }));
                if ok {
                    in_scope.push(*r);
                }
            }
            if failed {
                continue;
            }
            // What is linked in this connector has not changed since `links` was read: only
            // other connectors' objects were deprovisioned, adopted or provisioned since.
            let linked = links.iter().find(|(c, _)| c == connector).map(|(_, l)| l);
            if in_scope.is_empty() {
                if let Some(l) = linked.filter(|l| l.export_state == Some(ExportState::Present)) {
                    deprovision_id(ctx, &m, l.id, &mut recheck)?;
                }
                continue;
            }
            if linked.is_none() && ctx.incomplete.contains(&id) {
                let m_msg = format!("not provisioned to {connector}: its inbound flows failed in this run (it is, once they succeed)");
                mv_error(ctx, &m, connector, None, None, m_msg);
                continue;
            }
            // A target object made just now, not saved yet: saved with the desired state its
            // flows give it (one write, not two), or as made.
            let mut fresh = None;
            let mut cs_id = match linked {
                Some(o) => o.id,
                None => match adopt.find(ctx, &mut scope, connector, &in_scope)? {
                    Err((rule, e)) => {
                        mv_error(ctx, &m, connector, None, Some(&rule), format!("outbound join: {e}"));
                        continue;
                    }
                    Ok(Outcome::Ambiguous { rule, group, candidates }) => {
                        mv_error(
                            ctx,
                            &m,
                            connector,
                            None,
                            Some(&rule),
                            format!(
                                "ambiguous outbound join: {group} matches {} objects in {connector}; nothing was adopted",
                                candidates.len()
                            ),
                        );
                        ctx.conflict_with(format!("{} objects in {connector}", candidates.len()));
                        continue;
                    }
                    Ok(Outcome::Joined { id: cs_id, rule }) => {
                        let Some(mut o) = ctx.tx.cs_get(cs_id)? else { continue };
                        if let Some(refusal) = owned_elsewhere(ctx, &mut scope, connector, &in_scope, &o)? {
                            mv_error(ctx, &m, connector, Some(o.id), Some(&rule), refusal);
                            ctx.conflict_with(format!("{connector} {}", o.display()));
                            continue;
                        }
                        adopt.take(connector, cs_id);
                        o.mv_id = Some(id);
                        o.link = Some(Link::Adopted);
                        o.link_rule = Some(rule);
                        ctx.tx.cs_save(&o)?;
                        ctx.stats.adopted += 1;
                        if !every {
                            recheck.extend(references::referrers(ctx.tx, id)?);
                        }
                        cs_id
                    }
                    Ok(Outcome::NoMatch) => {
                        match in_scope.iter().find(|r| r.def.link.unwrap_or(LinkMode::Provision) == LinkMode::Provision) {
                            None => continue,
                            Some(r) => {
                                let facts = ctx.facts(connector);
                                let mut o = CsObject::new(connector, r.def.target_type.as_deref().unwrap_or_default());
                                if facts.is_some_and(|f| f.caps.local_anchor) {
                                    // Time-ordered (version 7): ids made one after another sit
                                    // next to each other in the anchor index.
                                    o.anchor = Some(uuid::Uuid::now_v7().to_string());
                                }
                                o.mv_id = Some(id);
                                o.link = Some(Link::Provisioned);
                                o.link_rule = Some(r.name().to_string());
                                o.export_state = Some(ExportState::Present);
                                o.desired = Some(Attrs::new());
                                o.pending_export = true;
                                ctx.trace("provision", Some(r.name()), || format!("{connector}: provisions a new {}", o.object_type));
                                ctx.stats.provisioned += 1;
                                if !every {
                                    recheck.extend(references::referrers(ctx.tx, id)?);
                                }
                                fresh = Some(o);
                                0
                            }
                        }
                    }
                },
            };
            let idx = in_scope.iter().filter_map(|r| ctx.rules.rules.iter().position(|x| std::ptr::eq(x, *r))).collect();
            let flowed = match early && ctx.stats.deprovisioned == deprovisioned {
                true => match fresh
                    .take()
                    .or_else(|| take_target(&mut read_targets, cs_id))
                    .map_or_else(|| ctx.tx.cs_get(cs_id), |o| Ok(Some(o)))?
                {
                    Some(mut o) => {
                        let flowed = flows(ctx, &m, &mut o, &in_scope, connector, (&mut scope, &mut ready), Some(&later))?;
                        cs_id = saved(ctx, &mut o)?;
                        flowed
                    }
                    None => Early::No,
                },
                false => Early::No,
            };
            if let Some(mut o) = fresh {
                cs_id = saved(ctx, &mut o)?;
            }
            // What references to this object resolve to in this connector, known without a
            // lookup: the object just provisioned, or the one linked there already (when it is
            // the only one, not being deleted).
            let mut here = links.iter().filter(|(c, _)| c == connector);
            let known = match (linked, here.next(), here.next()) {
                (None, _, _) => cs_id != 0,
                (Some(l), Some(_), None) => l.export_state != Some(ExportState::Delete),
                _ => false,
            };
            if known {
                ctx.memo.remember_target(connector, id, cs_id);
            }
            if flowed == Early::No {
                later.insert(cs_id);
            }
            work.push((id, connector, idx, cs_id, flowed));
        }
        spent.push((m, links, scope, read_targets));
    }
    let again = ctx.stats.deprovisioned != deprovisioned;
    let batch_ids: BTreeSet<i64> = ids.iter().copied().collect();
    // Flows provision, adopt and deprovision nothing: references to targets are remembered.
    // What pass 1 remembered stays when it deprovisioned nothing (it only ever added targets).
    ctx.memo.provisioned_all();
    if again {
        ctx.memo.clear();
    }
    for (id, connector, idx, cs_id, flowed) in work {
        if !flowed.in_pass_2(again) {
            continue;
        }
        let (Some(m), Some(mut o)) = (ctx.tx.mv_get(id)?, ctx.tx.cs_get(cs_id)?) else { continue };
        let crules: Vec<&CompiledRule> = idx.into_iter().map(|i| &ctx.rules.rules[i]).collect();
        let mut scope = scope_of(ctx, &m);
        flows(ctx, &m, &mut o, &crules, connector, (&mut scope, &mut Ready::default()), None)?;
    }
    ctx.memo.clear();
    Ok(recheck.difference(&batch_ids).copied().collect())
}

/// Target object `cs_id`, when it was read ahead with its metaverse object.
fn take_target(targets: &mut Vec<CsObject>, cs_id: i64) -> Option<CsObject> {
    let at = targets.iter().position(|o| o.id == cs_id)?;
    Some(targets.swap_remove(at))
}

/// Where what is linked to a metaverse object stands, with each one's connector.
type Links = Vec<(String, LinkState)>;

/// A metaverse object as outbound sync reads it ahead: with its links, the rules' view of it
/// and what its rules' expressions gave there (`None`: it is deleted), and its target objects.
type ReadAhead = (MvObject, Links, Option<(Scope<'static>, Ready)>, Vec<CsObject>);

/// Evaluates flows (lowest precedence first wins per attribute) into the object's desired state,
/// taking what `ready` holds for them (evaluated ahead on `scope` as it was made).
///
/// `early` (pass 1): the target objects whose flows pass 2 runs. Then nothing is written or
/// reported, and [`Early::No`] returned, when a reference does not name a target object, names
/// one of those in an object the target has already, or a flow gives text for references.
fn flows(
    ctx: &mut Ctx,
    m: &MvObject,
    o: &mut CsObject,
    crules: &[&CompiledRule],
    connector: &str,
    (scope, ready): (&mut Scope, &mut Ready),
    early: Option<&HashSet<i64>>,
) -> Result<Early> {
    let mut desired = Attrs::new();
    let mut set: BTreeSet<String> = BTreeSet::new();
    let mut new_dn = None;
    for r in crules {
        for (attr, e) in &r.flows {
            if set.contains(attr) {
                continue;
            }
            let vals = match ctx.eval_values_ready(r.name(), e, scope, ready) {
                Ok(v) => v,
                Err(msg) => {
                    let m_msg = format!("flow {attr} {:?}: {msg}", e.src);
                    o.error = Some(msg);
                    // Saved whole. One made just now gets its id here, perhaps a deleted row's:
                    // nothing kept of that one stays.
                    o.id = ctx.tx.cs_save(o)?;
                    ctx.forget_ident(o.id);
                    mv_error(ctx, m, connector, Some(o.id), Some(r.name()), m_msg);
                    return Ok(Early::Failed);
                }
            };
            let Some(vals) = vals else { continue };
            // A target that names objects by its own ids never gets text where it expects a
            // reference: a DN there would be silently wrong data.
            let ids_only = ctx.facts(connector).is_some_and(|f| f.caps.reference_form == RefForm::Anchor && f.is_target_reference(attr));
            let mut out = Vec::with_capacity(vals.len());
            let mut text = Vec::new();
            for v in vals {
                match v {
                    Value::Ref(target) => {
                        // The referenced object counts only if it is in this target too.
                        match (ctx.memo.resolve_mv(ctx.tx, connector, target)?, early) {
                            // Compared with what the target has (an object there already), a
                            // reference is written as its target's identifier, which that
                            // target's own flows may still change in pass 2.
                            (Some(t), Some(later)) if o.present && later.contains(&t) => return Ok(Early::No),
                            (Some(t), _) => out.push(Value::Ref(t)),
                            (None, Some(_)) => return Ok(Early::No),
                            (None, None) => {}
                        }
                    }
                    Value::Str(s) if ids_only => text.push(s),
                    other => out.push(other),
                }
            }
            if !text.is_empty() {
                if early.is_some() {
                    return Ok(Early::No);
                }
                let m_msg = format!(
                    "flow {attr} {:?}: {attr} holds references in {connector}, but the flow gave text ({}): not sent; \
                     flow a reference (such as mv.manager) instead",
                    e.src,
                    text.join(", ")
                );
                mv_error(ctx, m, connector, Some(o.id), Some(r.name()), m_msg);
            }
            set.insert(attr.clone());
            desired.insert(attr.clone(), out);
        }
        if new_dn.is_none() {
            if let Some(e) = &r.dn {
                match ctx.eval_ready(r.name(), e, scope, ready) {
                    Ok(d) if d.is_string() => new_dn = d.into_string().ok(),
                    Ok(d) if d.is_unit() => {}
                    Ok(d) => {
                        let cs_id = saved(ctx, o)?;
                        mv_error(
                            ctx,
                            m,
                            connector,
                            Some(cs_id),
                            Some(r.name()),
                            format!("dn {:?}: gave {}, not text", e.src, d.type_name()),
                        );
                        return Ok(Early::Failed);
                    }
                    Err(msg) => {
                        let cs_id = saved(ctx, o)?;
                        mv_error(ctx, m, connector, Some(cs_id), Some(r.name()), format!("dn {:?}: {msg}", e.src));
                        return Ok(Early::Failed);
                    }
                }
            }
        }
    }
    // Attributes idflow managed before but no flow sets now are cleared.
    if let Some(prev) = &o.desired {
        for k in prev.keys() {
            desired.entry(k.clone()).or_default();
        }
    }
    let desired_dn = if new_dn.is_some() { new_dn } else { o.desired_dn.clone() };
    // Pass 1 does not rename an object the target has, or bring back one being deleted:
    // objects whose flows pass 2 runs before it see it as it was, as they always have.
    if early.is_some() && ((o.present && desired_dn != o.desired_dn) || o.export_state == Some(ExportState::Delete)) {
        return Ok(Early::No);
    }
    let same = o.desired.as_ref() == Some(&desired)
        && o.desired_dn == desired_dn
        && o.export_state == Some(ExportState::Present)
        && o.error.is_none();
    let was_pending = o.pending_export;
    let was = o.export_state;
    // What references to it are written as where DNs name objects.
    let renamed = o.desired_dn != desired_dn;
    o.desired = Some(desired);
    o.desired_dn = desired_dn;
    o.export_state = Some(ExportState::Present);
    o.error = None;
    // The form recorded for a configured connector is its facts' (no lookup per object).
    o.pending_export = match ctx.facts(connector).map(|f| f.caps.reference_form) {
        Some(form) => ctx.has_changes(o, form)?,
        None => diff::has_changes(ctx.tx, o)?,
    };
    // A full sync of what is in step writes nothing; one made just now is saved whole.
    if o.id == 0 {
        saved(ctx, o)?;
    } else if !same || o.pending_export != was_pending {
        ctx.tx.cs_set_desired(o, was)?;
    }
    if renamed {
        ctx.forget_ident(o.id);
    }
    Ok(Early::Flowed)
}

/// The object's id, saving it first if it was made just now (id 0).
fn saved(ctx: &mut Ctx, o: &mut CsObject) -> Result<i64> {
    if o.id == 0 {
        o.id = ctx.tx.cs_save(o)?;
        // SQLite may give it the id of a row deleted before: nothing kept of that one stays.
        ctx.forget_ident(o.id);
    }
    Ok(o.id)
}

/// [`deprovision`] of the object `cs_id`, read whole first (links are read lean).
fn deprovision_id(ctx: &mut Ctx, m: &MvObject, cs_id: i64, recheck: &mut BTreeSet<i64>) -> Result<()> {
    match ctx.tx.cs_get(cs_id)? {
        Some(mut o) => deprovision(ctx, m, &mut o, recheck),
        None => Ok(()),
    }
}

/// Applies the deprovisioning action of the rule that linked the object.
fn deprovision(ctx: &mut Ctx, m: &MvObject, o: &mut CsObject, recheck: &mut BTreeSet<i64>) -> Result<()> {
    let rule = ctx
        .rules
        .rules
        .iter()
        .find(|r| Some(r.name()) == o.link_rule.as_deref() && r.def.direction == Direction::Outbound)
        .or_else(|| ctx.rules.rules.iter().find(|r| r.def.direction == Direction::Outbound && r.def.connector == o.connector));
    let action = match (rule.and_then(|r| r.def.deprovision), o.link) {
        (Some(a), _) => a,
        // What idflow created it may remove; what it adopted it leaves in place.
        (None, Some(Link::Provisioned)) => Deprovision::Delete,
        (None, _) => Deprovision::Disconnect,
    };
    ctx.stats.deprovisioned += 1;
    recheck.extend(references::referrers(ctx.tx, m.id)?);
    let rule_name = rule.map(|r| r.name().to_string());
    ctx.trace("deprovision", rule_name.as_deref(), || format!("{}: {action:?}", o.connector));
    match action {
        Deprovision::Delete => {
            if !o.present {
                ctx.tx.cs_delete(o.id)?;
                ctx.forget_ident(o.id);
                return Ok(());
            }
            // Still linked until the deletion is exported: a source object that comes back
            // before then gets this target object back.
            o.export_state = Some(ExportState::Delete);
            o.pending_export = true;
        }
        Deprovision::Disable => {
            let Some(r) = rule else { return Ok(()) };
            let mut scope = scope_of(ctx, m);
            let mut desired = o.desired.clone().unwrap_or_default();
            for (attr, e) in &r.deprovision_flows {
                match ctx.eval(r.name(), e, &mut scope).and_then(to_values) {
                    Ok(Some(v)) => {
                        desired.insert(attr.clone(), v.into_iter().filter(|x| !matches!(x, Value::Ref(_))).collect());
                    }
                    Ok(None) => {}
                    Err(msg) => {
                        mv_error(ctx, m, &o.connector, Some(o.id), Some(r.name()), format!("deprovision flow {attr} {:?}: {msg}", e.src));
                        return Ok(());
                    }
                }
            }
            o.desired = Some(desired);
            o.export_state = Some(ExportState::Present);
            if m.deleted {
                // Its metaverse object is gone: leave it disabled and unmanaged after this export.
                o.mv_id = None;
            }
            o.pending_export = diff::has_changes(ctx.tx, o)?;
        }
        Deprovision::Disconnect => {
            o.mv_id = None;
            o.link = None;
            o.export_state = None;
            o.desired = None;
            o.desired_dn = None;
            o.pending_export = false;
        }
    }
    ctx.tx.cs_save(o)?;
    // A disconnected object has no desired DN any more.
    ctx.forget_ident(o.id);
    Ok(())
}

/// Lets a deleted metaverse object go for good, unless a target object's deletion is still to
/// be exported (it is held, and the source object may come back). Source objects that kept its
/// id (to come back) let go of it: those gone from their directory are removed.
pub(crate) fn release(tx: &dyn WriteOps, mv_id: i64) -> Result<Vec<i64>> {
    let mut deleted = Vec::new();
    if !tx.mv_get(mv_id)?.is_some_and(|m| m.deleted) {
        return Ok(deleted);
    }
    let linked = tx.cs_all_linked(mv_id)?;
    if linked.iter().any(|o| o.export_state.is_some() || o.link.is_some()) {
        return Ok(deleted);
    }
    for mut o in linked {
        if o.present {
            o.mv_id = None;
            o.link_rule = None;
            tx.cs_save(&o)?;
        } else {
            tx.cs_delete(o.id)?;
            deleted.push(o.id);
        }
    }
    tx.mv_purge(mv_id)?;
    Ok(deleted)
}

/// Why a soft match must not adopt `candidate`: its owner attribute (SCIM's externalId, or the
/// connector's `owner_attribute`) names another source than the value this identity's flows
/// give it (Entra Connect's InvalidSoftMatch). `None`: it is free, or already this identity's
/// (a hard match on the owner attribute itself always is).
fn owned_elsewhere(
    ctx: &mut Ctx,
    scope: &mut Scope,
    connector: &str,
    rules: &[&CompiledRule],
    candidate: &CsObject,
) -> Result<Option<String>> {
    let Some(owner) = ctx.facts(connector).and_then(|f| f.owner_attribute.clone()) else { return Ok(None) };
    let theirs: Vec<Value> =
        candidate.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(&owner)).map(|(_, v)| v.clone()).unwrap_or_default();
    if theirs.is_empty() {
        return Ok(None);
    }
    let mut ours: Option<Vec<Value>> = None;
    'rules: for r in rules {
        for (attr, e) in &r.flows {
            if attr.eq_ignore_ascii_case(&owner) {
                ours = ctx.eval(r.name(), e, scope).and_then(to_values).ok().flatten();
                break 'rules;
            }
        }
    }
    if ours.as_ref().is_some_and(|o| idflow_core::same_values(o, &theirs)) {
        return Ok(None);
    }
    let show = |v: &[Value]| v.iter().map(Value::display).collect::<Vec<_>>().join(", ");
    Ok(Some(format!(
        "InvalidSoftMatch: {connector} object {} matches this identity, but its {owner} ({}) names another source; \
         this identity's is {}. Nothing was adopted or changed. If they are the same person, make the {owner} \
         agree (or clear it) in the target",
        candidate.display(),
        show(&theirs),
        ours.as_deref().map(show).unwrap_or_else(|| "not set by the rules".into())
    )))
}
