//! The scheduler: decides what the engine's thread runs next, one job at a time. Manual cycles
//! first, then retries of failed connectors (with backoff), the delta timer, connectors whose
//! directory reported changes (once the debounce has passed), password hash sync and the
//! history purge. It also owns the control API, the change feeds, signals and reloads.
use crate::api::{Api, Command};
use crate::service_file::{path_for, ServiceFile};
use crate::status::{self, LastCycle, Status};
use crate::worker::{self, Done, Job, Reloaded};
use crate::{feeds, notify};
use idflow_core::{Error, Result};
use idflow_engine::{CycleRequest, Engine, RunReport, ServiceSection};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Changes reported this long after the first of a batch start the cycle, debounce or not.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(3);
/// How often configuration and rule files are looked at for changes.
const FILE_CHECK: Duration = Duration::from_secs(2);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

struct Schedule {
    settings: ServiceSection,
    connectors: Vec<String>,
    watched: Vec<PathBuf>,
    files: u64,
    paused: bool,
    busy: bool,
    stopping: bool,
    reload: bool,
    full_sync_next: bool,
    queue: VecDeque<CycleRequest>,
    pending: BTreeSet<String>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    next_delta: Instant,
    next_phs: Option<Instant>,
    next_purge: Instant,
    retry_at: Option<Instant>,
    failures: u32,
    /// Tickets given to `cycle --now` requests.
    tickets: u64,
}

/// A fingerprint of the files whose change reloads the service (sizes and times of change).
fn files_fingerprint(paths: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fn walk(p: &std::path::Path, h: &mut std::collections::hash_map::DefaultHasher, depth: usize) {
        let Ok(m) = std::fs::metadata(p) else {
            p.hash(h);
            return;
        };
        (p, m.len(), m.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())).hash(h);
        if m.is_dir() && depth < 4 {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                walk(&e, h, depth + 1);
            }
        }
    }
    for p in paths {
        walk(p, &mut h, 0);
    }
    h.finish()
}

impl Schedule {
    fn new(r: &Reloaded, has_phs: bool) -> Schedule {
        let now = Instant::now();
        Schedule {
            settings: r.settings.clone(),
            connectors: r.connectors.clone(),
            files: files_fingerprint(&r.watched),
            watched: r.watched.clone(),
            paused: false,
            busy: false,
            stopping: false,
            reload: false,
            full_sync_next: false,
            queue: VecDeque::new(),
            pending: BTreeSet::new(),
            first_change: None,
            last_change: None,
            // A cycle at start: whatever changed while the service was not running.
            next_delta: now,
            next_phs: has_phs.then_some(now),
            next_purge: now,
            retry_at: None,
            failures: 0,
            tickets: 0,
        }
    }

    /// The job to run now, if any, and what it is called in the history.
    fn next_job(&mut self, now: Instant) -> Option<(CycleRequest, &'static str)> {
        let mut job = if let Some(mut q) = self.queue.pop_front() {
            q.requested = true;
            Some((q, "cycle"))
        } else if self.paused {
            None
        } else if self.retry_at.is_some_and(|t| now >= t) || now >= self.next_delta {
            Some((CycleRequest::default(), "delta-cycle"))
        } else if self.batch_due(now) {
            let import: Vec<String> = std::mem::take(&mut self.pending).into_iter().collect();
            Some((CycleRequest { import, ..Default::default() }, "change-cycle"))
        } else {
            None
        };
        if let Some((req, _)) = job.as_mut() {
            if req.import.is_empty() {
                self.pending.clear();
                self.next_delta = now + self.settings.interval;
            }
            if self.pending.is_empty() {
                self.first_change = None;
                self.last_change = None;
            }
            self.retry_at = None;
            req.full_sync |= std::mem::take(&mut self.full_sync_next);
            return job;
        }
        if self.next_phs.is_some_and(|t| now >= t) {
            self.next_phs = Some(now + self.settings.phs_interval);
            return Some((CycleRequest { phs_only: true, ..Default::default() }, "phs"));
        }
        None
    }

    fn batch_due(&self, now: Instant) -> bool {
        match (self.first_change, self.last_change) {
            (Some(first), Some(last)) => now >= last + self.settings.debounce || now >= first + MAX_BATCH_WAIT,
            _ => false,
        }
    }

    /// When something next falls due (the loop sleeps until then, or an event).
    fn wake_at(&self, now: Instant) -> Instant {
        let mut t = vec![self.next_delta, self.next_purge, now + FILE_CHECK];
        t.extend(self.next_phs);
        t.extend(self.retry_at);
        if let (Some(first), Some(last)) = (self.first_change, self.last_change) {
            t.push((last + self.settings.debounce).min(first + MAX_BATCH_WAIT));
        }
        t.into_iter().min().unwrap_or(now + FILE_CHECK).max(now)
    }
}

/// Counts of a cycle for its log line and `status`.
fn counts(r: &RunReport) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    let mut add = |k: &str, n: usize| *c.entry(k.to_string()).or_insert(0) += n as u64;
    for i in &r.import {
        add("imported", i.added + i.updated + i.deleted);
    }
    if let Some(s) = &r.sync {
        add("provisioned", s.provisioned);
        add("deprovisioned", s.deprovisioned);
    }
    for x in &r.export {
        add("exported", x.added + x.updated + x.deleted);
        add("export_failed", x.failed);
    }
    if let Some(p) = &r.password_hash_sync {
        add("hashes_delivered", p.delivered);
    }
    add("errors", r.errors.len());
    c
}

pub(crate) async fn run(engine: Engine) -> Result<i32> {
    let config_file = engine.config.file.clone();
    let metaverse = engine.config.metaverse_path.clone();
    let has_phs = engine.config.password_hash_sync.is_some();
    let loaded = worker::reloaded(&engine);
    let addr: std::net::SocketAddr = loaded.settings.listen.parse().map_err(|e| {
        Error::Config(format!(
            "{}: [service] listen {:?}: {e} (an address and port: \"127.0.0.1:7389\")",
            config_file.display(),
            loaded.settings.listen
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Error::Config(format!(
            "{}: [service] listen {addr}: the control API listens on loopback only (127.0.0.1 or ::1); it has no TLS",
            config_file.display()
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Refused(format!("cannot listen on {addr} ([service] listen in {}): {e}", config_file.display())))?;
    let address = listener.local_addr().map_err(|e| Error::Refused(format!("listening on {addr}: {e}")))?.to_string();
    let (token, token_in_file) = match &loaded.settings.token_file {
        Some(f) => (
            idflow_core::secret::read(&engine.config.dir, "token", None, Some(f))
                .map_err(|m| Error::Config(format!("[service] token_file: {m}")))?
                .ok_or_else(|| Error::Config("[service] token_file is empty".into()))?,
            None,
        ),
        None => {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| Error::Refused(format!("no randomness for the API token: {e}")))?;
            let t = zeroize::Zeroizing::new(hex::encode(b));
            let copy = Some(t.to_string());
            (t, copy)
        }
    };
    let service_file = path_for(&metaverse);
    ServiceFile { pid: std::process::id(), address: address.clone(), token: token_in_file }.write(&service_file)?;

    let status = Arc::new(Mutex::new(Status {
        pid: std::process::id(),
        config: config_file.display().to_string(),
        started: status::now(),
        staging_mode: loaded.staging_mode,
        ..Default::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<String>();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Command>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();

    let mut sched = Schedule::new(&loaded, has_phs);
    let mut running_feeds = Some(feeds::start(loaded.feeds, changed_tx.clone(), status.clone()));
    let worker = worker::spawn(engine, jobs_rx, done_tx, status.clone(), stop.clone());

    let api = Api { status: status.clone(), commands: cmd_tx, token: Arc::new(token), metaverse: metaverse.clone() };
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let app = crate::api::router(api);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = api_stop_rx.await;
            })
            .await;
    });

    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Refused(format!("SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Refused(format!("SIGINT handler: {e}")))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Refused(format!("SIGHUP handler: {e}")))?;
    let watchdog_every = notify::watchdog_every();
    let mut next_watchdog = Instant::now();
    let mut next_file_check = Instant::now() + FILE_CHECK;
    tracing::info!(address = %address, config = %config_file.display(), interval = %humantime::format_duration(sched.settings.interval), "idflow service started");
    notify::ready(&format!("serving on {address}"));

    loop {
        let now = Instant::now();
        if let Some(every) = watchdog_every {
            if now >= next_watchdog {
                notify::watchdog();
                next_watchdog = now + every;
            }
        }
        if sched.stopping && !sched.busy {
            break;
        }
        if !sched.busy && !sched.stopping {
            if std::mem::take(&mut sched.reload) {
                notify::reloading();
                sched.busy = true;
                let _ = jobs_tx.send(Job::Reload);
                continue;
            }
            if let Some((req, profile)) = sched.next_job(now) {
                sched.busy = true;
                let _ = jobs_tx.send(Job::Cycle(req, profile));
                update_next(&status, &sched);
                continue;
            }
            if now >= sched.next_purge {
                sched.next_purge = now + PURGE_EVERY;
                sched.busy = true;
                let _ = jobs_tx.send(Job::Purge(sched.settings.history_days));
                continue;
            }
        }
        let mut wake = sched.wake_at(now).min(next_file_check);
        if let Some(every) = watchdog_every {
            wake = wake.min(next_watchdog.max(now + every.min(Duration::from_secs(1))));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_file_check {
                    next_file_check = Instant::now() + FILE_CHECK;
                    let f = files_fingerprint(&sched.watched);
                    if f != sched.files {
                        sched.files = f;
                        tracing::info!("the configuration or rules changed: reloading");
                        sched.reload = true;
                    }
                }
            }
            Some(name) = changed_rx.recv() => {
                let t = Instant::now();
                sched.pending.insert(name);
                sched.first_change.get_or_insert(t);
                sched.last_change = Some(t);
                update_next(&status, &sched);
            }
            Some(cmd) = cmd_rx.recv() => command(&mut sched, cmd, &status),
            Some(done) = done_rx.recv() => {
                sched.busy = false;
                match done {
                    Done::Cycle(req, r) => finished(&mut sched, &status, &req, r),
                    Done::Reload(Ok(r)) => {
                        if let Some(old) = running_feeds.take() {
                            let _ = tokio::task::spawn_blocking(move || old.stop()).await;
                        }
                        if let Ok(mut s) = status.lock() {
                            s.reload_error = None;
                            s.staging_mode = r.staging_mode;
                            s.connectors.retain(|k, _| r.connectors.contains(k));
                        }
                        sched.settings = r.settings.clone();
                        sched.connectors = r.connectors.clone();
                        sched.watched = r.watched.clone();
                        sched.files = files_fingerprint(&sched.watched);
                        sched.full_sync_next = true;
                        sched.next_delta = sched.next_delta.min(Instant::now() + sched.settings.interval);
                        running_feeds = Some(feeds::start(r.feeds, changed_tx.clone(), status.clone()));
                        // What the new rules do is seen now, not at the next interval.
                        sched.next_delta = Instant::now();
                        tracing::info!("configuration reloaded; a full sync follows");
                        notify::ready("configuration reloaded");
                    }
                    Done::Reload(Err(e)) => {
                        tracing::error!(error = %e, "the new configuration is refused; the previous one keeps running");
                        if let Ok(mut s) = status.lock() {
                            s.reload_error = Some(e.to_string());
                        }
                        notify::ready("the new configuration is refused; the previous one keeps running");
                    }
                    Done::Purged => {}
                }
                update_next(&status, &sched);
            }
            _ = term.recv() => stopping(&mut sched, &stop),
            _ = int.recv() => stopping(&mut sched, &stop),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                sched.reload = true;
            }
        }
    }

    if let Some(f) = running_feeds.take() {
        let _ = tokio::task::spawn_blocking(move || f.stop()).await;
    }
    let _ = api_stop_tx.send(());
    let _ = server.await;
    drop(jobs_tx);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    let _ = std::fs::remove_file(&service_file);
    tracing::info!("idflow service stopped");
    Ok(0)
}

fn stopping(sched: &mut Schedule, stop: &AtomicBool) {
    if sched.stopping {
        return;
    }
    tracing::info!("stopping: the batch being exported finishes, the rest stays pending");
    notify::stopping();
    sched.stopping = true;
    stop.store(true, Ordering::Relaxed);
}

fn command(sched: &mut Schedule, cmd: Command, status: &Mutex<Status>) {
    match cmd {
        Command::Cycle { full, connectors, reply } => {
            if let Some(unknown) = connectors.iter().find(|c| !sched.connectors.contains(c)) {
                let _ = reply.send(Err(format!("no connector named {unknown:?} (configured: {})", sched.connectors.join(", "))));
                return;
            }
            if sched.stopping {
                let _ = reply.send(Err("the service is stopping".into()));
                return;
            }
            let what = if full { "a full cycle" } else { "a delta cycle" };
            sched.queue.push_back(CycleRequest { import: connectors, full, ..Default::default() });
            sched.tickets += 1;
            let when = if sched.busy { "after the cycle running now" } else { "now" };
            let _ = reply.send(Ok((format!("{what} starts {when}"), sched.tickets)));
        }
        Command::Pause(reply) => {
            sched.paused = true;
            tracing::info!("scheduler paused");
            let _ = reply.send(Ok(
                "scheduler paused: no scheduled or change-driven cycles (password hash sync goes on; cycle --now still runs)".into(),
            ));
        }
        Command::Resume(reply) => {
            sched.paused = false;
            tracing::info!("scheduler resumed");
            let _ = reply.send(Ok("scheduler resumed".into()));
        }
    }
    update_next(status, sched);
}

fn update_next(status: &Mutex<Status>, sched: &Schedule) {
    let now = Instant::now();
    if let Ok(mut s) = status.lock() {
        s.paused = sched.paused;
        s.next_delta = (!sched.paused).then(|| status::after(sched.next_delta.saturating_duration_since(now)));
        s.next_phs = sched.next_phs.map(|t| status::after(t.saturating_duration_since(now)));
        s.pending = sched.pending.iter().cloned().collect();
    }
}

fn finished(sched: &mut Schedule, status: &Mutex<Status>, req: &CycleRequest, r: Result<RunReport>) {
    let at = status::now();
    let (last, failed_connectors): (LastCycle, BTreeSet<String>) = match &r {
        Ok(rep) => {
            let failed: BTreeSet<String> = rep.errors.iter().filter(|e| e.object.is_none()).filter_map(|e| e.connector.clone()).collect();
            let c = counts(rep);
            let status_word = if rep.errors.is_empty() { "ok" } else { "errors" };
            tracing::info!(
                profile = %rep.profile, run = rep.run_id.unwrap_or(0), status = status_word, ms = rep.duration_ms as u64,
                imported = c.get("imported").copied().unwrap_or(0), exported = c.get("exported").copied().unwrap_or(0),
                export_failed = c.get("export_failed").copied().unwrap_or(0), hashes = c.get("hashes_delivered").copied().unwrap_or(0),
                errors = rep.errors.len(), "cycle done"
            );
            (
                LastCycle {
                    run_id: rep.run_id,
                    profile: rep.profile.clone(),
                    status: status_word.into(),
                    finished: at.clone(),
                    duration_ms: rep.duration_ms,
                    counts: c,
                    failure: None,
                },
                failed,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cycle failed");
            (
                LastCycle {
                    profile: "cycle".into(),
                    status: "failed".into(),
                    finished: at.clone(),
                    failure: Some(e.to_string()),
                    ..Default::default()
                },
                sched.connectors.iter().cloned().collect(),
            )
        }
    };
    if let Ok(mut s) = status.lock() {
        if !req.phs_only {
            s.cycles += 1;
        }
        if req.requested {
            s.requested_done += 1;
            s.last_requested = Some(last.clone());
        }
        if let Ok(rep) = &r {
            let touched: Vec<&str> =
                rep.import.iter().map(|i| i.connector.as_str()).chain(rep.export.iter().map(|x| x.connector.as_str())).collect();
            for name in &sched.connectors {
                let cs = s.connectors.entry(name.clone()).or_default();
                if let Some(e) = rep.errors.iter().find(|e| e.object.is_none() && e.connector.as_deref() == Some(name)) {
                    cs.last_result = Some(e.message.clone());
                    cs.failures_in_a_row += 1;
                    cs.last_at = Some(at.clone());
                } else if touched.contains(&name.as_str()) {
                    cs.last_result = Some("ok".into());
                    cs.failures_in_a_row = 0;
                    cs.last_at = Some(at.clone());
                }
            }
        }
        if !req.phs_only || last.status != "ok" {
            s.last_cycle = Some(last.clone());
        }
    }
    if failed_connectors.is_empty() {
        sched.failures = 0;
    } else if !sched.stopping {
        sched.failures += 1;
        let backoff = (Duration::from_secs(5) * 2u32.saturating_pow(sched.failures.saturating_sub(1).min(10))).min(sched.settings.interval);
        sched.retry_at = Some(Instant::now() + backoff);
        tracing::warn!(connectors = ?failed_connectors, retry_in = %humantime::format_duration(backoff), "connectors failed; retrying");
    }
    notify::status(&format!("last cycle {} at {at}", last.status));
}
