//! idflow-core: what every other crate of idflow shares and nothing else. Attribute values and
//! DNs, errors, per-object errors, the [`Connector`](connector::Connector) trait family and the
//! connector [`Registry`](registry::Registry), NT hashes and their [`HashSource`](hash::HashSource),
//! and reading secrets that settings point at.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod attrs_json;
pub mod change_feed;
pub mod connector;
mod connector_config;
pub mod dn;
mod error;
pub mod fast_hash;
pub mod hash;
pub mod json_read;
mod object_error;
pub mod owner_only;
pub mod password_check;
pub mod registry;
pub mod secret;
mod value;
pub mod varint;

pub use attrs_json::attrs_to_json;
pub use connector_config::ConnectorConfig;
pub use error::{line_col, toml_error, BoxError, CompileError, Error, Result};
pub use object_error::{Category, ObjectError, Stage};
pub use value::{attrs_from_json, attrs_from_json_only, same_values, Attrs, Value};
