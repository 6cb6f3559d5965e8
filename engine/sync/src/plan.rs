//! Plans: what export would do, per connector: adds with their attributes, updates as old to
//! new values, deletes, and the totals. Each change carries its object's stable identity (the
//! target's id, the metaverse id, the source anchors) and the rule behind it; values are
//! structured (text, binary, references by the object they point at), so a script can assert on
//! them and `apply --plan` can compare a saved plan with what is pending now.
use crate::ahead::{Ahead, Spent};
use crate::collisions::{self, Collision};
use crate::diff::{self, Change};
use crate::plan_ahead::{fill, Made, Planned, Planner};
pub use crate::plan_changes::Changes;
use crate::references;
use crate::text_key::TextKey;
use idflow_core::connector::{OpKind, RefForm};
use idflow_core::fast_hash::FastMap;
use idflow_core::{ObjectError, Result, Value};
use idflow_policy::defs::Direction;
use idflow_policy::RuleSet;
use idflow_store::{CsKey, CsObject, ReadOps};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The names of the objects a plan's references point at, each looked up once per plan (a
/// person is the manager of several and a member of groups). Bounded: once full, it keeps what
/// it holds (the objects referenced early, often the ones referenced most) and looks the rest
/// up each time.
#[derive(Default)]
pub(crate) struct Names {
    by_id: FastMap<i64, Option<Box<str>>>,
    /// By the identifier's [`TextKey`] (the read-ahead thread looks a million up at a million
    /// people: keyed by the text, each lookup read and compared it, a cache miss more).
    by_ident: FastMap<u128, Option<Box<str>>>,
    key: TextKey,
}

/// A referenced object as a plan names it: by its connector-space id while the target has no
/// identifier for it, else by that identifier (its anchor or DN, as the target's form says).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Named<'a> {
    Id(i64),
    Ident(std::borrow::Cow<'a, str>),
}

impl Named<'_> {
    pub(crate) fn into_owned(self) -> Named<'static> {
        match self {
            Named::Id(id) => Named::Id(id),
            Named::Ident(s) => Named::Ident(std::borrow::Cow::Owned(s.into_owned())),
        }
    }
}

impl Names {
    /// Entries held at most in each map: every object of a plan of a million (a name, its key
    /// and the table's share: about 130 bytes with an anchor for key, 130 MB for a million).
    const MOST: usize = 1 << 20;

    /// The plan read object `o` whole, and names it `name`: what a lookup by the target's own
    /// identifier for it (its anchor, where references name objects by anchor: unique in its
    /// connector), or by its id while it has none, would give. A reference to it read later
    /// needs no lookup: in a plan nothing changes, so a reference to an object with an
    /// identifier is that identifier, never its id.
    pub(crate) fn seen(&mut self, o: &CsObject, name: &str, form: RefForm) {
        match (form, references::ident_in(form, o.anchor.as_ref(), o.dn.as_ref(), o.desired_dn.as_ref())) {
            (_, None) => {
                if self.by_id.len() < Self::MOST {
                    self.by_id.entry(o.id).or_insert_with(|| Some(name.into()));
                }
            }
            (RefForm::Anchor, Some(a)) => {
                if self.by_ident.len() < Self::MOST {
                    self.by_ident.entry(self.key.of(a)).or_insert_with(|| Some(name.into()));
                }
            }
            (RefForm::Dn, Some(_)) => {}
        }
    }

    /// The name of what `n` names (in `connector`, whose objects the target names in `form`),
    /// looked up unless known.
    fn name(&mut self, c: &dyn ReadOps, connector: &str, form: RefForm, n: &Named<'_>) -> Result<Option<String>> {
        if let Some(known) = self.known(n) {
            return Ok(known);
        }
        let found = look_up(c, connector, form, n)?;
        self.remember(n, found.as_deref());
        Ok(found)
    }

    /// Remembers what names `n` (`None`: nothing), while there is room.
    pub(crate) fn remember(&mut self, n: &Named<'_>, name: Option<&str>) {
        match n {
            Named::Id(id) if self.by_id.len() < Self::MOST => drop(self.by_id.insert(*id, name.map(Box::from))),
            Named::Ident(s) if self.by_ident.len() < Self::MOST => drop(self.by_ident.insert(self.key.of(s), name.map(Box::from))),
            _ => {}
        }
    }

    /// The name of what `n` names, when known without a lookup (`None`: not known).
    pub(crate) fn known(&self, n: &Named<'_>) -> Option<Option<String>> {
        let known = match n {
            Named::Id(id) => self.by_id.get(id),
            Named::Ident(s) => self.by_ident.get(&self.key.of(s)),
        };
        known.map(|n| n.as_deref().map(str::to_string))
    }
}

/// The name of what `n` names in `connector`, whose objects the target names in `form`, as the
/// database has it (`None`: no such object).
pub(crate) fn look_up(c: &dyn ReadOps, connector: &str, form: RefForm, n: &Named<'_>) -> Result<Option<String>> {
    c.cs_name_of(match n {
        Named::Id(id) => CsKey::Id(*id),
        Named::Ident(s) => match form {
            RefForm::Anchor => CsKey::Anchor { connector, anchor: s },
            RefForm::Dn => CsKey::Dn { connector, dn: s },
        },
    })
}

/// The sources of metaverse objects `mv_ids`, read at once, for [`sources_of`].
fn read_sources(c: &dyn ReadOps, mv_ids: impl Iterator<Item = Option<i64>>) -> Result<idflow_store::SourcesByMv> {
    let mut mv_ids: Vec<i64> = mv_ids.flatten().collect();
    mv_ids.sort_unstable();
    mv_ids.dedup();
    let mut sources = c.cs_sources_of_many(&mv_ids)?;
    // An object with no source is known to have none.
    for m in mv_ids {
        sources.entry(m).or_default();
    }
    Ok(sources)
}

/// One value in a plan: text, `{"base64": ...}`, or `{"reference": ..., "object": ...}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(untagged)]
pub enum PlanValue {
    Text(String),
    Binary {
        base64: String,
    },
    /// A reference: the target's own identifier for the object (its id or DN), `None` while the
    /// object is still to be created; `object` names it for a reader.
    Reference {
        reference: Option<String>,
        object: String,
    },
}

impl<'de> Deserialize<'de> for PlanValue {
    /// Read as serde's `untagged` would (text; else bytes, from one textual `base64`; else a
    /// reference, from one textual `object` and at most one `reference`, text or null; other
    /// keys ignored), without its buffering of each value and its errors for the forms tried
    /// first: a plan reads back a million changes' values.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Base64,
            Reference,
            Object,
            #[serde(other)]
            Other,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlanValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a plan value: text, {"base64": ...} or {"reference": ..., "object": ...}"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<PlanValue, E> {
                Ok(PlanValue::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<PlanValue, E> {
                Ok(PlanValue::Text(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> std::result::Result<PlanValue, A::Error> {
                // Each key's last value and how many times it came.
                let (mut base64, mut reference, mut object) = ((Loose::Other, 0), (Loose::Null, 0), (Loose::Other, 0));
                while let Some(k) = a.next_key::<Field>()? {
                    let slot = match k {
                        Field::Base64 => &mut base64,
                        Field::Reference => &mut reference,
                        Field::Object => &mut object,
                        Field::Other => {
                            a.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = (a.next_value::<Loose>()?, slot.1 + 1);
                }
                match (base64, object, reference) {
                    ((Loose::Text(base64), 1), _, _) => Ok(PlanValue::Binary { base64 }),
                    (_, (Loose::Text(object), 1), (Loose::Text(r), 1)) => Ok(PlanValue::Reference { reference: Some(r), object }),
                    (_, (Loose::Text(object), 1), (Loose::Null, 0 | 1)) => Ok(PlanValue::Reference { reference: None, object }),
                    _ => Err(serde::de::Error::custom("data did not match any variant of untagged enum PlanValue")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A value in a plan value's map, as far as choosing its form needs: text, null, or anything
/// else (skipped).
enum Loose {
    Text(String),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Loose;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Loose, E> {
                Ok(Loose::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Loose, E> {
                Ok(Loose::Text(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> std::result::Result<Loose, D2::Error> {
                Loose::deserialize(d)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<Loose, E> {
                Ok(Loose::Other)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<Loose, E> {
                Ok(Loose::Other)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<Loose, E> {
                Ok(Loose::Other)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<Loose, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Loose, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> std::result::Result<Loose, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl PlanValue {
    /// As `idflow test` compares it: text as it is, references by the object they name.
    pub fn text(&self) -> String {
        match self {
            PlanValue::Text(s) => s.clone(),
            PlanValue::Binary { base64 } => base64.clone(),
            PlanValue::Reference { object, .. } => object.clone(),
        }
    }

    /// As a plan shows it: text quoted, references with an arrow.
    pub fn display(&self) -> String {
        match self {
            PlanValue::Text(s) => format!("{s:?}"),
            PlanValue::Binary { base64 } => format!("<base64 {base64}>"),
            PlanValue::Reference { reference: Some(_), object } => format!("→ {object}"),
            PlanValue::Reference { reference: None, object } => format!("→ {object} (to be created)"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanAttr {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old: Vec<PlanValue>,
    pub new: Vec<PlanValue>,
    /// The outbound rule whose flow sets this attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// Who a change is about, in identifiers that stay the same from one plan to the next.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    /// The target's own id for the object (its anchor); `None` before it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The object's DN in the target, where the target has DNs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metaverse_id: Option<i64>,
    /// The source objects behind it, as `connector:anchor`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanChange {
    /// add, update or delete.
    pub op: String,
    pub object_type: String,
    /// The object as a reader knows it: its DN or its name.
    pub object: String,
    pub identity: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_dn: Option<String>,
    /// The outbound rule that provisioned, adopted or deprovisions the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub attributes: Vec<PlanAttr>,
}

impl PlanChange {
    /// What stays the same about this change from one plan to the next.
    pub fn key(&self) -> (String, String, Identity) {
        let mut id = self.identity.clone();
        if id.target_id.is_some() || !id.sources.is_empty() {
            // The metaverse id of an object projected in this very plan is not kept.
            id.metaverse_id = None;
        }
        (self.op.clone(), self.object_type.clone(), id)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub add: usize,
    pub update: usize,
    pub delete: usize,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ConnectorPlan {
    pub connector: String,
    pub totals: Totals,
    /// Held on disk, read one at a time (a plan may hold a million).
    pub changes: Changes,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub connectors: Vec<ConnectorPlan>,
    pub totals: Totals,
    /// Values two objects would hold in an attribute the target keeps unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collisions: Vec<Collision>,
    #[serde(default)]
    pub errors: Vec<ObjectError>,
    /// Objects in error (each counted once): the targets do not match the rules for them.
    #[serde(default)]
    pub in_error: usize,
    #[serde(default)]
    pub staging_mode: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.totals.add + self.totals.update + self.totals.delete == 0
    }
}

/// What names a referenced object: the name of what a [`Named`] names (`None`: no such object),
/// or an error, its own (`E`) or the plan's.
pub(crate) type Namer<'n, E> = dyn FnMut(&Named<'_>) -> std::result::Result<Option<String>, E> + 'n;

/// One value as a plan holds it (moved, not copied); references by the object they point at,
/// named by `name` (called once for each reference, in order).
fn value<E>(v: Value, is_ref: bool, name: &mut Namer<'_, E>) -> std::result::Result<PlanValue, E> {
    Ok(match v {
        Value::Ref(id) => {
            PlanValue::Reference { reference: None, object: name(&Named::Id(id))?.unwrap_or_else(|| unnamed(&Named::Id(id))) }
        }
        Value::Str(s) if is_ref => {
            let n = Named::Ident(s.as_str().into());
            let object = name(&n)?.unwrap_or_else(|| unnamed(&n));
            PlanValue::Reference { reference: Some(s), object }
        }
        Value::Str(s) => PlanValue::Text(s),
        Value::Bin(b) => PlanValue::Binary { base64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b) },
    })
}

/// How a plan shows a reference to an object that is not there: by its id, or its identifier.
fn unnamed(n: &Named<'_>) -> String {
    match n {
        Named::Id(id) => format!("#{id}"),
        Named::Ident(s) => s.to_string(),
    }
}

/// The rule behind a target attribute: the rule that linked the object when it flows the
/// attribute, else the first (by precedence) outbound rule of this target and type that does.
fn rule_of_attr(rules: &RuleSet, connector: &str, object_type: &str, attr: &str, link_rule: Option<&str>) -> Option<String> {
    let outbound = rules.rules.iter().filter(|r| {
        r.def.direction == Direction::Outbound
            && r.def.connector == connector
            && r.def.target_type.as_deref().is_none_or(|t| t == object_type)
            && r.def.flows.contains_key(attr)
    });
    let mut first = None;
    for r in outbound {
        if Some(r.name()) == link_rule {
            return Some(r.name().to_string());
        }
        first.get_or_insert_with(|| r.name().to_string());
    }
    first
}

/// The source objects behind a connector-space object's metaverse object `mv_id`, as
/// `connector:anchor` (from `read` when it holds them).
fn sources_of(c: &dyn ReadOps, read: &mut idflow_store::SourcesByMv, mv_id: Option<i64>) -> Result<Vec<String>> {
    let mut sources = Vec::new();
    if let Some(m) = mv_id {
        let read = match read.remove(&m) {
            Some(read) => read,
            None => c.cs_sources_of(m)?,
        };
        for (connector, anchor) in read {
            sources.push(format!("{connector}:{}", anchor.as_deref().unwrap_or("-")));
        }
    }
    sources.sort();
    Ok(sources)
}

/// The identity of a connector-space object: its id in the target and its metaverse object
/// (its sources are [`sources_of`]'s).
fn identity(o: &CsObject, kind: OpKind) -> Identity {
    // An object still to be created has no id in the target yet (one idflow chooses for it is
    // chosen again by every plan).
    let target_id = if kind == OpKind::Add { None } else { o.anchor.clone() };
    Identity { target_id, dn: o.dn.clone().or_else(|| o.desired_dn.clone()), metaverse_id: o.mv_id, sources: Vec::new() }
}

/// A change as a plan shows it; `names` remembers the names of referenced objects (one for
/// the plan, or a new one for a change alone).
pub(crate) fn plan_change(
    c: &dyn ReadOps,
    names: &mut Names,
    o: &CsObject,
    ch: &Change,
    form: RefForm,
    rules: Option<&RuleSet>,
) -> Result<PlanChange> {
    let mut pc = change_named(o, ch.clone(), rules, &mut |n| names.name(c, &ch.connector, form, n))?;
    pc.identity.sources = sources_of(c, &mut Default::default(), o.mv_id)?;
    Ok(pc)
}

/// [`plan_change`] but its sources, made of the change (its values moved), with referenced
/// objects named by `name`.
pub(crate) fn change_named<E>(
    o: &CsObject,
    ch: Change,
    rules: Option<&RuleSet>,
    name: &mut Namer<'_, E>,
) -> std::result::Result<PlanChange, E> {
    let mut attributes = Vec::with_capacity(ch.attrs.len());
    for a in ch.attrs {
        let is_ref = a.is_reference;
        let old = a.old.into_iter().map(|v| value(v, is_ref, name)).collect::<std::result::Result<Vec<_>, E>>()?;
        let new = a.new.into_iter().map(|v| value(v, is_ref, name)).collect::<std::result::Result<Vec<_>, E>>()?;
        let rule = rules.and_then(|r| rule_of_attr(r, &ch.connector, &ch.object_type, &a.attr, o.link_rule.as_deref()));
        attributes.push(PlanAttr { name: a.attr, old, new, rule });
    }
    Ok(PlanChange {
        op: match ch.kind {
            OpKind::Add => "add",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        }
        .to_string(),
        object_type: ch.object_type,
        object: ch.display,
        identity: identity(o, ch.kind),
        new_dn: ch.new_dn,
        rule: o.link_rule.clone(),
        attributes,
    })
}

/// Changes planned at once (their objects' sources read in one statement).
const PLANNED_AT_ONCE: usize = 256;

/// The plan of every connector with pending exports; its changes go to a file in `spill`
/// once they outgrow memory.
pub(crate) fn build(
    c: &dyn ReadOps,
    connectors: &[String],
    rules: &Arc<RuleSet>,
    unique: &collisions::Unique,
    spill: &Path,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for name in connectors {
        let form = diff::form_of(c, name)?;
        let mut changes = Changes::in_dir(spill.to_path_buf());
        let mut t = Totals::default();
        // One object at a time (read a few hundred at once): only the plan's changes are held,
        // not every object's state.
        let ids = c.cs_pending_export_ids(name)?;
        let mut ahead = Ahead::default();
        // Nothing changes in the database while the plan is built: what references resolve
        // to, and the names of what they point at, are looked up once each.
        let mut idents = diff::Idents::new(form);
        idents.preload_for(c, name, i64::try_from(ids.len()).unwrap_or(i64::MAX))?;
        let planner = Arc::new(Planner::new(name, form, idents.preloaded(), Arc::clone(rules)));
        let mut name_here = |n: &Named<'_>| planner.name(c, n);
        // Dropped on the read-ahead thread, which made most of them.
        let (mut spent, mut spent_changes) = (Spent::<CsObject>::default(), Spent::default());
        // Changes found, planned a few hundred at a time (their sources read in one statement).
        let mut found: Vec<Made> = Vec::new();
        for i in 0..ids.len() {
            let made = match ahead.take(&ids, i, |chunk| planner.read(c, chunk))? {
                None | Some(Planned::Unchanged) => None,
                Some(Planned::Change(made)) => Some(*made),
                Some(Planned::Undecided(o)) => match diff::change_with(c, &o, form, &mut idents)? {
                    Some(ch) => {
                        // Referenced objects are most often in the plan too (a group's members,
                        // a manager): named as they are met, for references read after them.
                        planner.seen(&o, &ch.display);
                        let (kind, mv_id) = (ch.kind, o.mv_id);
                        let change = change_named(&o, ch, Some(rules), &mut name_here)?;
                        spent.push(*o);
                        Some(Made { kind, mv_id, change, holes: Vec::new() })
                    }
                    None => {
                        spent.push(*o);
                        None
                    }
                },
            };
            if let Some(made) = made {
                match made.kind {
                    OpKind::Add => t.add += 1,
                    OpKind::Update => t.update += 1,
                    OpKind::Delete => t.delete += 1,
                }
                found.push(made);
            }
            if found.len() >= PLANNED_AT_ONCE || (i + 1 == ids.len() && !found.is_empty()) {
                let mut sources = read_sources(c, found.iter().map(|m| m.mv_id))?;
                for Made { mv_id, mut change, holes, .. } in found.drain(..) {
                    fill(&mut change, holes, &mut name_here)?;
                    change.identity.sources = sources_of(c, &mut sources, mv_id)?;
                    changes.push(&change)?;
                    spent_changes.push(change);
                }
            }
        }
        changes.sort();
        plan.totals.add += t.add;
        plan.totals.update += t.update;
        plan.totals.delete += t.delete;
        plan.collisions.extend(collisions::find(c, name, unique)?);
        plan.connectors.push(ConnectorPlan { connector: name.clone(), totals: t, changes });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::PlanValue;
    use serde::Deserialize;

    /// What `#[serde(untagged)]` derives, for comparison.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Text(String),
        Binary { base64: String },
        Reference { reference: Option<String>, object: String },
    }

    impl From<Untagged> for PlanValue {
        fn from(u: Untagged) -> PlanValue {
            match u {
                Untagged::Text(s) => PlanValue::Text(s),
                Untagged::Binary { base64 } => PlanValue::Binary { base64 },
                Untagged::Reference { reference, object } => PlanValue::Reference { reference, object },
            }
        }
    }

    #[test]
    fn a_plan_value_reads_as_the_untagged_derive_would() {
        let cases = [
            r#""text""#,
            r#""with \"escapes\" \u00e9""#,
            r#"{"base64": "AAE="}"#,
            r#"{"reference": "id-1", "object": "Ada"}"#,
            r#"{"object": "Ada", "reference": "id-1"}"#,
            r#"{"reference": null, "object": "Ada"}"#,
            r#"{"object": "Ada"}"#,
            r#"{"base64": "AAE=", "object": "Ada"}"#,
            r#"{"object": "Ada", "later": [1, {"x": 2}]}"#,
            r#"1"#,
            r#"null"#,
            r#"[]"#,
            r#"{}"#,
            r#"{"reference": "id-1"}"#,
            r#"{"base64": 3}"#,
            // Mixed and repeated keys, each as the derive takes them.
            r#"{"base64": "x", "object": 5}"#,
            r#"{"base64": "x", "object": null}"#,
            r#"{"base64": "x", "reference": 5}"#,
            r#"{"base64": 3, "object": "A"}"#,
            r#"{"base64": null, "object": "A"}"#,
            r#"{"base64": [1], "object": "A", "reference": {"x": [null]}}"#,
            r#"{"object": "a", "object": "b"}"#,
            r#"{"base64": "x", "base64": "y", "object": "A"}"#,
            r#"{"reference": "r", "reference": null, "object": "A"}"#,
            r#"{"reference": null, "object": "A", "base64": true}"#,
            r#"{"object": "A", "reference": 1.5}"#,
            r#"["AAE="]"#,
            r#"["id-1", "Ada"]"#,
            r#"true"#,
        ];
        for json in cases {
            let ours = serde_json::from_str::<PlanValue>(json).ok();
            let derived = serde_json::from_str::<Untagged>(json).ok().map(PlanValue::from);
            assert_eq!(ours, derived, "{json}");
        }
        // Saved plans round-trip.
        for v in [
            PlanValue::Text("x".into()),
            PlanValue::Binary { base64: "AA==".into() },
            PlanValue::Reference { reference: None, object: "o".into() },
        ] {
            let text = serde_json::to_string(&v).expect("serialize");
            assert_eq!(serde_json::from_str::<PlanValue>(&text).expect("read"), v);
        }
    }
}
