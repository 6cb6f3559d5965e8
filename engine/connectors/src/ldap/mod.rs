//! The `ldap` connector: OpenLDAP and Active Directory (Samba AD) over ldap3 on tokio, and
//! over idflow's own reading of LDAP for the full import's paged search (`wire`).
//!
//! Full import by paged search; delta import through RFC 4533 syncrepl (OpenLDAP) or DirSync
//! (AD); export of adds, modifies, deletes and renames. `ldap://` URLs use StartTLS unless
//! `starttls = false`; `ldaps://` speaks TLS from the start; certificates and host names are
//! verified. The directory is also a password hash source: AD's hashes over MS-DRSR
//! (`[connector.replication]`), OpenLDAP's from an attribute (`sambaNTPassword`).
use idflow_core::change_feed::ChangeFeed;
use idflow_core::connector::{Capabilities, Connector, RefForm};
use idflow_core::hash::HashSource;
use idflow_core::registry::{ConnectorSpec, ConnectorType};
use idflow_core::{ConnectorConfig, Result};

mod backend;
mod conf;
mod config;
mod dirsync;
mod drsr_source;
mod entry;
mod export;
mod hash_attribute;
mod import;
mod moves;
mod password_check;
mod ppolicy;
mod replication;
mod session;
mod watch;
mod wire;

const CAPABILITIES: Capabilities = Capabilities {
    delta_import: true,
    delta_reads_again: true,
    export: true,
    local_anchor: false,
    reference_form: RefForm::Dn,
    max_batch: 200,
    owner_attribute: None,
    reference_attributes: &[],
    unique_attributes: &[],
};

/// The registry entry.
pub(crate) struct Ldap;

struct Spec {
    cfg: ConnectorConfig,
    settings: config::Settings,
    types: crate::object_types::ObjectTypes,
}

impl ConnectorType for Ldap {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>> {
        let (settings, types) = config::check(cfg)?;
        Ok(Box::new(Spec { cfg: cfg.clone(), settings, types }))
    }
}

impl Spec {
    fn connector(&self) -> Result<backend::LdapConnector> {
        backend::LdapConnector::open(&self.cfg, &self.settings, &self.types)
    }
}

impl ConnectorSpec for Spec {
    fn open(&self) -> Result<Box<dyn Connector>> {
        Ok(Box::new(self.connector()?))
    }

    /// Active Directory: MS-DRSR replication, as Entra Connect reads hashes; otherwise the
    /// hash attribute.
    fn hash_source(&self, attribute: &str) -> Option<Result<Box<dyn HashSource>>> {
        let open = || -> Result<Box<dyn HashSource>> {
            let connector = self.connector()?;
            if connector.is_ad() {
                return Ok(Box::new(drsr_source::DrsrSource::new(connector)?));
            }
            Ok(Box::new(hash_attribute::AttributeSource { connector, attribute: attribute.to_string() }))
        };
        Some(open())
    }

    fn object_types(&self) -> Option<Vec<String>> {
        Some(self.types.names())
    }

    fn password_check(&self, failover: &[String]) -> Option<Result<Box<dyn idflow_core::password_check::PasswordCheck>>> {
        Some(
            self.connector()
                .and_then(|c| password_check::BindCheck::new(c, failover))
                .map(|c| Box::new(c) as Box<dyn idflow_core::password_check::PasswordCheck>),
        )
    }

    fn change_feed(&self, poll: std::time::Duration) -> Option<Result<Box<dyn ChangeFeed>>> {
        Some(self.connector().map(|connector| Box::new(watch::Feed { connector, poll }) as Box<dyn ChangeFeed>))
    }
}
