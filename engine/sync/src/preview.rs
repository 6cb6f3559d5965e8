//! Preview: why one object ends up the way it does. Runs sync for that one object in a
//! transaction that is rolled back, and shows the rules in scope, the join decision, every
//! metaverse attribute with the rule that won it (and the ones that lost), and the exports it causes.
use crate::ctx::{Ctx, TraceLine};
use crate::engine::Engine;
use crate::observer::Silent;
use crate::plan::{plan_change, PlanChange};
use crate::{diff, inbound, outbound, precedence};
use idflow_core::{Error, ObjectError, Result, Value};
use idflow_store::{CsObject, Link, PendingImport, ReadOps, WriteOps};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Contender {
    pub rule: String,
    pub precedence: i64,
    pub connector: String,
    pub values: Vec<String>,
    pub wins: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttrView {
    pub name: String,
    pub values: Vec<String>,
    pub rule: String,
    pub contributions: Vec<Contender>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub connector: String,
    pub object: String,
    pub object_type: String,
    pub anchor: Option<String>,
    pub link: Option<String>,
    pub metaverse_id: Option<i64>,
    pub metaverse_type: Option<String>,
    pub trace: Vec<TraceLine>,
    pub attributes: Vec<AttrView>,
    pub exports: Vec<(String, PlanChange)>,
    pub errors: Vec<ObjectError>,
    pub last_run_errors: Vec<ObjectError>,
}

fn find(c: &dyn ReadOps, connector: &str, key: &str) -> Result<CsObject> {
    if let Some(id) = key.strip_prefix('#').and_then(|s| s.parse::<i64>().ok()) {
        if let Some(o) = c.cs_get(id)?.filter(|o| o.connector == connector) {
            return Ok(o);
        }
    }
    if let Some(o) = c.cs_by_anchor(connector, key)? {
        return Ok(o);
    }
    let mut by_dn = c.cs_by_dn(connector, key)?;
    if by_dn.len() == 1 {
        return Ok(by_dn.remove(0));
    }
    for o in c.cs_of_connector(connector)? {
        if o.display() == key {
            return Ok(o);
        }
    }
    Err(Error::Refused(format!("no object {key:?} in connector {connector:?} (give its DN, anchor, or #id; run `idflow import` first)")))
}

fn show(c: &dyn ReadOps, v: &Value) -> Result<String> {
    Ok(match v {
        Value::Ref(id) => match c.cs_all_linked(*id)?.into_iter().find(|o| o.link.is_some_and(Link::is_inbound)) {
            Some(o) => format!("→ {}", o.display()),
            None => format!("→ metaverse #{id}"),
        },
        other => other.display(),
    })
}

/// Why one object ends up the way it does: sync for that object in a write transaction that
/// is dropped (rolled back).
pub fn preview(engine: &Engine, connector: &str, key: &str) -> Result<Preview> {
    if engine.config.connector(connector).is_none() {
        return Err(Error::Config(format!("no connector named {connector:?}")));
    }
    let tx = engine.store.write()?;
    let o = find(&tx, connector, key)?;
    let mut ctx = Ctx::new(&tx, &engine.rules, &engine.facts, &Silent);
    ctx.trace = Some(Vec::new());
    let outbound_only = o.link.is_some_and(|l| !l.is_inbound());
    if !outbound_only {
        let mut marked = o.clone();
        if marked.pending_import.is_none() {
            marked.pending_import = Some(PendingImport::Update);
        }
        tx.cs_save(&marked)?;
        inbound::run(&mut ctx, vec![o.id])?;
    }
    let after = tx.cs_get(o.id)?;
    let mv_id = after.as_ref().and_then(|a| a.mv_id).or(o.mv_id);
    if let Some(m) = mv_id {
        outbound::run(&mut ctx, vec![m])?;
    }
    let mut attributes = Vec::new();
    let mut exports = Vec::new();
    let mut metaverse_type = None;
    // Read as outbound sync just did: an error here is the store's, said, not a missing object.
    let object = match mv_id {
        Some(m) => tx.mv_get(m)?,
        None => None,
    };
    if let Some(m) = object {
        metaverse_type = Some(m.object_type.clone());
        for (name, a) in &m.attrs {
            let mut contributions = Vec::new();
            let mut ranked: Vec<_> = tx.mv_contributions(m.id)?.into_iter().filter(|k| &k.attr == name).collect();
            ranked.sort_by(|a, b| precedence::rank(a).cmp(&precedence::rank(b)));
            for k in ranked {
                let conn_name = tx.cs_get(k.cs_id)?.map(|x| x.connector).unwrap_or_default();
                contributions.push(Contender {
                    wins: k.rule == a.rule && k.cs_id == a.cs,
                    rule: k.rule,
                    precedence: k.precedence,
                    connector: conn_name,
                    values: k.values.iter().map(|v| show(&tx, v)).collect::<Result<_>>()?,
                });
            }
            attributes.push(AttrView {
                name: name.clone(),
                values: a.values.iter().map(|v| show(&tx, v)).collect::<Result<_>>()?,
                rule: a.rule.clone(),
                contributions,
            });
        }
        for t in tx.cs_all_linked(m.id)? {
            let form = diff::form_of(&tx, &t.connector)?;
            if let Some(ch) = diff::change_for(&tx, &t, form)? {
                exports.push((t.connector.clone(), plan_change(&tx, &mut Default::default(), &t, &ch, form, Some(&engine.rules))?));
            }
        }
    }
    let last_run_errors = tx.history_errors_for(Some(o.id), mv_id)?.into_iter().map(|(_, e)| e).collect();
    let p = Preview {
        connector: connector.to_string(),
        object: o.display(),
        object_type: o.object_type.clone(),
        anchor: o.anchor.clone(),
        link: after.as_ref().and_then(|a| a.link).map(|l| l.as_str().to_string()),
        metaverse_id: mv_id,
        metaverse_type,
        trace: ctx.trace.take().unwrap_or_default(),
        attributes,
        exports,
        errors: ctx.errors.clone(),
        last_run_errors,
    };
    drop(ctx);
    drop(tx);
    Ok(p)
}
