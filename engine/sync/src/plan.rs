//! Plans: what export would do, per connector: adds with their attributes, updates as old to
//! new values, deletes, and the totals. References read as the names of the objects they point at.
use super::diff::{self, Change};
use crate::connector::{OpKind, RefForm};
use crate::error::Result;
use crate::store::history::ObjectError;
use crate::store::{cs, CsObject};
use crate::value::Value;
use rusqlite::Connection;
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
    pub staging_mode: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.totals.add + self.totals.update + self.totals.delete == 0
    }
}

/// How a value reads in a plan; references by the name of the object they point at.
pub fn show(c: &Connection, connector: &str, v: &Value, is_ref: bool, form: RefForm, quoted: bool) -> Result<String> {
    Ok(match v {
        Value::Ref(id) => match cs::get(c, *id)? {
            Some(o) if quoted => format!("→ {} (to be created)", o.display()),
            Some(o) => o.display(),
            None => format!("→ #{id}"),
        },
        Value::Str(s) if is_ref => {
            let target: Option<CsObject> = match form {
                RefForm::Anchor => cs::by_anchor(c, connector, s)?,
                RefForm::Dn => cs::by_dn(c, connector, s)?.into_iter().next(),
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

pub fn plan_change(c: &Connection, ch: &Change, form: RefForm) -> Result<PlanChange> {
    change_view(c, ch, form, true)
}

/// A change with values as they are (unquoted, references by name): what `idflow test` compares.
pub fn change_view(c: &Connection, ch: &Change, form: RefForm, quoted: bool) -> Result<PlanChange> {
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
pub fn build(c: &Connection, connectors: &[String]) -> Result<Plan> {
    let mut plan = Plan::default();
    for name in connectors {
        let form = diff::form_of(c, name)?;
        let mut changes = Vec::new();
        for o in cs::load_where(c, "connector=?1 AND pending_export=1", [name])? {
            if let Some(ch) = diff::change_for(c, &o, form)? {
                changes.push(plan_change(c, &ch, form)?);
            }
        }
        let rank = |op: &str| match op {
            "add" => 0,
            "update" => 1,
            _ => 2,
        };
        changes.sort_by(|a, b| {
            rank(a.op).cmp(&rank(b.op)).then(a.object_type.cmp(&b.object_type)).then(a.object.cmp(&b.object))
        });
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

fn list(v: &[String]) -> String {
    match v.len() {
        0 => "(none)".into(),
        1 => v[0].clone(),
        _ => format!("[{}]", v.join(", ")),
    }
}

/// The plan as a person reads it.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for cp in &plan.connectors {
        out.push_str(&format!(
            "connector {}: {} to add, {} to update, {} to delete\n",
            cp.connector, cp.totals.add, cp.totals.update, cp.totals.delete
        ));
        for ch in &cp.changes {
            let sign = match ch.op {
                "add" => '+',
                "update" => '~',
                _ => '-',
            };
            out.push_str(&format!("  {sign} {} {}\n", ch.object_type, ch.object));
            if let Some(d) = &ch.new_dn {
                out.push_str(&format!("      dn: {d}\n"));
            }
            let width = ch.attributes.iter().map(|a| a.name.len()).max().unwrap_or(0);
            for a in &ch.attributes {
                if ch.op == "add" && a.new.len() > 1 {
                    out.push_str(&format!("      {:width$} = ({} values)\n", a.name, a.new.len()));
                    for v in &a.new {
                        out.push_str(&format!("          {v}\n"));
                    }
                } else if ch.op == "add" {
                    out.push_str(&format!("      {:width$} = {}\n", a.name, list(&a.new)));
                } else if a.old.len() <= 1 && a.new.len() <= 1 {
                    out.push_str(&format!("      {:width$} : {} => {}\n", a.name, list(&a.old), list(&a.new)));
                } else {
                    let added: Vec<&String> = a.new.iter().filter(|v| !a.old.contains(v)).collect();
                    let removed: Vec<&String> = a.old.iter().filter(|v| !a.new.contains(v)).collect();
                    out.push_str(&format!("      {:width$} : +{} -{}\n", a.name, added.len(), removed.len()));
                    for v in added {
                        out.push_str(&format!("          + {v}\n"));
                    }
                    for v in removed {
                        out.push_str(&format!("          - {v}\n"));
                    }
                }
            }
        }
    }
    for e in plan.errors.iter().take(25) {
        out.push_str(&format!(
            "error: {} {}{}: {}\n",
            e.connector.as_deref().unwrap_or("-"),
            e.object.as_deref().unwrap_or("-"),
            e.rule.as_deref().map(|r| format!(" (rule {r})")).unwrap_or_default(),
            e.message
        ));
    }
    if plan.errors.len() > 25 {
        out.push_str(&format!("... and {} more errors (--json lists them all)\n", plan.errors.len() - 25));
    }
    if plan.staging_mode {
        out.push_str("staging mode: these changes are held; export is off\n");
    }
    if plan.is_empty() {
        out.push_str("No changes: the targets match the rules.\n");
    } else {
        out.push_str(&format!(
            "Plan: {} to add, {} to update, {} to delete.\n",
            plan.totals.add, plan.totals.update, plan.totals.delete
        ));
    }
    out
}
