//! jettison-qemu (to be written).
