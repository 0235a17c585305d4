//! The fleet simulator: what partial VM migration saves over a fleet of
//! desktops, per sleep policy, against the desktops left on, plain sleep
//! (no consolidation, no network presence) and full VM migration
//! (LiteGreen-style).
//!
//! * [`trace`]: the input, a fleet trace (per desktop: the user's activity
//!   and, per idle period, the VM's page requests).
//! * [`synth`]: seeded synthetic traces from documented parameters.
//! * [`engine`]: pure simulation of a trace, reusing the power profile and
//!   the sleep policies of `jettison-power`.
//! * [`io`]: a thin JSON load and save, the only I/O.

#![forbid(unsafe_code)]

pub mod engine;
pub mod io;
pub mod synth;
pub mod trace;

use thiserror::Error;

pub use engine::{simulate, Bucket, FullMigration, Outcome, PolicySpec, Report, SimConfig};
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
