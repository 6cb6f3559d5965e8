//! `idflow test`: runs the test cases kept beside the rules (`*_test.toml`) on an in-memory
//! metaverse, never a server: input objects in, expected metaverse attributes and exports out.
//!
//! A case takes the production path: its inputs are read by a memory connector through the
//! real import stage, then the real sync stage runs, all in a write transaction that is
//! dropped. Its configuration comes from the real parser.
use crate::config::Config;
use crate::diff;
use crate::engine::{Engine, RunReport};
use crate::import::Mode;
use crate::memory::MemoryConnector;
use crate::plan::plan_change;
use idflow_core::connector::ImportedObject;
use idflow_core::registry::Registry;
use idflow_core::{toml_error, Attrs, Error, Result, Stage, Value};
use idflow_policy::defs::{self, RuleDef};
use idflow_store::{Link, ReadOps, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default, rename = "connector")]
    connectors: Vec<toml::Table>,
    #[serde(default)]
    test: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    input: Vec<Input>,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    connector: String,
    #[serde(rename = "type")]
    object_type: String,
    #[serde(default)]
    dn: Option<String>,
    #[serde(default)]
    anchor: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The input (its DN or anchor) whose metaverse object and exports are checked.
    object: String,
    #[serde(default)]
    linked: Option<bool>,
    #[serde(default)]
    metaverse: BTreeMap<String, toml::Value>,
    #[serde(default)]
    absent: Vec<String>,
    /// A substring expected in one of this object's errors.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    export: Vec<ExpectExport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectExport {
    connector: String,
    /// add, update, delete, or none.
    op: String,
    #[serde(default)]
    attributes: BTreeMap<String, toml::Value>,
    #[serde(default)]
    absent: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Input values: text, numbers, arrays, and binary as `{ base64 = "..." }` or `{ guid = "..." }`
/// (a GUID written as text, stored in AD's byte order).
fn to_values(v: &toml::Value) -> Result<Vec<Value>> {
    Ok(match v {
        toml::Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                out.extend(to_values(x)?);
            }
            out
        }
        toml::Value::Table(t) => {
            if let Some(b) = t.get("base64").and_then(|b| b.as_str()) {
                let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b)
                    .map_err(|e| Error::Config(format!("input value {{ base64 = {b:?} }}: {e}")))?;
                vec![Value::Bin(bytes)]
            } else if let Some(g) = t.get("guid").and_then(|b| b.as_str()) {
                let bytes = idflow_stdlib::guid_string_to_bytes(g)
                    .ok_or_else(|| Error::Config(format!("input value {{ guid = {g:?} }} is not a GUID")))?;
                vec![Value::Bin(bytes)]
            } else {
                return Err(Error::Config(format!("input value {v}: a table must be {{ base64 = \"...\" }} or {{ guid = \"...\" }}")));
            }
        }
        toml::Value::String(s) => vec![Value::Str(s.clone())],
        other => vec![Value::Str(other.to_string())],
    })
}

fn to_strings(v: &toml::Value) -> Vec<String> {
    match v {
        toml::Value::Array(a) => a.iter().flat_map(to_strings).collect(),
        toml::Value::String(s) => vec![s.clone()],
        other => vec![other.to_string()],
    }
}

fn norm(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Runs the test cases (`*_test.toml`) kept beside the rules in `dir`; `config` supplies
/// connectors where a test file declares none.
pub fn test_rules(dir: &Path, config: Option<&Config>, registry: Arc<Registry>) -> Result<Vec<CaseResult>> {
    let (rule_files, test_files) = defs::rule_files(&[dir.to_path_buf()])?;
    if test_files.is_empty() {
        return Err(Error::Config(format!("no *_test.toml files in {}", dir.display())));
    }
    let mut all = Vec::new();
    for f in &rule_files {
        all.extend(defs::load_file(f)?);
    }
    let mut results = Vec::new();
    for tf in test_files {
        let text = std::fs::read_to_string(&tf).map_err(|e| Error::io(&tf, "", e))?;
        let parsed: TestFile = toml::from_str(&text).map_err(|e| toml_error(&tf, &text, &e))?;
        let cfg = test_config(&tf, &parsed.connectors, config)?;
        for case in &parsed.test {
            let failures = match run_case(&cfg, all.clone(), case, registry.clone()) {
                Ok(f) => f,
                Err(e) => vec![format!("could not run: {e}")],
            };
            results.push(CaseResult { file: tf.display().to_string(), name: case.name.clone(), passed: failures.is_empty(), failures });
        }
    }
    Ok(results)
}

/// The configuration a test file runs under, through the real parser: an in-memory metaverse,
/// the rules of the test file's folder, the configuration's connectors, and those the test file
/// declares (which replace the configuration's of the same name).
fn test_config(file: &Path, tables: &[toml::Table], base: Option<&Config>) -> Result<Config> {
    let mut metaverse = toml::Table::new();
    metaverse.insert("path".into(), ":memory:".into());
    let mut rules = toml::Table::new();
    rules.insert("paths".into(), toml::Value::Array(vec![".".into()]));
    if let Some(b) = base {
        rules.insert("max_operations".into(), toml::Value::Integer(i64::try_from(b.max_operations).unwrap_or(i64::MAX)));
        rules.insert("max_milliseconds".into(), toml::Value::Integer(i64::try_from(b.max_milliseconds).unwrap_or(i64::MAX)));
    }
    let mut doc = toml::Table::new();
    doc.insert("metaverse".into(), toml::Value::Table(metaverse));
    doc.insert("rules".into(), toml::Value::Table(rules));
    doc.insert("connector".into(), toml::Value::Array(tables.iter().cloned().map(toml::Value::Table).collect()));
    let text = toml::to_string(&doc).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
    let mut cfg = Config::parse(file, &text)?;
    let declared = std::mem::take(&mut cfg.connectors);
    cfg.connectors = base.map(|b| b.connectors.clone()).unwrap_or_default();
    for c in declared {
        cfg.connectors.retain(|x| x.name != c.name);
        cfg.connectors.push(c);
    }
    Ok(cfg)
}

fn run_case(cfg: &Config, rules: Vec<RuleDef>, case: &Case, registry: Arc<Registry>) -> Result<Vec<String>> {
    let engine = Engine::from_parts(cfg.clone(), rules, Store::in_memory()?, registry)?;
    // Each input becomes an object its connector reads; `keys` finds it again by DN or anchor.
    let mut inputs: BTreeMap<String, Vec<ImportedObject>> = BTreeMap::new();
    let mut keys: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (n, i) in case.input.iter().enumerate() {
        if engine.config.connector(&i.connector).is_none() {
            return Err(Error::Config(format!("input #{}: no connector {:?} (declare it with [[connector]])", n + 1, i.connector)));
        }
        let anchor = i.anchor.clone().or_else(|| i.dn.clone()).unwrap_or_else(|| format!("input-{n}"));
        let mut attrs = Attrs::new();
        for (k, v) in &i.attributes {
            attrs.insert(k.clone(), to_values(v)?);
        }
        for k in [i.dn.clone(), i.anchor.clone()].into_iter().flatten() {
            keys.insert(k.to_lowercase(), (i.connector.clone(), anchor.clone()));
        }
        inputs.entry(i.connector.clone()).or_default().push(ImportedObject {
            anchor: Some(anchor),
            dn: i.dn.clone(),
            object_type: i.object_type.clone(),
            attrs,
        });
    }
    let tx = engine.store.write()?;
    let mut report = RunReport::default();
    for c in &engine.config.connectors {
        let caps = engine.facts.get(&c.name).map(|f| f.caps).ok_or_else(|| Error::Config(format!("no connector {:?}", c.name)))?;
        let mut memory = MemoryConnector::new(&c.name, caps, inputs.remove(&c.name).unwrap_or_default());
        engine.import_one(&tx, &mut memory, Mode::Full, true, &mut report)?;
    }
    engine.sync_stage(&tx, true, None, &mut report)?;
    let errors = report.errors;

    // An input the import refuses (a duplicate anchor) fails the case: it tests nothing.
    let mut failures: Vec<String> = errors
        .iter()
        .filter(|e| e.stage == Stage::Import)
        .map(|e| format!("input {}: {}", e.object.as_deref().unwrap_or("-"), e.message))
        .collect();
    for e in &case.expect {
        let found = match keys.get(&e.object.to_lowercase()) {
            Some((connector, anchor)) => tx.cs_by_anchor(connector, anchor)?,
            None => None,
        };
        let Some(o) = found else {
            failures.push(format!("expect: no input with DN or anchor {:?}", e.object));
            continue;
        };
        let id = o.id;
        let own_errors: Vec<&str> = errors.iter().filter(|x| x.cs_id == Some(id)).map(|x| x.message.as_str()).collect();
        if let Some(want) = &e.error {
            if !own_errors.iter().any(|m| m.contains(want.as_str())) {
                failures.push(format!("{}: expected an error containing {want:?}, got {own_errors:?}", e.object));
            }
        } else if !own_errors.is_empty() {
            failures.push(format!("{}: unexpected errors: {own_errors:?}", e.object));
        }
        let mv_id = o.mv_id;
        if let Some(want) = e.linked {
            if want != mv_id.is_some() {
                failures.push(format!("{}: expected linked = {want}, it is {}", e.object, mv_id.is_some()));
            }
        }
        let m = match mv_id {
            Some(m) => tx.mv_get(m)?,
            None => None,
        };
        if (!e.metaverse.is_empty() || !e.absent.is_empty()) && m.is_none() {
            failures.push(format!("{}: has no metaverse object", e.object));
        }
        if let Some(m) = &m {
            for (attr, want) in &e.metaverse {
                let have: Vec<String> = m
                    .values(attr)
                    .unwrap_or_default()
                    .iter()
                    .map(|v| match v {
                        Value::Ref(r) => tx
                            .cs_all_linked(*r)
                            .ok()
                            .and_then(|l| l.into_iter().find(|x| x.link.is_some_and(Link::is_inbound)))
                            .map(|x| x.dn.or(x.anchor).unwrap_or_default())
                            .unwrap_or_else(|| format!("metaverse #{r}")),
                        Value::Str(s) => s.clone(),
                        Value::Bin(b) => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b),
                    })
                    .collect();
                if norm(have.clone()) != norm(to_strings(want)) {
                    failures.push(format!("{}: metaverse {attr} is {have:?}, expected {:?}", e.object, to_strings(want)));
                }
            }
            for attr in &e.absent {
                if let Some(v) = m.values(attr) {
                    failures.push(format!("{}: metaverse {attr} should be absent, is {v:?}", e.object));
                }
            }
        }
        for x in &e.export {
            failures.extend(check_export(&tx, &e.object, mv_id, x)?);
        }
    }
    Ok(failures)
}

/// What `expect.export` finds wrong with the export of one object to one connector.
fn check_export(tx: &dyn ReadOps, object: &str, mv_id: Option<i64>, x: &ExpectExport) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let target = match mv_id {
        Some(m) => tx.cs_linked(&x.connector, m)?,
        None => None,
    };
    let form = diff::form_of(tx, &x.connector)?;
    let change = match &target {
        Some(t) => diff::change_for(tx, t, form)?,
        None => None,
    };
    let view = match (&change, &target) {
        (Some(c), Some(t)) => Some(plan_change(tx, &mut Default::default(), t, c, form, None)?),
        _ => None,
    };
    let op = view.as_ref().map(|v| v.op.as_str()).unwrap_or("none");
    if op != x.op {
        failures.push(format!("{object}: export to {} is {op:?}, expected {:?}", x.connector, x.op));
        return Ok(failures);
    }
    let Some(v) = view else { return Ok(failures) };
    for (attr, want) in &x.attributes {
        let have: Vec<String> =
            v.attributes.iter().find(|a| &a.name == attr).map(|a| a.new.iter().map(|x| x.text()).collect()).unwrap_or_default();
        if norm(have.clone()) != norm(to_strings(want)) {
            failures.push(format!("{object}: export {attr} to {} is {have:?}, expected {:?}", x.connector, to_strings(want)));
        }
    }
    for attr in &x.absent {
        if let Some(a) = v.attributes.iter().find(|a| &a.name == attr && !a.new.is_empty()) {
            failures.push(format!("{object}: export {attr} should be absent, is {:?}", a.new.iter().map(|x| x.text()).collect::<Vec<_>>()));
        }
    }
    Ok(failures)
}
