//! The one list of jettison's programs: which package builds each, with
//! which features, and which programs each runner (the demo, the bench,
//! the crash matrix) needs beside it.
//!
//! `cargo xtask` builds a runner's programs from this list, and the runner
//! looks for the same list beside its own executable, so the two cannot
//! drift apart: a program added here is both built and required.

#![forbid(unsafe_code)]

/// One executable of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// The executable's name.
    pub bin: &'static str,
    /// The package that builds it.
    pub package: &'static str,
}

/// The desktop agent.
pub const AGENT: Program = Program {
    bin: "jettison-agent",
    package: "jettison",
};
/// The consolidation server.
pub const SERVER: Program = Program {
    bin: "jettison-server",
    package: "jettison",
};
/// The office services of the test hosts (chat, mail).
pub const PEER: Program = Program {
    bin: "jettison-peer",
    package: "jettison-peer",
};
/// The demo runner.
pub const DEMO: Program = Program {
    bin: "jettison-demo",
    package: "jettison-demo",
};
/// The benchmark runner.
pub const BENCH: Program = Program {
    bin: "jettison-bench",
    package: "jettison-bench",
};

/// The crash-matrix runner.
pub const CHAOS: Program = Program {
    bin: "jettison-chaos",
    package: "jettison-chaos",
};

/// The operator's command.
pub const OPERATOR: Program = Program {
    bin: "jettison",
    package: "jettison",
};

/// A Debian package of jettison (`cargo xtask package`): the programs it
/// carries and the Debian packages those need at run time.
#[derive(Debug, Clone, Copy)]
pub struct DebPackage {
    /// The package's name.
    pub name: &'static str,
    /// The programs it installs in /usr/bin.
    pub programs: &'static [Program],
    /// Debian packages its programs run (`Depends`): QEMU for both
    /// daemons; `ip` (iproute2) for the VMs' taps; the server's lazy
    /// memory filesystem (fuse3) and its QEMUs' jail (bubblewrap). The
    /// operator's command, from `jettison-cli`, on every host.
    pub depends: &'static [&'static str],
    /// Debian packages it uses when present (`Recommends`): the agent's
    /// Linux power backend arms Wake-on-LAN with ethtool.
    pub recommends: &'static [&'static str],
    /// One line for the package's description.
    pub summary: &'static str,
}

/// The operator's command (`jettison`): on desktops and servers alike.
pub const DEB_CLI: DebPackage = DebPackage {
    name: "jettison-cli",
    programs: &[OPERATOR],
    depends: &[],
    recommends: &[],
    summary: "partial desktop VM migration - operator's command",
};

/// The desktop agent.
pub const DEB_AGENT: DebPackage = DebPackage {
    name: "jettison-agent",
    programs: &[AGENT],
    depends: &["jettison-cli", "qemu-system-x86", "iproute2"],
    recommends: &["ethtool"],
    summary: "partial desktop VM migration - desktop agent",
};

/// The consolidation server.
pub const DEB_SERVER: DebPackage = DebPackage {
    name: "jettison-server",
    programs: &[SERVER],
    depends: &[
        "jettison-cli",
        "qemu-system-x86",
        "iproute2",
        "fuse3",
        "bubblewrap",
    ],
    recommends: &[],
    summary: "partial desktop VM migration - consolidation server",
};

/// Every Debian package, dependencies first.
pub const DEB_PACKAGES: [DebPackage; 3] = [DEB_CLI, DEB_AGENT, DEB_SERVER];

/// What a cluster of test hosts runs: the daemons and the office services.
pub const CLUSTER: [Program; 3] = [AGENT, SERVER, PEER];

/// Cargo features (`package/feature`) the cluster's programs are built
/// with: test hosts sleep through the emulated power backend, and the crash
/// matrix injects faults; a production build carries neither.
pub const CLUSTER_FEATURES: &[&str] = &["jettison/emulated-power", "jettison/fault-injection"];

/// A runner and the programs it starts.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    /// The runner itself.
    pub program: Program,
    /// The programs it needs beside its executable.
    pub needs: &'static [Program],
    /// Cargo features to build them all with.
    pub features: &'static [&'static str],
}

/// `cargo xtask demo`.
pub const DEMO_RUNNER: Runner = Runner {
    program: DEMO,
    needs: &CLUSTER,
    features: CLUSTER_FEATURES,
};

/// `cargo xtask bench`.
pub const BENCH_RUNNER: Runner = Runner {
    program: BENCH,
    needs: &CLUSTER,
    features: CLUSTER_FEATURES,
};

/// `cargo xtask chaos`.
pub const CHAOS_RUNNER: Runner = Runner {
    program: CHAOS,
    needs: &CLUSTER,
    features: CLUSTER_FEATURES,
};

impl Runner {
    /// Every package to build for this runner, each once, in a stable order.
    pub fn packages(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for p in std::iter::once(&self.program).chain(self.needs) {
            if !out.contains(&p.package) {
                out.push(p.package);
            }
        }
        out
    }

    /// The arguments of `cargo build` that build everything this runner
    /// needs (after `build --release`).
    pub fn cargo_build_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for p in self.packages() {
            args.extend(["-p".to_string(), p.to_string()]);
        }
        if !self.features.is_empty() {
            args.extend(["--features".to_string(), self.features.join(",")]);
        }
        args
    }
}

/// The programs of `needs` missing from `dir` (by executable name).
pub fn missing_in(dir: &std::path::Path, needs: &[Program]) -> Vec<Program> {
    needs
        .iter()
        .copied()
        .filter(|p| !dir.join(p.bin).is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_builds_its_runner_and_every_program_once() {
        assert_eq!(
            DEMO_RUNNER.packages(),
            vec!["jettison-demo", "jettison", "jettison-peer"]
        );
        let args = DEMO_RUNNER.cargo_build_args();
        assert_eq!(
            args,
            [
                "-p",
                "jettison-demo",
                "-p",
                "jettison",
                "-p",
                "jettison-peer",
                "--features",
                "jettison/emulated-power,jettison/fault-injection"
            ]
        );
    }

    #[test]
    fn bench_needs_the_peer() {
        assert!(BENCH_RUNNER.needs.contains(&PEER));
        assert!(BENCH_RUNNER.packages().contains(&"jettison-peer"));
    }

    #[test]
    fn features_name_a_package_that_is_built() {
        for runner in [DEMO_RUNNER, BENCH_RUNNER, CHAOS_RUNNER] {
            for f in runner.features {
                let (package, _) = f.split_once('/').expect("package/feature");
                assert!(runner.packages().contains(&package), "{f}");
            }
        }
    }

    #[test]
    fn every_daemon_and_the_command_is_packaged_once() {
        let mut bins: Vec<&str> = DEB_PACKAGES
            .iter()
            .flat_map(|p| p.programs.iter().map(|p| p.bin))
            .collect();
        bins.sort_unstable();
        assert_eq!(bins, ["jettison", "jettison-agent", "jettison-server"]);
        for p in [DEB_AGENT, DEB_SERVER] {
            assert!(p.depends.contains(&DEB_CLI.name), "{}", p.name);
            assert!(p.depends.contains(&"qemu-system-x86"), "{}", p.name);
        }
        assert!(DEB_SERVER.depends.contains(&"bubblewrap"));
        assert!(DEB_SERVER.depends.contains(&"fuse3"));
    }

    #[test]
    fn missing_lists_what_is_not_there() {
        let dir = std::env::temp_dir().join(format!("jts-programs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(AGENT.bin), b"").unwrap();
        let missing = missing_in(&dir, &CLUSTER);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(missing, vec![SERVER, PEER]);
    }
}
