//! Reports as a person reads them: a run's summary, a plan, a preview. (`--json` prints the
//! engine's own structures instead.)
use idflow_core::{ObjectError, Stage};
use idflow_engine::{Preview, RunReport};
use std::collections::HashMap;

pub(crate) fn summary(r: &RunReport) -> String {
    let mut s = String::new();
    for i in &r.import {
        s.push_str(&format!(
            "import {} ({}): {} read, {} added, {} updated, {} renamed, {} deleted, {} errors{}\n",
            i.connector,
            i.mode,
            i.read,
            i.added,
            i.updated,
            i.renamed,
            i.deleted,
            i.errors,
            if i.looked_up > 0 { format!(" ({} not read, looked up before being taken for gone)", i.looked_up) } else { String::new() }
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
            "export {}: {} added, {} updated, {} deleted, {} failed{}{}\n",
            x.connector,
            x.added,
            x.updated,
            x.deleted,
            x.failed,
            if x.waiting > 0 { format!(", {} waiting for referenced objects", x.waiting) } else { String::new() },
            x.stopped_after.map(|n| format!("; stopped after {n} failures in a row")).unwrap_or_default()
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
    s.push_str(&errors(&r.errors, "idflow history --json lists them", |e, objects| {
        let rule = e.rule.as_deref().map(|x| format!(" [rule {x}]")).unwrap_or_default();
        match (&e.connector, &e.object) {
            // An error of a whole rule or connector, not of an object.
            (None, None) => format!("error ({}):{}: {}\n", e.stage, rule, e.message),
            (Some(c), None) => format!("error ({}): {c}{}: {}\n", e.stage, rule, e.message),
            _ => format!("error ({}): {} {}{}: {}\n", e.stage, e.connector.as_deref().unwrap_or("-"), objects, rule, e.message),
        }
    }));
    s.push_str(&format!(
        "{} in {:.2} s{}\n",
        r.profile,
        r.duration_ms as f64 / 1000.0,
        if r.errors.is_empty() { String::new() } else { format!(", {} errors", r.errors.len()) }
    ));
    s
}

/// What makes two errors the same: stage, connector, rule and message.
type ErrorKey<'a> = (Stage, Option<&'a str>, Option<&'a str>, &'a str);

/// Errors a line per distinct error (stage, connector, rule and message): the object it
/// happened to, or how many and a few of them. At most 25 lines; `more` says where the rest are.
pub(crate) fn errors(all: &[ObjectError], more: &str, line: impl Fn(&ObjectError, &str) -> String) -> String {
    let mut groups: Vec<(&ObjectError, Vec<&str>)> = Vec::new();
    let mut index: HashMap<ErrorKey, usize> = HashMap::new();
    for e in all {
        let key = (e.stage, e.connector.as_deref(), e.rule.as_deref(), e.message.as_str());
        let object = e.object.as_deref().unwrap_or("-");
        match index.get(&key) {
            Some(&i) => groups[i].1.push(object),
            None => {
                index.insert(key, groups.len());
                groups.push((e, vec![object]));
            }
        }
    }
    let mut out = String::new();
    for (e, objects) in groups.iter().take(25) {
        let who = match objects.len() {
            1 => objects[0].to_string(),
            n if n <= 3 => format!("{n} objects ({})", objects.join("; ")),
            n => format!("{n} objects ({}; ...)", objects[..3].join("; ")),
        };
        out.push_str(&line(e, &who));
    }
    if groups.len() > 25 {
        let rest: usize = groups[25..].iter().map(|(_, o)| o.len()).sum();
        out.push_str(&format!("... and {rest} more errors ({more})\n"));
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
            let join = |v: &[idflow_engine::PlanValue]| v.iter().map(|x| x.display()).collect::<Vec<_>>().join(", ");
            for a in &ch.attributes {
                if a.old.is_empty() {
                    out.push_str(&format!("      {} = {}\n", a.name, join(&a.new)));
                } else {
                    out.push_str(&format!("      {}: {} => {}\n", a.name, join(&a.old), join(&a.new)));
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

/// Recent runs as a person reads them: outcome, duration, what each stage did, and why a run failed.
pub(crate) fn history(runs: &[idflow_store::RunRow]) -> String {
    use serde_json::Value as J;
    let n = |v: &J, k: &str| v[k].as_u64().unwrap_or(0);
    let sum = |list: &J, k: &str| list.as_array().map(|a| a.iter().map(|x| n(x, k)).sum::<u64>()).unwrap_or(0);
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs yet.\n");
    }
    for r in runs {
        let s = r.summary.clone().unwrap_or(J::Null);
        let took = s["duration_ms"].as_f64().map(|ms| format!("{:.1} s", ms / 1000.0)).unwrap_or_else(|| "-".into());
        out.push_str(&format!("#{:<5} {:<12} {:<11} {}  {}\n", r.id, r.profile, r.status, r.started, took));
        let mut parts = Vec::new();
        // (stage, counts summed over its connectors, counts it has once)
        let stages: [(&str, &[&str], &[&str]); 3] = [
            ("import", &["read", "added", "updated", "deleted"], &[]),
            ("sync", &[], &["projected", "joined", "provisioned", "deprovisioned"]),
            ("export", &["added", "updated", "deleted", "failed"], &[]),
        ];
        for (stage, summed, single) in stages {
            let v = &s[stage];
            let counts: Vec<String> = if v.as_array().is_some_and(|a| !a.is_empty()) {
                summed.iter().map(|k| format!("{} {k}", sum(v, k))).collect()
            } else if v.is_object() {
                single.iter().map(|k| format!("{} {k}", n(v, k))).collect()
            } else {
                continue;
            };
            if !counts.is_empty() {
                parts.push(format!("{stage} {}", counts.join(", ")));
            }
        }
        if s["password_hash_sync"].is_object() {
            let p = &s["password_hash_sync"];
            parts.push(format!("password hashes {} delivered, {} failed", n(p, "delivered"), n(p, "failed")));
        }
        if let Some(e) = s["errors"].as_array().filter(|e| !e.is_empty()) {
            parts.push(format!("{} object errors", e.len()));
        }
        if !parts.is_empty() {
            out.push_str(&format!("       {}\n", parts.join("; ")));
        }
        if let Some(f) = s["failure"].as_str() {
            out.push_str(&format!("       failed: {}\n", f.lines().map(str::trim).collect::<Vec<_>>().join("\n         ")));
        }
        if r.status == "interrupted" {
            out.push_str("       interrupted: the process ended mid-run (killed or crashed); what it had not committed was rolled back\n");
        } else if r.status == "running" {
            out.push_str("       still running (or holding the run lock)\n");
        }
    }
    out
}

/// The error report: how many errors each category holds, then the errors by category.
pub(crate) fn error_report(r: &idflow_engine::ErrorReport) -> String {
    let mut out = String::new();
    let total: usize = r.by_category.values().sum::<usize>() + r.connector_errors;
    if total == 0 {
        out.push_str("No object is in error.\n");
        return out;
    }
    let counts: Vec<String> = idflow_core::Category::ALL
        .iter()
        .filter_map(|c| r.by_category.get(c.as_str()).filter(|n| **n > 0).map(|n| format!("{} {n}", c.title())))
        .collect();
    let mut head = format!("{total} errors: {}", counts.join(", "));
    if r.connector_errors > 0 {
        head.push_str(&format!("{}{} of a whole connector", if counts.is_empty() { "" } else { "; " }, r.connector_errors));
    }
    out.push_str(&format!("{head}\n"));
    if r.errors.len() != total {
        out.push_str(&format!("{} match the filter.\n", r.errors.len()));
    }
    for c in idflow_core::Category::ALL {
        let these: Vec<_> = r.errors.iter().filter(|e| e.error.category == c).collect();
        if these.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{} ({})\n", c.title(), these.len()));
        for e in these {
            let e = &e.error;
            let mut about = vec![e.stage.to_string()];
            about.extend(e.connector.clone());
            about.extend(e.rule.as_ref().map(|r| format!("rule {r}")));
            about.extend(e.attribute.as_ref().map(|a| format!("attribute {a}")));
            out.push_str(&format!("  {} [{}]\n    {}\n", e.object.as_deref().unwrap_or("(the connector)"), about.join(", "), e.message));
            if let Some(c) = &e.conflict {
                out.push_str(&format!("    conflicts with {c}\n"));
            }
        }
    }
    out
}

/// Open alerts, then the history of raises and resolves.
pub(crate) fn alerts(open: &[idflow_store::AlertRow], history: &[idflow_store::AlertRow]) -> String {
    let mut out = String::new();
    if open.is_empty() {
        out.push_str("No alert is open.\n");
    }
    for a in open {
        out.push_str(&format!("OPEN {:<8} {} since {}\n     {}\n", a.severity, a.kind, a.raised, a.summary));
    }
    if !history.is_empty() {
        out.push_str("\nHistory (newest first):\n");
    }
    for a in history {
        let end = a.resolved.as_deref().map(|r| format!("resolved {r}")).unwrap_or_else(|| "open".into());
        out.push_str(&format!("  #{:<4} {:<8} {:<22} raised {}, {end}\n", a.id, a.severity, a.key, a.raised));
    }
    out
}
