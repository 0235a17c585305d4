//! The crash matrix of the handover (`cargo xtask chaos`): each case runs a
//! real migration or reintegration on test hosts (network namespaces, real
//! daemons, QEMU, FUSE, TLS) with one fault injected at one persisted step
//! or message, lets the daemons recover, and reports what it finds: how
//! many copies of the guest run, the guest's own memory checks, the chat
//! connection's resets, whether the VM was rolled back, and whether the
//! disk it ends with holds every write the guest completed.
//!
//! [`cases`] is the matrix and its expected outcomes (pure); [`run`] runs
//! one case; [`measure`] counts the running copies and asks whether the
//! daemons settled and the guest lives; [`disk`] says which writes the
//! final disk must hold and reads it; [`restarts`] runs the restart cases
//! (daemons restarted or killed, the server's host crashing, the desktop
//! rebooting while its VM is away); [`logs`] reads figures from the
//! daemons' logs; [`report`] gathers the JSON report.

#![forbid(unsafe_code)]

pub mod cases;
pub mod disk;
pub mod logs;
pub mod measure;
pub mod report;
pub mod restarts;
pub mod run;
