//! Where NT hashes come from. A trait, so that AD over MS-DRSR (as Entra Connect reads them)
//! plugs in beside OpenLDAP's `sambaNTPassword`.
use super::pph1::{parse_nt_hex, NtHash};
use crate::config::ConnectorConfig;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// One source object's hash, or why it could not be read (the message never holds the value).
pub type HashResult = std::result::Result<NtHash, String>;

pub trait HashSource {
    /// NT hashes by anchor, for every object of the source that has one.
    fn read_all(&mut self) -> Result<HashMap<String, HashResult>>;
}

/// OpenLDAP with the samba schema: `sambaNTPassword`, 32 hex characters, read through the ldap connector.
pub struct LdapAttributeSource {
    connector: crate::connector::ldap::LdapConnector,
    attribute: String,
}

impl LdapAttributeSource {
    pub fn new(cfg: &ConnectorConfig, attribute: &str) -> Result<Self> {
        if cfg.kind != "ldap" {
            return Err(Error::Config(format!(
                "[password_hash_sync] source {:?} is a {:?} connector; hashes are read from an ldap connector",
                cfg.name, cfg.kind
            )));
        }
        Ok(LdapAttributeSource { connector: crate::connector::ldap::LdapConnector::new(cfg)?, attribute: attribute.to_string() })
    }
}

impl HashSource for LdapAttributeSource {
    fn read_all(&mut self) -> Result<HashMap<String, HashResult>> {
        let mut out = HashMap::new();
        for v in self.connector.read_secret(&self.attribute)? {
            if let Some(a) = v.anchor {
                out.insert(a, parse_nt_hex(&v.value).map_err(|m| format!("malformed {}: {m}", self.attribute)));
            }
        }
        Ok(out)
    }
}

/// Hashes held in memory: benchmarks and tests of the stage itself.
pub struct MemorySource(pub HashMap<String, HashResult>);

impl HashSource for MemorySource {
    fn read_all(&mut self) -> Result<HashMap<String, HashResult>> {
        Ok(std::mem::take(&mut self.0))
    }
}
