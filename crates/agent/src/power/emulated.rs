//! The emulated power backend's side of the agent (test hosts): compiled in
//! only with the cargo feature `emulated-power`; without it,
//! `backend = "emulated"` is refused at start (`MISSING`).

#[cfg(feature = "emulated-power")]
use jettison_power::{Emulated, EmulatedConfig};
use jettison_power_model::PowerProfile;

use super::{Host, PowerConfig};
use crate::AgentError;

/// Starts the emulated backend and puts this process in the group it
/// freezes.
#[cfg(feature = "emulated-power")]
pub(super) fn start(
    config: &PowerConfig,
    host: &str,
    profile: &PowerProfile,
) -> Result<Host, AgentError> {
    let mac = config
        .nic_mac
        .parse()
        .map_err(|e| AgentError::Power(format!("nic_mac: {e}")))?;
    let wol = config
        .wol_listen
        .ok_or_else(|| AgentError::Power("the emulated backend needs wol_listen".into()))?;
    let mut emulated = EmulatedConfig::new(format!("{host}-{}", std::process::id()), mac, wol);
    emulated.profile = profile.clone();
    emulated.user_addr = config.user_listen;
    emulated.selective_resume = config.selective_resume;
    // The user is at the desk when the agent starts.
    emulated.initial = jettison_power_model::HostState::Active;
    let backend = Emulated::start(emulated).map_err(|e| AgentError::Power(e.to_string()))?;
    backend
        .add_pid(std::process::id())
        .map_err(|e| AgentError::Power(e.to_string()))?;
    Ok(Host::Emulated(backend))
}

/// Without the `emulated-power` feature there is no emulated backend.
#[cfg(not(feature = "emulated-power"))]
pub(super) fn start(_: &PowerConfig, _: &str, _: &PowerProfile) -> Result<Host, AgentError> {
    Err(AgentError::Power(MISSING.into()))
}

/// Why an agent built without the `emulated-power` feature refuses
/// `backend = "emulated"`.
#[cfg(not(feature = "emulated-power"))]
pub(super) const MISSING: &str = "backend = \"emulated\" needs an agent built with the `emulated-power` feature (test hosts only)";
