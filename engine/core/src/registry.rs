//! The connector registry: one [`ConnectorType`] per kind of directory. A type parses its
//! `[[connector]]` section purely (no I/O: `validate --offline` runs it) into a
//! [`ConnectorSpec`], which opens the connector, and the password hash source where the kind
//! holds hashes. Nothing outside a registry matches on connector kinds.
use crate::connector::{Capabilities, Connector};
use crate::connector_config::ConnectorConfig;
use crate::error::{Error, Result};
use crate::hash::HashSource;

/// A kind of connector (`ldif`, `ldap`, ...).
pub trait ConnectorType: Send + Sync {
    /// The `type = "..."` this entry serves.
    fn kind(&self) -> &'static str;
    /// What every connector of this kind can do, known without opening one.
    fn capabilities(&self) -> Capabilities;
    /// Checks a section's settings (unknown keys, types, values) and keeps them: no file,
    /// network or environment is touched.
    fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>>;
}

/// One connector's checked settings.
pub trait ConnectorSpec: Send + Sync {
    /// Opens the connector: reads its secrets, builds TLS, connects lazily.
    fn open(&self) -> Result<Box<dyn Connector>>;
    /// The password hash source this connector's directory is, reading hashes from
    /// `attribute` where the kind stores them in an attribute; `None` for kinds that hold no
    /// password hashes.
    fn hash_source(&self, _attribute: &str) -> Option<Result<Box<dyn HashSource>>> {
        None
    }
    /// The object types its objects have (what rules name as `source_type` or
    /// `target_type`); `None` when any name goes.
    fn object_types(&self) -> Option<Vec<String>> {
        None
    }
    /// How the service learns of changes without waiting for its timer; `None` when the kind
    /// cannot tell (the timer it is). `poll` is how often a feed that polls asks.
    fn change_feed(&self, _poll: std::time::Duration) -> Option<Result<Box<dyn crate::change_feed::ChangeFeed>>> {
        None
    }
    /// Checks passwords by the directory itself (pass-through authentication), trying the
    /// connector's server and then `failover` in turn; `None` for kinds that cannot.
    fn password_check(&self, _failover: &[String]) -> Option<Result<Box<dyn crate::password_check::PasswordCheck>>> {
        None
    }
}

/// Every connector kind idflow knows, in the order they were registered.
#[derive(Default)]
pub struct Registry {
    types: Vec<Box<dyn ConnectorType>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a kind; a kind registered twice is a programming error, refused.
    pub fn register(&mut self, t: Box<dyn ConnectorType>) -> Result<()> {
        if self.types.iter().any(|x| x.kind() == t.kind()) {
            return Err(Error::Config(format!("connector type {:?} is registered twice", t.kind())));
        }
        self.types.push(t);
        Ok(())
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.types.iter().map(|t| t.kind()).collect()
    }

    /// The entry for `cfg`'s kind, or an error naming the connector and the known kinds.
    pub fn get(&self, cfg: &ConnectorConfig) -> Result<&dyn ConnectorType> {
        self.types.iter().find(|t| t.kind() == cfg.kind).map(|t| t.as_ref()).ok_or_else(|| {
            Error::Config(format!("connector {:?}: unknown type {:?} (known: {})", cfg.name, cfg.kind, self.kinds().join(", ")))
        })
    }

    pub fn capabilities(&self, cfg: &ConnectorConfig) -> Result<Capabilities> {
        Ok(self.get(cfg)?.capabilities())
    }

    /// Parses a section with its kind's entry.
    pub fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>> {
        self.get(cfg)?.parse(cfg)
    }
}
