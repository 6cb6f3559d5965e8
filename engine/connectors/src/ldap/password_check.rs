//! Pass-through authentication against the directory: find the user's DN with the service
//! account, then bind as that DN with the password on a connection of its own, over LDAPS or
//! StartTLS only. Active Directory's refusals carry a sub-code (`data 52e`, `533`, `773`, ...)
//! that says why; OpenLDAP's ppolicy overlay says it in the password policy control. Servers are tried in turn: the
//! connector's, then the failover URLs; one that does not answer is skipped. The two
//! connections stay open for the next check; a check whose connection failed after the
//! password was sent is answered `unreachable`, never sent again.
use super::backend::LdapConnector;
use super::config::Flavor;
use super::session;
use idflow_core::password_check::{CheckResult, Checked, PasswordCheck};
use idflow_core::{Error, Result};
use ldap3::{ldap_escape, Scope, SearchEntry};

pub(super) struct BindCheck {
    connector: LdapConnector,
    urls: Vec<String>,
    live: std::sync::Mutex<Option<Live>>,
}

impl BindCheck {
    pub(super) fn new(connector: LdapConnector, failover: &[String]) -> Result<BindCheck> {
        let conf = &connector.conf;
        if conf.tls_insecure {
            return Err(Error::Config(format!(
                "connector {:?}: tls_insecure = true: passwords would go to a server whose certificate is not checked; give ca_file instead",
                conf.name
            )));
        }
        let mut urls = vec![conf.url.clone()];
        urls.extend(failover.iter().cloned());
        for u in &urls {
            if u.starts_with("ldap://") && !conf.starttls {
                return Err(Error::Config(format!(
                    "connector {:?}: passwords are checked over LDAPS or StartTLS only, and {u} with starttls = false would send them in clear",
                    conf.name
                )));
            }
            if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
                return Err(Error::Config(format!("connector {:?}: {u:?} is not an ldap:// or ldaps:// URL", conf.name)));
            }
        }
        Ok(BindCheck { connector, urls, live: std::sync::Mutex::new(None) })
    }
}

/// The filter that finds a user by the name they sign in with.
fn user_filter(flavor: Flavor, user: &str) -> String {
    let u = ldap_escape(user);
    match flavor {
        Flavor::Ad => format!("(&(objectClass=user)(!(objectClass=computer))(|(sAMAccountName={u})(userPrincipalName={u})))"),
        Flavor::Openldap => format!("(|(uid={u})(mail={u}))"),
    }
}

/// AD's sub-code in a refused bind's message: "... AcceptSecurityContext error, data 52e, v4563".
fn ad_code(text: &str) -> Option<&str> {
    let rest = text.split("data ").nth(1)?;
    rest.split([',', ' ']).next().filter(|c| !c.is_empty())
}

enum Outcome {
    Answered(Checked),
    /// This server did not answer before the password was sent: try the next.
    Down(String),
    /// The connection failed after the password was sent: not sent again.
    Lost(String),
}

/// A server's two connections, kept between checks: one bound as the service account (to
/// look users up), one for the users' binds (each bind replaces the last).
pub(super) struct Live {
    url: String,
    svc: ldap3::Ldap,
    user: ldap3::Ldap,
    used: std::time::Instant,
}

/// Connections idle longer than this are opened again rather than trusted (servers close idle
/// connections: AD after 15 minutes), so that a password is not sent on one that is gone.
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);

impl BindCheck {
    async fn open(&self, url: &str) -> Result<Live> {
        let conf = &self.connector.conf;
        let mut svc = session::connect(conf, url).await?;
        session::bind_service(conf, &mut svc).await?;
        let user = session::connect(conf, url).await?;
        Ok(Live { url: url.to_string(), svc, user, used: std::time::Instant::now() })
    }

    async fn at(&self, live: &mut Live, user: &str, password: &str) -> Outcome {
        let conf = &self.connector.conf;
        let url = live.url.clone();
        let checked =
            |result: CheckResult, detail: Option<String>| Outcome::Answered(Checked { result, server: Some(url.clone()), detail });
        let filter = user_filter(conf.flavor, user);
        let mut found: Vec<String> = Vec::new();
        for base in &conf.roots {
            match live.svc.with_timeout(conf.timeout).search(base, Scope::Subtree, &filter, vec!["1.1"]).await.and_then(|r| r.success()) {
                Ok((entries, _)) => found.extend(entries.into_iter().map(|e| SearchEntry::construct(e).dn)),
                Err(e) => return Outcome::Down(format!("looking the user up: {}", session::said(conf, &e))),
            }
        }
        found.sort();
        found.dedup();
        let dn = match found.as_slice() {
            [dn] => dn.clone(),
            // Unknown (or not unique): refused like a wrong password, no more said, and after
            // a bind of the same cost so that the time taken does not tell either.
            _ => {
                let nobody = format!("CN=idflow-no-such-user,{}", conf.roots.first().map(String::as_str).unwrap_or(""));
                // A bind that gets no answer leaves the connection unusable: dropped, not kept.
                if let Err(e) = live.user.with_timeout(conf.timeout).simple_bind(&nobody, password).await {
                    return Outcome::Lost(format!("bind: {}", session::said(conf, &e)));
                }
                return checked(CheckResult::InvalidCredentials, None);
            }
        };
        // OpenLDAP says what its password policy holds in a control of the bind's answer.
        if conf.flavor == Flavor::Openldap {
            live.user.with_controls(vec![super::ppolicy::request()]);
        }
        match live.user.with_timeout(conf.timeout).simple_bind(&dn, password).await {
            Ok(r) if r.rc == 0 => {
                let policy = super::ppolicy::response(&r.ctrls);
                let said = policy.as_ref().and_then(|p| p.result(true));
                checked(said.unwrap_or(CheckResult::Success), policy.and_then(|p| p.detail()))
            }
            Ok(r) if r.rc == 49 => {
                if let Some(said) = super::ppolicy::response(&r.ctrls).and_then(|p| p.result(false)) {
                    return checked(said, Some("the password policy's control".into()));
                }
                let code = ad_code(&r.text).map(str::to_string);
                let result = code.as_deref().map(CheckResult::from_ad_code).unwrap_or(CheckResult::InvalidCredentials);
                checked(result, code.map(|c| format!("data {c}")))
            }
            // Busy, unavailable, unwilling, other: the directory did not judge the password.
            Ok(r) if matches!(r.rc, 51..=53 | 80) => Outcome::Lost(format!("bind: result code {}: {}", r.rc, r.text)),
            Ok(r) => checked(CheckResult::InvalidCredentials, Some(format!("result code {}: {}", r.rc, r.text))),
            Err(e) => Outcome::Lost(format!("bind: {}", session::said(conf, &e))),
        }
    }
}

impl BindCheck {
    /// AD's `lockoutThreshold` and `lockOutObservationWindow` (negative 100 ns units) from the
    /// domain object, read with the service account.
    async fn policy(&self) -> Option<(u32, std::time::Duration)> {
        let conf = &self.connector.conf;
        if conf.flavor != Flavor::Ad {
            return None;
        }
        for url in &self.urls {
            let Ok(mut l) = session::connect(conf, url).await else { continue };
            if session::bind_service(conf, &mut l).await.is_err() {
                continue;
            }
            // The domain object is the rootDSE's defaultNamingContext (base_dn may be an OU).
            let root = async {
                let (entries, _) = l
                    .with_timeout(conf.timeout)
                    .search("", Scope::Base, "(objectClass=*)", vec!["defaultNamingContext"])
                    .await
                    .ok()?
                    .success()
                    .ok()?;
                let e = SearchEntry::construct(entries.into_iter().next()?);
                e.attrs.get("defaultNamingContext")?.first().cloned()
            }
            .await;
            let Some(root) = root else { continue };
            let r = l
                .with_timeout(conf.timeout)
                .search(&root, Scope::Base, "(objectClass=*)", vec!["lockoutThreshold", "lockOutObservationWindow"])
                .await;
            let _ = l.unbind().await;
            let Ok((entries, _)) = r.and_then(|r| r.success()) else { continue };
            let Some(e) = entries.into_iter().next().map(SearchEntry::construct) else { continue };
            let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).and_then(|v| v.parse::<i64>().ok());
            let Some(threshold) = first("lockoutThreshold").and_then(|t| u32::try_from(t).ok()) else { continue };
            let window = first("lockOutObservationWindow").map(|w| std::time::Duration::from_nanos(w.unsigned_abs().saturating_mul(100)));
            return Some((threshold, window.unwrap_or(std::time::Duration::from_secs(30 * 60))));
        }
        None
    }
}

impl PasswordCheck for BindCheck {
    fn lockout_policy(&self) -> Option<(u32, std::time::Duration)> {
        self.connector.rt.block_on(self.policy())
    }

    fn check(&self, user: &str, password: &str) -> Checked {
        // An empty password is an unauthenticated bind, which LDAP servers accept: never asked.
        if password.is_empty() || user.trim().is_empty() {
            return Checked { result: CheckResult::InvalidCredentials, server: None, detail: None };
        }
        let Ok(mut slot) = self.live.lock() else {
            return Checked { result: CheckResult::Unreachable, server: None, detail: Some("the check's lock is poisoned".into()) };
        };
        // The connections of the last check, when they still work.
        if let Some(mut live) = slot.take().filter(|l| l.used.elapsed() < IDLE) {
            live.used = std::time::Instant::now();
            match self.connector.rt.block_on(self.at(&mut live, user, password)) {
                Outcome::Answered(c) => {
                    *slot = Some(live);
                    return c;
                }
                Outcome::Lost(why) => return Checked { result: CheckResult::Unreachable, server: Some(live.url), detail: Some(why) },
                // Gone since (a server restarted): open again below.
                Outcome::Down(_) => {}
            }
        }
        let mut down = Vec::new();
        for url in &self.urls {
            let mut live = match self.connector.rt.block_on(self.open(url)) {
                Ok(l) => l,
                Err(e) => {
                    down.push(format!("{url}: {e}"));
                    continue;
                }
            };
            match self.connector.rt.block_on(self.at(&mut live, user, password)) {
                Outcome::Answered(c) => {
                    if !down.is_empty() {
                        tracing::warn!(down = ?down, answered = %url, "directory servers skipped as unreachable");
                    }
                    *slot = Some(live);
                    return c;
                }
                Outcome::Lost(why) => return Checked { result: CheckResult::Unreachable, server: Some(url.clone()), detail: Some(why) },
                Outcome::Down(why) => down.push(format!("{url}: {why}")),
            }
        }
        Checked { result: CheckResult::Unreachable, server: None, detail: Some(down.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ad_codes_are_read_from_the_diagnostic_message() {
        let t = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(super::ad_code(t), Some("52e"));
        assert_eq!(super::ad_code("invalid credentials"), None);
    }

    #[test]
    fn the_user_filter_escapes_what_the_user_typed() {
        let f = super::user_filter(super::Flavor::Ad, "a*)(uid=*");
        assert!(f.contains("a\\2a\\29\\28uid=\\2a"), "{f}");
    }
}
