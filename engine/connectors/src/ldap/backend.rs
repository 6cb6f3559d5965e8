//! The `ldap` connector: OpenLDAP and Active Directory (Samba AD) over ldap3 on tokio.
//!
//! Full import by paged search; delta import through RFC 4533 syncrepl (OpenLDAP); export of
//! adds, modifies, deletes and renames. `ldap://` URLs use StartTLS unless `starttls = false`;
//! `ldaps://` speaks TLS from the start; certificates and host names are verified.
use super::object_types::ObjectTypes;
use super::{Capabilities, Connector, ExportOp, ImportSink, OpResult, RefForm};
use crate::config::ConnectorConfig;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

mod dirsync;
mod export;
mod import;
pub mod replication;
mod session;
pub mod tls;

pub const CAPABILITIES: Capabilities =
    Capabilities { delta_import: true, export: true, local_anchor: false, reference_form: RefForm::Dn, max_batch: 200 };

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Openldap,
    Ad,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_flavor")]
    flavor: Flavor,
    url: String,
    #[serde(default)]
    bind_dn: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
    /// Inline, only when the config file is readable by its owner alone.
    #[serde(default)]
    password: Option<String>,
    base_dn: OneOrMany,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default)]
    tls_insecure: bool,
    /// StartTLS on ldap:// URLs (default true).
    #[serde(default)]
    starttls: Option<bool>,
    #[serde(default)]
    anchor: Option<String>,
    #[serde(default)]
    object_types: toml::Table,
    #[serde(default)]
    binary_attributes: Vec<String>,
    /// Entra Connect's OU filtering: import only below these OUs (instead of the whole base).
    #[serde(default)]
    include_ous: Vec<String>,
    /// ... and never below these.
    #[serde(default)]
    exclude_ous: Vec<String>,
    /// Attributes to read besides those the rules use.
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default = "default_page_size")]
    page_size: i32,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    /// Active Directory only: how password hash sync replicates hashes over MS-DRSR.
    #[serde(default)]
    replication: Option<replication::Settings>,
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

/// Everything needed to open a session, with the secret kept out of Debug output.
pub struct Conf {
    pub name: String,
    pub flavor: Flavor,
    pub url: String,
    pub bind_dn: Option<String>,
    password: Option<String>,
    /// Where searches start: `include_ous` where given, else `base_dn`.
    pub bases: Vec<String>,
    /// The naming-context roots (`base_dn`): AD's DirSync only searches from there.
    pub roots: Vec<String>,
    /// Normalized OU filters, checked on every object.
    pub include_ous: Vec<String>,
    pub exclude_ous: Vec<String>,
    pub starttls: bool,
    pub tls: std::sync::Arc<rustls::ClientConfig>,
    pub anchor: String,
    pub types: ObjectTypes,
    pub filter: String,
    pub binary: Vec<String>,
    pub extra_attributes: Vec<String>,
    pub page_size: i32,
    pub timeout: Duration,
}

impl Conf {
    /// Entra Connect's OU filtering: below an included OU (when any are given), not below an excluded one.
    pub fn in_scope(&self, dn: &str) -> bool {
        let n = crate::store::dn_norm(dn);
        let under = |ou: &String| n == *ou || n.ends_with(&format!(",{ou}"));
        (self.include_ous.is_empty() || self.include_ous.iter().any(under)) && !self.exclude_ous.iter().any(under)
    }
}

impl std::fmt::Debug for Conf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conf").field("name", &self.name).field("url", &self.url).field("bind_dn", &self.bind_dn).finish_non_exhaustive()
    }
}

pub struct LdapConnector {
    conf: Conf,
    /// For password hash sync from AD: the settings, and where their password_file is relative to.
    replication: Option<replication::Settings>,
    base_dir: PathBuf,
    rt: tokio::runtime::Runtime,
    /// Attributes to read (the rules' own plus what the connector needs); empty reads all.
    wanted: Vec<String>,
}

fn read_password(cfg: &ConnectorConfig, s: &Settings) -> Result<Option<String>> {
    let bad = |m: String| Error::connector(&cfg.name, m);
    if let Some(pw) = cfg.secret("password", s.password_env.as_deref(), s.password_file.as_deref())? {
        return Ok(Some(pw.to_string()));
    }
    if let Some(pw) = &s.password {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let cfg_file: PathBuf = cfg.config_file.clone();
            let mode = std::fs::metadata(&cfg_file).map(|m| m.permissions().mode()).unwrap_or(0o644);
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "an inline password needs {} readable by its owner alone (chmod 600); or use password_env / password_file",
                    cfg_file.display()
                )));
            }
        }
        return Ok(Some(pw.clone()));
    }
    Ok(None)
}

impl LdapConnector {
    pub fn new(cfg: &ConnectorConfig) -> Result<Self> {
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
        let starttls = lower.starts_with("ldap://") && s.starttls.unwrap_or(true);
        if lower.starts_with("ldap://") && !starttls {
            tracing::warn!(connector = %cfg.name, "starttls = false: the bind password crosses the network in clear");
        }
        let password = read_password(cfg, &s)?;
        if s.bind_dn.is_some() && password.is_none() {
            return Err(bad("bind_dn is set but no password: give password_env or password_file".into()));
        }
        let tls = tls::client_config(&cfg.name, s.ca_file.as_deref().map(|f| cfg.resolve(f)).as_deref(), s.tls_server_name.as_deref(), s.tls_insecure)?;
        let anchor = s.anchor.clone().unwrap_or_else(|| match s.flavor {
            Flavor::Openldap => "entryUUID".into(),
            Flavor::Ad => "objectGUID".into(),
        });
        let mut binary = s.binary_attributes.clone();
        if s.flavor == Flavor::Ad {
            binary.extend(["objectGUID", "objectSid", "ms-DS-ConsistencyGuid", "mS-DS-ConsistencyGuid"].map(String::from));
        }
        let filters: Vec<String> = s.object_types.values().filter_map(|v| v.as_str()).map(|f| {
            let f = f.trim();
            if f.starts_with('(') { f.to_string() } else { format!("({f})") }
        }).collect();
        let filter = if filters.len() == 1 { filters[0].clone() } else { format!("(|{})", filters.join("")) };
        let bases = if s.include_ous.is_empty() { s.base_dn.to_vec() } else { s.include_ous.clone() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(format!("runtime: {e}")))?;
        Ok(LdapConnector {
            conf: Conf {
                name: cfg.name.clone(),
                flavor: s.flavor,
                url: s.url.clone(),
                bind_dn: s.bind_dn.clone(),
                password,
                bases,
                roots: s.base_dn.to_vec(),
                include_ous: s.include_ous.iter().map(|o| crate::store::dn_norm(o)).collect(),
                exclude_ous: s.exclude_ous.iter().map(|o| crate::store::dn_norm(o)).collect(),
                starttls,
                tls,
                anchor,
                types,
                filter,
                binary,
                extra_attributes: s.attributes.clone(),
                page_size: s.page_size.max(1),
                timeout: Duration::from_secs(s.timeout_seconds.max(1)),
            },
            rt,
            wanted: Vec::new(),
            replication: s.replication.clone(),
            base_dir: cfg.base_dir.clone(),
        })
    }
}

impl Connector for LdapConnector {
    fn name(&self) -> &str {
        &self.conf.name
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn want_attributes(&mut self, attrs: Vec<String>) {
        self.wanted = attrs;
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        let attrs = import::attribute_list(&self.conf, &self.wanted);
        self.rt.block_on(import::full(&self.conf, &attrs, sink))
    }

    fn delta_import(&mut self, watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        let attrs = import::attribute_list(&self.conf, &self.wanted);
        self.rt.block_on(import::delta(&self.conf, &attrs, watermark, sink))
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.rt.block_on(export::export(&self.conf, ops))
    }
}

/// One secret value read for password hash sync: never logged, wiped when dropped.
pub struct SecretValue {
    pub dn: String,
    pub anchor: Option<String>,
    pub value: zeroize::Zeroizing<Vec<u8>>,
}

impl LdapConnector {
    /// Reads one attribute (an NT hash) of every object of a configured type that has it, with
    /// its DN and anchor. Only the password hash sync stage calls this.
    pub fn read_secret(&mut self, attr: &str) -> Result<Vec<SecretValue>> {
        let conf = &self.conf;
        self.rt.block_on(async {
            use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
            let bad = |m: String| Error::connector(&conf.name, m);
            let mut ldap = session::open(conf).await?;
            let filter = format!("(&{}({attr}=*))", conf.filter);
            let mut out = Vec::new();
            for base in &conf.bases {
                let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(conf.page_size))];
                let mut stream = ldap
                    .streaming_search_with(adapters, base.as_str(), ldap3::Scope::Subtree, &filter, vec![attr, conf.anchor.as_str()])
                    .await
                    .map_err(|e| bad(format!("reading {attr} below {base}: {e}")))?;
                while let Some(e) = stream.next().await.map_err(|e| bad(format!("reading {attr} below {base}: {e}")))? {
                    let mut se = ldap3::SearchEntry::construct(e);
                    if !conf.in_scope(&se.dn) {
                        continue;
                    }
                    let raw = se
                        .bin_attrs
                        .iter_mut()
                        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                        .and_then(|(_, v)| v.pop())
                        .or_else(|| se.attrs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.pop()).map(String::into_bytes));
                    let anchor = se
                        .attrs
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor))
                        .and_then(|(_, v)| v.first().cloned())
                        .or_else(|| {
                            se.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor)).and_then(|(_, v)| v.first()).map(|b| {
                                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
                            })
                        });
                    // Wipe what ldap3 still holds of the secret.
                    for v in se.attrs.values_mut().flatten() {
                        zeroize::Zeroize::zeroize(v);
                    }
                    if let Some(value) = raw {
                        out.push(SecretValue { dn: se.dn.clone(), anchor, value: zeroize::Zeroizing::new(value) });
                    }
                }
                let res = stream.finish().await;
                session::check(conf, &format!("reading {attr} below {base}"), &res)?;
            }
            let _ = ldap.unbind().await;
            Ok(out)
        })
    }
}
