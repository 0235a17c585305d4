//! The simulator's only I/O: traces and reports as JSON files.

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use crate::{FleetTrace, SimError};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a JSON file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, SimError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(serde_json::from_str(&text)?)
}

/// Reads and validates a fleet trace.
pub fn load_trace(path: &Path) -> Result<FleetTrace, SimError> {
    let trace: FleetTrace = load(path)?;
    trace.validate()?;
    Ok(trace)
}

/// Writes `value` as pretty JSON.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(io_err(path))
}
