//! A memory scan in pieces (a virus scan, an indexer, an update reading
//! what it finds): every `scan_every_s` the guest reads the next `scan_mib`
//! of its filled memory, wrapping around. While its VM is consolidated and
//! its desktop asleep, each piece misses pages the server lacks: a wake
//! storm, one wake per piece, unless the server pulls the rest.

use std::ops::Range;

/// The words of the `n`-th piece (from 0) of `piece_words` words each, over
/// a buffer of `total_words` words, wrapping around (empty if either is 0).
pub fn piece(n: u64, piece_words: usize, total_words: usize) -> Range<usize> {
    if piece_words == 0 || total_words == 0 {
        return 0..0;
    }
    let piece_words = piece_words.min(total_words);
    let pieces = total_words.div_ceil(piece_words) as u64;
    let start = (n % pieces) as usize * piece_words;
    start..(start + piece_words).min(total_words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_buffer_and_wrap() {
        assert_eq!(piece(0, 4, 10), 0..4);
        assert_eq!(piece(1, 4, 10), 4..8);
        assert_eq!(piece(2, 4, 10), 8..10);
        assert_eq!(piece(3, 4, 10), 0..4);
        assert_eq!(piece(7, 20, 10), 0..10, "a piece larger than the buffer");
        assert_eq!(piece(5, 0, 10), 0..0);
        assert_eq!(piece(5, 4, 0), 0..0);
    }
}
