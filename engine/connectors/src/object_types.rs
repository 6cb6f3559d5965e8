//! `[connector.object_types]`: object type names to LDAP filters, first match wins.
use crate::filter::{self, Filter};
use idflow_core::Attrs;
use idflow_core::{Error, Result};

#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectTypes(Vec<(String, Filter)>);

impl ObjectTypes {
    pub(crate) fn parse(connector: &str, table: &toml::Table) -> Result<Self> {
        let mut v = Vec::new();
        for (name, f) in table {
            let text = f
                .as_str()
                .ok_or_else(|| Error::Config(format!("connector {connector:?}: object type {name:?} must be an LDAP filter string")))?;
            let parsed = filter::parse(text).map_err(|e| Error::Config(format!("connector {connector:?}: object type {name:?}: {e}")))?;
            v.push((name.clone(), parsed));
        }
        Ok(ObjectTypes(v))
    }

    /// Every attribute the filters test (so an LDAP search asks for them).
    pub(crate) fn attribute_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, f) in &self.0 {
            f.attribute_names(&mut out);
        }
        out
    }

    /// The type names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first type whose filter matches.
    pub(crate) fn classify(&self, attrs: &Attrs) -> Option<&str> {
        self.0.iter().find(|(_, f)| f.matches(attrs)).map(|(n, _)| n.as_str())
    }
}
