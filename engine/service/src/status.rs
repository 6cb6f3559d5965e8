//! What `idflow status` shows: the scheduler, the cycle running now, when the next ones are due,
//! and how the last cycle went for each connector.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub config: String,
    pub started: String,
    /// Scheduled and change-driven cycles are paused (`idflow scheduler pause`); password hash
    /// sync goes on, as in Entra Connect.
    pub paused: bool,
    pub staging_mode: bool,
    /// The cycle running now.
    pub current: Option<Current>,
    /// When the next delta cycle, password hash sync and full cycle are due (UTC).
    pub next_delta: Option<String>,
    pub next_phs: Option<String>,
    /// Connectors whose directory reported changes not yet imported.
    pub pending: Vec<String>,
    pub cycles: u64,
    /// How the latest requested cycles ended, by ticket.
    pub requested: BTreeMap<u64, LastCycle>,
    pub last_cycle: Option<LastCycle>,
    pub connectors: BTreeMap<String, ConnectorStatus>,
    /// The last reload that was refused, with why (the old configuration keeps running).
    pub reload_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Current {
    pub profile: String,
    pub started: String,
    /// The stage running (import corp, inbound sync, export cloud, ...).
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastCycle {
    pub run_id: Option<i64>,
    pub profile: String,
    /// ok, errors (some objects or connectors failed), failed.
    pub status: String,
    pub finished: String,
    pub duration_ms: u128,
    /// import read/added/updated/deleted, export added/updated/deleted/failed, object errors.
    pub counts: BTreeMap<String, u64>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectorStatus {
    /// How changes are noticed: "syncrepl refreshAndPersist", "DirSync every 5s", or "timer".
    pub trigger: String,
    /// The change feed's state: watching, or why it is down (it is retried).
    pub feed: Option<String>,
    /// ok or the error of this connector's part of the last cycle that touched it.
    pub last_result: Option<String>,
    pub last_at: Option<String>,
    /// Cycles in a row this connector failed (retried with backoff).
    pub failures_in_a_row: u32,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A moment `d` from now, as status shows it.
pub(crate) fn after(d: std::time::Duration) -> String {
    (chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default()).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
