//! The service's loop: it owns the control API, the change feeds, signals and reloads, and
//! hands the engine's thread one job at a time as `Schedule` decides.
use crate::api::{Api, Command};
use crate::schedule::{Planned, Schedule, FILE_CHECK, PURGE_EVERY};
use crate::service_file::{path_for, ServiceFile};
use crate::status::{self, LastCycle, Status};
use crate::worker::{self, Done, Job};
use crate::{feeds, notify};
use idflow_core::{Error, ObjectError, Result};
use idflow_engine::{CycleRequest, Engine, RunReport};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Plans and previews waiting for the engine, at most.
const MAX_ASKS: usize = 16;

/// Results of requested cycles kept for `cycle --now --wait`.
const KEPT_RESULTS: usize = 32;

/// A fingerprint of the files whose change reloads the service (sizes and times of change).
fn files_fingerprint(paths: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
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
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in paths {
        walk(p, &mut h, 0);
    }
    h.finish()
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

/// How each connector's part of a cycle went: `None` when it succeeded, the error when it
/// failed as a whole. Connectors the cycle did not touch are absent.
pub(crate) fn connector_results(r: &RunReport) -> BTreeMap<String, Option<ObjectError>> {
    let mut out: BTreeMap<String, Option<ObjectError>> =
        r.import.iter().map(|i| &i.connector).chain(r.export.iter().map(|x| &x.connector)).map(|c| (c.clone(), None)).collect();
    for e in r.errors.iter().filter(|e| e.is_connector_failure()) {
        if let Some(c) = &e.connector {
            // The first error of a connector is the one shown.
            out.entry(c.clone()).or_default().get_or_insert_with(|| e.clone());
        }
    }
    out
}

/// What a cycle's end says of health: password hash sync, deletions held, open breakers, when
/// each stage last succeeded.
fn health_facts(s: &mut Status, req: &CycleRequest, r: &Result<RunReport>, results: &BTreeMap<String, Option<ObjectError>>, at: &str) {
    if req.phs || req.phs_only {
        let failure = match r {
            Err(e) => Some(e.to_string()),
            Ok(rep) => rep.errors.iter().find(|e| e.is_phs_failure()).map(|e| e.message.clone()),
        };
        if failure.is_none() {
            s.phs_last_success = Some(at.to_string());
        }
        s.phs_failure = failure;
    }
    let Ok(rep) = r else { return };
    if req.phs_only {
        return;
    }
    if results.values().all(Option::is_none) {
        s.last_success = Some(at.to_string());
    }
    for i in &rep.import {
        if results.get(&i.connector).is_some_and(Option::is_none) {
            s.connectors.entry(i.connector.clone()).or_default().last_import_ok = Some(at.to_string());
        }
    }
    s.breakers_open.clear();
    for x in &rep.export {
        if x.stopped_after.is_some() {
            let m = results.get(&x.connector).cloned().flatten().map(|e| e.message).unwrap_or_default();
            s.breakers_open.insert(x.connector.clone(), m);
        } else if results.get(&x.connector).is_some_and(Option::is_none) {
            s.connectors.entry(x.connector.clone()).or_default().last_export_ok = Some(at.to_string());
        }
    }
    // Held deletions are known from the threshold's refusal (export) or the sync's note.
    s.deletions_held = rep
        .errors
        .iter()
        .filter(|e| e.category == idflow_core::Category::Threshold)
        .filter_map(|e| Some((e.connector.clone()?, e.message.clone())))
        .collect();
    for n in rep.notes.iter().filter(|n| n.contains("held by the deletion threshold")) {
        if let Some(c) = n.split('"').nth(1) {
            s.deletions_held.entry(c.to_string()).or_insert_with(|| n.clone());
        }
    }
}

/// The token: from `token_file` (owner-only), or made now.
fn api_token(engine: &Engine) -> Result<(zeroize::Zeroizing<String>, Option<String>)> {
    let Some(f) = &engine.config.service.token_file else {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| Error::Refused(format!("no randomness for the API token: {e}")))?;
        let t = zeroize::Zeroizing::new(hex::encode(b));
        let copy = Some(t.to_string());
        return Ok((t, copy));
    };
    let path = engine.config.dir.join(f);
    if idflow_core::owner_only::open_to_others(&path).ok().flatten().is_some() {
        return Err(Error::Config(format!("[service] token_file {}: readable by others; make it owner-only (chmod 600)", path.display())));
    }
    let t = idflow_core::secret::read(&engine.config.dir, "token", None, Some(f))
        .map_err(|m| Error::Config(format!("[service] token_file: {m}")))?
        .ok_or_else(|| Error::Config("[service] token_file is empty".into()))?;
    Ok((t, None))
}

pub(crate) async fn run(engine: Engine, registry: Arc<idflow_core::registry::Registry>) -> Result<i32> {
    let config_file = engine.config.file.clone();
    let metaverse = engine.config.metaverse_path.clone();
    let settings = engine.config.service.clone();
    let addr: std::net::SocketAddr = settings.listen.parse().map_err(|e| {
        Error::Config(format!(
            "{}: [service] listen {:?}: {e} (an address and port: \"127.0.0.1:7389\")",
            config_file.display(),
            settings.listen
        ))
    })?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(c), Some(k)) => {
            let dir = &engine.config.dir;
            Some((dir.join(c), crate::tls::acceptor(&dir.join(c), &dir.join(k))?))
        }
        (None, None) => None,
        _ => return Err(Error::Config(format!("{}: [service] tls_cert and tls_key go together", config_file.display()))),
    };
    if !addr.ip().is_loopback() && tls.is_none() {
        return Err(Error::Config(format!(
            "{}: [service] listen {addr}: without TLS the API and the dashboard listen on loopback only (127.0.0.1 or ::1); \
             set tls_cert and tls_key to listen elsewhere",
            config_file.display()
        )));
    }
    let mut backup = crate::backups::Plan::of(&settings, &config_file, &engine.config.dir, &metaverse)?;
    let config_dir = engine.config.dir.clone();
    let (token, token_in_file) = api_token(&engine)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Refused(format!("cannot listen on {addr} ([service] listen in {}): {e}", config_file.display())))?;
    let address = listener.local_addr().map_err(|e| Error::Refused(format!("listening on {addr}: {e}")))?.to_string();
    let service_file = path_for(&metaverse);
    let tls_cert = tls.as_ref().map(|(c, _)| std::fs::canonicalize(c).unwrap_or_else(|_| c.clone()));
    ServiceFile { pid: std::process::id(), address: address.clone(), token: token_in_file, tls_cert }.write(&service_file)?;
    // Feeds hold connectors' runtimes: made after every check that can fail, and moved to threads.
    let mut loaded = worker::reloaded(&engine);

    let (last_success, phs_last_success) = last_successes(&engine);
    let status = Arc::new(Mutex::new(Status {
        last_success,
        phs_last_success,
        pid: std::process::id(),
        config: config_file.display().to_string(),
        started: status::now(),
        staging_mode: loaded.staging_mode,
        phs_configured: loaded.has_phs,
        ..Default::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<String>();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Command>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();

    let mut next_backup = crate::backups::scheduled(&status, backup.as_ref());
    let mut sched = Schedule::new(loaded.settings.clone(), loaded.connectors.clone(), loaded.has_phs, Instant::now());
    let mut watched = loaded.watched.clone();
    let mut files = files_fingerprint(&watched);
    let (mut config_hash, mut rules_fingerprint) = (loaded.config_hash, loaded.rules_fingerprint.clone());
    let mut running_feeds = Some(feeds::start(std::mem::take(&mut loaded.feeds), changed_tx.clone(), status.clone()));
    let pta_config = engine.config.clone();
    let worker = worker::spawn(engine, jobs_rx, done_tx, status.clone(), stop.clone());

    let metrics = Arc::new(crate::metrics::Metrics::new());
    let health_settings = std::mem::replace(&mut loaded.health, Err(Error::Config(String::new())))?;
    let health = crate::alerts::spawn(metaverse.clone(), status.clone(), health_settings, metrics.clone(), stop.clone());
    if pta_config.pta.as_ref().is_some_and(|p| p.metrics_listen.is_some()) {
        return Err(Error::Config(format!(
            "{}: [pta] metrics_listen is for idflow pta serve and pta relay; idflow serve counts pass-through authentication on its own /metrics",
            pta_config.file.display()
        )));
    }
    crate::pta::start_front_ends(&pta_config, &registry, metrics.clone(), Some(status.clone())).await?;
    let poke = |settings: Option<crate::alerts::HealthSettings>| {
        let _ = health.poke.send(crate::alerts::Poke::Check(settings.map(Box::new)));
    };
    let api = Api {
        status: status.clone(),
        commands: cmd_tx,
        token: Arc::new(token),
        metaverse: metaverse.clone(),
        metrics: metrics.clone(),
        tls: tls.is_some(),
        sessions: Arc::new(crate::dashboard::session::Sessions::new()),
    };
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = api_stop_rx.await;
    };
    let server = match tls {
        Some((_, acceptor)) => {
            let l = crate::tls::TlsListener::new(listener, acceptor).map_err(|e| Error::Refused(format!("listening on {address}: {e}")))?;
            tokio::spawn(async move {
                let _ = axum::serve(l, crate::api::router(api)).with_graceful_shutdown(stopped).await;
            })
        }
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, crate::api::router(api)).with_graceful_shutdown(stopped).await;
        }),
    };

    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Refused(format!("SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Refused(format!("SIGINT handler: {e}")))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Refused(format!("SIGHUP handler: {e}")))?;
    let watchdog_every = notify::watchdog_every();
    let mut next_watchdog = Instant::now();
    let mut next_file_check = Instant::now() + FILE_CHECK;
    // What runs on the engine's thread: None when idle.
    let mut running: Option<Running> = None;
    let mut reload = false;
    // Questions for the engine (plans, previews), answered when it is free.
    let mut asks: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    let mut stopping = false;
    let mut exit = 0;
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
        if stopping && running.is_none() {
            break;
        }
        if running.is_none() && !stopping {
            if std::mem::take(&mut reload) {
                notify::reloading();
                running = Some(Running::Reload);
                let _ = jobs_tx.send(Job::Reload);
                continue;
            }
            // A question nobody waits for any more (a page closed) is not run.
            asks.retain(|j| !j.abandoned());
            if let Some(job) = asks.pop_front() {
                running = Some(Running::Ask);
                let _ = jobs_tx.send(job);
                continue;
            }
            if let Some(p) = sched.next_job(now) {
                let _ = jobs_tx.send(Job::Cycle(p.req.clone(), p.profile));
                running = Some(Running::Cycle(p));
                update_next(&status, &sched);
                continue;
            }
            if now >= sched.next_purge {
                sched.next_purge = now + PURGE_EVERY;
                running = Some(Running::Purge);
                let _ = jobs_tx.send(Job::Purge(sched.settings.history_days));
                continue;
            }
            if let Some(p) = backup.as_ref().filter(|_| next_backup.is_some_and(|at| now >= at)) {
                next_backup = None;
                running = Some(Running::Backup);
                crate::backups::begun(&status);
                let _ = jobs_tx.send(Job::Backup(p.clone()));
                continue;
            }
        }
        let mut wake = sched.wake_at(now, running.is_some()).min(next_file_check.max(now));
        if let Some(at) = next_backup.filter(|_| running.is_none()) {
            wake = wake.min(at.max(now));
        }
        if let Some(every) = watchdog_every {
            wake = wake.min(next_watchdog.max(now + every.min(Duration::from_millis(100))));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_file_check {
                    next_file_check = Instant::now() + FILE_CHECK;
                    let f = files_fingerprint(&watched);
                    if f != files {
                        files = f;
                        tracing::info!("the configuration or rules changed on disk: reloading");
                        reload = true;
                    }
                }
            }
            Some(name) = changed_rx.recv() => {
                sched.changed(name, Instant::now());
                update_next(&status, &sched);
            }
            Some(cmd) = cmd_rx.recv() => match cmd {
                Command::Ask(job) if stopping => job.refuse("the service is stopping"),
                Command::Ask(job) if asks.len() >= MAX_ASKS => job.refuse("the service has too many questions waiting; try again"),
                Command::Ask(job) => asks.push_back(job),
                cmd => command(&mut sched, cmd, running.is_some(), stopping, &status),
            },
            done = done_rx.recv() => {
                let Some(done) = done else {
                    tracing::error!("the engine's thread ended; stopping the service");
                    exit = 1;
                    break;
                };
                let was = running.take();
                match (done, was) {
                    (Done::Cycle(req, r), Some(Running::Cycle(p))) => {
                        finished(&mut sched, &status, &metrics, &req, p.ticket, r);
                        poke(None);
                    }
                    (Done::Reload(Ok(mut r)), _) => {
                        if let Some(old) = running_feeds.take() {
                            // Feeds stop within a second or their operation's timeout: not awaited here.
                            tokio::task::spawn_blocking(move || old.stop());
                        }
                        warn_restart_needed(&sched.settings, &r.settings);
                        if let Ok(mut s) = status.lock() {
                            s.reload_error = None;
                            s.staging_mode = r.staging_mode;
                            s.phs_configured = r.has_phs;
                            s.connectors.retain(|k, _| r.connectors.contains(k));
                        }
                        sched.reconfigure(r.settings.clone(), r.connectors.clone(), r.has_phs, Instant::now());
                        if r.config_hash != config_hash {
                            // Connector settings may have changed (scope, filters): every connector is read again.
                            sched.full_next = true;
                            sched.next_delta = Instant::now();
                            tracing::info!("configuration reloaded; a full cycle follows");
                        } else if r.rules_fingerprint != rules_fingerprint {
                            sched.full_sync_next = true;
                            sched.next_delta = Instant::now();
                            tracing::info!("rules reloaded; a full sync follows");
                        } else {
                            tracing::info!("configuration reloaded; nothing that cycles use changed");
                        }
                        (config_hash, rules_fingerprint) = (r.config_hash, r.rules_fingerprint.clone());
                        match crate::backups::Plan::of(&r.settings, &config_file, &config_dir, &metaverse) {
                            Ok(p) if p != backup => {
                                next_backup = crate::backups::scheduled(&status, p.as_ref());
                                backup = p;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::error!(error = %e, "the new backup settings are refused; the previous ones stay");
                                if let Ok(mut s) = status.lock() {
                                    s.reload_error = Some(format!("PARTLY applied: the backup settings are refused, the previous ones stay: {e}"));
                                }
                            }
                        }
                        watched = r.watched.clone();
                        files = files_fingerprint(&watched);
                        running_feeds = Some(feeds::start(std::mem::take(&mut r.feeds), changed_tx.clone(), status.clone()));
                        match std::mem::replace(&mut r.health, Err(Error::Config(String::new()))) {
                            Ok(h) => poke(Some(h)),
                            Err(e) => tracing::error!(error = %e, "[health] is refused; the previous one stays"),
                        }
                        notify::ready("configuration reloaded");
                    }
                    (Done::BackedUp(r), _) => {
                        if let Some(p) = &backup {
                            next_backup = Some(Instant::now() + crate::backups::ended(&status, p, r));
                            poke(None);
                        }
                    }
                    (Done::Reload(Err(e)), _) => {
                        tracing::error!(error = %e, "the new configuration is refused; the previous one keeps running");
                        if let Ok(mut s) = status.lock() {
                            s.reload_error = Some(format!("REFUSED, the previous configuration runs: {e}"));
                        }
                        notify::ready("the new configuration is refused; the previous one keeps running");
                    }
                    _ => {}
                }
                update_next(&status, &sched);
            }
            _ = term.recv() => begin_stop(&mut stopping, &stop),
            _ = int.recv() => begin_stop(&mut stopping, &stop),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                reload = true;
            }
        }
    }

    // No request waits for an answer that will not come.
    cmd_rx.close();
    while let Ok(cmd) = cmd_rx.try_recv() {
        command(&mut sched, cmd, true, true, &status);
    }
    for job in asks.drain(..) {
        job.refuse("the service is stopping");
    }
    if let Some(f) = running_feeds.take() {
        let _ = tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || f.stop())).await;
    }
    tokio::task::spawn_blocking(move || health.stop());
    let _ = api_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    drop(jobs_tx);
    if exit == 0 {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    let _ = std::fs::remove_file(&service_file);
    tracing::info!("idflow service stopped");
    Ok(exit)
}

/// When, by the run history, a cycle last succeeded for every connector and password hash sync
/// last succeeded: health counts from there after a restart, not from the start.
fn last_successes(engine: &Engine) -> (Option<String>, Option<String>) {
    use idflow_store::ReadOps;
    let Ok(r) = engine.store.read() else { return (None, None) };
    let runs = r.history_recent(500).unwrap_or_default();
    let finished = |run: &idflow_store::RunRow| run.finished.clone().filter(|_| run.status == "ok" || run.status == "errors");
    let cycle = runs.iter().filter(|run| run.summary.as_ref().is_some_and(|s| !s["sync"].is_null())).find_map(|run| {
        let whole = r.history_errors_of_runs(&[run.id]).unwrap_or_default();
        let connector_failed = whole.iter().any(|(_, e)| e.is_connector_failure());
        if connector_failed {
            None
        } else {
            finished(run)
        }
    });
    let phs = runs.iter().filter(|run| run.summary.as_ref().is_some_and(|s| !s["password_hash_sync"].is_null())).find_map(|run| {
        let whole = r.history_errors_of_runs(&[run.id]).unwrap_or_default();
        if whole.iter().any(|(_, e)| e.is_phs_failure()) {
            None
        } else {
            finished(run)
        }
    });
    (cycle, phs)
}

/// What the engine's thread is doing.
enum Running {
    Cycle(Planned),
    Reload,
    Purge,
    Backup,
    /// A plan or a preview.
    Ask,
}

fn warn_restart_needed(old: &idflow_engine::ServiceSection, new: &idflow_engine::ServiceSection) {
    if old.listen != new.listen
        || old.token_file != new.token_file
        || old.log_format != new.log_format
        || old.tls_cert != new.tls_cert
        || old.tls_key != new.tls_key
    {
        tracing::warn!(
            "[service] listen, token_file, log_format, tls_cert and tls_key take effect at the next start: restart the service for them"
        );
    }
}

fn begin_stop(stopping: &mut bool, stop: &AtomicBool) {
    if *stopping {
        return;
    }
    tracing::info!("stopping: the batch being exported finishes, the rest stays pending");
    notify::stopping();
    *stopping = true;
    stop.store(true, Ordering::Relaxed);
}

fn command(sched: &mut Schedule, cmd: Command, busy: bool, stopping: bool, status: &Mutex<Status>) {
    match cmd {
        Command::Cycle { full, connectors, reply } => {
            if stopping {
                let _ = reply.send(Err("the service is stopping".into()));
                return;
            }
            if let Some(unknown) = connectors.iter().find(|c| !sched.connectors.contains(c)) {
                let _ = reply.send(Err(format!("no connector named {unknown:?} (configured: {})", sched.connectors.join(", "))));
                return;
            }
            let what = if full { "a full cycle" } else { "a delta cycle" };
            let ticket = sched.request(CycleRequest { import: connectors, full, ..Default::default() });
            let when = if busy { "after the job running now" } else { "now" };
            let _ = reply.send(Ok((format!("{what} starts {when}"), ticket)));
        }
        Command::Pause(reply) if stopping => {
            let _ = reply.send(Err("the service is stopping".into()));
        }
        Command::Resume(reply) if stopping => {
            let _ = reply.send(Err("the service is stopping".into()));
        }
        Command::Pause(reply) => {
            sched.paused = true;
            tracing::info!("scheduler paused");
            let _ = reply.send(Ok(
                "scheduler paused: no scheduled or change-driven cycles (password hash sync goes on; cycle --now still runs)".into(),
            ));
        }
        Command::Ask(job) => job.refuse("the service is stopping"),
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

fn finished(
    sched: &mut Schedule,
    status: &Mutex<Status>,
    metrics: &crate::metrics::Metrics,
    req: &CycleRequest,
    ticket: Option<u64>,
    r: Result<RunReport>,
) {
    let at = status::now();
    let results = r.as_ref().map(connector_results).unwrap_or_default();
    let (last, failed): (LastCycle, BTreeSet<String>) = match &r {
        Ok(rep) => {
            let failed: BTreeSet<String> = results.iter().filter(|(_, e)| e.is_some()).map(|(c, _)| c.clone()).collect();
            let c = counts(rep);
            let word = if rep.errors.is_empty() { "ok" } else { "errors" };
            tracing::info!(
                profile = %rep.profile, run = rep.run_id.unwrap_or(0), status = word, ms = rep.duration_ms as u64,
                imported = c.get("imported").copied().unwrap_or(0), exported = c.get("exported").copied().unwrap_or(0),
                export_failed = c.get("export_failed").copied().unwrap_or(0), hashes = c.get("hashes_delivered").copied().unwrap_or(0),
                errors = rep.errors.len(), "cycle done"
            );
            let last = LastCycle {
                run_id: rep.run_id,
                profile: rep.profile.clone(),
                status: word.into(),
                finished: at.clone(),
                duration_ms: rep.duration_ms,
                counts: c,
                failure: None,
            };
            (last, failed)
        }
        Err(e) => {
            tracing::error!(error = %e, "cycle failed");
            let failed = if req.phs_only { BTreeSet::new() } else { sched.connectors.iter().cloned().collect() };
            let profile = if req.phs_only { "phs" } else { "cycle" };
            (
                LastCycle {
                    profile: profile.into(),
                    status: "failed".into(),
                    finished: at.clone(),
                    failure: Some(e.to_string()),
                    ..Default::default()
                },
                failed,
            )
        }
    };
    metrics.cycle(&last.profile, &last.status, r.as_ref().ok(), &results);
    if let Ok(mut s) = status.lock() {
        if !req.phs_only {
            s.cycles += 1;
        }
        for (name, result) in results.iter().filter(|(c, _)| sched.connectors.contains(c)) {
            let cs = s.connectors.entry(name.clone()).or_default();
            cs.last_result = Some(result.as_ref().map(|e| e.message.clone()).unwrap_or_else(|| "ok".into()));
            cs.failures_in_a_row = if result.is_some() { cs.failures_in_a_row + 1 } else { 0 };
            cs.failed_stage = result.as_ref().map(|e| e.stage.to_string());
            cs.failure_category = result.as_ref().map(|e| e.category.as_str().to_string());
            cs.last_at = Some(at.clone());
        }
        health_facts(&mut s, req, &r, &results, &at);
        if !req.phs_only || last.status != "ok" {
            s.last_cycle = Some(last.clone());
        }
        if let Some(t) = ticket {
            s.requested.insert(t, last.clone());
            while s.requested.len() > KEPT_RESULTS {
                s.requested.pop_first();
            }
        }
    }
    if let Some(backoff) = sched.finished(req, &failed, Instant::now()) {
        tracing::warn!(connectors = ?failed, retry_in = %humantime::format_duration(backoff), "connectors failed; retrying");
    }
    notify::status(&format!("last cycle {} at {at}", last.status));
}
