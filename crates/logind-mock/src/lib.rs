//! Test support for the Linux power backend (a dev-dependency only, never
//! shipped): a private `dbus-daemon` per test ([`PrivateBus`]) and a mock
//! systemd-logind on it ([`MockLogind`]) whose Manager, Seat and Session
//! objects answer as logind's do, so the backend's calls, their order and
//! their error paths are real D-Bus traffic. The mock logs every call and
//! signal in order ([`MockLogind::log`]).

#![forbid(unsafe_code)]

mod bus;
mod mock;

pub use bus::PrivateBus;
pub use mock::{MockLogind, SessionSpec};
