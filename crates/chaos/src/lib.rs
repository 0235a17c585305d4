//! The crash matrix of the handover (`cargo xtask chaos`): each case runs a
//! real migration or reintegration on test hosts (network namespaces, real
//! daemons, QEMU, FUSE, TLS) with one fault injected at one persisted step
//! or message, lets the daemons recover, and reports what it finds: how
//! many copies of the guest run, the guest's own memory checks, the chat
//! connection's resets, and whether the VM was rolled back.
//!
//! [`cases`] is the matrix and its expected outcomes (pure); [`run`] runs
//! one case; [`report`] gathers the JSON report.

#![forbid(unsafe_code)]

pub mod cases;
pub mod report;
pub mod run;
