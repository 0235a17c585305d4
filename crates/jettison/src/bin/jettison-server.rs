//! The consolidation server daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Takes idle desktops' VMs and runs them with memory fetched on demand.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jettison/server.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jettison_daemon::logging::init();
    let args = Args::parse();
    let config = jettison_server::ServerConfig::load(&args.config).map_err(anyhow::Error::msg)?;
    let server = jettison_server::Server::new(config)
        .context("starting the server")?
        .reload_from(args.config);
    server.run().await.context("server failed")
}
