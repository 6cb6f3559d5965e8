//! The Rhai engine rules run in: idflow's stdlib, explicit limits, no `eval`, imports only from
//! the rule folders, and undeclared variables rejected at compile time.
use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{Dynamic, Engine, Scope, AST};
use std::path::PathBuf;

/// A reference to a metaverse object, as rules see `mv.manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MvRef(pub i64);

/// Why an expression failed on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub message: String,
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// Imports come from the rule folders only: absolute paths and `..` are refused, whatever the
/// file resolver underneath would find.
struct RuleFolders(ModuleResolversCollection);

impl rhai::ModuleResolver for RuleFolders {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: rhai::Position,
    ) -> Result<rhai::Shared<rhai::Module>, Box<rhai::EvalAltResult>> {
        let p = std::path::Path::new(path);
        let escapes =
            p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if escapes {
            return Err(Box::new(rhai::EvalAltResult::ErrorRuntime(
                Dynamic::from(format!("import {path:?} refused: imports come from the rule folders only (no absolute paths, no ..)")),
                pos,
            )));
        }
        self.0.resolve(engine, source, path, pos)
    }
}

pub struct RuleEngine {
    pub engine: Engine,
}

/// The limits every rule runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_operations: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_operations: 1_000_000 }
    }
}

impl RuleEngine {
    pub fn new(rule_dirs: &[PathBuf], limits: &Limits) -> Self {
        let mut engine = Engine::new();
        idflow_stdlib::register(&mut engine);
        engine
            .register_type_with_name::<MvRef>("Ref")
            .register_fn("to_string", |r: &mut MvRef| format!("ref:{}", r.0))
            .register_fn("to_debug", |r: &mut MvRef| format!("ref:{}", r.0))
            .register_fn("==", |a: MvRef, b: MvRef| a == b)
            .register_fn("!=", |a: MvRef, b: MvRef| a != b)
            .register_fn("is_present", |_r: MvRef| true);
        // A runaway loop is stopped by the operation limit, never hangs the run.
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(32);
        engine.set_max_expr_depths(64, 64);
        engine.set_max_string_size(1 << 20);
        engine.set_max_array_size(5_000_000);
        engine.set_max_map_size(100_000);
        engine.set_max_variables(1_000);
        engine.set_max_functions(1_000);
        engine.set_max_modules(64);
        engine.set_strict_variables(true);
        engine.disable_symbol("eval");
        engine.on_print(|s| tracing::debug!(target: "idflow::rules", "{s}"));
        engine.on_debug(|s, _, pos| tracing::debug!(target: "idflow::rules", "{pos:?}: {s}"));
        let mut resolvers = ModuleResolversCollection::new();
        for d in rule_dirs {
            let mut r = FileModuleResolver::new_with_path(d);
            r.enable_cache(true);
            resolvers.push(r);
        }
        engine.set_module_resolver(RuleFolders(resolvers));
        RuleEngine { engine }
    }

    /// Compiles one expression with `vars` declared. They are declared as plain variables: a
    /// constant would be folded into the expression by the optimizer.
    pub fn compile(&self, vars: &[&str], src: &str) -> Result<AST, String> {
        let mut scope = Scope::new();
        for v in vars {
            scope.push(*v, Dynamic::UNIT);
        }
        self.engine.compile_with_scope(&scope, src).map_err(|e| {
            let pos = e.position();
            match (pos.line(), pos.position()) {
                (Some(l), Some(p)) => format!("{} (line {l}, position {p})", e.err_type()),
                _ => e.err_type().to_string(),
            }
        })
    }

    pub fn eval(&self, scope: &mut Scope, ast: &AST) -> Result<Dynamic, EvalError> {
        self.engine.eval_ast_with_scope::<Dynamic>(scope, ast).map_err(|e| EvalError { message: describe(&e) })
    }
}

fn describe(e: &rhai::EvalAltResult) -> String {
    use rhai::EvalAltResult as E;
    match e {
        E::ErrorTooManyOperations(_) => "the expression ran too long (operation limit reached: a loop that never ends?)".into(),
        E::ErrorFunctionNotFound(sig, _) => format!("no function {sig}: unknown name, or not for these argument types"),
        E::ErrorInFunctionCall(name, _, inner, _) => format!("in {name}(): {}", describe(inner)),
        E::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string(),
    }
}
