//! The health thread: every `[health] check_every` and after each cycle it reads what status and
//! the metaverse say, raises the alerts whose condition holds and resolves those whose
//! condition cleared (kept in the metaverse with their history), and tells the webhooks of each
//! raise and resolve once, retrying with backoff until they take it.
use crate::health::{self, Condition};
use crate::status::Status;
use idflow_core::Result;
use idflow_engine::HealthSection;
use idflow_store::{AlertRow, ReadOps, Store, WriteOps};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the health thread needs to know of the configuration (replaced on reload).
#[derive(Clone, Debug)]
pub(crate) struct HealthSettings {
    pub health: HealthSection,
    pub interval: Duration,
    pub has_phs: bool,
    /// The webhooks' token, read from `webhook_token_file`.
    pub webhook_token: Option<Arc<zeroize::Zeroizing<String>>>,
}

impl HealthSettings {
    /// From the configuration; a webhook token file that cannot be read is an error.
    pub(crate) fn of(engine: &idflow_engine::Engine) -> Result<HealthSettings> {
        let c = &engine.config;
        let webhook_token = match &c.health.webhook_token_file {
            None => None,
            Some(f) => Some(Arc::new(
                idflow_core::secret::read(&c.dir, "webhook token", None, Some(f))
                    .map_err(|m| idflow_core::Error::Config(format!("{}: [health] webhook_token_file: {m}", c.file.display())))?
                    .ok_or_else(|| idflow_core::Error::Config(format!("{}: [health] webhook_token_file is empty", c.file.display())))?,
            )),
        };
        for url in &c.health.webhooks {
            if !(url.starts_with("https://") || url.starts_with("http://")) || host_of(url).is_empty() {
                return Err(idflow_core::Error::Config(format!(
                    "{}: [health] webhooks: {:?} is not an http(s) URL with a host",
                    c.file.display(),
                    host_of(url)
                )));
            }
        }
        Ok(HealthSettings {
            health: c.health.clone(),
            interval: c.service.interval,
            has_phs: c.password_hash_sync.is_some(),
            webhook_token,
        })
    }
}

pub(crate) enum Poke {
    /// Check now (a cycle ended, or the configuration changed).
    Check(Option<Box<HealthSettings>>),
}

pub(crate) struct HealthThread {
    pub poke: Sender<Poke>,
    handle: std::thread::JoinHandle<()>,
}

impl HealthThread {
    pub(crate) fn stop(self) {
        drop(self.poke);
        let _ = self.handle.join();
    }
}

/// What the webhooks were told: per event (alert id, resolved) the hooks that took it, and per
/// hook when it may be tried again after failing (its backoff doubles up to 5 minutes).
#[derive(Default)]
struct Delivery {
    taken: BTreeMap<(i64, bool), BTreeSet<String>>,
    backoff: BTreeMap<String, (Instant, u32)>,
    /// Events were left to send at the last pass.
    pending: bool,
}

impl Delivery {
    /// When a hook that failed may be tried again (none while nothing is pending).
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.pending.then(|| self.backoff.values().map(|(t, _)| *t).filter(|t| *t > now).min()).flatten()
    }

    fn failed(backoff: &mut BTreeMap<String, (Instant, u32)>, url: &str) {
        let (_, n) = backoff.get(url).copied().unwrap_or((Instant::now(), 0));
        let wait = Duration::from_secs(1u64 << n.min(9)).min(Duration::from_secs(300));
        backoff.insert(url.to_string(), (Instant::now() + wait, n + 1));
    }
}

/// The host of a URL, the only part of it logs show (a webhook URL can hold a secret).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host)
}

pub(crate) fn spawn(
    metaverse: PathBuf,
    status: Arc<Mutex<Status>>,
    settings: HealthSettings,
    metrics: Arc<crate::metrics::Metrics>,
    stop: Arc<AtomicBool>,
) -> HealthThread {
    let (poke, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || run(metaverse, status, settings, metrics, stop, rx));
    HealthThread { poke, handle }
}

fn run(
    metaverse: PathBuf,
    status: Arc<Mutex<Status>>,
    mut settings: HealthSettings,
    metrics: Arc<crate::metrics::Metrics>,
    stop: Arc<AtomicBool>,
    rx: Receiver<Poke>,
) {
    let mut delivery = Delivery::default();
    let mut store: Option<Store> = None;
    let mut next_check = Instant::now();
    loop {
        let now = Instant::now();
        let wake = delivery.next_retry().map_or(next_check, |r| r.min(next_check));
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Poke::Check(new)) => {
                if let Some(new) = new {
                    if new.health.webhooks != settings.health.webhooks {
                        delivery.backoff.clear();
                    }
                    settings = *new;
                }
                next_check = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if store.is_none() {
            store = Store::open(&metaverse).map_err(|e| tracing::warn!(error = %e, "health cannot open the metaverse")).ok();
            // A stage's write transaction can last longer than the usual 10 s: health waits.
            if let Some(s) = &store {
                let _ = s.set_busy_timeout(Duration::from_secs(30));
            }
        }
        let Some(st) = &store else {
            next_check = Instant::now() + settings.health.check_every;
            continue;
        };
        if Instant::now() >= next_check {
            next_check = Instant::now() + settings.health.check_every;
            if let Err(e) = check(st, &status, &settings, &metrics) {
                tracing::warn!(error = %e, "checking health failed; tried again at the next check");
            }
        }
        if let Err(e) = deliver(st, &settings, &mut delivery, &stop) {
            tracing::warn!(error = %e, "reading the alerts to send failed");
        }
    }
}

/// Reads the facts, decides the conditions, and brings the open alerts in line with them.
fn check(store: &Store, status: &Mutex<Status>, settings: &HealthSettings, metrics: &crate::metrics::Metrics) -> Result<()> {
    let began = Instant::now();
    let scope = status.lock().ok().map(|s| s.error_scope());
    let (report, pending) = {
        let r = store.read()?;
        let report = idflow_engine::error_report(&r, &idflow_engine::ErrorFilter::default(), scope.as_ref())?;
        (report, r.cs_pending_exports()?)
    };
    let snapshot = {
        let Ok(mut s) = status.lock() else { return Ok(()) };
        s.objects_in_error = report.by_category.values().sum();
        s.connector_errors = report.connector_errors;
        s.errors_by_category = report.by_category.clone();
        s.pending_exports = pending;
        s.clone()
    };
    // Until the first cycle has ended the service knows nothing of its connectors: the alerts a
    // previous run left open stay as they are (no resolve and raise again at every restart).
    let started = crate::status::parse(&snapshot.started).unwrap_or_else(chrono::Utc::now);
    let young = (chrono::Utc::now() - started).to_std().unwrap_or_default() < settings.health.cycle_stuck_after;
    let open = if snapshot.last_cycle.is_none() && young {
        store.read()?.alert_open()?
    } else {
        let conditions = health::conditions(&snapshot, &settings.health, settings.interval, settings.has_phs, chrono::Utc::now());
        apply(store, &conditions)?
    };
    metrics.health(&snapshot, settings.has_phs, &open);
    if let Ok(mut s) = status.lock() {
        s.alerts = open;
        s.checked = Some(crate::status::now());
        s.check_ms = began.elapsed().as_millis() as u64;
    }
    Ok(())
}

/// Raises what holds and is not open, resolves what is open and no longer holds: the open alerts.
/// The metaverse is written only when an alert changes.
fn apply(store: &Store, conditions: &[Condition]) -> Result<Vec<AlertRow>> {
    let open = store.read()?.alert_open()?;
    let unchanged =
        open.len() == conditions.len() && conditions.iter().all(|c| open.iter().any(|a| a.key == c.key && a.summary == c.summary));
    if unchanged {
        return Ok(open);
    }
    let tx = store.write()?;
    let holding: BTreeSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    for a in tx.alert_open()? {
        if !holding.contains(a.key.as_str()) {
            tracing::info!(alert = %a.key, "alert resolved");
            tx.alert_resolve(a.id)?;
        }
    }
    for c in conditions {
        let (_, new) = tx.alert_raise(&c.key, c.kind, c.severity, c.connector.as_deref(), &c.summary)?;
        if new {
            tracing::warn!(alert = %c.key, severity = c.severity, "alert raised: {}", c.summary);
        }
    }
    let open = tx.alert_open()?;
    tx.commit()?;
    Ok(open)
}

/// The JSON a webhook receives for a raise or a resolve.
pub(crate) fn payload(a: &AlertRow, resolved: bool) -> serde_json::Value {
    serde_json::json!({
        "event": if resolved { "resolved" } else { "raised" },
        "alert": {
            "id": a.id,
            "key": a.key,
            "kind": a.kind,
            "severity": a.severity,
            "connector": a.connector,
            "summary": a.summary,
            "raised": a.raised,
            "resolved": a.resolved,
        },
        "source": "idflow",
    })
}

/// Sends each raise and resolve not yet told to every webhook that has not taken it: a raise
/// before its resolve, a hook that fails left alone until its backoff ends. With no webhook
/// configured there is no one to tell: the events are marked sent (a hook added later does not
/// receive the history).
fn deliver(store: &Store, settings: &HealthSettings, d: &mut Delivery, stop: &AtomicBool) -> Result<()> {
    let unsent = store.read()?.alert_unsent()?;
    let hooks = &settings.health.webhooks;
    d.pending = false;
    if unsent.is_empty() {
        d.taken.clear();
        return Ok(());
    }
    let mut sent: Vec<(i64, bool)> = Vec::new();
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).http_status_as_error(false).build().into();
    'alerts: for a in &unsent {
        let events = [(!a.raise_sent).then_some(false), (a.resolved.is_some() && !a.resolve_sent).then_some(true)];
        for resolved in events.into_iter().flatten() {
            let body = payload(a, resolved).to_string();
            let taken = d.taken.entry((a.id, resolved)).or_default();
            for url in hooks {
                if taken.contains(url) || d.backoff.get(url).is_some_and(|(t, _)| *t > Instant::now()) {
                    continue;
                }
                if stop.load(Ordering::Relaxed) {
                    break 'alerts;
                }
                let mut req = agent.post(url).header("content-type", "application/json");
                if let Some(t) = &settings.webhook_token {
                    req = req.header("authorization", &format!("Bearer {}", t.as_str()));
                }
                match req.send(body.as_bytes()) {
                    Ok(r) if r.status().is_success() => {
                        taken.insert(url.clone());
                        d.backoff.remove(url);
                    }
                    Ok(r) => {
                        tracing::warn!(webhook = host_of(url), status = r.status().as_u16(), alert = %a.key, "the webhook refused the alert; retried");
                        Delivery::failed(&mut d.backoff, url);
                    }
                    Err(e) => {
                        let e = e.to_string().replace(url.as_str(), host_of(url));
                        tracing::warn!(webhook = host_of(url), error = %e, alert = %a.key, "the webhook could not be reached; retried");
                        Delivery::failed(&mut d.backoff, url);
                    }
                }
            }
            if hooks.iter().all(|h| taken.contains(h)) {
                sent.push((a.id, resolved));
            } else {
                d.pending = true;
                // A resolve waits for its raise.
                break;
            }
        }
    }
    if !sent.is_empty() {
        let tx = store.write()?;
        for (id, resolved) in &sent {
            tx.alert_sent(*id, *resolved)?;
            d.taken.remove(&(*id, *resolved));
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_show_a_webhook_by_its_host_alone() {
        assert_eq!(super::host_of("https://hooks.example.com/services/T000/B000/SECRET"), "hooks.example.com");
        assert_eq!(super::host_of("http://user:pw@127.0.0.1:9000/hook?token=x"), "127.0.0.1:9000");
    }
}
