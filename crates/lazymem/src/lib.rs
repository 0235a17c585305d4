//! jettison-lazymem (to be written).
