//! idflow-connectors: one folder per kind of directory, each behind the connector registry of
//! idflow-core. [`builtin`] is the registry with every kind compiled in (features `ldif`,
//! `file`, `ldap`, `scim`). Adding a connector is a folder here and a line in [`builtin`].
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

use idflow_core::connector::Connector;
use idflow_core::registry::{ConnectorSpec, Registry};
use idflow_core::Result;

mod anchor;
#[cfg(feature = "file")]
mod file;
mod filter;
#[cfg(feature = "ldap")]
mod ldap;
#[cfg(feature = "ldif")]
mod ldif;
mod object_types;
mod relay;
#[cfg(feature = "scim")]
mod scim;
#[cfg(feature = "tls")]
mod tls;

/// The registry of every connector kind this build has.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    let entries: Vec<Box<dyn idflow_core::registry::ConnectorType>> = vec![
        #[cfg(feature = "ldif")]
        Box::new(ldif::Ldif),
        #[cfg(feature = "file")]
        Box::new(file::File),
        #[cfg(feature = "ldap")]
        Box::new(ldap::Ldap),
        #[cfg(feature = "scim")]
        Box::new(scim::Scim),
    ];
    for e in entries {
        // Each kind is listed once above.
        let _ = r.register(e);
    }
    r
}

/// A spec whose connector is ready as parsed (nothing to read or connect before use): opening
/// it hands out a copy. The second field lists its object types, where it has a fixed set.
#[allow(dead_code)]
struct Ready<C>(C, Option<Vec<String>>);

impl<C: Connector + Clone + Send + Sync + 'static> ConnectorSpec for Ready<C> {
    fn open(&self) -> Result<Box<dyn Connector>> {
        Ok(Box::new(self.0.clone()))
    }

    fn object_types(&self) -> Option<Vec<String>> {
        self.1.clone()
    }
}
