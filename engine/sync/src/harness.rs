//! `idflow test`: runs the test cases kept beside the rules (`*_test.toml`) on an in-memory
//! metaverse, never a server: input objects in, expected metaverse attributes and exports out.
use crate::config::rules as rule_config;
use crate::config::{Config, ConnectorConfig};
use crate::error::{Error, Result};
use crate::store::{cs, mv, CsObject, PendingImport, Store};
use crate::sync::plan::change_view;
use crate::sync::profiles::Engine;
use crate::sync::{diff, inbound, outbound, Ctx};
use crate::value::{Attrs, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
                let bytes = idflow_stdlib::guid_string_to_bytes(g).ok_or_else(|| Error::Config(format!("input value {{ guid = {g:?} }} is not a GUID")))?;
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

/// Runs every test file under `dir`. `config` supplies connectors when the file names none.
pub fn run(dir: &Path, config: Option<&Config>) -> Result<Vec<CaseResult>> {
    let (rule_files, test_files) = rule_config::rule_files(&[dir.to_path_buf()])?;
    if test_files.is_empty() {
        return Err(Error::Config(format!("no *_test.toml files in {}", dir.display())));
    }
    let mut defs = Vec::new();
    for f in &rule_files {
        defs.extend(rule_config::load_file(f)?);
    }
    let mut results = Vec::new();
    for tf in test_files {
        let text = std::fs::read_to_string(&tf).map_err(|e| Error::File { file: tf.clone(), message: e.to_string() })?;
        let parsed: TestFile = toml::from_str(&text).map_err(|e| crate::config::toml_error(&tf, &text, &e))?;
        let cfg = test_config(&tf, dir, &parsed.connectors, config)?;
        for case in &parsed.test {
            let failures = match run_case(&cfg, defs.clone(), case) {
                Ok(f) => f,
                Err(e) => vec![format!("could not run: {e}")],
            };
            results.push(CaseResult {
                file: tf.display().to_string(),
                name: case.name.clone(),
                passed: failures.is_empty(),
                failures,
            });
        }
    }
    Ok(results)
}

fn test_config(file: &Path, dir: &Path, tables: &[toml::Table], base: Option<&Config>) -> Result<Config> {
    let mut connectors: Vec<ConnectorConfig> = base.map(|c| c.connectors.clone()).unwrap_or_default();
    for t in tables {
        let text = format!("[metaverse]\npath = \":memory:\"\n[[connector]]\n{}", toml::to_string(t).unwrap_or_default());
        let one = Config::parse(file, &text)?;
        for c in one.connectors {
            connectors.retain(|x| x.name != c.name);
            connectors.push(c);
        }
    }
    Ok(Config {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        metaverse_path: PathBuf::from(":memory:"),
        rule_paths: vec![dir.to_path_buf()],
        max_operations: base.map(|b| b.max_operations).unwrap_or(1_000_000),
        deletion_threshold: 500,
        staging_mode: false,
        connectors,
        password_hash_sync: None,
        phs_key_file: PathBuf::from(":memory:"),
    })
}

fn run_case(cfg: &Config, defs: Vec<rule_config::RuleDef>, case: &Case) -> Result<Vec<String>> {
    let engine = Engine::from_parts(cfg.clone(), defs, Store::in_memory()?)?;
    let conn = &engine.store.conn;
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    for (n, i) in case.input.iter().enumerate() {
        if engine.config.connector(&i.connector).is_none() {
            return Err(Error::Config(format!("input #{}: no connector {:?} (declare it with [[connector]])", n + 1, i.connector)));
        }
        let mut o = CsObject::new(&i.connector, &i.object_type);
        let secret = crate::phs::stage::secret_attributes(&engine.config, &i.connector);
        o.dn = i.dn.clone();
        o.anchor = i.anchor.clone().or_else(|| i.dn.clone()).or_else(|| Some(format!("input-{n}")));
        let mut attrs = Attrs::new();
        for (k, v) in &i.attributes {
            if secret.contains(&k.to_lowercase()) {
                continue;
            }
            let name = engine.rules.canonical_name(&i.connector, k).unwrap_or(k).to_string();
            attrs.insert(name, to_values(v)?);
        }
        o.attrs = attrs;
        o.present = true;
        o.pending_import = Some(PendingImport::Add);
        let id = cs::save(conn, &o)?;
        for k in [i.dn.clone(), i.anchor.clone()].into_iter().flatten() {
            keys.insert(k.to_lowercase(), id);
        }
    }
    let mut ctx = Ctx::new(conn, &engine.rules, &engine.facts);
    let ids = cs::ids_where(conn, "1=1", [])?;
    inbound::run(&mut ctx, ids)?;
    let mv_ids = mv::all_ids(conn)?;
    outbound::run(&mut ctx, mv_ids)?;
    let errors = ctx.errors.clone();
    drop(ctx);

    let mut failures = Vec::new();
    for e in &case.expect {
        let Some(&id) = keys.get(&e.object.to_lowercase()) else {
            failures.push(format!("expect: no input with DN or anchor {:?}", e.object));
            continue;
        };
        let own_errors: Vec<&str> = errors.iter().filter(|x| x.cs_id == Some(id)).map(|x| x.message.as_str()).collect();
        if let Some(want) = &e.error {
            if !own_errors.iter().any(|m| m.contains(want.as_str())) {
                failures.push(format!("{}: expected an error containing {want:?}, got {own_errors:?}", e.object));
            }
        } else if !own_errors.is_empty() {
            failures.push(format!("{}: unexpected errors: {own_errors:?}", e.object));
        }
        let o = cs::get(conn, id)?;
        let mv_id = o.as_ref().and_then(|o| o.mv_id);
        if let Some(want) = e.linked {
            if want != mv_id.is_some() {
                failures.push(format!("{}: expected linked = {want}, it is {}", e.object, mv_id.is_some()));
            }
        }
        let m = match mv_id {
            Some(m) => mv::get(conn, m)?,
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
                        Value::Ref(r) => cs::all_linked(conn, *r)
                            .ok()
                            .and_then(|l| l.into_iter().find(|x| x.link.is_some_and(crate::store::Link::is_inbound)))
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
            let target = match mv_id {
                Some(m) => cs::linked(conn, &x.connector, m)?,
                None => None,
            };
            let form = diff::form_of(conn, &x.connector)?;
            let change = match &target {
                Some(t) => diff::change_for(conn, t, form)?,
                None => None,
            };
            let view = match &change {
                Some(c) => Some(change_view(conn, c, form, false)?),
                None => None,
            };
            let op = view.as_ref().map(|v| v.op).unwrap_or("none");
            if op != x.op {
                failures.push(format!("{}: export to {} is {op:?}, expected {:?}", e.object, x.connector, x.op));
                continue;
            }
            let Some(v) = view else { continue };
            for (attr, want) in &x.attributes {
                let have = v.attributes.iter().find(|a| &a.name == attr).map(|a| a.new.clone()).unwrap_or_default();
                if norm(have.clone()) != norm(to_strings(want)) {
                    failures.push(format!("{}: export {attr} to {} is {have:?}, expected {:?}", e.object, x.connector, to_strings(want)));
                }
            }
            for attr in &x.absent {
                if let Some(a) = v.attributes.iter().find(|a| &a.name == attr && !a.new.is_empty()) {
                    failures.push(format!("{}: export {attr} should be absent, is {:?}", e.object, a.new));
                }
            }
        }
    }
    Ok(failures)
}
