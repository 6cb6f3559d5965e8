//! Rule definitions as written in rule files: every `*.toml` in the rule folders (but `*_test.toml`, which hold test cases).
//! Each holds `[[rule]]` tables; parse errors name the file and line.
use idflow_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// How a rule links objects. Inbound: `join` joins only; `provision` joins, else projects a new
/// metaverse object. Outbound: `join` adopts an existing target object only; `provision` adopts,
/// else creates one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    Join,
    Provision,
}

/// What happens to a provisioned target object whose metaverse object leaves scope or is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Deprovision {
    /// Delete it in the target (subject to the deletion threshold).
    Delete,
    /// Keep it, and flow `deprovision_flows` (for example `active = "false"`).
    Disable,
    /// Leave it in the target, unmanaged.
    Disconnect,
}

/// One join condition: a metaverse (inbound) or target (outbound) attribute equal to an expression.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JoinCondition {
    pub metaverse: Option<String>,
    pub target: Option<String>,
    pub expr: String,
    #[serde(default)]
    pub ignore_case: bool,
}

/// A join group: all its conditions must hold. Written either as one condition or `{ all = [...] }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum JoinGroup {
    All { all: Vec<JoinCondition> },
    One(JoinCondition),
}

impl JoinGroup {
    pub fn conditions(&self) -> Vec<&JoinCondition> {
        match self {
            JoinGroup::All { all } => all.iter().collect(),
            JoinGroup::One(c) => vec![c],
        }
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub direction: Direction,
    pub connector: String,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub target_type: Option<String>,
    pub metaverse_type: String,
    #[serde(default = "default_precedence")]
    pub precedence: i64,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub link: Option<LinkMode>,
    #[serde(default)]
    pub join: Vec<JoinGroup>,
    #[serde(default)]
    pub flows: BTreeMap<String, String>,
    #[serde(default)]
    pub deprovision: Option<Deprovision>,
    #[serde(default)]
    pub deprovision_flows: BTreeMap<String, String>,
    /// Outbound: the target object's DN (LDAP targets), an expression.
    #[serde(default)]
    pub dn: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(skip)]
    pub file: PathBuf,
    /// Where the rule and each of its expressions stand in the file: `rule`, `scope`, `dn`,
    /// `join`, `flow <attr>`, `deprovision flow <attr>` to a 1-based line.
    #[serde(skip)]
    pub lines: BTreeMap<String, usize>,
}

/// Every field but `lines`, as derived Debug prints them: the legacy rules fingerprint hashes
/// this text, so it must stay what idflow printed before `lines` existed.
impl std::fmt::Debug for RuleDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleDef")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("direction", &self.direction)
            .field("connector", &self.connector)
            .field("source_type", &self.source_type)
            .field("target_type", &self.target_type)
            .field("metaverse_type", &self.metaverse_type)
            .field("precedence", &self.precedence)
            .field("scope", &self.scope)
            .field("link", &self.link)
            .field("join", &self.join)
            .field("flows", &self.flows)
            .field("deprovision", &self.deprovision)
            .field("deprovision_flows", &self.deprovision_flows)
            .field("dn", &self.dn)
            .field("enabled", &self.enabled)
            .field("file", &self.file)
            .finish()
    }
}

impl RuleDef {
    /// The line of one of the rule's expressions (`flow title`), else of the rule itself.
    pub fn line_of(&self, what: &str) -> usize {
        self.lines.get(what).or_else(|| self.lines.get("rule")).copied().unwrap_or(1)
    }
}

fn default_precedence() -> i64 {
    100
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleDef>,
}

/// The rule and test files of a set of folders, in a stable order.
pub fn rule_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut rules = Vec::new();
    let mut tests = Vec::new();
    for p in paths {
        if p.is_file() {
            rules.push(p.clone());
            continue;
        }
        let rd = std::fs::read_dir(p).map_err(|e| Error::io(p, "cannot read the rule folder", e))?;
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            // A config file kept beside its rules is not a rule file.
            if !name.ends_with(".toml") || name == "idflow.toml" {
                continue;
            }
            if name.ends_with("_test.toml") {
                tests.push(f.components().collect());
            } else {
                rules.push(f.components().collect());
            }
        }
    }
    Ok((rules, tests))
}

/// Reads and checks every rule under `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Vec<RuleDef>> {
    let (files, _) = rule_files(paths)?;
    let mut all: Vec<RuleDef> = Vec::new();
    for f in files {
        for r in load_file(&f)? {
            if let Some(prev) = all.iter().find(|p| p.name == r.name) {
                return Err(Error::Config(format!("rule name {:?} is used twice: {} and {}", r.name, prev.file.display(), f.display())));
            }
            all.push(r);
        }
    }
    Ok(all)
}

pub fn load_file(f: &Path) -> Result<Vec<RuleDef>> {
    let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, "", e))?;
    parse_str(f, &text)
}

/// Parses rule file text; `f` names it in errors.
pub fn parse_str(f: &Path, text: &str) -> Result<Vec<RuleDef>> {
    let text = text.to_string();
    let parsed: RuleFile = toml::from_str(&text).map_err(|e| idflow_core::toml_error(f, &text, &e))?;
    let mut out = Vec::new();
    let mut sections = sections(&text).into_iter();
    for mut r in parsed.rule {
        r.file = f.to_path_buf();
        r.lines = sections.next().unwrap_or_default();
        check(&r)?;
        out.push(r);
    }
    Ok(out)
}

/// For each `[[rule]]` of a file, in order: where it starts and where its keys stand.
fn sections(text: &str) -> Vec<BTreeMap<String, usize>> {
    let mut out: Vec<BTreeMap<String, usize>> = Vec::new();
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("[[") && line.trim_start_matches("[[").trim_end_matches("]]").trim() == "rule" {
            out.push(BTreeMap::from([("rule".to_string(), i + 1)]));
            table.clear();
            continue;
        }
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let (Some(current), Some((key, _))) = (out.last_mut(), line.split_once('=')) else { continue };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        let what = match table.as_str() {
            "rule.flows" => format!("flow {key}"),
            "rule.deprovision_flows" => format!("deprovision flow {key}"),
            "" => key,
            _ => continue,
        };
        current.entry(what).or_insert(i + 1);
    }
    out
}

fn check(r: &RuleDef) -> Result<()> {
    let bad = |m: String| Err(Error::Config(format!("rule {:?} ({}): {m}", r.name, r.file.display())));
    match r.direction {
        Direction::Inbound => {
            if r.source_type.is_none() {
                return bad("an inbound rule needs source_type".into());
            }
            if r.target_type.is_some() || r.deprovision.is_some() || r.dn.is_some() || !r.deprovision_flows.is_empty() {
                return bad("target_type, dn, deprovision and deprovision_flows belong to outbound rules".into());
            }
        }
        Direction::Outbound => {
            if r.target_type.is_none() {
                return bad("an outbound rule needs target_type".into());
            }
            if r.source_type.is_some() {
                return bad("source_type belongs to inbound rules".into());
            }
            if r.deprovision == Some(Deprovision::Disable) && r.deprovision_flows.is_empty() {
                return bad("deprovision = \"disable\" needs [rule.deprovision_flows], e.g. active = \"false\"".into());
            }
        }
    }
    for g in &r.join {
        for c in g.conditions() {
            match (r.direction, &c.metaverse, &c.target) {
                (Direction::Inbound, Some(_), None) | (Direction::Outbound, None, Some(_)) => {}
                (Direction::Inbound, _, _) => return bad("an inbound join condition names `metaverse = \"attr\"`".into()),
                (Direction::Outbound, _, _) => return bad("an outbound join condition names `target = \"attr\"`".into()),
            }
        }
    }
    Ok(())
}
