//! The power profile: what a desktop draws in each state, what its
//! transitions cost, and what the consolidation server charges per VM.
//!
//! Pure data, read from TOML (every field has a default, so a fleet file
//! names only what it measured). The defaults are typical published figures,
//! not measurements of any particular machine: **measure them per fleet**.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A profile that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum ProfileError {
    /// The TOML text does not parse.
    #[error("power profile: {0}")]
    Parse(String),
    /// A figure is out of range or the figures contradict each other.
    #[error("power profile: {0}")]
    Invalid(String),
}

/// The power model of one desktop and its share of a consolidation server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerProfile {
    /// Watts drawn by the desktop in its steady states.
    pub desktop: DesktopPower,
    /// Going to sleep (S3, suspend-to-RAM).
    pub suspend: Transition,
    /// Waking up from S3, all devices included.
    pub resume: Transition,
    /// The consolidation server.
    pub server: ServerPower,
    /// Per-device share of [`PowerProfile::resume`], for selective resume.
    /// The costs add up to the full resume ([`PowerProfile::validate`]).
    pub devices: Vec<DeviceCost>,
}

/// Steady-state desktop power.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DesktopPower {
    /// Watts while the user works.
    pub active_w: f64,
    /// Watts while powered on with nobody using it.
    pub idle_w: f64,
    /// Watts while asleep (S3, RAM in self-refresh, NIC armed for WoL).
    pub asleep_w: f64,
}

/// A state transition: how long it takes and the energy it uses in total.
/// Both figures are required when a profile names a transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Milliseconds from the request until the new state is reached.
    pub latency_ms: u64,
    /// Joules used over the whole transition.
    pub energy_j: f64,
}

impl Transition {
    /// Average watts during the transition (0 for an instantaneous one).
    pub fn average_w(&self) -> f64 {
        if self.latency_ms == 0 {
            0.0
        } else {
            self.energy_j * 1000.0 / self.latency_ms as f64
        }
    }
}

/// The consolidation server, as a linear power model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerPower {
    /// Watts with no load.
    pub idle_w: f64,
    /// Watts at full load.
    pub peak_w: f64,
    /// Fully migrated VMs (all their memory on the server) that bring the
    /// server to full load.
    pub vms_per_server: u32,
    /// Partially migrated VMs (CPU and device state plus the pages they
    /// fetched) that bring the server to full load. **An assumption**, by
    /// default 3 x `vms_per_server` (90): memory alone would allow about ten
    /// times as many (this project's benchmark measured a 4 GiB VM
    /// consolidated with about 86 MB on the server: its QEMU's 67 MB RSS,
    /// 19 MB of it fetched pages, plus a 19 MB replica; Bila et al. report
    /// under a tenth of the memory), but the CPU time, I/O and per-VM
    /// overheads of idle VMs cap the density well before memory does, so
    /// the default stays conservative. Measure it per fleet.
    pub partial_vms_per_server: u32,
}

impl ServerPower {
    /// Watts charged to one consolidated VM: a full server's power shared by
    /// the VMs that fill it (`peak_w / vms_per_server`), so the idle power is
    /// charged too, not only the increment.
    pub fn watts_per_vm(&self) -> f64 {
        self.peak_w / f64::from(self.vms_per_server.max(1))
    }

    /// Watts charged to one partially migrated VM: the same full server
    /// shared by [`ServerPower::partial_vms_per_server`] VMs.
    pub fn watts_per_partial_vm(&self) -> f64 {
        self.peak_w / f64::from(self.partial_vms_per_server.max(1))
    }
}

/// A device that resumes separately (context-aware selective resume).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// Processor, chipset and firmware resume path.
    Cpu,
    /// Memory leaving self-refresh.
    Memory,
    /// Network interface, link renegotiation included.
    Nic,
    /// Disk (spin-up for a hard disk).
    Disk,
    /// Graphics and display.
    Display,
    /// USB bus and devices.
    Usb,
}

/// What resuming one device costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCost {
    /// The device.
    pub device: Device,
    /// Its share of the resume latency, in milliseconds.
    pub latency_ms: u64,
    /// Its share of the resume energy, in joules.
    pub energy_j: f64,
}

impl Default for DesktopPower {
    /// Typical figures, see Bila et al., "Energy-Oriented Partial Desktop
    /// Virtual Machine Migration", ACM TOCS 2015: an office desktop draws
    /// about 60-100 W (idle-active) and a few watts in S3. A default, to be
    /// measured per fleet.
    fn default() -> Self {
        Self {
            active_w: 100.0,
            idle_w: 60.0,
            asleep_w: 3.0,
        }
    }
}

impl Default for ServerPower {
    /// Typical figures for a two-socket server whose idle power is about half
    /// of its peak (see Barroso and Hölzle, "The Case for Energy-Proportional
    /// Computing", IEEE Computer 2007); 30 idle desktop VMs per server is an
    /// assumption, and 90 partially migrated ones (see
    /// [`ServerPower::partial_vms_per_server`]). Defaults, to be measured
    /// per fleet.
    fn default() -> Self {
        Self {
            idle_w: 150.0,
            peak_w: 300.0,
            vms_per_server: 30,
            partial_vms_per_server: 90,
        }
    }
}

impl Default for PowerProfile {
    /// Suspend and resume take a few seconds (typical figures, see Bila et
    /// al., TOCS 2015): 3 s to suspend at about idle power (180 J), 5 s to
    /// resume at about 80 W (400 J). The per-device split of the resume is
    /// illustrative (firmware and disk spin-up dominate) and adds up to the
    /// full resume. Defaults, to be measured per fleet.
    fn default() -> Self {
        let dev = |device, latency_ms, energy_j| DeviceCost {
            device,
            latency_ms,
            energy_j,
        };
        Self {
            desktop: DesktopPower::default(),
            suspend: Transition {
                latency_ms: 3_000,
                energy_j: 180.0,
            },
            resume: Transition {
                latency_ms: 5_000,
                energy_j: 400.0,
            },
            server: ServerPower::default(),
            devices: vec![
                dev(Device::Cpu, 1_500, 120.0),
                dev(Device::Memory, 200, 16.0),
                dev(Device::Nic, 800, 64.0),
                dev(Device::Disk, 1_500, 120.0),
                dev(Device::Display, 700, 56.0),
                dev(Device::Usb, 300, 24.0),
            ],
        }
    }
}

impl PowerProfile {
    /// Parses a TOML profile (missing fields take the defaults) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let profile: Self = toml::from_str(text).map_err(|e| ProfileError::Parse(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// The profile as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a profile always serializes")
    }

    /// Checks ranges and consistency: finite non-negative watts and joules,
    /// asleep <= idle <= active, peak >= idle on the server, at least one VM
    /// per server, each device listed once, and (if devices are listed) their
    /// latencies adding up exactly to the resume latency and their energies
    /// to the resume energy (within a millijoule).
    pub fn validate(&self) -> Result<(), ProfileError> {
        let bad = |m: String| Err(ProfileError::Invalid(m));
        let d = &self.desktop;
        let figures = [
            ("desktop.active_w", d.active_w),
            ("desktop.idle_w", d.idle_w),
            ("desktop.asleep_w", d.asleep_w),
            ("suspend.energy_j", self.suspend.energy_j),
            ("resume.energy_j", self.resume.energy_j),
            ("server.idle_w", self.server.idle_w),
            ("server.peak_w", self.server.peak_w),
        ];
        for (name, v) in figures {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{name} = {v} is not a non-negative number"));
            }
        }
        if !(d.asleep_w <= d.idle_w && d.idle_w <= d.active_w) {
            return bad("expected asleep_w <= idle_w <= active_w".into());
        }
        if self.server.peak_w < self.server.idle_w {
            return bad("server.peak_w is below server.idle_w".into());
        }
        if self.server.vms_per_server == 0 || self.server.partial_vms_per_server == 0 {
            return bad(
                "server.vms_per_server and server.partial_vms_per_server must be at least 1".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.devices {
            if !seen.insert(c.device) {
                return bad(format!("device {:?} listed twice", c.device));
            }
            if !c.energy_j.is_finite() || c.energy_j < 0.0 {
                return bad(format!("device {:?}: bad energy", c.device));
            }
        }
        if !self.devices.is_empty() {
            let all = self.selective_resume(&seen.into_iter().collect::<Vec<_>>());
            if all.latency_ms != self.resume.latency_ms
                || (all.energy_j - self.resume.energy_j).abs() > 1e-3
            {
                return bad(format!(
                    "devices add up to {} ms / {} J, the resume is {} ms / {} J",
                    all.latency_ms, all.energy_j, self.resume.latency_ms, self.resume.energy_j
                ));
            }
        }
        Ok(())
    }

    /// Devices a wake to serve pages needs (context-aware selective resume):
    /// processor, memory and network; not the disk, display or USB.
    pub const SERVICE_DEVICES: [Device; 3] = [Device::Cpu, Device::Memory, Device::Nic];

    /// The resume of a wake to serve pages: [`Self::SERVICE_DEVICES`] only,
    /// or the full resume when the profile lists no devices.
    pub fn service_resume(&self) -> Transition {
        if self.devices.is_empty() {
            self.resume.clone()
        } else {
            self.selective_resume(&Self::SERVICE_DEVICES)
        }
    }

    /// The cost of resuming only `devices` (each counted once), their costs
    /// taken as sequential: an upper bound for a selective resume.
    pub fn selective_resume(&self, devices: &[Device]) -> Transition {
        let wanted: std::collections::BTreeSet<_> = devices.iter().collect();
        self.devices
            .iter()
            .filter(|c| wanted.contains(&c.device))
            .fold(
                Transition {
                    latency_ms: 0,
                    energy_j: 0.0,
                },
                |acc, c| Transition {
                    latency_ms: acc.latency_ms + c.latency_ms,
                    energy_j: acc.energy_j + c.energy_j,
                },
            )
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
