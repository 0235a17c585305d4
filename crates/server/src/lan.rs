//! Where this server may send Wake-on-LAN magic packets: a desktop says
//! where (`GoingToSleep { mac, wol_addr }`), and the server sends packets
//! there for as long as a wake takes. So the target must lie on the
//! server's own LAN, as the configuration's `wol_networks` defines it, or,
//! without that setting, on a network this server has an address in (its
//! interfaces' IPv4 and IPv6 networks but loopback's, read when the
//! announcement comes). The MAC must be a unicast one (not the broadcast,
//! a multicast or all zeros): it is what the packet asks a NIC to wake for.
//! A refused announcement sends nothing; the desktop does not sleep.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use jettison_power_model::MacAddr;
use serde::Deserialize;

/// An IP network: an address and a prefix length (`10.0.0.0/24`,
/// `fd00::/64`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with `prefix` bits (at most 32 or 128).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                same_prefix(u32::from(n).into(), u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                same_prefix(u128::from(n), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// Whether the first `prefix` of the `bits` low bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad network {s:?}: {why} (e.g. \"10.0.0.0/24\")");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad("not a prefix length"))?,
            None => max_prefix(addr),
        };
        IpNet::new(addr, prefix).ok_or_else(|| bad("prefix too long"))
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The networks of this host's interfaces (in its network namespace), but
/// loopback's and those of interfaces that are down.
pub fn local_networks() -> std::io::Result<Vec<IpNet>> {
    use nix::net::if_::InterfaceFlags;
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        if ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            || !ifa.flags.contains(InterfaceFlags::IFF_UP)
        {
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let net = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            IpNet::new(IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones() as u8)
        } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            IpNet::new(IpAddr::V6(a.ip()), u128::from(m.ip()).count_ones() as u8)
        } else {
            None
        };
        out.extend(net);
    }
    Ok(out)
}

/// Checks a desktop's sleep announcement: `mac` a unicast MAC, `wol_addr`
/// an address (with its port) in one of `networks`. Gives what to send
/// magic packets for, and where.
pub fn check_wol_target(
    mac: &str,
    wol_addr: &str,
    networks: &[IpNet],
) -> Result<(MacAddr, SocketAddr), String> {
    let parsed: MacAddr = mac.parse().map_err(|e| format!("bad MAC {mac:?}: {e}"))?;
    if parsed.0 == [0; 6] || parsed.0[0] & 1 == 1 {
        return Err(format!(
            "MAC {mac:?} is not a unicast NIC address (all zeros, broadcast or multicast)"
        ));
    }
    let addr: SocketAddr = wol_addr
        .parse()
        .map_err(|e| format!("bad Wake-on-LAN address {wol_addr:?} (want ip:port): {e}"))?;
    if addr.port() == 0 {
        return Err(format!("Wake-on-LAN address {wol_addr:?} has port 0"));
    }
    if !networks.iter().any(|n| n.contains(addr.ip())) {
        let nets: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
        return Err(format!(
            "Wake-on-LAN address {wol_addr:?} is not on this server's LAN ({}); magic packets \
             go only there (the server's `wol_networks` setting)",
            if nets.is_empty() {
                "no network".to_string()
            } else {
                nets.join(", ")
            }
        ));
    }
    Ok((parsed, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_contain_their_addresses_only() {
        let n: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/24");
        for ip in ["10.0.0.0", "10.0.0.17", "10.0.0.255", "::ffff:10.0.0.9"] {
            assert!(n.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.1.0", "9.255.255.255", "11.0.0.1", "::1", "fe80::1"] {
            assert!(!n.contains(ip.parse().unwrap()), "{ip}");
        }
        // Host bits set in the network are ignored; /0 is everything.
        assert!("10.0.0.77/24"
            .parse::<IpNet>()
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<IpNet>()
            .unwrap()
            .contains("203.0.113.9".parse().unwrap()));
        let host: IpNet = "192.168.1.5".parse().unwrap();
        assert!(host.contains("192.168.1.5".parse().unwrap()));
        assert!(!host.contains("192.168.1.6".parse().unwrap()));
        let v6: IpNet = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains("fd00:1::9".parse().unwrap()));
        assert!(!v6.contains("fd00:2::9".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/24",
            "fd00::/129",
            "x/8",
            "10.0.0.0/-1",
        ] {
            let e = bad.parse::<IpNet>().unwrap_err();
            assert!(e.contains("bad network"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_wol_target_on_the_lan_with_a_unicast_mac_is_taken() {
        let lan = nets(&["10.0.0.0/24", "fd00::/64"]);
        let (mac, addr) = check_wol_target("52:54:00:12:34:56", "10.0.0.255:9", &lan).unwrap();
        assert_eq!(mac.to_string(), "52:54:00:12:34:56");
        assert_eq!(addr, "10.0.0.255:9".parse().unwrap());
        assert!(check_wol_target("02-00-00-00-00-01", "[fd00::ff]:7", &lan).is_ok());
    }

    #[test]
    fn a_wol_target_off_the_lan_or_a_bad_mac_is_refused() {
        let lan = nets(&["10.0.0.0/24"]);
        for (mac, addr, needle) in [
            (
                "52:54:00:12:34:56",
                "10.0.1.255:9",
                "not on this server's LAN (10.0.0.0/24)",
            ),
            (
                "52:54:00:12:34:56",
                "127.0.0.1:9",
                "not on this server's LAN",
            ),
            (
                "52:54:00:12:34:56",
                "8.8.8.8:53",
                "not on this server's LAN",
            ),
            ("52:54:00:12:34:56", "[::1]:9", "not on this server's LAN"),
            ("52:54:00:12:34:56", "10.0.0.255", "want ip:port"),
            ("52:54:00:12:34:56", "10.0.0.255:0", "port 0"),
            ("ff:ff:ff:ff:ff:ff", "10.0.0.255:9", "not a unicast"),
            ("01:00:5e:00:00:01", "10.0.0.255:9", "not a unicast"),
            ("00:00:00:00:00:00", "10.0.0.255:9", "not a unicast"),
            ("52:54:00:12:34", "10.0.0.255:9", "bad MAC"),
        ] {
            let e = check_wol_target(mac, addr, &lan).unwrap_err();
            assert!(e.contains(needle), "{mac} {addr}: {e}");
        }
        let e = check_wol_target("52:54:00:12:34:56", "10.0.0.255:9", &[]).unwrap_err();
        assert!(e.contains("(no network)"), "{e}");
    }

    fn ip(args: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }

    /// The networks of a fresh network namespace (of a thread of its own,
    /// gone with it), real interfaces read through the kernel: loopback up
    /// is left out, a dummy LAN interface counts once it is up.
    #[test]
    fn the_default_lan_is_the_networks_of_this_hosts_interfaces() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (a network namespace)");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            assert_eq!(local_networks().unwrap(), []);
            ip(&["link", "set", "lo", "up"]);
            ip(&[
                "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
            ]);
            ip(&["addr", "add", "10.9.8.7/24", "dev", "lan0"]);
            assert_eq!(local_networks().unwrap(), [], "lan0 is down");
            ip(&["link", "set", "lan0", "up"]);
            let nets = local_networks().unwrap();
            let v4: Vec<String> = nets
                .iter()
                .filter(|n| n.addr.is_ipv4())
                .map(|n| n.to_string())
                .collect();
            assert_eq!(v4, ["10.9.8.7/24"]);
            assert!(check_wol_target("02:00:00:00:00:01", "10.9.8.255:9", &nets).is_ok());
            let e = check_wol_target("02:00:00:00:00:01", "127.0.0.1:9", &nets).unwrap_err();
            assert!(e.contains("not on this server's LAN"), "{e}");
        })
        .join()
        .unwrap();
    }
}
