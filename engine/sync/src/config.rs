//! `idflow.toml`: the metaverse, the rule folders, export safety settings and the connectors.
//! Parse errors name the file, line and column; paths are relative to the config file.
use idflow_core::{toml_error, ConnectorConfig, Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    metaverse: MetaverseSection,
    #[serde(default)]
    rules: RulesSection,
    #[serde(default)]
    export: ExportSection,
    #[serde(default, rename = "connector")]
    connectors: Vec<toml::Table>,
    #[serde(default)]
    password_hash_sync: Option<PhsSection>,
    #[serde(default)]
    service: crate::service_section::ServiceSection,
    #[serde(default)]
    health: crate::health_section::HealthSection,
    #[serde(default)]
    pta: Option<crate::pta_section::PtaSection>,
}

/// `[password_hash_sync]`: where NT hashes come from and what each target gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhsSection {
    /// The connector whose directory holds the hashes.
    pub source: String,
    /// The attribute that holds an NT hash in the source (OpenLDAP: sambaNTPassword).
    #[serde(default = "default_hash_attribute")]
    pub hash_attribute: String,
    /// The per-installation key for change fingerprints (created owner-only when missing).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Per target connector: `{ format = "pph1" | "nt", attribute = "..." }`.
    pub targets: std::collections::BTreeMap<String, PhsTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhsTarget {
    #[serde(default = "default_phs_format")]
    pub format: PhsFormat,
    pub attribute: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhsFormat {
    /// Entra's `v1;PPH1_MD4,...` string.
    Pph1,
    /// The NT hash as 32 upper-case hex characters (sambaNTPassword for RADIUS-style consumers).
    Nt,
}

fn default_hash_attribute() -> String {
    "sambaNTPassword".into()
}
fn default_phs_format() -> PhsFormat {
    PhsFormat::Pph1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaverseSection {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesSection {
    #[serde(default = "default_rule_paths")]
    paths: Vec<String>,
    /// Most Rhai operations one expression may take on one object before it is stopped.
    #[serde(default = "default_max_operations")]
    max_operations: u64,
    /// Longest one expression may take on one object, in milliseconds, before it is stopped.
    #[serde(default = "default_max_milliseconds")]
    max_milliseconds: u64,
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection { paths: default_rule_paths(), max_operations: default_max_operations(), max_milliseconds: default_max_milliseconds() }
    }
}

fn default_rule_paths() -> Vec<String> {
    vec!["rules".into()]
}
fn default_max_milliseconds() -> u64 {
    100
}
fn default_max_operations() -> u64 {
    1_000_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportSection {
    #[serde(default = "default_threshold")]
    deletion_threshold: usize,
    /// Staging mode: import and sync, never export (a warm standby).
    #[serde(default)]
    staging_mode: bool,
}

impl Default for ExportSection {
    fn default() -> Self {
        ExportSection { deletion_threshold: default_threshold(), staging_mode: false }
    }
}

fn default_threshold() -> usize {
    500
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub dir: PathBuf,
    pub metaverse_path: PathBuf,
    pub rule_paths: Vec<PathBuf>,
    pub max_operations: u64,
    pub max_milliseconds: u64,
    pub deletion_threshold: usize,
    pub staging_mode: bool,
    pub connectors: Vec<ConnectorConfig>,
    pub password_hash_sync: Option<PhsSection>,
    /// Where the password hash sync fingerprint key lives.
    pub phs_key_file: PathBuf,
    /// `[service]`: the schedule and control API of `idflow serve`.
    pub service: crate::service_section::ServiceSection,
    /// `[health]`: the service's alerts and webhooks.
    pub health: crate::health_section::HealthSection,
    /// `[pta]`: pass-through authentication.
    pub pta: Option<crate::pta_section::PtaSection>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let model: FileModel = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let shared = Arc::new(zeroize::Zeroizing::new(text.to_string()));
        let mut connectors: Vec<ConnectorConfig> = Vec::new();
        for (i, table) in model.connectors.into_iter().enumerate() {
            let name = table
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| Error::Config(format!("{}: connector #{} has no name", path.display(), i + 1)))?;
            let kind = table
                .get("type")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| Error::Config(format!("{}: connector {name:?} has no type", path.display())))?;
            if connectors.iter().any(|c| c.name == name) {
                return Err(Error::Config(format!("{}: two connectors are named {name:?}", path.display())));
            }
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::Config(format!("{}: connector name {name:?}: use letters, digits, '-' and '_'", path.display())));
            }
            connectors.push(ConnectorConfig::new(&name, &kind, table, path)?.located(shared.clone(), i));
        }
        if let Some(p) = &model.password_hash_sync {
            let names: Vec<&String> = connectors.iter().map(|c| &c.name).collect();
            for n in std::iter::once(&p.source).chain(p.targets.keys()) {
                if !names.contains(&n) {
                    return Err(Error::Config(format!(
                        "{}: [password_hash_sync] names connector {n:?}, which is not configured",
                        path.display()
                    )));
                }
            }
        }
        let phs_key_file = match model.password_hash_sync.as_ref().and_then(|p| p.key_file.clone()) {
            Some(k) => dir.join(k),
            None => dir.join(&model.metaverse.path).with_extension("phs.key"),
        };
        Ok(Config {
            password_hash_sync: model.password_hash_sync,
            phs_key_file,
            file: path.to_path_buf(),
            metaverse_path: dir.join(&model.metaverse.path),
            rule_paths: model.rules.paths.iter().map(|p| dir.join(p)).collect(),
            max_operations: model.rules.max_operations,
            max_milliseconds: model.rules.max_milliseconds,
            deletion_threshold: model.export.deletion_threshold,
            staging_mode: model.export.staging_mode,
            connectors,
            dir,
            service: model.service,
            health: model.health,
            pta: model.pta,
        })
    }

    pub fn connector(&self, name: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_toml_names_file_and_line() {
        let text = "[metaverse]\npath = \"x.db\"\n\n[export]\ndeletion_threshold = \"many\"\n";
        let e = Config::parse(Path::new("cfg/idflow.toml"), text).expect_err("bad");
        let s = e.to_string();
        assert!(s.starts_with("cfg/idflow.toml:5:"), "{s}");
        let e = Config::parse(Path::new("idflow.toml"), "[metaverse]\npath = \"x\"\nbogus = 1\n").expect_err("bad");
        assert!(e.to_string().contains("idflow.toml:3:"), "{e}");
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let c = Config::parse(Path::new("/etc/idflow/idflow.toml"), "[metaverse]\npath = \"state/idflow.db\"\n").expect("ok");
        assert_eq!(c.metaverse_path, PathBuf::from("/etc/idflow/state/idflow.db"));
        assert_eq!(c.rule_paths, vec![PathBuf::from("/etc/idflow/rules")]);
        assert_eq!(c.deletion_threshold, 500);
    }
}
