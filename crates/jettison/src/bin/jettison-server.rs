//! The consolidation server daemon.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use jettison::cli::ServerArgs;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = ServerArgs::parse();
    if args.check_config {
        let outcome = jettison_server::ServerConfig::load(&args.config)
            .map_err(|e| vec![e])
            .and_then(|config| jettison_server::check::check(&config).map_err(|p| p.problems));
        return Ok(jettison::cli::report_check(&args.config, outcome.map(drop)));
    }
    jettison_daemon::logging::init();
    let config = jettison_server::ServerConfig::load(&args.config).map_err(anyhow::Error::msg)?;
    let server = jettison_server::Server::new(config)
        .context("starting the server")?
        .reload_from(args.config);
    server.run().await.context("server failed")?;
    Ok(ExitCode::SUCCESS)
}
