//! Keyed hashing of secrets: HMAC-SHA256 under the server's hash key, which the database
//! never holds, so a stolen database cannot even confirm a guessed token.

use hmac::{Hmac, Mac};
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// The HMAC output stored for a secret.
pub type SecretHash = [u8; 32];

/// Why a hash key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashKeyError {
    /// Not 64 hex characters.
    #[error("the hash key must be 64 hex characters (32 bytes), got {0} characters")]
    BadLength(usize),
    /// Not hex.
    #[error("the hash key must be hex (0-9, a-f)")]
    NotHex,
}

/// The server's secret key with its HMAC state precomputed, so hashing a token costs two
/// SHA-256 compressions instead of four.
///
/// A message of at most 55 bytes (every Latchkey secret) fits one padded block, so its
/// HMAC is exactly two compressions: the inner one from the precomputed `ipad` state over
/// the padded message, the outer one from the precomputed `opad` state over the padded
/// inner digest. [`HashKey::hash`] does just that on the stack; longer input goes through
/// the `hmac` crate. Both give standard HMAC-SHA256 (tested against each other).
#[derive(Clone)]
pub struct HashKey {
    mac: Hmac<Sha256>,
    /// HKDF-SHA256 state (extracted once) for per-purpose sub-keys.
    hkdf: hkdf::Hkdf<Sha256>,
    inner: [u32; 8],
    outer: [u32; 8],
    id: String,
}

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The HKDF salt for sub-keys (fixed: the input key is already uniformly random).
const HKDF_SALT: &[u8] = b"latchkey hkdf v1";

/// Longest message that fits one SHA-256 block with its padding.
const ONE_BLOCK_MAX: usize = 55;

#[inline]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(
        state,
        std::slice::from_ref(GenericArray::<u8, U64>::from_slice(block)),
    );
}

/// The state after absorbing `key` (zero-padded to a block) XOR `pad`.
fn pad_state(key: &[u8; 32], pad: u8) -> [u32; 8] {
    let mut block = [pad; 64];
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    let mut state = SHA256_IV;
    compress(&mut state, &block);
    state
}

/// Pads `len` message bytes already in `block` (after one block of key pad) and writes
/// the bit length.
#[inline]
fn pad_block(block: &mut [u8; 64], len: usize) {
    block[len] = 0x80;
    let bits = ((64 + len) as u64) * 8;
    block[56..].copy_from_slice(&bits.to_be_bytes());
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl HashKey {
    /// Builds a key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> HashKey {
        // HMAC accepts keys of any length: this cannot fail, whatever the input.
        #[allow(clippy::expect_used)]
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes any key length");
        let mut id_hasher = Sha256::new();
        id_hasher.update(b"latchkey key id v1\0");
        id_hasher.update(bytes);
        let id = hex::encode(&id_hasher.finalize()[..8]);
        HashKey {
            mac,
            hkdf: hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), bytes),
            inner: pad_state(bytes, 0x36),
            outer: pad_state(bytes, 0x5c),
            id,
        }
    }

    /// Parses the configured text form: 64 hex characters, a trailing newline ignored.
    pub fn from_hex(text: &str) -> Result<HashKey, HashKeyError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.len() != 64 {
            return Err(HashKeyError::BadLength(text.chars().count()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| HashKeyError::NotHex)?;
        Ok(HashKey::from_bytes(&bytes))
    }

    /// A fresh random key, as hex text.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        hex::encode(bytes)
    }

    /// A public fingerprint of the key, recorded with every hash so the key can rotate.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `secret`.
    #[inline]
    pub fn hash(&self, secret: &str) -> SecretHash {
        let message = secret.as_bytes();
        if message.len() > ONE_BLOCK_MAX {
            return self.hash_with_crate(message);
        }
        let mut block = [0u8; 64];
        block[..message.len()].copy_from_slice(message);
        pad_block(&mut block, message.len());
        let mut inner = self.inner;
        compress(&mut inner, &block);
        let mut block = [0u8; 64];
        for (chunk, word) in block.chunks_exact_mut(4).zip(inner) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        pad_block(&mut block, 32);
        let mut outer = self.outer;
        compress(&mut outer, &block);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(outer) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// HMAC-SHA256 of `message` through the `hmac` crate (any length).
    pub fn hash_with_crate(&self, message: &[u8]) -> SecretHash {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Derives a sub-key for another purpose (e.g. encrypting signing keys), so one
    /// configured secret serves every need without reuse across purposes: HKDF-SHA256
    /// (RFC 5869) with salt `latchkey hkdf v1` and the purpose as `info`.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: this cannot fail.
        if self.hkdf.expand(purpose.as_bytes(), &mut out).is_err() {
            out = self.derive_before_hkdf(purpose);
        }
        out
    }

    /// The sub-key derivation of releases before HKDF (an HMAC of a label and the
    /// purpose), kept only so that values sealed then can still be opened after an
    /// upgrade; nothing new is made with it.
    pub fn derive_before_hkdf(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"latchkey derive v1\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Constant-time equality for secrets and their hashes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_with_trailing_newline_only() {
        let hex = "ab".repeat(32);
        assert!(HashKey::from_hex(&hex).is_ok());
        assert!(HashKey::from_hex(&format!("{hex}\n")).is_ok());
        assert_eq!(
            HashKey::from_hex("abc").unwrap_err(),
            HashKeyError::BadLength(3)
        );
        assert_eq!(
            HashKey::from_hex(&"zz".repeat(32)).unwrap_err(),
            HashKeyError::NotHex
        );
        assert!(HashKey::from_hex(&format!("{hex}\n\n")).is_err());
    }

    #[test]
    fn hmac_matches_rfc4231_vector_shape() {
        // Same key, same input → same hash; different keys → different hashes and ids.
        let a = HashKey::from_hex(&"01".repeat(32)).unwrap();
        let b = HashKey::from_hex(&"02".repeat(32)).unwrap();
        assert_eq!(a.hash("x"), a.hash("x"));
        assert_ne!(a.hash("x"), b.hash("x"));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert!(!format!("{a:?}").contains("0101"));
    }

    #[test]
    fn two_block_path_matches_the_hmac_crate_at_every_length() {
        for seed in 0u8..4 {
            let key_bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ seed);
            let key = HashKey::from_bytes(&key_bytes);
            let text: String = (0..120)
                .map(|i| char::from(b'a' + ((i * 7 + seed as usize) % 26) as u8))
                .collect();
            for len in 0..=text.len() {
                let message = &text[..len];
                assert_eq!(
                    key.hash(message),
                    key.hash_with_crate(message.as_bytes()),
                    "length {len}"
                );
            }
        }
    }

    #[test]
    fn sub_keys_are_hkdf_sha256() {
        // Computed independently with Python's `cryptography`:
        // HKDF(hashes.SHA256(), 32, b"latchkey hkdf v1", b"p").derive(bytes([7] * 32)).hex()
        let key = HashKey::from_bytes(&[7; 32]);
        assert_eq!(
            hex::encode(key.derive("p")),
            "1d5495a0a508d15d107029fb0a40a1426f8f05ff655790c5fc5c5ea906c27a38"
        );
        assert_ne!(key.derive("p"), key.derive("q"));
        assert_ne!(key.derive("p"), key.derive_before_hkdf("p"));
    }

    #[test]
    fn hmac_is_standard_hmac_sha256() {
        // RFC 4231 test case 2 uses a short key; ours are 32 bytes, so check against the
        // value computed independently by Python: hmac.new(b"\x0b"*32, b"Hi There", sha256).
        let key = HashKey::from_bytes(&[0x0b; 32]);
        assert_eq!(
            hex::encode(key.hash("Hi There")),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
