//! The CLI's side of the control API: find the running service from the service file beside
//! the metaverse, and ask it.
use crate::service_file::{path_for, ServiceFile};
use idflow_core::{Error, Result};
use idflow_engine::Config;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

pub struct Client {
    base: String,
    token: zeroize::Zeroizing<String>,
    /// The service's certificate, when it serves HTTPS.
    tls: Option<ureq::tls::TlsConfig>,
}

/// Where the metaverse and the token file are, read leniently from the configuration's text:
/// a service must stay reachable while its configuration file is broken (the service runs on
/// the previous one, and `status` says why the new one is refused).
fn lenient(config_file: &Path) -> Result<(PathBuf, Option<String>, PathBuf)> {
    let dir = config_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    if let Ok(c) = Config::load(config_file) {
        return Ok((c.metaverse_path, c.service.token_file, c.dir));
    }
    let text = std::fs::read_to_string(config_file).map_err(|e| Error::io(config_file, "cannot read", e))?;
    let (mut section, mut metaverse, mut token_file) = (String::new(), None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches('"').to_string();
        match (section.as_str(), k.trim()) {
            ("metaverse", "path") => metaverse = Some(v),
            ("service", "token_file") => token_file = Some(v),
            _ => {}
        }
    }
    let metaverse = metaverse.ok_or_else(|| Error::Config(format!("{}: no [metaverse] path", config_file.display())))?;
    Ok((dir.join(metaverse), token_file, dir))
}

impl Client {
    /// The dashboard's address, and a link that signs a browser in once, within 2 minutes.
    pub fn dashboard_links(&self) -> Result<(String, String)> {
        let v: serde_json::Value = self.call("POST", "/v1/signin-code", None)?;
        let code = v["code"].as_str().ok_or_else(|| Error::Refused("the service gave no sign-in code".into()))?;
        Ok((format!("{}/ui", self.base), format!("{}/ui/login?code={code}", self.base)))
    }

    /// The service running for this configuration file, or an error saying none is.
    pub fn connect(config_file: &Path) -> Result<Client> {
        let (metaverse, token_file, dir) = lenient(config_file)?;
        let path = path_for(&metaverse);
        let not_running = || {
            Error::Refused(format!(
                "no idflow service is running for {} (start it with: idflow --config {} serve)",
                config_file.display(),
                config_file.display()
            ))
        };
        let file = ServiceFile::read(&path).ok_or_else(not_running)?;
        // A service killed with -9 leaves its file: its token must not go to whatever listens
        // on that port now.
        #[cfg(target_os = "linux")]
        if !std::path::Path::new(&format!("/proc/{}", file.pid)).exists() {
            return Err(not_running());
        }
        let token = match (&token_file, file.token) {
            (Some(f), _) => idflow_core::secret::read(&dir, "token", None, Some(f))
                .map_err(|m| Error::Config(format!("[service] token_file: {m}")))?
                .ok_or_else(|| Error::Config("[service] token_file is empty".into()))?,
            (None, Some(t)) => zeroize::Zeroizing::new(t),
            (None, None) => return Err(Error::Config("the service file holds no token and [service] has no token_file".into())),
        };
        // A service listening on every address is reached on loopback.
        let address = match file.address.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_unspecified() => {
                let ip = if a.is_ipv4() { "127.0.0.1" } else { "[::1]" };
                format!("{ip}:{}", a.port())
            }
            _ => file.address.clone(),
        };
        let tls = file.tls_cert.as_deref().map(crate::tls::client_config).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Client { base: format!("{scheme}://{address}"), token, tls })
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token.as_str());
        let mut config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(std::time::Duration::from_secs(30)));
        if let Some(tls) = &self.tls {
            config = config.tls_config(tls.clone());
        }
        let agent: ureq::Agent = config.build().into();
        let r = match (method, body) {
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut r = r.map_err(|e| {
            let hint = if e.to_string().contains("CaUsedAsEndEntity") {
                " (the certificate in [service] tls_cert is a CA's: serve an end-entity certificate, with the CA after it in the file)"
            } else {
                ": is it running? (idflow serve)"
            };
            Error::Refused(format!("the idflow service at {} does not answer ({e}){hint}", self.base))
        })?;
        let code = r.status().as_u16();
        let v: serde_json::Value =
            r.body_mut().read_json().map_err(|e| Error::Refused(format!("the service's answer to {path} is not JSON: {e}")))?;
        if code != 200 {
            let m = v["error"].as_str().unwrap_or("no reason given");
            return Err(Error::Refused(format!("the service refused: {m}")));
        }
        serde_json::from_value(v).map_err(|e| Error::Refused(format!("the service's answer to {path}: {e}")))
    }

    pub fn status(&self) -> Result<crate::Status> {
        self.call("GET", "/v1/status", None)
    }

    /// Starts a cycle now: what the service said, and its ticket, under which `status().requested` keeps the result when it has ended.
    pub fn cycle(&self, full: bool, connectors: &[String]) -> Result<(String, u64)> {
        let v: serde_json::Value = self.call("POST", "/v1/cycle", Some(serde_json::json!({ "full": full, "connectors": connectors })))?;
        Ok((v["ok"].as_str().unwrap_or_default().to_string(), v["ticket"].as_u64().unwrap_or(0)))
    }

    /// What a cycle would change now, as the service computes it: the plan (in its saved
    /// form, for `plan --out`) and the notes.
    pub fn plan(&self) -> Result<(idflow_engine::SavedPlan, Vec<String>)> {
        let v: serde_json::Value = self.call("POST", "/v1/plan", None)?;
        let saved = serde_json::from_value(v["saved"].clone()).map_err(|e| Error::Refused(format!("the service's plan: {e}")))?;
        let notes = v["notes"].as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect()).unwrap_or_default();
        Ok((saved, notes))
    }

    pub fn scheduler(&self, pause: bool) -> Result<String> {
        let path = if pause { "/v1/scheduler/pause" } else { "/v1/scheduler/resume" };
        let v: serde_json::Value = self.call("POST", path, None)?;
        Ok(v["ok"].as_str().unwrap_or_default().to_string())
    }
}
