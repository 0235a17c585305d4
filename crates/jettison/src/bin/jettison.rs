//! The operator's command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jettison_wire::Message;

#[path = "../certs_cmd.rs"]
mod certs_cmd;
#[path = "../simulate_cmd.rs"]
mod simulate_cmd;
#[path = "../simulate_plot.rs"]
mod simulate_plot;

/// Operate jettison: move a desktop's VM to the consolidation server and back.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The desktop agent's control socket.
    #[arg(
        long,
        env = "JETTISON_AGENT_SOCKET",
        default_value = "/run/jettison/agent.sock",
        global = true
    )]
    agent_socket: PathBuf,
    /// The consolidation server's control socket.
    #[arg(
        long,
        env = "JETTISON_SERVER_SOCKET",
        default_value = "/run/jettison/server.sock",
        global = true
    )]
    server_socket: PathBuf,
    /// How to print the daemons' replies.
    #[arg(long, value_enum, default_value = "text", global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

/// Output formats of replies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// Show the VMs of the agent and of the server (whichever answer).
    Status,
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

const TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let agent = args.agent_socket.as_path();
    let server = args.server_socket.as_path();
    match &args.command {
        Command::Certs { command } => certs_cmd::run(command),
        Command::Simulate(args) => simulate_cmd::run(args),
        Command::Migrate { vm } => show(
            &args,
            ask(agent, Message::OpMigrate { vm: vm.clone() }).await?,
        ),
        Command::Reintegrate { vm, verify } => show(
            &args,
            ask(
                agent,
                Message::OpReintegrate {
                    vm: vm.clone(),
                    verify: *verify,
                },
            )
            .await?,
        ),
        Command::Start { vm } => show(
            &args,
            ask(agent, Message::OpStart { vm: vm.clone() }).await?,
        ),
        Command::Pause { vm } => show(
            &args,
            ask(server, Message::OpPause { vm: vm.clone() }).await?,
        ),
        Command::Resume { vm } => show(
            &args,
            ask(server, Message::OpResume { vm: vm.clone() }).await?,
        ),
        Command::Status => {
            let mut answered = 0;
            for socket in [agent, server] {
                match ask(socket, Message::OpStatus).await {
                    Ok(reply) => {
                        answered += 1;
                        show(&args, reply)?;
                    }
                    Err(e) => eprintln!("{e:#}"),
                }
            }
            anyhow::ensure!(answered > 0, "neither the agent nor the server answered");
            Ok(())
        }
    }
}

async fn ask(socket: &std::path::Path, msg: Message) -> anyhow::Result<Message> {
    let what = msg.kind();
    jettison_daemon::request(socket, &msg, TIMEOUT)
        .await
        .with_context(|| format!("{what} via {}", socket.display()))
}

fn show(args: &Args, reply: Message) -> anyhow::Result<()> {
    if args.format == Format::Json {
        println!("{}", render_json(&reply));
        return Ok(());
    }
    match reply {
        Message::OpMigrated(r) => println!(
            "{}: consolidated in {:.1} ms; device state {} bytes; {} MiB of memory stays on the desktop",
            r.vm,
            r.latency_ms,
            r.device_state_bytes,
            r.desktop_resident_bytes >> 20
        ),
        Message::OpReintegrated(r) => {
            println!(
                "{}: home in {:.1} ms; {} dirty pages, {} bytes sent home; {} pages fetched while away ({:.1} s)",
                r.vm, r.latency_ms, r.dirty_pages, r.bytes_sent, r.remote.pages_fetched, r.remote_seconds
            );
            if let Some(d) = r.image_digest {
                println!("  memory image digest {d}");
            }
        }
        Message::OpStatusReply { host, vms } => {
            println!("{host}:");
            if vms.is_empty() {
                println!("  no VMs");
            }
            for v in vms {
                print!("  {:<16} {:>6} MiB  {}", v.vm, v.memory_mib, v.state);
                if let Some(m) = v.memory {
                    print!(
                        "  faults {} fetched {} pages dirty {} p50 {} us p99 {} us",
                        m.faults, m.pages_fetched, m.dirty_pages, m.fault_latency_us.p50, m.fault_latency_us.p99
                    );
                }
                println!();
            }
        }
        Message::OpOk => println!("ok"),
        other => anyhow::bail!("unexpected reply {}", other.kind()),
    }
    Ok(())
}

fn render_json(reply: &Message) -> String {
    let value = match reply {
        Message::OpMigrated(r) => serde_json::to_value(r),
        Message::OpReintegrated(r) => serde_json::to_value(r),
        Message::OpStatusReply { host, vms } => Ok(serde_json::json!({ "host": host, "vms": vms })),
        _ => Ok(serde_json::json!({ "ok": true })),
    };
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
