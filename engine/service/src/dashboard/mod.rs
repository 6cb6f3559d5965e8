//! The dashboard: server-rendered pages under `/ui` (overview, runs, errors, search and object
//! previews), readable on a phone and a wide screen, with no script. A browser signs in with
//! the API token or a one-time link from `idflow dashboard` (see `session`); the cookie is
//! HttpOnly and SameSite=Strict (and Secure over TLS), and actions are POST forms from the
//! dashboard's own pages (Origin and Sec-Fetch-Site checked).
mod errors;
mod layout;
mod object;
mod overview;
mod runs;
pub(crate) mod session;

use crate::api::Api;
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

const COOKIE: &str = "idflow_session";

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Signed in (the cookie, or the API's bearer token), else to the sign-in page. POSTs must also
/// come from a page of this service (Origin, when the browser sends one).
async fn signed_in(State(api): State<Api>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let cookie = cookie_value(&headers, COOKIE).unwrap_or("");
    let ok = crate::api::same(bearer.as_bytes(), api.token.as_bytes()) || api.sessions.valid(cookie);
    if !ok {
        let next = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/ui".into());
        return Redirect::to(&format!("/ui/login?next={}", encode(&next))).into_response();
    }
    if request.method() == axum::http::Method::POST {
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("same-origin");
        if site != "same-origin" && site != "none" {
            return (StatusCode::FORBIDDEN, "a form of another site: refused").into_response();
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            if origin.split_once("://").map(|(_, h)| h) != Some(host) {
                return (StatusCode::FORBIDDEN, "a form of another site: refused").into_response();
            }
        }
    }
    next.run(request).await
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn router(api: Api) -> Router {
    let pages = Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/{id}", get(runs::one))
        .route("/ui/errors", get(errors::page))
        .route("/ui/errors.csv", get(errors::csv))
        .route("/ui/errors.json", get(errors::json))
        .route("/ui/search", get(object::search))
        .route("/ui/object", get(object::preview))
        .route("/ui/actions/cycle", post(overview::cycle))
        .route("/ui/actions/pause", post(overview::pause))
        .route("/ui/actions/resume", post(overview::resume))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), signed_in));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .merge(pages)
        .with_state(api)
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    /// A one-time code from `idflow dashboard`.
    code: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Where to go after signing in: a page of the dashboard, nothing else.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/ui") && !n.starts_with("//") && !n.contains("://")).unwrap_or("/ui").to_string()
}

/// A new session's cookie, and on to `next`.
fn signed(api: &Api, next: Option<&str>) -> Response {
    let secure = if api.tls { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}", api.sessions.issue(), session::LIFETIME.as_secs());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&safe_next(next))).into_response()
}

/// The sign-in page; with `?code=` (the link `idflow dashboard` prints) it signs in at once.
async fn login_page(State(api): State<Api>, Query(q): Query<LoginQuery>) -> Response {
    match &q.code {
        Some(c) if api.sessions.redeem(c) => signed(&api, q.next.as_deref()),
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            login_form(q.next.as_deref(), Some("That sign-in link is used up or expired: run idflow dashboard for a new one.")),
        )
            .into_response(),
        None => login_form(q.next.as_deref(), None).into_response(),
    }
}

async fn login(State(api): State<Api>, Form(f): Form<LoginForm>) -> Response {
    if !crate::api::same(f.token.trim().as_bytes(), api.token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, login_form(f.next.as_deref(), Some("That is not the service's token."))).into_response();
    }
    signed(&api, f.next.as_deref())
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

fn login_form(next: Option<&str>, error: Option<&str>) -> maud::Markup {
    let s = crate::status::Status::default();
    layout::page(
        "Sign in",
        "/ui/login",
        &s,
        None,
        html! {
            section {
                h1 { "Sign in to the idflow dashboard" }
                @if let Some(e) = error { p.bad { (e) } }
                p { "Give the service's API token (" code { "[service] token_file" } ", or run " code { "idflow dashboard" } " for a sign-in link)." }
                form method="post" action="/ui/login" {
                    input type="password" name="token" autocomplete="current-password" placeholder="API token" required;
                    input type="hidden" name="next" value=(safe_next(next));
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The status as the pages show it.
pub(crate) fn status_of(api: &Api) -> crate::status::Status {
    api.status.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Runs `f` on a read transaction of the metaverse, off the async thread.
pub(crate) async fn read<T: Send + 'static>(
    api: &Api,
    f: impl FnOnce(&dyn idflow_store::ReadOps) -> idflow_core::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let path = api.metaverse.clone();
    let r = tokio::task::spawn_blocking(move || -> idflow_core::Result<T> {
        let store = idflow_store::Store::open(&path)?;
        let tx = store.read()?;
        f(&tx)
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("reading the metaverse failed: {e}")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("reading the metaverse failed: {e}")).into_response()),
    }
}
