//! Values that would collide in a target's unique attributes (two people getting the same
//! userName, two objects the same DN), found in a plan before anything is written: the target
//! would refuse one of them, or worse, merge them.
use idflow_core::{dn, Result, Value};
use idflow_store::{ExportState, Link, ReadOps};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The attributes each target keeps unique (compared ignoring case).
#[derive(Debug, Clone, Default)]
pub(crate) struct Unique(pub BTreeMap<String, Vec<String>>);

/// One value two objects or more would hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Collision {
    pub connector: String,
    /// The attribute, or `dn`.
    pub attribute: String,
    pub value: String,
    /// The objects that would hold it, those this plan changes first.
    pub objects: Vec<String>,
}

/// (attribute, value as compared) to the value as written and its holders: object id, and
/// whether this plan changes it.
type Held = (String, Vec<(i64, bool)>);

/// What every object of `connector` will hold once the plan is exported, checked for values
/// held twice. Only collisions an object of this plan takes part in are reported.
pub(crate) fn find(c: &dyn ReadOps, connector: &str, unique: &Unique) -> Result<Vec<Collision>> {
    let attrs = unique.0.get(connector).cloned().unwrap_or_default();
    if attrs.is_empty() && !c.cs_has_pending_dn(connector)? {
        return Ok(Vec::new());
    }
    let mut held: HashMap<(String, String), Held> = HashMap::new();
    for o in c.cs_of_connector(connector)? {
        let changing = o.pending_export && o.export_state == Some(ExportState::Present);
        let exists_after = match o.export_state {
            Some(ExportState::Delete) if o.pending_export => false,
            Some(ExportState::Present) => true,
            _ => o.present,
        };
        if !exists_after {
            continue;
        }
        for a in &attrs {
            let wanted = if changing { o.desired.as_ref().and_then(|d| d.get(a)) } else { None };
            for v in wanted.or_else(|| o.attrs.get(a)).into_iter().flatten() {
                if let Value::Str(s) = v {
                    let e = held.entry((a.clone(), s.to_lowercase())).or_insert_with(|| (s.clone(), Vec::new()));
                    e.1.push((o.id, changing));
                }
            }
        }
        let d = if changing { o.desired_dn.as_ref().or(o.dn.as_ref()) } else { o.dn.as_ref() };
        if let Some(d) = d {
            let e = held.entry(("dn".into(), dn::norm(d))).or_insert_with(|| (d.clone(), Vec::new()));
            e.1.push((o.id, changing));
        }
    }
    let mut out = Vec::new();
    for ((attribute, _), (value, mut holders)) in held {
        if holders.len() < 2 || !holders.iter().any(|(_, changing)| *changing) {
            continue;
        }
        holders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let objects = holders.iter().map(|(id, _)| describe(c, *id)).collect::<Result<Vec<_>>>()?;
        out.push(Collision { connector: connector.to_string(), attribute, value, objects });
    }
    out.sort_by(|a, b| a.attribute.cmp(&b.attribute).then(a.value.cmp(&b.value)));
    Ok(out)
}

/// A target object as a reader tells it apart from one with the same value: its name and the
/// source objects behind it.
fn describe(c: &dyn ReadOps, id: i64) -> Result<String> {
    let Some(o) = c.cs_get(id)? else { return Ok(format!("#{id}")) };
    let mut sources = Vec::new();
    if let Some(m) = o.mv_id {
        for s in c.cs_all_linked(m)? {
            if matches!(s.link, Some(Link::Joined | Link::Projected)) {
                sources.push(format!("{} {}", s.connector, s.dn.clone().or(s.anchor.clone()).unwrap_or_default()));
            }
        }
    }
    Ok(match (o.present, sources.is_empty()) {
        (true, true) => format!("{} (in the target)", o.display()),
        (true, false) => format!("{} (in the target, from {})", o.display(), sources.join(", ")),
        (false, true) => format!("{} (to be created)", o.display()),
        (false, false) => format!("{} (to be created, from {})", o.display(), sources.join(", ")),
    })
}
