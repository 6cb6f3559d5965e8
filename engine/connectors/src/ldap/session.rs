//! Opening an LDAP session: connect (StartTLS or LDAPS), bind, with timeouts and errors that say
//! what went wrong (unreachable, TLS, wrong password) without ever printing the password.
use super::conf::Conf;
use idflow_core::{Error, Result};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, StdStream};
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub(super) async fn open(conf: &Conf) -> Result<Ldap> {
    let mut ldap = connect(conf, &conf.url).await?;
    bind_service(conf, &mut ldap).await?;
    Ok(ldap)
}

/// A bound session as [`open`] makes, on a TCP connection to `at` when given (else to the URL's
/// host), and the address it reached: a second connection for the same work (the full import's
/// search, see `wire`) goes to the same server, whatever else the name resolves to.
pub(super) async fn open_pinned(conf: &Conf, at: Option<SocketAddr>) -> Result<(Ldap, SocketAddr)> {
    let cannot = |m: String| Error::connector(&conf.name, format!("cannot connect to {}: {m}", conf.url));
    let reach = async {
        match at {
            Some(a) => TcpStream::connect(a).await,
            None => {
                let (host, port) = conf.host_port().map_err(std::io::Error::other)?;
                TcpStream::connect((host.as_str(), port)).await
            }
        }
    };
    let tcp = match tokio::time::timeout(conf.timeout, reach).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(Error::connector_caused(&conf.name, format!("cannot connect to {}: {e}", conf.url), e)),
        Err(_) => return Err(cannot(no_answer(conf.timeout))),
    };
    let addr = tcp.peer_addr().map_err(|e| cannot(e.to_string()))?;
    let tcp = tcp.into_std().map_err(|e| cannot(e.to_string()))?;
    let mut ldap = handshake(conf, &conf.url, settings(conf).set_std_stream(StdStream::Tcp(tcp))).await?;
    bind_service(conf, &mut ldap).await?;
    Ok((ldap, addr))
}

fn settings(conf: &Conf) -> LdapConnSettings {
    LdapConnSettings::new().set_conn_timeout(conf.timeout).set_starttls(conf.starttls).set_config(conf.tls.clone())
}

/// A session to `url` (StartTLS or LDAPS as configured), not yet bound.
pub(super) async fn connect(conf: &Conf, url: &str) -> Result<Ldap> {
    handshake(conf, url, settings(conf)).await
}

async fn handshake(conf: &Conf, url: &str, settings: LdapConnSettings) -> Result<Ldap> {
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await.map_err(|e| {
        let refused_starttls = conf.starttls && matches!(&e, ldap3::LdapError::LdapResult { result } if result.rc == 2 || result.rc == 53);
        let m = if refused_starttls {
            format!(
                "cannot connect to {url}: the server refused StartTLS ({e}). Use an ldaps:// URL, enable TLS on the \
                     server, or, knowing the bind password then crosses the network in clear, set starttls = false"
            )
        } else {
            format!("cannot connect to {url}: {}", said(conf, &e))
        };
        Error::connector_caused(&conf.name, m, e)
    })?;
    ldap3::drive!(conn);
    ldap.with_timeout(conf.timeout);
    Ok(ldap)
}

/// Binds as the connector's service account, when one is configured.
pub(super) async fn bind_service(conf: &Conf, ldap: &mut Ldap) -> Result<()> {
    let bad = |m: String| Error::connector(&conf.name, m);
    if let (Some(dn), Some(pw)) = (&conf.bind_dn, &conf.password) {
        let r = ldap.simple_bind(dn, pw).await.map_err(|e| failed(conf, &format!("bind as {dn}"), e))?;
        if r.rc != 0 {
            let what = match r.rc {
                49 => "invalid credentials (wrong bind DN or password)".to_string(),
                8 | 13 => format!("the server wants a protected connection: {}", r.text),
                _ => format!("result code {}: {}", r.rc, r.text),
            };
            return Err(bad(format!("bind as {dn} refused: {what}")));
        }
    }
    Ok(())
}

/// An LDAP error as a sentence: a timeout says how long was waited, and which setting that is.
/// Every operation after the bind is given `timeout_seconds` (ldap3 times only the operation
/// right after `with_timeout`; a search, each wait for its next entry).
pub(super) fn said(conf: &Conf, e: &ldap3::LdapError) -> String {
    match e {
        ldap3::LdapError::Timeout { .. } => no_answer(conf.timeout),
        other => other.to_string(),
    }
}

/// What waiting `limit` for the directory in vain is called, naming the setting.
pub(super) fn no_answer(limit: std::time::Duration) -> String {
    format!("no answer from the directory within {} s (the connector's timeout_seconds)", limit.as_secs())
}

/// `what` failed with `e`, as the connector's error.
pub(super) fn failed(conf: &Conf, what: &str, e: ldap3::LdapError) -> Error {
    Error::connector_caused(&conf.name, format!("{what}: {}", said(conf, &e)), e)
}

/// `rc` to an error naming the operation, or Ok.
pub(super) fn check(conf: &Conf, what: &str, r: &ldap3::LdapResult) -> Result<()> {
    check_code(conf, what, i64::from(r.rc), &r.text)
}

/// A result code and its diagnostic message to an error naming the operation, or Ok.
pub(super) fn check_code(conf: &Conf, what: &str, rc: i64, text: &str) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let hint = match rc {
        32 => " (no such object: is the base DN right?)",
        50 => " (insufficient access rights)",
        _ => "",
    };
    Err(Error::connector(&conf.name, format!("{what}: result code {rc}{hint}: {text}")))
}
