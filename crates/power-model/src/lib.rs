//! The pure power model of Jettison desktops: no I/O, no async runtime,
//! shared by the daemons, the power backends (`jettison-power`) and the
//! fleet simulator (`jettison-sim`).
//!
//! * [`profile`]: watts per state, transition costs, the server's share per
//!   VM, per-device resume costs; TOML with documented defaults.
//! * [`timeline`]: a host's recorded state changes, wakes and VM placements.
//! * [`energy`]: the meter integrating a timeline with a profile, against
//!   the desktop left on.
//! * [`policy`]: sleep scheduling ([`SleepPolicy`]): break-even, fixed
//!   timeout, ski rental, never, chosen by configuration ([`PolicyConfig`]);
//!   and the offline oracle, for comparison.
//! * [`bound`]: the policies' competitive bounds in the simulator's model.
//! * [`prefetch`]: which pages a miss fetches besides its own
//!   ([`PrefetchConfig`]): none, neighbourhood, recorded working set, both.
//! * [`pull`]: against wake storms, when to pull the rest of a VM's
//!   memory during one wake ([`PullPolicy`]), so its desktop sleeps through.
//! * [`wol`]: magic packets and MAC addresses (building and parsing them;
//!   sending and hearing them is `jettison-power`'s).

#![forbid(unsafe_code)]

pub mod bound;
pub mod energy;
pub mod policy;
pub mod prefetch;
pub mod profile;
pub mod pull;
pub mod timeline;
pub mod wol;

pub use energy::{meter, EnergyReport};
pub use policy::{
    break_even_ms, BreakEven, Decision, FixedTimeout, NeverSleep, PolicyConfig, SleepPolicy,
};
pub use prefetch::PrefetchConfig;
pub use profile::{Device, PowerProfile};
pub use pull::{PullCharge, PullConfig, PullDecision, PullPolicy};
pub use timeline::{HostState, Placement, Timeline, TimelineError, WakeReason};
pub use wol::{magic_packet, parse_magic_packet, MacAddr, WolError};
