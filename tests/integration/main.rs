//! idflow's integration tests: one binary (each file in tests/ would link on its own), one
//! module per area. They run the real `idflow` binary on real files in temporary folders.
mod architecture;
mod bad_input;
mod cli;
mod common;
mod drsr;
mod health;
mod ldif;
mod lifecycle;
mod migration;
mod openldap;
mod pausing_proxy;
mod phs;
mod plan;
mod pta;
mod pta_relay;
mod quickstart;
mod rule_sets;
mod safety;
mod samba_ad;
mod scim;
mod service;
mod slapd;
mod webhook;
