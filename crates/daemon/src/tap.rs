//! The host side of a VM's NIC: a tap device on the host's LAN bridge, made
//! before QEMU starts and removed when the VM leaves the host. The VM keeps
//! its MAC and IP on every host; QEMU announces it after each move so the
//! switches learn its new port.

use std::process::Command;

/// Why a tap could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("tap {tap} on bridge {bridge}: {message}")]
pub struct TapError {
    tap: String,
    bridge: String,
    message: String,
}

/// A tap device attached to a bridge; deleted on drop.
#[derive(Debug)]
pub struct Tap {
    name: String,
}

/// The tap's name for a VM: at most 15 characters (the kernel's limit), the
/// same on every host.
pub fn tap_name(vm: &str) -> String {
    let h = blake3::hash(vm.as_bytes()).to_hex();
    format!("jtap{}", &h[..10])
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tap {
    /// Creates (or re-creates, if a crashed run left one) the tap for `vm`
    /// and attaches it to `bridge`.
    pub fn create(vm: &str, bridge: &str) -> Result<Tap, TapError> {
        let name = tap_name(vm);
        let err = |message: String| TapError {
            tap: name.clone(),
            bridge: bridge.into(),
            message,
        };
        let _ = ip(&["link", "del", &name]);
        ip(&["tuntap", "add", "dev", &name, "mode", "tap"]).map_err(err)?;
        let tap = Tap { name: name.clone() };
        ip(&["link", "set", &name, "master", bridge]).map_err(err)?;
        ip(&["link", "set", &name, "up"]).map_err(err)?;
        tracing::debug!(vm, tap = %name, bridge, "tap ready");
        Ok(tap)
    }

    /// Takes over the tap a QEMU left running by a previous daemon still
    /// uses (that QEMU holds it open: deleting and re-creating it would cut
    /// the guest off). It must exist; it is (re)attached to `bridge` and set
    /// up, which changes nothing if it already is. Dropped, it is deleted as
    /// a created one is.
    pub fn adopt(vm: &str, bridge: &str) -> Result<Tap, TapError> {
        let name = tap_name(vm);
        let err = |message: String| TapError {
            tap: name.clone(),
            bridge: bridge.into(),
            message,
        };
        ip(&["link", "show", "dev", &name]).map_err(|e| err(format!("no such tap: {e}")))?;
        let tap = Tap { name: name.clone() };
        let attached = ip(&["link", "set", &name, "master", bridge])
            .and_then(|()| ip(&["link", "set", &name, "up"]));
        if let Err(e) = attached {
            // Not ours to delete on this failure: the guest may still use it.
            tap.keep();
            return Err(err(e));
        }
        tracing::debug!(vm, tap = %name, bridge, "tap taken over");
        Ok(tap)
    }

    /// The device name (for QEMU's `-netdev tap,ifname=`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the device after this value is gone (for a QEMU left running
    /// on it); gives its name. A later [`Tap::create`] for the same VM
    /// replaces it.
    pub fn keep(mut self) -> String {
        let name = std::mem::take(&mut self.name);
        std::mem::forget(self);
        name
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Err(e) = ip(&["link", "del", &self.name]) {
            tracing::warn!(tap = %self.name, "removing tap: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_the_kernel_limit_and_differ() {
        let a = tap_name("a-very-long-virtual-machine-name-indeed");
        assert!(a.len() <= 15, "{a}");
        assert_ne!(tap_name("vm1"), tap_name("vm2"));
        assert_eq!(tap_name("vm1"), tap_name("vm1"));
    }
}
