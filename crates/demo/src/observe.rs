//! The daemons' HTTP listeners in a cluster: their metrics (`/metrics`)
//! and the server's dashboard, read from inside their hosts, and the
//! forwarder that shows the dashboard on this machine's loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};
use jettison_testbed::{Forwarder, Host, Lan};

use crate::Cluster;

/// Where the demo shows the server's dashboard on this machine (the
/// server's own default port), if free.
pub const DASHBOARD_PORT: u16 = jettison_metrics::SERVER_PORT;

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// The desktop's agent.
    Agent,
    /// The consolidation server.
    Server,
}

/// A reply: status code and body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
}

/// An HTTP/1.0 GET of `path` at `addr` (one request, the connection closed
/// by the server after its reply).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP reply from {addr}: {text:?}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let content_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-type")
            .then(|| v.trim().to_owned())
    });
    Ok(HttpReply {
        status,
        content_type,
        body: body.to_owned(),
    })
}

impl Cluster {
    /// The address `daemon`'s HTTP listener binds, in its host.
    pub fn metrics_addr(&self, daemon: Daemon) -> SocketAddr {
        match daemon {
            Daemon::Agent => self.agent_metrics,
            Daemon::Server => self.server_metrics,
        }
    }

    /// GETs `path` from `daemon`'s HTTP listener, from inside its host.
    pub fn http_get(&self, daemon: Daemon, path: &str) -> anyhow::Result<HttpReply> {
        let addr = self.metrics_addr(daemon);
        let path = path.to_owned();
        match self.lan() {
            Some(lan) => daemon_host(lan, daemon).run_in(move || http_get(addr, &path))?,
            None => http_get(addr, &path),
        }
    }

    /// Forwards `listen` on this machine to the server's HTTP listener (in
    /// its test host on a LAN): the dashboard on this machine's loopback.
    pub fn dashboard_forwarder(&self, listen: SocketAddr) -> anyhow::Result<Option<Forwarder>> {
        self.http_forwarder(Daemon::Server, listen)
    }

    /// Forwards `listen` on this machine to `daemon`'s HTTP listener in its
    /// test host (LAN runs; `None` on loopback, where it listens on this
    /// machine already).
    pub fn http_forwarder(
        &self,
        daemon: Daemon,
        listen: SocketAddr,
    ) -> anyhow::Result<Option<Forwarder>> {
        let Some(lan) = self.lan() else {
            return Ok(None);
        };
        Ok(Some(Forwarder::start(
            listen,
            daemon_host(lan, daemon),
            self.metrics_addr(daemon),
        )?))
    }
}

/// The test host `daemon` runs in.
fn daemon_host(lan: &Lan, daemon: Daemon) -> &Host {
    match daemon {
        Daemon::Agent => lan.desktop(0),
        Daemon::Server => lan.server(),
    }
}
