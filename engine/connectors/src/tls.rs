//! TLS for LDAP: certificate and host-name verification on by default, against a CA file or the
//! system's roots; `tls_server_name` verifies against another name than the URL's host (an AD
//! DC reached at 127.0.0.1 whose certificate names DC1.example.test); `tls_insecure` turns
//! verification off and is warned about on every run.
use idflow_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the certificate as usual, but for a configured name instead of the URL's host.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (the handshake signatures are still checked). Only with `tls_insecure = true`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn client_config(
    connector: &str,
    ca_file: Option<&Path>,
    server_name: Option<&str>,
    insecure: bool,
) -> Result<Arc<ClientConfig>> {
    let bad = |m: String| Error::connector(connector, m);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS set-up: {e}")))?;
    if insecure {
        tracing::warn!(
            connector,
            "tls_insecure = true: the server's certificate is NOT verified; anyone on the path can read the bind password"
        );
        let cfg = builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider()))).with_no_client_auth();
        return Ok(Arc::new(cfg));
    }
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                .map_err(|e| bad(format!("ca_file {}: {e}", p.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(format!("ca_file {}: {e}", p.display())))?;
            if certs.is_empty() {
                return Err(bad(format!("ca_file {} holds no PEM certificate", p.display())));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(format!("ca_file {}: {e}", p.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
        }
    }
    let roots = Arc::new(roots);
    let cfg = match server_name {
        Some(n) => {
            let name = ServerName::try_from(n.to_string()).map_err(|e| bad(format!("tls_server_name {n:?}: {e}")))?;
            let inner =
                WebPkiServerVerifier::builder_with_provider(roots, provider()).build().map_err(|e| bad(format!("TLS set-up: {e}")))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name })).with_no_client_auth()
        }
        None => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}
