//! `idflow bench`: a generated directory through import, sync, plan and export, then small
//! deltas, with times, rates, peak memory and database size printed. Figures, not assertions.
use crate::generate;
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::{Engine, Mode};
use idflow_store::RunLock;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RULES: &str = r#"
[[rule]]
name = "in-corp-person"
direction = "inbound"
connector = "corp"
source_type = "person"
metaverse_type = "person"
precedence = 100
scope = 'source.mail != ()'
link = "provision"
join = [ { metaverse = "employeeId", expr = "source.employeeNumber" } ]
[rule.flows]
displayName = 'if source.displayName != () { source.displayName } else { source.givenName + " " + source.sn }'
mail = "lower(source.mail)"
employeeId = "source.employeeNumber"
manager = "source.manager"

[[rule]]
name = "in-corp-group"
direction = "inbound"
connector = "corp"
source_type = "group"
metaverse_type = "group"
link = "provision"
[rule.flows]
displayName = "source.cn"
member = 'values(source, "member")'

[[rule]]
name = "out-cloud-user"
direction = "outbound"
connector = "cloud"
metaverse_type = "person"
target_type = "User"
scope = 'mv.mail != ()'
link = "provision"
deprovision = "delete"
[rule.flows]
userName = "mv.mail"
displayName = "mv.displayName"
manager = "mv.manager"

[[rule]]
name = "out-cloud-group"
direction = "outbound"
connector = "cloud"
metaverse_type = "group"
target_type = "Group"
link = "provision"
deprovision = "delete"
[rule.flows]
displayName = "mv.displayName"
members = 'values(mv, "member")'
"#;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The peak since the last call (Linux resets the high-water mark to what is resident now when
/// 5 is written to clear_refs), so each stage shows its own peak; 0 where that is not possible.
fn stage_peak_mib(overall: &mut f64) -> f64 {
    let peak = peak_rss_mib();
    *overall = overall.max(peak);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak
}

fn size_mib(p: &Path) -> f64 {
    let mut total = 0u64;
    for ext in ["", "-wal", "-shm"] {
        let f = format!("{}{ext}", p.display());
        total += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    }
    total as f64 / 1_048_576.0
}

fn line(what: &str, secs: f64, n: usize, peak: f64) {
    println!("{what:<34} {secs:>9.3} s  {n:>9} objects  {:>10.0} objects/s  {peak:>6.0} MiB peak", n as f64 / secs.max(1e-9));
}

/// The initial cycle's stages, as [`initial_cycle`] times them.
const STAGES: [&str; 4] =
    ["full import (corp)", "full sync (inbound + outbound)", "plan (import both, sync, diff)", "export (file target)"];

/// The database and the file target's output removed: the next engine starts empty.
fn wipe(dir: &Path, db: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let _ = std::fs::remove_file(dir.join("out/cloud.json"));
}

/// Full import, full sync, plan and export into an empty database, each line printed as it
/// ends; their times in seconds.
fn initial_cycle(e: &mut Engine, overall: &mut f64) -> Result<[f64; 4]> {
    let mut secs = [0.0; 4];
    let t = Instant::now();
    let r = e.import(&["corp".into()], Mode::Full, false)?;
    secs[0] = t.elapsed().as_secs_f64();
    line(STAGES[0], secs[0], r.import.iter().map(|s| s.read).sum(), stage_peak_mib(overall));

    let t = Instant::now();
    let r = e.sync(true)?;
    secs[1] = t.elapsed().as_secs_f64();
    let s = r.sync.unwrap_or_default();
    line(STAGES[1], secs[1], s.inbound_objects, stage_peak_mib(overall));
    println!("{:<34} {} projected, {} provisioned, {} errors", "", s.projected, s.provisioned, r.errors.len());

    let t = Instant::now();
    let (p, _) = e.plan()?;
    secs[2] = t.elapsed().as_secs_f64();
    let planned = p.totals.add + p.totals.update + p.totals.delete;
    drop(p);
    line(STAGES[2], secs[2], planned, stage_peak_mib(overall));

    let t = Instant::now();
    let r = e.export(&["cloud".into()], None)?;
    secs[3] = t.elapsed().as_secs_f64();
    line(STAGES[3], secs[3], r.export.iter().map(|s| s.added + s.updated).sum(), stage_peak_mib(overall));
    println!("{:<34} {:>9.3} s", "initial cycle (the four above)", secs.iter().sum::<f64>());
    Ok(secs)
}

/// Fastest, median and slowest of `runs` (not empty).
fn spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    let n = runs.len();
    let median = match n % 2 {
        1 => runs[n / 2],
        _ => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
    };
    (runs[0], median, runs[n - 1])
}

/// Each stage's fastest, median and slowest over the runs, and the whole cycle's.
fn print_spread(runs: &[[f64; 4]]) {
    // Padded to the rows' name column (two spaces and 41), whatever the count's digits.
    println!("{:<43} {:>9} {:>9} {:>9}", format!("{} initial cycles:", runs.len()), "fastest", "median", "slowest");
    let cycle = ("initial cycle (the four above)", runs.iter().map(|r| r.iter().sum()).collect::<Vec<f64>>());
    let stages = STAGES.iter().enumerate().map(|(i, s)| (*s, runs.iter().map(|r| r[i]).collect::<Vec<f64>>()));
    for (what, times) in stages.chain([cycle]) {
        let (lo, mid, hi) = spread(times);
        println!("  {what:<41} {lo:>7.3} s {mid:>7.3} s {hi:>7.3} s");
    }
}

pub(crate) fn run(registry: Arc<Registry>, people: usize, groups: usize, dir: &Path, deltas: &[f64], repeat: usize) -> Result<()> {
    let w = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| Error::io(p, "", e));
    let db = dir.join("state/idflow.db");
    // Held before anything in the folder is removed or written, and to the end: a second bench
    // in the same folder is refused before it touches this one's files.
    let lock = RunLock::take_for_this_run(&db)?;
    wipe(dir, &db);
    let _ = std::fs::remove_file(dir.join("delta.ldif"));
    std::fs::create_dir_all(dir.join("rules")).map_err(|e| Error::io(dir, "", e))?;
    w(
        &dir.join("idflow.toml"),
        "[metaverse]\npath = \"state/idflow.db\"\n[rules]\npaths = [\"rules\"]\n[export]\ndeletion_threshold = 500\n\n\
         [[connector]]\nname = \"corp\"\ntype = \"ldif\"\npath = \"corp.ldif\"\ndelta_path = \"delta.ldif\"\nanchor = \"entryUUID\"\n\
         reference_attributes = [\"member\", \"manager\"]\n[connector.object_types]\nperson = \"(objectClass=inetOrgPerson)\"\n\
         group = \"(objectClass=groupOfNames)\"\n\n[[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n",
    )?;
    w(&dir.join("rules/bench.toml"), RULES)?;
    let t = Instant::now();
    let corp = dir.join("corp.ldif");
    let mut f = std::fs::File::create(&corp).map_err(|e| Error::io(&corp, "", e))?;
    let size = generate::generate(people, groups, 42, &mut f).map_err(|e| Error::io(&corp, "", e))?;
    drop(f);
    println!(
        "idflow bench: {people} people, {groups} groups ({:.1} MiB of LDIF, generated in {:.2} s)",
        size as f64 / 1_048_576.0,
        t.elapsed().as_secs_f64()
    );
    let mut overall = 0.0;
    stage_peak_mib(&mut overall);
    let mut runs = Vec::with_capacity(repeat);
    let mut e = Engine::open_held(&dir.join("idflow.toml"), registry.clone(), &lock)?;
    for run in 1..=repeat {
        if run > 1 {
            // The last run's copy of its write-ahead log done (it would run into this one's
            // time), then closed before its files go: the next run opens an empty database.
            e.store.settle();
            drop(e);
            wipe(dir, &db);
            e = Engine::open_held(&dir.join("idflow.toml"), registry.clone(), &lock)?;
        }
        if repeat > 1 {
            println!("initial cycle, run {run} of {repeat}:");
        }
        runs.push(initial_cycle(&mut e, &mut overall)?);
    }
    if repeat > 1 {
        print_spread(&runs);
    }
    // The write-ahead log is copied into the database while the next stage runs: measured
    // once the copy is done, not both at once.
    e.store.settle();
    println!("{:<34} {:.1} MiB database, {:.0} MiB peak memory", "after initial sync", size_mib(&db), overall.max(peak_rss_mib()));

    // A scheduled full sync of a directory that is in step: everything read, nothing to change.
    let t = Instant::now();
    let r = e.sync(true)?;
    let s = r.sync.unwrap_or_default();
    line("full sync again (all in step)", t.elapsed().as_secs_f64(), s.inbound_objects, stage_peak_mib(&mut overall));
    println!("{:<34} {} metaverse updated, {} provisioned", "", s.metaverse_updated, s.provisioned);

    // A plan while everything is in step (what an admin runs before a change): both
    // connectors read whole, nothing written, nothing to do.
    let t = Instant::now();
    let (p, _) = e.plan()?;
    let planned = p.totals.add + p.totals.update + p.totals.delete;
    drop(p);
    line("plan again (all in step)", t.elapsed().as_secs_f64(), people + groups, stage_peak_mib(&mut overall));
    println!("{:<34} {planned} changes", "");

    for (round, pct) in deltas.iter().enumerate() {
        let n = ((people as f64) * pct / 100.0).round().max(1.0) as usize;
        w(&dir.join("delta.ldif"), &generate::delta(people, n, round + 1))?;
        let t = Instant::now();
        let r = e.import(&["corp".into()], Mode::Delta, false)?;
        let imp = t.elapsed().as_secs_f64();
        let imp_peak = stage_peak_mib(&mut overall);
        let read: usize = r.import.iter().map(|s| s.read).sum();
        let t = Instant::now();
        let r = e.sync(false)?;
        let syn = t.elapsed().as_secs_f64();
        let s = r.sync.unwrap_or_default();
        println!("delta of {pct}% ({n} people changed):");
        line("  delta import", imp, read, imp_peak);
        line("  delta sync", syn, s.inbound_objects, stage_peak_mib(&mut overall));
        println!(
            "{:<34} {:.1} µs per changed object ({} metaverse objects updated, {} looked at outbound)",
            "",
            syn * 1e6 / n as f64,
            s.metaverse_updated,
            s.outbound_objects
        );
        let t = Instant::now();
        let r = e.export(&["cloud".into()], None)?;
        line("  export", t.elapsed().as_secs_f64(), r.export.iter().map(|s| s.updated).sum(), stage_peak_mib(&mut overall));
    }
    e.store.settle();
    println!("{:<34} {:.1} MiB database, {:.0} MiB peak memory", "end", size_mib(&db), overall.max(peak_rss_mib()));
    Ok(())
}
