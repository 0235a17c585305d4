//! The desktop agent daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs this desktop's VMs, migrates them to the consolidation server when
/// asked, and serves their memory while they are away.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jettison/agent.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jettison_daemon::logging::init();
    let args = Args::parse();
    let config = jettison_agent::AgentConfig::load(&args.config)?;
    let agent = jettison_agent::Agent::new(config)
        .context("starting the agent")?
        .reload_from(args.config);
    agent.run().await.context("agent failed")
}
