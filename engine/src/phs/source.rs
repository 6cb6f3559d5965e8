//! Where NT hashes come from. A trait, so that AD over MS-DRSR (as Entra Connect reads them)
//! plugs in beside OpenLDAP's `sambaNTPassword`.
use super::pph1::{parse_nt_hex, NtHash};
use crate::config::ConnectorConfig;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// One source object's hash, or why it could not be read (the message never holds the value).
pub type HashResult = std::result::Result<NtHash, String>;

/// What the stage asks of a source.
pub struct PullRequest<'a> {
    /// Where the last complete pull ended (a source's own format), if the source keeps one.
    pub watermark: Option<&'a str>,
    /// Ignore the watermark and read everything.
    pub full: bool,
    /// Anchors whose hash was never delivered (new in scope, new target): an incremental
    /// source must read these too, changed or not.
    pub wanted: &'a [String],
}

/// What a source read.
pub struct Pull {
    pub hashes: HashMap<String, HashResult>,
    /// True when `hashes` holds every object: an anchor missing from it has no hash. False for
    /// an incremental read, where a missing anchor is unchanged.
    pub complete: bool,
    /// The watermark to keep once every hash read has been delivered.
    pub watermark: Option<String>,
    /// For an incremental read: anchors asked for (`wanted`) that were read and have no hash.
    pub absent: Vec<String>,
}

pub trait HashSource {
    fn read(&mut self, request: &PullRequest) -> Result<Pull>;
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
    fn read(&mut self, _: &PullRequest) -> Result<Pull> {
        let mut out = HashMap::new();
        for v in self.connector.read_secret(&self.attribute)? {
            if let Some(a) = v.anchor {
                out.insert(a, parse_nt_hex(&v.value).map_err(|m| format!("malformed {}: {m}", self.attribute)));
            }
        }
        Ok(Pull { hashes: out, complete: true, watermark: None, absent: Vec::new() })
    }
}

/// Hashes held in memory: benchmarks and tests of the stage itself.
pub struct MemorySource(pub HashMap<String, HashResult>);

impl HashSource for MemorySource {
    fn read(&mut self, _: &PullRequest) -> Result<Pull> {
        Ok(Pull { hashes: std::mem::take(&mut self.0), complete: true, watermark: None, absent: Vec::new() })
    }
}
