//! Authenticated encryption for the few secrets that must be stored recoverably (JWT signing
//! keys, idempotent rotate answers), under keys derived from the hash key per purpose.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use latchkey_core::HashKey;

const NONCE_LEN: usize = 12;

/// Why a sealed value cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed value is corrupt or was sealed under another key")]
pub struct OpenError;

fn cipher(key: &HashKey, purpose: &str) -> ChaCha20Poly1305 {
    let derived = key.derive(purpose);
    ChaCha20Poly1305::new(Key::from_slice(&derived))
}

/// Encrypts `plaintext` for `purpose`, bound to `aad`; output is nonce ‖ ciphertext.
pub fn seal(key: &HashKey, purpose: &str, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = nonce.to_vec();
    // Encryption with a valid key and nonce cannot fail for in-memory buffers.
    if let Ok(ct) = cipher(key, purpose).encrypt(
        &nonce,
        Payload {
            msg: plaintext,
            aad,
        },
    ) {
        out.extend_from_slice(&ct);
    }
    out
}

/// Decrypts what [`seal`] made with the same key, purpose and `aad`.
pub fn open(key: &HashKey, purpose: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(OpenError);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher(key, purpose)
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = HashKey::from_bytes(&[7; 32]);
        let other = HashKey::from_bytes(&[8; 32]);
        let sealed = seal(&key, "p", b"aad", b"secret");
        assert_eq!(open(&key, "p", b"aad", &sealed).unwrap(), b"secret");
        assert!(open(&key, "q", b"aad", &sealed).is_err());
        assert!(open(&key, "p", b"other", &sealed).is_err());
        assert!(open(&other, "p", b"aad", &sealed).is_err());
        assert!(open(&key, "p", b"aad", &sealed[..10]).is_err());
    }
}
