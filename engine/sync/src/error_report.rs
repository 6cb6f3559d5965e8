//! The errors objects are in now, by category (Connect Health's sync error report).
//!
//! Every run retries what is in error, so the current errors of a stage are those of the latest
//! run that ran it: the sync and export errors of the latest run with a sync, each connector's
//! import errors of the latest run that imported it, and password hash sync errors of the
//! latest run with one. An error fixed since is in no later run and drops out.
use idflow_core::{Category, ObjectError, Result, Stage};
use idflow_store::{ReadOps, RunRow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How many runs back the report looks for the latest run of each stage, in steps: most
/// reports are complete within the first few runs, and each run's summary is read whole.
const LOOK_BACK: [i64; 3] = [10, 100, 500];

/// What the report needs to have seen to be complete: the latest import of each connector, and
/// (when password hash sync is configured) the latest password hash sync. Older runs are then
/// not read.
#[derive(Debug, Clone)]
pub struct ErrorScope {
    pub connectors: Vec<String>,
    pub phs: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentError {
    pub run_id: i64,
    #[serde(flatten)]
    pub error: ObjectError,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorReport {
    /// The runs the errors come from.
    pub runs: Vec<i64>,
    /// How many objects are in error, by category (every category, zero included).
    pub by_category: BTreeMap<String, usize>,
    /// Errors of a whole connector (it could not be read or written), listed with the objects'.
    pub connector_errors: usize,
    pub errors: Vec<CurrentError>,
}

/// A filter on the report: each part that is set must match.
#[derive(Debug, Clone, Default)]
pub struct ErrorFilter {
    pub category: Option<Category>,
    pub connector: Option<String>,
    pub stage: Option<Stage>,
    /// Words found in the object, the message, the rule or the attribute (any case).
    pub text: Option<String>,
}

impl ErrorFilter {
    fn keeps(&self, e: &ObjectError) -> bool {
        let text = self.text.as_deref().map(str::to_lowercase);
        self.category.is_none_or(|c| c == e.category)
            && self.connector.as_ref().is_none_or(|c| e.connector.as_ref() == Some(c))
            && self.stage.is_none_or(|s| s == e.stage)
            && text.is_none_or(|t| {
                [e.object.as_deref(), Some(e.message.as_str()), e.rule.as_deref(), e.attribute.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&t))
            })
    }
}

/// Which runs hold the current errors of which stage; and whether `scope` was all seen (so
/// that older runs can hold no current error).
fn owners(
    runs: &[RunRow],
    scope: Option<&ErrorScope>,
    errors_of: &mut dyn FnMut(i64) -> Result<Vec<(i64, ObjectError)>>,
) -> Result<(Vec<(i64, ObjectError)>, bool)> {
    let mut sync_seen = false;
    let mut phs_seen = false;
    let mut imported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    let complete = |sync_seen: bool, phs_seen: bool, imported: &BTreeSet<String>| {
        scope.is_some_and(|s| sync_seen && (phs_seen || !s.phs) && s.connectors.iter().all(|c| imported.contains(c)))
    };
    for run in runs.iter().filter(|r| r.status != "running") {
        if complete(sync_seen, phs_seen, &imported) {
            return Ok((out, true));
        }
        let summary = run.summary.as_ref();
        let ran_sync = summary.is_some_and(|s| !s["sync"].is_null());
        let ran_phs = summary.is_some_and(|s| !s["password_hash_sync"].is_null()) || run.profile.starts_with("phs");
        let errors = errors_of(run.id)?;
        let mut this_import: BTreeSet<String> = summary
            .and_then(|s| s["import"].as_array())
            .map(|a| a.iter().filter_map(|i| i["connector"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        // A connector whose import failed as a whole ran its import too (and failed).
        this_import.extend(errors.iter().filter(|(_, e)| e.stage == Stage::Import).filter_map(|(_, e)| e.connector.clone()));
        for (run_id, e) in errors {
            let current = match e.stage {
                Stage::Sync | Stage::Export => ran_sync && !sync_seen,
                Stage::Phs => !phs_seen,
                Stage::Import => e.connector.as_ref().is_some_and(|c| !imported.contains(c)),
            };
            if current {
                out.push((run_id, e));
            }
        }
        sync_seen |= ran_sync;
        phs_seen |= ran_phs;
        imported.extend(this_import);
    }
    let done = complete(sync_seen, phs_seen, &imported);
    Ok((out, done))
}

/// The current errors (filtered), with the count of each category before the filter.
/// With a `scope`, runs older than the latest of each stage it names are not read.
pub fn error_report(r: &dyn ReadOps, filter: &ErrorFilter, scope: Option<&ErrorScope>) -> Result<ErrorReport> {
    // Without a scope nothing says when the walk is complete: the whole look-back at once.
    let steps: &[i64] = if scope.is_some() { &LOOK_BACK } else { &LOOK_BACK[LOOK_BACK.len() - 1..] };
    let mut all = Vec::new();
    for &n in steps {
        let runs = r.history_recent(n)?;
        let (found, done) = owners(&runs, scope, &mut |id| r.history_errors_of_runs(&[id]))?;
        all = found;
        if done || (runs.len() as i64) < n {
            break;
        }
    }
    let mut report = ErrorReport::default();
    for c in Category::ALL {
        report.by_category.insert(c.as_str().to_string(), 0);
    }
    let mut from: BTreeSet<i64> = BTreeSet::new();
    for (run_id, error) in all {
        if error.object.is_some() {
            *report.by_category.entry(error.category.as_str().to_string()).or_default() += 1;
        } else {
            report.connector_errors += 1;
        }
        from.insert(run_id);
        if filter.keeps(&error) {
            report.errors.push(CurrentError { run_id, error });
        }
    }
    // A connector that could not be read or written first: it explains the rest.
    report.errors.sort_by_key(|e| e.error.object.is_some());
    report.runs = from.into_iter().rev().collect();
    Ok(report)
}

/// The report as CSV: one line per error, with a header.
pub fn error_csv(report: &ErrorReport) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = ["category", "stage", "connector", "object", "rule", "attribute", "conflict", "message", "run_id", "cs_id", "mv_id"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for c in &report.errors {
        let e = &c.error;
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let id = |o: Option<i64>| o.map(|i| i.to_string()).unwrap_or_default();
        rows.push(vec![
            e.category.title().to_string(),
            e.stage.to_string(),
            opt(&e.connector),
            opt(&e.object),
            opt(&e.rule),
            opt(&e.attribute),
            opt(&e.conflict),
            e.message.clone(),
            c.run_id.to_string(),
            id(e.cs_id),
            id(e.mv_id),
        ]);
    }
    for row in rows {
        // Writing to memory cannot fail.
        let _ = w.write_record(row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{owners, ErrorFilter};
    use idflow_core::{Category, ObjectError, Stage};
    use idflow_store::RunRow;

    fn run(id: i64, profile: &str, summary: serde_json::Value) -> RunRow {
        RunRow { id, profile: profile.into(), started: String::new(), finished: None, status: "errors".into(), summary: Some(summary) }
    }

    #[test]
    fn each_stage_shows_the_errors_of_its_latest_run() {
        // Newest first: a phs-only run, a change cycle importing only "hr", a delta cycle of both.
        let runs = vec![
            run(3, "phs", serde_json::json!({"password_hash_sync": {}})),
            run(2, "change-cycle", serde_json::json!({"sync": {}, "import": [{"connector": "hr"}]})),
            run(1, "delta-cycle", serde_json::json!({"sync": {}, "import": [{"connector": "hr"}, {"connector": "corp"}]})),
        ];
        let errors = |id: i64| -> Vec<(i64, ObjectError)> {
            let e = |stage, c: &str, m: &str| (id, ObjectError::new(stage, c, "o", m));
            match id {
                3 => vec![e(Stage::Phs, "corp", "phs now")],
                2 => vec![e(Stage::Sync, "hr", "sync now"), e(Stage::Import, "hr", "hr import now")],
                _ => vec![
                    e(Stage::Sync, "hr", "sync before"),
                    e(Stage::Import, "hr", "hr import before"),
                    e(Stage::Import, "corp", "corp import"),
                    e(Stage::Phs, "corp", "phs before"),
                ],
            }
        };
        let (got, done) = owners(&runs, None, &mut |id| Ok(errors(id))).expect("owners");
        assert!(!done, "without a scope the walk is never known complete");
        let messages: Vec<&str> = got.iter().map(|(_, e)| e.message.as_str()).collect();
        assert_eq!(messages, vec!["phs now", "sync now", "hr import now", "corp import"]);

        // With a scope, the walk stops once every stage it names is seen: the same errors, and
        // older runs are not read.
        let mut read = Vec::new();
        let scope = super::ErrorScope { connectors: vec!["hr".into(), "corp".into()], phs: true };
        let older = run(0, "delta-cycle", serde_json::json!({"sync": {}, "import": [{"connector": "corp"}]}));
        let mut all = runs.clone();
        all.push(older);
        let (got, done) = owners(&all, Some(&scope), &mut |id| {
            read.push(id);
            Ok(errors(id))
        })
        .expect("owners");
        assert!(done);
        assert_eq!(got.iter().map(|(_, e)| e.message.as_str()).collect::<Vec<_>>(), messages);
        assert_eq!(read, vec![3, 2, 1], "run 0 is not read");
    }

    #[test]
    fn the_filter_matches_every_part_it_sets() {
        let e = ObjectError::new(Stage::Export, "cloud", "Ada Lovelace", "HTTP 409").with_category(Category::DuplicateAttribute);
        assert!(ErrorFilter { text: Some("ada".into()), ..Default::default() }.keeps(&e));
        assert!(
            ErrorFilter { category: Some(Category::DuplicateAttribute), connector: Some("cloud".into()), ..Default::default() }.keeps(&e)
        );
        assert!(!ErrorFilter { stage: Some(Stage::Sync), ..Default::default() }.keeps(&e));
    }
}
