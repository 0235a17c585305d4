//! jettison-server (to be written).
