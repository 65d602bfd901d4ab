//! Ready-to-paste DHCP configuration for sites that keep their own DHCP server.
//!
//! Owns the text for ISC dhcpd, Kea, dnsmasq and Cisco IOS, each producing option 43 as the
//! plain string on the wire (`docs/dhcp.md`, "Server configs that produce the right bytes"):
//! ISC `vendor-encapsulated-options` (not `vendor-option-space`), Kea with a class-level
//! `option-def` of code 43 as a string plus `always-send`, dnsmasq `dhcp-option-force`. Every
//! format is checked by its real server in the tests.

use std::net::Ipv4Addr;

use super::settings::Settings;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// ISC dhcpd (`dhcpd.conf`).
    Isc,
    /// Kea DHCPv4 (JSON).
    Kea,
    /// dnsmasq.
    Dnsmasq,
    /// Cisco IOS DHCP server.
    Ios,
}

/// What a snippet is made of, read from the settings: the routers' address range, without
/// our own address at either end (the responder excludes it; a pasted range must not hold it).
struct Input<'a> {
    s: &'a Settings,
    range: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl<'a> Input<'a> {
    fn of(s: &'a Settings) -> Input<'a> {
        let range = s.pool.ranges.first().map(|&(a, b)| {
            let mine = |ip: Ipv4Addr| s.pool.exclude.contains(&ip);
            let a = if mine(a) && a < b {
                Ipv4Addr::from(u32::from(a) + 1)
            } else {
                a
            };
            let b = if mine(b) && a < b {
                Ipv4Addr::from(u32::from(b) - 1)
            } else {
                b
            };
            (a, b)
        });
        Input { s, range }
    }
}

impl std::ops::Deref for Input<'_> {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        self.s
    }
}

fn join(ips: &[Ipv4Addr], sep: &str) -> String {
    ips.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

fn prefix_len(ip: Ipv4Addr) -> u32 {
    u32::from(ip).count_ones()
}

/// Renders the settings in `format`.
pub(crate) fn render(format: Format, settings: &Settings) -> String {
    let i = &Input::of(settings);
    match format {
        Format::Isc => isc(i),
        Format::Kea => kea(i),
        Format::Dnsmasq => dnsmasq(i),
        Format::Ios => ios(i),
    }
}

fn isc(i: &Input) -> String {
    let matches: Vec<String> = i
        .prefixes
        .iter()
        .map(|p| format!("substring(option cisco-pnp-pid, 6, {}) = \"{p}\"", p.len()))
        .collect();
    let mut s = format!(
        "# Cisco PnP for routers whose PID starts with {prefixes} (pnp-appliance dhcp-config).\n\
         # Where to paste: dhcpd.conf, then `dhcpd -t -cf /etc/dhcp/dhcpd.conf` checks it. If it\n\
         # already declares the routers' subnet, put only the pool {{ }} into that declaration.\n\
         # The class and its pool serve only ciscopnp clients with these PIDs: other clients\n\
         # are served as before.\n\
         # Option 124 is read as raw bytes: the PID starts at byte 6 (RFC 3925 layout).\n\
         option cisco-pnp-pid code 124 = string;\n\n\
         class \"cisco-pnp\" {{\n  match if option vendor-class-identifier = \"ciscopnp\"\n       and ({m});\n  \
         # Option 43 as the plain string; the vendor-option-space recipe would wrap it in a sub-option.\n  \
         option vendor-encapsulated-options \"{o43}\";\n  \
         # Send 43 even when the router's parameter request list does not ask for it.\n  \
         if exists dhcp-parameter-request-list {{\n    \
         option dhcp-parameter-request-list = concat(option dhcp-parameter-request-list, 2b);\n  }}\n}}\n",
        prefixes = i.prefixes.join(", "),
        m = matches.join("\n         or "),
        o43 = i.option43
    );
    match (i.subnet, i.range) {
        (Some((net, mask)), range) => {
            s.push_str(&format!("\nsubnet {net} netmask {mask} {{\n"));
            if !i.routers.is_empty() {
                s.push_str(&format!("  option routers {};\n", join(&i.routers, ", ")));
            }
            if !i.dns.is_empty() {
                s.push_str(&format!("  option domain-name-servers {};\n", join(&i.dns, ", ")));
            }
            s.push_str(&format!(
                "  default-lease-time {0};\n  max-lease-time {0};\n",
                i.lease_secs
            ));
            match range {
                Some((a, b)) => s.push_str(&format!(
                    "  pool {{\n    allow members of \"cisco-pnp\";\n    range {a} {b};\n  }}\n"
                )),
                None => s.push_str("  # pool { allow members of \"cisco-pnp\"; range FIRST LAST; }\n"),
            }
            s.push_str("}\n");
        }
        (None, _) => s.push_str(
            "\n# In the routers' subnet declaration:\n#   pool { allow members of \"cisco-pnp\"; range FIRST LAST; }\n",
        ),
    }
    s
}

/// Kea's stand-ins for what is not known here: `kea-dhcp4 -t` names each one it meets (an
/// interface that "doesn't exist", an address it "failed to convert", a pool it "failed to
/// parse"), so a snippet cannot be loaded with one left in.
const KEA_IFACE: &str = "REPLACE-ME-interface-facing-the-routers";
const KEA_SUBNET: &str = "REPLACE-ME-routers-subnet/24";
const KEA_POOL: &str = "REPLACE-ME-first-address - REPLACE-ME-last-address";

fn kea(i: &Input) -> String {
    let test = i
        .prefixes
        .iter()
        .map(|p| format!("substring(option[124].hex, 6, {}) == '{p}'", p.len()))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut subnet = serde_json::Map::new();
    let net = match i.subnet {
        Some((net, mask)) => format!("{net}/{}", prefix_len(mask)),
        None => KEA_SUBNET.into(),
    };
    subnet.insert("subnet".into(), net.into());
    subnet.insert("id".into(), 1.into());
    let pool = match i.range {
        Some((a, b)) => format!("{a} - {b}"),
        None => KEA_POOL.into(),
    };
    // The pool serves the class only: other clients of the subnet never get these addresses.
    subnet.insert(
        "pools".into(),
        serde_json::json!([{ "pool": pool, "client-class": "cisco-pnp" }]),
    );
    let mut data = Vec::new();
    if !i.routers.is_empty() {
        data.push(serde_json::json!({ "name": "routers", "data": join(&i.routers, ", ") }));
    }
    if !i.dns.is_empty() {
        data.push(serde_json::json!({ "name": "domain-name-servers", "data": join(&i.dns, ", ") }));
    }
    if !data.is_empty() {
        subnet.insert("option-data".into(), data.into());
    }
    let iface = i.interface.clone().unwrap_or_else(|| KEA_IFACE.into());
    subnet.insert("interface".into(), iface.clone().into());
    let doc = serde_json::json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": [ iface ] },
            "lease-database": { "type": "memfile" },
            "valid-lifetime": i.lease_secs,
            "client-classes": [{
                "name": "cisco-pnp",
                "test": format!("option[60].text == 'ciscopnp' and ({test})"),
                "option-def": [{ "name": "vendor-encapsulated-options", "code": 43, "type": "string" }],
                "option-data": [{ "name": "vendor-encapsulated-options", "data": i.option43, "always-send": true }]
            }],
            "subnet4": [subnet]
        }
    });
    let body = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let mut head = format!(
        "// Cisco PnP for routers whose PID starts with {} (pnp-appliance dhcp-config).\n\
         // Kea DHCPv4. Where to paste, into your kea-dhcp4.conf's \"Dhcp4\":\n\
         //   - the \"cisco-pnp\" entry of \"client-classes\" (add the list if there is none);\n\
         //   - its pool into the \"pools\" of the routers' subnet in \"subnet4\" (or the whole\n\
         //     subnet entry if Kea does not serve that subnet yet; give it an unused \"id\").\n\
         // The pool serves only the class: other clients are served as before. Option 43 is\n\
         // redefined as a string in the class so it goes out as the plain text, always.\n\
         // Alone, this is a whole configuration: `kea-dhcp4 -t FILE` checks it.\n",
        i.prefixes.join(", ")
    );
    if body.contains("REPLACE-ME") {
        head.push_str(
            "// REPLACE-ME values are not known here (give --interface, or [dhcp] interface and\n\
             // pool): `kea-dhcp4 -t` names each one left.\n",
        );
    }
    format!("{head}{body}\n")
}

fn hex_colon(s: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn dnsmasq(i: &Input) -> String {
    let mut s = format!(
        "# Cisco PnP for routers whose PID starts with {} (pnp-appliance dhcp-config).\n\
         # dnsmasq. Where to paste: a new file in /etc/dnsmasq.d/ (or the end of dnsmasq.conf);\n\
         # `dnsmasq --test --conf-file=FILE` checks it. It adds a range and option 43 for PnP\n\
         # routers only (no dhcp-ignore): every other client is served as before.\n",
        i.prefixes.join(", ")
    );
    // An `interface=` line would narrow a shared dnsmasq to that one interface.
    if let Some(ifc) = &i.interface {
        s.push_str(&format!(
            "# dnsmasq must listen on {ifc}: if dnsmasq.conf has interface= lines, one must name it.\n"
        ));
    }
    s.push_str("dhcp-vendorclass=set:pnp,ciscopnp\n");
    for p in &i.prefixes {
        // Option 124: enterprise 9, data-len and item-len (any), then the PID prefix.
        s.push_str(&format!(
            "dhcp-match=set:pidok,124,00:00:00:09:*:*:{}\n",
            hex_colon(p)
        ));
    }
    // A range for the tagged clients only (dnsmasq(8), --dhcp-range tag:<tag>).
    match (i.range, i.subnet) {
        (Some((a, b)), Some((_, mask))) => s.push_str(&format!(
            "dhcp-range=tag:pnp,tag:pidok,{a},{b},{mask},{}\n",
            i.lease_secs
        )),
        (Some((a, b)), None) => s.push_str(&format!(
            "dhcp-range=tag:pnp,tag:pidok,{a},{b},{}\n",
            i.lease_secs
        )),
        (None, _) => s.push_str(&format!(
            "# No range known here (set [dhcp] pool): routers take one of your ranges, or add\n\
             # dhcp-range=tag:pnp,tag:pidok,FIRST,LAST,MASK,{}\n",
            i.lease_secs
        )),
    }
    s.push_str(&format!(
        "dhcp-option-force=tag:pnp,tag:pidok,43,\"{}\"\n",
        i.option43
    ));
    if !i.routers.is_empty() {
        s.push_str(&format!(
            "dhcp-option=tag:pnp,tag:pidok,3,{}\n",
            join(&i.routers, ",")
        ));
    }
    if !i.dns.is_empty() {
        s.push_str(&format!(
            "dhcp-option=tag:pnp,tag:pidok,6,{}\n",
            join(&i.dns, ",")
        ));
    }
    s
}

fn ios(i: &Input) -> String {
    let mut s = String::from(
        "! Cisco PnP (pnp-appliance dhcp-config) for a Cisco IOS DHCP server.\n\
         ! Where to paste: configure terminal on the router or switch serving the staging VLAN.\n\
         ! IOS cannot match option 124: every client of this pool gets option 43, so give the\n\
         ! pool the staging VLAN only.\n",
    );
    for e in &i.pool.exclude {
        s.push_str(&format!("ip dhcp excluded-address {e}\n"));
    }
    s.push_str("ip dhcp pool PNP-ISR1K\n");
    match i.subnet {
        Some((net, mask)) => s.push_str(&format!(" network {net} {mask}\n")),
        None => s.push_str(" ! network <subnet> <mask>\n"),
    }
    if !i.routers.is_empty() {
        s.push_str(&format!(" default-router {}\n", join(&i.routers, " ")));
    }
    if !i.dns.is_empty() {
        s.push_str(&format!(" dns-server {}\n", join(&i.dns, " ")));
    }
    let l = i.lease_secs;
    s.push_str(&format!(
        " lease {} {} {}\n option 43 ascii \"{}\"\n",
        l / 86400,
        (l % 86400) / 3600,
        (l % 3600) / 60,
        i.option43
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Settings {
        Settings {
            interface: Some("eth1".into()),
            server: Some(crate::dhcp::settings::Server {
                ip: "198.51.100.1".parse().unwrap(),
                netmask: "255.255.255.0".parse().unwrap(),
            }),
            subnet: Some((
                "198.51.100.0".parse().unwrap(),
                "255.255.255.0".parse().unwrap(),
            )),
            lease_secs: 3600,
            cache_threshold: 25,
            new_client_offers: None,
            offers_per_client: 6,
            routers: vec!["198.51.100.1".parse().unwrap()],
            dns: vec![],
            option43: "5A1D;B2;K4;I198.51.100.1;J8080".into(),
            prefixes: vec!["C11".into(), "C1161".into()],
            pool: crate::dhcp::leases::Pool {
                ranges: vec![(
                    "198.51.100.100".parse().unwrap(),
                    "198.51.100.199".parse().unwrap(),
                )],
                exclude: vec!["198.51.100.1".parse().unwrap()],
                reservations: Default::default(),
            },
            port: 67,
        }
    }

    #[test]
    fn our_own_address_is_cut_from_either_end_of_the_range() {
        let mut s = input();
        s.pool.ranges = vec![(
            "198.51.100.1".parse().unwrap(),
            "198.51.100.254".parse().unwrap(),
        )];
        assert!(render(Format::Isc, &s).contains("range 198.51.100.2 198.51.100.254;"));
        s.pool.exclude = vec!["198.51.100.254".parse().unwrap()];
        assert!(render(Format::Isc, &s).contains("range 198.51.100.1 198.51.100.253;"));
    }

    #[test]
    fn isc_uses_plain_option_43_and_every_prefix() {
        let s = render(Format::Isc, &input());
        assert!(
            s.contains("option vendor-encapsulated-options \"5A1D;B2;K4;I198.51.100.1;J8080\";")
        );
        assert!(
            !s.lines()
                .any(|l| l.trim_start().starts_with("vendor-option-space"))
        );
        assert!(s.contains("substring(option cisco-pnp-pid, 6, 3) = \"C11\""));
        assert!(s.contains("substring(option cisco-pnp-pid, 6, 5) = \"C1161\""));
        assert!(s.contains("range 198.51.100.100 198.51.100.199;"));
    }

    #[test]
    fn kea_is_json_with_always_send() {
        let s = render(Format::Kea, &input());
        let json: String = s
            .lines()
            .filter(|l| !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let class = &v["Dhcp4"]["client-classes"][0];
        assert_eq!(class["option-data"][0]["always-send"], true);
        assert_eq!(class["option-def"][0]["type"], "string");
        assert_eq!(v["Dhcp4"]["subnet4"][0]["subnet"], "198.51.100.0/24");
        assert_eq!(v["Dhcp4"]["interfaces-config"]["interfaces"][0], "eth1");
        assert_eq!(
            v["Dhcp4"]["subnet4"][0]["pools"][0]["client-class"],
            "cisco-pnp"
        );
        assert!(!s.contains("REPLACE-ME"), "{s}");
    }

    #[test]
    fn what_is_not_known_is_an_explicit_placeholder_never_a_guess() {
        let mut i = input();
        i.interface = None;
        i.subnet = None;
        i.pool.ranges.clear();
        let kea = render(Format::Kea, &i);
        for p in [KEA_IFACE, KEA_SUBNET, KEA_POOL] {
            assert!(kea.contains(&format!("\"{p}\"")), "{p}: {kea}");
        }
        assert!(!kea.contains("eth1"), "{kea}");
        assert!(kea.contains("names each one left"), "{kea}");
        let dnsmasq = render(Format::Dnsmasq, &i);
        assert!(
            !dnsmasq
                .lines()
                .any(|l| l.starts_with("dhcp-range") || l.starts_with("interface=")),
            "{dnsmasq}"
        );
    }

    #[test]
    fn dnsmasq_and_ios() {
        let s = render(Format::Dnsmasq, &input());
        // Safe in a shared dnsmasq: nothing global, the range only for tagged clients.
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                !line.starts_with("dhcp-ignore") && !line.starts_with("interface="),
                "{line}"
            );
        }
        assert!(
            s.contains(
                "dhcp-range=tag:pnp,tag:pidok,198.51.100.100,198.51.100.199,255.255.255.0,3600\n"
            ),
            "{s}"
        );
        assert!(s.contains("dhcp-match=set:pidok,124,00:00:00:09:*:*:43:31:31\n"));
        assert!(
            s.contains("dhcp-option-force=tag:pnp,tag:pidok,43,\"5A1D;B2;K4;I198.51.100.1;J8080\"")
        );
        let s = render(Format::Ios, &input());
        assert!(s.contains("Where to paste"), "{s}");
        assert!(s.contains(" option 43 ascii \"5A1D;B2;K4;I198.51.100.1;J8080\"\n"));
        assert!(s.contains(" lease 0 1 0\n"));
    }
}
