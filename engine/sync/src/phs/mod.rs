//! Password hash synchronization: a built-in stage after sync that reads NT hashes from the
//! source directory (through its connector's [`HashSource`](idflow_core::hash::HashSource)),
//! turns them into Entra's PPH1 form (or passes them on as NT hashes for RADIUS-style LDAP
//! consumers) and delivers only what changed.
mod fingerprint;
pub mod pph1;
pub(crate) mod stage;

pub use stage::{secret_attributes, PhsStats};
