//! The operator's command line (`jettison`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{certs_cmd, exit, simulate_cmd};

/// Operate jettison: move a desktop's VM to the consolidation server and back.
#[derive(Parser, Debug)]
#[command(name = "jettison", version, after_help = exit::HELP)]
pub struct OperatorArgs {
    /// The desktop agent's control socket.
    #[arg(
        long,
        env = "JETTISON_AGENT_SOCKET",
        default_value = "/run/jettison/agent.sock",
        global = true
    )]
    pub agent_socket: PathBuf,
    /// The consolidation server's control socket.
    #[arg(
        long,
        env = "JETTISON_SERVER_SOCKET",
        default_value = "/run/jettison/server.sock",
        global = true
    )]
    pub server_socket: PathBuf,
    /// How to print the daemons' replies (and, with json, errors: one
    /// object {"error": {"code", "kind", "message"}} on stdout).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of replies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

/// The operator's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Move a VM's CPU and device state to the server; memory follows on demand.
    Migrate {
        /// VM name.
        vm: String,
    },
    /// Bring a consolidated VM home with the pages it changed.
    Reintegrate {
        /// VM name.
        vm: String,
        /// Digest the desktop's memory file before the VM resumes.
        #[arg(long)]
        verify: bool,
    },
    /// Boot a VM at home from its disk: one never booted, or whose guest
    /// powered off (not one that is away or already running).
    Start {
        /// VM name.
        vm: String,
    },
    /// Show the VMs of the agent and of the server: each daemon whose
    /// control socket exists on this host is asked (a desktop has no
    /// server socket, and that is no error).
    Status,
    /// Show this desktop's power record: its state now, time in each
    /// state, wakes and their causes, the fetches it served asleep and
    /// awake, the sleep policy in force (the agent's `[power]`).
    Power,
    /// Pause a consolidated VM on the server and flush its dirty pages.
    Pause {
        /// VM name.
        vm: String,
    },
    /// Resume a paused consolidated VM.
    Resume {
        /// VM name.
        vm: String,
    },
    /// Simulate a fleet: energy of each sleep policy against the oracle, plain
    /// sleep and full migration.
    Simulate(simulate_cmd::SimulateArgs),
    /// Create the deployment's CA and host certificates (mutual TLS), and
    /// revoke host certificates (the CA's CRL).
    Certs {
        #[command(subcommand)]
        command: certs_cmd::CertsCommand,
    },
}

/// Whether the raw command line asks for JSON output: a usage error is
/// reported before clap has parsed `--format`.
pub fn wants_json<S: AsRef<str>>(args: &[S]) -> bool {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    args.contains(&"--format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_is_a_command_and_json_is_seen_before_parsing() {
        let a = OperatorArgs::try_parse_from(["jettison", "--format", "json", "power"]).unwrap();
        assert!(matches!(a.command, Command::Power));
        assert_eq!(a.format, Format::Json);
        assert!(wants_json(&["jettison", "--format", "json", "bogus"]));
        assert!(wants_json(&["jettison", "bogus", "--format=json"]));
        assert!(!wants_json(&["jettison", "--format", "text", "json"]));
        assert!(!wants_json(&["jettison", "json"]));
    }

    #[test]
    fn usage_errors_exit_with_the_usage_code() {
        let e = OperatorArgs::try_parse_from(["jettison", "bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), i32::from(crate::exit::Failure::Usage.code()));
        let e = OperatorArgs::try_parse_from(["jettison", "migrate"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
