//! idflow-engine: the sync engine. Run profiles and the pipeline of a cycle: import (connector
//! to connector space), inbound sync (scope, join/project, flows, precedence into the
//! metaverse), outbound sync (scope, provision/deprovision, flows into pending exports), plan
//! (what export would do), export (with the deletion threshold), and password hash sync.
//!
//! Inbound and outbound sync touch no connector: given connector-space objects, the metaverse
//! and compiled rules, they compute metaverse changes and pending exports. `plan`, `preview`
//! and `idflow test` run exactly this code inside a transaction they roll back.
//!
//! The engine knows connectors through the registry of idflow-core, the metaverse through the
//! transactions of idflow-store, and whoever runs it through an [`Observer`].
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod ahead;
mod collisions;
mod config;
mod ctx;
mod cycle;
mod diff;
mod early;
mod engine;
mod error_report;
mod export;
mod export_ahead;
#[cfg(test)]
mod export_held_tests;
mod harness;
mod health_section;
mod idents;
mod import;
mod import_names;
mod inbound;
mod join;
mod memory;
mod observer;
mod outbound;
pub mod phs;
mod plan;
mod plan_ahead;
mod plan_changes;
mod plan_codec;
mod precedence;
mod preview;
mod pta_section;
mod ready;
mod references;
mod saved_plan;
mod service_section;
#[cfg(test)]
mod tests;
mod text_key;

pub use collisions::Collision;
pub use config::{Config, PhsFormat, PhsSection, PhsTarget};
pub use ctx::{Facts, SyncStats, TraceLine};
pub use cycle::CycleRequest;
pub use engine::{Engine, RunReport};
pub use error_report::{error_csv, error_report, CurrentError, ErrorFilter, ErrorReport, ErrorScope};
pub use export::ExportStats;
pub use harness::{test_rules, CaseResult};
pub use health_section::HealthSection;
pub use import::{ImportStats, Mode};
pub use memory::{MemoryConnector, MemorySource};
pub use observer::{Observer, Silent, Step};
pub use plan::{Changes, ConnectorPlan, Identity, Plan, PlanAttr, PlanChange, PlanValue, Totals};
pub use preview::{preview, AttrView, Contender, Preview};
pub use pta_section::{password_check, PtaSection, RadiusClient};
pub use saved_plan::SavedPlan;
pub use service_section::{LogFormat, ServiceSection};
