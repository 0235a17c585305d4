//! The server share of a partially migrated VM from a measured density
//! (`cargo xtask bench --density`) instead of an assumption.
//!
//! The benchmark consolidates the same idle guests twice on one server,
//! partially and fully migrated (QEMU's precopy), and reports each mode's
//! memory (`mem_mib_per_vm`) and CPU (`cpu_pct_per_vm`, % of one core) per
//! VM. A server fills when one of its resources does, so how many more
//! partially migrated VMs it holds than fully migrated ones depends on
//! which resource fills first:
//!
//! * [`Binding::Both`] (the default, conservative): the fully migrated VMs
//!   that fill a server (`vms_per_server`) are taken to fill its memory and
//!   its CPU together, so partial migration gains the smaller of the two
//!   ratios (full over partial); a partially migrated VM that costs more
//!   CPU than a fully migrated one lowers the share below one;
//! * [`Binding::Memory`]: CPU never fills (idle guests under KVM, where an
//!   idle vCPU halts in the host kernel and costs next to nothing; the
//!   benchmark runs TCG, whose idle guests still burn CPU on timers), so
//!   the memory ratio alone counts.
//!
//! Pure: the caller reads the file.

use serde::{Deserialize, Serialize};

/// One mode's measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeDensity {
    /// Server memory per VM, MiB (QEMU, replica, page cache, the daemon's
    /// share).
    pub mem_mib_per_vm: f64,
    /// Server CPU per VM, % of one core.
    pub cpu_pct_per_vm: f64,
}

/// The benchmark's measurement (`density` in its JSON report).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredDensity {
    /// Partially migrated (jettison).
    pub partial: ModeDensity,
    /// Fully migrated (precopy).
    pub full: ModeDensity,
}

/// Which server resource fills first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binding {
    /// Memory and CPU together (conservative).
    #[default]
    Both,
    /// Memory only (CPU never fills).
    Memory,
}

/// A measurement that cannot give a share.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DensityError {
    /// The JSON has no usable `density` object.
    #[error("no density measurement in the report: {0}")]
    Missing(String),
    /// A figure is not a positive number.
    #[error("density.{0} must be a positive number, not {1}")]
    NotPositive(&'static str, f64),
}

/// The measurement a simulation used (in its report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensityUsed {
    /// Where it came from (the benchmark report's path).
    pub source: String,
    /// The figures.
    pub measured: MeasuredDensity,
    /// Which resource was taken to fill first.
    pub binding: Binding,
    /// The `partial_vms_per_server` they gave.
    pub partial_vms_per_server: u32,
    /// The `vms_per_server` it is relative to.
    pub vms_per_server: u32,
}

impl DensityUsed {
    /// One sentence on where the share comes from, for the findings.
    pub fn sentence(&self) -> String {
        let m = &self.measured;
        format!(
            "measured by the density benchmark: a partially migrated VM holds {:.0} MiB and uses {:.2} % of \
             a core on the server, a fully migrated one {:.0} MiB and {:.2} % (memory {:.1}x, CPU {:.2}x), \
             so {} partially migrated VMs per server against {} ({})",
            m.partial.mem_mib_per_vm,
            m.partial.cpu_pct_per_vm,
            m.full.mem_mib_per_vm,
            m.full.cpu_pct_per_vm,
            m.memory_ratio(),
            m.cpu_ratio(),
            self.partial_vms_per_server,
            self.vms_per_server,
            match self.binding {
                Binding::Both => "the smaller ratio: memory and CPU taken to fill together",
                Binding::Memory => "the memory ratio: CPU taken never to fill",
            }
        )
    }
}

impl MeasuredDensity {
    /// Reads the `density` object of a benchmark report (the whole JSON
    /// document, or the object itself).
    pub fn from_report(json: &serde_json::Value) -> Result<Self, DensityError> {
        let d = json.get("density").unwrap_or(json);
        let m: MeasuredDensity =
            serde_json::from_value(d.clone()).map_err(|e| DensityError::Missing(e.to_string()))?;
        for (name, v) in [
            ("partial.mem_mib_per_vm", m.partial.mem_mib_per_vm),
            ("full.mem_mib_per_vm", m.full.mem_mib_per_vm),
            ("partial.cpu_pct_per_vm", m.partial.cpu_pct_per_vm),
            ("full.cpu_pct_per_vm", m.full.cpu_pct_per_vm),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(DensityError::NotPositive(name, v));
            }
        }
        Ok(m)
    }

    /// How many times less memory a partially migrated VM holds.
    pub fn memory_ratio(&self) -> f64 {
        self.full.mem_mib_per_vm / self.partial.mem_mib_per_vm
    }

    /// How many times less CPU a partially migrated VM uses (below one
    /// when it uses more).
    pub fn cpu_ratio(&self) -> f64 {
        self.full.cpu_pct_per_vm / self.partial.cpu_pct_per_vm
    }

    /// How many more partially migrated VMs a server holds than fully
    /// migrated ones.
    pub fn ratio(&self, binding: Binding) -> f64 {
        match binding {
            Binding::Both => self.memory_ratio().min(self.cpu_ratio()),
            Binding::Memory => self.memory_ratio(),
        }
    }

    /// `partial_vms_per_server` for a server that holds `vms_per_server`
    /// fully migrated VMs (at least 1).
    pub fn partial_vms_per_server(&self, vms_per_server: u32, binding: Binding) -> u32 {
        (f64::from(vms_per_server) * self.ratio(binding))
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn measured(pm: f64, fm: f64, pc: f64, fc: f64) -> MeasuredDensity {
        MeasuredDensity::from_report(&json!({
            "other": 1,
            "density": {
                "partial": {"mem_mib_per_vm": pm, "cpu_pct_per_vm": pc, "vms": 16},
                "full": {"mem_mib_per_vm": fm, "cpu_pct_per_vm": fc},
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_smaller_ratio_binds_unless_cpu_never_fills() {
        let m = measured(40.0, 280.0, 5.0, 4.0);
        assert!((m.memory_ratio() - 7.0).abs() < 1e-9);
        assert!((m.cpu_ratio() - 0.8).abs() < 1e-9);
        assert_eq!(m.partial_vms_per_server(30, Binding::Both), 24);
        assert_eq!(m.partial_vms_per_server(30, Binding::Memory), 210);
        let cheap_cpu = measured(40.0, 280.0, 0.5, 4.0);
        assert_eq!(cheap_cpu.partial_vms_per_server(30, Binding::Both), 210);
    }

    #[test]
    fn never_below_one_vm() {
        let m = measured(1000.0, 1.0, 1.0, 1.0);
        assert_eq!(m.partial_vms_per_server(30, Binding::Both), 1);
    }

    #[test]
    fn reads_the_object_alone_too() {
        let alone = json!({
            "partial": {"mem_mib_per_vm": 40.0, "cpu_pct_per_vm": 4.0},
            "full": {"mem_mib_per_vm": 280.0, "cpu_pct_per_vm": 4.0},
        });
        let m = MeasuredDensity::from_report(&alone).unwrap();
        assert_eq!(m.partial_vms_per_server(30, Binding::Both), 30);
    }

    #[test]
    fn refuses_what_cannot_give_a_share() {
        assert!(matches!(
            MeasuredDensity::from_report(&json!({"density": {"partial": {}}})),
            Err(DensityError::Missing(_))
        ));
        let zero = json!({"density": {
            "partial": {"mem_mib_per_vm": 0.0, "cpu_pct_per_vm": 4.0},
            "full": {"mem_mib_per_vm": 280.0, "cpu_pct_per_vm": 4.0},
        }});
        assert_eq!(
            MeasuredDensity::from_report(&zero),
            Err(DensityError::NotPositive("partial.mem_mib_per_vm", 0.0))
        );
    }
}
