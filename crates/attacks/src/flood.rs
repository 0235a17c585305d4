//! The unauthenticated flood, from the peer test host: connections held
//! open on every listening TCP port of the server and the desktop, a
//! quarter silent, half sending a partial TLS record, a quarter garbage;
//! one a server closes is opened again until the hold ends. Meanwhile a
//! legitimate mutual-TLS handshake is tried on each port every few
//! seconds.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jettison_tls::TlsContext;
use jettison_wire::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::Conn;

/// A port to flood, and who may legitimately talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address.
    pub addr: SocketAddr,
    /// The TLS of a legitimate client, the name the port must prove, and
    /// the role to say.
    pub legit: Option<(Arc<TlsContext>, String, Role)>,
}

/// What the flood counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections opened.
    pub opened: AtomicU64,
    /// Connects that failed.
    pub connect_failures: AtomicU64,
    /// Connections the server closed before the end of the hold.
    pub closed_by_server: AtomicU64,
    /// Legitimate handshakes that succeeded.
    pub legit_ok: AtomicU64,
    /// Tried.
    pub legit_tried: AtomicU64,
}

/// The first bytes of a TLS handshake record announcing 512 bytes, then
/// nothing more.
pub const PARTIAL_TLS: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];

/// What connection `i` sends once connected.
pub fn payload(i: u32) -> Vec<u8> {
    match i % 4 {
        0 | 2 => PARTIAL_TLS.to_vec(),
        1 => Vec::new(),
        _ => (0..64u32)
            .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i) >> 7) as u8)
            .collect(),
    }
}

async fn hold_one(addr: SocketAddr, i: u32, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        let conn =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await;
        let mut s = match conn {
            Ok(Ok(s)) => s,
            _ => {
                counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        counts.opened.fetch_add(1, Ordering::Relaxed);
        let _ = s.write_all(&payload(i)).await;
        let mut buf = [0u8; 512];
        let closed = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let left = until.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, closed).await.is_ok() {
            counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn legit_probes(targets: Vec<Target>, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        for t in &targets {
            let Some((tls, name, role)) = &t.legit else {
                continue;
            };
            counts.legit_tried.fetch_add(1, Ordering::Relaxed);
            let addr = t.addr.to_string();
            let dial = Conn::dial(tls.clone(), &addr, name, *role);
            if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(15), dial).await {
                counts.legit_ok.fetch_add(1, Ordering::Relaxed);
                c.close().await;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Holds `connections` connections spread over `targets` for `hold`; run
/// it on the attacker's host.
pub async fn run(targets: Vec<Target>, connections: u32, hold: Duration) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + hold;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..connections {
        let addr = targets[i as usize % targets.len()].addr;
        tasks.spawn(hold_one(
            addr,
            i / targets.len() as u32,
            until,
            counts.clone(),
        ));
        if i % 100 == 99 {
            // Not all in one burst: the listen backlog is finite.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tasks.spawn(legit_probes(targets, until, counts.clone()));
    while tasks.join_next().await.is_some() {}
    counts
}

/// The listening TCP sockets of a `/proc/net/tcp` table, as addresses
/// (`0.0.0.0` replaced by `host_ip`).
pub fn listening(table: &str, host_ip: Ipv4Addr) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || cols[3] != "0A" {
            continue;
        }
        let Some((ip, port)) = cols[1].split_once(':') else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (u32::from_str_radix(ip, 16), u16::from_str_radix(port, 16))
        else {
            continue;
        };
        // The kernel prints the address in host (little-endian) order.
        let ip = Ipv4Addr::from(ip.swap_bytes());
        if ip.is_loopback() {
            continue;
        }
        let ip = if ip.is_unspecified() { host_ip } else { ip };
        let addr = SocketAddr::from((ip, port));
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_ports() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0202D50A:1CE8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
   1: 00000000:1CE9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n\
   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3\n\
   3: 0202D50A:1CE8 0302D50A:C000 01 00000000:00000000 00:00000000 00000000     0        0 4\n";
        let host = Ipv4Addr::new(10, 213, 2, 9);
        assert_eq!(
            listening(table, host),
            vec![
                "10.213.2.2:7400".parse::<SocketAddr>().unwrap(),
                "10.213.2.9:7401".parse().unwrap()
            ]
        );
    }

    #[test]
    fn half_send_a_partial_tls_record() {
        let kinds: Vec<usize> = (0..8).map(|i| payload(i).len()).collect();
        assert_eq!(kinds, vec![9, 0, 9, 64, 9, 0, 9, 64]);
        assert_eq!(payload(0)[0], 0x16);
    }
}
