//! Plumbing shared by the desktop agent and the consolidation server:
//! listeners that run the handshake on every connection, the operator's
//! control socket, crash-safe files (`durable`), the translation between a VM's machine description on
//! the wire and a QEMU launch (boot files found by digest in a server's
//! image directories: `images`), and the TLS settings' reload on SIGHUP (`reload`).

pub mod durable;
pub mod fault;
pub mod images;
pub mod listen;
pub mod machine;
pub mod notify;
pub mod paths;
pub mod refusals;
pub mod reload;

pub use control::{hostname, request, ControlError};
pub use images::BootIndex;
pub use listen::{bind_control, next_request};
pub use listen::{dial, serve_tls, serve_unix, ConnectionHandler, DialError, Peer};
pub use machine::{describe_machine, resolve_machine, MachineError};
pub mod control;
pub mod logging;
pub mod tap;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
