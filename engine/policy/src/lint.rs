//! What a rule set's expressions call, checked when they compile: every function must exist
//! (in the stdlib, Rhai's own packages, or a module the expression imports) and take as many
//! arguments as it is given. Rhai itself only finds out when an expression runs, on every
//! object, one error each.
use rhai::{ASTNode, Engine, Expr, Stmt, AST};
use std::collections::{BTreeSet, HashMap};

/// Rhai keywords that are called like functions, with any number of arguments.
const KEYWORDS: [&str; 9] = ["type_of", "print", "debug", "Fn", "call", "curry", "is_def_var", "is_def_fn", "is_shared"];

/// Every function an expression may call: its name and the argument counts it takes.
pub(crate) struct Known(HashMap<String, BTreeSet<usize>>);

impl Known {
    pub(crate) fn of(engine: &Engine) -> Known {
        let mut m: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for sig in engine.gen_fn_signatures(true) {
            if let Some((name, n)) = parse_signature(&sig) {
                m.entry(name).or_default().insert(n);
            }
        }
        Known(m)
    }

    fn of_module(module: &rhai::Module) -> Known {
        let mut m: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for sig in module.gen_fn_signatures_with_mapper(std::borrow::Cow::Borrowed) {
            if let Some((name, n)) = parse_signature(&sig) {
                m.entry(name).or_default().insert(n);
            }
        }
        Known(m)
    }

    /// The known name closest to `name` (a typo), if one is close.
    fn closest(&self, name: &str) -> Option<&str> {
        let mut best: Option<(usize, &str)> = None;
        for k in self.0.keys() {
            let d = distance(&name.to_lowercase(), &k.to_lowercase());
            if d <= 2.max(name.len() / 4) && best.is_none_or(|(b, _)| d < b) {
                best = Some((d, k.as_str()));
            }
        }
        best.map(|(_, k)| k)
    }

    /// What is wrong with calling `name` with `n` arguments, if anything.
    fn check(&self, name: &str, n: usize) -> Option<String> {
        match self.0.get(name) {
            Some(counts) if counts.contains(&n) => None,
            Some(counts) => Some(format!(
                "{name}() takes {} argument{}, and is given {n}",
                counts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" or "),
                if counts.len() == 1 && counts.contains(&1) { "" } else { "s" }
            )),
            None => Some(match self.closest(name) {
                Some(k) => format!("unknown function {name}(): did you mean {k}()? (idflow functions lists them all)"),
                None => format!("unknown function {name}() (idflow functions lists them all)"),
            }),
        }
    }
}

/// `lower(s: &str) -> String` to (`lower`, 1).
fn parse_signature(sig: &str) -> Option<(String, usize)> {
    let open = sig.find('(')?;
    let name = sig[..open].trim().to_string();
    let mut depth = 0i32;
    let mut commas = 0;
    let mut inside = String::new();
    for c in sig[open + 1..].chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' if depth == 0 => break,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => commas += 1,
            _ => {}
        }
        inside.push(c);
    }
    let n = if inside.trim().is_empty() { 0 } else { commas + 1 };
    Some((name, n))
}

/// Edit distance (Levenshtein), for suggestions.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The problems with the calls of one compiled expression: unknown functions and wrong
/// argument counts, each with where it stands in the expression.
pub(crate) fn check_calls(engine: &Engine, known: &Known, ast: &AST) -> Vec<String> {
    // Functions the expression defines, and the modules it imports (by alias).
    let own: HashMap<String, BTreeSet<usize>> = ast.iter_functions().fold(HashMap::new(), |mut m, f| {
        m.entry(f.name.to_string()).or_default().insert(f.params.len());
        m
    });
    let mut modules: HashMap<String, Option<Known>> = HashMap::new();
    let mut problems = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Import(x, _))) => {
                let (path_expr, alias) = &**x;
                if let Expr::StringConstant(p, pos) = path_expr {
                    let m = match engine.module_resolver().resolve(engine, None, p, *pos) {
                        Ok(m) => Some(Known::of_module(&m)),
                        Err(e) => {
                            problems.push(match *e {
                                rhai::EvalAltResult::ErrorModuleNotFound(..) => {
                                    at(format!("no module {p:?}: imports are .rhai files in the rule folders"), *pos)
                                }
                                // Its own message says where in the module, and where it is imported.
                                other => format!("module {p:?}: {other}"),
                            });
                            None
                        }
                    };
                    modules.insert(alias.name.to_string(), m);
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(f, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(f, pos))) if f.op_token.is_none() => {
                let name = f.name.as_str();
                let n = f.args.len();
                let plain = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
                let problem = if !plain || KEYWORDS.contains(&name) || own.get(name).is_some_and(|c| c.contains(&n)) {
                    None
                } else if !f.namespace.is_empty() {
                    match modules.get(f.namespace.root()) {
                        Some(Some(m)) => m.check(name, n).map(|p| format!("{}::{p}", f.namespace.root())),
                        // A module that does not resolve is a problem of its own (above).
                        _ => None,
                    }
                } else {
                    known.check(name, n)
                };
                if let Some(p) = problem {
                    problems.push(at(p, *pos));
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => {
                let name = f.name.as_str();
                if !KEYWORDS.contains(&name) && !own.get(name).is_some_and(|c| c.contains(&(f.args.len() + 1))) {
                    if let Some(p) = known.check(name, f.args.len() + 1) {
                        problems.push(at(format!("{p} (counting the value before the dot)"), *pos));
                    }
                }
            }
            _ => {}
        }
        true
    });
    problems
}

fn at(message: String, pos: rhai::Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(p)) => format!("{message} (line {l}, position {p})"),
        _ => message,
    }
}

/// Metaverse attributes read but never written, and written but never read, per metaverse
/// type: each a warning at the line of the expression, with the closest name when one is close.
pub(crate) fn attributes(rules: &[crate::CompiledRule]) -> Vec<String> {
    use crate::defs::Direction;
    use std::collections::BTreeMap;
    // (metaverse type, attribute) to where it is written or read: (rule, what, file:line).
    let mut written: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut read: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let place = |r: &crate::CompiledRule, what: &str| format!("{}:{}", r.def.file.display(), r.def.line_of(what));
    for r in rules {
        let t = r.def.metaverse_type.clone();
        match r.def.direction {
            Direction::Inbound => {
                for (attr, _) in &r.flows {
                    written.entry((t.clone(), attr.clone())).or_default().push(place(r, &format!("flow {attr}")));
                }
                for g in &r.joins {
                    for c in g {
                        read.entry((t.clone(), c.attr.clone())).or_default().push((r.name().to_string(), place(r, "join")));
                    }
                }
            }
            Direction::Outbound => {
                let mut exprs: Vec<&crate::Expr> = r.flows.iter().map(|(_, e)| e).collect();
                exprs.extend(r.deprovision_flows.iter().map(|(_, e)| e));
                exprs.extend(r.scope.iter());
                exprs.extend(r.dn.iter());
                exprs.extend(r.joins.iter().flatten().map(|c| &c.expr));
                for e in exprs {
                    let what = if e.what.starts_with("join ") { "join" } else { e.what.as_str() };
                    for a in crate::compile::attribute_names_in(&e.src, "mv") {
                        read.entry((t.clone(), a)).or_default().push((r.name().to_string(), place(r, what)));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((t, a), readers) in &read {
        if written.contains_key(&(t.clone(), a.clone())) {
            continue;
        }
        let close = written
            .keys()
            .filter(|(wt, _)| wt == t)
            .map(|(_, w)| w)
            .filter(|w| distance(&a.to_lowercase(), &w.to_lowercase()) <= 2)
            .min_by_key(|w| distance(a, w));
        let (rule, at) = &readers[0];
        out.push(format!(
            "{at}: rule {rule:?} reads {t} attribute {a}, which no inbound rule writes{}",
            close.map(|c| format!(": did you mean {c}?")).unwrap_or_default()
        ));
    }
    for ((t, a), places) in &written {
        if !read.contains_key(&(t.clone(), a.clone())) {
            out.push(format!("{}: {t} attribute {a} is written, and no outbound rule or join reads it", places[0]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_distances() {
        assert_eq!(parse_signature("lower(s: &str) -> String"), Some(("lower".into(), 1)));
        assert_eq!(parse_signature("now() -> Timestamp"), Some(("now".into(), 0)));
        assert_eq!(parse_signature("f(a: HashMap<K, V>, b: i64)"), Some(("f".into(), 2)));
        assert_eq!(distance("titlecase", "pcase"), 5);
        assert_eq!(distance("lowr", "lower"), 1);
    }
}
