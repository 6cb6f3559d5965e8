//! `idflow pta agent`: on-premises, it dials out to the relay (mutual TLS; it never listens),
//! makes a key pair for each connection (the relay seals each password to its public key, so
//! no other agent, and nothing that copies the relay's traffic, can read it), checks what the
//! relay sends against the directory, and answers. A lost connection is dialled again with a
//! pause that doubles up to a minute; a connection lives at most a day, so keys are renewed.
use super::wire::{self, Frame};
use super::Pta;
use crypto_box::aead::OsRng;
use idflow_core::password_check::CheckResult;
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

/// A connection is closed and made again (with a new key pair) after this long.
const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "agent".into())
}

/// One connection to the relay, until it ends.
async fn session(
    relay: &str,
    connector: &tokio_rustls::TlsConnector,
    pta: &Arc<Pta>,
    domain: Option<(u32, Duration)>,
    heartbeat: Duration,
) -> std::result::Result<(), String> {
    let host = relay.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(relay).to_string();
    let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| format!("{relay}: {e}"))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(relay))
        .await
        .map_err(|_| format!("{relay}: connecting timed out"))?
        .map_err(|e| format!("{relay}: {e}"))?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| format!("{relay}: the TLS handshake timed out"))?
        .map_err(|e| format!("{relay}: TLS: {e}"))?;
    let secret = crypto_box::SecretKey::generate(&mut OsRng);
    let public = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret.public_key().as_bytes());
    let (r, mut w) = tokio::io::split(tls);
    let mut r = tokio::io::BufReader::new(r);
    let hello = Frame::Hello {
        agent: format!("{}-{}", hostname(), std::process::id()),
        key: public,
        lockout_threshold: domain.map(|(t, _)| t),
        lockout_window_seconds: domain.map(|(_, w)| w.as_secs()),
    };
    w.write_all(&hello.line()).await.map_err(|e| e.to_string())?;
    tracing::info!(relay = %relay, "connected to the relay");
    let (answers, mut outbox) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    let writer = tokio::spawn(async move {
        while let Some(line) = outbox.recv().await {
            if w.write_all(&line).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
    let secret = Arc::new(secret);
    // The key pair lives as long as the connection: at most KEY_LIFETIME, however busy.
    let renew = tokio::time::sleep(KEY_LIFETIME);
    tokio::pin!(renew);
    let ended = loop {
        let frame = tokio::select! {
            _ = &mut renew => break Ok(()),
            f = tokio::time::timeout(heartbeat * 3, wire::read(&mut r)) => match f {
                Ok(f) => f,
                Err(_) => break Err(format!("the relay said nothing for {}", humantime::format_duration(heartbeat * 3))),
            },
        };
        match frame {
            Ok(Some(Frame::Ping)) => {
                let _ = answers.send(Frame::Pong.line()).await;
            }
            Ok(Some(Frame::Check { id, user, sealed })) => {
                let (pta, secret, answers) = (pta.clone(), secret.clone(), answers.clone());
                tokio::spawn(async move {
                    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sealed.as_bytes()).unwrap_or_default();
                    let result = match secret.unseal(&bytes) {
                        Ok(plain) => {
                            let password = Zeroizing::new(String::from_utf8_lossy(&Zeroizing::new(plain)).into_owned());
                            pta.check(&user, password).await.0
                        }
                        Err(_) => {
                            tracing::warn!("a check whose password does not open with this agent's key: refused");
                            CheckResult::InvalidCredentials
                        }
                    };
                    let _ = answers.send(Frame::Answer { id, result }.line()).await;
                });
            }
            Ok(Some(_)) => tracing::warn!("the relay sent what only an agent sends: ignored"),
            Ok(None) => break Err("the relay closed the connection".to_string()),
            Err(e) => break Err(e.to_string()),
        }
    };
    writer.abort();
    ended
}

pub(crate) async fn run(config: &Config, registry: Arc<Registry>, metrics: Arc<crate::metrics::Metrics>) -> Result<()> {
    let section = config.pta.clone().ok_or_else(|| Error::Config("no [pta] section".into()))?;
    let relay = section.relay.clone().ok_or_else(|| {
        Error::Config(format!("{}: [pta] relay is the relay to dial (\"relay.example.org:7390\")", config.file.display()))
    })?;
    let need = |v: &Option<String>, what: &str| {
        v.as_ref().map(|f| config.dir.join(f)).ok_or_else(|| Error::Config(format!("{}: [pta] relay needs {what}", config.file.display())))
    };
    let connector = crate::tls::mutual_connector(
        &need(&section.tls_ca, "tls_ca")?,
        &need(&section.tls_cert, "tls_cert")?,
        &need(&section.tls_key, "tls_key")?,
    )?;
    let (c, r) = (config.clone(), registry.clone());
    let (pta, _) = tokio::task::spawn_blocking(move || Pta::start(&c, &r, metrics, None))
        .await
        .map_err(|e| Error::Refused(format!("starting the agent: {e}")))??;
    let domain = pta.domain;
    crate::notify::ready("pass-through authentication agent running");
    let mut pause = Duration::from_secs(1);
    loop {
        let began = std::time::Instant::now();
        match session(&relay, &connector, &pta, domain, section.heartbeat).await {
            Ok(()) => tracing::info!("renewing the key pair: connecting again"),
            Err(e) => tracing::warn!(error = %e, retry_in = %humantime::format_duration(pause), "not connected to the relay"),
        }
        if began.elapsed() > Duration::from_secs(30) {
            pause = Duration::from_secs(1);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}
