//! The error report: the errors objects are in now, by category, with filters, each object
//! opening its preview; exported as CSV and JSON with the same filters.
use super::layout;
use super::{encode, read, status_of};
use crate::api::Api;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use idflow_core::{Category, ObjectError, Stage};
use idflow_engine::{ErrorFilter, ErrorReport};
use maud::{html, Markup};
use serde::Deserialize;

/// Rows a page shows (the exports hold them all).
const ROWS: usize = 500;

#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filter {
    category: Option<String>,
    connector: Option<String>,
    stage: Option<String>,
    q: Option<String>,
}

impl Filter {
    fn engine(&self) -> ErrorFilter {
        let some = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        ErrorFilter {
            category: some(&self.category).and_then(|c| Category::parse(&c)),
            connector: some(&self.connector),
            stage: some(&self.stage).and_then(|s| Stage::parse(&s)),
            text: some(&self.q),
        }
    }

    fn query(&self) -> String {
        let parts: Vec<String> = [("category", &self.category), ("connector", &self.connector), ("stage", &self.stage), ("q", &self.q)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| format!("{k}={}", encode(v))))
            .collect();
        parts.join("&")
    }
}

/// The link that opens an error's object in its preview, when it has one.
fn object_link(e: &ObjectError) -> Option<String> {
    match (e.cs_id, &e.connector, e.mv_id) {
        (Some(cs), Some(c), _) => Some(format!("/ui/object?connector={}&key=%23{cs}", encode(c))),
        (None, _, Some(mv)) => Some(format!("/ui/object?mv={mv}")),
        _ => None,
    }
}

/// Errors as a table (at most `limit` rows, saying so when there are more).
pub(crate) fn table<'a>(errors: impl Iterator<Item = &'a ObjectError>, limit: usize) -> Markup {
    let all: Vec<&ObjectError> = errors.collect();
    html! {
        @if all.is_empty() { p.ok { "No error." } } @else {
            @if all.len() > limit { p.warn { "Showing " (limit) " of " (all.len()) ": narrow the filter, or export CSV or JSON for all." } }
            div.table { table {
                tr { th { "Category" } th { "Object" } th { "Stage" } th { "Connector" } th { "Rule" } th { "Attribute" } th { "Conflicts with" } th { "Message" } }
                @for e in all.iter().take(limit) {
                    tr {
                        td { (e.category.title()) }
                        td {
                            @let name = e.object.as_deref().unwrap_or("(the connector)");
                            @match object_link(e) { Some(l) => a href=(l) { (name) }, None => (name) }
                        }
                        td { (e.stage.as_str()) }
                        td { (e.connector.as_deref().unwrap_or("-")) }
                        td { (e.rule.as_deref().unwrap_or("-")) }
                        td { (e.attribute.as_deref().unwrap_or("-")) }
                        td { (e.conflict.as_deref().unwrap_or("-")) }
                        td { (e.message) }
                    }
                }
            } }
        }
    }
}

async fn report(api: &Api, f: &Filter) -> Result<ErrorReport, Response> {
    let filter = f.engine();
    let scope = super::status_of(api).error_scope();
    read(api, move |r| idflow_engine::error_report(r, &filter, Some(&scope))).await
}

pub(crate) async fn page(State(api): State<Api>, Query(f): Query<Filter>) -> Response {
    let s = status_of(&api);
    let r = match report(&api, &f).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let total: usize = r.by_category.values().sum::<usize>() + r.connector_errors;
    let connectors: Vec<&String> = s.connectors.keys().collect();
    let q = f.query();
    let body = html! {
        h1 { "Errors: " (total) }
        @if r.connector_errors > 0 { p.bad { (r.connector_errors) " of a whole connector (it could not be read or written): listed first." } }
        section id="categories" {
            a.chip href="/ui/errors" { "All " strong { (total) } }
            @for c in Category::ALL {
                @let n = r.by_category.get(c.as_str()).copied().unwrap_or(0);
                a.chip href=(format!("/ui/errors?category={}", c.as_str())) { (c.title()) " " strong { (n) } }
            }
        }
        section id="filter" {
            form method="get" action="/ui/errors" {
                select name="category" {
                    option value="" { "every category" }
                    @for c in Category::ALL { option value=(c.as_str()) selected[f.category.as_deref() == Some(c.as_str())] { (c.title()) } }
                }
                " "
                select name="connector" {
                    option value="" { "every connector" }
                    @for c in &connectors { option value=(c) selected[f.connector.as_deref() == Some(c.as_str())] { (c) } }
                }
                " "
                select name="stage" {
                    option value="" { "every stage" }
                    @for st in ["import", "sync", "export", "phs"] { option value=(st) selected[f.stage.as_deref() == Some(st)] { (st) } }
                }
                " "
                input type="search" name="q" value=(f.q.clone().unwrap_or_default()) placeholder="object, message, rule";
                button type="submit" { "Filter" }
                " "
                a href=(format!("/ui/errors.csv?{q}")) { "CSV" } " · " a href=(format!("/ui/errors.json?{q}")) { "JSON" }
            }
        }
        section id="report" {
            @if r.errors.len() != total { p.muted { (r.errors.len()) " match the filter." } }
            (table(r.errors.iter().map(|c| &c.error), ROWS))
        }
    };
    layout::page("Errors", "/ui/errors", &s, None, body).into_response()
}

pub(crate) async fn csv(State(api): State<Api>, Query(f): Query<Filter>) -> Response {
    match report(&api, &f).await {
        Ok(r) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"idflow-errors.csv\""),
            ],
            idflow_engine::error_csv(&r),
        )
            .into_response(),
        Err(e) => e,
    }
}

pub(crate) async fn json(State(api): State<Api>, Query(f): Query<Filter>) -> Response {
    match report(&api, &f).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e,
    }
}
