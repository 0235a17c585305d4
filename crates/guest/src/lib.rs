//! jettison-guest (to be written).
