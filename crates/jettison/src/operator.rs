//! What the `jettison` command does with the daemons' control sockets:
//! requests, and their replies shown as text or JSON.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use jettison_wire::Message;

use crate::cli::{Command, Format, OperatorArgs};
use crate::exit::{Classified, Failure};
use crate::{certs_cmd, power_view, simulate_cmd};

const TIMEOUT: Duration = Duration::from_secs(600);

/// Runs one command.
pub async fn run(args: &OperatorArgs) -> anyhow::Result<()> {
    let agent = args.agent_socket.as_path();
    let server = args.server_socket.as_path();
    let vm_request = |socket: &Path, msg: Message| (socket.to_path_buf(), msg);
    let (socket, msg) = match &args.command {
        Command::Certs { command } => return certs_cmd::run(command),
        Command::Simulate(a) => return simulate_cmd::run(a),
        Command::Status => return status(args).await,
        Command::Power => return power(args).await,
        Command::Migrate { vm } => vm_request(agent, Message::OpMigrate { vm: vm.clone() }),
        Command::Reintegrate { vm, verify } => vm_request(
            agent,
            Message::OpReintegrate {
                vm: vm.clone(),
                verify: *verify,
            },
        ),
        Command::Start { vm } => vm_request(agent, Message::OpStart { vm: vm.clone() }),
        Command::Pause { vm } => vm_request(server, Message::OpPause { vm: vm.clone() }),
        Command::Resume { vm } => vm_request(server, Message::OpResume { vm: vm.clone() }),
    };
    show(args.format, ask(&socket, msg).await?)
}

async fn ask(socket: &Path, msg: Message) -> anyhow::Result<Message> {
    let what = msg.kind();
    jettison_daemon::request(socket, &msg, TIMEOUT)
        .await
        .with_context(|| format!("{what} via {}", socket.display()))
}

/// `jettison status`: asks each daemon whose control socket exists here
/// (a desktop has no server socket: not an error). A socket that exists
/// but does not answer is reported after the others' replies.
async fn status(args: &OperatorArgs) -> anyhow::Result<()> {
    let sockets = [args.agent_socket.as_path(), args.server_socket.as_path()];
    let present: Vec<&Path> = sockets.into_iter().filter(|s| s.exists()).collect();
    if present.is_empty() {
        return Err(Classified::new(
            Failure::Unreachable,
            format!(
                "no daemon here: neither {} nor {} exists (is jettison-agent or jettison-server running?)",
                args.agent_socket.display(),
                args.server_socket.display()
            ),
        )
        .into());
    }
    let mut first_error = None;
    for socket in present {
        match ask(socket, Message::OpStatus).await {
            Ok(reply) => show(args.format, reply)?,
            Err(e) if first_error.is_none() => first_error = Some(e),
            Err(e) => crate::report(args.format, &e),
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `jettison power`: the agent's power record.
async fn power(args: &OperatorArgs) -> anyhow::Result<()> {
    let reply = ask(&args.agent_socket, Message::OpPower).await?;
    let Message::OpPowerReply { json } = reply else {
        return Err(unexpected(&reply).into());
    };
    let record: jettison_agent::power::PowerRecord = serde_json::from_str(&json)
        .map_err(|e| Classified::new(Failure::Protocol, format!("the power record: {e}")))?;
    match args.format {
        Format::Json => println!("{json}"),
        Format::Text => print!("{}", power_view::render(&record)),
    }
    Ok(())
}

fn unexpected(reply: &Message) -> Classified {
    Classified::new(
        Failure::Protocol,
        format!("unexpected reply {}", reply.kind()),
    )
}

fn show(format: Format, reply: Message) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", render_json(&reply)?);
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
        other => return Err(unexpected(&other).into()),
    }
    Ok(())
}

fn render_json(reply: &Message) -> anyhow::Result<String> {
    let value = match reply {
        Message::OpMigrated(r) => serde_json::to_value(r)?,
        Message::OpReintegrated(r) => serde_json::to_value(r)?,
        Message::OpStatusReply { host, vms } => serde_json::json!({ "host": host, "vms": vms }),
        Message::OpOk => serde_json::json!({ "ok": true }),
        other => return Err(unexpected(other).into()),
    };
    Ok(value.to_string())
}
