//! The control API: JSON over HTTP on a loopback address, every request carrying the service's
//! token (`Authorization: Bearer ...`). `idflow status`, `cycle --now` and `scheduler` use it.
use crate::status::Status;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What the API asks of the scheduler; the answer says what happened, or why not.
pub(crate) enum Command {
    Cycle {
        full: bool,
        connectors: Vec<String>,
        reply: oneshot::Sender<Result<(String, u64), String>>,
    },
    Pause(oneshot::Sender<Result<String, String>>),
    Resume(oneshot::Sender<Result<String, String>>),
    /// Runs on the engine's thread when it is free: plans and previews.
    Ask(crate::worker::Job),
}

#[derive(Clone)]
pub(crate) struct Api {
    pub status: Arc<Mutex<Status>>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub token: Arc<zeroize::Zeroizing<String>>,
    pub metaverse: PathBuf,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Served over HTTPS (the session cookie is then Secure).
    pub tls: bool,
    pub sessions: Arc<crate::dashboard::session::Sessions>,
}

#[derive(Deserialize)]
pub(crate) struct CycleBody {
    #[serde(default)]
    full: bool,
    #[serde(default)]
    connectors: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    n: Option<i64>,
}

pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/cycle", post(cycle))
        .route("/v1/scheduler/pause", post(pause))
        .route("/v1/scheduler/resume", post(resume))
        .route("/v1/history", get(history))
        .route("/v1/plan", post(plan))
        .route("/v1/alerts", get(alerts))
        .route("/v1/signin-code", post(signin_code))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), authorized))
        .with_state(api.clone())
        .merge(crate::dashboard::router(api))
}

/// A one-time code that signs a browser in to the dashboard (`idflow dashboard`).
async fn signin_code(State(api): State<Api>) -> Response {
    Json(serde_json::json!({ "code": api.sessions.code() })).into_response()
}

/// The open alerts and the newest of the history.
async fn alerts(State(api): State<Api>, Query(q): Query<HistoryQuery>) -> Response {
    let n = q.n.unwrap_or(50).clamp(1, 1000);
    match crate::dashboard::read(&api, move |r| Ok(serde_json::json!({ "open": r.alert_open()?, "history": r.alert_history(n)? }))).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e,
    }
}

/// Compares in time that does not depend on where the first difference is.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every request carries the token, or is refused before any handler sees it.
async fn authorized(State(api): State<Api>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if same(given.as_bytes(), api.token.as_bytes()) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "missing or wrong token"}))).into_response()
    }
}

fn answer(r: Result<Result<String, String>, oneshot::error::RecvError>) -> Response {
    match r {
        Ok(Ok(m)) => Json(serde_json::json!({ "ok": m })).into_response(),
        Ok(Err(m)) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": m }))).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "the service is stopping" }))).into_response(),
    }
}

async fn status(State(api): State<Api>) -> Response {
    let s = api.status.lock().map(|s| s.clone()).unwrap_or_default();
    Json(s).into_response()
}

async fn cycle(State(api): State<Api>, Json(body): Json<CycleBody>) -> Response {
    let (reply, rx) = oneshot::channel();
    let _ = api.commands.send(Command::Cycle { full: body.full, connectors: body.connectors, reply });
    match rx.await {
        Ok(Ok((m, ticket))) => Json(serde_json::json!({ "ok": m, "ticket": ticket })).into_response(),
        Ok(Err(m)) => answer(Ok(Err(m))),
        Err(e) => answer(Err(e)),
    }
}

async fn pause(State(api): State<Api>) -> Response {
    let (reply, rx) = oneshot::channel();
    let _ = api.commands.send(Command::Pause(reply));
    answer(rx.await)
}

async fn resume(State(api): State<Api>) -> Response {
    let (reply, rx) = oneshot::channel();
    let _ = api.commands.send(Command::Resume(reply));
    answer(rx.await)
}

/// What a cycle would change now, computed by the service (it holds the metaverse).
async fn plan(State(api): State<Api>) -> Response {
    let (reply, rx) = oneshot::channel();
    let _ = api.commands.send(Command::Ask(crate::worker::Job::Plan(reply)));
    match rx.await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(m)) => answer(Ok(Err(m))),
        Err(e) => answer(Err(e)),
    }
}

/// For Prometheus (with `authorization: credentials_file:` holding the token).
async fn metrics(State(api): State<Api>) -> Response {
    if let Ok(s) = api.status.lock() {
        api.metrics.paused(s.paused, s.staging_mode);
    }
    let body = api.metrics.encode();
    ([("content-type", crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn history(State(api): State<Api>, Query(q): Query<HistoryQuery>) -> Response {
    let path = api.metaverse.clone();
    let n = q.n.unwrap_or(10).clamp(1, 1000);
    let runs = tokio::task::spawn_blocking(move || -> idflow_core::Result<Vec<idflow_store::RunRow>> {
        let store = idflow_store::Store::open(&path)?;
        let tx = store.read()?;
        let runs = idflow_store::ReadOps::history_recent(&tx, n)?;
        Ok(runs)
    })
    .await;
    match runs {
        Ok(Ok(runs)) => Json(runs).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response(),
    }
}
