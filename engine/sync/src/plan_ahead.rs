//! A plan's changes made on the read-ahead thread as their objects are decoded (the stage's
//! thread reads them, reads their sources and keeps what is made). Nothing changes in the
//! database while a plan is built, so an object's change is what the preloaded identifiers make
//! of it, and the objects its references point at are named as the plan met them (each named
//! as a lookup of it would name it). What is not known there, the stage looks up.
use crate::ahead::{cs_objects, Decoded};
use crate::diff;
use crate::idents::Preloaded;
use crate::plan::{change_named, look_up, Named, Namer, Names, PlanChange, PlanValue};
use idflow_core::connector::{OpKind, RefForm};
use idflow_core::fast_hash::FastMap;
use idflow_core::Result;
use idflow_policy::RuleSet;
use idflow_store::{CsObject, ReadOps};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What the read-ahead thread made of an object of a plan.
pub(crate) enum Planned {
    /// Nothing to export.
    Unchanged,
    /// A change, as the plan shows it but its sources.
    Change(Box<Made>),
    /// A reference's identifier was not preloaded: the stage plans it.
    Undecided(Box<CsObject>),
}

/// A change planned on the read-ahead thread.
pub(crate) struct Made {
    pub(crate) kind: OpKind,
    /// The object's metaverse object (whose sources the stage reads).
    pub(crate) mv_id: Option<i64>,
    pub(crate) change: PlanChange,
    /// The references not named there: by their place among the change's references.
    pub(crate) holes: Vec<(usize, Named<'static>)>,
}

/// What plans a connector's changes on the read-ahead thread.
pub(crate) struct Planner {
    form: RefForm,
    connector: String,
    idents: Arc<Preloaded>,
    rules: Arc<RuleSet>,
    /// The names of the objects met so far, shared with the stage, which names what is not
    /// known there (and remembers it). Held for one object or one name at a time.
    names: Mutex<Names>,
}

/// An identifier that was not preloaded.
struct NotPreloaded;

impl Planner {
    pub(crate) fn new(connector: &str, form: RefForm, idents: Arc<Preloaded>, rules: Arc<RuleSet>) -> Planner {
        Planner { form, connector: connector.to_string(), idents, rules, names: Mutex::default() }
    }

    fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The objects `ids`, read now and planned (by id) when the result is called.
    pub(crate) fn read(self: &Arc<Self>, c: &dyn ReadOps, ids: &[i64]) -> Result<Decoded<Planned>> {
        let objects = cs_objects(c, ids)?;
        let p = Arc::clone(self);
        Ok(Box::new(move || {
            let mut out = FastMap::default();
            let mut changed = Vec::new();
            for (id, o) in objects()? {
                match diff::change_by(&o, &mut |id| p.idents.get(id).map(|i| i.map(str::to_string)).ok_or(NotPreloaded)) {
                    Ok(Some(ch)) => changed.push((id, o, ch)),
                    Ok(None) => drop(out.insert(id, Planned::Unchanged)),
                    Err(NotPreloaded) => drop(out.insert(id, Planned::Undecided(Box::new(o)))),
                }
            }
            // In id order, as the stage meets them; the chunk's objects are all named before
            // any of its changes is planned (a reference to one later in the chunk is known).
            changed.sort_unstable_by_key(|c| c.0);
            for (_, o, ch) in &changed {
                p.names().seen(o, &ch.display, p.form);
            }
            for (id, o, ch) in changed {
                let (kind, mv_id) = (ch.kind, o.mv_id);
                let mut holes = Vec::new();
                let mut at = 0;
                let Ok(change) = change_named(&o, ch, Some(&p.rules), &mut |n| {
                    at += 1;
                    Ok::<_, std::convert::Infallible>(p.names().known(n).unwrap_or_else(|| {
                        holes.push((at - 1, n.clone().into_owned()));
                        None
                    }))
                });
                out.insert(id, Planned::Change(Box::new(Made { kind, mv_id, change, holes })));
            }
            Ok(out)
        }))
    }

    /// Names the object `n` names, looked up unless known (the names not held while it is).
    pub(crate) fn name(&self, c: &dyn ReadOps, n: &Named<'_>) -> Result<Option<String>> {
        if let Some(known) = self.names().known(n) {
            return Ok(known);
        }
        let found = look_up(c, &self.connector, self.form, n)?;
        self.names().remember(n, found.as_deref());
        Ok(found)
    }

    /// The objects the stage met itself (those undecided here) are named as they are met.
    pub(crate) fn seen(&self, o: &CsObject, name: &str) {
        self.names().seen(o, name, self.form);
    }
}

/// Names the references the read-ahead thread could not (`holes`, by their place among the
/// change's references) with `name`.
pub(crate) fn fill(pc: &mut PlanChange, holes: Vec<(usize, Named<'static>)>, name: &mut Namer<'_, idflow_core::Error>) -> Result<()> {
    let mut holes = holes.into_iter().peekable();
    let mut at = 0;
    for a in &mut pc.attributes {
        for v in a.old.iter_mut().chain(a.new.iter_mut()) {
            let PlanValue::Reference { object, .. } = v else { continue };
            if let Some((_, n)) = holes.next_if(|(i, _)| *i == at) {
                if let Some(found) = name(&n)? {
                    *object = found;
                }
            }
            at += 1;
        }
    }
    debug_assert!(holes.next().is_none(), "a hole past the change's references");
    Ok(())
}
