//! Option 43 for Cisco PnP: the plain ASCII string, e.g. `5A1D;B2;K4;I198.51.100.1;J8080`.
//!
//! Owns the token string (`docs/pnp-protocol.md` §2.4, `docs/dhcp.md`): `5` PnP, `A` active,
//! `1` version, `D`/`N` agent debug on/off; `B1` host name / `B2` IPv4 / `B3` IPv6 address type
//! of `I`; `K4` HTTP / `K5` HTTPS; `J` port. It is sent as the raw option value, never wrapped as
//! a sub-option (the ISC `vendor-option-space` trap).

use std::net::IpAddr;

/// The option 43 string for a PnP server at `server`:`port`.
pub(crate) fn option43(server: &str, port: u16, https: bool, debug: bool) -> String {
    let b = match server.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "B2",
        Ok(IpAddr::V6(_)) => "B3",
        Err(_) => "B1",
    };
    format!(
        "5A1{};{b};K{};I{server};J{port}",
        if debug { 'D' } else { 'N' },
        if https { '5' } else { '4' }
    )
}

#[cfg(test)]
mod tests {
    use super::option43;

    #[test]
    fn token_table() {
        let cases = [
            (
                ("198.51.100.1", 8080, false, true),
                "5A1D;B2;K4;I198.51.100.1;J8080",
            ),
            (
                ("198.51.100.1", 80, false, false),
                "5A1N;B2;K4;I198.51.100.1;J80",
            ),
            (
                ("2001:db8::1", 443, true, true),
                "5A1D;B3;K5;I2001:db8::1;J443",
            ),
            (
                ("pnpserver.example", 80, false, true),
                "5A1D;B1;K4;Ipnpserver.example;J80",
            ),
        ];
        for ((s, p, h, d), want) in cases {
            assert_eq!(option43(s, p, h, d), want);
        }
    }
}
