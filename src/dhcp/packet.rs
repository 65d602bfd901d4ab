//! A bounds-checked reader for received DHCPv4 packets.
//!
//! Owns turning untrusted datagrams into a [`Packet`] without ever panicking: every length is
//! checked before it is used, and malformed option areas are errors. dhcproto's decoder is not
//! run on what the network sends (its debug build asserts on some malformed options); it only
//! encodes our replies. Layout: RFC 2131 §2 (fixed header, 236 bytes), RFC 2131 §3 / RFC 1497
//! (magic cookie 99.130.83.99), RFC 2132 (options), RFC 3396 (a long option split into several
//! instances is concatenated).

use std::net::Ipv4Addr;

/// DHCP message types (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsgType {
    /// 1
    Discover,
    /// 3
    Request,
    /// 4
    Decline,
    /// 7
    Release,
    /// 8
    Inform,
    /// Any other value (server-to-client types, unknown).
    Other(u8),
}

/// Why a datagram is not a DHCP request we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    /// Shorter than header + cookie.
    #[error("too short ({0} bytes)")]
    Short(usize),
    /// op is not BOOTREQUEST.
    #[error("not a BOOTREQUEST (op {0})")]
    NotRequest(u8),
    /// Missing magic cookie.
    #[error("no DHCP magic cookie")]
    NoCookie,
    /// An option runs past the end.
    #[error("option {0} runs past the end of the packet")]
    Truncated(u8),
    /// No option 53.
    #[error("no DHCP message type (option 53)")]
    NoType,
    /// hlen over 16.
    #[error("hardware address length {0} over 16")]
    BadHlen(u8),
}

/// A parsed client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Hardware type (1 = Ethernet).
    pub(crate) htype: u8,
    /// Hardware address length.
    pub(crate) hlen: u8,
    /// Transaction id.
    pub(crate) xid: u32,
    /// Flags (bit 15 = broadcast).
    pub(crate) flags: u16,
    /// Client address (RENEWING, REBINDING, INFORM).
    pub(crate) ciaddr: Ipv4Addr,
    /// Relay agent address.
    pub(crate) giaddr: Ipv4Addr,
    /// Client hardware address (16 bytes, `hlen` used).
    pub(crate) chaddr: [u8; 16],
    /// DHCP message type.
    pub(crate) msg_type: MsgType,
    /// Options in order of first appearance, split instances concatenated (RFC 3396).
    pub(crate) options: Vec<(u8, Vec<u8>)>,
}

const HEADER: usize = 236;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `xid` and the client's hardware address straight from the fixed BOOTP header (RFC 2131 §2,
/// figure 1: `hlen` at byte 2, `xid` at 4..8, `chaddr` at 28..44), for logging a datagram
/// before (or whether or not) it parses; `""` for what the datagram is too short to hold.
pub(crate) fn header_ids(buf: &[u8]) -> (String, String) {
    let xid = buf.get(4..8).map_or_else(String::new, |x| {
        format!("{:#010x}", u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    });
    let hlen = usize::from(buf.get(2).copied().unwrap_or(0).min(16));
    let mac = buf.get(28..28 + hlen).map_or_else(String::new, hex_colon);
    (xid, mac)
}

impl Packet {
    /// Parses a received datagram.
    pub(crate) fn parse(buf: &[u8]) -> Result<Packet, ParseError> {
        if buf.len() < HEADER + 4 {
            return Err(ParseError::Short(buf.len()));
        }
        if buf[0] != 1 {
            return Err(ParseError::NotRequest(buf[0]));
        }
        if buf[HEADER..HEADER + 4] != COOKIE {
            return Err(ParseError::NoCookie);
        }
        let hlen = buf[2];
        if hlen > 16 {
            return Err(ParseError::BadHlen(hlen));
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&buf[28..44]);
        let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut i = HEADER + 4;
        while i < buf.len() {
            let code = buf[i];
            match code {
                0 => {
                    i += 1;
                    continue;
                }
                255 => break,
                _ => {}
            }
            let len = *buf.get(i + 1).ok_or(ParseError::Truncated(code))? as usize;
            let data = buf
                .get(i + 2..i + 2 + len)
                .ok_or(ParseError::Truncated(code))?;
            match options.iter_mut().find(|(c, _)| *c == code) {
                Some((_, v)) => v.extend_from_slice(data),
                None => options.push((code, data.to_vec())),
            }
            i += 2 + len;
        }
        let msg_type = match options
            .iter()
            .find(|(c, _)| *c == 53)
            .map(|(_, v)| v.as_slice())
        {
            Some([1]) => MsgType::Discover,
            Some([3]) => MsgType::Request,
            Some([4]) => MsgType::Decline,
            Some([7]) => MsgType::Release,
            Some([8]) => MsgType::Inform,
            Some([t]) => MsgType::Other(*t),
            _ => return Err(ParseError::NoType),
        };
        Ok(Packet {
            htype: buf[1],
            hlen,
            xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            flags: u16::from_be_bytes([buf[10], buf[11]]),
            ciaddr: ip(&buf[12..16]),
            giaddr: ip(&buf[24..28]),
            chaddr,
            msg_type,
            options,
        })
    }

    /// Raw value of option `code`.
    pub(crate) fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    fn option_ip(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option(code) {
            Some(b) if b.len() == 4 => Some(ip(b)),
            _ => None,
        }
    }

    /// Option 50, requested IP address.
    pub(crate) fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.option_ip(50)
    }

    /// Option 54, server identifier.
    pub(crate) fn server_id(&self) -> Option<Ipv4Addr> {
        self.option_ip(54)
    }

    /// The hardware address as `aa:bb:..`.
    pub(crate) fn mac(&self) -> String {
        hex_colon(&self.chaddr[..usize::from(self.hlen.min(16))])
    }

    /// The key a lease is bound to: option 61 client-id (hex), else the hardware address
    /// (RFC 2131 §4.2).
    pub(crate) fn client_key(&self) -> String {
        match self.option(61) {
            Some(id) if !id.is_empty() => format!("id:{}", hex::encode(id)),
            _ => format!("hw:{}", self.mac()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn header_ids_of_whole_short_and_empty_datagrams() {
        let b = build(1, [0x52, 0x54, 0, 0xab, 0xcd, 0xef], &[]);
        let xid = format!("{:#010x}", u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
        assert_eq!(header_ids(&b), (xid.clone(), "52:54:00:ab:cd:ef".into()));
        assert_eq!(header_ids(&b[..30]), (xid, String::new()));
        assert_eq!(header_ids(&[]), (String::new(), String::new()));
    }

    /// Builds a request: header with `chaddr`, then `options` (code, data), then end.
    pub(crate) fn build(msg: u8, chaddr: [u8; 6], options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&chaddr);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[53, 1, msg]);
        for (code, data) in options {
            b.push(*code);
            b.push(data.len() as u8);
            b.extend_from_slice(data);
        }
        b.push(255);
        b
    }

    #[test]
    fn reads_header_and_options() {
        let b = build(
            1,
            [0, 0x11, 0x22, 0x33, 0x44, 0x55],
            &[(60, b"ciscopnp"), (61, &[1, 2, 3])],
        );
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.msg_type, MsgType::Discover);
        assert_eq!(p.xid, 0x1234_5678);
        assert_eq!(p.mac(), "00:11:22:33:44:55");
        assert_eq!(p.option(60), Some(&b"ciscopnp"[..]));
        assert_eq!(p.client_key(), "id:010203");
    }

    #[test]
    fn split_options_are_concatenated() {
        let b = build(1, [1; 6], &[(60, b"cisco"), (12, b"h"), (60, b"pnp")]);
        assert_eq!(
            Packet::parse(&b).unwrap().option(60),
            Some(&b"ciscopnp"[..])
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        let good = build(1, [1; 6], &[(60, b"ciscopnp")]);
        let mut reply = good.clone();
        reply[0] = 2;
        let mut cookie = good.clone();
        cookie[HEADER] = 0;
        let mut truncated = good[..good.len() - 4].to_vec();
        truncated.truncate(truncated.len());
        let mut hlen = good.clone();
        hlen[2] = 17;
        let no_type = {
            let mut b = good[..HEADER + 4].to_vec();
            b.push(255);
            b
        };
        let cases: [(&[u8], ParseError); 6] = [
            (&good[..100], ParseError::Short(100)),
            (&reply, ParseError::NotRequest(2)),
            (&cookie, ParseError::NoCookie),
            (&truncated, ParseError::Truncated(60)),
            (&hlen, ParseError::BadHlen(17)),
            (&no_type, ParseError::NoType),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::parse(bytes), Err(want));
        }
    }
}
