//! Search (by name, mail or anchor) and an object's preview: the rules in scope and what they
//! decided, each metaverse attribute with the rule that won it, the exports it causes, its errors.
use super::layout;
use super::{encode, read, status_of};
use crate::api::{Api, Command};
use crate::worker::Job;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idflow_core::Value;
use idflow_engine::{PlanValue, Preview};
use idflow_store::Link;
use maud::{html, Markup};
use serde::Deserialize;
use std::time::Duration;

/// The metaverse attributes a search looks in (a prefix, any case), besides anchors.
const SEARCHED: &[&str] = &[
    "displayName",
    "mail",
    "userPrincipalName",
    "cn",
    "uid",
    "sAMAccountName",
    "employeeId",
    "mailNickname",
    "givenName",
    "sn",
    "userName",
];

/// Results a search shows.
const FOUND: i64 = 50;

/// How long a preview may wait for the engine (busy with a cycle) before the page says so.
const PREVIEW_WAIT: Duration = Duration::from_secs(20);

/// Attribute names that may hold a secret: shown as hidden, whatever the rules flow.
fn secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "pwd", "hash", "secret", "token", "credential"].iter().any(|w| n.contains(w))
}

/// A trace line (`attribute: values`) with a secret attribute's values hidden.
fn hidden_in(message: &str) -> String {
    match message.split_once(": ") {
        Some((attr, _)) if secret(attr.trim_start_matches("flow ")) => format!("{attr}: (hidden)"),
        _ => message.to_string(),
    }
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// One search hit: metaverse id, type, name, mail, and the connectors it is linked in.
struct Hit {
    mv: i64,
    object_type: String,
    name: String,
    mail: String,
    links: Vec<(String, i64, String)>,
}

fn first(o: &idflow_store::MvObject, attrs: &[&str]) -> String {
    attrs.iter().find_map(|a| o.values(a).and_then(|v| v.first()).and_then(Value::as_str).map(str::to_string)).unwrap_or_default()
}

pub(crate) async fn search(State(api): State<Api>, Query(q): Query<SearchQuery>) -> Response {
    let s = status_of(&api);
    let text = q.q.clone().unwrap_or_default().trim().to_string();
    let hits = if text.is_empty() {
        Vec::new()
    } else {
        let t = text.clone();
        let found = read(&api, move |r| {
            let mut hits = Vec::new();
            for id in r.mv_search(&t, SEARCHED, FOUND)? {
                let Some(o) = r.mv_get(id)? else { continue };
                let links = r
                    .cs_all_linked(id)?
                    .into_iter()
                    .map(|c| (c.connector.clone(), c.id, c.link.map(|l| l.as_str().to_string()).unwrap_or_default()))
                    .collect();
                hits.push(Hit {
                    mv: id,
                    object_type: o.object_type.clone(),
                    name: first(&o, &["displayName", "cn", "userName"]),
                    mail: first(&o, &["mail", "userPrincipalName"]),
                    links,
                });
            }
            Ok(hits)
        })
        .await;
        match found {
            Ok(h) => h,
            Err(e) => return e,
        }
    };
    let body = html! {
        h1 { "Search" }
        section {
            form method="get" action="/ui/search" {
                input type="search" name="q" value=(text) placeholder="name, mail or anchor" autofocus;
                button type="submit" { "Search" }
            }
            p.muted { "Finds metaverse objects whose name, mail or account name starts with the words (any case), or an object anchored exactly so." }
        }
        @if !text.is_empty() {
            section id="results" {
                h2 { (hits.len()) " found" @if hits.len() as i64 == FOUND { " (the first " (FOUND) ")" } }
                div.table { table {
                    tr { th { "Name" } th { "Mail" } th { "Type" } th { "Linked in" } }
                    @for h in &hits {
                        tr {
                            td { a href=(format!("/ui/object?mv={}", h.mv)) { @if h.name.is_empty() { "metaverse #" (h.mv) } @else { (h.name) } } }
                            td { (h.mail) }
                            td { (h.object_type) }
                            td { @for (c, id, link) in &h.links { span.chip { (c) " #" (id) " " span.muted { (link) } } } }
                        }
                    }
                } }
            }
        }
    };
    layout::page("Search", "/ui/search", &s, None, body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct ObjectQuery {
    connector: Option<String>,
    key: Option<String>,
    mv: Option<i64>,
}

fn values(v: &[PlanValue]) -> String {
    v.iter()
        .map(|v| match v {
            PlanValue::Text(t) => t.clone(),
            PlanValue::Binary { base64 } => format!("<base64 {base64}>"),
            PlanValue::Reference { object, .. } => format!("→ {object}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(p: &Preview) -> Markup {
    html! {
        h1 { (p.object) }
        section id="identity" {
            p {
                span.chip { (p.connector) } span.chip { (p.object_type) }
                @if let Some(a) = &p.anchor { span.chip { "anchor " code { (a) } } }
                @if let Some(l) = &p.link { span.chip { (l) } }
                @if let Some(m) = p.metaverse_id { span.chip { "metaverse #" (m) " " (p.metaverse_type.as_deref().unwrap_or_default()) } }
            }
        }
        section id="rules" {
            h2 { "Rules in scope and what they decided" }
            @if p.trace.is_empty() { p.muted { "No rule applies to this object." } }
            div.table { table {
                @for t in &p.trace {
                    tr { td.muted { (t.stage) } td { (t.rule.as_deref().unwrap_or("-")) } td { (hidden_in(&t.message)) } }
                }
            } }
        }
        section id="attributes" {
            h2 { "Metaverse attributes, and the rule that won each" }
            div.table { table {
                tr { th { "Attribute" } th { "Value" } th { "Winning rule" } th { "Other contributions" } }
                @for a in &p.attributes {
                    tr {
                        td { strong { (a.name) } }
                        td { @if secret(&a.name) { span.muted { "(hidden)" } } @else { (a.values.join(", ")) } }
                        td { (a.rule) }
                        td {
                            @for c in a.contributions.iter().filter(|c| !c.wins) {
                                div.muted { (c.rule) " (" (c.connector) ", precedence " (c.precedence) ")"
                                    @if !secret(&a.name) { ": " (c.values.join(", ")) } }
                            }
                        }
                    }
                }
            } }
        }
        section id="exports" {
            h2 { "Pending exports" }
            @if p.exports.is_empty() { p.ok { "None: the targets match the rules." } }
            @for (target, c) in &p.exports {
                div {
                    strong { (c.op) " " (target) } " " (c.object) @if let Some(r) = &c.rule { span.muted { " (rule " (r) ")" } }
                    div.table { table {
                        @for a in &c.attributes {
                            tr {
                                td { (a.name) }
                                @if secret(&a.name) { td colspan="2" { span.muted { "(hidden)" } } } @else {
                                    td.muted { (values(&a.old)) }
                                    td { (values(&a.new)) }
                                }
                            }
                        }
                    } }
                }
            }
        }
        section id="object-errors" {
            h2 { "Errors" }
            (super::errors::table(p.errors.iter().chain(p.last_run_errors.iter()), 100))
        }
    }
}

/// The connector and key to preview a metaverse object by: its inbound (source) object.
async fn source_of(api: &Api, mv: i64) -> Result<(String, String), Response> {
    let found = read(api, move |r| {
        let linked = r.cs_all_linked(mv)?;
        let pick = linked.iter().find(|o| o.link.is_some_and(Link::is_inbound)).or(linked.first());
        Ok(pick.map(|o| (o.connector.clone(), format!("#{}", o.id))))
    })
    .await?;
    found.ok_or_else(|| (StatusCode::NOT_FOUND, format!("metaverse #{mv} has no linked object to preview")).into_response())
}

pub(crate) async fn preview(State(api): State<Api>, Query(q): Query<ObjectQuery>) -> Response {
    let s = status_of(&api);
    let (connector, key) = match (q.connector, q.key, q.mv) {
        (Some(c), Some(k), _) => (c, k),
        (_, _, Some(mv)) => match source_of(&api, mv).await {
            Ok(x) => x,
            Err(e) => return e,
        },
        _ => return (StatusCode::BAD_REQUEST, "give ?connector=NAME&key=DN-ANCHOR-OR-#ID, or ?mv=ID").into_response(),
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    let _ = api.commands.send(Command::Ask(Job::Preview(connector.clone(), key.clone(), reply)));
    let body = match tokio::time::timeout(PREVIEW_WAIT, rx).await {
        Ok(Ok(Ok(p))) => render(&p),
        Ok(Ok(Err(m))) => html! { h1 { "Preview" } section { p.bad { (m) } } },
        Ok(Err(_)) => html! { h1 { "Preview" } section { p.bad { "The service is stopping." } } },
        Err(_) => html! {
            h1 { "Preview" }
            section { p.warn { "The engine is busy with a cycle; the preview runs after it. "
                a href=(format!("/ui/object?connector={}&key={}", encode(&connector), encode(&key))) { "Try again" } } }
        },
    };
    layout::page("Preview", "/ui/search", &s, None, body).into_response()
}
