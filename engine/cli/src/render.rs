//! Reports as a person reads them: a run's summary, a plan, a preview. (`--json` prints the
//! engine's own structures instead.)
use idflow_engine::{Plan, Preview, RunReport};

pub(crate) fn summary(r: &RunReport) -> String {
    let mut s = String::new();
    for i in &r.import {
        s.push_str(&format!(
            "import {} ({}): {} read, {} added, {} updated, {} renamed, {} deleted, {} errors\n",
            i.connector, i.mode, i.read, i.added, i.updated, i.renamed, i.deleted, i.errors
        ));
    }
    if let Some(y) = &r.sync {
        s.push_str(&format!(
            "sync ({}): {} in: {} projected, {} joined, {} disconnected, {} metaverse updated, {} deleted; {} out: {} provisioned, {} adopted, {} deprovisioned\n",
            if r.full_sync == Some(true) { "full" } else { "delta" },
            y.inbound_objects, y.projected, y.joined, y.disconnected, y.metaverse_updated, y.metaverse_deleted,
            y.outbound_objects, y.provisioned, y.adopted, y.deprovisioned
        ));
    }
    for x in &r.export {
        s.push_str(&format!(
            "export {}: {} added, {} updated, {} deleted, {} failed{}\n",
            x.connector,
            x.added,
            x.updated,
            x.deleted,
            x.failed,
            if x.waiting > 0 { format!(", {} waiting for referenced objects", x.waiting) } else { String::new() }
        ));
    }
    if let Some(p) = &r.password_hash_sync {
        s.push_str(&format!(
            "password hash sync: {} linked, {} delivered, {} unchanged, {} without a hash, {} failed ({:.2} s hashing)\n",
            p.candidates,
            p.delivered,
            p.unchanged,
            p.without_hash,
            p.failed,
            p.hashing_ms as f64 / 1000.0
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for e in r.errors.iter().take(25) {
        s.push_str(&format!(
            "error ({}): {} {}{}: {}\n",
            e.stage,
            e.connector.as_deref().unwrap_or("-"),
            e.object.as_deref().unwrap_or("-"),
            e.rule.as_deref().map(|x| format!(" [rule {x}]")).unwrap_or_default(),
            e.message
        ));
    }
    if r.errors.len() > 25 {
        s.push_str(&format!("... and {} more errors (idflow history --json lists them)\n", r.errors.len() - 25));
    }
    s.push_str(&format!(
        "{} in {:.2} s{}\n",
        r.profile,
        r.duration_ms as f64 / 1000.0,
        if r.errors.is_empty() { String::new() } else { format!(", {} errors", r.errors.len()) }
    ));
    s
}

fn list(v: &[String]) -> String {
    match v.len() {
        0 => "(none)".into(),
        1 => v[0].clone(),
        _ => format!("[{}]", v.join(", ")),
    }
}

/// The plan as a person reads it.
pub(crate) fn plan(plan: &Plan) -> String {
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
        out.push_str(&format!("Plan: {} to add, {} to update, {} to delete.\n", plan.totals.add, plan.totals.update, plan.totals.delete));
    }
    out
}

/// A preview as a person reads it.
pub(crate) fn preview(p: &Preview) -> String {
    let mut out = format!("{} object {} ({})\n", p.connector, p.object, p.object_type);
    if let Some(a) = &p.anchor {
        out.push_str(&format!("  anchor: {a}\n"));
    }
    match (p.metaverse_id, &p.link) {
        (Some(m), Some(l)) => out.push_str(&format!("  link: {l} to metaverse {} #{m}\n", p.metaverse_type.as_deref().unwrap_or("object"))),
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
        out.push_str(&format!(
            "error ({}): {}{}\n",
            e.stage,
            e.rule.as_deref().map(|r| format!("rule {r}: ")).unwrap_or_default(),
            e.message
        ));
    }
    out
}
