//! The overview: is identity flowing? Alerts, each connector's last success and pending
//! exports, errors by category, password hash sync, the scheduler and its actions.
use super::layout::{self, severity};
use super::status_of;
use crate::api::{Api, Command};
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use idflow_core::Category;
use maud::html;
use serde::Deserialize;
use tokio::sync::oneshot;

pub(crate) async fn page(State(api): State<Api>) -> Response {
    let s = status_of(&api);
    let critical = s.alerts.iter().filter(|a| a.severity == "critical").count();
    let body = html! {
        section id="verdict" {
            @if critical == 0 {
                div.verdict.ok { "Identity is flowing" }
            } @else {
                div.verdict.bad { "Identity is not flowing: " (critical) " critical alert" @if critical > 1 { "s" } }
            }
            p.muted {
                "Last successful cycle: " (s.last_success.as_deref().unwrap_or("none yet"))
                @if let Some(c) = &s.last_cycle { " · last cycle " (c.profile) " " (c.status) " at " (c.finished) }
            }
        }
        div.grid {
            section id="alerts" {
                h2 { "Alerts (" (s.alerts.len()) ")" }
                @if s.alerts.is_empty() { p.ok { "No alert is open." } }
                @for a in &s.alerts {
                    div class=(format!("sev-{}", a.severity)) style="padding:.4rem;border-radius:4px;margin-bottom:.3rem" {
                        (severity(&a.severity)) " " strong { (a.kind) } " "
                        span.muted { "since " (a.raised) }
                        br;
                        (a.summary)
                    }
                }
            }
            section id="errors" {
                h2 { "Objects in error: " (s.objects_in_error) }
                @for c in Category::ALL {
                    @let n = s.errors_by_category.get(c.as_str()).copied().unwrap_or(0);
                    @if n > 0 {
                        a.chip href=(format!("/ui/errors?category={}", c.as_str())) { (c.title()) " " strong { (n) } }
                    }
                }
                @if s.objects_in_error == 0 { p.ok { "No object is in error." } }
                @if s.connector_errors > 0 { p.bad { a href="/ui/errors" { (s.connector_errors) " error(s) of a whole connector" } } }
            }
            section id="phs" {
                h2 { "Password hash sync" }
                @if !s.phs_configured { p.muted { "Not configured ([password_hash_sync] in idflow.toml)." } } @else {
                    @if let Some(f) = &s.phs_failure { p.bad { "Failing: " (f) } }
                    p { "Last heartbeat: " (s.phs_last_success.as_deref().unwrap_or("none yet")) }
                    @if let Some(t) = &s.next_phs { p.muted { "Next at " (t) } }
                }
            }
            @if s.pta_agents.is_some() || s.pta_unreachable.is_some() {
                section id="pta" {
                    h2 { "Pass-through authentication" }
                    @if let Some(n) = s.pta_agents {
                        @if n == 0 { p.bad { "No agent connected: sign-ins fail." } } @else { p.ok { (n) " agent(s) connected" } }
                    }
                    @if let Some(why) = &s.pta_unreachable { p.bad { "The directory does not answer: " (why) } }
                }
            }
            section id="scheduler" {
                h2 { "Scheduler" }
                p {
                    @if s.paused { strong.warn { "Paused" } } @else { strong.ok { "Running" } }
                    @if s.staging_mode { " · " strong.info { "staging mode" } " (nothing is exported)" }
                }
                @match &s.current {
                    Some(c) => p { "Now: " (c.profile) " since " (c.started) @if let Some(st) = &c.stage { ", " (st) } },
                    None => p.muted { "Idle" },
                }
                @if let Some(t) = &s.next_delta { p.muted { "Next delta cycle at " (t) } }
                form.inline method="post" action="/ui/actions/cycle" { button type="submit" { "Run a cycle now" } }
                form.inline method="post" action="/ui/actions/cycle" { input type="hidden" name="full" value="true"; button type="submit" { "Full cycle now" } }
                @if s.paused {
                    form.inline method="post" action="/ui/actions/resume" { button type="submit" { "Resume" } }
                } @else {
                    form.inline method="post" action="/ui/actions/pause" { button type="submit" { "Pause" } }
                }
            }
        }
        section id="connectors" {
            h2 { "Connectors" }
            div.table { table {
                tr { th { "Connector" } th { "Changes seen by" } th { "Last result" } th { "Import ok" } th { "Export ok" } th { "Pending exports" } }
                @for (name, c) in &s.connectors {
                    tr {
                        td { strong { (name) } }
                        td { (c.trigger) @if let Some(f) = &c.feed { br; span class=(if f.starts_with("down") { "bad" } else { "muted" }) { (f) } } }
                        td {
                            @match c.last_result.as_deref() {
                                Some("ok") => span.ok { "ok" },
                                Some(e) => span.bad { (e) },
                                None => span.muted { "not run yet" },
                            }
                            @if c.failures_in_a_row > 1 { br; span.muted { (c.failures_in_a_row) " failures in a row" } }
                        }
                        td { (c.last_import_ok.as_deref().unwrap_or("-")) }
                        td { (c.last_export_ok.as_deref().unwrap_or("-")) }
                        td { (s.pending_exports.get(name).copied().unwrap_or(0)) }
                    }
                }
            } }
        }
    };
    layout::page("Overview", "/ui", &s, Some(15), body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CycleForm {
    #[serde(default)]
    full: Option<String>,
}

/// Sends a command, then back to the overview with what it said.
async fn act(api: &Api, cmd: Command, rx: oneshot::Receiver<Result<String, String>>) -> Response {
    let _ = api.commands.send(cmd);
    let said = match rx.await {
        Ok(Ok(m)) => m,
        Ok(Err(m)) => m,
        Err(_) => "the service is stopping".into(),
    };
    tracing::info!(action = %said, "dashboard action");
    Redirect::to("/ui").into_response()
}

pub(crate) async fn cycle(State(api): State<Api>, Form(f): Form<CycleForm>) -> Response {
    let (reply, rx) = oneshot::channel();
    let full = f.full.as_deref() == Some("true");
    let _ = api.commands.send(Command::Cycle { full, connectors: Vec::new(), reply });
    let said = match rx.await {
        Ok(Ok((m, _))) => m,
        Ok(Err(m)) => m,
        Err(_) => "the service is stopping".into(),
    };
    tracing::info!(action = %said, "dashboard action");
    Redirect::to("/ui").into_response()
}

pub(crate) async fn pause(State(api): State<Api>) -> Response {
    let (reply, rx) = oneshot::channel();
    act(&api, Command::Pause(reply), rx).await
}

pub(crate) async fn resume(State(api): State<Api>) -> Response {
    let (reply, rx) = oneshot::channel();
    act(&api, Command::Resume(reply), rx).await
}
