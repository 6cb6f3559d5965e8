//! HTTP for SCIM: authentication, timeouts, and polite retries (429 with Retry-After, 5xx and
//! timeouts with exponential backoff and jitter). Tokens never reach a log.
use super::config::OAuth;
use idflow_core::{Error, Result};
use serde_json::Value as J;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub(super) enum Auth {
    None,
    Bearer(Zeroizing<String>),
    ClientCredentials { conf: OAuth, secret: Zeroizing<String>, token: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>> },
}

pub(super) struct Client {
    name: String,
    base: String,
    http: reqwest::Client,
    auth: Auth,
    max_retries: u32,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

fn jitter(max_ms: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % max_ms.max(1)
}

impl Client {
    pub(super) fn new(
        name: &str,
        base: &str,
        auth: Auth,
        tls: std::sync::Arc<rustls::ClientConfig>,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Client> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| Error::connector(name, format!("HTTP client: {e}")))?;
        Ok(Client {
            name: name.into(),
            base: base.into(),
            http,
            auth,
            max_retries,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }

    pub(super) fn counts(&self) -> (usize, usize) {
        (self.reads.load(Ordering::Relaxed), self.writes.load(Ordering::Relaxed))
    }

    async fn bearer(&self) -> std::result::Result<Option<Zeroizing<String>>, String> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some(t.clone())),
            Auth::ClientCredentials { conf, secret, token } => {
                let mut guard = token.lock().await;
                if let Some((t, until)) = guard.as_ref() {
                    // Refreshed a minute before it expires.
                    if Instant::now() + Duration::from_secs(60) < *until {
                        return Ok(Some(t.clone()));
                    }
                }
                let mut form = vec![("grant_type", "client_credentials".to_string())];
                if let Some(s) = &conf.scope {
                    form.push(("scope", s.clone()));
                }
                let body: String = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
                let resp = self
                    .http
                    .post(&conf.token_url)
                    .basic_auth(&conf.client_id, Some(secret.as_str()))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("OAuth token endpoint: {e}"))?;
                let status = resp.status().as_u16();
                let j: J = resp.json().await.map_err(|e| format!("OAuth token endpoint: {e}"))?;
                let Some(t) = j["access_token"].as_str() else {
                    return Err(format!(
                        "OAuth token endpoint answered {status} without an access_token ({})",
                        j["error"].as_str().unwrap_or("no error given")
                    ));
                };
                let ttl = j["expires_in"].as_u64().unwrap_or(3600);
                let t = Zeroizing::new(t.to_string());
                *guard = Some((t.clone(), Instant::now() + Duration::from_secs(ttl)));
                Ok(Some(t))
            }
        }
    }

    /// Sends with retries; returns the final status and JSON body (`null` when empty).
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&J>,
        write: bool,
    ) -> std::result::Result<(u16, J), String> {
        self.send_query(method, path, &[], body, write).await
    }

    pub(super) async fn get(&self, path: &str) -> std::result::Result<(u16, J), String> {
        self.send_query(reqwest::Method::GET, path, &[], None, false).await
    }

    pub(super) async fn get_query(&self, path: &str, q: &[(&str, &str)]) -> std::result::Result<(u16, J), String> {
        self.send_query(reqwest::Method::GET, path, q, None, false).await
    }

    async fn send_query(
        &self,
        method: reqwest::Method,
        path: &str,
        q: &[(&str, &str)],
        body: Option<&J>,
        write: bool,
    ) -> std::result::Result<(u16, J), String> {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut attempt = 0u32;
        loop {
            let mut req = self.http.request(method.clone(), &url).header("Accept", "application/scim+json, application/json");
            if !q.is_empty() {
                let qs: String = q.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
                req = self.http.request(method.clone(), format!("{url}?{qs}")).header("Accept", "application/scim+json, application/json");
            }
            if let Some(t) = self.bearer().await? {
                req = req.bearer_auth(t.as_str());
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/scim+json").body(b.to_string());
            }
            if write {
                self.writes.fetch_add(1, Ordering::Relaxed);
            } else {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            let backoff = |attempt: u32| {
                let base = 200u64.saturating_mul(1 << attempt.min(6)).min(10_000);
                Duration::from_millis(base + jitter(base))
            };
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if (status == 429 || status >= 500) && attempt < self.max_retries {
                        let wait = resp
                            .headers()
                            .get("Retry-After")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s.min(300)))
                            .unwrap_or_else(|| backoff(attempt));
                        tracing::info!(connector = %self.name, status, wait_ms = wait.as_millis() as u64, "the service asks to slow down; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let text = resp.text().await.map_err(|e| format!("{method} {path}: {e}"))?;
                    let j = if text.trim().is_empty() {
                        J::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(J::String(text.chars().take(300).collect()))
                    };
                    return Ok((status, j));
                }
                Err(e) if (e.is_timeout() || e.is_connect() || e.is_request()) && attempt < self.max_retries => {
                    tracing::info!(connector = %self.name, "{method} {path}: {e}; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(format!("{method} {path}: {e} (after {} attempts)", attempt + 1)),
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
