//! The hasher of the BFD task's maps (sessions by discriminator, timers, peers by address).
//!
//! Their keys are discriminators and addresses the task chose or configured; a packet only ever
//! looks one up, never inserts one, so SipHash's resistance to chosen-key floods buys nothing,
//! while hashing was a tenth of the task's CPU at 1000 sessions. This is the multiply-rotate
//! hash rustc uses for the same kind of keys.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Multiply-rotate hashing of whole words.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn nearby_keys_spread_over_the_high_bits_the_table_uses() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let tops: HashSet<u64> = (0u32..256).map(|d| b.hash_one(d) >> 57).collect();
        assert!(tops.len() > 64, "{} distinct top-7-bit values", tops.len());
        let v6: HashSet<u64> = (1u16..=256)
            .map(|i| b.hash_one(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, i])) >> 57)
            .collect();
        assert!(v6.len() > 64, "{} distinct top-7-bit values", v6.len());
    }
}
