//! Guest workload for jettison test VMs.
//!
//! The `jettison-guest` binary runs as the only program of a small busybox
//! initramfs and behaves like an idle desktop's background applications: it
//! keeps a large share of memory allocated and filled (caches, heaps), runs an
//! integrity checker over a region with a known pattern, prints heartbeats,
//! touches a few pages every second, optionally scans its memory in pieces
//! ([`scan`]), and optionally keeps a chat connection
//! to the office peer (heartbeats both ways), polls its mail server, and
//! appends to a mail cache on its disk (`/mnt/disk`, mounted by `/init`). Everything it has to say goes to the serial console as
//! lines starting with `JTS `, so tests can tell that the guest kept running,
//! lost no heartbeat and saw no memory corruption.
//!
//! This library holds the pure logic (settings parsing, the pattern and its
//! verification, the pseudo-random generator, sizing); the binary does the I/O.

#![forbid(unsafe_code)]

pub mod check;
pub mod config;
pub mod disk;
pub mod mail;
pub mod meminfo;
pub mod net;
pub mod rng;
pub mod scan;

pub use check::{CheckOutcome, CheckRegion, Mismatch};
pub use config::{parse_cmdline, Settings};
pub use rng::SplitMix64;
