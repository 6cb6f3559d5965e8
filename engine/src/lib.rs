//! idflow: a hybrid-identity sync engine. Connectors in TOML, attribute flows in Rhai, every
//! change reviewable as a plan before it touches a directory.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]

pub mod cli;
pub mod config;
pub mod connector;
pub mod drsr;
pub mod error;
pub mod msrpc;
pub mod phs;
pub mod rules;
pub mod store;
pub mod sync;
pub mod value;

pub use error::{Error, Result};
