//! The `file` connector: a target directory kept as one JSON file, so the quickstart needs no
//! server.
use idflow_core::connector::{Capabilities, RefForm};
use idflow_core::registry::{ConnectorSpec, ConnectorType};
use idflow_core::{ConnectorConfig, Result};

mod backend;
mod config;
mod held;
mod plain;
mod scan;

const CAPABILITIES: Capabilities = Capabilities {
    delta_import: false,
    delta_reads_again: false,
    export: true,
    local_anchor: true,
    reference_form: RefForm::Anchor,
    // The file is written whole once per batch: large batches, but not the whole export at
    // once (the operations of a million objects would not fit in memory).
    max_batch: 50_000,
    owner_attribute: None,
    reference_attributes: &[],
    unique_attributes: &[],
};

/// The registry entry.
pub(crate) struct File;

impl ConnectorType for File {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>> {
        Ok(Box::new(crate::Ready(backend::FileConnector::new(cfg)?, None)))
    }
}
