//! Real UDP: magic packets over loopback and as a LAN broadcast inside a
//! network namespace.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use jettison_power::{send_magic_packet, WolListener};
use jettison_power_model::MacAddr;
use nix::sched::{setns, CloneFlags};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0x01]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0x02]);

#[tokio::test]
async fn loopback_listener_takes_only_valid_packets_for_its_mac() {
    let listener = WolListener::bind("127.0.0.1:0".parse().unwrap(), MAC)
        .await
        .unwrap();
    let to = listener.local_addr().unwrap();
    send_magic_packet(OTHER, to).await.unwrap();
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    raw.send_to(b"hello", to).await.unwrap();
    let mut truncated = jettison_power_model::magic_packet(MAC).to_vec();
    truncated.pop();
    raw.send_to(&truncated, to).await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "a wrong MAC, garbage and a short packet must not count"
    );
    let mut with_password = jettison_power_model::magic_packet(MAC).to_vec();
    with_password.extend_from_slice(&[1, 2, 3, 4]);
    raw.send_to(&with_password, to).await.unwrap();
    let got = timeout(Duration::from_secs(2), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len, 106);
    assert_eq!(got.from, raw.local_addr().unwrap());
    send_magic_packet(MAC, to).await.unwrap();
    let got = timeout(Duration::from_secs(2), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len, 102);
}

/// A network namespace with a veth pair, deleted on drop.
struct Netns(String);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create(name: String, subnet: u8) -> Self {
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        let n = ns.0.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "wa", "type", "veth", "peer", "name", "wb",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("10.213.{subnet}.1/24"),
            "brd",
            "+",
            "dev",
            "wa",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("10.213.{subnet}.2/24"),
            "brd",
            "+",
            "dev",
            "wb",
        ]);
        ip(&["-n", n, "link", "set", "wa", "up"]);
        ip(&["-n", n, "link", "set", "wb", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn broadcast_to_port_9_inside_a_network_namespace() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces)"
    );
    let pid = std::process::id();
    let subnet = (pid % 250) as u8 + 1;
    let ns = Netns::create(format!("jpower-{pid}"), subnet);
    let path = format!("/var/run/netns/{}", ns.0);
    // Enter the namespace on a thread of our own; its sockets live there.
    let result = std::thread::spawn(move || {
        setns(File::open(&path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let any9: SocketAddr = (Ipv4Addr::UNSPECIFIED, 9).into();
            let listener = WolListener::bind(any9, MAC).await.unwrap();
            let broadcast: SocketAddr = (Ipv4Addr::new(10, 213, subnet, 255), 9).into();
            send_magic_packet(OTHER, broadcast).await.unwrap();
            send_magic_packet(MAC, broadcast).await.unwrap();
            let got = timeout(Duration::from_secs(2), listener.recv())
                .await
                .expect("broadcast received")
                .unwrap();
            assert_eq!(got.len, 102);
            assert!(
                timeout(Duration::from_millis(200), listener.recv())
                    .await
                    .is_err(),
                "only once per packet"
            );
            // Without SO_BROADCAST the kernel refuses a broadcast destination.
            let plain = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let err = plain
                .send_to(&jettison_power_model::magic_packet(MAC), broadcast)
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        })
    })
    .join();
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
