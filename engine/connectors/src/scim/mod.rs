//! The `scim` connector: a SCIM 2.0 client (RFC 7643, RFC 7644) for cloud directories.
//!
//! Discovery (`/ServiceProviderConfig`, `/ResourceTypes`), full import of users and groups
//! (paged with startIndex and count), create by POST, update by PATCH (PUT where the service
//! has no PATCH), delete; group members added and removed in batches; bearer tokens or OAuth2
//! client credentials; bounded concurrency; 429 with Retry-After, 5xx and timeouts retried with
//! exponential backoff and jitter; 409 on create adopts the existing object; 404 on delete is done.
use idflow_core::connector::{Capabilities, Connector, RefForm};
use idflow_core::registry::{ConnectorSpec, ConnectorType};
use idflow_core::{ConnectorConfig, Error, Result};

mod backend;
mod config;
mod http;
mod mapping;

const CAPABILITIES: Capabilities = Capabilities {
    delta_import: false,
    delta_reads_again: false,
    export: true,
    local_anchor: false,
    reference_form: RefForm::Anchor,
    max_batch: 50,
    owner_attribute: Some("externalId"),
    reference_attributes: &["members", "manager", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"],
    unique_attributes: &["userName"],
};

/// The registry entry.
pub(crate) struct Scim;

struct Spec {
    cfg: ConnectorConfig,
    settings: config::Settings,
}

impl ConnectorType for Scim {
    fn kind(&self) -> &'static str {
        "scim"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn parse(&self, cfg: &ConnectorConfig) -> Result<Box<dyn ConnectorSpec>> {
        let settings: config::Settings = cfg.settings()?;
        if let Some(o) = &settings.oauth {
            if o.client_secret_env.is_none() && o.client_secret_file.is_none() {
                return Err(Error::connector(&cfg.name, "oauth needs client_secret_env or client_secret_file"));
            }
        }
        Ok(Box::new(Spec { cfg: cfg.clone(), settings }))
    }
}

impl ConnectorSpec for Spec {
    fn open(&self) -> Result<Box<dyn Connector>> {
        Ok(Box::new(backend::ScimConnector::open(&self.cfg, &self.settings)?))
    }

    fn object_types(&self) -> Option<Vec<String>> {
        Some(vec!["User".into(), "Group".into()])
    }
}
