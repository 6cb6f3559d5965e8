//! `idflow pta relay`: the front ends (RADIUS, the hook) for identity providers, and a mutual-
//! TLS listener the agents dial into. Each check goes to one connected agent (in turn), its
//! password sealed to that agent's key of the moment; an agent that does not answer within
//! the deadline costs the request (it is not sent to another: the password went once).
use super::wire::{self, Frame};
use super::Pta;
use crypto_box::aead::OsRng;
use idflow_core::password_check::CheckResult;
use idflow_core::{Error, Result};
use idflow_engine::{Config, PtaSection};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<CheckResult>>>>;

struct Agent {
    conn: u64,
    name: String,
    key: crypto_box::PublicKey,
    frames: mpsc::Sender<Vec<u8>>,
    pending: Pending,
}

/// What a check is answered with when no agent is connected (an alert of its own, not the
/// directory's).
pub(crate) const NO_AGENT: &str = "no agent is connected";

/// The agents connected now.
pub(crate) struct Agents {
    list: Mutex<Vec<Agent>>,
    next: AtomicUsize,
    ids: AtomicU64,
    /// Where agents dial in (the metric's label).
    listen: String,
    metrics: Arc<crate::metrics::Metrics>,
    status: Option<Arc<Mutex<crate::status::Status>>>,
}

impl Agents {
    fn new(listen: String, metrics: Arc<crate::metrics::Metrics>, status: Option<Arc<Mutex<crate::status::Status>>>) -> Agents {
        let agents = Agents { list: Mutex::default(), next: AtomicUsize::new(0), ids: AtomicU64::new(0), listen, metrics, status };
        agents.changed(0);
        agents
    }

    pub(crate) fn connected(&self) -> Vec<String> {
        self.list.lock().map(|l| l.iter().map(|a| a.name.clone()).collect()).unwrap_or_default()
    }

    /// The count is told under the list's lock, so two agents leaving at once never leave
    /// the older count last.
    fn add(&self, agent: Agent) -> usize {
        let Ok(mut l) = self.list.lock() else { return 0 };
        l.push(agent);
        self.changed(l.len());
        l.len()
    }

    fn remove(&self, conn: u64) -> usize {
        let Ok(mut l) = self.list.lock() else { return 0 };
        l.retain(|a| a.conn != conn);
        self.changed(l.len());
        l.len()
    }

    /// The metric, and the service's status (whose health raises the alert).
    fn changed(&self, connected: usize) {
        self.metrics.pta_agents(&self.listen, connected);
        if let Some(Ok(mut s)) = self.status.as_ref().map(|s| s.lock()) {
            s.pta_agents = Some(connected);
            if connected > 0 {
                s.pta_no_agent_since = None;
            } else if s.pta_no_agent_since.is_none() {
                s.pta_no_agent_since = Some(crate::status::now());
            }
        }
    }

    /// One agent checks the password.
    pub(crate) async fn ask(&self, user: &str, password: Zeroizing<String>, deadline: Duration) -> (CheckResult, String) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let picked = self.list.lock().ok().and_then(|l| {
            if l.is_empty() {
                return None;
            }
            let a = &l[self.next.fetch_add(1, Ordering::Relaxed) % l.len()];
            Some((a.name.clone(), a.key.clone(), a.frames.clone(), a.pending.clone()))
        });
        let Some((name, key, frames, pending)) = picked else {
            return (CheckResult::Unreachable, NO_AGENT.into());
        };
        let sealed = match key.seal(&mut OsRng, password.as_bytes()) {
            Ok(s) => s,
            Err(_) => return (CheckResult::Unreachable, "sealing the password failed".into()),
        };
        drop(password);
        let sealed = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sealed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = pending.lock() {
            p.insert(id, tx);
        }
        // One deadline for both: an agent that stopped reading holds no request past it.
        let r = tokio::time::timeout(deadline, async {
            if frames.send(Frame::Check { id, user: user.to_string(), sealed }.line()).await.is_err() {
                return None;
            }
            rx.await.ok()
        })
        .await;
        if let Ok(mut p) = pending.lock() {
            p.remove(&id);
        }
        match r {
            Ok(Some(result)) => (result, format!("agent {name}")),
            Ok(None) => (CheckResult::Unreachable, format!("agent {name} went away before it answered")),
            Err(_) => (CheckResult::Unreachable, format!("agent {name} did not answer within {}", humantime::format_duration(deadline))),
        }
    }
}

/// The relay's TLS: its certificate, and agents' certificates signed by the CA.
fn server_tls(config: &Config, section: &PtaSection) -> Result<tokio_rustls::TlsAcceptor> {
    let need = |v: &Option<String>, what: &str| {
        v.as_ref()
            .map(|f| config.dir.join(f))
            .ok_or_else(|| Error::Config(format!("{}: [pta] relay_listen needs {what}", config.file.display())))
    };
    let (ca, cert, key) = (need(&section.tls_ca, "tls_ca")?, need(&section.tls_cert, "tls_cert")?, need(&section.tls_key, "tls_key")?);
    crate::tls::mutual_acceptor(&ca, &cert, &key)
}

/// Serves one agent's connection until it ends.
async fn agent_connection(
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: std::net::SocketAddr,
    conn: u64,
    agents: Arc<Agents>,
    pta: Arc<Pta>,
    section: PtaSection,
) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = tokio::io::BufReader::new(r);
    let hello = tokio::time::timeout(Duration::from_secs(10), wire::read(&mut r)).await;
    let (name, key) = match hello {
        Ok(Ok(Some(Frame::Hello { agent, key, lockout_threshold, lockout_window_seconds }))) => {
            let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.as_bytes()).unwrap_or_default();
            let Ok(key) = crypto_box::PublicKey::from_slice(&bytes) else {
                tracing::warn!(agent = %agent, peer = %peer, "an agent's key is not an X25519 public key: refused");
                return;
            };
            if let Some(t) = lockout_threshold {
                pta.domain_policy(&section, t, Duration::from_secs(lockout_window_seconds.unwrap_or(1800)));
            }
            (agent, key)
        }
        _ => {
            tracing::warn!(peer = %peer, "a connection that did not say hello: closed");
            return;
        }
    };
    let (frames, mut outbox) = mpsc::channel::<Vec<u8>>(256);
    let pending: Pending = Arc::default();
    let pings = frames.clone();
    let connected = agents.add(Agent { conn, name: name.clone(), key, frames, pending: pending.clone() });
    tracing::info!(agent = %name, peer = %peer, connected, "agent connected");
    let mut writer = tokio::spawn(async move {
        while let Some(line) = outbox.recv().await {
            if w.write_all(&line).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
    let heartbeat = section.heartbeat;
    let pinger = tokio::spawn(async move {
        let mut every = tokio::time::interval(heartbeat);
        every.tick().await;
        loop {
            every.tick().await;
            if pings.send(Frame::Ping.line()).await.is_err() {
                break;
            }
        }
    });
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(heartbeat * 3, wire::read(&mut r)) => f,
            _ = &mut writer => {
                tracing::warn!(agent = %name, "writing to an agent failed");
                break;
            }
        };
        match frame {
            Ok(Ok(Some(Frame::Answer { id, result }))) => {
                let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            Ok(Ok(Some(Frame::Pong))) => {}
            Ok(Ok(Some(_))) => tracing::warn!(agent = %name, "an agent sent what only a relay sends: ignored"),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(agent = %name, error = %e, "reading from an agent failed");
                break;
            }
            Err(_) => {
                tracing::warn!(agent = %name, silent = %humantime::format_duration(heartbeat * 3), "an agent answered no ping: taken for gone");
                break;
            }
        }
    }
    let connected = agents.remove(conn);
    writer.abort();
    pinger.abort();
    // What this agent had not answered is answered unreachable now (dropping the senders).
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
    tracing::warn!(agent = %name, connected, "agent disconnected");
}

/// Starts the agents' listener and the front ends; `status` is the service's, when the relay
/// runs inside `idflow serve`.
pub(crate) async fn start(
    config: &Config,
    metrics: Arc<crate::metrics::Metrics>,
    status: Option<Arc<Mutex<crate::status::Status>>>,
) -> Result<Arc<Agents>> {
    let section = config.pta.clone().ok_or_else(|| Error::Config("no [pta] section".into()))?;
    let listen = section.relay_listen.clone().ok_or_else(|| {
        Error::Config(format!("{}: [pta] relay_listen is where agents dial in (\"0.0.0.0:7390\")", config.file.display()))
    })?;
    // A relay checks nothing itself: a connector here would be silently unused.
    if section.connector.is_some() || !section.failover_urls.is_empty() {
        return Err(Error::Config(format!(
            "{}: [pta] relay_listen with connector or failover_urls: a relay checks no password itself (its agents do); \
             drop them here, or drop relay_listen to check passwords in this process",
            config.file.display()
        )));
    }
    if section.radius_listen.is_none() && section.hook_listen.is_none() {
        return Err(Error::Config(format!(
            "{}: [pta] relay_listen without radius_listen or hook_listen: nothing would ask the agents",
            config.file.display()
        )));
    }
    let acceptor = server_tls(config, &section)?;
    let agents = Arc::new(Agents::new(listen.clone(), metrics.clone(), status.clone()));
    let pta = Pta::relayed(&section, agents.clone(), metrics, status);
    let tcp =
        tokio::net::TcpListener::bind(&listen).await.map_err(|e| Error::Refused(format!("cannot listen for agents on {listen}: {e}")))?;
    tracing::info!(address = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "relay listening for agents");
    let (a, p, s) = (agents.clone(), pta.clone(), section.clone());
    tokio::spawn(async move {
        let conns = AtomicU64::new(0);
        loop {
            let Ok((stream, peer)) = tcp.accept().await else { continue };
            let (acceptor, agents, pta, section) = (acceptor.clone(), a.clone(), p.clone(), s.clone());
            let conn = conns.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => agent_connection(tls, peer, conn, agents, pta, section).await,
                    Ok(Err(e)) => {
                        tracing::warn!(peer = %peer, error = %e, "an agent's TLS handshake failed (no certificate the CA signed?)")
                    }
                    Err(_) => tracing::warn!(peer = %peer, "an agent's TLS handshake timed out"),
                }
            });
        }
    });
    // Said in the log each minute no agent is connected (the metric and the service's alert
    // say it to those who watch).
    let quiet = agents.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            if quiet.connected().is_empty() {
                tracing::warn!(listen = %quiet.listen, "no pass-through authentication agent is connected: sign-ins through this relay fail");
            }
        }
    });
    super::serve_front_ends(config, &section, pta).await?;
    Ok(agents)
}
