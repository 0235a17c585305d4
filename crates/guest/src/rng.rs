//! A tiny deterministic pseudo-random generator (SplitMix64).
//!
//! Good enough to fill memory with data that does not compress or deduplicate
//! and to pick random pages; not for cryptography.

/// Mixes one 64-bit value into a well-scrambled one (the SplitMix64 finaliser).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64 generator state.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Creates a generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Returns the next value that is never zero (so filled pages are never
    /// zero pages that a hypervisor could share or skip).
    pub fn next_nonzero(&mut self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }

    /// Returns a value in `0..bound` (`bound` must be non-zero).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_nonzero() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..10_000 {
            let x = a.next_nonzero();
            assert_ne!(x, 0);
            assert_eq!(x, b.next_nonzero());
        }
    }

    #[test]
    fn seed_zero_still_nonzero_and_varied() {
        let mut g = SplitMix64::new(0);
        let v: Vec<u64> = (0..64).map(|_| g.next_nonzero()).collect();
        assert!(v.iter().all(|&x| x != 0));
        let mut d = v.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), v.len());
    }

    #[test]
    fn below_stays_in_range() {
        let mut g = SplitMix64::new(1);
        assert!((0..1000).all(|_| g.below(13) < 13));
    }
}
