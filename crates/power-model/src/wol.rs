//! Wake-on-LAN magic packets and MAC addresses (pure).
//!
//! A magic packet is 6 bytes `0xFF` followed by the target MAC repeated 16
//! times (102 bytes), optionally followed by a 4- or 6-byte SecureOn
//! password, which is accepted and ignored here. It usually travels as the
//! payload of a UDP datagram to port 9 (or 7) of the LAN's broadcast address.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Length of a magic packet without password.
pub const MAGIC_PACKET_LEN: usize = 6 + 16 * 6;

/// The usual Wake-on-LAN UDP port ("discard").
pub const WOL_PORT: u16 = 9;

/// A 48-bit Ethernet address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A MAC address or magic packet that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WolError {
    /// Not six hexadecimal bytes separated by ':' or '-'.
    #[error("bad MAC address {0:?}")]
    Mac(String),
    /// Neither 102, 106 nor 108 bytes long.
    #[error("a magic packet has 102, 106 or 108 bytes, not {0}")]
    Length(usize),
    /// The first six bytes are not all 0xFF.
    #[error("no 6 x 0xFF synchronisation stream")]
    Sync,
    /// The 16 copies of the MAC differ.
    #[error("the 16 MAC copies differ")]
    Copies,
}

impl MacAddr {
    /// The broadcast address, which a magic packet may not target.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = WolError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case, one
    /// separator kind, two digits per byte).
    fn from_str(s: &str) -> Result<Self, WolError> {
        let bad = || WolError::Mac(s.to_owned());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The magic packet that wakes `mac`.
pub fn magic_packet(mac: MacAddr) -> [u8; MAGIC_PACKET_LEN] {
    let mut p = [0xffu8; MAGIC_PACKET_LEN];
    for copy in p[6..].chunks_exact_mut(6) {
        copy.copy_from_slice(&mac.0);
    }
    p
}

/// The MAC a magic packet targets. Accepts a trailing 4- or 6-byte SecureOn
/// password (ignored); rejects anything else, including a packet for the
/// broadcast MAC `ff:ff:ff:ff:ff:ff` ([`WolError::Mac`]).
pub fn parse_magic_packet(packet: &[u8]) -> Result<MacAddr, WolError> {
    if !matches!(packet.len().checked_sub(MAGIC_PACKET_LEN), Some(0 | 4 | 6)) {
        return Err(WolError::Length(packet.len()));
    }
    if packet[..6] != [0xff; 6] {
        return Err(WolError::Sync);
    }
    let body = &packet[6..MAGIC_PACKET_LEN];
    let first: [u8; 6] = body[..6].try_into().expect("six bytes");
    if !body.chunks_exact(6).all(|c| c == first) {
        return Err(WolError::Copies);
    }
    if first == MacAddr::BROADCAST.0 {
        return Err(WolError::Mac(MacAddr::BROADCAST.to_string()));
    }
    Ok(MacAddr(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn mac_parses_and_prints() {
        assert_eq!("52:54:00:12:34:56".parse::<MacAddr>(), Ok(MAC));
        assert_eq!("52-54-00-12-34-56".parse::<MacAddr>(), Ok(MAC));
        assert_eq!(
            "52:54:00:12:34:56".to_uppercase().parse::<MacAddr>(),
            Ok(MAC)
        );
        assert_eq!(MAC.to_string(), "52:54:00:12:34:56");
        assert_eq!(format!("{MAC:?}"), "MacAddr(52:54:00:12:34:56)");
    }

    #[test]
    fn mac_rejects_malformed() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:5",
            "52:54:00:12:34:567",
            "52:54:00:12:34:zz",
            "52:54-00:12:34:56",
            "525400123456",
            "52:54:00:12:34:56:",
            " 52:54:00:12:34:56",
            "+5:54:00:12:34:56",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(WolError::Mac(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mac_serde_as_string() {
        let j = serde_json::to_string(&MAC).unwrap();
        assert_eq!(j, "\"52:54:00:12:34:56\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&j).unwrap(), MAC);
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }

    #[test]
    fn builds_the_standard_layout() {
        let p = magic_packet(MAC);
        assert_eq!(p.len(), 102);
        assert_eq!(p[..6], [0xff; 6]);
        for i in 0..16 {
            assert_eq!(p[6 + 6 * i..12 + 6 * i], MAC.0);
        }
        assert_eq!(parse_magic_packet(&p), Ok(MAC));
    }

    #[test]
    fn accepts_and_ignores_a_secureon_password() {
        for pw in [&[1u8, 2, 3, 4][..], &[9, 9, 9, 9, 9, 9]] {
            let mut p = magic_packet(MAC).to_vec();
            p.extend_from_slice(pw);
            assert_eq!(parse_magic_packet(&p), Ok(MAC));
        }
    }

    #[test]
    fn rejects_malformed_packets() {
        let good = magic_packet(MAC);
        assert_eq!(parse_magic_packet(&[]), Err(WolError::Length(0)));
        assert_eq!(parse_magic_packet(&good[..101]), Err(WolError::Length(101)));
        let mut long = good.to_vec();
        long.extend_from_slice(&[0; 5]);
        assert_eq!(parse_magic_packet(&long), Err(WolError::Length(107)));
        long.extend_from_slice(&[0; 5]);
        assert_eq!(parse_magic_packet(&long), Err(WolError::Length(112)));
        let mut sync = good;
        sync[3] = 0xfe;
        assert_eq!(parse_magic_packet(&sync), Err(WolError::Sync));
        for at in [6, 50, 101] {
            let mut copies = good;
            copies[at] ^= 1;
            assert_eq!(
                parse_magic_packet(&copies),
                Err(WolError::Copies),
                "byte {at}"
            );
        }
        let all_ff = [0xffu8; 102];
        assert!(matches!(parse_magic_packet(&all_ff), Err(WolError::Mac(_))));
    }

    #[test]
    fn other_macs_parse_as_themselves() {
        let other = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(parse_magic_packet(&magic_packet(other)), Ok(other));
        assert_ne!(parse_magic_packet(&magic_packet(other)), Ok(MAC));
    }
}
