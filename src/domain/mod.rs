//! The domain: what a router is and how it is provisioned, with no I/O and no protocol syntax.
//!
//! `device` is the record and its states, `bench` what an operator reads off it (piles, step k
//! of n, reason and fix, timeline, one time convention), `identity` which host may speak for a serial, `job` the typed jobs and answers, `plan` the validated workflow settings, `ios` the
//! readers of IOS output, `workflow` the state machine that picks each job and reads each answer
//! (with the operator's actions in `workflow::action`). Everything here is pure and tested as tables; the layers above (store,
//! protocol codecs, HTTP and DHCP shells, CLI) call in, nothing here calls out.

pub(crate) mod bench;
pub mod device;
pub(crate) mod identity;
pub(crate) mod ios;
pub mod job;
pub(crate) mod plan;
pub(crate) mod sudi;
pub(crate) mod template;
pub(crate) mod workflow;
