//! `jettison-peer`: the office's chat, mail and status services.
//!
//! Prints `jettison-peer ready chat=<addr> mail=<addr> status=<addr>` on
//! stdout once listening, then serves until SIGTERM/SIGINT.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use jettison_peer::{Peer, PeerConfig};
use tokio::signal::unix::{signal, SignalKind};

/// The office services a jettison test guest talks to.
#[derive(Debug, Parser)]
#[command(name = "jettison-peer")]
struct Args {
    /// Address the listeners bind to unless given one by one.
    #[arg(long, default_value = "0.0.0.0")]
    ip: IpAddr,
    /// Chat listener (default <ip>:5222).
    #[arg(long)]
    chat: Option<SocketAddr>,
    /// Mail listener (default <ip>:1110).
    #[arg(long)]
    mail: Option<SocketAddr>,
    /// Status listener (default <ip>:5280).
    #[arg(long)]
    status: Option<SocketAddr>,
    /// Milliseconds between the peer's PINGs.
    #[arg(long, default_value_t = 1000)]
    ping_ms: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut cfg = PeerConfig::on(a.ip);
    cfg.chat = a.chat.unwrap_or(cfg.chat);
    cfg.mail = a.mail.unwrap_or(cfg.mail);
    cfg.status = a.status.unwrap_or(cfg.status);
    cfg.ping_interval = Duration::from_millis(a.ping_ms.max(1));
    let peer = Peer::bind(cfg).await?;
    let (chat, mail, status) = peer.addrs()?;
    println!("jettison-peer ready chat={chat} mail={mail} status={status}");
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = peer.run() => r?,
        _ = term.recv() => tracing::info!("SIGTERM: exiting"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: exiting"),
    }
    Ok(())
}
