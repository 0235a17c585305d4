//! desktop2's state server, as far as a prepare looks: the server dials
//! the state server a desktop advertises before it takes a VM (and refuses
//! one it cannot reach), so the attacker's prepares need one that answers.
//! It completes the TLS and jettison handshakes as desktop2 on the
//! attacker's host and serves nothing after.

use std::sync::Arc;

use jettison_testbed::Host;
use jettison_tls::TlsContext;
use jettison_wire::{Role, Transport};

/// The port the attacker advertises (the agents' default).
pub const PORT: u16 = 7401;

/// Listens on `host`'s address at [`PORT`] with `tls` (desktop2's,
/// accepting the server) until the returned task is aborted.
pub fn start(host: &Host, tls: Arc<TlsContext>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = std::net::SocketAddr::from((host.ip, PORT));
    let listener = host.run_in(move || std::net::TcpListener::bind(addr))??;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Ok((conn, _)) = tls.accept(tcp).await {
                    let mut t = Transport::new(conn);
                    let host = tls.host_name().to_string();
                    if jettison_wire::handshake::accept(&mut t, &[Role::Server], &host)
                        .await
                        .is_ok()
                    {
                        // Holds the connection until the server closes it.
                        let _ = t.recv().await;
                    }
                }
            });
        }
    }))
}
