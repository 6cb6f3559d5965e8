//! The `[[connector]]` settings of a `file` connector.
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// The JSON file, relative to the configuration's folder.
    pub(crate) path: String,
}
