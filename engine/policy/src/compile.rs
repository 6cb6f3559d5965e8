//! Compiling rules: every expression once per run, errors naming rule, file, expression and position.
use crate::defs::{Direction, RuleDef};
use crate::engine::{Limits, RuleEngine};
use crate::lint;
use idflow_core::{Error, Result};
use rhai::AST;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Expr {
    pub ast: AST,
    pub src: String,
    /// What this expression is, for messages: `scope`, `flow displayName`, `join employeeId`.
    pub what: String,
    /// When the expression only reads one attribute (`source.mail`): the variable and the
    /// attribute, read without running the expression (RuleEngine::eval_expr).
    pub read: Option<(String, String)>,
}

/// `var.name` alone: the variable and the name.
fn plain_read(var: &str, src: &str) -> Option<(String, String)> {
    let name = src.trim().strip_prefix(var)?.strip_prefix('.')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let ident = (first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ident.then(|| (var.to_string(), name.to_string()))
}

#[derive(Debug, Clone)]
pub struct JoinCond {
    pub attr: String,
    pub expr: Expr,
    pub ignore_case: bool,
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub def: RuleDef,
    pub scope: Option<Expr>,
    pub joins: Vec<Vec<JoinCond>>,
    pub flows: Vec<(String, Expr)>,
    pub deprovision_flows: Vec<(String, Expr)>,
    pub dn: Option<Expr>,
}

impl CompiledRule {
    pub fn name(&self) -> &str {
        &self.def.name
    }
}

pub struct RuleSet {
    pub engine: RuleEngine,
    pub rules: Vec<CompiledRule>,
    /// Changes whenever any rule changes: a changed fingerprint turns the next delta sync into a full sync.
    pub fingerprint: String,
    /// The fingerprint as idflow computed it before it serialized rules stably (from their Debug
    /// form): a database that holds it has seen these same rules. Kept for one upgrade.
    pub legacy_fingerprint: String,
    /// Per connector: lower-cased attribute name to the spelling the rules use.
    names: HashMap<String, HashMap<String, String>>,
    /// Per connector with inbound rules: the attributes they read of `source` (`None`: any).
    source_reads: HashMap<String, Option<BTreeSet<String>>>,
    /// The attributes all outbound rules read of `mv` (`None`: any).
    mv_reads: Option<BTreeSet<String>>,
    /// What compiles but looks wrong (`validate` shows it): an inbound flow that reads
    /// references and other attributes together may give both in one result.
    pub warnings: Vec<String>,
}

/// Facts about connectors that rules need: which attributes hold references.
#[derive(Debug, Clone, Default)]
pub struct ConnectorFacts {
    pub kind: String,
    pub reference_attributes: Vec<String>,
}

impl RuleSet {
    pub fn compile(
        defs: Vec<RuleDef>,
        connectors: &BTreeMap<String, ConnectorFacts>,
        rule_dirs: &[PathBuf],
        limits: &Limits,
    ) -> Result<RuleSet> {
        let engine = RuleEngine::new(rule_dirs, limits);
        let known = lint::Known::of(&engine.engine);
        let mut rules = Vec::new();
        let mut warnings = Vec::new();
        let mut hasher = sha2::Sha256::new();
        let mut legacy = sha2::Sha256::new();
        let mut names: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut modules: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut source_reads: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
        let mut mv_reads = Some(BTreeSet::new());
        for def in defs.into_iter().filter(|d| d.enabled) {
            if !connectors.contains_key(&def.connector) {
                return Err(Error::Config(format!(
                    "rule {:?} ({}): connector {:?} is not configured (known: {})",
                    def.name,
                    def.file.display(),
                    def.connector,
                    connectors.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            let var = match def.direction {
                Direction::Inbound => "source",
                Direction::Outbound => "mv",
            };
            let c = |what: String, src: &str| -> Result<Expr> {
                let fail = |message: String| {
                    Error::Compile(Box::new(idflow_core::CompileError {
                        rule: def.name.clone(),
                        file: def.file.clone(),
                        line: def.line_of(if what.starts_with("join ") { "join" } else { &what }),
                        what: what.clone(),
                        expr: src.to_string(),
                        message,
                    }))
                };
                let ast = engine.compile(&[var], src).map_err(fail)?;
                // Calls are resolved now, not on every object at run time.
                let problems = lint::check_calls(&engine.engine, &known, &ast);
                if !problems.is_empty() {
                    return Err(fail(problems.join("; ")));
                }
                Ok(Expr { ast, src: src.to_string(), what, read: plain_read(var, src) })
            };
            let scope = def.scope.as_deref().map(|s| c("scope".into(), s)).transpose()?;
            let mut joins = Vec::new();
            for g in &def.join {
                let mut conds = Vec::new();
                for k in g.conditions() {
                    let attr = k.metaverse.clone().or_else(|| k.target.clone()).unwrap_or_default();
                    conds.push(JoinCond { expr: c(format!("join {attr}"), &k.expr)?, attr, ignore_case: k.ignore_case });
                }
                joins.push(conds);
            }
            let flows = def.flows.iter().map(|(a, s)| Ok((a.clone(), c(format!("flow {a}"), s)?))).collect::<Result<Vec<_>>>()?;
            if def.direction == Direction::Inbound {
                let references: Vec<String> = connectors[&def.connector].reference_attributes.iter().map(|r| r.to_lowercase()).collect();
                for (attr, src) in &def.flows {
                    let read = attribute_names_in(src, "source");
                    let (refs, text): (Vec<&String>, Vec<&String>) = read.iter().partition(|n| references.contains(&n.to_lowercase()));
                    if !refs.is_empty() && (!text.is_empty() || src.contains("source.dn")) {
                        warnings.push(format!(
                            "rule {:?} ({}): flow {attr} {src:?} reads references ({}) and text ({}): where it gives both in one \
                             result, the object fails (references and text are not mixed); keep them in separate flows, or use dn_text()",
                            def.name,
                            def.file.display(),
                            refs.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                            if text.is_empty() { "dn".to_string() } else { text.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") }
                        ));
                    }
                }
            }
            let deprovision_flows = def
                .deprovision_flows
                .iter()
                .map(|(a, s)| Ok((a.clone(), c(format!("deprovision flow {a}"), s)?)))
                .collect::<Result<Vec<_>>>()?;
            let dn = def.dn.as_deref().map(|s| c("dn".into(), s)).transpose()?;
            // A stable serialization (the file a rule lives in is not part of it): a refactor of
            // idflow does not change the fingerprint, only a change of the rules does.
            hasher.update(serde_json::to_string(&def).map_err(|e| Error::Config(format!("rule {:?}: {e}", def.name)))?.as_bytes());
            hasher.update(b"\n");
            let mut fp = def.clone();
            fp.file = PathBuf::new();
            legacy.update(format!("{fp:?}\n").as_bytes());
            if def.direction == Direction::Outbound {
                // What outbound rules write and join on is what an import of the target must read.
                let entry = names.entry(def.connector.clone()).or_default();
                let mut targets: Vec<String> = def.flows.keys().cloned().collect();
                targets.extend(def.deprovision_flows.keys().cloned());
                targets.extend(def.join.iter().flat_map(|g| g.conditions().into_iter().filter_map(|k| k.target.clone())));
                for n in targets {
                    entry.entry(n.to_lowercase()).or_insert(n);
                }
            }
            if def.direction == Direction::Inbound {
                let entry = names.entry(def.connector.clone()).or_default();
                let mut srcs: Vec<&str> = def.flows.values().map(String::as_str).collect();
                srcs.extend(def.scope.as_deref());
                srcs.extend(def.join.iter().flat_map(|g| g.conditions().into_iter().map(|k| k.expr.as_str())));
                let used: Vec<String> = srcs.iter().flat_map(|s| crate::modules::imported(s, rule_dirs).into_values()).collect();
                for s in srcs.into_iter().chain(used.iter().map(String::as_str)) {
                    for n in attribute_names_in(s, "source") {
                        entry.entry(n.to_lowercase()).or_insert(n);
                    }
                }
            }
            for src in def.flows.values().chain(def.deprovision_flows.values()).chain(def.scope.iter()).chain(def.dn.iter()) {
                modules.extend(crate::modules::imported(src, rule_dirs));
            }
            for k in def.join.iter().flat_map(|g| g.conditions()) {
                modules.extend(crate::modules::imported(&k.expr, rule_dirs));
            }
            let reads = match def.direction {
                Direction::Inbound => source_reads.entry(def.connector.clone()).or_insert_with(|| Some(BTreeSet::new())),
                Direction::Outbound => &mut mv_reads,
            };
            let exprs = scope.iter().chain(joins.iter().flatten().map(|k| &k.expr)).chain(flows.iter().map(|(_, e)| e));
            for e in exprs.chain(deprovision_flows.iter().map(|(_, e)| e)).chain(dn.iter()) {
                let more = crate::reads::reads_of(&e.ast, var);
                if more.is_none() && reads.is_some() {
                    tracing::debug!(rule = %def.name, expression = %e.what, "the rules get every attribute of {var}: this expression uses it other than by name");
                }
                *reads = reads.take().zip(more).map(|(mut all, more)| {
                    all.extend(more);
                    all
                });
            }
            rules.push(CompiledRule { def, scope, joins, flows, deprovision_flows, dn });
        }
        for (name, f) in connectors {
            hasher.update(serde_json::json!({ "connector": name, "reference_attributes": f.reference_attributes }).to_string().as_bytes());
            hasher.update(b"\n");
            legacy.update(format!("{name}:{:?}\n", f.reference_attributes).as_bytes());
            let entry = names.entry(name.clone()).or_default();
            for r in &f.reference_attributes {
                entry.entry(r.to_lowercase()).or_insert(r.clone());
            }
        }
        // A helper module is checked like a rule: it parses, and every call in it resolves.
        for (path, text) in &modules {
            let ast = engine.engine.compile(text).map_err(|e| Error::Parse {
                file: path.clone(),
                line: e.1.line().unwrap_or(0),
                column: e.1.position().unwrap_or(0),
                message: format!("helper module: {}", e.0),
            })?;
            let problems = lint::check_calls(&engine.engine, &known, &ast);
            if !problems.is_empty() {
                return Err(Error::file(path.clone(), format!("helper module: {}", problems.join("; "))));
            }
        }
        // A helper module the rules import is part of them: a change to it re-runs every object.
        for text in modules.values() {
            hasher.update(text.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(limits.max_operations.to_le_bytes());
        legacy.update(limits.max_operations.to_le_bytes());
        rules.sort_by(|a, b| a.def.precedence.cmp(&b.def.precedence).then(a.def.name.cmp(&b.def.name)));
        warnings.extend(lint::attributes(&rules));
        Ok(RuleSet {
            engine,
            rules,
            fingerprint: hex::encode(hasher.finalize()),
            legacy_fingerprint: hex::encode(legacy.finalize()),
            names,
            source_reads,
            mv_reads,
            warnings,
        })
    }

    /// The attributes the inbound rules of `connector` read of a source object, when they
    /// read them only by name (`source.mail`, `source["mail"]`, `values(source, "mail")`);
    /// `None`: they may read any. An object's map for them needs only these (and its DN).
    pub fn source_reads(&self, connector: &str) -> Option<&BTreeSet<String>> {
        self.source_reads.get(connector).and_then(Option::as_ref)
    }

    /// [`RuleSet::source_reads`] of a metaverse object (`mv`), for every outbound rule.
    pub fn mv_reads(&self) -> Option<&BTreeSet<String>> {
        self.mv_reads.as_ref()
    }

    /// Inbound rules for objects of `object_type` in `connector`, by precedence.
    pub fn inbound<'a>(&'a self, connector: &'a str, object_type: &'a str) -> impl Iterator<Item = &'a CompiledRule> + 'a {
        self.rules.iter().filter(move |r| {
            r.def.direction == Direction::Inbound && r.def.connector == connector && r.def.source_type.as_deref() == Some(object_type)
        })
    }

    pub fn has_inbound(&self, connector: &str) -> bool {
        self.rules.iter().any(|r| r.def.direction == Direction::Inbound && r.def.connector == connector)
    }

    /// Outbound rules for metaverse objects of `mv_type`, grouped by target connector, by precedence.
    pub fn outbound(&self, mv_type: &str) -> BTreeMap<&str, Vec<&CompiledRule>> {
        let mut m: BTreeMap<&str, Vec<&CompiledRule>> = BTreeMap::new();
        for r in &self.rules {
            if r.def.direction == Direction::Outbound && r.def.metaverse_type == mv_type {
                m.entry(r.def.connector.as_str()).or_default().push(r);
            }
        }
        m
    }

    pub fn outbound_connectors(&self) -> Vec<&str> {
        let mut v: Vec<&str> =
            self.rules.iter().filter(|r| r.def.direction == Direction::Outbound).map(|r| r.def.connector.as_str()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The spelling rules use for an attribute of `connector` (LDAP names are case-insensitive).
    pub fn canonical_name(&self, connector: &str, name: &str) -> Option<&str> {
        self.names.get(connector).and_then(|m| m.get(&name.to_lowercase())).map(String::as_str)
    }

    /// [`RuleSet::canonical_name`] of every name the rules use for `connector`: by the name
    /// lower-cased, how the rules spell it.
    pub fn spellings(&self, connector: &str) -> HashMap<String, String> {
        self.names.get(connector).cloned().unwrap_or_default()
    }

    /// Every attribute of `connector` that the inbound rules read.
    pub fn attributes_used(&self, connector: &str) -> Vec<String> {
        let mut v: Vec<String> = self.names.get(connector).map(|m| m.values().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

/// `source.x` and `values(source, "x")` names in an expression.
pub(crate) fn attribute_names_in(src: &str, var: &str) -> Vec<String> {
    use std::sync::OnceLock;
    static RE: OnceLock<(regex::Regex, regex::Regex, regex::Regex)> = OnceLock::new();
    let (dot, vals, index) = RE.get_or_init(|| {
        (
            regex::Regex::new(r"\b(source|mv)\.([A-Za-z_][A-Za-z0-9_]*)").expect("static regex"),
            regex::Regex::new(r#"values\(\s*(source|mv)\s*,\s*"([^"]+)"\s*\)"#).expect("static regex"),
            regex::Regex::new(r#"\b(source|mv)\s*\[\s*"([^"]+)"\s*\]"#).expect("static regex"),
        )
    });
    let mut out = Vec::new();
    for re in [dot, vals, index] {
        for c in re.captures_iter(src) {
            if &c[1] == var {
                out.push(c[2].to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_attribute_names() {
        let n = attribute_names_in(
            r#"if source.displayName != () { lower(source.mail) } else { values(source, "proxy-Addresses") + source["ms-DS-ConsistencyGuid"] }"#,
            "source",
        );
        assert_eq!(n, vec!["displayName", "mail", "proxy-Addresses", "ms-DS-ConsistencyGuid"]);
    }

    /// An expression that only reads an attribute gives what running it gives, read or run.
    #[test]
    fn a_plain_read_gives_what_running_it_gives() {
        let engine = RuleEngine::new(&[], &Limits::default());
        let attrs: idflow_core::Attrs = [
            ("mail".to_string(), vec![idflow_core::Value::from("a@x")]),
            ("proxy".to_string(), vec![idflow_core::Value::from("p1"), idflow_core::Value::from("p2")]),
            ("len".to_string(), vec![idflow_core::Value::from("long")]),
            ("manager".to_string(), vec![idflow_core::Value::from("uid=b,o=x")]),
        ]
        .into_iter()
        .collect();
        let refs = std::collections::HashSet::from(["manager".to_string()]);
        let mut scope = rhai::Scope::new();
        scope.push_constant("source", crate::source_map(&attrs, Some("uid=a,o=x"), &refs, None));
        for src in ["source.mail", " source.proxy ", "source.len", "source.manager", "source.missing", "source.dn"] {
            let ast = engine.compile(&["source"], src).expect("compiles");
            let e = Expr { ast: ast.clone(), src: src.into(), what: "flow".into(), read: plain_read("source", src) };
            assert!(e.read.is_some(), "{src}");
            let read = engine.eval_expr(&mut scope, &e).expect("read");
            let run = engine.eval(&mut scope, &ast).expect("run");
            assert_eq!(format!("{read:?} {}", read.type_name()), format!("{run:?} {}", run.type_name()), "{src}");
        }
        for src in ["source.mail.len()", "source.mail + \"\"", "lower(source.mail)", "source[\"mail\"]", "mv.mail", "source.9"] {
            assert_eq!(plain_read("source", src), None, "{src}");
        }
    }
}
