//! The service file beside the metaverse (`idflow.db.service.json`, owner-only): where the
//! running service listens and, unless `token_file` is configured, the token it made. The CLI
//! verbs that talk to the service read it; it is removed when the service stops.
use idflow_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceFile {
    pub pid: u32,
    pub address: String,
    /// The token, when the service made it (no `token_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The certificate the service serves HTTPS with (the CLI trusts it), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
}

pub fn path_for(metaverse: &Path) -> PathBuf {
    let mut p = metaverse.as_os_str().to_owned();
    p.push(".service.json");
    PathBuf::from(p)
}

impl ServiceFile {
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Refused(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(|e| Error::io(&tmp, "cannot create", e))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| Error::io(&tmp, "cannot write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "cannot write", e))
    }

    pub fn read(path: &Path) -> Option<ServiceFile> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }
}
