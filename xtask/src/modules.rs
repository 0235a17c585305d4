//! Choosing the kernel modules for the initramfs and their load order.
//!
//! There is no modprobe (nor modules.dep) in the guest: `/init` loads the
//! modules listed in `/etc/jettison/modules` with `insmod`, in order.
//! Whether a module is built in is read from the package's `boot/config-*`
//! and `modules.builtin`.

use std::collections::BTreeMap;

/// Modules wanted, in preferred load order, with their config symbol. The
/// actual order also honours each module's `depends=` ([`load_order`]): in
/// Debian's 6.1 kernel `virtio` depends on `virtio_ring`, for example.
///
/// The disk: `ext4` (which also mounts ext2) has `depends=jbd2,mbcache,crc16`
/// in Debian 6.1 (the package ships no modules.dep; `depends=` comes from
/// each module's `.modinfo`). `crc32c_generic` is not a declared dependency:
/// ext4 and jbd2 ask the crypto API for "crc32c" at mount time (metadata
/// checksums), which would need a working modprobe; loading it up front
/// avoids that. [`unmet_dependencies`] catches a missing entry at build time.
pub const ORDER: &[(&str, &str)] = &[
    ("virtio_ring", "CONFIG_VIRTIO"),
    ("virtio", "CONFIG_VIRTIO"),
    ("virtio_pci_modern_dev", "CONFIG_VIRTIO_PCI_LIB"),
    ("virtio_pci_legacy_dev", "CONFIG_VIRTIO_PCI_LIB_LEGACY"),
    ("virtio_pci", "CONFIG_VIRTIO_PCI"),
    ("failover", "CONFIG_FAILOVER"),
    ("net_failover", "CONFIG_NET_FAILOVER"),
    ("virtio_net", "CONFIG_VIRTIO_NET"),
    ("virtio_blk", "CONFIG_VIRTIO_BLK"),
    ("crc16", "CONFIG_CRC16"),
    ("mbcache", "CONFIG_FS_MBCACHE"),
    ("jbd2", "CONFIG_JBD2"),
    ("crc32c_generic", "CONFIG_CRYPTO_CRC32C"),
    ("ext4", "CONFIG_EXT4_FS"),
];

/// What to do about one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Built into the kernel: nothing to load.
    BuiltIn,
    /// A loadable module at this path relative to `lib/modules/<release>`.
    Load(String),
    /// Neither built in nor shipped.
    Missing,
}

/// The value (`y`, `m`, ...) of `symbol` in a kernel config, if set.
pub fn config_value<'a>(config: &'a str, symbol: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(symbol)?.strip_prefix('='))
}

/// Module name of a path such as `kernel/net/core/failover.ko.xz`.
pub fn module_name(rel: &str) -> Option<&str> {
    let file = rel.rsplit('/').next()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
}

/// Decides, for every module of [`ORDER`], whether it is built in, to be
/// loaded from `found` (name -> relative path), or missing.
pub fn plan(
    config: &str,
    builtin: &str,
    found: &BTreeMap<String, String>,
) -> Vec<(&'static str, Plan)> {
    let builtin_names: Vec<&str> = builtin.lines().filter_map(module_name).collect();
    ORDER
        .iter()
        .map(|&(name, sym)| {
            let p = if config_value(config, sym) == Some("y") || builtin_names.contains(&name) {
                Plan::BuiltIn
            } else if let Some(rel) = found.get(name) {
                Plan::Load(rel.clone())
            } else {
                Plan::Missing
            };
            (name, p)
        })
        .collect()
}

/// The `depends=` list of a module's `.modinfo` section (from the raw `.ko`).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(pos) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[pos + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Orders `names` (given in preferred order) so that every module comes
/// after the dependencies it has among `names`. Dependencies outside `names`
/// (built in, or not shipped) are ignored here.
pub fn load_order(names: &[&str], deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    fn visit(
        n: &str,
        names: &[&str],
        deps: &BTreeMap<String, Vec<String>>,
        out: &mut Vec<String>,
        seen: &mut Vec<String>,
    ) {
        if seen.iter().any(|s| s == n) {
            return;
        }
        seen.push(n.to_string());
        for d in deps.get(n).into_iter().flatten() {
            if names.contains(&d.as_str()) {
                visit(d, names, deps, out, seen);
            }
        }
        out.push(n.to_string());
    }
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    for n in names {
        visit(n, names, deps, &mut out, &mut seen);
    }
    out
}

/// Dependencies (`module -> depends`) of shipped modules that are neither
/// shipped nor built in (`builtin`: the `modules.builtin` text), as
/// `(module, dependency)` pairs. Non-empty means [`ORDER`] lacks an entry.
pub fn unmet_dependencies(
    deps: &BTreeMap<String, Vec<String>>,
    builtin: &str,
) -> Vec<(String, String)> {
    let builtin_names: Vec<&str> = builtin.lines().filter_map(module_name).collect();
    let mut out = Vec::new();
    for (m, ds) in deps {
        for d in ds {
            // Module names use '_' where file names may use '-'.
            let shipped = deps
                .keys()
                .any(|k| k.replace('-', "_") == d.replace('-', "_"));
            let built_in = builtin_names
                .iter()
                .any(|b| b.replace('-', "_") == d.replace('-', "_"));
            if !shipped && !built_in {
                out.push((m.clone(), d.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name("kernel/net/core/failover.ko"), Some("failover"));
        assert_eq!(
            module_name("kernel/drivers/net/virtio_net.ko.xz"),
            Some("virtio_net")
        );
        assert_eq!(module_name("modules.order"), None);
    }

    #[test]
    fn depends_from_modinfo() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=virtio_ring,virtio\0retpoline=Y\0";
        assert_eq!(modinfo_depends(ko), vec!["virtio_ring", "virtio"]);
        assert!(modinfo_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }

    #[test]
    fn load_order_puts_dependencies_first() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("virtio", vec!["virtio_ring"]),
            (
                "virtio_pci",
                vec!["virtio_ring", "virtio", "virtio_pci_modern_dev"],
            ),
            (
                "virtio_net",
                vec!["virtio", "net_failover", "builtin_thing"],
            ),
            ("net_failover", vec!["failover"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let names = [
            "virtio",
            "virtio_ring",
            "virtio_pci",
            "virtio_pci_modern_dev",
            "virtio_net",
            "net_failover",
            "failover",
        ];
        let o = load_order(&names, &deps);
        let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
        assert_eq!(o.len(), names.len());
        assert!(pos("virtio_ring") < pos("virtio"));
        assert!(pos("virtio_pci_modern_dev") < pos("virtio_pci"));
        assert!(pos("failover") < pos("net_failover") && pos("net_failover") < pos("virtio_net"));
    }

    #[test]
    fn unmet_dependencies_are_found() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("ext4", vec!["jbd2", "mbcache", "crc16"]),
            ("jbd2", vec![]),
            ("mbcache", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(
            unmet_dependencies(&deps, ""),
            vec![("ext4".to_string(), "crc16".to_string())]
        );
        assert!(unmet_dependencies(&deps, "kernel/lib/crc16.ko\n").is_empty());
    }

    #[test]
    fn config_values() {
        let c = "# CONFIG_FOO is not set\nCONFIG_VIRTIO=m\nCONFIG_VIRTIO_PCI_LEGACY=y\n";
        assert_eq!(config_value(c, "CONFIG_VIRTIO"), Some("m"));
        assert_eq!(config_value(c, "CONFIG_VIRTIO_PCI"), None);
        assert_eq!(config_value(c, "CONFIG_FOO"), None);
    }

    #[test]
    fn plans_builtin_loadable_and_missing() {
        let config = "CONFIG_VIRTIO=y\nCONFIG_VIRTIO_NET=m\nCONFIG_FAILOVER=m\n";
        let builtin = "kernel/drivers/block/virtio_blk.ko\n";
        let found: BTreeMap<String, String> = [
            ("virtio_net", "kernel/drivers/net/virtio_net.ko"),
            ("failover", "kernel/net/core/failover.ko.xz"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let p: BTreeMap<_, _> = plan(config, builtin, &found).into_iter().collect();
        assert_eq!(p["virtio"], Plan::BuiltIn);
        assert_eq!(p["virtio_ring"], Plan::BuiltIn);
        assert_eq!(p["virtio_blk"], Plan::BuiltIn);
        assert_eq!(
            p["virtio_net"],
            Plan::Load("kernel/drivers/net/virtio_net.ko".into())
        );
        assert_eq!(
            p["failover"],
            Plan::Load("kernel/net/core/failover.ko.xz".into())
        );
        assert_eq!(p["virtio_pci"], Plan::Missing);
        assert_eq!(
            plan(config, builtin, &found)[0].0,
            "virtio_ring",
            "preferred order kept"
        );
    }
}
