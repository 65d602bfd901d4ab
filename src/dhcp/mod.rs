//! The PnP-only DHCPv4 responder.
//!
//! `packet` reads datagrams without trusting them, `classify` decides who is a PnP router,
//! `leases` holds the pool and lease table, `reply` applies RFC 2131 (all pure); `option43` and
//! `snippet` format option 43 and configs for other DHCP servers; this module is the thin async
//! shell: socket, receive loop, persistence.

pub mod classify;
pub mod leases;
pub mod option43;
pub mod packet;
pub mod reply;
