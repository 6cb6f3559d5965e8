//! Saved plans (Terraform's): `plan --out plan.json` keeps the plan a reviewer signs;
//! `apply --plan plan.json` imports and syncs again, and exports only when what is pending now
//! is exactly that plan. Otherwise it refuses, naming what moved, and keeps nothing: no
//! watermark moves, no target is written.
use crate::engine::{Engine, RunReport};
use crate::plan::{Plan, PlanAttr, PlanChange, PlanValue};
use idflow_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format of a saved plan; a newer idflow refuses an older one it cannot compare.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub idflow_plan: u32,
    pub created: String,
    /// The rules the plan was made with: other rules make other changes.
    pub rules_fingerprint: String,
    pub plan: Plan,
}

impl SavedPlan {
    pub fn new(engine: &Engine, plan: Plan) -> SavedPlan {
        SavedPlan {
            idflow_plan: FORMAT,
            created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            rules_fingerprint: engine.rules.fingerprint.clone(),
            plan,
        }
    }

    /// Writes it owner-only (it holds identity data), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts.open(&tmp).map_err(|e| Error::io(&tmp, "cannot write the plan", e))?;
        // Written as it is read from the plan's changes: a large plan is never whole in memory.
        let written = (|| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            serde_json::to_writer_pretty(&mut w, self).map_err(|e| Error::file(&tmp, format!("cannot write the plan: {e}")))?;
            let f = w.into_inner().map_err(|e| Error::io(&tmp, "cannot write the plan", e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&tmp, "cannot write the plan", e))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "cannot write the plan", e))
    }

    pub fn read(path: &Path) -> Result<SavedPlan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read the plan", e))?;
        let saved: SavedPlan = serde_json::from_str(&text)
            .map_err(|e| Error::at_offset(path, &text, offset_of(&text, e.line(), e.column()), format!("not a plan idflow saved: {e}")))?;
        if saved.idflow_plan != FORMAT {
            return Err(Error::file(
                path,
                format!("a plan of format {}; this idflow reads format {FORMAT}: make it again", saved.idflow_plan),
            ));
        }
        Ok(saved)
    }
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum::<usize>() + column.saturating_sub(1)
}

impl Engine {
    /// Applies exactly the saved plan: import and sync in one transaction, compare what is
    /// pending with the plan, and only when they are the same commit and export.
    pub fn apply_plan(&mut self, saved: &SavedPlan, allow_deletes: Option<usize>) -> Result<RunReport> {
        let names = self.names_or_all(&[])?;
        self.recorded("apply", |e, report| {
            if saved.rules_fingerprint != e.rules.fingerprint && saved.rules_fingerprint != e.rules.legacy_fingerprint {
                return Err(Error::Refused(
                    "the rules changed since the plan was made, so it is not the plan they would apply; nothing was applied. \
                     Run idflow plan --out again and review it"
                        .into(),
                ));
            }
            let tx = e.store.write()?;
            let mut errors = RunReport::default();
            let now = e.plan_in(&tx, &names, &mut errors)?;
            let moved = differences(&saved.plan, &now)?;
            if !moved.is_empty() {
                drop(tx);
                let shown = moved.iter().take(20).map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n");
                let more = if moved.len() > 20 { format!("\n  ... and {} more", moved.len() - 20) } else { String::new() };
                return Err(Error::Refused(format!(
                    "the sources or targets changed since the plan was made; nothing was applied:\n{shown}{more}\n\
                     Run idflow plan --out again and review it"
                )));
            }
            tx.commit()?;
            report.import = errors.import;
            report.sync = errors.sync;
            report.full_sync = errors.full_sync;
            report.notes.extend(errors.notes);
            report.errors.extend(errors.errors);
            e.export_stage(&names, allow_deletes, report)
        })
    }
}

/// What differs between the saved plan and the plan now, one line each. Only the keys are
/// held; each change is read back when it is compared.
fn differences(saved: &Plan, now: &Plan) -> Result<Vec<String>> {
    type Key = (String, (String, String, crate::plan::Identity));
    let index = |p: &Plan| -> Result<BTreeMap<Key, (usize, usize)>> {
        let mut out = BTreeMap::new();
        for (ci, c) in p.connectors.iter().enumerate() {
            for (i, ch) in c.changes.iter().enumerate() {
                out.insert((c.connector.clone(), ch?.key()), (ci, i));
            }
        }
        Ok(out)
    };
    let get = |p: &Plan, (ci, i): (usize, usize)| -> Result<(String, PlanChange)> {
        let c = &p.connectors[ci];
        Ok((c.connector.clone(), c.changes.get(i)?))
    };
    let (was, is) = (index(saved)?, index(now)?);
    let mut out = Vec::new();
    let name = |c: &str, ch: &PlanChange| format!("{c}: {} {} {}", ch.op, ch.object_type, ch.object);
    for (k, &at) in &was {
        let (c, ch) = get(saved, at)?;
        match is.get(k) {
            None => out.push(format!("{}: planned, and no longer pending", name(&c, &ch))),
            Some(&now_at) => {
                let (_, now_ch) = get(now, now_at)?;
                if now_ch.new_dn != ch.new_dn {
                    out.push(format!("{}: planned dn {:?}, now {:?}", name(&c, &ch), ch.new_dn, now_ch.new_dn));
                }
                out.extend(
                    attribute_differences(&ch.attributes, &now_ch.attributes).into_iter().map(|d| format!("{}: {d}", name(&c, &ch))),
                );
            }
        }
    }
    for (k, &at) in &is {
        if !was.contains_key(k) {
            let (c, ch) = get(now, at)?;
            out.push(format!("{}: pending now, and not in the plan", name(&c, &ch)));
        }
    }
    out.sort();
    Ok(out)
}

fn attribute_differences(was: &[PlanAttr], is: &[PlanAttr]) -> Vec<String> {
    let show = |a: Option<&PlanAttr>| match a {
        None => "no change".to_string(),
        Some(a) if a.old.is_empty() => a.new.iter().map(|v| v.display()).collect::<Vec<_>>().join(", "),
        Some(a) => format!(
            "{} => {}",
            a.old.iter().map(|v| v.display()).collect::<Vec<_>>().join(", "),
            a.new.iter().map(|v| v.display()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut names: Vec<&str> = was.iter().chain(is).map(|a| a.name.as_str()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for n in names {
        let (w, i) = (was.iter().find(|a| a.name == n), is.iter().find(|a| a.name == n));
        if w.map(|a| (loose(&a.old), loose(&a.new))) != i.map(|a| (loose(&a.old), loose(&a.new))) {
            out.push(format!("{n} planned {}, now {}", show(w), show(i)));
        }
    }
    out
}

/// Values as a plan compares them: a reference by the object it names (the id of an object
/// still to be created is chosen again by every plan).
fn loose(v: &[PlanValue]) -> Vec<PlanValue> {
    v.iter()
        .map(|x| match x {
            PlanValue::Reference { object, .. } => PlanValue::Reference { reference: None, object: object.clone() },
            other => other.clone(),
        })
        .collect()
}
