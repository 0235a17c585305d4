//! jettison-agent (to be written).
