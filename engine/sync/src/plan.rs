//! Plans: what export would do, per connector: adds with their attributes, updates as old to
//! new values, deletes, and the totals. References read as the names of the objects they point at.
use crate::diff::{self, Change};
use idflow_core::connector::{OpKind, RefForm};
use idflow_core::{ObjectError, Result, Value};
use idflow_store::{CsObject, ReadOps};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanAttr {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub old: Vec<String>,
    pub new: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanChange {
    pub op: &'static str,
    pub object_type: String,
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_dn: Option<String>,
    pub attributes: Vec<PlanAttr>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub add: usize,
    pub update: usize,
    pub delete: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectorPlan {
    pub connector: String,
    pub totals: Totals,
    pub changes: Vec<PlanChange>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Plan {
    pub connectors: Vec<ConnectorPlan>,
    pub totals: Totals,
    pub errors: Vec<ObjectError>,
    /// Objects in error (each counted once): the targets do not match the rules for them.
    pub in_error: usize,
    pub staging_mode: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.totals.add + self.totals.update + self.totals.delete == 0
    }
}

/// How a value reads in a plan; references by the name of the object they point at.
fn show(c: &dyn ReadOps, connector: &str, v: &Value, is_ref: bool, form: RefForm, quoted: bool) -> Result<String> {
    Ok(match v {
        Value::Ref(id) => match c.cs_get(*id)? {
            Some(o) if quoted => format!("→ {} (to be created)", o.display()),
            Some(o) => o.display(),
            None => format!("→ #{id}"),
        },
        Value::Str(s) if is_ref => {
            let target: Option<CsObject> = match form {
                RefForm::Anchor => c.cs_by_anchor(connector, s)?,
                RefForm::Dn => c.cs_by_dn(connector, s)?.into_iter().next(),
            };
            match (target, quoted) {
                (Some(o), true) => format!("→ {}", o.display()),
                (Some(o), false) => o.display(),
                (None, true) => format!("→ {s}"),
                (None, false) => s.clone(),
            }
        }
        Value::Str(s) if !quoted => s.clone(),
        Value::Bin(b) if !quoted => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b),
        other => other.display(),
    })
}

pub(crate) fn plan_change(c: &dyn ReadOps, ch: &Change, form: RefForm) -> Result<PlanChange> {
    change_view(c, ch, form, true)
}

/// A change with values as they are (unquoted, references by name): what `idflow test` compares.
pub(crate) fn change_view(c: &dyn ReadOps, ch: &Change, form: RefForm, quoted: bool) -> Result<PlanChange> {
    let mut attributes = Vec::new();
    for a in &ch.attrs {
        let old = a.old.iter().map(|v| show(c, &ch.connector, v, a.is_reference, form, quoted)).collect::<Result<Vec<_>>>()?;
        let new = a.new.iter().map(|v| show(c, &ch.connector, v, a.is_reference, form, quoted)).collect::<Result<Vec<_>>>()?;
        attributes.push(PlanAttr { name: a.attr.clone(), old, new });
    }
    Ok(PlanChange {
        op: match ch.kind {
            OpKind::Add => "add",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        },
        object_type: ch.object_type.clone(),
        object: ch.display.clone(),
        new_dn: ch.new_dn.clone(),
        attributes,
    })
}

/// The plan of every connector with pending exports.
pub(crate) fn build(c: &dyn ReadOps, connectors: &[String]) -> Result<Plan> {
    let mut plan = Plan::default();
    for name in connectors {
        let form = diff::form_of(c, name)?;
        let mut changes = Vec::new();
        for o in c.cs_pending_export(name)? {
            if let Some(ch) = diff::change_for(c, &o, form)? {
                changes.push(plan_change(c, &ch, form)?);
            }
        }
        let rank = |op: &str| match op {
            "add" => 0,
            "update" => 1,
            _ => 2,
        };
        changes.sort_by(|a, b| rank(a.op).cmp(&rank(b.op)).then(a.object_type.cmp(&b.object_type)).then(a.object.cmp(&b.object)));
        let mut t = Totals::default();
        for ch in &changes {
            match ch.op {
                "add" => t.add += 1,
                "update" => t.update += 1,
                _ => t.delete += 1,
            }
        }
        plan.totals.add += t.add;
        plan.totals.update += t.update;
        plan.totals.delete += t.delete;
        plan.connectors.push(ConnectorPlan { connector: name.clone(), totals: t, changes });
    }
    Ok(plan)
}
