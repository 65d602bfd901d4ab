//! The DHCP socket: UDP on port 67, bound to one interface, broadcast allowed.
//!
//! Owns socket set-up with socket2 (`SO_BINDTODEVICE`, `SO_BROADCAST`, `SO_REUSEADDR`, `SO_RCVBUF`) and the
//! errors that tell the operator how to get the privilege it needs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};

fn privilege_hint(what: &str, e: &std::io::Error) -> String {
    format!(
        "{what}: {e}\n  hint: DHCP needs root or the capabilities to bind port 67 and an interface: run with sudo, or `sudo setcap cap_net_bind_service,cap_net_raw+ep $(which pnp-appliance)`"
    )
}

/// Receive buffer asked for (bytes).
pub(crate) const RECV_BUFFER: usize = 4 << 20;

/// Binds `0.0.0.0:port` on `interface`.
pub(crate) fn bind(interface: &str, port: u16) -> Result<std::net::UdpSocket, String> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("cannot create a UDP socket: {e}"))?;
    s.set_reuse_address(true)
        .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    s.set_broadcast(true)
        .map_err(|e| format!("SO_BROADCAST: {e}"))?;
    s.bind_device(Some(interface.as_bytes())).map_err(|e| {
        if e.raw_os_error() == Some(19) {
            format!(
                "interface {interface} does not exist: check [dhcp] interface or --interface (`ip -br link` lists them)"
            )
        } else {
            privilege_hint(&format!("cannot bind to interface {interface}"), &e)
        }
    })?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    s.bind(&addr.into()).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "UDP port {port} on {interface} is in use: another DHCP server runs here (`ss -lunp 'sport = :{port}'` shows it); stop it or leave [dhcp] interface unset"
        ),
        _ => privilege_hint(&format!("cannot bind UDP port {port}"), &e),
    })?;
    // Room for a burst (a rack of routers powered on together, or a load test) while the
    // responder is not scheduled: the default (~200 KB, ~150 datagrams) overflows first. The
    // kernel caps it at net.core.rmem_max; a smaller buffer is no reason to refuse to start.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.set_nonblocking(true)
        .map_err(|e| format!("non-blocking socket: {e}"))?;
    Ok(s.into())
}
