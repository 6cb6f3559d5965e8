//! Password hash synchronization: a built-in stage after sync that reads NT hashes from the
//! source directory, turns them into Entra's PPH1 form (or passes them on as NT hashes for
//! RADIUS-style LDAP consumers) and delivers only what changed.
pub mod drsr_source;
pub mod fingerprint;
pub mod pph1;
pub mod source;
pub mod stage;
