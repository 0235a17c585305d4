//! The desktop agent daemon.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use jettison::cli::AgentArgs;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = AgentArgs::parse();
    if args.check_config {
        let outcome = jettison_agent::AgentConfig::load(&args.config)
            .map_err(|e| vec![e.to_string()])
            .and_then(|config| jettison_agent::check::check(&config).map_err(|p| p.problems));
        return Ok(jettison::cli::report_check(&args.config, outcome.map(drop)));
    }
    jettison_daemon::logging::init();
    let config = jettison_agent::AgentConfig::load(&args.config)?;
    let agent = jettison_agent::Agent::new(config)
        .context("starting the agent")?
        .reload_from(args.config);
    agent.run().await.context("agent failed")?;
    Ok(ExitCode::SUCCESS)
}
