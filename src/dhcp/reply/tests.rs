//! Table tests of the DHCP server behaviour, and property tests of the receive path.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use dhcproto::Decodable;
use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use proptest::prelude::*;

use super::*;
use crate::dhcp::leases::Pool;
use crate::dhcp::packet::tests::build;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PID: &[u8] = &[
    0, 0, 0, 9, 11, 10, b'C', b'1', b'1', b'3', b'1', b'-', b'8', b'P', b'W', b'B',
];
const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// A guard with no limit in reach: these tests are about the replies, not the limits.
fn guard() -> Guard {
    Guard::new(1 << 20, None, 6)
}

fn settings(port: u16) -> Settings {
    Settings {
        interface: None,
        server: Some(Server {
            ip: SERVER,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        }),
        subnet: None,
        lease_secs: 3600,
        cache_threshold: 25,
        new_client_offers: None,
        offers_per_client: 6,
        routers: vec![],
        dns: vec![],
        option43: "5A1D;B2;K4;I198.51.100.1;J8080".into(),
        prefixes: vec!["C11".into()],
        pool: Pool {
            ranges: vec![(
                Ipv4Addr::new(198, 51, 100, 100),
                Ipv4Addr::new(198, 51, 100, 109),
            )],
            exclude: vec![SERVER],
            reservations: HashMap::new(),
        },
        port,
    }
}

fn src() -> SocketAddr {
    "0.0.0.0:68".parse().unwrap()
}

fn pnp(msg: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut opts: Vec<(u8, &[u8])> = vec![(60, b"ciscopnp"), (124, PID), (55, &[1, 3, 6])];
    opts.extend_from_slice(extra);
    build(msg, MAC, &opts)
}

fn decode(bytes: &[u8]) -> v4::Message {
    v4::Message::decode(&mut dhcproto::Decoder::new(bytes)).unwrap()
}

fn reply_of(o: &Outcome) -> (v4::Message, SocketAddr, &'static str) {
    match o {
        Outcome::Reply {
            bytes, to, kind, ..
        } => (decode(bytes), *to, kind),
        other => panic!("no reply: {other:?}"),
    }
}

#[test]
fn reply_addr_per_branch() {
    let base = Packet::parse(&pnp(1, &[])).unwrap();
    let with = |f: &dyn Fn(&mut Packet)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    // (packet, is NAK, server port, expected)
    let cases: Vec<(Packet, bool, u16, &str)> = vec![
        (
            with(&|p| p.giaddr = Ipv4Addr::new(203, 0, 113, 1)),
            false,
            67,
            "203.0.113.1:67",
        ),
        (
            with(&|p| p.giaddr = Ipv4Addr::new(203, 0, 113, 1)),
            true,
            67,
            "203.0.113.1:67",
        ),
        (
            with(&|p| p.ciaddr = Ipv4Addr::new(198, 51, 100, 7)),
            true,
            67,
            "255.255.255.255:68",
        ),
        (
            with(&|p| p.ciaddr = Ipv4Addr::new(198, 51, 100, 7)),
            false,
            67,
            "198.51.100.7:68",
        ),
        (with(&|p| p.flags = 0x8000), false, 67, "255.255.255.255:68"),
        (base.clone(), false, 67, "255.255.255.255:68"),
        (base.clone(), false, 6767, "127.0.0.1:40000"),
    ];
    for (p, nak, port, want) in cases {
        assert_eq!(reply_addr(&p, nak, port, source).to_string(), want, "{p:?}");
    }
}

#[test]
fn discover_gets_offer_with_raw_option_43_even_unrequested() {
    let mut l = Leases::default();
    let o = handle(
        &pnp(1, &[]),
        src(),
        &settings(67),
        &mut l,
        &mut guard(),
        1000,
    );
    let (m, to, kind) = reply_of(&o);
    assert_eq!(kind, "OFFER");
    assert_eq!(to.to_string(), "255.255.255.255:68");
    assert_eq!(m.opcode(), v4::Opcode::BootReply);
    assert_eq!(m.xid(), 0x1234_5678);
    assert_eq!(m.chaddr(), &MAC);
    assert_eq!(m.yiaddr(), Ipv4Addr::new(198, 51, 100, 100));
    let o = m.opts();
    assert_eq!(
        o.get(OptionCode::MessageType),
        Some(&DhcpOption::MessageType(MessageType::Offer))
    );
    assert_eq!(
        o.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        o.get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        o.get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(o.get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(
        o.get(OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_eq!(
        o.get(OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(
            b"5A1D;B2;K4;I198.51.100.1;J8080".to_vec()
        ))
    );
    assert!(o.get(OptionCode::Router).is_none() && o.get(OptionCode::DomainNameServer).is_none());
}

#[test]
fn option_43_bytes_on_the_wire_are_plain() {
    let mut l = Leases::default();
    let Outcome::Reply { bytes, .. } =
        handle(&pnp(1, &[]), src(), &settings(67), &mut l, &mut guard(), 0)
    else {
        panic!()
    };
    let want = [&[43u8, 30][..], b"5A1D;B2;K4;I198.51.100.1;J8080"].concat();
    assert!(
        bytes.windows(want.len()).any(|w| w == want.as_slice()),
        "no plain option 43 in {bytes:02x?}"
    );
}

#[test]
fn routers_and_dns_when_configured() {
    let mut s = settings(67);
    s.routers = vec![SERVER];
    s.dns = vec![Ipv4Addr::new(198, 51, 100, 53)];
    let mut l = Leases::default();
    let (m, _, _) = reply_of(&handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 0));
    assert_eq!(
        m.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        m.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            198, 51, 100, 53
        )]))
    );
}

#[test]
fn non_pnp_clients_get_nothing() {
    let mut l = Leases::default();
    let c9300: &[u8] = &[
        0, 0, 0, 9, 9, 8, b'C', b'9', b'3', b'0', b'0', b'-', b'2', b'4',
    ];
    for pkt in [
        build(1, MAC, &[]),
        build(3, MAC, &[(50, &[198, 51, 100, 100])]),
        build(8, MAC, &[]),
    ] {
        let o = handle(&pkt, src(), &settings(67), &mut l, &mut guard(), 0);
        assert!(
            matches!(
                o,
                Outcome::Silent {
                    foreign: Some(Foreign::NotPnp),
                    ..
                }
            ),
            "{o:?}"
        );
    }
    // A PnP router with a PID we do not serve: said with its PID and the fix.
    let pkt = build(1, MAC, &[(60, b"ciscopnp"), (124, c9300)]);
    match handle(&pkt, src(), &settings(67), &mut l, &mut guard(), 0) {
        Outcome::Silent {
            foreign: Some(Foreign::OtherPid),
            reason,
            ..
        } => assert!(
            reason.contains("PID C9300-24") && reason.contains("pid-prefixes"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(l.by_ip.is_empty());
}

#[test]
fn request_states() {
    let s = settings(67);
    let offered = [198, 51, 100, 100];
    let server = SERVER.octets();
    let other = [198, 51, 100, 254];
    // (name, options, ciaddr, expected kind or None for silence)
    type Case<'a> = (&'a str, Vec<(u8, &'a [u8])>, Ipv4Addr, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "SELECTING ours",
            vec![(54, &server), (50, &offered)],
            Ipv4Addr::UNSPECIFIED,
            Some("ACK"),
        ),
        (
            "SELECTING other server",
            vec![(54, &other), (50, &offered)],
            Ipv4Addr::UNSPECIFIED,
            None,
        ),
        (
            "INIT-REBOOT in pool",
            vec![(50, &offered)],
            Ipv4Addr::UNSPECIFIED,
            Some("ACK"),
        ),
        (
            "INIT-REBOOT wrong subnet",
            vec![(50, &[203, 0, 113, 9])],
            Ipv4Addr::UNSPECIFIED,
            Some("NAK"),
        ),
        (
            "INIT-REBOOT outside pool",
            vec![(50, &[198, 51, 100, 7])],
            Ipv4Addr::UNSPECIFIED,
            Some("NAK"),
        ),
        (
            "RENEWING",
            vec![],
            Ipv4Addr::new(198, 51, 100, 100),
            Some("ACK"),
        ),
        ("no address", vec![], Ipv4Addr::UNSPECIFIED, None),
    ];
    for (name, extra, ciaddr, want) in cases {
        let mut l = Leases::default();
        handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 0);
        let mut pkt = pnp(3, &extra);
        pkt[12..16].copy_from_slice(&ciaddr.octets());
        let o = handle(&pkt, src(), &s, &mut l, &mut guard(), 1);
        match (want, &o) {
            (None, Outcome::Silent { .. }) => {}
            (Some(k), Outcome::Reply { kind, .. }) if *kind == k => {}
            _ => panic!("{name}: {o:?}"),
        }
        if name == "SELECTING other server" {
            assert!(l.by_ip.is_empty(), "offer dropped");
        }
        if name == "RENEWING" {
            let (m, to, _) = reply_of(&o);
            assert_eq!(to.to_string(), "198.51.100.100:68");
            assert_eq!(m.ciaddr(), ciaddr);
        }
        if want == Some("ACK") {
            assert!(matches!(o, Outcome::Reply { persist: true, .. }));
            assert!(
                l.bound(Ipv4Addr::new(198, 51, 100, 100), 2).is_some(),
                "{name}"
            );
        }
    }
}

#[test]
fn request_for_an_address_held_by_another_is_naked() {
    let s = settings(67);
    let mut l = Leases::default();
    l.bind(
        &s.pool,
        "hw:other",
        "other",
        Ipv4Addr::new(198, 51, 100, 100),
        3600,
        0,
        0,
    )
    .unwrap();
    // A client we have no record of: silent (RFC 2131 §4.3.2 INIT-REBOOT), nothing bound.
    let init_reboot = pnp(3, &[(50, &[198, 51, 100, 102])]);
    let o = handle(&init_reboot, src(), &s, &mut l, &mut guard(), 1);
    assert!(matches!(o, Outcome::Silent { persist: false, .. }), "{o:?}");
    assert!(l.bound(Ipv4Addr::new(198, 51, 100, 102), 2).is_none());
    // Known (offered another address), asking for one it does not hold: NAK.
    handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 1);
    let o = handle(&init_reboot, src(), &s, &mut l, &mut guard(), 1);
    assert!(l.bound(Ipv4Addr::new(198, 51, 100, 102), 2).is_none());
    assert_eq!(reply_of(&o).2, "NAK");
    let o = handle(
        &pnp(3, &[(50, &[198, 51, 100, 100])]),
        src(),
        &s,
        &mut l,
        &mut guard(),
        1,
    );
    let (m, to, kind) = reply_of(&o);
    assert_eq!(kind, "NAK");
    assert_eq!(to.to_string(), "255.255.255.255:68");
    assert!(m.opts().get(OptionCode::VendorExtensions).is_none());
}

#[test]
fn decline_release_inform() {
    let s = settings(67);
    let mut l = Leases::default();
    handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 0);
    handle(
        &pnp(3, &[(54, &SERVER.octets()), (50, &[198, 51, 100, 100])]),
        src(),
        &s,
        &mut l,
        &mut guard(),
        1,
    );
    // DECLINE: quarantined, next DISCOVER gets another address.
    let o = handle(
        &build(
            4,
            MAC,
            &[(54, &SERVER.octets()), (50, &[198, 51, 100, 100])],
        ),
        src(),
        &s,
        &mut l,
        &mut guard(),
        2,
    );
    assert!(
        matches!(
            o,
            Outcome::Silent {
                warn: true,
                persist: true,
                ..
            }
        ),
        "{o:?}"
    );
    let (m, _, _) = reply_of(&handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 3));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(198, 51, 100, 101));
    handle(
        &pnp(3, &[(54, &SERVER.octets()), (50, &[198, 51, 100, 101])]),
        src(),
        &s,
        &mut l,
        &mut guard(),
        4,
    );
    // RELEASE (no PnP options needed) frees it: from the lease holder at that address only.
    let mut rel = build(7, MAC, &[(54, &SERVER.octets())]);
    rel[12..16].copy_from_slice(&[198, 51, 100, 101]);
    let holder: SocketAddr = "198.51.100.101:68".parse().unwrap();
    let elsewhere: SocketAddr = "198.51.100.66:68".parse().unwrap();
    let mut g = guard();
    for (from, what) in [(src(), "from 0.0.0.0"), (elsewhere, "from another host")] {
        let o = handle(&rel, from, &s, &mut l, &mut g, 5);
        assert!(
            matches!(o, Outcome::Silent { persist: false, .. }),
            "{what}: {o:?}"
        );
        assert!(
            l.bound(Ipv4Addr::new(198, 51, 100, 101), 6).is_some(),
            "{what}"
        );
    }
    let mut other_mac = build(7, [2, 0, 0, 0, 0, 0x99], &[(54, &SERVER.octets())]);
    other_mac[12..16].copy_from_slice(&[198, 51, 100, 101]);
    let o = handle(&other_mac, holder, &s, &mut l, &mut g, 5);
    assert!(matches!(o, Outcome::Silent { persist: false, .. }), "{o:?}");
    assert!(l.bound(Ipv4Addr::new(198, 51, 100, 101), 6).is_some());
    let report = g.report(100, 10, (1, 0)).unwrap();
    assert!(report.contains("3 RELEASE/DECLINE ignored"), "{report}");
    let o = handle(&rel, holder, &s, &mut l, &mut guard(), 5);
    assert!(matches!(o, Outcome::Silent { persist: true, .. }), "{o:?}");
    assert!(l.bound(Ipv4Addr::new(198, 51, 100, 101), 6).is_none());
    // INFORM: ACK with option 43 and no lease, to ciaddr.
    let mut inform = pnp(8, &[]);
    inform[12..16].copy_from_slice(&[198, 51, 100, 77]);
    let (m, to, kind) = reply_of(&handle(&inform, src(), &s, &mut l, &mut guard(), 7));
    assert_eq!(kind, "ACK");
    assert_eq!(to.to_string(), "198.51.100.77:68");
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(m.opts().get(OptionCode::VendorExtensions).is_some());
}

#[test]
fn exhausted_pool_is_a_warning_not_a_reply() {
    let mut s = settings(67);
    s.pool.ranges = vec![(
        Ipv4Addr::new(198, 51, 100, 100),
        Ipv4Addr::new(198, 51, 100, 100),
    )];
    let mut l = Leases::default();
    l.bind(
        &s.pool,
        "hw:x",
        "x",
        Ipv4Addr::new(198, 51, 100, 100),
        3600,
        0,
        0,
    )
    .unwrap();
    // Silent, counted, and reported once a minute (not a WARN per DISCOVER).
    let mut g = guard();
    let o = handle(&pnp(1, &[]), src(), &s, &mut l, &mut g, 1);
    match o {
        Outcome::Silent {
            warn: false,
            reason,
            ..
        } => assert!(reason.contains("widen [dhcp] pool"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let report = g.report(10, 1, l.counts(1)).unwrap();
    assert!(report.contains("1 with the pool exhausted"), "{report}");
    assert!(report.contains("1/1 addresses leased"), "{report}");
}

#[test]
fn relayed_discover_goes_back_to_the_relay() {
    let mut pkt = pnp(1, &[]);
    pkt[24..28].copy_from_slice(&[198, 51, 100, 2]);
    let mut l = Leases::default();
    let (m, to, _) = reply_of(&handle(&pkt, src(), &settings(67), &mut l, &mut guard(), 0));
    assert_eq!(to.to_string(), "198.51.100.2:67");
    assert_eq!(m.giaddr(), Ipv4Addr::new(198, 51, 100, 2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the receive path.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut l = Leases::default();
        let _ = handle(&bytes, src(), &settings(67), &mut l, &mut guard(), 0);
    }

    /// Valid PnP packets with random bytes overwritten or cut never panic.
    #[test]
    fn mutated_packets_never_panic(
        msg in prop::sample::select(vec![1u8, 3, 4, 7, 8, 2, 0, 255]),
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 0..12),
        cut in 0usize..400,
    ) {
        let mut pkt = pnp(msg, &[(50, &[198, 51, 100, 100]), (54, &SERVER.octets()), (61, &[1, 2, 3])]);
        for (i, b) in edits {
            if let Some(x) = pkt.get_mut(i) { *x = b; }
        }
        pkt.truncate(cut.max(1));
        let mut l = Leases::default();
        let _ = handle(&pkt, src(), &settings(67), &mut l, &mut guard(), 0);
    }
}

#[test]
fn lease_caching_reacks_young_leases_without_a_write() {
    // (cache threshold %, seconds after the first ACK, expect a write, lease time sent)
    let rows = [
        (25, 10, false, 3590),
        (25, 899, false, 2701),
        (25, 900, true, 3600),
        (25, 3000, true, 3600),
        (0, 10, true, 3600),
        (50, 1799, false, 1801),
    ];
    for (pct, later, write, secs) in rows {
        let mut s = settings(67);
        s.cache_threshold = pct;
        let mut l = Leases::default();
        let request = pnp(3, &[(54, &SERVER.octets()), (50, &[198, 51, 100, 100])]);
        handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 1000);
        let first = handle(&request, src(), &s, &mut l, &mut guard(), 1000);
        assert!(matches!(first, Outcome::Reply { persist: true, .. }));
        let again = handle(&request, src(), &s, &mut l, &mut guard(), 1000 + later);
        let Outcome::Reply { persist, .. } = again else {
            panic!("{pct}% +{later}s: {again:?}")
        };
        assert_eq!(persist, write, "{pct}% +{later}s");
        let (m, _, kind) = reply_of(&again);
        assert_eq!(kind, "ACK");
        assert_eq!(
            m.opts().get(v4::OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(secs)),
            "{pct}% +{later}s"
        );
        assert_eq!(
            m.opts().get(v4::OptionCode::Renewal),
            Some(&DhcpOption::Renewal(secs / 2))
        );
        let lease = l
            .bound(Ipv4Addr::new(198, 51, 100, 100), 1000 + later)
            .unwrap();
        assert_eq!(
            lease.expires,
            1000 + later + u64::from(secs),
            "{pct}% +{later}s"
        );
    }
    // Another client asking for the same address is never served from the cache.
    let s = settings(67);
    let mut l = Leases::default();
    handle(&pnp(1, &[]), src(), &s, &mut l, &mut guard(), 1000);
    handle(
        &pnp(3, &[(54, &SERVER.octets()), (50, &[198, 51, 100, 100])]),
        src(),
        &s,
        &mut l,
        &mut guard(),
        1000,
    );
    let mut other = pnp(3, &[(54, &SERVER.octets()), (50, &[198, 51, 100, 100])]);
    other[28..34].copy_from_slice(&[0x52, 0x54, 0, 9, 9, 9]);
    let o = handle(&other, src(), &s, &mut l, &mut guard(), 1010);
    assert_eq!(reply_of(&o).2, "NAK");
}
