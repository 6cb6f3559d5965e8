//! An open LDAP connector: its session settings, a runtime, and the attributes the rules read.
use super::conf::Conf;
use super::config::{Flavor, ReplicationSettings, Settings};
use super::{export, import, session, CAPABILITIES};
use crate::object_types::ObjectTypes;
use crate::tls;
use idflow_core::connector::{Capabilities, Connector, ExportOp, ImportSink, ObjectKey, OpResult};
use idflow_core::{dn, ConnectorConfig, Error, Result};
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

pub(super) struct LdapConnector {
    pub(super) conf: Conf,
    /// For password hash sync from AD: the settings, and where their password_file is relative to.
    pub(super) replication: Option<ReplicationSettings>,
    pub(super) base_dir: PathBuf,
    pub(super) rt: tokio::runtime::Runtime,
    /// Attributes to read (the rules' own plus what the connector needs); empty reads all.
    wanted: Vec<String>,
    /// The server the last full import read (what it did not read is looked up there).
    read_from: Option<std::net::SocketAddr>,
}

fn read_password(cfg: &ConnectorConfig, s: &Settings) -> Result<Option<Zeroizing<String>>> {
    let bad = |m: String| Error::connector(&cfg.name, m);
    if let Some(pw) = cfg.secret("password", s.password_env.as_deref(), s.password_file.as_deref())? {
        return Ok(Some(pw));
    }
    if let Some(pw) = &s.password {
        // Not looked at, it is taken as open.
        if idflow_core::owner_only::open_to_others(&cfg.config_file).unwrap_or(Some(0o644)).is_some() {
            return Err(bad(format!(
                "an inline password needs {} readable by its owner alone (chmod 600); or use password_env / password_file",
                cfg.config_file.display()
            )));
        }
        return Ok(Some(pw.clone()));
    }
    Ok(None)
}

impl LdapConnector {
    /// Opens the connector from checked settings: reads the bind password, builds TLS (the
    /// directory is contacted at the first import or export).
    pub(super) fn open(cfg: &ConnectorConfig, s: &Settings, types: &ObjectTypes) -> Result<Self> {
        let bad = |m: String| Error::connector(&cfg.name, m);
        let lower = s.url.to_ascii_lowercase();
        let starttls = lower.starts_with("ldap://") && s.starttls.unwrap_or(true);
        if lower.starts_with("ldap://") && !starttls {
            tracing::warn!(connector = %cfg.name, "starttls = false: the bind password crosses the network in clear");
        }
        let password = read_password(cfg, s)?;
        let tls = tls::client_config(
            &cfg.name,
            s.ca_file.as_deref().map(|f| cfg.resolve(f)).as_deref(),
            s.tls_server_name.as_deref(),
            s.tls_insecure,
        )?;
        let anchor = s.anchor.clone().unwrap_or_else(|| match s.flavor {
            Flavor::Openldap => "entryUUID".into(),
            Flavor::Ad => "objectGUID".into(),
        });
        let mut binary = s.binary_attributes.clone();
        if s.flavor == Flavor::Ad {
            binary.extend(["objectGUID", "objectSid", "ms-DS-ConsistencyGuid", "mS-DS-ConsistencyGuid"].map(String::from));
        }
        let filters: Vec<String> = s
            .object_types
            .values()
            .filter_map(|v| v.as_str())
            .map(|f| {
                let f = f.trim();
                if f.starts_with('(') {
                    f.to_string()
                } else {
                    format!("({f})")
                }
            })
            .collect();
        let filter = if filters.len() == 1 { filters[0].clone() } else { format!("(|{})", filters.join("")) };
        let bases = if s.include_ous.is_empty() { s.base_dn.to_vec() } else { s.include_ous.clone() };
        // One worker thread besides the caller's: the connection (reading the socket, decoding
        // the answers) runs there. A full import reads on a thread of its own while the caller
        // stores (`relay`), so the network and the database are busy at the same time.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("idflow-ldap")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("runtime: {e}")))?;
        Ok(LdapConnector {
            conf: Conf {
                name: cfg.name.clone(),
                flavor: s.flavor,
                url: s.url.clone(),
                bind_dn: s.bind_dn.clone(),
                password,
                bases,
                roots: s.base_dn.to_vec(),
                include_ous: s.include_ous.iter().map(|o| dn::norm(o)).collect(),
                exclude_ous: s.exclude_ous.iter().map(|o| dn::norm(o)).collect(),
                starttls,
                tls,
                tls_insecure: s.tls_insecure,
                anchor,
                types: types.clone(),
                filter,
                binary,
                extra_attributes: s.attributes.clone(),
                page_size: s.page_size.max(1),
                timeout: Duration::from_secs(s.timeout_seconds.max(1)),
            },
            rt,
            wanted: Vec::new(),
            read_from: None,
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
        Capabilities { delta_import: self.conf.deltas_by_anchor(), ..CAPABILITIES }
    }

    fn want_attributes(&mut self, attrs: Vec<String>) {
        self.wanted = attrs;
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        if !self.conf.deltas_by_anchor() {
            tracing::warn!(
                connector = %self.conf.name,
                "anchor {:?}: a delta names objects by {}, so every import of this connector reads it whole",
                self.conf.anchor,
                self.conf.delta_key()
            );
        }
        let attrs = import::attribute_list(&self.conf, &self.wanted);
        let conf = &self.conf;
        // The reading thread runs the connection itself (a runtime of its own, on that thread):
        // an entry decoded is handed to the search on the same thread, not woken across threads
        // one entry at a time.
        let mut read_from = None;
        let read = crate::relay::overlapped(&conf.name, sink, |reader| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::connector(&conf.name, format!("runtime: {e}")))?;
            let read = rt.block_on(import::full(conf, &attrs, reader, &mut read_from));
            // Not waiting for what may still run on its blocking pool (a slow name lookup).
            rt.shutdown_background();
            read
        });
        self.read_from = read_from;
        read
    }

    /// Bases read in turn: an object moved between them while they were read is in neither.
    /// AD's paged search is no snapshot either. Asked only where
    /// [`LdapConnector::looks_up_unseen`] says so.
    fn read_again(&mut self, keys: &[ObjectKey], sink: &mut dyn ImportSink) -> Result<()> {
        let anchors: Vec<String> = keys.iter().filter_map(|k| k.anchor.clone()).collect();
        let attrs = import::attribute_list(&self.conf, &self.wanted);
        self.rt.block_on(import::read_again(&self.conf, &attrs, &anchors, self.read_from, sink))
    }

    /// Several bases, read in turn; or AD anchored by objectGUID, whose paged search is not a
    /// snapshot: Windows servers have never said what a change made while they page does to
    /// the pages still to come (Samba since 4.10 lists the objects' GUIDs at the first page and
    /// reads each as its page comes), so an object moved while it is read may be missed.
    /// OpenLDAP's back-mdb pages by entry id, which a move keeps. Only the objects not read are
    /// looked up, 100 to a search by their anchor: objectGUID is always indexed, another anchor
    /// (an employee number) may not be, and a search by it of a large domain could outlast
    /// `timeout_seconds` at every run.
    fn looks_up_unseen(&self) -> bool {
        self.conf.bases.len() > 1 || (self.conf.flavor == Flavor::Ad && self.conf.anchor.eq_ignore_ascii_case("objectGUID"))
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
pub(super) struct SecretValue {
    pub anchor: Option<String>,
    pub value: zeroize::Zeroizing<Vec<u8>>,
}

impl LdapConnector {
    /// Reads one attribute (an NT hash) of every object of a configured type that has it, with
    /// its DN and anchor. Only the password hash sync stage calls this.
    pub(super) fn read_secret(&mut self, attr: &str) -> Result<Vec<SecretValue>> {
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
                    .with_timeout(conf.timeout)
                    .streaming_search_with(adapters, base.as_str(), ldap3::Scope::Subtree, &filter, vec![attr, conf.anchor.as_str()])
                    .await
                    .map_err(|e| bad(format!("reading {attr} below {base}: {e}")))?;
                while let Some(e) = stream.next().await.map_err(|e| bad(format!("reading {attr} below {base}: {e}")))? {
                    let mut se = ldap3::SearchEntry::construct(e);
                    if !conf.in_scope(&se.dn) {
                        continue;
                    }
                    let raw =
                        se.bin_attrs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(attr)).and_then(|(_, v)| v.pop()).or_else(|| {
                            se.attrs
                                .iter_mut()
                                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                                .and_then(|(_, v)| v.pop())
                                .map(String::into_bytes)
                        });
                    let anchor =
                        se.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor)).and_then(|(_, v)| v.first().cloned()).or_else(
                            || {
                                se.bin_attrs
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor))
                                    .and_then(|(_, v)| v.first())
                                    .map(|b| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b))
                            },
                        );
                    // Wipe what ldap3 still holds of the secret.
                    for v in se.attrs.values_mut().flatten() {
                        zeroize::Zeroize::zeroize(v);
                    }
                    if let Some(value) = raw {
                        out.push(SecretValue { anchor, value: zeroize::Zeroizing::new(value) });
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
