//! Inbound sync: connector-space objects into the metaverse.
//!
//! Two passes over the objects to look at: first every object is scoped and linked (joined,
//! projected or disconnected), then flows run. So a reference to an object projected later in
//! the same pass still resolves; one to an object that has not arrived yet is remembered and
//! looked at again when it does. In each pass an object's outcome is computed first (rules
//! evaluated, joins looked up) and then persisted.
use crate::ahead::{Ahead, Decoded, Spent};
use crate::ctx::Ctx;
use crate::early::Early;
use crate::join::{self, Outcome};
use crate::precedence::{self, Contributions};
use crate::ready::{Ready, Streaks};
use crate::references::{self, Inbound};
use idflow_core::{dn, ObjectError, Result, Stage, Value};
use idflow_policy::defs::{Direction, LinkMode};
use idflow_policy::{source_map, truthy, CompiledRule, RuleSet};
use idflow_store::{Contribution, CsObject, Link, MvObject, PendingImport};
use rhai::Scope;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

mod waiting;

/// The rules' view of a source object: its connector's reference attributes hold `Reference`s.
fn scope_of(ctx: &Ctx, o: &CsObject) -> Scope<'static> {
    let none = HashSet::new();
    let references = ctx.facts(&o.connector).map(|f| &f.reference_attributes).unwrap_or(&none);
    source_scope(o, references, ctx.rules.source_reads(&o.connector))
}

fn source_scope(o: &CsObject, references: &HashSet<String>, reads: Option<&BTreeSet<String>>) -> Scope<'static> {
    let mut s = Scope::new();
    s.push_constant("source", source_map(&o.attrs, o.dn.as_deref(), references, reads));
    s
}

/// What [`scope_of`] needs of each connector, to make an object's scope where it is decoded
/// (the machine's other core), not in the stage, and evaluate its rules' expressions there.
#[derive(Clone)]
struct Views {
    views: Arc<HashMap<String, View>>,
    /// What evaluates ahead (`None`: nothing is; rules' debug output is shown, in order).
    rules: Option<Arc<RuleSet>>,
    /// Flows are evaluated ahead too (they are run as the objects are met).
    flows: bool,
    streaks: Arc<Mutex<Streaks>>,
}

/// An object as the rules see it, with its expressions evaluated ahead.
struct Viewed {
    scope: Scope<'static>,
    ready: Ready,
}

impl Viewed {
    /// `viewed`, or (its connector has no facts) the object's scope made here, nothing ready.
    fn or_here(viewed: Option<Viewed>, ctx: &Ctx, o: &CsObject) -> Viewed {
        viewed.unwrap_or_else(|| Viewed { scope: scope_of(ctx, o), ready: Ready::default() })
    }
}

/// A connector's reference attributes, and the attributes its rules read (`None`: any).
struct View {
    references: HashSet<String>,
    reads: Option<BTreeSet<String>>,
}

impl Views {
    fn of(ctx: &Ctx, flows: bool) -> Views {
        let views = ctx
            .facts
            .iter()
            .map(|(c, f)| (c.clone(), View { references: f.reference_attributes.clone(), reads: ctx.rules.source_reads(c).cloned() }))
            .collect();
        let rules = crate::ready::may_evaluate_ahead().then(|| Arc::clone(ctx.rules));
        Views { views: Arc::new(views), rules, flows, streaks: Arc::clone(&ctx.ahead) }
    }

    /// Objects read, each with its scope and its expressions' results (`None`: its connector
    /// has no facts; the stage makes its scope and evaluates as it goes).
    fn read(&self, ctx: &Ctx, ids: &[i64]) -> Result<Decoded<(CsObject, Option<Viewed>)>> {
        let later = ctx.tx.cs_get_many_later(ids)?;
        let views = self.clone();
        Ok(Box::new(move || {
            // Held while a chunk is decoded (so chunks are, one at a time: the stage may decode
            // its first while the next is decoded ahead).
            let mut streaks = views.streaks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(later()?
                .into_iter()
                .map(|o| {
                    let viewed = views.views.get(&o.connector).map(|v| {
                        let mut scope = source_scope(&o, &v.references, v.reads.as_ref());
                        let ready = match &views.rules {
                            Some(rules) => Ready::inbound(rules, &o, &mut scope, views.flows, &mut streaks),
                            None => Ready::default(),
                        };
                        Viewed { scope, ready }
                    });
                    (o.id, (o, viewed))
                })
                .collect())
        }))
    }
}

fn obj_error(ctx: &mut Ctx, o: &CsObject, rule: Option<&str>, message: String) {
    ctx.error(ObjectError {
        stage: Stage::Sync,
        connector: Some(o.connector.clone()),
        object: Some(o.display()),
        cs_id: Some(o.id),
        mv_id: o.mv_id,
        rule: rule.map(str::to_string),
        message,
        category: idflow_core::Category::Other,
        attribute: None,
        conflict: None,
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
pub(crate) fn run(ctx: &mut Ctx, ids: Vec<i64>) -> Result<()> {
    let mut by_connector: std::collections::BTreeMap<String, Vec<i64>> = std::collections::BTreeMap::new();
    // A few thousand names at a time, not one per object of the directory at once.
    for chunk in ids.chunks(4096) {
        for (id, connector) in chunk.iter().zip(ctx.tx.cs_connectors_of(chunk)?) {
            let Some(connector) = connector else { continue };
            by_connector.entry(connector).or_default().push(*id);
        }
    }
    let projects = |connector: &str| {
        ctx.rules
            .rules
            .iter()
            .any(|r| r.def.direction == Direction::Inbound && r.def.connector == connector && r.def.link == Some(LinkMode::Provision))
    };
    // Already by connector: a stable sort puts those that project first.
    let mut groups: Vec<(bool, String, Vec<i64>)> = by_connector.into_iter().map(|(c, ids)| (!projects(&c), c, ids)).collect();
    groups.sort_by_key(|g| g.0);
    for (_, connector, ids) in groups {
        run_connector(ctx, &connector, ids)?;
    }
    Ok(())
}

fn run_connector(ctx: &mut Ctx, connector: &str, ids: Vec<i64>) -> Result<()> {
    let mut queue = ids;
    for round in 0..4 {
        if queue.is_empty() {
            break;
        }
        // Objects looked at again may be any connector's: flows wait for pass 2 then.
        let recheck = batch(ctx, &queue, (round == 0).then_some(connector))?;
        queue = recheck.into_iter().collect();
    }
    Ok(())
}

/// One round; returns objects to look at again.
///
/// An object whose references all name linked objects already has its flows run in pass 1, as
/// soon as it is linked (one read and one evaluation of its attributes instead of two): pass 1
/// only adds links until it disconnects something, so what those references resolve to stays,
/// and flows of an object in this round change no other object this round could join. Once
/// pass 1 disconnects an object, those early flows are run again in pass 2 with the rest.
/// `connector`: every object is this connector's (early flows need it: an object of this
/// connector never joins a metaverse object another object of it is linked to).
fn batch(ctx: &mut Ctx, ids: &[i64], connector: Option<&str>) -> Result<BTreeSet<i64>> {
    let mut recheck = BTreeSet::new();
    let mut work: Vec<(i64, Vec<usize>, Early)> = Vec::new();
    let disconnected = ctx.stats.disconnected;
    // A preview's trace tells each step once, in the order of the two passes: flows run
    // early, and what they gave may wait for pass 2, only without one.
    let mut waiting = connector.filter(|_| ctx.trace.is_none()).map(waiting::Waiting::new);
    let early = waiting.is_some();
    // A full sync's first round meets every object of the connector: each one linked is
    // remembered as what its DN resolves to (a group's members then need no lookup), unless
    // another object has that DN too. Those DNs are found once, on the first link.
    let remember = early && ctx.full;
    let mut shared: Option<HashSet<String>> = None;
    // Pass 1: scope and link (and, when settled, flows). Objects are read ahead: handling one
    // writes no other connector-space object.
    ctx.memo.clear();
    if remember {
        ctx.memo.expect_dns(ids.len());
        // A first sync of the connector: what this pass links is all of it there is linked,
        // and is remembered as it is linked. A reference to any other DN waits for pass 2
        // (which looks it up) without a lookup now.
        if let Some(connector) = connector {
            if !ctx.tx.cs_has_linked(connector)? {
                let s = ctx.tx.cs_shared_dns(connector)?;
                ctx.memo.remember_all(connector, s.clone());
                shared = Some(s);
            }
        }
    }
    let views = Views::of(ctx, early);
    let mut ahead = Ahead::default();
    let mut spent = Spent::default();
    for (i, &id) in ids.iter().enumerate() {
        ctx.observer.advanced(1);
        let Some((mut o, viewed)) = ahead.take(ids, i, |chunk| views.read(ctx, chunk))? else { continue };
        ctx.stats.inbound_objects += 1;
        let Viewed { mut scope, mut ready } = Viewed::or_here(viewed, ctx, &o);
        let decision = decide(ctx, &o, &mut scope, &mut ready)?;
        let projected = ctx.stats.projected;
        let flow_now = early && ctx.stats.disconnected == disconnected;
        if let Some((in_scope, relinked)) = link(ctx, &mut o, decision, &mut recheck, flow_now)? {
            let flowed = match (flow_now && ctx.stats.disconnected == disconnected, waiting.as_mut()) {
                (true, Some(waiting)) => {
                    let made = (ctx.stats.projected != projected, relinked);
                    flow_early(ctx, &mut o, (&mut scope, &mut ready), &in_scope, made, waiting)?
                }
                _ => unflowed(ctx, &mut o, relinked)?,
            };
            if remember && ctx.stats.disconnected == disconnected {
                remember_linked(ctx, &o, &mut shared)?;
            }
            work.push((id, in_scope, flowed));
        }
        spent.push((o, scope, ready));
    }
    let again = ctx.stats.disconnected != disconnected;
    ctx.memo.linked_all();
    // Pass 2: flows and precedence. It links nothing: references resolve the same way
    // throughout, and are remembered. What pass 1 found stays when it unlinked nothing and no
    // object shares a DN (else the first linked of those would be what a DN resolves to).
    if again || !shared.as_ref().is_some_and(HashSet::is_empty) {
        ctx.memo.clear();
    }
    let work: Vec<_> = work.into_iter().filter(|w| w.2.in_pass_2(again)).collect();
    // Run again whole, those objects' flows leave nothing waiting.
    if let (false, Some(waiting)) = (again, waiting) {
        waiting.resolve(ctx)?;
    }
    let ids: Vec<i64> = work.iter().map(|w| w.0).collect();
    let views = Views { flows: true, ..views };
    let mut ahead = Ahead::default();
    for (i, (_, rule_idx, flowed_early)) in work.into_iter().enumerate() {
        let Some((mut o, viewed)) = ahead.take(&ids, i, |chunk| views.read(ctx, chunk))? else { continue };
        let Some(m) = o.mv_id else { continue };
        let Some((mv_obj, stored)) = ctx.tx.mv_get_contributed(m)? else { continue };
        let Viewed { mut scope, mut ready } = Viewed::or_here(viewed, ctx, &o);
        let ran = match flows(ctx, &o, (&mut scope, &mut ready), &mv_obj.object_type, &rule_idx, Pass::Late)? {
            Flowed::Ran(ran) => ran,
            Flowed::NotYet | Flowed::Waiting(_) => unreachable!("pass 2 resolves every reference"),
        };
        let before = ctx.stats.metaverse_updated;
        persist_flows(ctx, &mut o, (mv_obj, Some(stored)), ran, false)?;
        // Run again, an object counts as updated once, whichever run updated it.
        if flowed_early == Early::Updated {
            ctx.stats.metaverse_updated = before;
        }
        spent.push((o, scope, ready));
    }
    ctx.memo.clear();
    Ok(recheck)
}

/// Pass 1's flows of an object just linked: persisted when every reference it holds names a
/// linked object, or when a flow failed; otherwise what they gave waits in `waiting` for pass 2
/// to resolve its references and persist it, or (there is no room) pass 2 runs them whole.
/// `projected`: its metaverse object is new (made with what its flows give, or empty if they
/// wait: [`link`] left it to be made here). `relinked`: its new link is written with what its
/// flows write (one write of the object instead of two), or alone if they wait.
fn flow_early(
    ctx: &mut Ctx,
    o: &mut CsObject,
    scope: (&mut Scope<'static>, &mut Ready),
    rule_idx: &[usize],
    (projected, relinked): (bool, bool),
    waiting: &mut waiting::Waiting,
) -> Result<Early> {
    let rule = link_rule(ctx, o).filter(|_| projected);
    let (mv_obj, stored) = match (rule, o.mv_id) {
        (Some(r), m) => {
            (MvObject { id: m.unwrap_or(0), object_type: r.def.metaverse_type.clone(), attrs: Default::default(), deleted: false }, None)
        }
        (None, Some(m)) => match ctx.tx.mv_get_contributed(m)? {
            Some((x, stored)) => (x, Some(stored)),
            None => return unflowed(ctx, o, relinked),
        },
        (None, None) => return unflowed(ctx, o, relinked),
    };
    let ran = match flows(ctx, o, scope, &mv_obj.object_type, rule_idx, Pass::Early(waiting))? {
        Flowed::Waiting(given) => return wait(ctx, o, relinked, &given, waiting),
        Flowed::NotYet => return unflowed(ctx, o, relinked),
        Flowed::Ran(ran) => ran,
    };
    let early = match &ran {
        Ran::Failed { .. } => Early::Failed,
        Ran::Done { .. } => Early::Flowed,
    };
    let before = ctx.stats.metaverse_updated;
    persist_flows(ctx, o, (mv_obj, stored), ran, relinked)?;
    if ctx.stats.metaverse_updated != before {
        return Ok(Early::Updated);
    }
    Ok(early)
}

/// Flows whose references wait for pass 2 ([`waiting`]): a new link is written now, synced
/// (other objects' references look it up in this pass; a new metaverse object is made empty),
/// and what the flows gave waits, with the object's state as written, for pass 2 to persist.
fn wait(ctx: &mut Ctx, o: &mut CsObject, relinked: bool, given: &[waiting::Given], waiting: &mut waiting::Waiting) -> Result<Early> {
    let Some(kept) = waiting.kept_if_room(given) else { return unflowed(ctx, o, relinked) };
    let m = project_empty(ctx, o)?;
    if relinked {
        ctx.tx.cs_set_link_synced(o, None)?;
        o.pending_import = None;
        o.error = None;
    }
    waiting.add(o, m, kept);
    Ok(Early::Waiting)
}

/// Remembers what `o`'s DN resolves to, when it is linked inbound and no other object of its
/// connector has that DN (see [`batch`]).
fn remember_linked(ctx: &mut Ctx, o: &CsObject, shared: &mut Option<HashSet<String>>) -> Result<()> {
    let (Some(d), Some(m)) = (o.dn.as_deref(), o.mv_id) else { return Ok(()) };
    if !linked_inbound(o) {
        return Ok(());
    }
    let shared = match shared {
        Some(s) => s,
        None => shared.insert(ctx.tx.cs_shared_dns(&o.connector)?),
    };
    if shared.is_empty() || !shared.contains(&dn::norm(d)) {
        ctx.memo.remember_dn(&o.connector, d, m);
    }
    Ok(())
}

/// Flows not run now (pass 2 runs them): a new link is written alone (and a new metaverse
/// object made empty).
fn unflowed(ctx: &mut Ctx, o: &mut CsObject, relinked: bool) -> Result<Early> {
    if relinked {
        project_empty(ctx, o)?;
        write_link(ctx, o)?;
    }
    Ok(Early::No)
}

/// Makes the metaverse object of a projection [`link`] left to be made (linked as projected,
/// no metaverse object yet), empty.
fn project_empty(ctx: &mut Ctx, o: &mut CsObject) -> Result<i64> {
    if let Some(m) = o.mv_id {
        return Ok(m);
    }
    let Some(r) = link_rule(ctx, o) else {
        return Err(idflow_core::Error::Config(format!("{}: projected by rule {:?}, which is not loaded", o.display(), o.link_rule)));
    };
    let m = ctx.tx.mv_create(&r.def.metaverse_type, &Default::default())?;
    o.mv_id = Some(m);
    Ok(m)
}

/// The rule that linked the object (its `link_rule`), when it is loaded.
fn link_rule<'r>(ctx: &Ctx<'r>, o: &CsObject) -> Option<&'r CompiledRule> {
    ctx.rules.rules.iter().find(|r| Some(r.name()) == o.link_rule.as_deref())
}

fn write_link(ctx: &mut Ctx, o: &CsObject) -> Result<()> {
    ctx.tx.cs_set_link(o.id, o.mv_id, o.link, o.link_rule.as_deref())
}

/// What pass 1 decided for one object.
enum Decision {
    /// Deleted in its directory.
    Deleted,
    /// Not in its directory, its deletion synced already (kept only as the way back to its
    /// metaverse object, or as a target's object not created yet): nothing to do.
    Gone,
    /// A scope expression failed: the object stays as it is, in error.
    ScopeFailed { rule: String, src: String, message: String },
    /// No inbound rule has it in scope.
    OutOfScope,
    /// In scope of these rules (indexes into the rule set), and already linked.
    Linked(Vec<usize>),
    /// In scope again, and its former metaverse object is still there (deleted, its deletion
    /// held until an export carries it out): it gets that object and its target links back.
    Restore(Vec<usize>, i64),
    /// In scope, not linked yet: what the join found.
    Join(Vec<usize>, std::result::Result<Outcome, (String, idflow_policy::EvalError)>),
}

/// Scopes the object and, when it is not linked yet, looks for its join: no writes.
fn decide(ctx: &mut Ctx, o: &CsObject, scope: &mut Scope<'static>, ready: &mut Ready) -> Result<Decision> {
    if o.pending_import == Some(PendingImport::Delete) {
        return Ok(Decision::Deleted);
    }
    // Its attributes are the last it had there: in scope or not, it must not come back.
    if !o.present && o.pending_import.is_none() && !linked_inbound(o) {
        return Ok(Decision::Gone);
    }
    let all = ctx.rules;
    let rules: Vec<(usize, &CompiledRule)> = all
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.def.direction == Direction::Inbound
                && r.def.connector == o.connector
                && r.def.source_type.as_deref() == Some(o.object_type.as_str())
        })
        .collect();
    let mut in_scope = Vec::new();
    for (i, r) in &rules {
        let ok = match &r.scope {
            None => true,
            Some(e) => match ctx.eval_ready(r.name(), e, scope, ready).and_then(|d| truthy(&d)) {
                Ok(b) => b,
                Err(message) => return Ok(Decision::ScopeFailed { rule: r.name().to_string(), src: e.src.clone(), message }),
            },
        };
        ctx.trace("scope", Some(r.name()), || if ok { "in scope".into() } else { "not in scope".into() });
        if ok {
            in_scope.push(*i);
        }
    }
    if in_scope.is_empty() {
        return Ok(Decision::OutOfScope);
    }
    if linked_inbound(o) {
        return Ok(Decision::Linked(in_scope));
    }
    if let Some(m) = o.mv_id {
        if ctx.tx.mv_get(m)?.is_some_and(|x| x.deleted) {
            return Ok(Decision::Restore(in_scope, m));
        }
    }
    let rules = ctx.rules;
    let scoped: Vec<&CompiledRule> = in_scope.iter().map(|i| &rules.rules[*i]).collect();
    let found = join::inbound(ctx, scope, &o.connector, &scoped)?;
    Ok(Decision::Join(in_scope, found))
}

/// Persists a decision: links (joins or projects), disconnects or deletes the object. When
/// flows should run: the rules in scope, and whether the link changed (joined, projected or
/// restored), which the caller writes before the next object, with what the flows write or
/// alone. `flow_now`: the caller runs the flows right away, so a projection's metaverse object
/// is left for them to make (with its attributes, in one write).
fn link(
    ctx: &mut Ctx,
    o: &mut CsObject,
    decision: Decision,
    recheck: &mut BTreeSet<i64>,
    flow_now: bool,
) -> Result<Option<(Vec<usize>, bool)>> {
    let in_scope = match decision {
        Decision::Deleted => {
            if linked_inbound(o) {
                ctx.trace("inbound", None, || "deleted in the source: disconnected".into());
                disconnect(ctx, o, recheck)?;
            }
            if o.export_state.is_some() || o.mv_id.is_some() {
                // Kept: a target object, or the way back to a deleted metaverse object (a
                // disconnection wrote the rest of it).
                o.pending_import = None;
                ctx.tx.cs_set_synced(o.id, o.error.as_deref())?;
            } else {
                ctx.tx.cs_delete(o.id)?;
                ctx.forget_ident(o.id);
            }
            return Ok(None);
        }
        Decision::ScopeFailed { rule, src, message } => {
            obj_error(ctx, o, Some(&rule), format!("scope {src:?}: {message}"));
            o.error = Some(message);
            ctx.tx.cs_save(o)?;
            return Ok(None);
        }
        Decision::Gone => return Ok(None),
        Decision::OutOfScope => {
            if linked_inbound(o) {
                ctx.trace("inbound", None, || "no inbound rule has it in scope any more: disconnected".into());
                disconnect(ctx, o, recheck)?;
            }
            // Only its import is looked at (a disconnection wrote the rest): a target's object
            // whose export an import confirmed, or a source's object out of scope, is not
            // written whole again.
            o.pending_import = None;
            o.error = None;
            ctx.tx.cs_set_synced(o.id, None)?;
            return Ok(None);
        }
        Decision::Linked(in_scope) => return Ok(Some((in_scope, false))),
        Decision::Restore(in_scope, m) => {
            ctx.tx.mv_restore(m)?;
            ctx.trace("inbound", o.link_rule.as_deref(), || {
                format!("back before its deletion was exported: metaverse object {m} restored")
            });
            o.link = Some(Link::Joined);
            ctx.stats.restored += 1;
            in_scope
        }
        Decision::Join(in_scope, found) => {
            // A former metaverse object that is gone for good is no way back any more.
            o.mv_id = None;
            match found {
                Err((rule, e)) => {
                    let m = format!("join: {e}");
                    obj_error(ctx, o, Some(&rule), m.clone());
                    o.error = Some(m);
                    o.pending_import = None;
                    ctx.tx.cs_save(o)?;
                    return Ok(None);
                }
                Ok(Outcome::Ambiguous { rule, group, candidates }) => {
                    let m = format!(
                        "ambiguous join: {group} matches {} metaverse objects ({}); nothing was joined",
                        candidates.len(),
                        candidates.iter().map(|c| format!("#{c}")).collect::<Vec<_>>().join(", ")
                    );
                    obj_error(ctx, o, Some(&rule), m.clone());
                    ctx.conflict_with(candidates.iter().map(|c| format!("metaverse #{c}")).collect::<Vec<_>>().join(", "));
                    o.error = Some(m);
                    ctx.tx.cs_save(o)?;
                    return Ok(None);
                }
                Ok(Outcome::Joined { id: m, rule }) => {
                    o.mv_id = Some(m);
                    o.link = Some(Link::Joined);
                    o.link_rule = Some(rule);
                    ctx.stats.joined += 1;
                    in_scope
                }
                Ok(Outcome::NoMatch) => {
                    let rules = ctx.rules;
                    match in_scope.iter().map(|i| &rules.rules[*i]).find(|r| r.def.link == Some(LinkMode::Provision)) {
                        Some(r) if flow_now => {
                            o.link = Some(Link::Projected);
                            o.link_rule = Some(r.name().to_string());
                            ctx.stats.projected += 1;
                            in_scope
                        }
                        Some(r) => {
                            let m = ctx.tx.mv_create(&r.def.metaverse_type, &Default::default())?;
                            ctx.trace("inbound", Some(r.name()), || format!("no join: projected metaverse object {m}"));
                            o.mv_id = Some(m);
                            o.link = Some(Link::Projected);
                            o.link_rule = Some(r.name().to_string());
                            ctx.stats.projected += 1;
                            in_scope
                        }
                        None => {
                            ctx.trace("inbound", None, || "no join and no rule projects: stays a disconnector".into());
                            o.pending_import = None;
                            o.error = None;
                            ctx.tx.cs_save(o)?;
                            return Ok(None);
                        }
                    }
                }
            }
        }
    };
    // Only the link changed (joined, projected or restored): the caller writes it.
    if let Some(d) = &o.dn {
        recheck.extend(ctx.tx.cs_waiting_for(&dn::norm(d))?);
    }
    Ok(Some((in_scope, true)))
}

/// What an object's flows came to.
enum Flowed {
    /// Run early, a reference does not name a linked object yet, and there is no room for more
    /// to wait: pass 2 runs the flows whole.
    NotYet,
    /// Run early, and a reference does not name a linked object yet: what the flows gave, every
    /// reference attribute as the DNs it was given, for pass 2 to resolve and persist (see
    /// [`waiting`]), when there is room.
    Waiting(Vec<waiting::Given>),
    Ran(Ran),
}

/// Flows run, references resolved: what is persisted.
enum Ran {
    /// A flow failed: nothing changes for the object (its previous contributions stay).
    Failed { rule: String, message: String },
    Done {
        contributions: Contributions,
        /// DNs (normalized) referenced but not linked yet.
        dangling: Vec<String>,
        reference_errors: Vec<String>,
    },
}

/// What a reference attribute's values resolve to: references, DNs not linked yet, errors.
struct Resolved {
    refs: Vec<Value>,
    dangling: Vec<String>,
    errors: Vec<String>,
}

/// Resolves the DNs a flow gave reference attribute `attr` of `connector`'s object. `early`
/// (pass 1): `None` at the first DN that does not name a linked object.
fn resolve_references(ctx: &mut Ctx, connector: &str, rule: &str, attr: &str, vals: &[Value], early: bool) -> Result<Option<Resolved>> {
    let mut out = Resolved { refs: Vec::with_capacity(vals.len()), dangling: Vec::new(), errors: Vec::new() };
    for v in vals {
        let Value::Str(dn) = v else {
            out.errors.push(format!("reference attribute {attr} holds a value that is not a DN"));
            continue;
        };
        match ctx.memo.resolve_dn(ctx.tx, connector, dn, early)? {
            Inbound::Mv(target) => out.refs.push(Value::Ref(target)),
            _ if early => return Ok(None),
            Inbound::NotLinked => {
                ctx.trace("flow", Some(rule), || {
                    format!("{attr}: {dn} is not in the metaverse (out of scope, or not synced yet): left out")
                });
                out.dangling.push(dn::norm(dn))
            }
            Inbound::Deleted => {
                // Left out, and watched: should an object come back at this DN, the
                // reference heals by itself.
                ctx.trace("flow", Some(rule), || format!("{attr}: {dn} was deleted: left out"));
                out.dangling.push(dn::norm(dn));
            }
            Inbound::Missing => {
                out.dangling.push(dn::norm(dn));
                out.errors.push(format!("{attr} refers to {dn}, which does not exist in connector {connector:?}"));
            }
        }
    }
    Ok(Some(out))
}

/// Which pass runs flows, and how a reference to an object not linked yet is met.
#[derive(Clone, Copy)]
enum Pass<'w> {
    /// Pass 1: what the flows gave waits ([`Flowed::Waiting`]) while there is room for more,
    /// or else the flows stop there ([`Flowed::NotYet`]).
    Early(&'w waiting::Waiting),
    /// Pass 2: the reference is left out, and watched.
    Late,
}

/// Evaluates the flows of the rules in scope, resolving references: no writes.
fn flows(
    ctx: &mut Ctx,
    o: &CsObject,
    (scope, ready): (&mut Scope, &mut Ready),
    mv_type: &str,
    rule_idx: &[usize],
    pass: Pass,
) -> Result<Flowed> {
    // What each flow gave, with the DNs a reference attribute resolved was given (should
    // another attribute's wait, all of them wait, to be resolved together in pass 2).
    let mut given: Vec<(waiting::Given, Option<Vec<Value>>)> = Vec::new();
    let mut dangling = Vec::new();
    let mut reference_errors = Vec::new();
    let mut waits = false;
    let early = matches!(pass, Pass::Early(_));
    let rules = ctx.rules;
    for &i in rule_idx {
        let r = &rules.rules[i];
        if r.def.metaverse_type != mv_type {
            continue;
        }
        for (flow, (attr, e)) in r.flows.iter().enumerate() {
            let d = match ctx.eval_flow_ready(r.name(), e, scope, ready) {
                Ok(d) => d,
                Err(msg) => {
                    return Ok(Flowed::Ran(Ran::Failed { rule: r.name().to_string(), message: format!("flow {attr} {:?}: {msg}", e.src) }))
                }
            };
            let Some((vals, are_references)) = d else {
                ctx.trace("flow", Some(r.name()), || format!("{attr}: () (no contribution)"));
                continue;
            };
            // References are typed: a value read from a reference attribute stays one through
            // any flow, whatever the metaverse attribute is called.
            let (values, dns, resolve) = match are_references {
                false => (vals, None, false),
                true => match resolve_references(ctx, &o.connector, r.name(), attr, &vals, early)? {
                    Some(resolved) => {
                        dangling.extend(resolved.dangling);
                        reference_errors.extend(resolved.errors);
                        (resolved.refs, early.then_some(vals), false)
                    }
                    None if matches!(pass, Pass::Early(waiting) if !waiting.full()) => {
                        waits = true;
                        (vals, None, true)
                    }
                    None => return Ok(Flowed::NotYet),
                },
            };
            if !values.is_empty() {
                ctx.trace("flow", Some(r.name()), || {
                    format!("{attr}: {}", values.iter().map(Value::display).collect::<Vec<_>>().join(", "))
                });
            }
            given.push((waiting::Given { rule: i, flow, values, resolve }, dns));
        }
    }
    if waits {
        // Pass 2 resolves every reference attribute again, and finds their errors and
        // dangling DNs again with them.
        let given = given
            .into_iter()
            .map(|(g, dns)| match dns {
                Some(dns) => waiting::Given { values: dns, resolve: true, ..g },
                None => g,
            })
            .collect();
        return Ok(Flowed::Waiting(given));
    }
    let contributions = given.into_iter().map(|(g, _)| g.contribution(rules)).collect();
    Ok(Flowed::Ran(Ran::Done { contributions, dangling, reference_errors }))
}

/// Persists pass 2's outcome: contributions and winners, dangling references, errors; with
/// the object's link when `relinked` (changed in pass 1, not written yet), and its metaverse
/// object when [`link`] left it to be made. The metaverse object comes with every contribution
/// to it when they were read with it (`None`: they are read here).
fn persist_flows(
    ctx: &mut Ctx,
    o: &mut CsObject,
    read: (MvObject, Option<Result<Vec<Contribution>>>),
    ran: Ran,
    relinked: bool,
) -> Result<()> {
    let (mut mv_obj, stored) = read;
    let synced = |ctx: &mut Ctx, o: &CsObject, error: Option<&str>| match relinked {
        true => ctx.tx.cs_set_link_synced(o, error),
        false => ctx.tx.cs_set_synced(o.id, error),
    };
    match ran {
        Ran::Failed { rule, message } => {
            mv_obj.id = project_empty(ctx, o)?;
            obj_error(ctx, o, Some(&rule), message.clone());
            ctx.incomplete.insert(mv_obj.id);
            synced(ctx, o, Some(&message))?;
        }
        Ran::Done { contributions, dangling, reference_errors } => {
            let changed = match o.mv_id {
                Some(_) => match stored {
                    Some(stored) => precedence::apply_to(ctx.tx, &mut mv_obj, stored?, o.id, contributions)?,
                    None => precedence::apply(ctx.tx, &mut mv_obj, o.id, contributions)?,
                },
                None => {
                    let (m, attrs) = precedence::project(ctx.tx, &mv_obj.object_type, o.id, contributions)?;
                    o.mv_id = Some(m);
                    attrs
                }
            };
            if !changed.is_empty() {
                ctx.stats.metaverse_updated += 1;
            }
            ctx.tx.cs_set_dangling(o.id, &dangling)?;
            for m in &reference_errors {
                obj_error(ctx, o, o.link_rule.clone().as_deref(), m.clone());
            }
            let error = reference_errors.first().map(String::as_str);
            // Written only when it changes something (a full sync of what is in step writes nothing).
            if o.pending_import.is_some() || o.error.as_deref() != error {
                synced(ctx, o, error)?;
            } else if relinked {
                write_link(ctx, o)?;
            }
        }
    }
    Ok(())
}

/// Unlinks an object from its metaverse object and removes its contributions. A metaverse object
/// left with no inbound link is deleted (outbound sync then deprovisions it), and objects that
/// referenced it are looked at again. The object then keeps the deleted metaverse object's id
/// (with no link): should it come back before an export has deleted anything, it gets that
/// metaverse object, and with it its target objects, back.
fn disconnect(ctx: &mut Ctx, o: &mut CsObject, recheck: &mut BTreeSet<i64>) -> Result<()> {
    let Some(m) = o.mv_id else { return Ok(()) };
    if let Some(mut mv_obj) = ctx.tx.mv_get(m)? {
        precedence::remove_all(ctx.tx, &mut mv_obj, o.id)?;
    }
    o.mv_id = None;
    o.link = None;
    ctx.tx.cs_save(o)?;
    ctx.tx.cs_set_dangling(o.id, &[])?;
    ctx.stats.disconnected += 1;
    if ctx.tx.mv_has_inbound_link(m)? {
        o.link_rule = None;
        ctx.tx.cs_save(o)?;
        ctx.tx.mv_mark_dirty(m)?;
    } else {
        o.mv_id = Some(m);
        ctx.tx.cs_save(o)?;
        for r in references::referrers(ctx.tx, m)? {
            for linked in ctx.tx.cs_all_linked(r)? {
                if linked.link.is_some_and(Link::is_inbound) {
                    recheck.insert(linked.id);
                }
            }
        }
        ctx.tx.mv_mark_deleted(m)?;
        ctx.stats.metaverse_deleted += 1;
    }
    Ok(())
}
