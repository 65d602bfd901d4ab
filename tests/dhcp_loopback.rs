//! The DHCP responder against the real binary on `lo`, in its test mode (a port other than 67,
//! answers go to the sender), so this needs no root.
//!
//! Leases across `kill -9`: many clients get addresses while the server is killed and restarted
//! at random moments; no address is ever acknowledged to two clients, and every client that was
//! acknowledged gets its own address back afterwards (no lease lost). The moments are drawn
//! from a seed, printed, and taken from `PNP_DHCP_KILL_SEED` when set, to replay a failure.
//! And every log line of an exchange names its `xid` and `mac`.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::{Bench, text};
use dhcproto::Decodable;
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};

const PID: &[u8] = &[
    0, 0, 0, 9, 11, 10, b'C', b'1', b'1', b'3', b'1', b'-', b'8', b'P', b'W', b'B',
];

fn packet(msg: u8, mac: [u8; 6], xid: u32, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[28..34].copy_from_slice(&mac);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg]);
    for (code, data) in [(60u8, &b"ciscopnp"[..]), (124, PID)]
        .iter()
        .chain(opts.iter())
    {
        b.push(*code);
        b.push(data.len() as u8);
        b.extend_from_slice(data);
    }
    b.push(255);
    b
}

/// Sends and waits for the reply with `xid`; None when the server does not answer in time.
fn exchange(sock: &UdpSocket, port: u16, pkt: &[u8], xid: u32) -> Option<Message> {
    for _ in 0..3 {
        sock.send_to(pkt, ("127.0.0.1", port)).ok()?;
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(m) = Message::decode(&mut dhcproto::Decoder::new(&buf[..n]))
                && m.xid() == xid
            {
                return Some(m);
            }
        }
    }
    None
}

fn kind(m: &Message) -> Option<MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// DORA for `mac`; the acknowledged address, if any.
fn dora(sock: &UdpSocket, port: u16, mac: [u8; 6], xid: u32) -> Option<Ipv4Addr> {
    let offer = exchange(sock, port, &packet(1, mac, xid, &[]), xid)?;
    if kind(&offer) != Some(MessageType::Offer) {
        return None;
    }
    let ip = offer.yiaddr().octets();
    let sid = [127, 0, 0, 1];
    let ack = exchange(
        sock,
        port,
        &packet(3, mac, xid + 1, &[(50, &ip), (54, &sid)]),
        xid + 1,
    )?;
    (kind(&ack) == Some(MessageType::Ack)).then(|| ack.yiaddr())
}

/// A bench whose responder listens on `lo` at a free port; returns it and the port.
fn loopback_bench() -> (Bench, u16) {
    let port = common::free_port();
    let b = Bench::new("");
    b.patch_config(
        "[dhcp]\n",
        // No new-client budget in reach: these tests are about leases across restarts, with
        // 120 clients asking one after the other.
        "[dhcp]\ninterface = \"lo\"\npool = \"127.0.0.100-127.0.0.250\"\nnew-client-offers = 1000\n",
    );
    b.patch_config("port = 67\n", &format!("port = {port}\n"));
    (b, port)
}

#[test]
fn every_line_of_an_exchange_names_its_xid_and_mac() {
    let (mut b, port) = loopback_bench();
    b.start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mac = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];
    let ip = dora(&sock, port, mac, 0x1234_5678).expect("no lease");
    assert!(ip.octets()[0] == 127);
    // Counted in /metrics.
    let (_, metrics) = common::http_get(b.port, "/metrics").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    for line in [
        "pnp_dhcp_packets_total{outcome=\"offer\"} 1",
        "pnp_dhcp_packets_total{outcome=\"ack\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let log = common::wait_for(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
        log.contains("DHCP ACK").then_some(log)
    })
    .unwrap_or_else(|| panic!("no DHCP ACK logged:\n{}", b.server_log()));
    for (kind, xid) in [("DHCP OFFER", "0x12345678"), ("DHCP ACK", "0x12345679")] {
        let line = log
            .lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("no {kind} line:\n{log}"));
        assert!(
            line.contains(&format!("dhcp{{xid={xid} mac=52:54:00:ab:cd:ef}}")),
            "{line}"
        );
    }
}

#[test]
fn no_lease_is_lost_or_handed_out_twice_across_kill_9() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = match std::env::var("PNP_DHCP_KILL_SEED") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("PNP_DHCP_KILL_SEED={v:?} is not a number")),
        Err(_) => rand::random(),
    };
    eprintln!("seed {seed} (replay with PNP_DHCP_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut b, port) = loopback_bench();
    b.start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut acked: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    let mut by_mac: HashMap<[u8; 6], Ipv4Addr> = HashMap::new();
    let mut xid = 1u32;
    let kill_at: std::collections::HashSet<u32> = (0..rng.random_range(3..7))
        .map(|_| rng.random_range(5..115))
        .collect();
    let mut kills = 0;
    for i in 0..120u32 {
        let mac = [0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8];
        if let Some(ip) = dora(&sock, port, mac, xid) {
            if let Some(other) = acked.insert(ip, mac) {
                assert_eq!(other, mac, "seed {seed}: {ip} acknowledged to two clients");
            }
            by_mac.insert(mac, ip);
        }
        xid += 2;
        if kill_at.contains(&i) {
            b.kill9();
            b.start();
            kills += 1;
        }
    }
    assert!(kills >= 1, "seed {seed}");
    b.kill9();
    b.start();
    // Every acknowledged client gets its own address back (INIT-REBOOT style REQUEST).
    for (mac, ip) in &by_mac {
        let ack = exchange(
            &sock,
            port,
            &packet(3, *mac, xid, &[(50, &ip.octets())]),
            xid,
        )
        .unwrap_or_else(|| panic!("seed {seed}: no answer for {mac:02x?}\n{}", b.server_log()));
        assert_eq!(
            kind(&ack),
            Some(MessageType::Ack),
            "seed {seed}: lease of {mac:02x?} ({ip}) lost"
        );
        assert_eq!(ack.yiaddr(), *ip);
        xid += 1;
    }
    assert!(
        by_mac.len() >= 100,
        "seed {seed}: only {} clients got addresses: {}",
        by_mac.len(),
        text(&b.run(&["status"]))
    );
}
