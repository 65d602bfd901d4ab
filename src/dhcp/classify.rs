//! Who gets an answer: Cisco PnP clients with a configured PID prefix, nobody else.
//!
//! Owns the decision as a pure function. A client is answered only when option 60 is exactly
//! `ciscopnp` (`docs/dhcp.md`; IOS-XE sends it in PnP discovery) *and* option 124 (RFC 3925 §3,
//! V-I vendor class: enterprise-number u32, data-len u8, then items of length u8 + bytes) holds an
//! enterprise 9 (Cisco) item that starts with a configured PID prefix. Any length that runs
//! past its container makes option 124 "no match".

use super::packet::Packet;

/// The classification of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// A Cisco PnP router: its PID.
    Pnp {
        /// PID from option 124, e.g. `C1131-8PWB`.
        pid: String,
    },
    /// A Cisco PnP router (option 60 `ciscopnp`) whose PID no configured prefix matches: its
    /// PID (cut to 64 printable characters), so the operator can tell why it gets nothing.
    OtherPid(String),
    /// Not ours; why.
    Ignore(&'static str),
}

/// Vendor-class data items of enterprise `enterprise` in an option 124 value; `None` when the
/// option is malformed anywhere.
pub(crate) fn vivc_items(data: &[u8], enterprise: u32) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let en = data.get(i..i + 4)?;
        let en = u32::from_be_bytes([en[0], en[1], en[2], en[3]]);
        let len = usize::from(*data.get(i + 4)?);
        let block = data.get(i + 5..i + 5 + len)?;
        let mut j = 0;
        while j < block.len() {
            let n = usize::from(block[j]);
            let item = block.get(j + 1..j + 1 + n)?;
            if en == enterprise {
                out.push(item);
            }
            j += 1 + n;
        }
        i += 5 + len;
    }
    Some(out)
}

/// Classifies `p` against the configured PID prefixes.
pub(crate) fn classify(p: &Packet, prefixes: &[String]) -> Class {
    if p.option(60) != Some(b"ciscopnp".as_slice()) {
        return Class::Ignore("option 60 is not ciscopnp");
    }
    let Some(v) = p.option(124) else {
        return Class::Ignore("no option 124");
    };
    let Some(items) = vivc_items(v, 9) else {
        return Class::Ignore("malformed option 124");
    };
    let mut other = None;
    for item in &items {
        let Ok(pid) = std::str::from_utf8(item) else {
            continue;
        };
        if prefixes.iter().any(|pre| pid.starts_with(pre.as_str())) {
            return Class::Pnp {
                pid: pid.to_string(),
            };
        }
        other.get_or_insert(pid);
    }
    match other {
        Some(pid) => Class::OtherPid(
            pid.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect(),
        ),
        None => Class::Ignore("option 124 has no PID with a configured prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::packet::tests::build;

    const ISR: &[u8] = &[
        0, 0, 0, 9, 11, 10, b'C', b'1', b'1', b'3', b'1', b'-', b'8', b'P', b'W', b'B',
    ];

    #[test]
    fn classification_table() {
        let c9300: &[u8] = &[
            0, 0, 0, 9, 9, 8, b'C', b'9', b'3', b'0', b'0', b'-', b'2', b'4',
        ];
        let other_enterprise: &[u8] = &[
            0, 0, 0, 7, 11, 10, b'C', b'1', b'1', b'3', b'1', b'-', b'8', b'P', b'W', b'B',
        ];
        let two_enterprises: Vec<u8> = [&[0, 0, 0, 7, 2, 1, b'x'][..], ISR].concat();
        let two_items: &[u8] = &[0, 0, 0, 9, 8, 3, b'V', b'0', b'1', 3, b'C', b'1', b'1'];
        let data_len_too_long: &[u8] = &[
            0, 0, 0, 9, 12, 10, b'C', b'1', b'1', b'3', b'1', b'-', b'8', b'P', b'W', b'B',
        ];
        let item_too_long: &[u8] = &[0, 0, 0, 9, 3, 10, b'C', b'1'];
        let short_enterprise: &[u8] = &[0, 0, 9];
        let no_data_len: &[u8] = &[0, 0, 0, 9];
        let not_utf8: &[u8] = &[0, 0, 0, 9, 3, 2, 0xff, 0xfe];
        let prefixes = vec!["C11".to_string()];
        type Case<'a> = (&'a str, Vec<(u8, &'a [u8])>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "ISR1k",
                vec![(60, b"ciscopnp"), (124, ISR)],
                Some("C1131-8PWB"),
            ),
            ("C9300", vec![(60, b"ciscopnp"), (124, c9300)], None),
            ("no 60", vec![(124, ISR)], None),
            ("60 upper case", vec![(60, b"CiscoPnP"), (124, ISR)], None),
            ("60 longer", vec![(60, b"ciscopnp-x"), (124, ISR)], None),
            ("no 124", vec![(60, b"ciscopnp")], None),
            (
                "not Cisco",
                vec![(60, b"ciscopnp"), (124, other_enterprise)],
                None,
            ),
            (
                "second enterprise",
                vec![(60, b"ciscopnp"), (124, &two_enterprises)],
                Some("C1131-8PWB"),
            ),
            (
                "second item",
                vec![(60, b"ciscopnp"), (124, two_items)],
                Some("C11"),
            ),
            (
                "data-len too long",
                vec![(60, b"ciscopnp"), (124, data_len_too_long)],
                None,
            ),
            (
                "item too long",
                vec![(60, b"ciscopnp"), (124, item_too_long)],
                None,
            ),
            (
                "short enterprise",
                vec![(60, b"ciscopnp"), (124, short_enterprise)],
                None,
            ),
            (
                "no data-len",
                vec![(60, b"ciscopnp"), (124, no_data_len)],
                None,
            ),
            ("empty 124", vec![(60, b"ciscopnp"), (124, &[])], None),
            ("not utf-8", vec![(60, b"ciscopnp"), (124, not_utf8)], None),
        ];
        for (name, opts, want) in cases {
            let p = Packet::parse(&build(1, [2; 6], &opts)).unwrap();
            let got = match classify(&p, &prefixes) {
                Class::Pnp { pid } => Some(pid),
                Class::OtherPid(_) | Class::Ignore(_) => None,
            };
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }

    #[test]
    fn several_prefixes() {
        let p = Packet::parse(&build(1, [2; 6], &[(60, b"ciscopnp"), (124, ISR)])).unwrap();
        assert_eq!(
            classify(&p, &["C9".into()]),
            Class::OtherPid("C1131-8PWB".into())
        );
        assert!(matches!(
            classify(&p, &["C9".into(), "C113".into()]),
            Class::Pnp { .. }
        ));
    }
}
