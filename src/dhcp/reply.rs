//! RFC 2131 server behaviour for PnP clients, as pure functions.
//!
//! Owns what we answer to a received datagram ([`handle`]) and where the answer goes
//! ([`reply_addr`]). Only classified PnP routers get OFFER/ACK/NAK/INFORM answers; RELEASE and
//! DECLINE are honoured for addresses a client holds. Replies carry options 1, 51, 54, 58, 59 and
//! 43 (plus 3 and 6 when configured); option 43 is always sent, whether or not the parameter
//! request list asks for it (`docs/dhcp.md`: the usual servers omit it otherwise).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Encodable, Encoder};

use super::classify::{Class, classify};
use super::flood::{Guard, Unanswered};
use super::leases::Leases;
use super::packet::{MsgType, Packet};
use super::settings::{Server, Settings};

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Send `bytes` to `to`.
    Reply {
        /// Encoded reply.
        bytes: Vec<u8>,
        /// Destination.
        to: SocketAddr,
        /// `OFFER`, `ACK`, `NAK`.
        kind: &'static str,
        /// Address given (0.0.0.0 for NAK / INFORM).
        yiaddr: Ipv4Addr,
        /// Router PID.
        pid: String,
        /// The lease table changed in a way that must survive a restart.
        persist: bool,
    },
    /// Nothing is sent.
    Silent {
        /// Why.
        reason: String,
        /// Worth a warning (conflicts, exhaustion) rather than a debug line.
        warn: bool,
        /// The lease table changed.
        persist: bool,
        /// The client is not one we answer (logged once per MAC).
        foreign: Option<Foreign>,
    },
}

/// Which kind of client we do not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// Not a Cisco PnP router: a debug line.
    NotPnp,
    /// A PnP router whose PID we do not serve: an INFO line, so the operator can add it.
    OtherPid,
}

/// The client state a REQUEST is sent in, told apart by RFC 2131 §4.3.2 (table 4): the server
/// identifier marks SELECTING, a requested address without `ciaddr` INIT-REBOOT, `ciaddr`
/// alone RENEWING or REBINDING (which the server answers alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// Answering our OFFER.
    Selecting,
    /// Rebooted, asking for the address it had.
    InitReboot,
    /// Extending a lease it holds.
    RenewingOrRebinding,
}

/// RFC 2131 §4.1, "the server sends the reply": relay → giaddr:67; NAK → broadcast; ciaddr set
/// → unicast ciaddr:68; otherwise broadcast (we do not inject ARP entries to unicast to
/// yiaddr). A server not on port 67 (tests) answers the packet's source.
pub(crate) fn reply_addr(
    p: &Packet,
    is_nak: bool,
    server_port: u16,
    src: SocketAddr,
) -> SocketAddr {
    const CLIENT: u16 = 68;
    if server_port != 67 {
        return src;
    }
    if !p.giaddr.is_unspecified() {
        // "If the 'giaddr' field ... is not zero, the server sends any return messages to the
        // 'DHCP server' port on the BOOTP relay agent whose address appears in 'giaddr'."
        return SocketAddr::V4(SocketAddrV4::new(p.giaddr, 67));
    }
    if is_nak {
        // "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK messages."
        return SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT));
    }
    if !p.ciaddr.is_unspecified() {
        // "If ... 'ciaddr' is nonzero, the server unicasts DHCPOFFER and DHCPACK messages to
        // the address in 'ciaddr'."
        return SocketAddr::V4(SocketAddrV4::new(p.ciaddr, CLIENT));
    }
    // Broadcast bit set, or no way to unicast to an address the client does not answer ARP for.
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT))
}

fn encode(
    p: &Packet,
    s: &Settings,
    server: Server,
    kind: MessageType,
    yiaddr: Ipv4Addr,
    lease_secs: Option<u32>,
) -> Vec<u8> {
    let hlen = usize::from(p.hlen.min(16));
    let ciaddr = if matches!(kind, MessageType::Ack) {
        p.ciaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut msg = v4::Message::new_with_id(
        p.xid,
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        p.giaddr,
        &p.chaddr[..hlen],
    );
    msg.set_opcode(v4::Opcode::BootReply)
        .set_htype(v4::HType::from(p.htype))
        .set_flags(v4::Flags::new(p.flags));
    let nak = matches!(kind, MessageType::Nak);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server.ip));
    if !nak {
        opts.insert(DhcpOption::SubnetMask(server.netmask));
        if let Some(secs) = lease_secs {
            opts.insert(DhcpOption::AddressLeaseTime(secs));
            opts.insert(DhcpOption::Renewal(secs / 2));
            opts.insert(DhcpOption::Rebinding((u64::from(secs) * 7 / 8) as u32));
        }
        if !s.routers.is_empty() {
            opts.insert(DhcpOption::Router(s.routers.clone()));
        }
        if !s.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServer(s.dns.clone()));
        }
        // The raw ASCII string as the option value: never an encapsulated sub-option.
        opts.insert(DhcpOption::VendorExtensions(s.option43.as_bytes().to_vec()));
    }
    let mut out = Vec::with_capacity(400);
    let mut enc = Encoder::new(&mut out);
    // Encoding our own well-formed message cannot fail; an empty reply is dropped by the caller.
    if msg.encode(&mut enc).is_err() {
        return Vec::new();
    }
    // Pad to the 300-byte BOOTP minimum (RFC 1542 §2.1) for old relays and clients.
    if out.len() < 300 {
        out.resize(300, 0);
    }
    out
}

fn in_subnet(server: Server, ip: Ipv4Addr) -> bool {
    let m = u32::from(server.netmask);
    u32::from(ip) & m == u32::from(server.ip) & m
}

/// Decides the answer to datagram `buf` from `src` at Unix time `now`.
pub(crate) fn handle(
    buf: &[u8],
    src: SocketAddr,
    s: &Settings,
    leases: &mut Leases,
    guard: &mut Guard,
    now: u64,
) -> Outcome {
    let Some(server) = s.server else {
        // Settings resolved without an interface are for snippets; the responder never runs
        // on them (serve binds an interface first).
        return Outcome::Silent {
            reason: "no interface address to answer from".into(),
            warn: true,
            persist: false,
            foreign: None,
        };
    };
    let silent = |reason: String, warn: bool, persist: bool| Outcome::Silent {
        reason,
        warn,
        persist,
        foreign: None,
    };
    let p = match Packet::parse(buf) {
        Ok(p) => p,
        Err(e) => {
            return silent(
                format!("unreadable DHCP packet from {src}: {e}"),
                false,
                false,
            );
        }
    };
    let mac = p.mac();
    let client = p.client_key();
    match p.msg_type {
        MsgType::Release => {
            // RFC 2131 §4.4.6: the client unicasts a RELEASE from its address, with our server
            // identifier. Honoured only from the lease holder (client id and MAC), sent from
            // the released address: a host elsewhere on the bench cannot free a router's lease.
            let from_it = match src.ip() {
                std::net::IpAddr::V4(v4) => v4 == p.ciaddr,
                std::net::IpAddr::V6(_) => false,
            };
            if p.server_id().is_some_and(|sid| sid != server.ip) {
                return silent("RELEASE for another server".into(), false, false);
            }
            if !from_it {
                guard.forged(now);
                return silent(
                    format!(
                        "RELEASE of {} sent from {}, not from that address: ignored",
                        p.ciaddr,
                        src.ip()
                    ),
                    false,
                    false,
                );
            }
            let freed = leases.release(&client, &mac, p.ciaddr);
            let why = if freed {
                "released"
            } else {
                guard.forged(now);
                "release of an address it does not hold: ignored"
            };
            return silent(format!("{} {why}", p.ciaddr), false, freed);
        }
        MsgType::Decline => {
            if p.server_id() != Some(server.ip) {
                return silent("DECLINE for another server".into(), false, false);
            }
            let Some(ip) = p.requested_ip() else {
                return silent("DECLINE without requested address".into(), false, false);
            };
            if !leases.decline(&client, &mac, ip, now) {
                guard.forged(now);
                return silent(
                    format!(
                        "DECLINE of {ip} ignored: not given to this client and MAC, or given more than {} s ago",
                        crate::dhcp::leases::DECLINE_WINDOW_SECS
                    ),
                    false,
                    false,
                );
            }
            return silent(
                format!(
                    "address conflict: {mac} declined {ip} (another host answers ARP for it); quarantined for an hour: find the host with `arping {ip}` or take it out of [dhcp] pool"
                ),
                true,
                true,
            );
        }
        _ => {}
    }
    let pid = match classify(&p, &s.prefixes) {
        Class::Pnp { pid } => pid,
        Class::Ignore(why) => {
            return Outcome::Silent {
                reason: why.to_string(),
                warn: false,
                persist: false,
                foreign: Some(Foreign::NotPnp),
            };
        }
        Class::OtherPid(pid) => {
            return Outcome::Silent {
                reason: format!(
                    "Cisco PnP router with PID {pid} is not answered: no prefix of [dhcp] pid-prefixes {:?} matches (add one to provision it)",
                    s.prefixes
                ),
                warn: false,
                persist: false,
                foreign: Some(Foreign::OtherPid),
            };
        }
    };
    let reply = |kind: MessageType, yiaddr: Ipv4Addr, lease_secs: Option<u32>, persist: bool| {
        let nak = matches!(kind, MessageType::Nak);
        Outcome::Reply {
            bytes: encode(&p, s, server, kind, yiaddr, lease_secs),
            to: reply_addr(&p, nak, s.port, src),
            kind: match kind {
                MessageType::Offer => "OFFER",
                MessageType::Nak => "NAK",
                _ => "ACK",
            },
            yiaddr,
            pid: pid.clone(),
            persist,
        }
    };
    let secs = u64::from(s.lease_secs);
    match p.msg_type {
        MsgType::Discover => {
            if let Err(why) = guard.may_offer(&client, leases.knows(&client), now) {
                return silent(
                    format!("no OFFER for {pid}: {why:?} (counted, reported once a minute)"),
                    false,
                    false,
                );
            }
            match leases.offer(&s.pool, &client, &mac, p.requested_ip(), now) {
                Ok(ip) => reply(MessageType::Offer, ip, Some(s.lease_secs), false),
                Err(e) => {
                    guard.unanswered(&client, Unanswered::Exhausted, now);
                    silent(format!("no OFFER for {pid}: {e}"), false, false)
                }
            }
        }
        MsgType::Request => {
            // RFC 2131 §4.3.2: SELECTING (server-id), INIT-REBOOT (requested-ip, no ciaddr),
            // RENEWING / REBINDING (ciaddr).
            let (ip, state) = match (p.server_id(), p.requested_ip(), p.ciaddr) {
                (Some(sid), _, _) if sid != server.ip => {
                    leases.drop_offer(&client);
                    return silent(format!("client chose server {sid}"), false, false);
                }
                (Some(_), Some(ip), _) => (ip, ClientState::Selecting),
                (Some(_), None, c) if !c.is_unspecified() => (c, ClientState::Selecting),
                (None, Some(ip), c) if c.is_unspecified() => (ip, ClientState::InitReboot),
                (None, _, c) if !c.is_unspecified() => (c, ClientState::RenewingOrRebinding),
                _ => return silent("REQUEST without address".into(), false, false),
            };
            if state != ClientState::Selecting
                && p.giaddr.is_unspecified()
                && !in_subnet(server, ip)
            {
                // "the client is on the wrong network": NAK (§4.3.2 INIT-REBOOT).
                return reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED, None, false);
            }
            if state == ClientState::InitReboot && !leases.has_record(&client, ip) {
                // §4.3.2 INIT-REBOOT: "If the DHCP server has no record of this client, then it
                // MUST remain silent"; one we know, asking for an address it was not given,
                // gets a NAK. Binding here let any host take addresses for a lease time
                // without an offer.
                if leases.knows(&client) {
                    return reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED, None, false);
                }
                return silent(
                    format!("INIT-REBOOT REQUEST for {ip} from a client with no lease here"),
                    false,
                    false,
                );
            }
            let cache = secs * u64::from(s.cache_threshold) / 100;
            match leases.bind(&s.pool, &client, &mac, ip, secs, cache, now) {
                Ok(b) => {
                    leases.set_pid(ip, &pid);
                    let left = u32::try_from(b.expires.saturating_sub(now)).unwrap_or(s.lease_secs);
                    // Only a new or extended lease has to be on disk before the ACK leaves.
                    reply(MessageType::Ack, ip, Some(left), b.changed)
                }
                Err(_) => reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED, None, false),
            }
        }
        // RFC 2131 §4.3.5: ACK with configuration, no lease, to ciaddr.
        MsgType::Inform => reply(MessageType::Ack, Ipv4Addr::UNSPECIFIED, None, false),
        MsgType::Other(t) => silent(
            format!("message type {t} is not for a server"),
            false,
            false,
        ),
        MsgType::Release | MsgType::Decline => silent(String::new(), false, false),
    }
}

#[cfg(test)]
mod tests;
