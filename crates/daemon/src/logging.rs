//! Log setup for the daemons: `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info`). Colours only on a terminal: journald and log files get
//! plain text.

use std::io::IsTerminal;

/// Installs the global subscriber; call once at start.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
