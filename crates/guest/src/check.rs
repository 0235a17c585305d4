//! The memory-integrity checker: a region filled with a known pattern.
//!
//! Every word of the region is a pure function of the seed, the word's index
//! and the generation of the page ("block") it lies in. A check verifies every
//! word; then a small rotating set of blocks is rewritten with the next
//! generation, so pages keep getting dirtied (and must travel with a
//! migration) and are re-verified later. A page that came back stale (an old
//! generation) is detected just like a flipped bit.

use crate::rng::mix64;

/// Words per block (one 4 KiB page).
pub const BLOCK_WORDS: usize = 4096 / 8;

/// Expected value of word `index` of a block at generation `gen`.
pub fn pattern_word(seed: u64, gen: u32, index: u64) -> u64 {
    let g = u64::from(gen).wrapping_mul(0xd6e8_feb8_6659_fd93);
    mix64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ g)
}

/// One word that did not hold its expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Byte offset in the region.
    pub offset: u64,
    /// Expected value.
    pub expected: u64,
    /// Value found.
    pub got: u64,
}

/// Result of one verification pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Words verified.
    pub words: u64,
    /// Words that did not match.
    pub failures: u64,
    /// The first few mismatches (at most the `max_report` given to `verify`).
    pub mismatches: Vec<Mismatch>,
}

/// The checked region plus the generation of each of its blocks.
#[derive(Debug)]
pub struct CheckRegion {
    seed: u64,
    words: Vec<u64>,
    gens: Vec<u32>,
    cursor: usize,
}

impl CheckRegion {
    /// Allocates `bytes` (rounded down to whole pages) and fills every block
    /// with generation 0.
    pub fn new(seed: u64, bytes: usize) -> Self {
        let blocks = bytes / (BLOCK_WORDS * 8);
        let mut r = Self {
            seed,
            words: vec![0; blocks * BLOCK_WORDS],
            gens: vec![0; blocks],
            cursor: 0,
        };
        for b in 0..blocks {
            r.write_block(b);
        }
        r
    }

    /// Number of blocks (pages).
    pub fn blocks(&self) -> usize {
        self.gens.len()
    }

    /// Current generation of block `b`.
    pub fn generation(&self, b: usize) -> u32 {
        self.gens[b]
    }

    fn write_block(&mut self, b: usize) {
        let (seed, gen) = (self.seed, self.gens[b]);
        let base = b * BLOCK_WORDS;
        for (i, w) in self.words[base..base + BLOCK_WORDS].iter_mut().enumerate() {
            *w = pattern_word(seed, gen, (base + i) as u64);
        }
    }

    /// Verifies every word. Blocks with mismatches are rewritten with their
    /// expected content, so one corruption is counted once.
    pub fn verify(&mut self, max_report: usize) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        for b in 0..self.blocks() {
            let base = b * BLOCK_WORDS;
            let mut bad = false;
            for i in base..base + BLOCK_WORDS {
                let expected = pattern_word(self.seed, self.gens[b], i as u64);
                let got = self.words[i];
                if got != expected {
                    bad = true;
                    out.failures += 1;
                    if out.mismatches.len() < max_report {
                        out.mismatches.push(Mismatch {
                            offset: i as u64 * 8,
                            expected,
                            got,
                        });
                    }
                }
            }
            out.words += BLOCK_WORDS as u64;
            if bad {
                self.write_block(b);
            }
        }
        out
    }

    /// Moves the next `pages` blocks (rotating) to their next generation and
    /// rewrites them. Returns the blocks rewritten.
    pub fn rewrite(&mut self, pages: usize) -> Vec<usize> {
        let n = self.blocks();
        let mut done = Vec::new();
        for _ in 0..pages.min(n) {
            let b = self.cursor;
            self.gens[b] = self.gens[b].wrapping_add(1);
            self.write_block(b);
            done.push(b);
            self.cursor = (self.cursor + 1) % n;
        }
        done
    }

    /// Mutable access to the raw words (for fault injection in tests).
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = BLOCK_WORDS * 8;

    #[test]
    fn intact_region_passes() {
        let mut r = CheckRegion::new(1, 8 * PAGE);
        let o = r.verify(4);
        assert_eq!(
            o,
            CheckOutcome {
                words: 8 * BLOCK_WORDS as u64,
                failures: 0,
                mismatches: vec![]
            }
        );
    }

    #[test]
    fn flipped_bit_is_detected_once() {
        let mut r = CheckRegion::new(1, 8 * PAGE);
        let before = r.words_mut()[1000];
        r.words_mut()[1000] ^= 1 << 17;
        let o = r.verify(4);
        assert_eq!(o.failures, 1);
        assert_eq!(
            o.mismatches,
            vec![Mismatch {
                offset: 8000,
                expected: before,
                got: before ^ (1 << 17)
            }]
        );
        assert_eq!(r.verify(4).failures, 0, "the block was repaired");
    }

    #[test]
    fn report_is_bounded() {
        let mut r = CheckRegion::new(3, 2 * PAGE);
        r.words_mut().iter_mut().for_each(|w| *w = 0);
        let o = r.verify(3);
        assert_eq!(o.failures, 2 * BLOCK_WORDS as u64);
        assert_eq!(o.mismatches.len(), 3);
    }

    #[test]
    fn generations_rotate_and_stay_verifiable() {
        let mut r = CheckRegion::new(5, 4 * PAGE);
        assert_eq!(r.rewrite(3), vec![0, 1, 2]);
        assert_eq!(r.rewrite(3), vec![3, 0, 1]);
        assert_eq!(
            (0..4).map(|b| r.generation(b)).collect::<Vec<_>>(),
            vec![2, 2, 1, 1]
        );
        assert_eq!(r.verify(4).failures, 0);
        assert_eq!(r.rewrite(10).len(), 4, "never more than the region");
    }

    #[test]
    fn stale_page_is_detected() {
        let mut r = CheckRegion::new(5, 4 * PAGE);
        let old: Vec<u64> = r.words_mut()[..BLOCK_WORDS].to_vec();
        r.rewrite(1);
        // Simulate a lost dirty page: block 0 comes back with generation 0 data.
        r.words_mut()[..BLOCK_WORDS].copy_from_slice(&old);
        assert_eq!(r.verify(1).failures, BLOCK_WORDS as u64);
    }

    #[test]
    fn pattern_depends_on_seed_gen_and_index() {
        let p = pattern_word(1, 0, 0);
        assert_ne!(p, pattern_word(2, 0, 0));
        assert_ne!(p, pattern_word(1, 1, 0));
        assert_ne!(p, pattern_word(1, 0, 1));
        assert_eq!(p, pattern_word(1, 0, 0));
    }
}
