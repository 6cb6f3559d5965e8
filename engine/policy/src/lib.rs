//! idflow-policy: the policy compiler. Rule definitions as written in rule files ([`defs`]),
//! compiled once per run into a [`RuleSet`] of Rhai expressions, evaluated in a hardened
//! [`RuleEngine`] (idflow's stdlib, explicit limits, no `eval`, imports only from the rule
//! folders), with objects as rules see them (`source`, `mv`) and results back as values.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod compile;
pub mod defs;
mod engine;
mod lint;
mod modules;
mod objmap;
mod reads;

pub use compile::{CompiledRule, ConnectorFacts, Expr, JoinCond, RuleSet};
pub use engine::{DnRef, EvalError, Limits, MvRef, RuleEngine};
pub use lint::distance;
pub use objmap::{object_map, source_map, to_flow_values, to_values, truthy};
