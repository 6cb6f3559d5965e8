//! The `[[connector]]` settings of an `ldap` connector, checked without touching the network,
//! the environment or a file.
use crate::object_types::ObjectTypes;
use idflow_core::{ConnectorConfig, Error, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Flavor {
    Openldap,
    Ad,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    #[serde(default = "default_flavor")]
    pub(crate) flavor: Flavor,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) bind_dn: Option<String>,
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<String>,
    /// Inline, only when the config file is readable by its owner alone.
    #[serde(default)]
    pub(crate) password: Option<zeroize::Zeroizing<String>>,
    pub(crate) base_dn: OneOrMany,
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
    #[serde(default)]
    pub(crate) tls_server_name: Option<String>,
    #[serde(default)]
    pub(crate) tls_insecure: bool,
    /// StartTLS on ldap:// URLs (default true).
    #[serde(default)]
    pub(crate) starttls: Option<bool>,
    #[serde(default)]
    pub(crate) anchor: Option<String>,
    #[serde(default)]
    pub(crate) object_types: toml::Table,
    #[serde(default)]
    pub(crate) binary_attributes: Vec<String>,
    /// Entra Connect's OU filtering: import only below these OUs (instead of the whole base).
    #[serde(default)]
    pub(crate) include_ous: Vec<String>,
    /// ... and never below these.
    #[serde(default)]
    pub(crate) exclude_ous: Vec<String>,
    /// Attributes to read besides those the rules use.
    #[serde(default)]
    pub(crate) attributes: Vec<String>,
    #[serde(default = "default_page_size")]
    pub(crate) page_size: i32,
    #[serde(default = "default_timeout")]
    pub(crate) timeout_seconds: u64,
    /// Active Directory only: how password hash sync replicates hashes over MS-DRSR.
    #[serde(default)]
    pub(crate) replication: Option<ReplicationSettings>,
}

fn default_flavor() -> Flavor {
    Flavor::Openldap
}
fn default_page_size() -> i32 {
    1000
}
fn default_timeout() -> u64 {
    30
}

/// Settings that deserialize and hold together: object types that parse, an LDAP URL, a
/// password source for a bind DN.
pub(crate) fn check(cfg: &ConnectorConfig) -> Result<(Settings, ObjectTypes)> {
    let s: Settings = cfg.settings()?;
    let bad = |m: String| Error::connector(&cfg.name, m);
    let types = ObjectTypes::parse(&cfg.name, &s.object_types)?;
    if types.is_empty() {
        return Err(bad("[connector.object_types] names no object type".into()));
    }
    let lower = s.url.to_ascii_lowercase();
    if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
        return Err(bad(format!("url {:?}: use ldap:// or ldaps://", s.url)));
    }
    if s.bind_dn.is_some() && s.password_env.is_none() && s.password_file.is_none() && s.password.is_none() {
        return Err(bad("bind_dn is set but no password: give password_env or password_file".into()));
    }
    Ok((s, types))
}

/// How password hash sync authenticates to the DC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Auth {
    #[default]
    Ntlm,
    Kerberos,
}

/// `[connector.replication]` of an Active Directory connector: how password hash sync reaches
/// the DC over MS-DRSR (which host and port, as which account, with which authentication).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplicationSettings {
    /// The DC to replicate from (default: the host of `url`).
    #[serde(default)]
    pub dc: Option<String>,
    /// DRSUAPI's TCP port; by default the endpoint mapper is asked.
    #[serde(default)]
    pub rpc_port: Option<u16>,
    /// The endpoint mapper's port (default 135).
    #[serde(default)]
    pub epm_port: Option<u16>,
    /// `ntlm` (NTLMv2, sealed; the default) or `kerberos` (DCE-style Kerberos, sealed).
    #[serde(default)]
    pub auth: Auth,
    /// Kerberos: the KDC as `host[:port]` (default: the DC, port 88).
    #[serde(default)]
    pub kdc: Option<String>,
    /// Kerberos: the DC's service principal (default `host/<dc>`; needed when `dc` is an address).
    #[serde(default)]
    pub spn: Option<String>,
    /// `DOMAIN\\user` or `user@dns.domain`; default: `bind_dn` when it has one of those forms.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// The domain's DNS name (default: the `DC=` parts of `base_dn`).
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}
