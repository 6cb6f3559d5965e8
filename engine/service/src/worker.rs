//! The thread that owns the engine: it runs one job at a time (cycles, reloads, history purges)
//! and tells the scheduler how each ended. Connectors block on their own runtimes, so the engine
//! runs on a plain thread, not inside the service's async runtime.
use crate::status::{Current, Status};
use idflow_core::change_feed::ChangeFeed;
use idflow_core::{ObjectError, Result};
use idflow_engine::{CycleRequest, Engine, Observer, RunReport, Step};
use idflow_store::WriteOps;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) enum Job {
    Cycle(CycleRequest, &'static str),
    Reload,
    Purge(u32),
    /// A scheduled backup of the metaverse.
    Backup(crate::backups::Plan),
    /// `idflow plan` while the service holds the metaverse: the saved-plan form and the notes.
    Plan(PlanReply),
    /// The dashboard's preview of one object (connector, object key).
    Preview(String, String, PreviewReply),
}

impl Job {
    /// A question whose asker is gone.
    pub(crate) fn abandoned(&self) -> bool {
        match self {
            Job::Plan(reply) => reply.is_closed(),
            Job::Preview(_, _, reply) => reply.is_closed(),
            Job::Cycle(..) | Job::Reload | Job::Purge(_) | Job::Backup(_) => false,
        }
    }

    /// Answers a question the service will not run (it is stopping).
    pub(crate) fn refuse(self, why: &str) {
        match self {
            Job::Plan(reply) => {
                let _ = reply.send(Err(why.into()));
            }
            Job::Preview(_, _, reply) => {
                let _ = reply.send(Err(why.into()));
            }
            Job::Cycle(..) | Job::Reload | Job::Purge(_) | Job::Backup(_) => {}
        }
    }
}

pub(crate) type PlanReply = tokio::sync::oneshot::Sender<std::result::Result<serde_json::Value, String>>;
pub(crate) type PreviewReply = tokio::sync::oneshot::Sender<std::result::Result<Box<idflow_engine::Preview>, String>>;

pub(crate) enum Done {
    Cycle(CycleRequest, Result<RunReport>),
    /// The new configuration's feeds and settings, or why it was refused.
    Reload(Result<Reloaded>),
    Purged,
    BackedUp(std::result::Result<crate::backups::Taken, String>),
    Planned,
}

/// What the scheduler needs of a (re)loaded configuration.
pub(crate) struct Reloaded {
    pub feeds: Feeds,
    pub settings: idflow_engine::ServiceSection,
    pub connectors: Vec<String>,
    pub staging_mode: bool,
    pub has_phs: bool,
    /// What the configuration file says (a hash of its text) and what the rules are: a reload
    /// that changed the first owes a full cycle, one that changed only the second a full sync.
    pub config_hash: u64,
    pub rules_fingerprint: String,
    /// The files whose change reloads the service: the configuration and its rule folders.
    pub watched: Vec<std::path::PathBuf>,
    /// `[health]`, or why it cannot be used (the previous one stays).
    pub health: Result<crate::alerts::HealthSettings>,
}

pub(crate) fn reloaded(engine: &Engine) -> Reloaded {
    let mut watched = vec![engine.config.file.clone()];
    watched.extend(engine.config.rule_paths.iter().cloned());
    Reloaded {
        feeds: feeds(engine),
        settings: engine.config.service.clone(),
        connectors: engine.config.connectors.iter().map(|c| c.name.clone()).collect(),
        staging_mode: engine.config.staging_mode,
        has_phs: engine.config.password_hash_sync.is_some(),
        config_hash: config_hash(&engine.config.file),
        rules_fingerprint: engine.rules.fingerprint.clone(),
        watched,
        health: crate::alerts::HealthSettings::of(engine),
    }
}

/// A hash of the configuration file's text (0 when it cannot be read).
pub(crate) fn config_hash(path: &std::path::Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(path).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Each connector's change feed, or `None` for connectors only the timer checks.
pub(crate) type Feeds = Vec<(String, Option<Result<Box<dyn ChangeFeed>>>)>;

/// Tells status which stage runs, and asks the engine to stop between export batches.
struct Watch {
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
}

impl Observer for Watch {
    fn step_started(&self, step: Step<'_>, _total: Option<u64>) {
        if let Ok(mut s) = self.status.lock() {
            if let Some(c) = s.current.as_mut() {
                c.stage = Some(step.to_string());
            }
        }
    }
    fn object_error(&self, e: &ObjectError) {
        tracing::warn!(
            stage = e.stage.as_str(),
            connector = e.connector.as_deref().unwrap_or(""),
            object = e.object.as_deref().unwrap_or(""),
            "{}",
            e.message
        );
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub(crate) fn feeds(engine: &Engine) -> Feeds {
    let poll = engine.config.service.dirsync_poll;
    engine.config.connectors.iter().map(|c| (c.name.clone(), engine.change_feed(&c.name, poll))).collect()
}

/// Runs jobs until the sender is dropped.
pub(crate) fn spawn(
    mut engine: Engine,
    jobs: std::sync::mpsc::Receiver<Job>,
    done: UnboundedSender<Done>,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    engine.set_observer(Arc::new(Watch { status: status.clone(), stop }));
    std::thread::spawn(move || {
        while let Ok(job) = jobs.recv() {
            let d = match job {
                Job::Cycle(req, profile) => {
                    if let Ok(mut s) = status.lock() {
                        s.current = Some(Current { profile: profile.into(), started: crate::status::now(), stage: None });
                    }
                    let req = with_weekly_full(&engine, req);
                    // A panic in a stage must not wedge the service: it ends this cycle as failed
                    // (the stage's transaction rolls back) and the next one runs as usual.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.cycle(&req, profile))).unwrap_or_else(|p| {
                        let why = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
                        Err(idflow_core::Error::Refused(format!("the cycle stopped on an internal error: {}", why.unwrap_or_default())))
                    });
                    // The weekly full cycle counts when every connector was imported in full, cleanly.
                    let whole = r.as_ref().is_ok_and(|rep| !rep.errors.iter().any(|e| e.object.is_none()));
                    if req.full && req.import.is_empty() && whole {
                        mark_full(&engine);
                    }
                    if let Ok(mut s) = status.lock() {
                        s.current = None;
                    }
                    Done::Cycle(req, r)
                }
                Job::Reload => Done::Reload(engine.reload().map(|()| reloaded(&engine))),
                Job::Plan(reply) => {
                    let r = engine.plan().map_err(|e| e.to_string()).and_then(|(p, rep)| {
                        let saved = idflow_engine::SavedPlan::new(&engine, p);
                        // Reading the plan's changes back can fail (they wait on disk).
                        let saved = serde_json::to_value(&saved).map_err(|e| format!("cannot read the plan back: {e}"))?;
                        Ok(serde_json::json!({ "saved": saved, "notes": rep.notes }))
                    });
                    let _ = reply.send(r);
                    Done::Planned
                }
                Job::Preview(connector, key, reply) => {
                    let r = idflow_engine::preview(&engine, &connector, &key).map(Box::new);
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                    Done::Planned
                }
                Job::Purge(days) => {
                    match purge(&engine, days) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(runs = n, days, "old run history removed"),
                        Err(e) => tracing::warn!(error = %e, "removing old run history failed"),
                    }
                    Done::Purged
                }
                Job::Backup(plan) => Done::BackedUp(plan.take().map_err(|e| e.to_string())),
            };
            if done.send(d).is_err() {
                break;
            }
        }
    })
}

const LAST_FULL: &str = "service_last_full_cycle";

/// Entra Connect requires a full cycle at least weekly: a scheduled cycle becomes full when the
/// last full one is older than `full_every`. A service's first start counts as the start of the week.
fn with_weekly_full(engine: &Engine, mut req: CycleRequest) -> CycleRequest {
    if req.full || req.phs_only {
        return req;
    }
    let last = engine.store.read().ok().and_then(|r| idflow_store::ReadOps::meta_get(&r, LAST_FULL).ok().flatten());
    match last.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()) {
        Some(t) => {
            let age = chrono::Utc::now().signed_duration_since(t).to_std().unwrap_or(Duration::ZERO);
            if age >= engine.config.service.full_every {
                tracing::info!(last_full = %t, "the last full cycle is older than full_every: this cycle is full");
                req.full = true;
                req.import.clear();
            }
        }
        None => mark_full(engine),
    }
    req
}

fn mark_full(engine: &Engine) {
    let r = engine.store.write().and_then(|tx| {
        tx.meta_set(LAST_FULL, &chrono::Utc::now().to_rfc3339())?;
        tx.commit()
    });
    if let Err(e) = r {
        tracing::warn!(error = %e, "recording the full cycle's time failed");
    }
}

fn purge(engine: &Engine, days: u32) -> Result<usize> {
    let tx = engine.store.write()?;
    let n = tx.history_purge(days)?;
    tx.commit()?;
    Ok(n)
}
