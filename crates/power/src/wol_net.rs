//! Wake-on-LAN over UDP: sending magic packets and receiving them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use jettison_power_model::wol::{magic_packet, parse_magic_packet, MacAddr};
use tokio::net::UdpSocket;
use tracing::{debug, trace};

use crate::PowerError;

/// Sends one magic packet for `mac` to `to` (typically the LAN's broadcast
/// address, port 9) from an ephemeral socket with `SO_BROADCAST` set.
pub async fn send_magic_packet(mac: MacAddr, to: SocketAddr) -> Result<(), PowerError> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)
        .await
        .map_err(PowerError::io("binding the WoL sender"))?;
    socket
        .set_broadcast(true)
        .map_err(PowerError::io("setting SO_BROADCAST"))?;
    socket
        .send_to(&magic_packet(mac), to)
        .await
        .map_err(PowerError::io(format!("sending WoL to {to}")))?;
    debug!(%mac, %to, "magic packet sent");
    Ok(())
}

/// A valid magic packet received for our MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WolPacket {
    /// Who sent it.
    pub from: SocketAddr,
    /// Its length (102, or more with a SecureOn password).
    pub len: usize,
}

/// Listens for magic packets addressed to one MAC (the part a WoL-armed NIC
/// plays). Other datagrams, malformed packets and packets for other MACs
/// are dropped.
#[derive(Debug)]
pub struct WolListener {
    socket: UdpSocket,
    mac: MacAddr,
}

impl WolListener {
    /// Binds a UDP socket at `addr` (`0.0.0.0:9` receives the LAN's
    /// broadcasts) listening for packets for `mac`.
    pub async fn bind(addr: SocketAddr, mac: MacAddr) -> Result<Self, PowerError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(PowerError::io(format!("binding WoL listener {addr}")))?;
        Ok(Self { socket, mac })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, PowerError> {
        self.socket
            .local_addr()
            .map_err(PowerError::io("WoL listener address"))
    }

    /// The MAC this listener answers to.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Waits for the next valid magic packet for our MAC.
    pub async fn recv(&self) -> Result<WolPacket, PowerError> {
        let mut buf = [0u8; 1500];
        loop {
            let (len, from) = self
                .socket
                .recv_from(&mut buf)
                .await
                .map_err(PowerError::io("receiving WoL"))?;
            match parse_magic_packet(&buf[..len]) {
                Ok(mac) if mac == self.mac => return Ok(WolPacket { from, len }),
                Ok(mac) => {
                    debug!(%mac, %from, mine = %self.mac, "magic packet for another MAC ignored")
                }
                Err(e) => trace!(%from, len, error = %e, "not a magic packet"),
            }
        }
    }
}
