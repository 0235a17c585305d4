//! `jettison-bench`: jettison's partial migration against QEMU's own full
//! migration (precopy and postcopy), side by side on the same guest, over
//! the same shaped test LAN, in the same run.
//!
//! * [`fleet`]: desktops (agent + VM each) and a server on a test LAN.
//! * [`shape`]: `tc` token buckets on every LAN port.
//! * [`full`]: QEMU precopy and postcopy between test hosts.
//! * [`faults`]: page reads through the server's memory file.
//! * [`memory`]: server memory per consolidated VM.
//! * [`density`], [`cgroup`], [`density_calc`], [`density_markdown`]: many
//!   idle guests on one server for a window, partial against precopy:
//!   memory and CPU per VM.
//! * [`rtt`]: the state server round trip alone, for the fault breakdown.
//! * [`run`]: the scenarios.
//! * [`results`], [`stats`], [`markdown`]: what was measured, the ratios,
//!   the targets, the JSON file and BENCHMARKS.md (pure).

#![forbid(unsafe_code)]

pub mod cgroup;
pub mod density;
pub mod density_calc;
pub mod density_markdown;
pub mod faults;
pub mod fleet;
pub mod full;
pub mod markdown;
pub mod memory;
pub mod results;
pub mod rtt;
pub mod run;
pub mod shape;
pub mod stats;
