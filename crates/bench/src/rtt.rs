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
    let text = jettison_demo::configs::tls_section(tls_dir, "server", "desktop");
    let table: toml::Table = toml::from_str(&text)?;
    let settings: jettison_tls::TlsSettings = table["tls"].clone().try_into()?;
    let tls = jettison_tls::TlsContext::load(&settings)?;
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
