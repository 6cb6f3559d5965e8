//! The plan as a reviewer reads it. Identical changes are grouped: one rule change that touches
//! 100,000 users reads as one line per attribute ("userName: upper-cased on 100,000 User"), with
//! a few examples; `--detail` lists every change. Collisions in unique attributes come first.
use idflow_engine::{Plan, PlanAttr, PlanChange, PlanValue};

/// A group of this many changes or fewer is listed in full.
const LIST_UP_TO: usize = 3;
/// Examples shown for a larger group.
const EXAMPLES: usize = 3;

pub(crate) fn plan(plan: &Plan, detail: bool) -> String {
    let mut out = String::new();
    for c in &plan.collisions {
        out.push_str(&format!(
            "collision: {} {} {:?} would be held by {} objects: {} (the target keeps it unique: export fails for all but one)\n",
            c.connector,
            c.attribute,
            c.value,
            c.objects.len(),
            c.objects.join("; ")
        ));
    }
    let mut summarized = false;
    for cp in &plan.connectors {
        out.push_str(&format!(
            "connector {}: {} to add, {} to update, {} to delete\n",
            cp.connector,
            count(cp.totals.add),
            count(cp.totals.update),
            count(cp.totals.delete)
        ));
        for group in groups(&cp.changes) {
            if detail || group.len() <= LIST_UP_TO {
                for ch in &group {
                    out.push_str(&change(ch));
                }
            } else {
                summarized = true;
                out.push_str(&summary(&group));
            }
        }
    }
    out.push_str(&crate::render::errors(&plan.errors, "--json lists them all", |e, objects| {
        format!(
            "error: {} {}{}: {}\n",
            e.connector.as_deref().unwrap_or("-"),
            objects,
            e.rule.as_deref().map(|r| format!(" (rule {r})")).unwrap_or_default(),
            e.message
        )
    }));
    if plan.staging_mode {
        out.push_str("staging mode: these changes are held; export is off\n");
    }
    if plan.in_error > 0 {
        out.push_str(&format!(
            "{} objects are in error: the targets do not match the rules for them; every run retries them until they are fixed.\n",
            count(plan.in_error)
        ));
    }
    if plan.is_empty() && plan.in_error == 0 {
        out.push_str("No changes: the targets match the rules.\n");
    } else if plan.is_empty() {
        out.push_str("No changes to export.\n");
    } else {
        out.push_str(&format!(
            "Plan: {} to add, {} to update, {} to delete.{}\n",
            count(plan.totals.add),
            count(plan.totals.update),
            count(plan.totals.delete),
            if summarized { " (--detail lists every change)" } else { "" }
        ));
    }
    out
}

/// Changes that read alike: the same operation on the same type, touching the same attributes.
fn groups(changes: &[PlanChange]) -> Vec<Vec<&PlanChange>> {
    let mut out: Vec<Vec<&PlanChange>> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str, Vec<&str>, bool), usize> = std::collections::HashMap::new();
    for ch in changes {
        // Adds and deletes of a type read alike; updates when they touch the same attributes.
        let attrs: Vec<&str> = if ch.op == "update" { ch.attributes.iter().map(|a| a.name.as_str()).collect() } else { Vec::new() };
        let key = (ch.op.as_str(), ch.object_type.as_str(), attrs, ch.new_dn.is_some());
        match index.get(&key) {
            Some(&i) => out[i].push(ch),
            None => {
                index.insert(key, out.len());
                out.push(vec![ch]);
            }
        }
    }
    out
}

fn sign(op: &str) -> char {
    match op {
        "add" => '+',
        "update" => '~',
        _ => '-',
    }
}

/// 100000 as 100,000.
pub(crate) fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Values for a summary line: a long list is cut to its first few.
fn short(v: &[PlanValue]) -> String {
    if v.len() <= 3 {
        return list(v);
    }
    format!("[{}, ... ({} values)]", v[..3].iter().map(|x| x.display()).collect::<Vec<_>>().join(", "), v.len())
}

fn list(v: &[PlanValue]) -> String {
    match v.len() {
        0 => "(none)".into(),
        1 => v[0].display(),
        _ => format!("[{}]", v.iter().map(|x| x.display()).collect::<Vec<_>>().join(", ")),
    }
}

/// One change in full.
fn change(ch: &PlanChange) -> String {
    let mut out = format!("  {} {} {}\n", sign(&ch.op), ch.object_type, ch.object);
    if let Some(d) = &ch.new_dn {
        out.push_str(&format!("      dn: {d}\n"));
    }
    let width = ch.attributes.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for a in &ch.attributes {
        if ch.op == "add" && a.new.len() > 1 {
            out.push_str(&format!("      {:width$} = ({} values)\n", a.name, a.new.len()));
            for v in &a.new {
                out.push_str(&format!("          {}\n", v.display()));
            }
        } else if ch.op == "add" {
            out.push_str(&format!("      {:width$} = {}\n", a.name, list(&a.new)));
        } else if a.old.len() <= 1 && a.new.len() <= 1 {
            out.push_str(&format!("      {:width$} : {} => {}\n", a.name, list(&a.old), list(&a.new)));
        } else {
            let added: Vec<&PlanValue> = a.new.iter().filter(|v| !a.old.contains(v)).collect();
            let removed: Vec<&PlanValue> = a.old.iter().filter(|v| !a.new.contains(v)).collect();
            out.push_str(&format!("      {:width$} : +{} -{}\n", a.name, added.len(), removed.len()));
            for v in added {
                out.push_str(&format!("          + {}\n", v.display()));
            }
            for v in removed {
                out.push_str(&format!("          - {}\n", v.display()));
            }
        }
    }
    out
}

/// A large group: what its changes have in common, attribute by attribute, and a few of them.
fn summary(group: &[&PlanChange]) -> String {
    let first = group[0];
    let n = count(group.len());
    let verb = match first.op.as_str() {
        "add" => "to add",
        "update" => "to update",
        _ => "to delete",
    };
    let mut out = format!("  {} {n} {} objects {verb}\n", sign(&first.op), first.object_type);
    // Every attribute the group touches, in the order they first appear, with the changes that touch it.
    let mut by_name: Vec<(&str, Vec<&PlanAttr>)> = Vec::new();
    for c in group {
        for a in &c.attributes {
            match by_name.iter_mut().find(|(name, _)| *name == a.name) {
                Some((_, v)) => v.push(a),
                None => by_name.push((&a.name, vec![a])),
            }
        }
    }
    let width = by_name.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, all) in &by_name {
        let on = if all.len() == group.len() { format!("all {n}") } else { format!("{} of {n}", count(all.len())) };
        out.push_str(&format!("      {name:width$} : {}\n", common(&first.op, all, &on)));
    }
    if first.new_dn.is_some() {
        out.push_str(&format!("      {:width$} : renamed on {n}\n", "dn"));
    }
    let examples: Vec<&str> = group.iter().take(EXAMPLES).map(|c| c.object.as_str()).collect();
    out.push_str(&format!("      for example: {}\n", examples.join("; ")));
    out
}

/// What one attribute's changes have in common across a group.
fn common(op: &str, all: &[&PlanAttr], on: &str) -> String {
    let single = |v: &[PlanValue]| match v {
        [PlanValue::Text(s)] => Some(s.clone()),
        _ => None,
    };
    let same = all.windows(2).all(|w| w[0].old == w[1].old && w[0].new == w[1].new);
    let a0 = all[0];
    if same {
        return match op {
            "add" => format!("{} on {on}", list(&a0.new)),
            _ => format!("{} => {} on {on}", list(&a0.old), list(&a0.new)),
        };
    }
    // A few distinct values: how many get each.
    let mut distinct: Vec<(&PlanAttr, usize)> = Vec::new();
    for a in all {
        match distinct.iter().position(|(d, _)| d.old == a.old && d.new == a.new) {
            Some(i) => distinct[i].1 += 1,
            None => {
                distinct.push((a, 1));
                if distinct.len() > 3 {
                    break;
                }
            }
        }
    }
    if distinct.len() <= 3 {
        let parts: Vec<String> = distinct
            .iter()
            .map(|(a, k)| match op {
                "add" => format!("{} on {}", short(&a.new), count(*k)),
                _ => format!("{} => {} on {}", short(&a.old), short(&a.new), count(*k)),
            })
            .collect();
        return format!("{} (of {on})", parts.join(", "));
    }
    if op == "add" {
        return format!("set on {on} (values differ; e.g. {})", short(&a0.new));
    }
    let pairs: Option<Vec<(String, String)>> = all.iter().map(|a| Some((single(&a.old)?, single(&a.new)?))).collect();
    if let Some(p) = pairs {
        let example = format!("e.g. {:?} => {:?}", p[0].0, p[0].1);
        for (how, f) in [
            ("upper-cased", (|s: &str| s.to_uppercase()) as fn(&str) -> String),
            ("lower-cased", |s: &str| s.to_lowercase()),
            ("trimmed", |s: &str| s.trim().to_string()),
        ] {
            if p.iter().all(|(o, new)| f(o) == *new) {
                return format!("{how} on {on} ({example})");
            }
        }
        return format!("changed on {on}, values differ ({example})");
    }
    if all.iter().all(|a| a.old.is_empty()) {
        return format!("set on {on} (values differ; e.g. {})", short(&a0.new));
    }
    if all.iter().all(|a| a.new.is_empty()) {
        return format!("removed on {on}");
    }
    // Multi-valued: what every change adds and removes alike.
    let added: Vec<&PlanValue> = a0.new.iter().filter(|v| !a0.old.contains(v)).collect();
    let removed: Vec<&PlanValue> = a0.old.iter().filter(|v| !a0.new.contains(v)).collect();
    let alike = all.iter().all(|a| {
        let add: Vec<&PlanValue> = a.new.iter().filter(|v| !a.old.contains(v)).collect();
        let del: Vec<&PlanValue> = a.old.iter().filter(|v| !a.new.contains(v)).collect();
        add == added && del == removed
    });
    if alike {
        let mut parts: Vec<String> = added.iter().map(|v| format!("+ {}", v.display())).collect();
        parts.extend(removed.iter().map(|v| format!("- {}", v.display())));
        return format!("{} on {on}", parts.join(", "));
    }
    format!("changed on {on}, values differ")
}
