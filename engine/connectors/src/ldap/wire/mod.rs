//! LDAP spoken by idflow itself, for the one operation where ldap3's generality costs most: the
//! full import's paged search. ldap3 parses each message into a tree of owned values, copies
//! the tree and frees it; an import of 100,000 entries spent most of its reading thread there.
//! Here a message is read in place from the bytes received, each value copied once, into the
//! entry idflow keeps. Everything else (deltas, DirSync, export, password checks) stays on ldap3.
pub(super) mod ber;
mod conn;
mod search;

pub(crate) use conn::open;
pub(crate) use search::Paged;

/// Why an operation on the wire failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The connection failed, ended, or the directory did not answer in time.
    Connection(String),
    /// The directory answered with a result code other than success.
    Refused { rc: i64, text: String },
    /// Something that is not LDAP as idflow reads it, or a setting it cannot use.
    Protocol(String),
}
