//! What to simulate: the power profile, the online sleep policies, the
//! prefetch policies, selective resume, and the full-migration baseline.

use jettison_power_model::bound::BoundedPolicy;
use jettison_power_model::policy::{BreakEven, FixedTimeout, NeverSleep, SkiRental};
use jettison_power_model::{break_even_ms, PowerProfile, PrefetchConfig, PullConfig, SleepPolicy};
use serde::{Deserialize, Serialize};

/// An online sleep policy to simulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySpec {
    /// [`FixedTimeout`] after this many ms.
    FixedTimeout(u64),
    /// [`BreakEven`] with its default streak.
    BreakEven,
    /// [`FixedTimeout`] after the break-even time of the resume in use
    /// (the full resume, or the service resume with selective resume):
    /// the deterministic ski-rental rule on its own.
    BreakEvenTimeout,
    /// [`SkiRental`], seeded per desktop from this seed.
    SkiRental(u64),
}

impl PolicySpec {
    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Self::FixedTimeout(ms) => format!("fixed-timeout-{}s", ms / 1000),
            Self::BreakEven => "break-even".into(),
            Self::BreakEvenTimeout => "timeout-at-break-even".into(),
            Self::SkiRental(_) => "ski-rental".into(),
        }
    }

    /// The policy whose competitive bound
    /// ([`jettison_power_model::bound::competitive_bound`]) applies.
    pub fn bounded(&self, profile: &PowerProfile) -> Option<BoundedPolicy> {
        Some(match self {
            Self::FixedTimeout(ms) => BoundedPolicy::FixedTimeout(*ms),
            Self::BreakEven => BoundedPolicy::BreakEven(BreakEven::DEFAULT_STREAK),
            Self::BreakEvenTimeout => BoundedPolicy::FixedTimeout(break_even_ms(profile)?),
            Self::SkiRental(_) => BoundedPolicy::SkiRental,
        })
    }

    pub(crate) fn build(&self, profile: &PowerProfile, desktop: u64) -> Box<dyn SleepPolicy> {
        match self {
            Self::FixedTimeout(ms) => Box::new(FixedTimeout { timeout_ms: *ms }),
            Self::BreakEven => Box::new(BreakEven::new(profile)),
            Self::BreakEvenTimeout => match break_even_ms(profile) {
                Some(timeout_ms) => Box::new(FixedTimeout { timeout_ms }),
                None => Box::new(NeverSleep),
            },
            Self::SkiRental(seed) => Box::new(SkiRental::new(profile, seed ^ desktop)),
        }
    }
}

/// The full-migration baseline's link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullMigration {
    /// Bytes of VM memory (4 GiB): what a full migration sends, and the
    /// guest memory size that bounds prefetch groups.
    pub vm_bytes: u64,
    /// The shared link, bits per second (1 Gbit/s).
    pub link_bps: f64,
    /// Migrations starting within the same window share the link (1 min).
    pub window_ms: u64,
}

impl Default for FullMigration {
    fn default() -> Self {
        Self {
            vm_bytes: 4 << 30,
            link_bps: 1e9,
            window_ms: 60_000,
        }
    }
}

/// Whether a wake to serve pages resumes only the service devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectiveResume {
    /// Every wake is a full resume.
    #[default]
    Off,
    /// Wakes by a miss resume the CPU, memory and NIC only
    /// ([`PowerProfile::service_resume`]); keys end in `+selective`.
    On,
    /// Both, side by side.
    Both,
}

impl SelectiveResume {
    fn modes(self) -> &'static [bool] {
        match self {
            Self::Off => &[false],
            Self::On => &[true],
            Self::Both => &[false, true],
        }
    }
}

/// What to simulate. Every (sleep policy x prefetch x resume) combination
/// is simulated; the default is no prefetching, full resumes and the
/// agent's decision tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// The power model.
    pub profile: PowerProfile,
    /// The online policies (duplicates by name are dropped).
    pub policies: Vec<PolicySpec>,
    /// The prefetch policies (none if empty; duplicates by name are dropped).
    pub prefetch: Vec<PrefetchConfig>,
    /// Selective resume for wakes that serve pages.
    pub selective_resume: SelectiveResume,
    /// The full-migration baseline.
    pub full_migration: FullMigration,
    /// How often the sleep policy is asked, ms: the desktop agent's power
    /// loop's tick ([`jettison_power_model::policy::AGENT_TICK_MS`], 250 ms) by
    /// default (see [`crate::cost`]).
    pub decision_tick_ms: u64,
    /// Making an away VM's memory durable before its desktop's first sleep
    /// of a period, ms: the agent copies it to disk when the policy first
    /// says sleep, serving fetches meanwhile, then sleeps (see
    /// [`crate::cost`]). 0 by default; `jettison simulate` sets the
    /// synthetic model's ([`crate::SynthParams::durable_copy_ms`]).
    pub durable_copy_ms: u64,
    /// Against wake storms: every online combination also pulls the rest of
    /// a VM's memory when this policy says so
    /// ([`jettison_power_model::PullPolicy`]); none by default.
    pub pull: Option<PullConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            profile: PowerProfile::default(),
            policies: Vec::new(),
            prefetch: Vec::new(),
            selective_resume: SelectiveResume::default(),
            full_migration: FullMigration::default(),
            decision_tick_ms: jettison_power_model::policy::AGENT_TICK_MS,
            durable_copy_ms: 0,
            pull: None,
        }
    }
}

/// The working-set parameters that [`prefetch_name`] leaves out.
pub const DEFAULT_WORKING_SET: (u32, u32) = (8192, 4);

/// The name of a prefetch policy in reports: [`PrefetchConfig::name`], with
/// `-MAX_PAGES-PERIODS` appended when the working set's differ from
/// [`DEFAULT_WORKING_SET`].
pub fn prefetch_name(c: &PrefetchConfig) -> String {
    match *c {
        PrefetchConfig::WorkingSet { max_pages, periods }
        | PrefetchConfig::Combined {
            max_pages, periods, ..
        } if (max_pages, periods) != DEFAULT_WORKING_SET => {
            format!("{}-{max_pages}-{periods}", c.name())
        }
        _ => c.name(),
    }
}

/// A prefetch policy with or without selective resume: a column of the
/// oracle, and the suffix of each policy's key.
#[derive(Clone, Debug)]
pub(crate) struct Variant {
    /// Index into [`SimConfig::prefetch_configs`].
    pub prefetch: usize,
    pub selective: bool,
    /// `none`, `working-set`, `none+selective`...
    pub name: String,
    /// Suffix of the combinations' keys: the name without `none`.
    pub suffix: String,
}

impl SimConfig {
    /// The prefetch policies simulated, distinct by name, `none` if empty.
    pub fn prefetch_configs(&self) -> Vec<PrefetchConfig> {
        let mut out: Vec<PrefetchConfig> = Vec::new();
        for c in &self.prefetch {
            if !out.iter().any(|o| prefetch_name(o) == prefetch_name(c)) {
                out.push(*c);
            }
        }
        if out.is_empty() {
            out.push(PrefetchConfig::None);
        }
        out
    }

    /// The online policies simulated, distinct by name.
    pub(crate) fn distinct_policies(&self) -> Vec<PolicySpec> {
        let mut out: Vec<PolicySpec> = Vec::new();
        for p in &self.policies {
            if !out.iter().any(|o| o.name() == p.name()) {
                out.push(p.clone());
            }
        }
        out
    }

    pub(crate) fn variants(&self) -> Vec<Variant> {
        let configs = self.prefetch_configs();
        let mut out = Vec::new();
        for &selective in self.selective_resume.modes() {
            for (i, c) in configs.iter().enumerate() {
                let pf = prefetch_name(c);
                let sel = if selective { "+selective" } else { "" };
                let suffix = match c {
                    PrefetchConfig::None => sel.to_string(),
                    _ => format!("+{pf}{sel}"),
                };
                out.push(Variant {
                    prefetch: i,
                    selective,
                    name: format!("{pf}{sel}"),
                    suffix,
                });
            }
        }
        out
    }
}
