//! The RADIUS listener: UDP, one task per request, answers only to known clients with valid
//! Message-Authenticators; a retransmitted request (same client, identifier and authenticator)
//! is answered again from a cache rather than checked twice.
use super::radius;
use super::{secret_file, Pta};
use idflow_core::password_check::CheckResult;
use idflow_core::{Error, Result};
use idflow_engine::{Config, PtaSection};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use zeroize::Zeroizing;

/// How long an answer is kept for a retransmission.
const REMEMBER: Duration = Duration::from_secs(30);

type Key = (SocketAddr, u8, [u8; 16]);

/// Requests seen lately: when, and their answer once it is made.
type Seen = Arc<Mutex<HashMap<Key, (Instant, Option<Vec<u8>>)>>>;

/// What a client is told (Reply-Message): enough for a front end to act, no more.
fn reply_message(result: CheckResult, smart: bool) -> &'static str {
    match result {
        CheckResult::LockedOut if smart => "locked_out: too many failed attempts, try again later",
        CheckResult::Unreachable => "unreachable: the directory did not answer",
        other => other.as_str(),
    }
}

pub(super) async fn start(config: &Config, section: &PtaSection, listen: &str, pta: Arc<Pta>) -> Result<()> {
    let mut clients: HashMap<IpAddr, Zeroizing<Vec<u8>>> = HashMap::new();
    for c in &section.radius_clients {
        let s = secret_file(config, "radius_client secret_file", &c.secret_file)?;
        if s.len() < 16 {
            tracing::warn!(client = %c.address, "a RADIUS shared secret shorter than 16 characters is weak");
        }
        clients.insert(c.address, Zeroizing::new(s.as_bytes().to_vec()));
    }
    if clients.is_empty() {
        return Err(Error::Config(format!("{}: [pta] radius_listen needs at least one [[pta.radius_client]]", config.file.display())));
    }
    let sock = UdpSocket::bind(listen)
        .await
        .map_err(|e| Error::Refused(format!("cannot listen for RADIUS on {listen} ([pta] radius_listen): {e}")))?;
    tracing::info!(address = %sock.local_addr().map(|a| a.to_string()).unwrap_or_default(), clients = clients.len(), "RADIUS listening");
    let sock = Arc::new(sock);
    let clients = Arc::new(clients);
    let seen: Seen = Arc::default();
    tokio::spawn(async move {
        let mut buf = vec![0u8; radius::MAX_PACKET];
        let mut warned: HashMap<IpAddr, Instant> = HashMap::new();
        loop {
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "RADIUS receive failed");
                    continue;
                }
            };
            let Some(secret) = clients.get(&from.ip()) else {
                // Once a minute per address: anyone on the network could fill the log otherwise.
                if warned.get(&from.ip()).is_none_or(|t: &Instant| t.elapsed() > Duration::from_secs(60)) {
                    if warned.len() > 10_000 {
                        warned.clear();
                    }
                    warned.insert(from.ip(), Instant::now());
                    tracing::warn!(client = %from, "RADIUS requests from an unknown client: dropped");
                }
                continue;
            };
            let req = match radius::parse(&buf[..n], secret) {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!(client = %from, why = ?why, "a RADIUS request that does not verify: dropped");
                    continue;
                }
            };
            let key = (from, req.id, req.authenticator);
            // None: a new request; Some(None): being checked (its answer goes out when ready);
            // Some(Some(answer)): a retransmission, answered again.
            let before = seen.lock().ok().map(|mut s| {
                s.retain(|_, (t, _)| t.elapsed() < REMEMBER);
                let known = s.get(&key).map(|(_, a)| a.clone());
                if known.is_none() {
                    s.insert(key, (Instant::now(), None));
                }
                known
            });
            match before {
                None | Some(Some(None)) => continue,
                Some(Some(Some(answer))) => {
                    let _ = sock.send_to(&answer, from).await;
                    continue;
                }
                Some(None) => {}
            }
            let (sock, seen, pta, secret) = (sock.clone(), seen.clone(), pta.clone(), secret.clone());
            tokio::spawn(async move {
                // The user's address when the client says it (Calling-Station-Id); the client's
                // own is a whole network's gateway, not a source to hold to a budget.
                let user_at = req.calling_station.as_deref().and_then(|c| c.trim().parse::<IpAddr>().ok());
                let outcome = pta.authenticate("radius", &req.user, req.password, user_at).await;
                if outcome.rate_limited {
                    // No answer: the client retries later, as it does a lost packet.
                    if let Ok(mut s) = seen.lock() {
                        s.remove(&key);
                    }
                    return;
                }
                let code = if outcome.result == CheckResult::Success { radius::ACCESS_ACCEPT } else { radius::ACCESS_REJECT };
                let answer =
                    radius::answer(code, req.id, &req.authenticator, reply_message(outcome.result, outcome.smart_lockout), &secret);
                let _ = sock.send_to(&answer, from).await;
                if let Ok(mut s) = seen.lock() {
                    s.insert(key, (Instant::now(), Some(answer)));
                }
            });
        }
    });
    Ok(())
}
