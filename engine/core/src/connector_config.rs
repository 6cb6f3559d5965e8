//! One `[[connector]]` section of `idflow.toml`, as the connector registry receives it: the
//! settings every connector has, the rest for its type to deserialize with its own struct, and
//! where the section stands in its file so that a bad setting is reported at its line.
use crate::error::{Error, Result};
use crate::secret;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Keys every connector has, read once by the config, never by a type's own settings.
const COMMON_KEYS: [&str; 5] = ["name", "type", "reference_attributes", "owner_attribute", "unique_attributes"];

#[derive(Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: String,
    pub reference_attributes: Vec<String>,
    /// The attribute that names a target object's owning source, where the section sets one
    /// (otherwise the kind's own, if it has one).
    pub owner_attribute: Option<String>,
    /// Attributes the directory keeps unique (besides the kind's own, such as SCIM's
    /// `userName`): a plan flags values two objects would hold.
    pub unique_attributes: Vec<String>,
    /// Every key of the section, for the connector type to deserialize with its own struct.
    pub settings: toml::Table,
    /// The directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// The configuration file itself (an inline secret needs it private).
    pub config_file: PathBuf,
    /// The text of the file (which may hold an inline password: wiped when the last section
    /// that came from it is dropped) and the section's place among its `[[connector]]` tables.
    origin: Option<(Arc<Zeroizing<String>>, usize)>,
}

/// Names the section; never prints its settings (an inline password is one of them).
impl std::fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

impl ConnectorConfig {
    pub fn new(name: &str, kind: &str, settings: toml::Table, config_file: &Path) -> Result<Self> {
        let names = |key: &str| -> Result<Vec<String>> {
            match settings.get(key) {
                None => Ok(Vec::new()),
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| Error::Config(format!("connector {name:?}: {key} must be a list of names"))),
            }
        };
        let reference_attributes = names("reference_attributes")?;
        let unique_attributes = names("unique_attributes")?;
        let owner_attribute = match settings.get("owner_attribute") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::Config(format!("connector {name:?}: owner_attribute must be an attribute name")))?,
            ),
        };
        let dir = config_file.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Ok(ConnectorConfig {
            name: name.to_string(),
            kind: kind.to_string(),
            reference_attributes,
            owner_attribute,
            unique_attributes,
            settings,
            base_dir,
            config_file: config_file.to_path_buf(),
            origin: None,
        })
    }

    /// Remembers that this is the `index`th `[[connector]]` of `text`, so errors name the line.
    pub fn located(mut self, text: Arc<Zeroizing<String>>, index: usize) -> Self {
        self.origin = Some((text, index));
        self
    }

    /// Deserializes the section into a connector type's own settings. An unknown key or a value
    /// of the wrong type is reported at its file, line and column when the section came from a
    /// file, naming the connector either way.
    pub fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if let Some((text, index)) = &self.origin {
            if let Some(r) = self.settings_at(text, *index) {
                return r;
            }
        }
        let mut t = self.settings.clone();
        for k in COMMON_KEYS {
            t.remove(k);
        }
        T::deserialize(toml::Value::Table(t)).map_err(|e| Error::Config(self.describe(e.message())))
    }

    fn describe(&self, message: &str) -> String {
        format!("connector {:?} (type {:?}): {}", self.name, self.kind, message)
    }

    /// The section deserialized from its own text, with spans; `None` when it cannot be found there.
    fn settings_at<T: serde::de::DeserializeOwned>(&self, text: &str, index: usize) -> Option<Result<T>> {
        let doc = toml::de::DeTable::parse(text).ok()?.into_inner();
        let section = doc.iter().find(|(k, _)| k.get_ref() == "connector")?.1.get_ref().as_array()?.get(index)?.clone();
        let span = section.span();
        let mut table = section.into_inner().as_table()?.clone();
        for k in COMMON_KEYS {
            table.remove(k);
        }
        let value = toml::Spanned::new(span.clone(), toml::de::DeValue::Table(table));
        Some(T::deserialize(toml::de::ValueDeserializer::from(value)).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(span.start);
            Error::at_offset(&self.config_file, text, offset, self.describe(e.message()))
        }))
    }

    pub fn resolve(&self, p: &str) -> PathBuf {
        self.base_dir.join(p)
    }

    /// The secret `<key>_env` or `<key>_file` points at ([`secret::read`]), errors naming this connector.
    pub fn secret(&self, key: &str, env: Option<&str>, file: Option<&str>) -> Result<Option<Zeroizing<String>>> {
        secret::read(&self.base_dir, key, env, file).map_err(|m| Error::connector(&self.name, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        url: String,
        #[serde(default)]
        page_size: u32,
    }

    fn section(text: &str) -> ConnectorConfig {
        let doc: toml::Table = toml::from_str(text).expect("toml");
        let t = doc["connector"].as_array().expect("array")[1].as_table().expect("table").clone();
        ConnectorConfig::new("b", "ldap", t, Path::new("cfg/idflow.toml"))
            .expect("config")
            .located(Arc::new(Zeroizing::new(text.to_string())), 1)
    }

    #[test]
    fn bad_settings_name_their_line() {
        let text =
            "[[connector]]\nname = \"a\"\ntype = \"ldif\"\n\n[[connector]]\nname = \"b\"\ntype = \"ldap\"\nurl = \"ldap://x\"\nbogus = 1\n";
        let e = section(text).settings::<Settings>().expect_err("unknown key");
        assert!(e.to_string().starts_with("cfg/idflow.toml:9:1: connector \"b\" (type \"ldap\"): unknown field `bogus`"), "{e}");
        let text = "[[connector]]\nname = \"a\"\ntype = \"ldif\"\n\n[[connector]]\nname = \"b\"\ntype = \"ldap\"\nurl = \"ldap://x\"\npage_size = \"many\"\n";
        let e = section(text).settings::<Settings>().expect_err("wrong type");
        assert!(e.to_string().starts_with("cfg/idflow.toml:9:"), "{e}");
        let ok = section("[[connector]]\nname = \"a\"\n[[connector]]\nname = \"b\"\nurl = \"u\"\n").settings::<Settings>().expect("fine");
        assert_eq!(ok.url, "u");
    }
}
