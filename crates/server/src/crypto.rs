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

/// The cipher of releases that derived sub-keys before HKDF: values they sealed (JWT
/// signing keys, idempotent answers) still open after an upgrade.
fn cipher_before_hkdf(key: &HashKey, purpose: &str) -> ChaCha20Poly1305 {
    let derived = key.derive_before_hkdf(purpose);
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
    let nonce = Nonce::from_slice(nonce);
    // The AEAD tag tells which key sealed it: a wrong key never opens anything.
    cipher(key, purpose)
        .decrypt(nonce, Payload { msg: ct, aad })
        .or_else(|_| cipher_before_hkdf(key, purpose).decrypt(nonce, Payload { msg: ct, aad }))
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

    #[test]
    fn values_sealed_before_hkdf_still_open() {
        // What a release before HKDF stored: nonce ‖ ciphertext under the old sub-key.
        let key = HashKey::from_bytes(&[9; 32]);
        let nonce = [3u8; NONCE_LEN];
        let old = cipher_before_hkdf(&key, "jwt-signing-key v1")
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"old secret",
                    aad: b"kid",
                },
            )
            .unwrap();
        let stored = [nonce.as_slice(), &old].concat();
        assert_eq!(
            open(&key, "jwt-signing-key v1", b"kid", &stored).unwrap(),
            b"old secret"
        );
        // New values are sealed under the HKDF key only.
        let new = seal(&key, "jwt-signing-key v1", b"kid", b"new secret");
        let (n, ct) = new.split_at(NONCE_LEN);
        assert!(
            cipher_before_hkdf(&key, "jwt-signing-key v1")
                .decrypt(
                    Nonce::from_slice(n),
                    Payload {
                        msg: ct,
                        aad: b"kid"
                    }
                )
                .is_err()
        );
        assert_eq!(
            open(&key, "jwt-signing-key v1", b"kid", &new).unwrap(),
            b"new secret"
        );
    }
}
