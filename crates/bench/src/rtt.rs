//! The network part of a fault: the server's request to the desktop's state
//! server and its reply, measured alone with the server's own certificate
//! from the server host (TLS over the LAN, the agent reading its memory
//! file), to split a fault's time between FUSE, the server daemon and the
//! round trip.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_wire::{FileKind, Message, Range, Role, PAGE_SIZE};

/// Round trips of single-page fetches of `pages` of `vm`, in microseconds,
/// from inside network namespace `netns`.
pub fn fetch_round_trips(
    netns: &str,
    tls_dir: &Path,
    state_addr: String,
    vm: String,
    pages: Vec<u64>,
) -> anyhow::Result<Vec<f64>> {
    let tls = jettison_demo::configs::tls_context(tls_dir, "server", "desktop")?;
    jettison_demo::procs::in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let timeout = Duration::from_secs(10);
            let mut t = jettison_daemon::dial(&tls, &state_addr, "desktop", Role::Server, timeout)
                .await
                .with_context(|| format!("dialling the state server {state_addr}"))?;
            let mut out = Vec::with_capacity(pages.len());
            for p in pages {
                let req = Message::Fetch {
                    vm: vm.clone(),
                    file: FileKind::Memory,
                    ranges: vec![Range {
                        offset: p * PAGE_SIZE,
                        len: PAGE_SIZE,
                    }],
                };
                let started = Instant::now();
                match t.request(&req, timeout).await? {
                    Message::Chunks { .. } => out.push(started.elapsed().as_secs_f64() * 1e6),
                    other => bail!("the state server answered {} to a fetch", other.kind()),
                }
            }
            Ok(out)
        })
    })?
}

/// Round trips of a 64-byte request and a 4 KiB reply over plain TCP
/// between the server host and desktop host `desk_ip` (an echo thread in
/// the desktop's namespace), in microseconds: the kernel's share of a
/// fetch (veth pairs, bridges, token buckets, TCP), without TLS or the
/// daemons.
pub fn tcp_round_trips(
    desk_netns: &str,
    srv_netns: &str,
    desk_ip: std::net::Ipv4Addr,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    use std::io::{Read, Write};
    let ns = std::fs::File::open(format!("/run/netns/{desk_netns}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let echo = std::thread::spawn(move || -> anyhow::Result<()> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let listener = std::net::TcpListener::bind((desk_ip, 0))?;
        tx.send(listener.local_addr()?.port())?;
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let (mut req, reply) = ([0u8; 64], vec![7u8; PAGE_SIZE as usize]);
        while s.read_exact(&mut req).is_ok() {
            s.write_all(&reply)?;
        }
        Ok(())
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the echo thread did not start")?;
    let rtts = jettison_demo::procs::in_netns(srv_netns, move || -> anyhow::Result<Vec<f64>> {
        let mut s = std::net::TcpStream::connect((desk_ip, port))?;
        s.set_nodelay(true)?;
        let (req, mut reply) = ([1u8; 64], vec![0u8; PAGE_SIZE as usize]);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            s.write_all(&req)?;
            s.read_exact(&mut reply)?;
            out.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok(out)
    })??;
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(rtts)
}
