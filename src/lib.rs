//! pnp-appliance: provisions factory-fresh Cisco ISR1100 routers through Cisco Plug-and-Play.
//!
//! The library holds everything; `main.rs` only parses the command line. Modules: `config`
//! (appliance.toml), `device` (the record), `state` (the registry that owns records), `pnp`
//! (protocol and workflow), `files` (file serving, checksums), `metrics` (server-side latency), `serve` (start-up), `ops`
//! (operator commands), `simulate` (emulated routers), `logging`, `cli`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod dhcp;
pub mod domain;
pub mod files;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod pnp;
pub mod serve;
pub mod sim;
pub mod store;
