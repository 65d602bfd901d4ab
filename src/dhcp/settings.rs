//! The DHCP settings, resolved: `[dhcp]` from the validated config plus what the interface
//! says (its address and subnet). One [`Settings`] drives both the responder (`reply`) and the
//! configuration printed for another DHCP server (`snippet`), so they cannot disagree.

use std::net::Ipv4Addr;

use super::leases::Pool;
use super::option43::option43;
use crate::config::Config;

/// Our address on the interface that answers (option 54, siaddr) and its subnet mask
/// (option 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    /// Our address.
    pub(crate) ip: Ipv4Addr,
    /// The interface's netmask.
    pub(crate) netmask: Ipv4Addr,
}

/// Everything needed to answer PnP routers, or to tell another server how to.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The interface, when one is configured.
    pub(crate) interface: Option<String>,
    /// Our address there; `None` only for a snippet rendered without an interface.
    pub(crate) server: Option<Server>,
    /// The routers' subnet (network, mask): the interface's, else the smallest that holds the
    /// pool.
    pub(crate) subnet: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Lease time (option 51); T1 = 1/2, T2 = 7/8 (RFC 2131 §4.4.5).
    pub(crate) lease_secs: u32,
    /// Lease caching, percent of the lease time (see `Leases::bind`).
    pub(crate) cache_threshold: u8,
    /// Offers to new clients per 10 s; `None`: [`crate::dhcp::flood::Guard`]'s default.
    pub(crate) new_client_offers: Option<u32>,
    /// Offers one client gets per minute.
    pub(crate) offers_per_client: u32,
    /// Option 3.
    pub(crate) routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub(crate) dns: Vec<Ipv4Addr>,
    /// The option 43 string.
    pub(crate) option43: String,
    /// PID prefixes answered.
    pub(crate) prefixes: Vec<String>,
    /// Addresses handed out (empty: not known without an interface or `[dhcp] pool`).
    pub(crate) pool: Pool,
    /// Our UDP port (67 in production; tests use another and get answers at their source).
    pub(crate) port: u16,
}

/// The subnet's host range of `ip`/`mask`.
pub(crate) fn subnet_hosts(ip: Ipv4Addr, mask: Ipv4Addr) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let net = ipnet::Ipv4Net::with_netmask(ip, mask).ok()?;
    crate::config::parse_pool(&net.trunc().to_string())
}

/// Resolves `cfg`'s DHCP settings, with the interface's address and mask when known.
pub(crate) fn resolve(
    cfg: &Config,
    iface: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Result<Settings, String> {
    let d = &cfg.dhcp;
    let ranges =
        match (&d.pool, iface) {
            (Some(p), _) => p.clone(),
            (None, Some((ip, mask))) => vec![subnet_hosts(ip, mask).ok_or_else(|| {
                format!("subnet {ip}/{mask} has no host addresses: set [dhcp] pool")
            })?],
            (None, None) => Vec::new(),
        };
    let server = match (&d.o43_server, iface, &cfg.advertise) {
        (Some(s), _, _) => s.clone(),
        (None, Some((ip, _)), _) => ip.to_string(),
        (None, None, Some(a)) => a.host.clone(),
        (None, None, None) => {
            return Err("no PnP server address: set [dhcp.option43] server = \"<address routers reach>\" or [http] advertise, or [dhcp] interface (`serve` and `dhcp-config` also take --interface IFACE)".into());
        }
    };
    let subnet = match iface {
        Some((ip, mask)) => ipnet::Ipv4Net::with_netmask(ip, mask)
            .ok()
            .map(|n| (n.network(), n.netmask())),
        // Without an interface, the smallest subnet that holds the pool.
        None => ranges.first().and_then(|(a, b)| {
            (8..=30).rev().find_map(|len| {
                let net = ipnet::Ipv4Net::new(*a, len).ok()?.trunc();
                (net.contains(b) && net.network() != *a && net.broadcast() != *b)
                    .then(|| (net.network(), net.netmask()))
            })
        }),
    };
    Ok(Settings {
        interface: d.interface.clone(),
        server: iface.map(|(ip, netmask)| Server { ip, netmask }),
        subnet,
        lease_secs: d.lease_secs,
        cache_threshold: d.cache_threshold,
        new_client_offers: d.new_client_offers,
        offers_per_client: d.offers_per_client,
        routers: d.routers.clone(),
        dns: d.dns.clone(),
        option43: option43(
            &server,
            // K5 names the HTTPS port when this appliance has one.
            d.o43_port.unwrap_or(match (&cfg.https, d.https) {
                (Some(h), true) => h.listen.port(),
                _ => cfg.listen.port(),
            }),
            d.https,
            d.debug,
        ),
        prefixes: d.pid_prefixes.clone(),
        pool: Pool {
            ranges,
            exclude: iface.map(|(ip, _)| vec![ip]).unwrap_or_default(),
            reservations: d.reservations.clone(),
        },
        port: d.port,
    })
}
