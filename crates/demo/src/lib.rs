//! jettison's story on this machine: a desktop agent and a consolidation
//! server as real processes, a real guest in QEMU, a partial migration out,
//! memory on demand, and reintegration with the dirty pages, measured and
//! reported. Used by `cargo xtask demo` and by the integration tests.

pub mod cluster;
pub mod configs;
pub mod console;
pub mod disk;
pub mod guest;
pub mod observe;
pub mod ops;
pub mod options;
pub mod power_report;
pub mod procs;
pub mod progress;
pub mod replay;
pub mod report;
pub mod scenario;
mod setup;
pub mod timeline_plot;

pub use cluster::{Binaries, Cluster, ClusterOptions};
pub use guest::GuestImage;
pub use progress::Progress;
pub use scenario::{round_trip, Phases, RoundTrip};
pub use setup::{OTHER_DESKTOP, OTHER_SERVER};
