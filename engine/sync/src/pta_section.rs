//! `[pta]`: pass-through authentication, passwords checked by an on-premises directory.
use crate::Config;
use idflow_core::password_check::PasswordCheck;
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtaSection {
    /// The directory connector that checks passwords (an `ldap` connector: AD or OpenLDAP).
    pub connector: String,
    /// More servers of the same directory, tried in turn when the connector's does not answer.
    #[serde(default)]
    pub failover_urls: Vec<String>,
}

/// The password check `[pta]` configures.
pub fn password_check(config: &Config, registry: &Registry) -> Result<Box<dyn PasswordCheck>> {
    let pta = config.pta.as_ref().ok_or_else(|| {
        Error::Config(format!("{}: no [pta] section (connector = \"NAME\" of the directory that checks passwords)", config.file.display()))
    })?;
    let cfg = config.connector(&pta.connector).ok_or_else(|| {
        Error::Config(format!("{}: [pta] connector {:?} is not a configured connector", config.file.display(), pta.connector))
    })?;
    registry.parse(cfg)?.password_check(&pta.failover_urls).unwrap_or_else(|| {
        Err(Error::Config(format!(
            "{}: [pta] connector {:?} is of type {:?}, which cannot check passwords (use an ldap connector)",
            config.file.display(),
            pta.connector,
            cfg.kind
        )))
    })
}
