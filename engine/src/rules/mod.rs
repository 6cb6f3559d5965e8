//! Rules: loading, compiling once, and evaluating Rhai expressions with hard limits.
pub mod compile;
pub mod engine;
pub mod objmap;

pub use compile::{CompiledRule, Expr, RuleSet};
pub use engine::{EvalError, RuleEngine};
