//! pnp-appliance: provisions factory-fresh Cisco ISR1100 routers through Cisco Plug-and-Play.
//!
//! The library holds everything; `main.rs` only sets the allocator and calls [`cli::main`].
//! Modules form layers, each using only the ones above it in this list (no module reaches up;
//! `../shared/tools/module-cycles.py src` checks there is no cycle):
//!
//! 1. `domain`: the router record and its states, typed jobs and answers, the plan, the
//!    workflow state machine and operator actions, readers of IOS output. Pure.
//! 2. `config`: `appliance.toml` (wire layer, then validated `Config` and the domain's `Plan`).
//! 3. `store`: the one owner of device records (registry, the SQLite and PostgreSQL backends, atomic files, status CSV).
//! 4. Protocol codecs and files: `pnp` (PnP XML in and out), `dhcp` (packets, classification,
//!    leases, RFC 2131 replies, settings, snippets; its receive loop is the DHCP shell), `files`
//!    (md5s, day-0 rendering, the sendfile path, the download table).
//! 5. Shells: `http` (routes by audience), `serve` (start-up and the serving loop), `metrics`,
//!    `logging`.
//! 6. The operator's side: `ops` (commands against a server or the saved state, `check`,
//!    status and report texts), `sim` (emulated routers), `cli`.
//!
//! `sync` holds the one mutex helper everything may use.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
mod dhcp;
pub mod domain;
pub mod files;
pub mod http;
mod logging;
mod metrics;
mod ops;
pub mod pnp;
pub mod serve;
mod sim;
pub mod store;
mod sync;
