//! jettison-demo (to be written).
