//! The plan as a reviewer reads it. Identical changes are grouped: one rule change that touches
//! 100,000 users reads as one line per attribute ("userName: upper-cased on 100,000 User"), with
//! a few examples; `--detail` lists every change. Collisions in unique attributes come first.
use idflow_core::Result;
use idflow_engine::{Changes, Plan, PlanAttr, PlanChange, PlanValue};

/// A group of this many changes or fewer is listed in full.
const LIST_UP_TO: usize = 3;
/// Examples shown for a larger group.
const EXAMPLES: usize = 3;

pub(crate) fn plan(plan: &Plan, detail: bool) -> Result<String> {
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
        for group in groups(&cp.changes, detail)? {
            if detail {
                for &i in &group.members {
                    out.push_str(&change(&cp.changes.get(i as usize)?));
                }
            } else if group.n <= LIST_UP_TO {
                for ch in &group.first {
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
    Ok(out)
}

/// Changes that read alike, gathered in one pass over the plan (its changes are read one at a
/// time, so a million-change plan is never whole in memory): the first few changes, what each
/// attribute's changes have in common, and, for `--detail`, where every member is.
struct Group {
    op: String,
    object_type: String,
    renamed: bool,
    n: usize,
    first: Vec<PlanChange>,
    members: Vec<u32>,
    attrs: Vec<(String, Common)>,
}

/// Changes that read alike: the same operation on the same type, touching the same attributes.
fn groups(changes: &Changes, detail: bool) -> Result<Vec<Group>> {
    let mut out: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<(String, String, Vec<String>, bool), usize> = std::collections::HashMap::new();
    for (i, ch) in changes.iter().enumerate() {
        let ch = ch?;
        // Adds and deletes of a type read alike; updates when they touch the same attributes.
        let attrs: Vec<String> = if ch.op == "update" { ch.attributes.iter().map(|a| a.name.clone()).collect() } else { Vec::new() };
        let key = (ch.op.clone(), ch.object_type.clone(), attrs, ch.new_dn.is_some());
        let g = match index.get(&key) {
            Some(&g) => &mut out[g],
            None => {
                index.insert(key, out.len());
                out.push(Group {
                    op: ch.op.clone(),
                    object_type: ch.object_type.clone(),
                    renamed: ch.new_dn.is_some(),
                    n: 0,
                    first: Vec::new(),
                    members: Vec::new(),
                    attrs: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        g.n += 1;
        if detail {
            g.members.push(i as u32);
        }
        for a in &ch.attributes {
            match g.attrs.iter_mut().find(|(name, _)| *name == a.name) {
                Some((_, c)) => c.add(a),
                None => g.attrs.push((a.name.clone(), Common::new(a))),
            }
        }
        if g.first.len() < LIST_UP_TO.max(EXAMPLES) {
            g.first.push(ch);
        }
    }
    Ok(out)
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
fn summary(group: &Group) -> String {
    let n = count(group.n);
    let verb = match group.op.as_str() {
        "add" => "to add",
        "update" => "to update",
        _ => "to delete",
    };
    let mut out = format!("  {} {n} {} objects {verb}\n", sign(&group.op), group.object_type);
    // Every attribute the group touches, in the order they first appear.
    let width = group.attrs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, c) in &group.attrs {
        let on = if c.n == group.n { format!("all {n}") } else { format!("{} of {n}", count(c.n)) };
        out.push_str(&format!("      {name:width$} : {}\n", c.describe(&group.op, &on)));
    }
    if group.renamed {
        out.push_str(&format!("      {:width$} : renamed on {n}\n", "dn"));
    }
    let examples: Vec<&str> = group.first.iter().take(EXAMPLES).map(|c| c.object.as_str()).collect();
    out.push_str(&format!("      for example: {}\n", examples.join("; ")));
    out
}

/// What one attribute's changes have in common across a group, gathered change by change.
struct Common {
    n: usize,
    /// The first change of the attribute, and the values it adds and removes.
    a0: PlanAttr,
    added: Vec<PlanValue>,
    removed: Vec<PlanValue>,
    /// The distinct changes and how many make each, while there are at most 3 (a fourth ends
    /// it); one means every change is the first one's.
    distinct: Vec<(Vec<PlanValue>, Vec<PlanValue>, usize)>,
    /// Every change is one text to one text, and which of these turns the old into the new.
    single: bool,
    upper: bool,
    lower: bool,
    trimmed: bool,
    all_old_empty: bool,
    all_new_empty: bool,
    /// Every change adds and removes what the first does.
    alike: bool,
}

fn one_text(v: &[PlanValue]) -> Option<&str> {
    match v {
        [PlanValue::Text(s)] => Some(s),
        _ => None,
    }
}

fn added_removed(a: &PlanAttr) -> (Vec<PlanValue>, Vec<PlanValue>) {
    (a.new.iter().filter(|v| !a.old.contains(v)).cloned().collect(), a.old.iter().filter(|v| !a.new.contains(v)).cloned().collect())
}

impl Common {
    fn new(a: &PlanAttr) -> Common {
        let (added, removed) = added_removed(a);
        let mut c = Common {
            n: 0,
            a0: a.clone(),
            added,
            removed,
            distinct: Vec::new(),
            single: true,
            upper: true,
            lower: true,
            trimmed: true,
            all_old_empty: true,
            all_new_empty: true,
            alike: true,
        };
        c.add(a);
        c
    }

    fn add(&mut self, a: &PlanAttr) {
        self.n += 1;
        if self.distinct.len() <= 3 {
            match self.distinct.iter_mut().find(|(old, new, _)| *old == a.old && *new == a.new) {
                Some(d) => d.2 += 1,
                None => self.distinct.push((a.old.clone(), a.new.clone(), 1)),
            }
        }
        match (one_text(&a.old), one_text(&a.new)) {
            (Some(o), Some(n)) if self.single => {
                self.upper &= o.to_uppercase() == n;
                self.lower &= o.to_lowercase() == n;
                self.trimmed &= o.trim() == n;
            }
            _ => self.single = false,
        }
        self.all_old_empty &= a.old.is_empty();
        self.all_new_empty &= a.new.is_empty();
        if self.alike {
            let (add, del) = added_removed(a);
            self.alike = add == self.added && del == self.removed;
        }
    }

    fn describe(&self, op: &str, on: &str) -> String {
        let a0 = &self.a0;
        if self.distinct.len() == 1 {
            return match op {
                "add" => format!("{} on {on}", list(&a0.new)),
                _ => format!("{} => {} on {on}", list(&a0.old), list(&a0.new)),
            };
        }
        // A few distinct values: how many get each.
        if self.distinct.len() <= 3 {
            let parts: Vec<String> = self
                .distinct
                .iter()
                .map(|(old, new, k)| match op {
                    "add" => format!("{} on {}", short(new), count(*k)),
                    _ => format!("{} => {} on {}", short(old), short(new), count(*k)),
                })
                .collect();
            return format!("{} (of {on})", parts.join(", "));
        }
        if op == "add" {
            return format!("set on {on} (values differ; e.g. {})", short(&a0.new));
        }
        if let (true, Some(o), Some(n)) = (self.single, one_text(&a0.old), one_text(&a0.new)) {
            let example = format!("e.g. {o:?} => {n:?}");
            for (how, yes) in [("upper-cased", self.upper), ("lower-cased", self.lower), ("trimmed", self.trimmed)] {
                if yes {
                    return format!("{how} on {on} ({example})");
                }
            }
            return format!("changed on {on}, values differ ({example})");
        }
        if self.all_old_empty {
            return format!("set on {on} (values differ; e.g. {})", short(&a0.new));
        }
        if self.all_new_empty {
            return format!("removed on {on}");
        }
        // Multi-valued: what every change adds and removes alike.
        if self.alike {
            let mut parts: Vec<String> = self.added.iter().map(|v| format!("+ {}", v.display())).collect();
            parts.extend(self.removed.iter().map(|v| format!("- {}", v.display())));
            return format!("{} on {on}", parts.join(", "));
        }
        format!("changed on {on}, values differ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<PlanValue> {
        if s.is_empty() {
            return Vec::new();
        }
        s.split('|').map(|v| PlanValue::Text(v.to_string())).collect()
    }

    /// What a group of updates of one attribute reads as, each change given as (old, new).
    fn summarized(changes: &[(&str, &str)]) -> String {
        let attr = |(old, new): &(&str, &str)| PlanAttr { name: "title".into(), old: t(old), new: t(new), rule: None };
        let mut c = Common::new(&attr(&changes[0]));
        for ch in &changes[1..] {
            c.add(&attr(ch));
        }
        c.describe("update", "all")
    }

    #[test]
    fn a_group_reads_as_what_its_changes_have_in_common() {
        assert_eq!(summarized(&[("a", "b"); 5]), "\"a\" => \"b\" on all");
        assert_eq!(summarized(&[("a", "b"), ("a", "b"), ("c", "d"), ("a", "b")]), "\"a\" => \"b\" on 3, \"c\" => \"d\" on 1 (of all)");
        assert_eq!(summarized(&[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]), "upper-cased on all (e.g. \"a\" => \"A\")");
        assert_eq!(summarized(&[("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")]), "lower-cased on all (e.g. \"A\" => \"a\")");
        assert_eq!(summarized(&[(" a", "a"), ("b ", "b"), ("c", "c"), ("d", "d")]), "trimmed on all (e.g. \" a\" => \"a\")");
        assert_eq!(summarized(&[("a", "x"), ("b", "y"), ("c", "z"), ("d", "w")]), "changed on all, values differ (e.g. \"a\" => \"x\")");
        assert_eq!(summarized(&[("", "x"), ("", "y"), ("", "z"), ("", "w")]), "set on all (values differ; e.g. \"x\")");
        assert_eq!(summarized(&[("x", ""), ("y", ""), ("z", ""), ("w|v", "")]), "removed on all");
        assert_eq!(summarized(&[("a|b", "a|b|m"), ("c", "c|m"), ("d|e", "d|e|m"), ("f", "f|m")]), "+ \"m\" on all");
        assert_eq!(summarized(&[("a|b", "a|m"), ("c", "c|m"), ("d|e", "d|e|m"), ("f", "f|m")]), "changed on all, values differ");
    }
}
