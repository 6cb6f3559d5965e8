//! The `ldif` connector: a directory exported as RFC 2849 LDIF (a source). Full import reads
//! `path`; delta import applies the change records of `delta_path` once.
use idflow_core::connector::{Capabilities, RefForm};
use idflow_core::registry::{ConnectorSpec, ConnectorType};
use idflow_core::{ConnectorConfig, Result};

mod backend;
mod config;
mod parse;
mod source;
mod stamp;

const CAPABILITIES: Capabilities = Capabilities {
    delta_import: true,
    delta_reads_again: false,
    export: false,
    local_anchor: false,
    reference_form: RefForm::Dn,
    max_batch: 1,
    owner_attribute: None,
    reference_attributes: &[],
    unique_attributes: &[],
};

/// The registry entry.
pub(crate) struct Ldif;

impl ConnectorType for Ldif {
    fn kind(&self) -> &'static str {
        "ldif"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>> {
        let c = backend::LdifConnector::new(cfg)?;
        let types = c.type_names();
        Ok(Box::new(crate::Ready(c, Some(types))))
    }
}
