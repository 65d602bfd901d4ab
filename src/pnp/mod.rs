//! The Cisco PnP server: XML messages, the provisioning workflow and the HTTP handlers.
//!
//! `xml` turns untrusted bytes into a tree, `message` maps it to typed PnP messages and renders
//! ours, `workflow` decides (pure), `server` is the axum shell.

pub mod message;
pub mod xml;
