//! End to end on a real LAN of namespaces: the peer binary on the peer host,
//! the guest image booted under QEMU/TCG on a desktop with its tap on the
//! desktop's `br0` and a fresh virtio disk. The guest must chat (heartbeats
//! both ways), poll mail and write its mail cache; the peer's counters must
//! agree. Skips without root, QEMU or a built guest image (`cargo xtask
//! guest`; `JETTISON_GUEST_DIR` overrides where it is).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jettison_peer::fetch_status_blocking;
use jettison_testbed::{is_root, Lan, LanSpec};

/// Kills and reaps a child on drop.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes a file on drop.
struct RmFile(PathBuf);
impl Drop for RmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn guest_dir() -> Option<PathBuf> {
    let d = std::env::var_os("JETTISON_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/jettison-guest")
        });
    (d.join("vmlinuz").is_file() && d.join("initrd.img").is_file()).then_some(d)
}

fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn guest_talks_to_the_office_across_the_lan() {
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output();
    assert!(is_root(), "needs root (network namespaces, taps)");
    assert!(qemu.is_ok(), "needs qemu-system-x86_64 (cargo xtask setup)");
    let dir = guest_dir().expect("needs the guest image: cargo xtask guest");
    let lan = Lan::create(&LanSpec::default()).unwrap();
    let peer_ip = lan.peer().ip;
    let mut peer = Reap(
        lan.peer()
            .command(env!("CARGO_BIN_EXE_jettison-peer"))
            .args(["--ip", &peer_ip.to_string(), "--ping-ms", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ready = lines_of(&mut peer.0)
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(ready.starts_with("jettison-peer ready"), "{ready}");

    let (vm, d) = (lan.vm_name(0), lan.desktop(0));
    d.add_tap("vm0").unwrap();
    let disk = RmFile(std::env::temp_dir().join(format!("{vm}.disk")));
    std::fs::File::create(&disk.0)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap();
    let append = format!(
        "{} jettison.fill_pct=10 jettison.check_mib=4 jettison.id={vm} jettison.ip={}/24 \
         jettison.peer={peer_ip}:5222 jettison.mail={peer_ip}:1110 jettison.mail_interval_s=2 \
         jettison.disk_interval_s=2",
        cmdline.trim(),
        lan.vm_ip(0)
    );
    let mut q = d.command("qemu-system-x86_64");
    q.args([
        "-name",
        &vm,
        "-accel",
        "tcg",
        "-m",
        "256M",
        "-nodefaults",
        "-vga",
        "none",
    ])
    .args([
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
    ])
    .arg(dir.join("vmlinuz"))
    .arg("-initrd")
    .arg(dir.join("initrd.img"))
    .args(["-append", &append, "-drive"])
    .arg(format!(
        "file={},if=none,id=d0,format=raw",
        disk.0.display()
    ))
    .args(["-device", "virtio-blk-pci,drive=d0"])
    .args(["-netdev", "tap,id=n0,ifname=vm0,script=no,downscript=no"])
    .arg("-device")
    .arg(format!(
        "virtio-net-pci,netdev=n0,mac={},romfile=",
        lan.vm_mac(0)
    ));
    let mut guest = Reap(
        q.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let console = lines_of(&mut guest.0);

    let t0 = Instant::now();
    let (mut net, mut mail, mut disk_ok, mut seen) = (false, false, false, Vec::new());
    while !(net && mail && disk_ok) {
        let left = Duration::from_secs(120).saturating_sub(t0.elapsed());
        let Ok(l) = console.recv_timeout(left) else {
            panic!("guest not done in time; console:\n{}", seen.join("\n"));
        };
        net |= l.starts_with("JTS NET hb=10 ");
        mail |= l.starts_with("JTS MAIL polls=2 fail=0");
        disk_ok |= l.starts_with("JTS DISK writes=2 ");
        assert!(!l.contains("JTS NET reconnect"), "{l}");
        seen.push(l);
    }
    let status: SocketAddr = (peer_ip, 5280).into();
    let st = lan
        .peer()
        .run_in(move || fetch_status_blocking(status))
        .unwrap()
        .unwrap();
    let c = &st.clients[&vm];
    assert_eq!((c.connections, c.resets, c.hb_lost), (1, 0, 0), "{c:?}");
    assert!(c.connected && c.heartbeats >= 9 && c.pongs >= 5, "{c:?}");
    assert!(c.mail_polls >= 2 && c.max_hb_gap_ms < 5000, "{c:?}");
    assert!(
        seen.iter().any(|l| l.contains("mke2fs")),
        "fresh disk formatted"
    );
}
