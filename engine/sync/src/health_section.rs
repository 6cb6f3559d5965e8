//! `[health]`: when `idflow serve` raises its alerts, and where it sends them.
use crate::service_section::duration;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// No successful cycle for this long (or three `[service] interval`s, whichever is longer)
    /// raises an alert (Connect Health: 2 hours).
    #[serde(deserialize_with = "duration")]
    pub no_cycle_after: Duration,
    /// No successful password hash sync for this long raises an alert (Connect Health: 120 minutes).
    #[serde(deserialize_with = "duration")]
    pub phs_heartbeat_after: Duration,
    /// More objects in error than this raises an alert.
    pub objects_in_error_above: usize,
    /// A cycle running longer than this makes the service's numbers stale.
    #[serde(deserialize_with = "duration")]
    pub cycle_stuck_after: Duration,
    /// A pass-through authentication relay with no agent connected for this long raises an
    /// alert (an agent that lost the relay dials again after a pause of at most a minute).
    #[serde(deserialize_with = "duration")]
    pub pta_no_agent_after: Duration,
    /// How often the conditions are checked besides after each cycle.
    #[serde(deserialize_with = "duration")]
    pub check_every: Duration,
    /// Where each raise and resolve is sent (JSON POST, retried with backoff). A URL can hold a
    /// secret (chat webhooks do): logs name only its host.
    pub webhooks: Vec<String>,
    /// A file with a token sent as `Authorization: Bearer` to the webhooks.
    pub webhook_token_file: Option<String>,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            no_cycle_after: Duration::from_secs(2 * 3600),
            phs_heartbeat_after: Duration::from_secs(120 * 60),
            objects_in_error_above: 0,
            cycle_stuck_after: Duration::from_secs(3600),
            pta_no_agent_after: Duration::from_secs(3 * 60),
            check_every: Duration::from_secs(30),
            webhooks: Vec::new(),
            webhook_token_file: None,
        }
    }
}
