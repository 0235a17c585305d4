//! jettison-wire: the protocol between jettison's daemons (being written).
pub mod stats;
pub use stats::{LatencySummary, VmMemStats};
