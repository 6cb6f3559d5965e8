//! idflow-msrpc: DCE/RPC (MS-RPCE) as much as MS-DRSR needs (NDR encoding, NTLMSSP and
//! Kerberos at packet privacy, the endpoint mapper, a connection that fragments, seals and
//! checks) and the MS-DRSR client password hash sync reads Active Directory's hashes with.
//! Protocol only: no configuration, no storage.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]

pub mod connection;
pub mod drsr;
pub mod epm;
pub mod kerberos;
pub mod ndr;
pub mod ntlm;

pub use connection::{Auth, Connection, Interface, RpcError, RpcResult};
