//! The host side of a VM's NIC: a tap device on the host's LAN bridge, made
//! before QEMU starts and removed when the VM leaves the host. The VM keeps
//! its MAC and IP on every host; QEMU announces it after each move so the
//! switches learn its new port.
//!
//! A tap's name is a hash of its VM's name (the kernel allows 15
//! characters), so another link may carry it: a tap of another VM whose
//! hash collides, or anything an operator made. Each tap is tagged with its
//! VM (its link alias, `jettison-vm:<vm>`), and [`Tap::create`] replaces
//! only a stale tap tagged for the very same VM (left by a crashed run); any
//! other link of that name is left alone and the creation fails, naming it.

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

/// The tag (link alias) of `vm`'s tap.
fn tag(vm: &str) -> String {
    format!("jettison-vm:{vm}")
}

fn ip(args: &[&str]) -> Result<(), String> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A link that exists, as far as a tap's creation cares.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    /// Its kind (`tun` for a tap, `bridge`, `veth`..., empty for a
    /// physical NIC).
    kind: String,
    /// A tun device's type (`tap` or `tun`).
    tun_type: Option<String>,
    /// Its alias (a tap's tag).
    alias: Option<String>,
}

impl Link {
    /// Whether this is a tap tagged for `vm`.
    fn is_tap_of(&self, vm: &str) -> bool {
        self.kind == "tun"
            && self.tun_type.as_deref() == Some("tap")
            && self.alias.as_deref() == Some(tag(vm).as_str())
    }

    fn describe(&self) -> String {
        let kind = match (self.kind.as_str(), &self.tun_type) {
            ("tun", Some(t)) => t.clone(),
            ("", _) => "device".to_string(),
            (k, _) => k.to_string(),
        };
        match &self.alias {
            Some(a) => format!("a {kind} with alias {a:?}"),
            None => format!("a {kind} without a jettison tag"),
        }
    }
}

/// Parses `ip -d -j link show dev <name>`.
fn parse_link(json: &[u8]) -> Result<Link, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("unreadable `ip -j` output: {e}"))?;
    let l = v
        .get(0)
        .ok_or_else(|| "`ip -j` listed no link".to_string())?;
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let info = l.get("linkinfo");
    Ok(Link {
        kind: text(info.and_then(|i| i.get("info_kind"))).unwrap_or_default(),
        tun_type: text(
            info.and_then(|i| i.get("info_data"))
                .and_then(|d| d.get("type")),
        ),
        alias: text(l.get("ifalias")).filter(|a| !a.is_empty()),
    })
}

/// The link named `name`, if there is one.
fn link(name: &str) -> Result<Option<Link>, String> {
    let out = Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", name])
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("does not exist") {
            return Ok(None);
        }
        return Err(format!("`ip link show dev {name}` failed: {}", err.trim()));
    }
    parse_link(&out.stdout).map(Some)
}

impl Tap {
    /// Creates the tap for `vm`, tagged with it, and attaches it to
    /// `bridge`. A stale tap of this VM (a crashed run's) is replaced; any
    /// other link of that name is left alone and this fails, naming it.
    pub fn create(vm: &str, bridge: &str) -> Result<Tap, TapError> {
        Self::create_for(vm, bridge, None)
    }

    /// [`Self::create`], for a QEMU that runs as `owner` (uid, gid): the
    /// tap is made that user's (`ip tuntap add ... user U group G`), so that
    /// it may attach to it without privileges.
    pub fn create_for(vm: &str, bridge: &str, owner: Option<(u32, u32)>) -> Result<Tap, TapError> {
        let name = tap_name(vm);
        let err = |message: String| TapError {
            tap: name.clone(),
            bridge: bridge.into(),
            message,
        };
        match link(&name).map_err(err)? {
            None => {}
            Some(l) if l.is_tap_of(vm) => {
                tracing::info!(vm, tap = %name, "replacing the stale tap a previous run left");
                ip(&["link", "del", &name]).map_err(err)?;
            }
            Some(l) => {
                return Err(err(format!(
                    "a link of that name exists and is not a tap of VM {vm} ({}); it is left \
                     alone: if it is stale, remove it (`ip link del {name}`)",
                    l.describe()
                )))
            }
        }
        let mut add = vec!["tuntap", "add", "dev", &name, "mode", "tap"];
        let owner = owner.map(|(u, g)| (u.to_string(), g.to_string()));
        if let Some((u, g)) = &owner {
            add.extend(["user", u, "group", g]);
        }
        ip(&add).map_err(err)?;
        let tap = Tap { name: name.clone() };
        ip(&["link", "set", "dev", &name, "alias", &tag(vm)]).map_err(err)?;
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
        let found = link(&name).map_err(err)?;
        let found = found.ok_or_else(|| err("no such tap".into()))?;
        if found.kind != "tun" || found.tun_type.as_deref() != Some("tap") {
            return Err(err(format!(
                "the link of that name is {}, not a tap",
                found.describe()
            )));
        }
        if found.alias.is_some() && !found.is_tap_of(vm) {
            return Err(err(format!(
                "the link of that name is {}, not this VM's",
                found.describe()
            )));
        }
        let tap = Tap { name: name.clone() };
        if found.alias.is_none() {
            // One made before taps were tagged: tagged now, so that a
            // later `create` knows it for this VM's.
            if let Err(e) = ip(&["link", "set", "dev", &name, "alias", &tag(vm)]) {
                tracing::warn!(vm, tap = %name, "tagging the tap: {e}");
            }
        }
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
    fn links_parse_from_ip_json() {
        let tap = br#"[{"ifname":"jtap1","linkinfo":{"info_kind":"tun","info_data":{"type":"tap","pi":false}},"ifalias":"jettison-vm:vm1"}]"#;
        let l = parse_link(tap).unwrap();
        assert!(l.is_tap_of("vm1"));
        assert!(!l.is_tap_of("vm2"));
        assert_eq!(l.describe(), "a tap with alias \"jettison-vm:vm1\"");
        let nic = br#"[{"ifname":"eth0","flags":["UP"]}]"#;
        let l = parse_link(nic).unwrap();
        assert!(!l.is_tap_of("vm1"));
        assert_eq!(l.describe(), "a device without a jettison tag");
        let tun = br#"[{"linkinfo":{"info_kind":"tun","info_data":{"type":"tun"}},"ifalias":"jettison-vm:vm1"}]"#;
        assert!(
            !parse_link(tun).unwrap().is_tap_of("vm1"),
            "a tun is no tap"
        );
        let bridge = br#"[{"linkinfo":{"info_kind":"bridge"},"ifalias":""}]"#;
        assert_eq!(
            parse_link(bridge).unwrap().describe(),
            "a bridge without a jettison tag"
        );
        assert!(parse_link(b"[]").is_err());
        assert!(parse_link(b"not json").is_err());
    }

    fn run_ip(args: &[&str]) {
        ip(args).unwrap();
    }

    fn exists(name: &str) -> bool {
        link(name).unwrap().is_some()
    }

    /// For real, in a network namespace of a thread of its own (gone with
    /// it, and every link in it): a tap replaces only a stale tap of its
    /// own VM; any other link of its name is left alone and named.
    #[test]
    fn a_tap_replaces_only_a_stale_tap_of_its_own_vm() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (a network namespace)");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            run_ip(&["link", "add", "br-test", "type", "bridge"]);
            let vm = "victim";
            let name = tap_name(vm);

            // A fresh tap is tagged, attached, and goes when dropped.
            let tap = Tap::create(vm, "br-test").unwrap();
            assert!(link(&name).unwrap().unwrap().is_tap_of(vm));
            drop(tap);
            assert!(!exists(&name));

            // A crashed run's tap of this VM is replaced.
            let left = Tap::create(vm, "br-test").unwrap().keep();
            let tap = Tap::create(vm, "br-test").unwrap();
            assert_eq!(tap.name(), left);
            assert!(link(&name).unwrap().unwrap().is_tap_of(vm));

            // Another VM's tap, an untagged tap, any other link: left
            // alone, and the error names it.
            drop(tap);
            let others: [(&[&str], &str); 3] = [
                (
                    &["tuntap", "add", "dev", &name, "mode", "tap"],
                    "a tap with alias \"jettison-vm:other\"",
                ),
                (
                    &["tuntap", "add", "dev", &name, "mode", "tap"],
                    "a tap without a jettison tag",
                ),
                (
                    &["link", "add", &name, "type", "bridge"],
                    "a bridge without a jettison tag",
                ),
            ];
            for (i, (make, what)) in others.into_iter().enumerate() {
                run_ip(make);
                if i == 0 {
                    run_ip(&["link", "set", "dev", &name, "alias", "jettison-vm:other"]);
                }
                let e = Tap::create(vm, "br-test").unwrap_err().to_string();
                for needle in [name.as_str(), what, "left alone", "ip link del"] {
                    assert!(e.contains(needle), "{needle:?} in {e}");
                }
                assert!(exists(&name), "{what} deleted");
                let before = link(&name).unwrap().unwrap();
                assert!(!before.is_tap_of(vm));
                // Nor is it taken over as this VM's.
                if i != 1 {
                    assert!(Tap::adopt(vm, "br-test").is_err(), "{what} adopted");
                    assert!(exists(&name), "{what} deleted by adopt");
                }
                run_ip(&["link", "del", &name]);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn tap_names_fit_the_kernel_limit_and_differ() {
        let a = tap_name("a-very-long-virtual-machine-name-indeed");
        assert!(a.len() <= 15, "{a}");
        assert_ne!(tap_name("vm1"), tap_name("vm2"));
        assert_eq!(tap_name("vm1"), tap_name("vm1"));
    }
}
