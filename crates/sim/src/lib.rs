//! The fleet simulator: what partial VM migration saves over a fleet of
//! desktops, per sleep policy and prefetch policy, with and without
//! selective resume, against the desktops left on, plain sleep (no
//! consolidation, no network presence), full VM migration (LiteGreen-style)
//! and the offline optimum.
//!
//! * [`trace`]: the input, a fleet trace (per desktop: the user's activity
//!   and, per idle period, the VM's page requests).
//! * [`synth`]: seeded synthetic traces from documented parameters (the
//!   VMs' memory use in [`synth_vm`]).
//! * [`config`]: what to simulate ([`SimConfig`]).
//! * [`engine`]: pure simulation of a trace, reusing the power profile, the
//!   sleep policies and the prefetch policies of `jettison-power-model`; [`fetch`]
//!   (which requests are misses), `cost` (the model of the desktop agent's
//!   power loop and its charges), `online` (a sleep policy over a period)
//!   and `oracle` (the offline optimum) are its parts.
//! * [`report`]: the result ([`Report`]); [`delay`] its delays (stall per
//!   miss, wakes, return latency); [`rank`] confidence over seeds, the delay
//!   budget, the Pareto front and the server-share crossover; [`summary`]
//!   renders it as tables.
//! * [`sweep`]: sensitivity sweeps over seeds with confidence intervals;
//!   [`model_summary`] renders them and the synthetic model's parameters
//!   ([`synth_params`], each with its source).
//! * [`storms`]: the hybrid against wake storms (the pull of
//!   `jettison-power-model`), with and without, on the default model and
//!   with nightly scans.
//! * [`recorded`]: a desktop agent's own power and fetch trace (JSON
//!   lines), assembled into one run; [`replay`] turns it into a fleet trace
//!   and compares the simulator's idle-period energy with the recorded
//!   timeline's; [`trace_files`] writes such files (bounded, rotated) and
//!   reads them back (a torn last line skipped).
//! * [`density`]: the server share of a partially migrated VM from the
//!   density benchmark's measurement.
//! * [`io`]: a thin JSON load and save.

#![forbid(unsafe_code)]

pub mod config;
mod cost;
pub mod delay;
pub mod density;
pub mod engine;
pub mod evaluation;
pub mod fetch;
pub mod io;
pub mod model_summary;
mod online;
mod oracle;
mod par;
pub mod rank;
pub mod recorded;
pub mod replay;
pub mod report;
pub mod storms;
pub mod summary;
pub mod sweep;
pub mod synth;
pub mod synth_params;
pub mod synth_vm;
pub mod trace;
pub mod trace_files;
mod ws;

#[cfg(test)]
mod bound_tests;

use thiserror::Error;

pub use config::{prefetch_name, FullMigration, PolicySpec, SelectiveResume, SimConfig};
pub use engine::simulate;
/// The power crate's types that [`SimConfig`] holds.
pub use jettison_power_model::{PowerProfile, PrefetchConfig, PullConfig};
pub use report::{Bucket, Outcome, Report};
pub use synth::{generate, SynthParams};
pub use trace::{DesktopTrace, FleetTrace, IdlePeriod, Request, Span, DAY_MS};

/// Errors of the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// A trace breaks its rules (see [`FleetTrace::validate`]).
    #[error("invalid trace: {0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// JSON that does not parse as a trace.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
