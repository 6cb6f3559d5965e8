//! DCE/RPC (MS-RPCE) as much as MS-DRSR needs: NDR encoding, NTLMSSP at packet privacy, the
//! endpoint mapper, and a connection that fragments, seals and checks.
pub mod connection;
pub mod epm;
pub mod kerberos;
pub mod ndr;
pub mod ntlm;

pub use connection::{Auth, Connection, Interface, RpcError, RpcResult};
