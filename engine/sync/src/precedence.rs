//! Precedence: each rule's contribution to each metaverse attribute is kept; the one with the
//! lowest precedence number wins (ties: rule name, then connector-space object). A flow that
//! yields `()` removes that rule's contribution, and the next one wins.
use idflow_core::fast_hash::FastMap;
use idflow_core::{Result, Value};
use idflow_store::{Contribution, MvAttr, MvObject, Winners, WriteOps};
use std::collections::{BTreeMap, BTreeSet};

/// `(attribute, rule)` to `(precedence, values)`: what one connector-space object contributes now.
pub(crate) type Contributions = BTreeMap<(String, String), (i64, Vec<Value>)>;

/// Replaces what `cs_id` contributes to `mv_obj` by `new`, and recomputes the touched winners.
/// Returns the attributes whose winning values changed. (`new` is taken: its values move into
/// the stored contributions.)
pub(crate) fn apply(tx: &dyn WriteOps, mv_obj: &mut MvObject, cs_id: i64, new: Contributions) -> Result<Vec<String>> {
    let stored = tx.mv_contributions(mv_obj.id)?;
    apply_to(tx, mv_obj, stored, cs_id, new)
}

/// [`apply`] where every contribution to the object, as stored, was read with it (`stored`).
pub(crate) fn apply_to(
    tx: &dyn WriteOps,
    mv_obj: &mut MvObject,
    stored: Vec<Contribution>,
    cs_id: i64,
    new: Contributions,
) -> Result<Vec<String>> {
    // Every contribution to the object, read once: this object's are the old ones, the
    // others' compete with the new ones for the touched attributes, and are written back
    // with them (the object's row is written once).
    let (old, mut all): (Vec<Contribution>, Vec<Contribution>) = stored.into_iter().partition(|k| k.cs_id == cs_id);
    let touched = touched(&old, &new);
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    all.extend(listed(cs_id, new));
    let touched: Vec<String> = touched.into_iter().collect();
    let (changed, before) = recompute(mv_obj, &touched, &all);
    let winners = (!changed.is_empty()).then_some(Winners { attrs: &mv_obj.attrs, changed: &changed, old: &before });
    tx.mv_save_contributed(mv_obj.id, &all, winners)?;
    Ok(changed)
}

/// The attributes whose contributions from one object differ between `old` (what it
/// contributed) and `new`: one it no longer makes, one it makes now, or other values or
/// precedence. (Looked up by reference: a sync compares every object it reads.)
fn touched(old: &[Contribution], new: &Contributions) -> BTreeSet<String> {
    let old_by: FastMap<(&str, &str), &Contribution> = old.iter().map(|k| ((k.attr.as_str(), k.rule.as_str()), k)).collect();
    let mut touched = BTreeSet::new();
    // A damaged store may hold two contributions of one rule to one attribute: that attribute
    // is touched, so its contributions are written again, once each.
    if old_by.len() < old.len() {
        for k in old {
            if old_by.get(&(k.attr.as_str(), k.rule.as_str())).is_some_and(|kept| !std::ptr::eq(*kept, k)) {
                touched.insert(k.attr.clone());
            }
        }
    }
    let mut met = 0;
    for ((attr, rule), (p, values)) in new {
        match old_by.get(&(attr.as_str(), rule.as_str())) {
            Some(k) => {
                met += 1;
                if k.precedence != *p || &k.values != values {
                    touched.insert(attr.clone());
                }
            }
            None => {
                touched.insert(attr.clone());
            }
        }
    }
    // Some of what it contributed it no longer does (rare: looked for one by one).
    if met < old_by.len() {
        for k in old.iter().filter(|k| !new.keys().any(|(a, r)| *a == k.attr && *r == k.rule)) {
            touched.insert(k.attr.clone());
        }
    }
    touched
}

/// A metaverse object of `object_type` projected by `cs_id`, which contributes `new`: made with
/// its winning attributes in one write, as [`apply`] would make them in an empty object.
/// Returns its id and the attributes it has. (Its values are copied once, into the winners.)
pub(crate) fn project(tx: &dyn WriteOps, object_type: &str, cs_id: i64, new: Contributions) -> Result<(i64, Vec<String>)> {
    let all = listed(cs_id, new);
    let attrs: BTreeMap<String, MvAttr> =
        winners(&all).into_iter().filter(|(_, k)| !k.values.is_empty()).map(|(a, k)| (a.to_string(), won(k))).collect();
    let id = tx.mv_project(object_type, &attrs, &all)?;
    Ok((id, attrs.into_keys().collect()))
}

/// `new` as `cs_id`'s list of contributions (moved, not copied).
fn listed(cs_id: i64, new: Contributions) -> Vec<Contribution> {
    new.into_iter().map(|((attr, rule), (precedence, values))| Contribution { attr, cs_id, rule, precedence, values }).collect()
}

/// Removes every contribution of `cs_id` (it left scope, was disconnected or deleted).
pub(crate) fn remove_all(tx: &dyn WriteOps, mv_obj: &mut MvObject, cs_id: i64) -> Result<Vec<String>> {
    apply(tx, mv_obj, cs_id, Contributions::new())
}

/// The order contributions rank in: precedence, then rule name, then connector-space object.
pub(crate) fn rank(k: &Contribution) -> (i64, &str, i64) {
    (k.precedence, k.rule.as_str(), k.cs_id)
}

/// The winner of each attribute among `contributions`.
pub(crate) fn winners<'a>(contributions: impl IntoIterator<Item = &'a Contribution>) -> FastMap<&'a str, &'a Contribution> {
    let mut won: FastMap<&str, &Contribution> = FastMap::default();
    for k in contributions {
        match won.get(k.attr.as_str()) {
            Some(w) if rank(w) <= rank(k) => {}
            _ => {
                won.insert(k.attr.as_str(), k);
            }
        }
    }
    won
}

/// A winning contribution as the object keeps it.
fn won(k: &Contribution) -> MvAttr {
    MvAttr { values: k.values.clone(), rule: k.rule.clone(), cs: k.cs_id, precedence: k.precedence }
}

/// Recomputes the winners of `attrs` among `contributions` (every contribution to the object,
/// as they stand now) in `mv`. Returns the names that changed, and the values those of them
/// that had a winner before had (their index entries go).
fn recompute(mv: &mut MvObject, attrs: &[String], contributions: &[Contribution]) -> (Vec<String>, Vec<(String, Vec<Value>)>) {
    let mut changed = Vec::new();
    let mut old = Vec::new();
    let won_now = winners(contributions.iter().filter(|k| attrs.contains(&k.attr)));
    for a in attrs {
        let now = won_now.get(a.as_str()).filter(|k| !k.values.is_empty()).map(|k| won(k));
        if mv.attrs.get(a) != now.as_ref() {
            let before = match now {
                Some(w) => mv.attrs.insert(a.clone(), w),
                None => mv.attrs.remove(a),
            };
            if let Some(b) = before {
                old.push((a.clone(), b.values));
            }
            changed.push(a.clone());
        }
    }
    (changed, old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(attr: &str, rule: &str, precedence: i64, cs_id: i64) -> Contribution {
        Contribution { attr: attr.into(), cs_id, rule: rule.into(), precedence, values: vec![Value::from(rule)] }
    }

    fn now(entries: &[(&str, &str, i64, &str)]) -> Contributions {
        entries.iter().map(|(a, r, p, v)| (((*a).to_string(), (*r).to_string()), (*p, vec![Value::from(*v)]))).collect()
    }

    fn with(attr: &str, rule: &str, precedence: i64, value: &str) -> Contribution {
        Contribution { values: vec![Value::from(value)], ..k(attr, rule, precedence, 1) }
    }

    #[test]
    fn what_changed_in_an_objects_contributions_is_touched() {
        let old = [with("mail", "r", 10, "a@x"), with("title", "r", 10, "Boss"), with("cn", "r", 10, "A")];
        let names = |t: BTreeSet<String>| t.into_iter().collect::<Vec<_>>();
        // The same: nothing; other values, another precedence, one gone, one new: each.
        assert!(touched(&old, &now(&[("mail", "r", 10, "a@x"), ("title", "r", 10, "Boss"), ("cn", "r", 10, "A")])).is_empty());
        assert_eq!(
            names(touched(&old, &now(&[("mail", "r", 10, "b@x"), ("title", "r", 5, "Boss"), ("sn", "r", 10, "B")]))),
            ["cn", "mail", "sn", "title"]
        );
        assert_eq!(names(touched(&old, &Contributions::new())), ["cn", "mail", "title"]);
        assert_eq!(names(touched(&[], &now(&[("cn", "r", 10, "A")]))), ["cn"]);
        // Two contributions of one rule to one attribute (a damaged store), whichever matches
        // what it contributes now: touched, so they are written again as one.
        for dup in [[with("cn", "r", 1, "X"), with("cn", "r", 2, "A")], [with("cn", "r", 2, "A"), with("cn", "r", 1, "X")]] {
            assert_eq!(names(touched(&dup, &now(&[("cn", "r", 2, "A")]))), ["cn"]);
        }
    }

    #[test]
    fn lowest_precedence_then_rule_then_object_wins() {
        let all = [
            k("title", "b", 100, 1),
            k("title", "a", 50, 2),
            k("mail", "z", 10, 3),
            k("mail", "y", 10, 4),
            k("cn", "r", 5, 9),
            k("cn", "r", 5, 7),
        ];
        let w = winners(&all);
        assert_eq!(w["title"].rule, "a");
        assert_eq!(w["mail"].rule, "y", "a tie on precedence goes to the rule name");
        assert_eq!(w["cn"].cs_id, 7, "then to the connector-space object");
    }
}
