//! What password hash sync needs of an Active Directory connector: its `[connector.replication]`
//! settings checked and completed (the DC, the account and its password, the naming context),
//! the DC's invocationId, and which DNs are in scope.
use super::backend::LdapConnector;
use super::config::{Auth, Flavor};
use idflow_core::{dn, Error, Result};
use idflow_msrpc::drsr;
use idflow_msrpc::Credentials;
use std::time::Duration;

/// What the password hash sync source needs: where, as whom, and which objects are in scope.
pub(super) struct Replication {
    pub options: drsr::Options,
    /// The domain naming context (`DC=...`), which is what DRS replicates.
    pub naming_context: String,
    /// The host the connector's LDAP URL names: when it is the DC replicated from, its
    /// invocationId is read over LDAP.
    pub ldap_host: String,
}

/// The `DC=` components at the end of a DN.
fn domain_dn(dn: &str) -> String {
    let parts: Vec<&str> = dn.split(',').map(str::trim).collect();
    let tail: Vec<&str> = parts.iter().rev().take_while(|p| p.len() > 3 && p[..3].eq_ignore_ascii_case("dc=")).copied().collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    hostport.rsplit_once(':').map_or(hostport, |(h, _)| h).to_string()
}

impl LdapConnector {
    pub(super) fn is_ad(&self) -> bool {
        self.conf.flavor == Flavor::Ad
    }

    /// Whether a DN is in the connector's scope (below `base_dn`, and Entra Connect's OU filter).
    pub(super) fn dn_in_scope(&self, dn: &str) -> bool {
        let n = dn::norm(dn);
        self.conf.roots.iter().any(|r| {
            let r = dn::norm(r);
            n == r || n.ends_with(&format!(",{r}"))
        }) && self.conf.in_scope(dn)
    }

    /// The DC's invocationId, read over LDAP from its nTDSDSA object (the rootDSE's
    /// `dsServiceName`): the `uuidInvocIdSrc` a USN watermark is valid against.
    pub(super) fn dsa_invocation_id(&self) -> Result<[u8; 16]> {
        let conf = &self.conf;
        self.rt.block_on(async {
            let bad = |m: String| Error::connector(&conf.name, m);
            let mut ldap = super::session::open(conf).await?;
            // One entry, read by its DN.
            async fn entry(
                ldap: &mut ldap3::Ldap,
                dn: &str,
                filter: &str,
                attr: &str,
            ) -> std::result::Result<Option<ldap3::SearchEntry>, String> {
                let what = if dn.is_empty() { "the rootDSE".to_string() } else { dn.to_string() };
                let (rs, _) = ldap
                    .search(dn, ldap3::Scope::Base, filter, vec![attr])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| format!("reading {what}: {e}"))?;
                Ok(rs.into_iter().next().map(ldap3::SearchEntry::construct))
            }
            let dsa = entry(ldap.with_timeout(conf.timeout), "", "(objectClass=*)", "dsServiceName")
                .await
                .map_err(bad)?
                .and_then(|e| e.attrs.get("dsServiceName").and_then(|v| v.first().cloned()))
                .ok_or_else(|| bad("the rootDSE has no dsServiceName: is this an Active Directory DC?".into()))?;
            let id = entry(ldap.with_timeout(conf.timeout), &dsa, "(objectClass=nTDSDSA)", "invocationId")
                .await
                .map_err(bad)?
                .and_then(|e| e.bin_attrs.get("invocationId").and_then(|v| v.first().cloned()))
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| bad(format!("{dsa} has no 16-byte invocationId")))?;
            let _ = ldap.unbind().await;
            Ok(id)
        })
    }

    /// The MS-DRSR settings, checked, with the secret read.
    pub(super) fn replication(&self) -> Result<Replication> {
        let name = &self.conf.name;
        let bad = |m: String| Error::connector(name, format!("[connector.replication] {m}"));
        if !self.is_ad() {
            return Err(Error::connector(name, "password hashes are replicated over MS-DRSR from Active Directory only (flavor = \"ad\")"));
        }
        let s = self.replication.clone().unwrap_or_default();
        let account = match (&s.account, &self.conf.bind_dn) {
            (Some(a), _) => a.clone(),
            (None, Some(b)) if b.contains('@') || b.contains('\\') => b.clone(),
            _ => {
                return Err(bad(
                    "account is needed: MS-DRSR authenticates as DOMAIN\\user or user@domain, and bind_dn is not in either form".into(),
                ))
            }
        };
        let password = match idflow_core::secret::read(&self.base_dir, "password", s.password_env.as_deref(), s.password_file.as_deref())
            .map_err(bad)?
        {
            Some(pw) => pw,
            None if s.account.is_none() => {
                self.conf.password.clone().ok_or_else(|| bad("no password: give password_env or password_file".into()))?
            }
            None => return Err(bad(format!("account {account:?} has no password: give password_env or password_file"))),
        };
        let root = self.conf.roots.first().cloned().unwrap_or_default();
        let naming_context = domain_dn(&root);
        if naming_context.is_empty() {
            return Err(bad(format!("base_dn {root:?} has no DC= components to name the domain by")));
        }
        let domain =
            s.domain.clone().unwrap_or_else(|| naming_context.split(',').map(|p| p.trim()[3..].to_string()).collect::<Vec<_>>().join("."));
        let netbios = domain.split('.').next().unwrap_or_default().to_uppercase();
        let host = s.dc.clone().unwrap_or_else(|| host_of(&self.conf.url));
        let timeout = Duration::from_secs(s.timeout_seconds.unwrap_or(self.conf.timeout.as_secs()).max(1));
        let kerberos = match s.auth {
            Auth::Ntlm => None,
            Auth::Kerberos => {
                let realm = domain.to_uppercase();
                let user = match account.split_once('\\') {
                    Some((_, u)) => u.to_string(),
                    None => account.split('@').next().unwrap_or(&account).to_string(),
                };
                let spn = match &s.spn {
                    Some(spn) => spn.clone(),
                    None if host.parse::<std::net::IpAddr>().is_ok() => {
                        return Err(bad(format!(
                            "auth = \"kerberos\" needs the DC's name: dc is the address {host}; set spn = \"host/<dc's DNS name>\""
                        )))
                    }
                    None => format!("host/{host}"),
                };
                let kdc = s.kdc.clone().unwrap_or_else(|| format!("{host}:88"));
                let kdc = if kdc.contains(':') && !kdc.starts_with('[') { kdc } else { format!("{kdc}:88") };
                Some(idflow_msrpc::KerberosParams { principal: format!("{user}@{realm}"), password: password.clone(), kdc, spn, timeout })
            }
        };
        Ok(Replication {
            options: drsr::Options {
                host,
                rpc_port: s.rpc_port,
                epm_port: s.epm_port.unwrap_or(135),
                credentials: Credentials::parse(&account, &netbios, password),
                domain,
                timeout,
                kerberos,
            },
            naming_context,
            ldap_host: host_of(&self.conf.url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls_and_dns() {
        assert_eq!(host_of("ldaps://127.0.0.1:636"), "127.0.0.1");
        assert_eq!(host_of("ldap://dc1.example.test"), "dc1.example.test");
        assert_eq!(host_of("ldap://[::1]:389/"), "::1");
        assert_eq!(domain_dn("OU=Staff,DC=example,DC=test"), "DC=example,DC=test");
        assert_eq!(domain_dn("ou=x"), "");
    }
}
