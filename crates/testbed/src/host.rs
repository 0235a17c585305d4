//! One test host: a network namespace with an address on the LAN, where
//! programs run and VM taps attach.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::sys;
use crate::TestbedError;

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A desktop: runs the agent and VMs at home.
    Desktop,
    /// The consolidation server.
    Server,
    /// The office services (chat, mail).
    Peer,
}

/// One test host: a network namespace with an address on the LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name: `d0`, `d1`, ..., `srv`, `peer`.
    pub name: String,
    /// The namespace (`<run id>-<name>`).
    pub netns: String,
    /// The host's LAN address (on its `br0`).
    pub ip: Ipv4Addr,
    /// What the host is for.
    pub role: Role,
}

impl Host {
    /// The host-local bridge carrying the address; VM taps go there.
    pub fn bridge(&self) -> &'static str {
        "br0"
    }

    /// A command that runs `program` inside this host's network namespace.
    ///
    /// Uses `nsenter --net=/run/netns/<ns>`, not `ip netns exec`: the latter
    /// also enters a private mount namespace, which would hide a FUSE mount
    /// made by the program (the server's lazy memory) from the test and from
    /// cleanup. Only the network namespace differs from the caller's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c = std::process::Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(program);
        c
    }

    /// [`Host::command`] for tokio.
    pub fn tokio_command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        self.command(program).into()
    }

    /// Runs `f` on a new thread that has joined this host's network
    /// namespace, and returns its result: sockets `f` opens belong to the
    /// host (e.g. to read a status port on the LAN from the test process).
    /// Only that thread changes namespace.
    pub fn run_in<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, TestbedError> {
        let path = PathBuf::from("/run/netns").join(&self.netns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| TestbedError::State(path, e))?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| TestbedError::Spec(format!("setns: {e}")))?;
            Ok(f())
        })
        .join()
        .map_err(|_| TestbedError::Spec("the closure panicked".into()))?
    }

    /// Creates tap `name` (at most 15 characters) in this host, attached to
    /// [`Host::bridge`] and up. QEMU opens it with
    /// `-netdev tap,ifname=<name>,script=no,downscript=no` when started with
    /// [`Host::command`].
    pub fn add_tap(&self, name: &str) -> Result<(), TestbedError> {
        if name.is_empty() || name.len() > 15 {
            return Err(TestbedError::Spec(format!(
                "interface name {name:?} must have 1..=15 characters"
            )));
        }
        let n = self.netns.as_str();
        sys::ip(&["-n", n, "tuntap", "add", "dev", name, "mode", "tap"])?;
        sys::ip(&["-n", n, "link", "set", name, "master", "br0"])?;
        sys::ip(&["-n", n, "link", "set", name, "up"])?;
        Ok(())
    }

    /// Deletes tap `name` from this host.
    pub fn del_tap(&self, name: &str) -> Result<(), TestbedError> {
        sys::ip(&["-n", &self.netns, "link", "del", name]).map(|_| ())
    }
}
