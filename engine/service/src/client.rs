//! The CLI's side of the control API: find the running service from the service file beside
//! the metaverse, and ask it.
use crate::service_file::{path_for, ServiceFile};
use idflow_core::{Error, Result};
use idflow_engine::Config;
use serde::de::DeserializeOwned;

pub struct Client {
    base: String,
    token: zeroize::Zeroizing<String>,
}

impl Client {
    /// The service running for this configuration, or an error saying none is.
    pub fn connect(config: &Config) -> Result<Client> {
        let path = path_for(&config.metaverse_path);
        let not_running = || {
            Error::Refused(format!(
                "no idflow service is running for {} (start it with: idflow --config {} serve)",
                config.file.display(),
                config.file.display()
            ))
        };
        let file = ServiceFile::read(&path).ok_or_else(not_running)?;
        let token = match (&config.service.token_file, file.token) {
            (Some(f), _) => idflow_core::secret::read(&config.dir, "token", None, Some(f))
                .map_err(|m| Error::Config(format!("[service] token_file: {m}")))?
                .ok_or_else(|| Error::Config("[service] token_file is empty".into()))?,
            (None, Some(t)) => zeroize::Zeroizing::new(t),
            (None, None) => return Err(Error::Config("the service file holds no token and [service] has no token_file".into())),
        };
        Ok(Client { base: format!("http://{}", file.address), token })
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token.as_str());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        let r = match (method, body) {
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut r = r.map_err(|e| {
            Error::Refused(format!("the idflow service at {} does not answer ({e}): is it running? (idflow serve)", self.base))
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

    /// Starts a cycle now: what the service said, and the ticket `status().requested_done` reaches when it has ended.
    pub fn cycle(&self, full: bool, connectors: &[String]) -> Result<(String, u64)> {
        let v: serde_json::Value = self.call("POST", "/v1/cycle", Some(serde_json::json!({ "full": full, "connectors": connectors })))?;
        Ok((v["ok"].as_str().unwrap_or_default().to_string(), v["ticket"].as_u64().unwrap_or(0)))
    }

    pub fn scheduler(&self, pause: bool) -> Result<String> {
        let path = if pause { "/v1/scheduler/pause" } else { "/v1/scheduler/resume" };
        let v: serde_json::Value = self.call("POST", path, None)?;
        Ok(v["ok"].as_str().unwrap_or_default().to_string())
    }
}
