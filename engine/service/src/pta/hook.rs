//! The HTTPS password-verification hook, for identity providers that ask over HTTP:
//! - `POST /okta/password-import`: Okta's password import inline hook. Okta sends the user's
//!   name and password with the Authorization header configured for the hook; the answer is
//!   its `com.okta.action.update` command, `VERIFIED` or `UNVERIFIED`.
//! - `POST /v1/verify`: `{"username", "password", "client_ip"?}` signed with HMAC-SHA256 over
//!   `TIMESTAMP.BODY` (headers `X-Idflow-Timestamp`, `X-Idflow-Signature`), within 5 minutes of
//!   the clock, each signature once (for Auth0 custom database scripts, Keycloak extensions).
//!   The answer: `{"verified": bool, "result": "success" | "invalid_credentials" | ...}`.
use super::{secret_file, Pta};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{KeyInit, Mac};
use idflow_core::password_check::CheckResult;
use idflow_core::{Error, Result};
use idflow_engine::{Config, PtaSection};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// How far a signed call's timestamp may be from the clock, and how long its signature is remembered.
pub(crate) const REPLAY_WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Hook {
    pta: Arc<Pta>,
    okta: Option<Arc<Zeroizing<String>>>,
    key: Option<Arc<Zeroizing<String>>>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

/// The signature of a call: hex HMAC-SHA256 of `TIMESTAMP.BODY` under the hook's key.
pub(crate) fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn refuse(code: StatusCode, why: &str) -> Response {
    (code, Json(serde_json::json!({ "error": why }))).into_response()
}

fn text(v: &serde_json::Value) -> Option<Zeroizing<String>> {
    v.as_str().map(|s| Zeroizing::new(s.to_string()))
}

async fn okta_hook(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(expected) = &h.okta else { return refuse(StatusCode::NOT_FOUND, "the Okta hook is not configured") };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::api::same(given.as_bytes(), expected.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "wrong authorization");
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return refuse(StatusCode::BAD_REQUEST, "not JSON") };
    let cred = &v["data"]["context"]["credential"];
    let (Some(user), Some(password)) = (cred["username"].as_str(), text(&cred["password"])) else {
        return refuse(StatusCode::BAD_REQUEST, "no data.context.credential username and password");
    };
    // The user's address as Okta saw it; Okta's own server is not the user.
    let client = v["data"]["context"]["request"]["ipAddress"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
    let outcome = h.pta.authenticate("okta", user, password, client).await;
    if outcome.rate_limited {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "too many requests from this client; try again in a second");
    }
    let verdict = if outcome.result == CheckResult::Success { "VERIFIED" } else { "UNVERIFIED" };
    Json(serde_json::json!({ "commands": [{ "type": "com.okta.action.update", "value": { "credential": verdict } }] })).into_response()
}

async fn verify_hook(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = &h.key else { return refuse(StatusCode::NOT_FOUND, "signed calls are not configured (hook_secret_file)") };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (ts, sig) = (header("x-idflow-timestamp"), header("x-idflow-signature"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let fresh = ts.parse::<u64>().is_ok_and(|t| t.abs_diff(now) <= REPLAY_WINDOW.as_secs());
    if !fresh {
        return refuse(StatusCode::UNAUTHORIZED, "X-Idflow-Timestamp missing or not within 5 minutes of the clock");
    }
    if !crate::api::same(sig.as_bytes(), signature(key.as_bytes(), &ts, &body).as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "wrong X-Idflow-Signature");
    }
    {
        let Ok(mut seen) = h.seen.lock() else { return refuse(StatusCode::INTERNAL_SERVER_ERROR, "busy") };
        seen.retain(|_, t| t.elapsed() < REPLAY_WINDOW * 2);
        if seen.insert(sig, Instant::now()).is_some() {
            return refuse(StatusCode::UNAUTHORIZED, "this signed call was made before (a replay)");
        }
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return refuse(StatusCode::BAD_REQUEST, "not JSON") };
    let (Some(user), Some(password)) = (v["username"].as_str(), text(&v["password"])) else {
        return refuse(StatusCode::BAD_REQUEST, "give username and password");
    };
    // The caller is an identity provider's server: the user's address only when it says so.
    let client = v["client_ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
    let outcome = h.pta.authenticate("hook", user, password, client).await;
    if outcome.rate_limited {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "too many requests from this client; try again in a second");
    }
    Json(serde_json::json!({
        "verified": outcome.result == CheckResult::Success,
        "result": outcome.result.as_str(),
        "smart_lockout": outcome.smart_lockout,
    }))
    .into_response()
}

pub(super) async fn start(config: &Config, section: &PtaSection, listen: &str, pta: Arc<Pta>) -> Result<()> {
    let okta = section.okta_authorization_file.as_deref().map(|f| secret_file(config, "okta_authorization_file", f)).transpose()?;
    let key = section.hook_secret_file.as_deref().map(|f| secret_file(config, "hook_secret_file", f)).transpose()?;
    if okta.is_none() && key.is_none() {
        return Err(Error::Config(format!(
            "{}: [pta] hook_listen needs okta_authorization_file or hook_secret_file (or both)",
            config.file.display()
        )));
    }
    let addr: SocketAddr = listen.parse().map_err(|e| Error::Config(format!("[pta] hook_listen {listen:?}: {e}")))?;
    let tls = match (&section.hook_tls_cert, &section.hook_tls_key) {
        (Some(c), Some(k)) => Some(crate::tls::acceptor(&config.dir.join(c), &config.dir.join(k))?),
        (None, None) if addr.ip().is_loopback() => None,
        (None, None) => {
            return Err(Error::Config(format!(
                "{}: [pta] hook_listen {addr}: passwords cross the network: set hook_tls_cert and hook_tls_key (plain HTTP is for loopback only)",
                config.file.display()
            )))
        }
        _ => return Err(Error::Config(format!("{}: [pta] hook_tls_cert and hook_tls_key go together", config.file.display()))),
    };
    let hook = Hook { pta, okta: okta.map(Arc::new), key: key.map(Arc::new), seen: Arc::default() };
    let app = Router::new().route("/okta/password-import", post(okta_hook)).route("/v1/verify", post(verify_hook)).with_state(hook);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Refused(format!("cannot listen on {addr} ([pta] hook_listen): {e}")))?;
    let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address = %local, tls = tls.is_some(), "password-verification hook listening");
    let service = app.into_make_service();
    match tls {
        Some(acceptor) => {
            let l = crate::tls::TlsListener::new(tcp, acceptor).map_err(|e| Error::Refused(format!("listening on {local}: {e}")))?;
            tokio::spawn(async move {
                let _ = axum::serve(l, service).await;
            });
        }
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(tcp, service).await;
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signature_covers_the_timestamp_and_the_body() {
        let a = super::signature(b"k", "1700000000", b"{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, super::signature(b"k", "1700000001", b"{}"));
        assert_ne!(a, super::signature(b"k", "1700000000", b"{ }"));
        assert_ne!(a, super::signature(b"j", "1700000000", b"{}"));
    }
}
