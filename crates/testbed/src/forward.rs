//! A TCP forwarder from the caller's network namespace (the machine's
//! loopback, say) to an address inside a test host: each accepted
//! connection is matched with one the forwarder opens from inside the
//! host's namespace ([`Host::run_in`]), and bytes are copied both ways.
//! The demo uses it to show the server's dashboard on the machine's
//! `127.0.0.1`. Dropping it stops accepting; connections under way end
//! with their peers.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::{Host, TestbedError};

/// A running forwarder.
#[derive(Debug)]
pub struct Forwarder {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens on `listen` (in the caller's namespace) and forwards each
    /// connection to `target` as seen from inside `host`.
    pub fn start(
        listen: SocketAddr,
        host: &Host,
        target: SocketAddr,
    ) -> Result<Self, TestbedError> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| TestbedError::Spec(format!("forwarder on {listen}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| TestbedError::Spec(format!("forwarder on {listen}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (host, flag) = (host.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let host = host.clone();
                std::thread::spawn(move || {
                    if let Err(e) = forward(client, &host, target) {
                        tracing::debug!("forwarder to {target}: {e}");
                    }
                });
            }
        });
        Ok(Forwarder {
            local,
            stop,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Connects to `target` from inside `host` and copies both ways until
/// both directions end.
fn forward(client: TcpStream, host: &Host, target: SocketAddr) -> io::Result<()> {
    let server = host
        .run_in(move || TcpStream::connect(target))
        .map_err(io::Error::other)??;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.local);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::{is_root, Lan, LanSpec};

    #[test]
    fn bytes_reach_a_listener_inside_a_test_host_and_come_back() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let lan = Lan::create(&LanSpec { desktops: 1 }).unwrap();
        let server = lan.server().clone();
        // An echo listener on the server host's own loopback, unreachable
        // from here but through the forwarder.
        let listener = server
            .run_in(|| TcpListener::bind("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        let inside = listener.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let fwd = Forwarder::start("127.0.0.1:0".parse().unwrap(), &server, inside).unwrap();
        let mut c = TcpStream::connect(fwd.local_addr()).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        echo.join().unwrap();
        drop(fwd);
    }
}
