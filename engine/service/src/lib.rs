//! idflow-service: `idflow serve`. Cycles run on a schedule (`[service]`: a delta cycle every
//! `interval`, password hash sync every `phs_interval`, a full cycle every `full_every`) and
//! when a directory reports a change (syncrepl refreshAndPersist, DirSync polling), batched by a
//! short debounce. A local HTTP API, with a token, shows status and takes commands; SIGTERM
//! finishes the batch being exported and stops; SIGHUP or a changed configuration or rule file
//! reloads, keeping the old configuration when the new one is invalid; systemd is told through
//! sd_notify.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod alerts;
mod api;
mod backup_owner;
mod backups;
pub mod client;
mod dashboard;
mod feeds;
mod health;
mod metrics;
mod notify;
mod pta;
mod schedule;
mod scheduler;
mod service_file;
mod status;
mod tls;
mod worker;

pub use service_file::{path_for as service_file_path, ServiceFile};
pub use status::{BackupStatus, ConnectorStatus, Current, LastCycle, Status};

use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::Engine;
use std::path::Path;
use std::sync::Arc;

/// Runs the service until SIGTERM or SIGINT: exit code 0 after a clean stop.
pub fn serve(config_path: &Path, registry: Arc<Registry>) -> Result<i32> {
    let engine = Engine::open(config_path, registry.clone())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Refused(format!("cannot start the service's runtime: {e}")))?;
    rt.block_on(scheduler::run(engine, registry))
}

/// Runs `work` on a runtime of its own until it ends, or until SIGTERM or SIGINT.
fn until_stopped(work: impl std::future::Future<Output = Result<()>>) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Refused(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Refused(format!("SIGTERM handler: {e}")))?;
        tokio::select! {
            r = work => r?,
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopped");
        Ok(0)
    })
}

/// Serves until stopped, once `start` has started what it serves.
async fn serving(start: impl std::future::Future<Output = Result<()>>, what: &str) -> Result<()> {
    start.await?;
    notify::ready(what);
    std::future::pending().await
}

/// Runs `idflow pta relay` (`relay = true`: the front ends, and agents dial in) or `idflow pta
/// agent` until SIGTERM or SIGINT.
pub fn serve_pta_role(config_path: &Path, registry: Arc<Registry>, relay: bool) -> Result<i32> {
    let config = idflow_engine::Config::load(config_path)?;
    let section = config.pta.as_ref();
    if relay {
        if section.and_then(|p| p.relay_listen.as_ref()).is_none() {
            return Err(Error::Config(format!("{}: [pta] relay_listen is where agents dial in (\"0.0.0.0:7390\")", config.file.display())));
        }
        return serve_pta(config_path, registry);
    }
    if section.and_then(|p| p.metrics_listen.as_ref()).is_some() {
        return Err(Error::Config(format!(
            "{}: [pta] metrics_listen: an agent never listens; the relay's /metrics counts the agents connected",
            config.file.display()
        )));
    }
    until_stopped(pta::agent::run(&config, registry, Arc::new(metrics::Metrics::new())))
}

/// Runs only pass-through authentication (`[pta]`): its front ends (radius_listen,
/// hook_listen), with passwords checked here or, with relay_listen, by the agents that dial in,
/// and `/metrics` on metrics_listen; no sync and no metaverse, until SIGTERM or SIGINT.
pub fn serve_pta(config_path: &Path, registry: Arc<Registry>) -> Result<i32> {
    let config = idflow_engine::Config::load(config_path)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let what = match config.pta.as_ref().map(|p| p.relay_listen.is_some()) {
        Some(true) => "pass-through authentication relay serving",
        _ => "pass-through authentication serving",
    };
    let start = async {
        if !pta::start_front_ends(&config, &registry, metrics.clone(), None).await? {
            return Err(Error::Config(format!("{}: [pta] has none of radius_listen, hook_listen, relay_listen", config.file.display())));
        }
        if let Some(listen) = config.pta.as_ref().and_then(|p| p.metrics_listen.as_ref()) {
            metrics::serve(listen, metrics).await?;
        }
        Ok(())
    };
    until_stopped(serving(start, what))
}
