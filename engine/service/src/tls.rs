//! TLS for the API and the dashboard when `[service] tls_cert` and `tls_key` are set: the
//! listener hands axum connections whose handshake is done; the CLI trusts the same certificate.
use idflow_core::owner_only::open_to_others;
use idflow_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake slower than this is dropped (a client that connects and says nothing).
const HANDSHAKE: Duration = Duration::from_secs(10);

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("[service] tls_cert {}: {e}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("[service] tls_cert {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("[service] tls_cert {}: no certificate in it (PEM expected)", path.display())));
    }
    Ok(certs)
}

/// The server's TLS from the PEM certificate chain and key; the key file must be owner-only.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    if open_to_others(key).ok().flatten().is_some() {
        return Err(Error::Config(format!("[service] tls_key {}: readable by others; chmod 600 it", key.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Config(format!("[service] tls_key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs(cert)?, key)
        .map_err(|e| Error::Config(format!("[service] tls_cert and tls_key do not make a certificate: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The CLI's trust in the service: the certificate the service serves (or the CA that signed it).
pub(crate) fn client_config(cert: &Path) -> Result<ureq::tls::TlsConfig> {
    let roots = certs(cert)?.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect();
    Ok(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots))).build())
}

/// Connections waiting for axum, their handshakes done.
const READY: usize = 64;

/// A TCP listener whose connections are TLS. Each handshake runs in a task of its own, so a
/// client that connects and says nothing holds up no one; a failed handshake is skipped.
pub(crate) struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(READY);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended: nothing more comes (axum is being shut down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn roots(ca: &Path) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| Error::Config(format!("[pta] tls_ca {}: {e}", ca.display())))?;
    }
    Ok(roots)
}

fn key_of(key: &Path) -> Result<PrivateKeyDer<'static>> {
    if open_to_others(key).ok().flatten().is_some() {
        return Err(Error::Config(format!("[pta] tls_key {}: readable by others; chmod 600 it", key.display())));
    }
    PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Config(format!("[pta] tls_key {}: {e}", key.display())))
}

/// The relay's TLS: its certificate, and a client certificate the CA signed required of every agent.
pub(crate) fn mutual_acceptor(ca: &Path, cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("[pta] tls_ca: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key_of(key)?)
        .map_err(|e| Error::Config(format!("[pta] tls_cert and tls_key do not make a certificate: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// An agent's TLS: the relay's certificate checked against the CA, its own presented.
pub(crate) fn mutual_connector(ca: &Path, cert: &Path, key: &Path) -> Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(certs(cert)?, key_of(key)?)
        .map_err(|e| Error::Config(format!("[pta] tls_cert and tls_key do not make a certificate: {e}")))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
