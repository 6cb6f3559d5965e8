//! The Rhai engine rules run in: idflow's stdlib, explicit limits, no `eval`, imports only from
//! the rule folders, and undeclared variables rejected at compile time.
use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{Dynamic, Engine, Scope, AST};
use std::path::PathBuf;

/// A reference to a metaverse object, as rules see `mv.manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MvRef(pub i64);

/// A reference in a source object, as rules see `source.manager` (the stdlib's type).
pub use idflow_stdlib::Reference as DnRef;

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
    limits: Limits,
}

/// The limits every rule runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_operations: u64,
    /// Longest one evaluation may take, on one object.
    pub max_milliseconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_operations: 1_000_000, max_milliseconds: 100 }
    }
}

/// The largest string (bytes), array (items) and map (keys) a rule may make.
const MAX_STRING: usize = 1 << 20;
const MAX_ARRAY: usize = 5_000_000;
const MAX_MAP: usize = 100_000;

thread_local! {
    /// When the evaluation running on this thread started (the time limit's clock).
    static STARTED: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
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
            .register_fn("is_present", |_r: MvRef| true)
            .register_type_with_name::<DnRef>("Reference")
            .register_fn("to_string", |r: &mut DnRef| r.0.clone())
            .register_fn("to_debug", |r: &mut DnRef| format!("ref:{}", r.0))
            .register_fn("==", |a: DnRef, b: DnRef| idflow_core::dn::norm(&a.0) == idflow_core::dn::norm(&b.0))
            .register_fn("!=", |a: DnRef, b: DnRef| idflow_core::dn::norm(&a.0) != idflow_core::dn::norm(&b.0))
            .register_fn("is_present", |_r: DnRef| true);
        // A runaway loop is stopped by the operation limit, never hangs the run.
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(32);
        engine.set_max_expr_depths(64, 64);
        engine.set_max_string_size(MAX_STRING);
        engine.set_max_array_size(MAX_ARRAY);
        engine.set_max_map_size(MAX_MAP);
        // And a time limit: a rule that builds a large value slowly stays inside the operation
        // and size limits for a long time. Checked every 256 operations.
        let limit = std::time::Duration::from_millis(limits.max_milliseconds.max(1));
        engine.on_progress(move |ops| {
            if ops % 256 != 0 {
                return None;
            }
            let started = STARTED.with(|s| s.get())?;
            (started.elapsed() > limit).then(|| Dynamic::from("time limit"))
        });
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
        RuleEngine { engine, limits: limits.clone() }
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

    /// Evaluates a compiled expression. One that only reads an attribute present in its
    /// variable's map (`source.mail`) gives that value without running: what running it gives
    /// (a map's property is its entry), without the interpreter's cost per run.
    ///
    /// Each expression sees the scope it is given and leaves it so: a variable it declares
    /// (`let`) is gone once it has run. A rule then gives the same wherever and in whatever
    /// order its expressions are evaluated (ahead, on another core, or by the stage).
    pub fn eval_expr(&self, scope: &mut Scope, e: &crate::Expr) -> Result<Dynamic, EvalError> {
        if let Some((var, name)) = &e.read {
            let found = scope.get(var).and_then(|m| m.read_lock::<rhai::Map>().and_then(|m| m.get(name.as_str()).cloned()));
            if let Some(d) = found {
                return Ok(d);
            }
        }
        let given = scope.len();
        let r = self.eval(scope, &e.ast);
        scope.rewind(given);
        r
    }

    pub fn eval(&self, scope: &mut Scope, ast: &AST) -> Result<Dynamic, EvalError> {
        STARTED.with(|s| s.set(Some(std::time::Instant::now())));
        let r = self.engine.eval_ast_with_scope::<Dynamic>(scope, ast);
        STARTED.with(|s| s.set(None));
        r.map_err(|e| EvalError { message: self.describe(&e) })
    }

    /// What went wrong, in words; for a limit, which one.
    fn describe(&self, e: &rhai::EvalAltResult) -> String {
        use rhai::EvalAltResult as E;
        match e {
            E::ErrorTooManyOperations(_) => format!(
                "the expression ran too long (the operation limit, {} operations, was reached: a loop that never ends?)",
                self.limits.max_operations
            ),
            E::ErrorTerminated(..) => format!(
                "the expression ran too long (the time limit, {} ms on one object, was reached: a loop that never ends, or a value built up slowly?)",
                self.limits.max_milliseconds
            ),
            E::ErrorDataTooLarge(what, _) => format!(
                "the expression built too large a value ({what}: the limits are {} MiB of text, {MAX_ARRAY} array items and {MAX_MAP} map keys)",
                MAX_STRING >> 20
            ),
            E::ErrorFunctionNotFound(sig, _) if sig.contains("Reference") => format!(
                "no function {sig}: unknown name, or not for these argument types (a Reference is another object, \
                 not text: dn_text(x) gives its DN)"
            ),
            E::ErrorFunctionNotFound(sig, _) => format!("no function {sig}: unknown name, or not for these argument types"),
            E::ErrorInFunctionCall(name, _, inner, _) => format!("in {name}(): {}", self.describe(inner)),
            E::ErrorRuntime(v, _) => v.to_string(),
            other => other.to_string(),
        }
    }
}
