//! The attack suite (`cargo xtask attacks`): on test hosts, with a VM of
//! one desktop consolidated on the server, a second desktop that the
//! server accepts (its own certificate from the deployment's CA) attacks
//! that VM and the server over the wire protocol, and an unauthenticated
//! host floods every listening port while the VM's page faults are timed.
//! Each attack is measured, not assumed: whether the server refused it
//! (an error reply and nothing created for it, not even for a moment),
//! whether the victim VM is intact (still running, still heartbeating, its
//! record unchanged, nothing of it removed, and later home with its memory
//! and disk checks passing), and how many bytes of its memory, disk or
//! device state reached the attacker.
//!
//! [`authed`] runs and judges one authenticated attack; [`suite`] lists
//! them; [`conn`] is the attacker's side of the wire (raw frames over
//! mutual TLS, inside a test host's namespace); [`machine`] writes machine
//! descriptions, also in protocol 1.1's layout with its free-form QEMU
//! arguments; [`footprint`] sees what the server makes; [`victim`] checks
//! the victim and brings it home; [`flood`] and [`probe`] are the flood and
//! the fault-latency windows; [`fuzz`] reads the wire fuzz pass; [`limits`]
//! sets open-file limits; [`report`] judges rows and writes the report;
//! [`run`] runs everything in order.

#![forbid(unsafe_code)]

pub mod authed;
pub mod conn;
pub mod flood;
pub mod footprint;
pub mod fuzz;
pub mod limits;
pub mod machine;
pub mod probe;
pub mod report;
pub mod run;
pub mod state_stub;
pub mod suite;
pub mod victim;
