//! `[service]`: how `idflow serve` schedules cycles, where it listens, and how it logs.
//! Durations are written the way people say them: "30s", "5m", "2h", "7d".
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSection {
    /// A delta cycle at least this often (Entra Connect: 30 minutes).
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Password hash sync this often, when `[password_hash_sync]` is configured (Entra: 2 minutes).
    #[serde(deserialize_with = "duration")]
    pub phs_interval: Duration,
    /// A full cycle (full import and sync) at least this often (Entra requires one a week).
    #[serde(deserialize_with = "duration")]
    pub full_every: Duration,
    /// Run history older than this many days is removed.
    pub history_days: u32,
    /// Changes a directory reports within this long of each other make one cycle.
    #[serde(deserialize_with = "duration")]
    pub debounce: Duration,
    /// How often Active Directory is asked (DirSync) whether anything changed.
    #[serde(deserialize_with = "duration")]
    pub dirsync_poll: Duration,
    /// The control API's address: loopback only ("127.0.0.1:7389"); port 0 picks a free one.
    pub listen: String,
    /// A file holding the control API's token; without it a random token is made at each start
    /// and kept in the owner-only service file beside the metaverse, where the CLI reads it.
    pub token_file: Option<String>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// A PEM certificate (chain) and its key (owner-only): the API and the dashboard are then
    /// served over HTTPS, and may listen on an address other than loopback.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// A folder (relative to the configuration's) the service backs the metaverse up into, as
    /// `idflow backup` does, every `backup_every`, keeping the newest `backup_keep`. None: no
    /// scheduled backups.
    pub backup_dir: Option<String>,
    #[serde(deserialize_with = "duration")]
    pub backup_every: Duration,
    pub backup_keep: usize,
}

/// "30s", "5m", "2h", "7d", "300ms", or an error that says how to write one.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}): write a number and a unit, like \"30s\", \"5m\", \"2h\" or \"7d\""
        ))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ServiceSection {
    fn default() -> Self {
        ServiceSection {
            interval: Duration::from_secs(30 * 60),
            phs_interval: Duration::from_secs(2 * 60),
            full_every: Duration::from_secs(7 * 24 * 3600),
            history_days: 7,
            debounce: Duration::from_millis(300),
            dirsync_poll: Duration::from_secs(5),
            listen: "127.0.0.1:7389".into(),
            token_file: None,
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
            backup_dir: None,
            backup_every: Duration::from_secs(24 * 3600),
            backup_keep: 7,
        }
    }
}
