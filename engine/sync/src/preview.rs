//! Preview: why one object ends up the way it does. Runs sync for that one object in a
//! transaction that is rolled back, and shows the rules in scope, the join decision, every
//! metaverse attribute with the rule that won it (and the ones that lost), and the exports it causes.
use super::plan::{plan_change, PlanChange};
use super::profiles::Engine;
use super::{diff, inbound, outbound, Ctx, TraceLine};
use crate::error::{Error, Result};
use crate::store::history::{self, ObjectError};
use crate::store::{cs, mv, CsObject, PendingImport};
use crate::value::Value;
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

fn find(engine: &Engine, connector: &str, key: &str) -> Result<CsObject> {
    let c = &engine.store.conn;
    if let Some(id) = key.strip_prefix('#').and_then(|s| s.parse::<i64>().ok()) {
        if let Some(o) = cs::get(c, id)?.filter(|o| o.connector == connector) {
            return Ok(o);
        }
    }
    if let Some(o) = cs::by_anchor(c, connector, key)? {
        return Ok(o);
    }
    let mut by_dn = cs::by_dn(c, connector, key)?;
    if by_dn.len() == 1 {
        return Ok(by_dn.remove(0));
    }
    for o in cs::load_where(c, "connector=?1", [connector])? {
        if o.display() == key {
            return Ok(o);
        }
    }
    Err(Error::Refused(format!(
        "no object {key:?} in connector {connector:?} (give its DN, anchor, or #id; run `idflow import` first)"
    )))
}

fn show(c: &rusqlite::Connection, v: &Value) -> Result<String> {
    Ok(match v {
        Value::Ref(id) => match cs::all_linked(c, *id)?.into_iter().find(|o| o.link.is_some_and(crate::store::Link::is_inbound)) {
            Some(o) => format!("→ {}", o.display()),
            None => format!("→ metaverse #{id}"),
        },
        other => other.display(),
    })
}

pub fn preview(engine: &Engine, connector: &str, key: &str) -> Result<Preview> {
    if engine.config.connector(connector).is_none() {
        return Err(Error::Config(format!("no connector named {connector:?}")));
    }
    let o = find(engine, connector, key)?;
    let tx = engine.store.conn.unchecked_transaction()?;
    let mut ctx = Ctx::new(&tx, &engine.rules, &engine.facts);
    ctx.trace = Some(Vec::new());
    let outbound_only = o.link.is_some_and(|l| !l.is_inbound());
    if !outbound_only {
        let mut marked = o.clone();
        if marked.pending_import.is_none() {
            marked.pending_import = Some(PendingImport::Update);
        }
        cs::save(&tx, &marked)?;
        inbound::run(&mut ctx, vec![o.id])?;
    }
    let after = cs::get(&tx, o.id)?;
    let mv_id = after.as_ref().and_then(|a| a.mv_id).or(o.mv_id);
    if let Some(m) = mv_id {
        outbound::run(&mut ctx, vec![m])?;
    }
    let mut attributes = Vec::new();
    let mut exports = Vec::new();
    let mut metaverse_type = None;
    if let Some(m) = mv_id.and_then(|m| mv::get(&tx, m).ok().flatten()) {
        metaverse_type = Some(m.object_type.clone());
        for (name, a) in &m.attrs {
            let mut contributions = Vec::new();
            for k in mv::contributions(&tx, m.id, name)? {
                let conn_name = cs::get(&tx, k.cs_id)?.map(|x| x.connector).unwrap_or_default();
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
        for t in cs::all_linked(&tx, m.id)? {
            let form = diff::form_of(&tx, &t.connector)?;
            if let Some(ch) = diff::change_for(&tx, &t, form)? {
                exports.push((t.connector.clone(), plan_change(&tx, &ch, form)?));
            }
        }
    }
    let last_run_errors = history::errors_for(&engine.store.conn, Some(o.id), mv_id)?.into_iter().map(|(_, e)| e).collect();
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
    tx.rollback()?;
    Ok(p)
}

pub fn render(p: &Preview) -> String {
    let mut out = format!("{} object {} ({})\n", p.connector, p.object, p.object_type);
    if let Some(a) = &p.anchor {
        out.push_str(&format!("  anchor: {a}\n"));
    }
    match (p.metaverse_id, &p.link) {
        (Some(m), Some(l)) => out.push_str(&format!(
            "  link: {l} to metaverse {} #{m}\n",
            p.metaverse_type.as_deref().unwrap_or("object")
        )),
        _ => out.push_str("  link: none (a disconnector)\n"),
    }
    out.push_str("rules:\n");
    for t in &p.trace {
        out.push_str(&format!("  [{}] {}{}\n", t.stage, t.rule.as_deref().map(|r| format!("{r}: ")).unwrap_or_default(), t.message));
    }
    if !p.attributes.is_empty() {
        out.push_str("metaverse attributes:\n");
        let w = p.attributes.iter().map(|a| a.name.len()).max().unwrap_or(0);
        for a in &p.attributes {
            out.push_str(&format!("  {:w$} = {}   (from {})\n", a.name, a.values.join(", "), a.rule));
            for c in a.contributions.iter().filter(|c| !c.wins) {
                out.push_str(&format!(
                    "  {:w$}   loses: {} (precedence {}, {}) = {}\n",
                    "",
                    c.rule,
                    c.precedence,
                    c.connector,
                    c.values.join(", ")
                ));
            }
        }
    }
    if p.exports.is_empty() {
        out.push_str("exports: none pending\n");
    } else {
        out.push_str("exports:\n");
        for (c, ch) in &p.exports {
            out.push_str(&format!("  {c}: {} {} {}\n", ch.op, ch.object_type, ch.object));
            for a in &ch.attributes {
                if a.old.is_empty() {
                    out.push_str(&format!("      {} = {}\n", a.name, a.new.join(", ")));
                } else {
                    out.push_str(&format!("      {}: {} => {}\n", a.name, a.old.join(", "), a.new.join(", ")));
                }
            }
        }
    }
    for e in p.errors.iter().chain(p.last_run_errors.iter()) {
        out.push_str(&format!("error ({}): {}{}\n", e.stage, e.rule.as_deref().map(|r| format!("rule {r}: ")).unwrap_or_default(), e.message));
    }
    out
}
