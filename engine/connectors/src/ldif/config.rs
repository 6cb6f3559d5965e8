//! The `[[connector]]` settings of an `ldif` connector.
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) path: String,
    #[serde(default = "default_anchor")]
    pub(crate) anchor: String,
    #[serde(default)]
    pub(crate) object_types: toml::Table,
    #[serde(default)]
    pub(crate) binary_attributes: Vec<String>,
    /// A file of change records (`changetype:`) that a delta import applies once.
    #[serde(default)]
    pub(crate) delta_path: Option<String>,
}

fn default_anchor() -> String {
    "entryUUID".into()
}
