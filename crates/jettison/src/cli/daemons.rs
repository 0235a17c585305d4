//! The daemons' command lines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// What `--check-config` answers, for `--help` and the manual pages.
pub const CHECK_CONFIG_HELP: &str = "\
With --check-config the daemon reads the configuration, runs the checks it \
runs at start-up (TLS material, CRL, directories, boot files, programs it \
needs) without acting on anything, prints each problem and exits: 0 valid, \
78 invalid (EX_CONFIG), 2 bad command line.";

/// Runs this desktop's VMs, migrates them to the consolidation server when
/// asked, and serves their memory while they are away.
#[derive(Parser, Debug)]
#[command(name = "jettison-agent", version, after_help = CHECK_CONFIG_HELP)]
pub struct AgentArgs {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jettison/agent.toml")]
    pub config: PathBuf,
    /// Check the configuration and exit (0 valid, 78 invalid).
    #[arg(long)]
    pub check_config: bool,
}

/// Takes idle desktops' VMs and runs them with memory fetched on demand.
#[derive(Parser, Debug)]
#[command(name = "jettison-server", version, after_help = CHECK_CONFIG_HELP)]
pub struct ServerArgs {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/jettison/server.toml")]
    pub config: PathBuf,
    /// Check the configuration and exit (0 valid, 78 invalid).
    #[arg(long)]
    pub check_config: bool,
}

/// The exit status of a configuration that fails its checks (sysexits'
/// `EX_CONFIG`, which systemd also names).
pub const EXIT_INVALID_CONFIG: u8 = 78;

/// Prints the outcome of `--check-config` (each problem on stderr, or that
/// the file is valid on stdout) and gives the exit status.
pub fn report_check(path: &Path, outcome: Result<(), Vec<String>>) -> ExitCode {
    match outcome {
        Ok(()) => {
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            let n = problems.len();
            let s = if n == 1 { "" } else { "s" };
            eprintln!("{}: invalid ({n} problem{s}):", path.display());
            for p in &problems {
                eprintln!("  - {p}");
            }
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_takes_the_config_path() {
        let a = AgentArgs::try_parse_from(["jettison-agent", "--check-config", "-c", "/x.toml"])
            .unwrap();
        assert!(a.check_config);
        assert_eq!(a.config, PathBuf::from("/x.toml"));
        let s = ServerArgs::try_parse_from(["jettison-server"]).unwrap();
        assert!(!s.check_config);
        assert_eq!(s.config, PathBuf::from("/etc/jettison/server.toml"));
    }
}
