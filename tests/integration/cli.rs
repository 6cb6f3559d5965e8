//! The command line as a newcomer meets it: help text for every flag, `functions` as JSON and as
//! a valid Markdown table, `history` that says what each run did and why one failed.
use crate::common::{person, small, Env};

/// The verbs `idflow --help` lists.
fn verbs() -> Vec<String> {
    let help = Env::empty().ok(&["--help"], 0).stdout;
    let mut out = Vec::new();
    let mut on = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            on = true;
        } else if on && line.trim().is_empty() {
            break;
        } else if on {
            let verb = line.split_whitespace().next().unwrap_or_default().to_string();
            if verb != "help" {
                out.push(verb);
            }
        }
    }
    out
}

#[test]
fn every_verb_and_every_flag_has_help_text() {
    let verbs = verbs();
    assert!(verbs.len() >= 12, "{verbs:?}");
    let mut missing = Vec::new();
    for args in verbs.iter().map(|v| vec![v.as_str()]).chain([vec!["phs", "verify"]]) {
        let mut full = args.clone();
        full.push("--help");
        let help = Env::empty().ok(&full, 0).stdout;
        let mut section = "";
        for line in help.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                section = line;
                continue;
            }
            if !matches!(section, "Options:" | "Arguments:" | "Commands:") || line.trim().is_empty() {
                continue;
            }
            // "  -n <N>  How many runs ..." : the flag, two spaces or more, then its text.
            let described = line.trim_start().split_once("  ").is_some_and(|(_, text)| !text.trim().is_empty());
            if !described {
                missing.push(format!("idflow {}: {}", args.join(" "), line.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "flags without help text:\n{}", missing.join("\n"));
}

#[test]
fn functions_print_json_and_a_valid_markdown_table() {
    let e = Env::empty();
    let j = e.json(&["functions"], 0);
    let all = j.as_array().expect("an array of functions");
    assert!(all.len() > 50, "{}", all.len());
    for f in all {
        assert!(f["name"].is_string() && f["signature"].is_string() && f["doc"].as_str().is_some_and(|d| !d.is_empty()), "{f}");
    }
    for name in ["normalize_diacritics", "bit_and", "instr", "dns_domain", "to_bool", "trim"] {
        assert!(all.iter().any(|f| f["name"] == name), "{name} is documented");
    }
    let md = e.ok(&["functions", "--markdown"], 0).stdout;
    let rows: Vec<&str> = md.lines().collect();
    assert_eq!(rows[0], "| function | what it does |");
    assert_eq!(rows[1], "|---|---|");
    assert_eq!(rows.len(), all.len() + 2, "one row per function");
    for row in &rows[2..] {
        // Two cells: pipes inside a cell are escaped, code spans are closed.
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 3, "{row}");
        assert_eq!(row.matches('`').count() % 2, 0, "an unclosed code span: {row}");
        assert!(!row.contains("FnPtr") && !row.contains("ImmutableString"), "types read as rules write them: {row}");
    }
}

#[test]
fn history_says_what_each_run_did_and_why_one_failed() {
    let e = small(&[person("ada", 1, ""), person("bob", 2, "")]);
    e.ok(&["apply"], 0);
    std::fs::remove_file(e.path("corp.ldif")).expect("remove");
    e.ok(&["run"], 1);
    let h = e.ok(&["history"], 0).stdout;
    let lines: Vec<&str> = h.lines().collect();
    // Newest first: the failed run, with its reason; then the apply, with its counts.
    assert!(lines[0].contains(" run ") && lines[0].contains("failed"), "{h}");
    assert!(lines.iter().any(|l| l.contains("failed:") && l.contains("corp.ldif")), "the failure reason in text: {h}");
    assert!(lines.iter().any(|l| l.contains("import 2 read, 2 added")), "{h}");
    assert!(lines.iter().any(|l| l.contains("export 2 added, 0 updated, 0 deleted, 0 failed")), "{h}");
    // -n limits it; --json carries the same.
    let one = e.ok(&["history", "-n", "1"], 0).stdout;
    assert!(one.lines().filter(|l| l.starts_with('#')).count() == 1, "{one}");
    let j = e.json(&["history", "-n", "1"], 0);
    assert!(j[0]["summary"]["failure"].as_str().is_some_and(|f| f.contains("corp.ldif")), "{j}");
}

#[test]
fn a_bench_refused_by_the_run_lock_leaves_the_folder_as_it_found_it() {
    let e = Env::empty();
    let dir = e.path("bench");
    std::fs::create_dir_all(dir.join("state")).expect("folder");
    // Another run (here: this test) holds the bench folder's metaverse, mid-run.
    for (f, text) in [("corp.ldif", "the other run's directory"), ("state/idflow.db", "the other run's database")] {
        std::fs::write(dir.join(f), text).expect("write");
    }
    let lock = idflow_store::RunLock::take(&dir.join("state/idflow.db"), "bench").expect("lock");
    let o = e.ok(&["bench", "--people", "30", "--groups", "2", "--dir", &dir.display().to_string()], 1);
    assert!(o.stderr.contains("is in use: idflow bench (pid "), "{o:?}");
    for (f, text) in [("corp.ldif", "the other run's directory"), ("state/idflow.db", "the other run's database")] {
        assert_eq!(std::fs::read_to_string(dir.join(f)).expect("still there"), text, "{f} touched");
    }
    assert!(!dir.join("idflow.toml").exists(), "a refused bench wrote its configuration");
    drop(lock);
    e.ok(&["bench", "--people", "30", "--groups", "2", "--dir", &dir.display().to_string()], 0);
}

#[test]
fn bench_times_each_stage_repeated_and_a_full_sync_and_a_plan_of_what_is_in_step_change_nothing() {
    let e = Env::empty();
    let dir = e.path("bench");
    let out = e
        .ok(&["bench", "--people", "300", "--groups", "15", "--deltas", "1", "--repeat", "2", "--dir", &dir.display().to_string()], 0)
        .stdout;
    let stages = ["full import (corp)", "full sync (inbound + outbound)", "plan (import both, sync, diff)", "export (file target)"];
    // Each run of the initial cycle starts from an empty database: it projects and provisions all.
    for run in ["initial cycle, run 1 of 2:", "initial cycle, run 2 of 2:"] {
        let lines: Vec<&str> = out.lines().skip_while(|l| *l != run).skip(1).take(6).collect();
        for stage in stages {
            assert!(lines.iter().any(|l| l.starts_with(stage)), "{run} {stage}: {out}");
        }
        assert!(lines.iter().any(|l| l.trim() == "307 projected, 307 provisioned, 0 errors"), "{run}: {out}");
        assert!(lines.iter().any(|l| l.starts_with("initial cycle (the four above)")), "{run}: {out}");
    }
    let spread: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("2 initial cycles:")).take(6).collect();
    assert!(spread.first().is_some_and(|l| l.contains("fastest") && l.contains("median") && l.contains("slowest")), "{out}");
    for stage in stages.iter().chain(&["initial cycle (the four above)"]) {
        assert!(
            spread.iter().any(|l| l.trim_start().starts_with(stage) && l.split_whitespace().filter(|w| *w == "s").count() == 3),
            "{stage} spread: {out}"
        );
    }
    let again = out.lines().skip_while(|l| !l.starts_with("full sync again (all in step)")).nth(1).unwrap_or_default();
    assert!(again.trim() == "0 metaverse updated, 0 provisioned", "the second full sync changed something: {out}");
    let plan = out.lines().skip_while(|l| !l.starts_with("plan again (all in step)")).nth(1).unwrap_or_default();
    assert!(plan.trim() == "0 changes", "a plan of what is in step found changes: {out}");
    assert!(out.contains("delta of 1% (3 people changed)") && out.contains("peak memory"), "{out}");
}
