//! A lean DHCPv4 load generator for `bench/dhcp.sh`, next to perfdhcp: on 2 shared cores
//! perfdhcp needs more CPU than the servers it measures and drops answers in its own socket
//! above ~8 000 DORA/s, so it cannot tell whether a server is lossless at 12 000.
//!
//! Like perfdhcp `-l <addr> -R <clients>` it acts as a relay agent (RFC 2131 §4.1: replies go
//! to giaddr, server port 67): DISCOVERs leave at the requested rate, spread over each
//! millisecond; each OFFER is answered at once with a REQUEST for the offered address (options
//! 50 and 54, RFC 2131 §3.1 step 3); an ACK completes the exchange. Every packet carries the
//! options of an ISR1k (60 `ciscopnp`, 124 `C1131-8PWB`, the bytes perfdhcp's `-o` sends).
//! An exchange not completed within `--drop-after` of its DISCOVER is lost. One thread,
//! one socket with a 4 MiB receive buffer, one syscall per packet.
//!
//! Prints one line: `rate R/s: C DORA/s completed, L of S exchanges lost (P %), p50/p99 ms`.

use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The server's address (port 67).
    #[arg(long)]
    server: Ipv4Addr,
    /// Our address: bound on port 67 and sent as giaddr.
    #[arg(long)]
    local: Ipv4Addr,
    /// DISCOVERs per second.
    #[arg(long)]
    rate: u32,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    period: u32,
    /// Distinct client hardware addresses, used in turn.
    #[arg(long, default_value_t = 200)]
    clients: u32,
    /// An exchange not completed this long after its DISCOVER is lost (ms).
    #[arg(long, default_value_t = 1000)]
    drop_after: u64,
}

/// DHCP message types (RFC 2132 §9.6).
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;

/// Option 124 as perfdhcp's `-o 124,000000090b0a43313133312d38505742` sends it: enterprise 9,
/// data length 11, sub-option length 10, "C1131-8PWB" (RFC 3925 §4).
const OPT124: &[u8] = b"\x00\x00\x00\x09\x0b\x0a\x43\x31\x31\x33\x31\x2d\x38\x50\x57\x42";

/// Where one exchange stands.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Discovered,
    Requested,
    Done,
}

/// A client request (RFC 2131 §2, fig. 1), relayed by `giaddr`.
fn request(
    kind: u8,
    xid: u32,
    client: u32,
    giaddr: Ipv4Addr,
    offer: Option<([u8; 4], [u8; 4])>,
) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[3] = 1; // hops: one relay
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[24..28].copy_from_slice(&giaddr.octets());
    p[28..34].copy_from_slice(&[
        0x02,
        0x00,
        0x5e,
        (client >> 16) as u8,
        (client >> 8) as u8,
        client as u8,
    ]);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]); // magic cookie, RFC 2131 §3
    p.extend_from_slice(&[53, 1, kind]);
    p.extend_from_slice(&[60, 8]);
    p.extend_from_slice(b"ciscopnp");
    p.extend_from_slice(&[124, OPT124.len() as u8]);
    p.extend_from_slice(OPT124);
    if let Some((yiaddr, server_id)) = offer {
        p.extend_from_slice(&[50, 4]);
        p.extend_from_slice(&yiaddr);
        p.extend_from_slice(&[54, 4]);
        p.extend_from_slice(&server_id);
    }
    p.push(255);
    p
}

/// The reply's xid, message type, yiaddr and server identifier, if it is a well-formed
/// BOOTREPLY; anything else is ignored (and counted by the caller).
fn parse_reply(p: &[u8]) -> Option<(u32, u8, [u8; 4], [u8; 4])> {
    if p.len() < 240 || p[0] != 2 || p[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let xid = u32::from_be_bytes(p.get(4..8)?.try_into().ok()?);
    let yiaddr: [u8; 4] = p.get(16..20)?.try_into().ok()?;
    let (mut kind, mut server_id) = (None, None);
    let mut i = 240;
    while i < p.len() {
        match p[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = *p.get(i + 1)? as usize;
                let data = p.get(i + 2..i + 2 + len)?;
                match code {
                    53 if len == 1 => kind = Some(data[0]),
                    54 if len == 4 => server_id = data.try_into().ok(),
                    _ => {}
                }
                i += 2 + len;
            }
        }
    }
    Some((xid, kind?, yiaddr, server_id?))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket
        .bind(&SocketAddrV4::new(a.local, 67).into())
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot bind {}:67 ({e}): run as root, inside the client namespace",
                a.local
            )
        })?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_micros(500)))?;
    let server = SocketAddrV4::new(a.server, 67);
    let total = (u64::from(a.rate) * u64::from(a.period)) as usize;
    // The xid is the exchange's index, offset so that stray replies do not match.
    let base: u32 = 0x5000_0000;
    let mut stage: Vec<Stage> = Vec::with_capacity(total);
    let mut started: Vec<Instant> = Vec::with_capacity(total);
    let mut latencies: Vec<f64> = Vec::with_capacity(total);
    let (mut late, mut stray) = (0u64, 0u64);
    let drop_after = Duration::from_millis(a.drop_after);
    let mut buf = [0u8; 1500];
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(u64::from(a.period)) + drop_after;
    // How many DISCOVERs should have left by now.
    let due = || ((t0.elapsed().as_secs_f64() * f64::from(a.rate)) as usize).min(total);
    while Instant::now() < end {
        let due_now = due();
        while stage.len() < due_now {
            let n = stage.len() as u32;
            let p = request(DISCOVER, base + n, n % a.clients, a.local, None);
            socket.send_to(&p, server)?;
            stage.push(Stage::Discovered);
            started.push(Instant::now());
        }
        loop {
            let len = match socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some((xid, kind, yiaddr, server_id)) = parse_reply(&buf[..len]) else {
                stray += 1;
                continue;
            };
            let i = xid.wrapping_sub(base) as usize;
            let Some(at) = started.get(i).copied() else {
                stray += 1;
                continue;
            };
            if at.elapsed() > drop_after {
                late += 1;
                continue;
            }
            match (stage[i], kind) {
                (Stage::Discovered, OFFER) => {
                    let p = request(
                        REQUEST,
                        xid,
                        i as u32 % a.clients,
                        a.local,
                        Some((yiaddr, server_id)),
                    );
                    socket.send_to(&p, server)?;
                    stage[i] = Stage::Requested;
                }
                (Stage::Requested, ACK) => {
                    stage[i] = Stage::Done;
                    latencies.push(at.elapsed().as_secs_f64() * 1000.0);
                }
                _ => stray += 1,
            }
            if stage.len() < due() {
                break; // DISCOVERs are due: send them before reading on
            }
        }
    }
    let completed = latencies.len();
    let lost = stage.len() - completed;
    latencies.sort_by(f64::total_cmp);
    println!(
        "rate {}/s: {:.0} DORA/s completed, {} of {} exchanges lost ({:.2} %), latency p50 {:.2} ms p99 {:.2} ms; {} late, {} stray replies",
        a.rate,
        completed as f64 / f64::from(a.period),
        lost,
        stage.len(),
        100.0 * lost as f64 / stage.len().max(1) as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        late,
        stray,
    );
    Ok(())
}
