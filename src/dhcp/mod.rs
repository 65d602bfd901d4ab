//! The PnP-only DHCPv4 responder (see issue 3); not built yet.
