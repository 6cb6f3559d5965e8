//! Precedence: each rule's contribution to each metaverse attribute is kept; the one with the
//! lowest precedence number wins (ties: rule name, then connector-space object). A flow that
//! yields `()` removes that rule's contribution, and the next one wins.
use crate::error::Result;
use crate::store::mv::{self, Contribution, MvObject};
use crate::value::Value;
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};

/// `(attribute, rule)` to `(precedence, values)`: what one connector-space object contributes now.
pub type Contributions = BTreeMap<(String, String), (i64, Vec<Value>)>;

/// Replaces what `cs_id` contributes to `mv_obj` by `new`, and recomputes the touched winners.
/// Returns the attributes whose winning values changed.
pub fn apply(c: &Connection, mv_obj: &mut MvObject, cs_id: i64, new: &Contributions) -> Result<Vec<String>> {
    let old: Vec<Contribution> =
        mv::contributions_of_cs(c, cs_id)?.into_iter().filter(|(m, _)| *m == mv_obj.id).map(|(_, k)| k).collect();
    let mut touched = BTreeSet::new();
    for k in &old {
        match new.get(&(k.attr.clone(), k.rule.clone())) {
            Some((p, v)) if *p == k.precedence && v == &k.values => {}
            Some(_) => {}
            None => {
                mv::remove_contribution(c, mv_obj.id, &k.attr, cs_id, &k.rule)?;
                touched.insert(k.attr.clone());
            }
        }
    }
    for ((attr, rule), (p, values)) in new {
        let same = old.iter().any(|k| &k.attr == attr && &k.rule == rule && k.precedence == *p && &k.values == values);
        if !same {
            mv::put_contribution(
                c,
                mv_obj.id,
                &Contribution { attr: attr.clone(), cs_id, rule: rule.clone(), precedence: *p, values: values.clone() },
            )?;
            touched.insert(attr.clone());
        }
    }
    let touched: Vec<String> = touched.into_iter().collect();
    mv::recompute(c, mv_obj, &touched)
}

/// Removes every contribution of `cs_id` (it left scope, was disconnected or deleted).
pub fn remove_all(c: &Connection, mv_obj: &mut MvObject, cs_id: i64) -> Result<Vec<String>> {
    apply(c, mv_obj, cs_id, &Contributions::new())
}
