//! Cheap hashers for the hot path's maps, where SipHash (the default, built to resist
//! chosen keys) costs more than the rest of a lookup.
//!
//! * [`SecretHashHasher`] for maps keyed by a secret's HMAC: the key is already the output
//!   of a keyed PRF that callers cannot steer without the server's key, so its first eight
//!   bytes are a uniformly distributed hash as they are.
//! * [`FxHasher`] (the rustc hasher) for ids and route names, which the server makes
//!   itself (UUIDv7 ids, route patterns): callers cannot choose them to collide.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a `[u8; 32]` HMAC output by taking eight of its bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretHashHasher(u64);

impl Hasher for SecretHashHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as one `write` of its bytes (after the length prefix).
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    #[inline]
    fn write_usize(&mut self, _len: usize) {
        // The length prefix of a fixed-size key carries nothing.
    }
}

/// Build hasher for maps keyed by [`latchkey_core::SecretHash`].
pub type SecretHashBuild = BuildHasherDefault<SecretHashHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The Fx hasher: one rotate, xor and multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// Build hasher for maps keyed by server-made ids and names.
pub type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hash};

    use super::*;

    fn hash_of<T: Hash + ?Sized, B: BuildHasher + Default>(value: &T) -> u64 {
        B::default().hash_one(value)
    }

    #[test]
    fn secret_hashes_hash_by_their_leading_bytes() {
        let mut a = [0u8; 32];
        a[..8].copy_from_slice(&7u64.to_le_bytes());
        let mut b = a;
        b[31] = 1;
        assert_eq!(hash_of::<_, SecretHashBuild>(&a), 7);
        assert_eq!(hash_of::<_, SecretHashBuild>(&b), 7);
    }

    #[test]
    fn fx_tells_ids_apart_and_str_matches_boxed_str() {
        let x = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let y = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
        assert_ne!(hash_of::<_, FxBuild>(x), hash_of::<_, FxBuild>(y));
        let boxed: Box<str> = Box::from(x);
        assert_eq!(hash_of::<_, FxBuild>(x), hash_of::<_, FxBuild>(&*boxed));
        let shared: std::sync::Arc<str> = std::sync::Arc::from(x);
        assert_eq!(hash_of::<_, FxBuild>(x), hash_of::<_, FxBuild>(&*shared));
    }
}
