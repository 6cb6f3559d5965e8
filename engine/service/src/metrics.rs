//! `/metrics`: the service's state in the OpenMetrics text format, named by Prometheus's
//! conventions (an `idflow_` prefix, base units, `_total` counters, `_timestamp_seconds`
//! times) with bounded labels (connector, profile, status, operation).
use idflow_engine::RunReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    connector: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct AlertLabels {
    alert: String,
    severity: String,
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    profile: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProfileLabel {
    profile: String,
}

/// A connector and an operation (add, update, delete).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExportLabels {
    connector: String,
    operation: String,
}

type Seconds = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PtaLabels {
    front_end: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrontEndLabel {
    front_end: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabel {
    relay: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByLabel {
    by: String,
}

fn pta_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn duration_histogram() -> Histogram {
    // 5 ms to about 22 minutes.
    Histogram::new(exponential_buckets(0.005, 4.0, 10))
}

/// What `/metrics` answers with.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) struct Metrics {
    registry: Registry,
    cycles: Family<CycleLabels, Counter>,
    duration: Family<ProfileLabel, Histogram, fn() -> Histogram>,
    last_success: Family<ConnectorLabel, Seconds>,
    stage_success: Family<StageLabels, Seconds>,
    pending: Family<ConnectorLabel, Gauge>,
    held: Family<ConnectorLabel, Gauge>,
    breaker: Family<ConnectorLabel, Gauge>,
    alerts: Family<AlertLabels, Gauge>,
    /// Every alert label set shown so far: resolved ones read 0, not vanish.
    alerts_seen: std::sync::Mutex<std::collections::BTreeSet<AlertLabels>>,
    next_run: Seconds,
    health_checked: Seconds,
    last_cycle_success: Seconds,
    phs_configured: Gauge,
    pta_requests: Family<PtaLabels, Counter>,
    pta_duration: Family<FrontEndLabel, Histogram, fn() -> Histogram>,
    pta_lockouts: Family<ByLabel, Counter>,
    /// Shown only where a relay runs: 0 there is an alert, elsewhere meaningless.
    pta_agents: Family<RelayLabel, Gauge>,
    up: Family<ConnectorLabel, Gauge>,
    imported: Family<ExportLabels, Counter>,
    exported: Family<ExportLabels, Counter>,
    export_failed: Family<ConnectorLabel, Counter>,
    objects_in_error: Family<CategoryLabel, Gauge>,
    phs_heartbeat: Seconds,
    phs_delivered: Counter,
    paused: Gauge,
    staging: Gauge,
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("idflow");
        let m = Metrics {
            cycles: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            last_success: Family::default(),
            stage_success: Family::default(),
            pending: Family::default(),
            held: Family::default(),
            breaker: Family::default(),
            alerts: Family::default(),
            alerts_seen: Default::default(),
            next_run: Seconds::default(),
            health_checked: Seconds::default(),
            last_cycle_success: Seconds::default(),
            phs_configured: Gauge::default(),
            pta_requests: Family::default(),
            pta_duration: Family::new_with_constructor(pta_histogram),
            pta_lockouts: Family::default(),
            pta_agents: Family::default(),
            up: Family::default(),
            imported: Family::default(),
            exported: Family::default(),
            export_failed: Family::default(),
            objects_in_error: Family::default(),
            phs_heartbeat: Seconds::default(),
            phs_delivered: Counter::default(),
            paused: Gauge::default(),
            staging: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("build", "The idflow version running", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        registry.register("cycles", "Cycles run, by profile and outcome", m.cycles.clone());
        registry.register("cycle_duration_seconds", "How long cycles take", m.duration.clone());
        registry.register(
            "connector_last_success_timestamp_seconds",
            "When each connector's part of a cycle last succeeded",
            m.last_success.clone(),
        );
        registry.register("connector_up", "1 when the connector's part of the last cycle that touched it succeeded", m.up.clone());
        registry.register("objects_imported", "Objects imported into the connector space, by operation", m.imported.clone());
        registry.register("objects_exported", "Objects exported, by operation", m.exported.clone());
        registry.register("export_failures", "Export operations that failed", m.export_failed.clone());
        registry.register("objects_in_error", "Objects in error now (the error report), by category", m.objects_in_error.clone());
        registry.register(
            "stage_last_success_timestamp_seconds",
            "When each connector's import or export last succeeded",
            m.stage_success.clone(),
        );
        registry.register("pending_exports", "Changes waiting to be exported, by target", m.pending.clone());
        registry.register("deletions_held", "1 while the deletion threshold holds a target's deletions", m.held.clone());
        registry.register("export_breaker_open", "1 while a target's export is stopped after repeated failures", m.breaker.clone());
        registry.register("alert_active", "1 while an alert is open (0 once resolved)", m.alerts.clone());
        registry.register("scheduler_next_run_timestamp_seconds", "When the next scheduled delta cycle is due", m.next_run.clone());
        registry.register("health_checked_timestamp_seconds", "When the service last checked its health", m.health_checked.clone());
        registry.register(
            "cycle_last_success_timestamp_seconds",
            "When a cycle last ended with every connector's part done (the service's start until then)",
            m.last_cycle_success.clone(),
        );
        registry.register("phs_configured", "1 when password hash sync is configured", m.phs_configured.clone());
        registry.register("pta_requests", "Pass-through authentication requests, by front end and result", m.pta_requests.clone());
        registry.register("pta_duration_seconds", "How long pass-through authentication requests take", m.pta_duration.clone());
        registry.register(
            "pta_smart_lockouts",
            "Attempts refused without asking the directory: over a user's or a client's budget (smart lockout), or over a client's rate",
            m.pta_lockouts.clone(),
        );
        registry.register(
            "pta_agents_connected",
            "Agents connected to this pass-through authentication relay, by the address they dial (0: sign-ins fail)",
            m.pta_agents.clone(),
        );
        registry.register(
            "phs_last_heartbeat_timestamp_seconds",
            "When password hash sync last ran without failing (the service's start until then)",
            m.phs_heartbeat.clone(),
        );
        registry.register("phs_delivered", "Password hashes delivered", m.phs_delivered.clone());
        registry.register("scheduler_paused", "1 while the scheduler is paused", m.paused.clone());
        registry.register("staging_mode", "1 in staging mode (no export, no password hash sync)", m.staging.clone());
        Metrics { registry, ..m }
    }

    pub(crate) fn paused(&self, paused: bool, staging: bool) {
        self.paused.set(i64::from(paused));
        self.staging.set(i64::from(staging));
    }

    /// A cycle ended; `results` says how each connector's part went (`None`: it succeeded).
    pub(crate) fn cycle(
        &self,
        profile: &str,
        status: &str,
        r: Option<&RunReport>,
        results: &BTreeMap<String, Option<idflow_core::ObjectError>>,
    ) {
        self.cycles.get_or_create(&CycleLabels { profile: profile.into(), status: status.into() }).inc();
        let Some(r) = r else { return };
        self.duration.get_or_create(&ProfileLabel { profile: profile.into() }).observe(r.duration_ms as f64 / 1000.0);
        let now = now_seconds();
        for i in &r.import {
            for (op, n) in [("add", i.added), ("update", i.updated), ("delete", i.deleted)] {
                self.imported.get_or_create(&ExportLabels { connector: i.connector.clone(), operation: op.into() }).inc_by(n as u64);
            }
        }
        for x in &r.export {
            for (op, n) in [("add", x.added), ("update", x.updated), ("delete", x.deleted)] {
                self.exported.get_or_create(&ExportLabels { connector: x.connector.clone(), operation: op.into() }).inc_by(n as u64);
            }
            self.export_failed.get_or_create(&ConnectorLabel { connector: x.connector.clone() }).inc_by(x.failed as u64);
        }
        for (c, result) in results {
            let label = ConnectorLabel { connector: c.clone() };
            self.up.get_or_create(&label).set(i64::from(result.is_none()));
            if result.is_none() {
                self.last_success.get_or_create(&label).set(now);
            }
        }
        if let Some(p) = &r.password_hash_sync {
            self.phs_delivered.inc_by(p.delivered as u64);
        }
    }

    /// What a health check found: errors by category, pending exports, held deletions, open
    /// breakers, each stage's last success, the next run, and the open alerts.
    pub(crate) fn health(&self, s: &crate::status::Status, has_phs: bool, open: &[idflow_store::AlertRow]) {
        let seconds = |t: &str| crate::status::parse(t).map(|t| t.timestamp_millis() as f64 / 1000.0);
        if let Some(v) = s.last_success.as_deref().or(Some(&s.started)).and_then(seconds) {
            self.last_cycle_success.set(v);
        }
        if let Some(v) = s.phs_last_success.as_deref().or(Some(&s.started)).and_then(seconds) {
            self.phs_heartbeat.set(v);
        }
        self.phs_configured.set(i64::from(has_phs));
        for (c, n) in &s.errors_by_category {
            self.objects_in_error.get_or_create(&CategoryLabel { category: c.clone() }).set(*n as i64);
        }
        for (name, c) in &s.connectors {
            let label = ConnectorLabel { connector: name.clone() };
            self.pending.get_or_create(&label).set(s.pending_exports.get(name).copied().unwrap_or(0));
            self.held.get_or_create(&label).set(i64::from(s.deletions_held.contains_key(name)));
            self.breaker.get_or_create(&label).set(i64::from(s.breakers_open.contains_key(name)));
            for (stage, t) in [("import", &c.last_import_ok), ("export", &c.last_export_ok)] {
                if let Some(v) = t.as_deref().and_then(seconds) {
                    self.stage_success.get_or_create(&StageLabels { connector: name.clone(), stage: stage.into() }).set(v);
                }
            }
        }
        if let Some(v) = s.next_delta.as_deref().and_then(seconds) {
            self.next_run.set(v);
        }
        self.health_checked.set(now_seconds());
        let Ok(mut seen) = self.alerts_seen.lock() else { return };
        let now: std::collections::BTreeSet<AlertLabels> = open
            .iter()
            .map(|a| AlertLabels {
                alert: a.kind.clone(),
                severity: a.severity.clone(),
                connector: a.connector.clone().unwrap_or_default(),
            })
            .collect();
        // Each gauge is set once: a scrape never sees an open alert at 0.
        seen.extend(now.iter().cloned());
        for l in seen.iter() {
            self.alerts.get_or_create(l).set(i64::from(now.contains(l)));
        }
    }

    pub(crate) fn pta_request(&self, front_end: &str, result: &str, took: std::time::Duration) {
        self.pta_requests.get_or_create(&PtaLabels { front_end: front_end.into(), result: result.into() }).inc();
        self.pta_duration.get_or_create(&FrontEndLabel { front_end: front_end.into() }).observe(took.as_secs_f64());
    }

    pub(crate) fn pta_lockout(&self, by: &str) {
        self.pta_lockouts.get_or_create(&ByLabel { by: by.into() }).inc();
    }

    pub(crate) fn pta_agents(&self, relay: &str, connected: usize) {
        self.pta_agents.get_or_create(&RelayLabel { relay: relay.into() }).set(connected as i64);
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// `/metrics` alone, over plain HTTP on `listen` (for `idflow pta relay` and `pta serve`,
/// which have no API of their own).
pub(crate) async fn serve(listen: &str, metrics: std::sync::Arc<Metrics>) -> idflow_core::Result<()> {
    use axum::response::IntoResponse;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| idflow_core::Error::Refused(format!("cannot listen for /metrics on {listen}: {e}")))?;
    let address = tcp.local_addr().ok();
    tracing::info!(address = %address.map(|a| a.to_string()).unwrap_or_default(), "metrics listening");
    if address.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(listen, "/metrics is served over plain HTTP without a token to anyone who can reach this address (counts only, no names): limit who can");
    }
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { ([("content-type", CONTENT_TYPE)], m.encode()).into_response() }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(tcp, app).await;
    });
    Ok(())
}
