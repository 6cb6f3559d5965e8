//! Run history: a timeline of cycles with their durations and counts, each connector's import
//! and export latency over time (Connect Health's Sync Insight), and one run in detail.
use super::layout::{self, ms};
use super::{read, status_of};
use crate::api::Api;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idflow_store::RunRow;
use maud::{html, Markup};
use serde_json::Value as J;
use std::collections::BTreeMap;

/// How many runs the timeline shows.
const SHOWN: i64 = 100;

fn duration(r: &RunRow) -> u64 {
    r.summary.as_ref().and_then(|s| s["duration_ms"].as_u64()).unwrap_or(0)
}

fn sum(s: &J, stage: &str, keys: &[&str]) -> u64 {
    s[stage].as_array().map(|a| a.iter().map(|x| keys.iter().map(|k| x[*k].as_u64().unwrap_or(0)).sum::<u64>()).sum()).unwrap_or(0)
}

/// A run's counts in a few words.
fn counts(r: &RunRow) -> String {
    let Some(s) = &r.summary else { return String::new() };
    let mut parts = Vec::new();
    let imported = sum(s, "import", &["added", "updated", "deleted"]);
    let exported = sum(s, "export", &["added", "updated", "deleted"]);
    let failed = sum(s, "export", &["failed"]);
    let errors = s["errors"].as_array().map(Vec::len).unwrap_or(0);
    for (n, what) in [(imported, "imported"), (exported, "exported"), (failed, "export failed"), (errors as u64, "errors")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if let Some(p) = s["password_hash_sync"]["delivered"].as_u64().filter(|n| *n > 0) {
        parts.push(format!("{p} hashes"));
    }
    parts.join(", ")
}

fn status_class(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "errors" => "warn",
        "running" => "info",
        _ => "bad",
    }
}

/// Each connector's stage durations, oldest first: (connector, stage) -> [(run, ms)].
fn latency(runs: &[RunRow]) -> BTreeMap<(String, &'static str), Vec<(i64, u64)>> {
    let mut out: BTreeMap<(String, &'static str), Vec<(i64, u64)>> = BTreeMap::new();
    for r in runs.iter().rev() {
        let Some(s) = &r.summary else { continue };
        for stage in ["import", "export"] {
            for x in s[stage].as_array().into_iter().flatten() {
                if let (Some(c), Some(t)) = (x["connector"].as_str(), x["ms"].as_u64()) {
                    out.entry((c.to_string(), stage)).or_default().push((r.id, t));
                }
            }
        }
    }
    out
}

fn median(points: &[(i64, u64)]) -> u64 {
    let mut sorted: Vec<u64> = points.iter().map(|p| p.1).collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

fn spark(points: &[(i64, u64)]) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(1).max(1);
    html! {
        div.spark title="oldest to newest" {
            @for (run, t) in points {
                span style=(format!("height:{}%", (t * 100 / max).max(3))) title=(format!("run #{run}: {}", ms(*t))) {}
            }
        }
    }
}

pub(crate) async fn list(State(api): State<Api>) -> Response {
    let s = status_of(&api);
    let runs = match read(&api, |r| r.history_recent(SHOWN)).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let longest = runs.iter().map(duration).max().unwrap_or(1).max(1);
    let lat = latency(&runs);
    let body = html! {
        h1 { "Runs" }
        section id="latency" {
            h2 { "Latency per connector (last " (runs.len()) " runs)" }
            @if lat.is_empty() { p.muted { "No run has read or written a connector yet." } }
            div.table { table {
                @for ((c, stage), points) in &lat {
                    @let last = points.last().map(|p| p.1).unwrap_or(0);
                    @let median = median(points);
                    tr {
                        td { strong { (c) } " " (stage) }
                        td style="width:50%" { (spark(points)) }
                        td { "last " (ms(last)) br; span.muted { "median " (ms(median)) } }
                    }
                }
            } }
        }
        section id="timeline" {
            h2 { "Timeline" }
            div.table { table {
                tr { th { "Run" } th { "Profile" } th { "Outcome" } th { "Started" } th { "Duration" } th { "Counts" } }
                @for r in &runs {
                    @let d = duration(r);
                    tr {
                        td { a href=(format!("/ui/runs/{}", r.id)) { "#" (r.id) } }
                        td { (r.profile) }
                        td class=(status_class(&r.status)) { (r.status) }
                        td { (r.started) }
                        td {
                            span class=(format!("bar {}", status_class(&r.status))) style=(format!("width:{}px", (d * 160 / longest).max(2))) {}
                            " " (ms(d))
                        }
                        td { (counts(r)) }
                    }
                }
            } }
        }
    };
    layout::page("Runs", "/ui/runs", &s, None, body).into_response()
}

pub(crate) async fn one(State(api): State<Api>, Path(id): Path<i64>) -> Response {
    let s = status_of(&api);
    let found = read(&api, move |r| {
        let run = r.history_recent(i64::MAX)?.into_iter().find(|x| x.id == id);
        let errors = r.history_errors_of_runs(&[id])?;
        Ok((run, errors))
    })
    .await;
    let (run, errors) = match found {
        Ok((Some(run), errors)) => (run, errors),
        Ok((None, _)) => return (StatusCode::NOT_FOUND, format!("no run #{id} (it may have been purged)")).into_response(),
        Err(e) => return e,
    };
    let summary = run.summary.clone().unwrap_or(J::Null);
    let body = html! {
        h1 { "Run #" (run.id) ": " (run.profile) " " span class=(status_class(&run.status)) { (run.status) } }
        section {
            p { "Started " (run.started) @if let Some(f) = &run.finished { ", finished " (f) } ", took " (ms(duration(&run))) }
            @if let Some(f) = summary["failure"].as_str() { p.bad { "Failed: " (f) } }
            @for n in summary["notes"].as_array().into_iter().flatten() { p.warn { (n.as_str().unwrap_or_default()) } }
        }
        div.grid {
            section id="imports" {
                h2 { "Imports" }
                @for i in summary["import"].as_array().into_iter().flatten() {
                    p {
                        strong { (i["connector"].as_str().unwrap_or_default()) } " (" (i["mode"].as_str().unwrap_or_default()) "): read " (i["read"]) ", added " (i["added"]) ", updated " (i["updated"]) ", deleted " (i["deleted"]) ", errors " (i["errors"])
                        @if let Some(t) = i["ms"].as_u64() { " in " (ms(t)) }
                    }
                }
            }
            section id="sync" {
                h2 { "Sync" }
                @if summary["sync"].is_object() {
                    @for k in ["projected", "joined", "provisioned", "deprovisioned", "updated"] {
                        @if let Some(n) = summary["sync"][k].as_u64() { span.chip { (k) " " strong { (n) } } }
                    }
                } @else { p.muted { "No sync in this run." } }
            }
            section id="exports" {
                h2 { "Exports" }
                @for x in summary["export"].as_array().into_iter().flatten() {
                    p {
                        strong { (x["connector"].as_str().unwrap_or_default()) } ": added " (x["added"]) ", updated " (x["updated"]) ", deleted " (x["deleted"]) ", failed " (x["failed"])
                        @if let Some(t) = x["ms"].as_u64() { " in " (ms(t)) }
                        @if x["stopped_after"].is_u64() { br; span.bad { "stopped after " (x["stopped_after"]) " failures in a row" } }
                    }
                }
            }
        }
        section id="run-errors" {
            h2 { "Errors (" (errors.len()) ")" }
            (super::errors::table(errors.iter().map(|(_, e)| e), 500))
        }
    };
    layout::page(&format!("Run #{id}"), "/ui/runs", &s, None, body).into_response()
}
