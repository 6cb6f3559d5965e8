//! idflow-msrpc: DCE/RPC (MS-RPCE) as much as MS-DRSR needs (NDR encoding, NTLMSSP and
//! Kerberos at packet privacy, the endpoint mapper, a connection that fragments, seals and
//! checks) and the MS-DRSR client password hash sync reads Active Directory's hashes with.
//! Protocol only: no configuration, no storage.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

mod connection;
pub mod drsr;
mod epm;
mod kerberos;
mod ndr;
mod ntlm;

pub(crate) use connection::{Auth, Connection, Interface};
pub use connection::{RpcError, RpcResult};
pub use epm::map_tcp;
pub use kerberos::KerberosParams;
pub use ndr::{guid_from_text, guid_text};
pub use ntlm::Credentials;
