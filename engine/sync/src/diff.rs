//! What export would change for one connector-space object: its desired state (from outbound
//! rules) against what the target holds, with references translated into the target's own
//! identifiers. A reference to an object the target has not created yet stays pending.
use idflow_core::connector::{AttrChange, ChangeKind, ExportOp, OpKind, RefForm};
use idflow_core::{dn, same_values, Result, Value};
use idflow_store::{CsObject, ExportState, ReadOps, WriteOps};
use serde::Serialize;

pub(crate) use crate::idents::Idents;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AttrDiff {
    pub attr: String,
    pub old: Vec<Value>,
    /// `Value::Ref(cs_id)` marks a reference to an object not created in the target yet.
    pub new: Vec<Value>,
    #[serde(skip)]
    pub is_reference: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub cs_id: i64,
    pub connector: String,
    pub kind: OpKind,
    pub object_type: String,
    pub display: String,
    pub anchor: Option<String>,
    pub dn: Option<String>,
    pub new_dn: Option<String>,
    pub attrs: Vec<AttrDiff>,
}

fn resolve<E>(
    vals: &[Value],
    ident: &mut impl FnMut(i64) -> std::result::Result<Option<String>, E>,
) -> std::result::Result<(Vec<Value>, bool), E> {
    let mut out = Vec::with_capacity(vals.len());
    let mut is_ref = false;
    for v in vals {
        match v {
            Value::Ref(id) => {
                is_ref = true;
                match ident(*id)? {
                    Some(s) => out.push(Value::Str(s)),
                    None => out.push(Value::Ref(*id)),
                }
            }
            other => out.push(other.clone()),
        }
    }
    Ok((out, is_ref))
}

/// Whether `values` hold a reference to an object the target has not created yet (in a desired
/// state: a reference at all).
fn waits(values: &[Value]) -> bool {
    values.iter().any(|v| matches!(v, Value::Ref(_)))
}

/// The pending change of an object, if export has anything to do for it.
pub(crate) fn change_for(c: &dyn ReadOps, o: &CsObject, form: RefForm) -> Result<Option<Change>> {
    change_with(c, o, form, &mut Idents::new(form))
}

/// What export does with an object in this export state, there or not in its directory:
/// `None` when nothing (an update may still turn out to change nothing).
pub(crate) fn kind_of(export_state: Option<ExportState>, present: bool) -> Option<OpKind> {
    match (export_state, present) {
        (Some(ExportState::Delete), true) => Some(OpKind::Delete),
        (Some(ExportState::Delete), false) | (None, _) => None,
        (Some(ExportState::Present), false) => Some(OpKind::Add),
        (Some(ExportState::Present), true) => Some(OpKind::Update),
    }
}

/// The DN an object is to have when it is not the one it has (or, for an add, has none yet).
pub(crate) fn new_dn(kind: OpKind, desired_dn: Option<&str>, dn: Option<&str>) -> Option<String> {
    match (desired_dn, dn) {
        (Some(want), Some(have)) if dn::norm(want) != dn::norm(have) => Some(want.to_string()),
        (Some(want), None) if kind == OpKind::Add => Some(want.to_string()),
        _ => None,
    }
}

/// [`change_for`], with the target identifiers of references looked up through `idents`.
pub(crate) fn change_with(c: &dyn ReadOps, o: &CsObject, form: RefForm, idents: &mut Idents) -> Result<Option<Change>> {
    change_by(o, &mut |id| idents.get(c, id, form))
}

/// [`change_for`], with the target identifier of each referenced object given by `ident`
/// (whose error, should it give one, is this one's).
pub(crate) fn change_by<E>(
    o: &CsObject,
    ident: &mut impl FnMut(i64) -> std::result::Result<Option<String>, E>,
) -> std::result::Result<Option<Change>, E> {
    let Some(kind) = kind_of(o.export_state, o.present) else { return Ok(None) };
    let mut attrs = Vec::new();
    if kind != OpKind::Delete {
        for (attr, want) in o.desired.iter().flatten() {
            let old: &[Value] = match kind {
                OpKind::Add => &[],
                _ => o.attrs.get(attr).map_or(&[], Vec::as_slice),
            };
            // Values without references are what they are: compared before anything is copied
            // (most of an update, and all of an object in step, is such values).
            if kind == OpKind::Update && !waits(want) && same_values(want, old) {
                continue;
            }
            let (new, is_reference) = resolve(want, ident)?;
            if kind == OpKind::Add && new.is_empty() {
                continue;
            }
            if kind == OpKind::Update && !waits(&new) && same_values(&new, old) {
                continue;
            }
            attrs.push(AttrDiff { attr: attr.clone(), old: old.to_vec(), new, is_reference });
        }
    }
    let new_dn = new_dn(kind, o.desired_dn.as_deref(), o.dn.as_deref());
    if kind == OpKind::Update && attrs.is_empty() && new_dn.is_none() {
        return Ok(None);
    }
    Ok(Some(Change {
        cs_id: o.id,
        connector: o.connector.clone(),
        kind,
        object_type: o.object_type.clone(),
        display: o.display(),
        anchor: o.anchor.clone(),
        dn: o.dn.clone(),
        new_dn,
        attrs,
    }))
}

/// The objects an add's values reference, when every one resolved: the values sent are then the
/// desired ones spelled as the target names them, and stay so as long as none of those objects'
/// identifiers changes (what [`in_step_after_add`] needs). `None` for anything but an add, or
/// when a value waits for an object to be created (the object stays pending then).
pub(crate) fn resolved_refs(o: &CsObject, ch: &Change) -> Option<Vec<i64>> {
    if ch.kind != OpKind::Add || ch.attrs.iter().any(|a| waits(&a.new)) {
        return None;
    }
    let refs = o.desired.iter().flatten().flat_map(|(_, values)| values.iter());
    Some(refs.filter_map(|v| if let Value::Ref(id) = v { Some(*id) } else { None }).collect())
}

/// Whether an object added with every value resolved ([`resolved_refs`]: the objects its values
/// reference) is in step with its desired state, as [`has_changes_with`] would say, without
/// resolving and comparing its values again: its values are what was sent, unless an object
/// they reference was forgotten since `idents` was marked (before the add was computed); then
/// `None`, and they are compared. Its DN is compared either way.
pub(crate) fn in_step_after_add(o: &CsObject, refs: &[i64], idents: &Idents) -> Option<bool> {
    if kind_of(o.export_state, o.present) != Some(OpKind::Update) || refs.iter().any(|r| idents.forgotten_since_mark(*r)) {
        return None;
    }
    Some(new_dn(OpKind::Update, o.desired_dn.as_deref(), o.dn.as_deref()).is_none())
}

/// Does export have anything to do for this object?
pub(crate) fn has_changes(c: &dyn ReadOps, o: &CsObject) -> Result<bool> {
    if let Some(known) = known_without_diff(o) {
        return Ok(known);
    }
    // The reference form only matters for how values are spelled, not whether they differ,
    // except for references: compare with the form that applies to the object's connector.
    let form = form_of(c, &o.connector)?;
    Ok(change_for(c, o, form)?.is_some())
}

/// [`has_changes`], with the target identifiers of references looked up through `idents`,
/// made for the object's connector in the form recorded for it (no lookup per object).
pub(crate) fn has_changes_with(c: &dyn ReadOps, o: &CsObject, idents: &mut Idents) -> Result<bool> {
    if let Some(known) = known_without_diff(o) {
        return Ok(known);
    }
    let form = idents.form();
    Ok(change_with(c, o, form, idents)?.is_some())
}

/// What [`change_for`] says of an object without comparing attributes: an add or a delete is
/// always a change, an object export has no state for never is; only an update is compared.
pub(crate) fn known_without_diff(o: &CsObject) -> Option<bool> {
    match kind_of(o.export_state, o.present) {
        Some(OpKind::Update) => None,
        Some(_) => Some(true),
        None => Some(false),
    }
}

/// How the connector names referenced objects, as recorded when it was configured.
pub(crate) fn form_of(c: &dyn ReadOps, connector: &str) -> Result<RefForm> {
    Ok(match c.meta_get(&format!("ref_form:{connector}"))?.as_deref() {
        Some("dn") => RefForm::Dn,
        _ => RefForm::Anchor,
    })
}

pub(crate) fn record_form(c: &dyn WriteOps, connector: &str, form: RefForm) -> Result<()> {
    let want = match form {
        RefForm::Dn => "dn",
        RefForm::Anchor => "anchor",
    };
    if c.meta_get(&format!("ref_form:{connector}"))?.as_deref() != Some(want) {
        c.meta_set(&format!("ref_form:{connector}"), want)?;
    }
    Ok(())
}

/// The export operation for a change (its values moved, not copied); `None` when every
/// remaining difference waits for a referenced object to be created first.
pub(crate) fn to_op(ch: Change) -> Option<ExportOp> {
    let mut op = ExportOp {
        cs_id: ch.cs_id,
        kind: ch.kind,
        object_type: ch.object_type,
        anchor: ch.anchor,
        dn: ch.dn,
        new_dn: ch.new_dn,
        attrs: Default::default(),
        changes: Vec::new(),
    };
    match ch.kind {
        OpKind::Delete => {}
        OpKind::Add => {
            for a in ch.attrs {
                let v = into_resolved(a.new);
                if !v.is_empty() {
                    op.attrs.insert(a.attr, v);
                }
            }
        }
        OpKind::Update => {
            for a in ch.attrs {
                let new = into_resolved(a.new);
                if same_values(&new, &a.old) {
                    continue;
                }
                if a.old.is_empty() {
                    // Nothing there yet: an add (SCIM refuses to replace through a filter that matches nothing).
                    op.changes.push(AttrChange { attr: a.attr, kind: ChangeKind::Add, values: new });
                } else if new.len() <= 1 && a.old.len() <= 1 {
                    op.changes.push(AttrChange { attr: a.attr, kind: ChangeKind::Replace, values: new });
                } else {
                    let add: Vec<Value> = new.iter().filter(|v| !a.old.contains(v)).cloned().collect();
                    let del: Vec<Value> = a.old.iter().filter(|v| !new.contains(v)).cloned().collect();
                    if !add.is_empty() {
                        op.changes.push(AttrChange { attr: a.attr.clone(), kind: ChangeKind::Add, values: add });
                    }
                    if !del.is_empty() {
                        op.changes.push(AttrChange { attr: a.attr, kind: ChangeKind::Delete, values: del });
                    }
                }
            }
            if op.changes.is_empty() && op.new_dn.is_none() {
                return None;
            }
        }
    }
    Some(op)
}

/// `values` without the references still to be resolved.
fn into_resolved(mut values: Vec<Value>) -> Vec<Value> {
    values.retain(|v| !matches!(v, Value::Ref(_)));
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use idflow_store::Store;

    #[test]
    fn what_is_known_without_comparing_is_what_the_comparison_says() {
        let store = Store::in_memory().expect("store");
        let r = store.read().expect("read");
        let mut o = CsObject::new("cloud", "User");
        o.id = 1;
        o.desired = Some([("userName".to_string(), vec![Value::from("ada")])].into_iter().collect());
        for state in [None, Some(ExportState::Present), Some(ExportState::Delete)] {
            for present in [false, true] {
                o.export_state = state;
                o.present = present;
                let compared = change_for(&r, &o, RefForm::Anchor).expect("compared").is_some();
                match known_without_diff(&o) {
                    Some(known) => assert_eq!(known, compared, "{state:?} present={present}"),
                    None => assert_eq!((state, present), (Some(ExportState::Present), true), "only an update is compared"),
                }
            }
        }
    }

    /// An add recorded without comparing again is the one whose values all resolved, nothing
    /// they reference was forgotten since the mark, and whose DN is the desired one.
    #[test]
    fn an_add_is_in_step_as_sent_only_while_what_it_references_keeps_its_identifier() {
        let mut o = CsObject::new("cloud", "User");
        o.id = 1;
        o.desired = Some([("manager".to_string(), vec![Value::Ref(2)])].into_iter().collect());
        let add = |attrs: Vec<AttrDiff>| Change {
            cs_id: 1,
            connector: "cloud".into(),
            kind: OpKind::Add,
            object_type: "User".into(),
            display: String::new(),
            anchor: None,
            dn: None,
            new_dn: None,
            attrs,
        };
        let sent = |v: Value| vec![AttrDiff { attr: "manager".into(), old: vec![], new: vec![v], is_reference: true }];
        assert_eq!(resolved_refs(&o, &add(sent(Value::Ref(2)))), None, "a reference waits");
        let refs = resolved_refs(&o, &add(sent(Value::from("two")))).expect("all resolved");
        assert_eq!(refs, vec![2]);
        let mut idents = Idents::new(RefForm::Anchor);
        // As recorded: there now, with its export state.
        o.export_state = Some(ExportState::Present);
        o.present = true;
        assert_eq!(in_step_after_add(&o, &refs, &idents), None, "nothing is known before a mark");
        idents.mark();
        idents.forget(1);
        assert_eq!(in_step_after_add(&o, &refs, &idents), Some(true));
        o.desired_dn = Some("cn=b".into());
        o.dn = Some("cn=a".into());
        assert_eq!(in_step_after_add(&o, &refs, &idents), Some(false), "a DN other than the desired one");
        o.dn = Some("CN=b".into());
        assert_eq!(in_step_after_add(&o, &refs, &idents), Some(true));
        idents.forget(2);
        assert_eq!(in_step_after_add(&o, &refs, &idents), None, "what it references may have a new identifier");
        idents.mark();
        assert_eq!(in_step_after_add(&o, &refs, &idents), Some(true));
    }
}
