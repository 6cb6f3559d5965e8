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
    /// `[password_hash_sync]` is configured.
    #[serde(default)]
    pub phs_configured: bool,
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
    /// The last reload that was refused, or applied but for its backup settings, with why
    /// (said whole: "REFUSED, ..." or "PARTLY applied: ...").
    pub reload_error: Option<String>,
    /// When a cycle last ended with every connector's part done (object errors allowed).
    pub last_success: Option<String>,
    /// When password hash sync last ran without failing, and why it failed last, if it did.
    pub phs_last_success: Option<String>,
    pub phs_failure: Option<String>,
    /// Targets whose deletions the deletion threshold holds, with what it said.
    pub deletions_held: BTreeMap<String, String>,
    /// Targets whose export stopped after failing again and again (the circuit breaker).
    pub breakers_open: BTreeMap<String, String>,
    /// The alerts open now.
    pub alerts: Vec<idflow_store::AlertRow>,
    /// Objects in error now (the error report's count) and by category.
    pub objects_in_error: usize,
    /// Errors of a whole connector in the latest runs (also alerts of their own).
    #[serde(default)]
    pub connector_errors: usize,
    pub errors_by_category: BTreeMap<String, usize>,
    /// Changes waiting to be exported, by target.
    pub pending_exports: BTreeMap<String, i64>,
    /// Pass-through authentication's directory did not answer the last check: why.
    #[serde(default)]
    pub pta_unreachable: Option<String>,
    /// This service relays pass-through authentication: the agents connected now, and since
    /// when none has been (None while one is).
    #[serde(default)]
    pub pta_agents: Option<usize>,
    #[serde(default)]
    pub pta_no_agent_since: Option<String>,
    /// When health was last checked, and how long the check took (milliseconds).
    pub checked: Option<String>,
    #[serde(default)]
    pub check_ms: u64,
    /// Scheduled backups (`[service] backup_dir`), when there are any.
    #[serde(default)]
    pub backup: Option<BackupStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupStatus {
    pub dir: String,
    /// The last backup taken (its file, size and time), when it was, and when the next is due.
    pub last: Option<String>,
    pub last_file: Option<String>,
    pub last_bytes: Option<u64>,
    pub next: Option<String>,
    /// Since when the one being taken now has been (none between backups).
    pub running: Option<String>,
    /// Why the last attempt failed, until one succeeds (an alert of its own).
    pub failure: Option<String>,
    /// Older backups the last one should have removed and could not (the same alert).
    pub unremoved: Option<String>,
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
    /// The stage (import, export) and category of the last failure, while it lasts.
    pub failed_stage: Option<String>,
    pub failure_category: Option<String>,
    /// When its import and its export last succeeded.
    pub last_import_ok: Option<String>,
    pub last_export_ok: Option<String>,
}

/// A time as status writes it, read back (`None` for anything else).
pub(crate) fn parse(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
}

impl Status {
    /// What the error report must have seen to be complete: every connector, and password hash
    /// sync when it is configured.
    pub(crate) fn error_scope(&self) -> idflow_engine::ErrorScope {
        idflow_engine::ErrorScope { connectors: self.connectors.keys().cloned().collect(), phs: self.phs_configured }
    }
}

pub(crate) fn now() -> String {
    shown(chrono::Utc::now())
}

/// A time as status writes it.
pub(crate) fn shown(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A moment `d` from now, as status shows it.
pub(crate) fn after(d: std::time::Duration) -> String {
    shown(chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
}
