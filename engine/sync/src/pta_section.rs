//! `[pta]`: pass-through authentication, passwords checked by an on-premises directory.
use crate::Config;
use idflow_core::password_check::PasswordCheck;
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtaSection {
    /// The directory connector that checks passwords (an `ldap` connector: AD or OpenLDAP);
    /// a relay, which checks nothing itself, has none.
    #[serde(default)]
    pub connector: Option<String>,
    /// More servers of the same directory, tried in turn when the connector's does not answer.
    #[serde(default)]
    pub failover_urls: Vec<String>,
    /// Checks that may run at once (each on a connection of its own).
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// A request not answered within this long is answered `unreachable`.
    #[serde(default = "default_deadline", deserialize_with = "crate::service_section::duration")]
    pub deadline: std::time::Duration,
    /// Smart lockout: failures a user may have per window from unknown sources (and again from
    /// known-good ones); default: half of the domain's lockoutThreshold less one (10 without one).
    #[serde(default)]
    pub user_budget: Option<u32>,
    /// Failures one client address may have per window, for any users.
    #[serde(default = "default_client_budget")]
    pub client_budget: u32,
    /// Requests one client address may make per second, whatever their outcome.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    /// The window failures count in; default: the domain's lockOutObservationWindow (30 min).
    #[serde(default, deserialize_with = "optional_duration")]
    pub window: Option<std::time::Duration>,
    /// RADIUS (PAP, Message-Authenticator required): where it listens ("127.0.0.1:1812").
    #[serde(default)]
    pub radius_listen: Option<String>,
    /// The RADIUS clients allowed, each with its own shared secret (a file, owner-only).
    #[serde(default, rename = "radius_client")]
    pub radius_clients: Vec<RadiusClient>,
    /// The HTTPS password-verification hook (Okta's password import inline hook, and a
    /// signed JSON call): where it listens.
    #[serde(default)]
    pub hook_listen: Option<String>,
    /// Its certificate and key (required unless it listens on loopback).
    #[serde(default)]
    pub hook_tls_cert: Option<String>,
    #[serde(default)]
    pub hook_tls_key: Option<String>,
    /// The value Okta sends in its Authorization header (a file).
    #[serde(default)]
    pub okta_authorization_file: Option<String>,
    /// The HMAC-SHA256 key of signed calls to /v1/verify (a file).
    #[serde(default)]
    pub hook_secret_file: Option<String>,
    /// `idflow pta relay` and `idflow pta serve`: where Prometheus reads `/metrics` (plain
    /// HTTP, counts only: requests, results, latency, lockouts, agents connected). `idflow
    /// serve` has its own `/metrics`; an agent never listens.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// `idflow pta relay`: where agents dial in (mutual TLS).
    #[serde(default)]
    pub relay_listen: Option<String>,
    /// How often the relay pings each agent; a side that hears nothing for three of these
    /// drops the connection (the agent then dials again).
    #[serde(default = "default_heartbeat", deserialize_with = "crate::service_section::duration")]
    pub heartbeat: std::time::Duration,
    /// `idflow pta agent`: the relay to dial ("relay.example.org:7390"); the agent never listens.
    #[serde(default)]
    pub relay: Option<String>,
    /// The relay's and the agents' TLS: the CA that signs both sides' certificates, and this
    /// side's certificate and key (owner-only).
    #[serde(default)]
    pub tls_ca: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClient {
    /// The client's address (the NAS, VPN concentrator or identity provider).
    pub address: std::net::IpAddr,
    /// A file holding its shared secret.
    pub secret_file: String,
}

fn default_pool() -> usize {
    4
}

fn default_deadline() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_heartbeat() -> std::time::Duration {
    std::time::Duration::from_secs(20)
}

fn default_rate() -> u32 {
    1000
}

fn default_client_budget() -> u32 {
    100
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<std::time::Duration>, D::Error> {
    crate::service_section::duration(d).map(Some)
}

/// The password check `[pta]` configures (each call opens one of its own).
pub fn password_check(config: &Config, registry: &Registry) -> Result<Box<dyn PasswordCheck>> {
    let pta = config.pta.as_ref().ok_or_else(|| {
        Error::Config(format!("{}: no [pta] section (connector = \"NAME\" of the directory that checks passwords)", config.file.display()))
    })?;
    let name = pta
        .connector
        .as_deref()
        .ok_or_else(|| Error::Config(format!("{}: [pta] has no connector (the directory that checks passwords)", config.file.display())))?;
    let cfg = config
        .connector(name)
        .ok_or_else(|| Error::Config(format!("{}: [pta] connector {name:?} is not a configured connector", config.file.display())))?;
    registry.parse(cfg)?.password_check(&pta.failover_urls).unwrap_or_else(|| {
        Err(Error::Config(format!(
            "{}: [pta] connector {name:?} is of type {:?}, which cannot check passwords (use an ldap connector)",
            config.file.display(),
            cfg.kind
        )))
    })
}
