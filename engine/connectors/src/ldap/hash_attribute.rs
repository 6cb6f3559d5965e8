//! OpenLDAP with the samba schema: NT hashes in an attribute (`sambaNTPassword`, 32 hex
//! characters), read through the ldap connector.
use super::backend::LdapConnector;
use idflow_core::hash::{parse_nt_hex, HashSource, Pull, PullRequest};
use idflow_core::Result;
use std::collections::HashMap;

pub(crate) struct AttributeSource {
    pub(crate) connector: LdapConnector,
    pub(crate) attribute: String,
}

impl HashSource for AttributeSource {
    fn read(&mut self, _: &PullRequest) -> Result<Pull> {
        let mut out = HashMap::new();
        for v in self.connector.read_secret(&self.attribute)? {
            if let Some(a) = v.anchor {
                out.insert(a, parse_nt_hex(&v.value).map_err(|m| format!("malformed {}: {m}", self.attribute)));
            }
        }
        Ok(Pull::complete(out))
    }
}
