//! The floor pass-through authentication is measured against: raw LDAP simple binds as one
//! user, over LDAPS, from POOL connections at once (each binding again and again), for SECONDS.
//! Prints binds per second and the p50 and p99 latency.
//!   cargo bench -p idflow-connectors --bench ldap_bind_floor -- URL CA_PEM DN PASSWORD POOL SECONDS
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tls(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(c.expect("a PEM certificate")).expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [url, ca, dn, password, pool, seconds] = args.as_slice() else {
        eprintln!("usage: ldap_bind_floor URL CA_PEM DN PASSWORD POOL SECONDS");
        std::process::exit(2);
    };
    let pool: usize = pool.parse().expect("POOL");
    let run_for = Duration::from_secs(seconds.parse().expect("SECONDS"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let config = tls(ca);
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..pool {
            let (url, dn, password, config) = (url.clone(), dn.clone(), password.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                let settings = ldap3::LdapConnSettings::new().set_config(config).set_conn_timeout(Duration::from_secs(10));
                let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &url).await.expect("connect");
                ldap3::drive!(conn);
                let mut out = Vec::new();
                let began = Instant::now();
                while began.elapsed() < run_for {
                    let t = Instant::now();
                    let r = ldap.simple_bind(&dn, &password).await.expect("bind");
                    assert_eq!(r.rc, 0, "the bind failed: {}", r.text);
                    out.push(t.elapsed());
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let mut l = latencies;
    l.sort();
    let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default();
    println!(
        "raw LDAPS binds, pool {pool}: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms ({} binds)",
        l.len() as f64 / run_for.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        l.len()
    );
}
