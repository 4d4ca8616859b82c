//! Short-lived access JWTs (EdDSA / Ed25519) exchanged for personal tokens, their signing
//! keys (kept in the store, encrypted, shared by every node, rotated on a schedule), and the
//! JWKS that lets third parties verify them offline.
//!
//! Signing and verifying are done with `ed25519-dalek` directly: a JWT is three base64url
//! parts, and owning those forty lines keeps one TLS/crypto stack in the build.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use dashmap::DashMap;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use latchkey_core::HashKey;
use latchkey_store::{SigningKeyRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::crypto;

const PURPOSE: &str = "jwt-signing-key v1";
/// Longest JWT lifetime accepted by the config; keys outlive their retirement by this.
const MAX_TTL_SECS: i64 = 900;
const VERIFIED_CACHE_CAP: usize = 100_000;
/// How far ahead of this node's clock another node's `iat` may be.
const CLOCK_SKEW_SECS: i64 = 60;

/// The claims of an access JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the configured public URL.
    pub iss: String,
    /// Audience: `latchkey`.
    pub aud: String,
    /// The owner's user id.
    pub sub: String,
    /// The personal token's workspace id.
    pub ws: String,
    /// Scopes.
    pub scp: Vec<String>,
    /// JWT id.
    pub jti: String,
    /// The personal token's id: checked at every use at Latchkey.
    pub pat: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    kid: String,
}

/// Why a JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not a JWT of ours (shape, algorithm, unknown key, bad signature, claims).
    Invalid,
    /// Past `exp`.
    Expired,
}

struct KeySet {
    signing: Option<(String, SigningKey, OffsetDateTime, OffsetDateTime)>,
    verifying: HashMap<String, VerifyingKey>,
    /// JWKS entries with the instant each leaves the set.
    published: Vec<(serde_json::Value, OffsetDateTime)>,
}

/// The node's view of the signing keys, plus a cache of verified JWTs.
pub struct JwtKeys {
    store: Arc<dyn Store>,
    hash_key: HashKey,
    issuer: String,
    rotation: Duration,
    keys: RwLock<Arc<KeySet>>,
    verified: DashMap<[u8; 32], Arc<AccessClaims>>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Whether a presented credential looks like a JWT rather than a Latchkey token.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.bytes().filter(|b| *b == b'.').count() == 2
}

impl JwtKeys {
    /// Loads the keys, creating the first one if there is none usable.
    pub async fn load(
        store: Arc<dyn Store>,
        hash_key: HashKey,
        issuer: String,
        rotation_days: u64,
        now: OffsetDateTime,
    ) -> Result<JwtKeys, StoreError> {
        let keys = JwtKeys {
            store,
            hash_key,
            issuer,
            rotation: Duration::days(i64::try_from(rotation_days.max(1)).unwrap_or(30)),
            keys: RwLock::new(Arc::new(KeySet {
                signing: None,
                verifying: HashMap::new(),
                published: Vec::new(),
            })),
            verified: DashMap::new(),
        };
        keys.reload(now).await?;
        keys.ensure_signing_key(now).await?;
        Ok(keys)
    }

    /// The issuer (`iss`) of the JWTs made and accepted here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the keys from the store (after a change on another node).
    pub async fn reload(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let records = self.store.list_signing_keys(now).await?;
        let mut verifying = HashMap::new();
        let mut signing: Option<(String, SigningKey, OffsetDateTime, OffsetDateTime)> = None;
        let mut jwks_keys = Vec::new();
        for record in &records {
            let Ok(public): Result<[u8; 32], _> = record.public_key.as_slice().try_into() else {
                tracing::error!(kid = %record.id, "signing key with a malformed public key skipped");
                continue;
            };
            let Ok(vk) = VerifyingKey::from_bytes(&public) else {
                continue;
            };
            verifying.insert(record.id.clone(), vk);
            jwks_keys.push((
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                    "kid": record.id, "x": B64.encode(public),
                }),
                record.expires_at,
            ));
            if record.retire_at > now
                && signing
                    .as_ref()
                    .is_none_or(|(_, _, created, _)| record.created_at > *created)
            {
                match crypto::open(
                    &self.hash_key,
                    PURPOSE,
                    record.id.as_bytes(),
                    &record.private_key,
                )
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                {
                    Some(secret) => {
                        signing = Some((
                            record.id.clone(),
                            SigningKey::from_bytes(&secret),
                            record.created_at,
                            record.retire_at,
                        ));
                    }
                    None => {
                        tracing::error!(kid = %record.id, "cannot decrypt a signing key (another hash key?)")
                    }
                }
            }
        }
        let set = Arc::new(KeySet {
            signing,
            verifying,
            published: jwks_keys,
        });
        if let Ok(mut guard) = self.keys.write() {
            *guard = set;
        }
        Ok(())
    }

    /// Makes sure a key usable for signing exists (first start, or the current one retired).
    pub async fn ensure_signing_key(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        if self
            .current()
            .signing
            .as_ref()
            .is_some_and(|(.., retire_at)| *retire_at > now)
        {
            return Ok(());
        }
        let secret = SigningKey::generate(&mut rand::rngs::OsRng);
        let kid = latchkey_core::new_id();
        let retire_at = now + self.rotation;
        let record = SigningKeyRecord {
            id: kid.clone(),
            algorithm: "EdDSA".into(),
            public_key: secret.verifying_key().to_bytes().to_vec(),
            private_key: crypto::seal(&self.hash_key, PURPOSE, kid.as_bytes(), &secret.to_bytes()),
            created_at: now,
            retire_at,
            expires_at: retire_at + Duration::seconds(MAX_TTL_SECS + 60),
        };
        // Another node may have added one meanwhile; either way, re-read.
        let not_before = now - self.rotation;
        self.store.add_signing_key(record, not_before).await?;
        self.reload(now).await
    }

    /// The JWKS document: every key whose JWTs may still be valid at `now`.
    pub fn jwks(&self, now: OffsetDateTime) -> String {
        let set = self.current();
        let keys: Vec<&serde_json::Value> = set
            .published
            .iter()
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(key, _)| key)
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Signs an access JWT.
    pub async fn issue(
        &self,
        claims: &AccessClaims,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let usable = |set: &KeySet| {
            set.signing
                .as_ref()
                .is_some_and(|(.., retire_at)| *retire_at > now)
        };
        if !usable(&self.current()) {
            self.reload(now).await?;
            if !usable(&self.current()) {
                self.ensure_signing_key(now).await?;
            }
        }
        let set = self.current();
        let Some((kid, key, ..)) = &set.signing else {
            return Err(StoreError::Internal("no JWT signing key available".into()));
        };
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("at+jwt".into()),
            kid: kid.clone(),
        };
        let encode = |v: &dyn erased::Json| B64.encode(v.to_json());
        let signing_input = format!("{}.{}", encode(&header), encode(claims));
        let signature = key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            B64.encode(signature.to_bytes())
        ))
    }

    /// Verifies a JWT's signature and claims (not its `pat`: the caller checks that at every
    /// use). Verified JWTs are cached by hash until they expire.
    pub async fn verify(
        &self,
        jwt: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<AccessClaims>, JwtError> {
        let digest: [u8; 32] = Sha256::digest(jwt.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            return if claims.exp > now.unix_timestamp() {
                Ok(Arc::clone(claims.value()))
            } else {
                Err(JwtError::Expired)
            };
        }
        let unverified = UnverifiedJwt::parse(jwt)?;
        let mut vk = self.current().verifying.get(unverified.kid()).copied();
        if vk.is_none() {
            // A key made on another node after our last reload.
            let _ = self.reload(now).await;
            vk = self.current().verifying.get(unverified.kid()).copied();
        }
        let vk = vk.ok_or(JwtError::Invalid)?;
        let claims = unverified.verify(&vk, &self.issuer, now.unix_timestamp())?;
        let claims = Arc::new(claims);
        if self.verified.len() >= VERIFIED_CACHE_CAP {
            let cutoff = now.unix_timestamp();
            self.verified.retain(|_, c| c.exp > cutoff);
            if self.verified.len() >= VERIFIED_CACHE_CAP {
                self.verified.clear();
            }
        }
        self.verified.insert(digest, Arc::clone(&claims));
        Ok(claims)
    }
}

/// A JWT split into its three parts with its header checked (shape, `alg: EdDSA`, `typ:
/// at+jwt`), its signature and claims not yet: the pure half of [`JwtKeys::verify`], public
/// so that it can be fuzzed without a store. (No `Debug`: it holds a credential.)
pub struct UnverifiedJwt<'a> {
    kid: String,
    signing_input: &'a str,
    claims: &'a str,
    signature: &'a str,
}

impl<'a> UnverifiedJwt<'a> {
    /// Splits `jwt` and checks its header.
    pub fn parse(jwt: &'a str) -> Result<UnverifiedJwt<'a>, JwtError> {
        let mut parts = jwt.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Invalid);
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Invalid)?;
        // Only our own kind of JWT: EdDSA, typed as an access token (RFC 9068), so that no
        // other JWT signed with these keys could ever pass for one.
        let typed = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if header.alg != "EdDSA" || !typed {
            return Err(JwtError::Invalid);
        }
        Ok(UnverifiedJwt {
            kid: header.kid,
            signing_input: &jwt[..h.len() + 1 + c.len()],
            claims: c,
            signature: s,
        })
    }

    /// The `kid` the header names.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Checks the signature with `key`, then the claims against `issuer` and `now` (Unix
    /// seconds): audience, expiry, the longest lifetime, and an `iat` not in the future.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        issuer: &str,
        now: i64,
    ) -> Result<AccessClaims, JwtError> {
        let signature = B64
            .decode(self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(JwtError::Invalid)?;
        key.verify_strict(self.signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::Invalid)?;
        let claims: AccessClaims = B64
            .decode(self.claims)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Invalid)?;
        if claims.iss != issuer || claims.aud != "latchkey" {
            return Err(JwtError::Invalid);
        }
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        // No JWT of ours lives longer than the longest configurable lifetime (plus the one
        // second `refresh` adds), nor was issued in the future (a minute of clock skew
        // between nodes allowed).
        // Saturating: `exp` and `iat` are whatever the JSON said (the fuzz target found
        // the overflow).
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL_SECS + 1
            || claims.iat > now.saturating_add(CLOCK_SKEW_SECS)
        {
            return Err(JwtError::Invalid);
        }
        Ok(claims)
    }
}

mod erased {
    /// Serializes anything serde can, for the two JWT parts.
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(claims: &serde_json::Value, key: &SigningKey) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }

    fn claims(iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://l.example", "aud": "latchkey", "sub": "u", "ws": "w", "scp": [],
            "jti": "j", "pat": "p", "iat": iat, "exp": exp,
        })
    }

    #[test]
    fn claims_are_checked_behind_the_signature() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let vk = key.verifying_key();
        let check = |jwt: &str| {
            UnverifiedJwt::parse(jwt).and_then(|u| u.verify(&vk, "https://l.example", 1000))
        };
        assert!(check(&signed(&claims(990, 1500), &key)).is_ok());
        assert_eq!(
            check(&signed(&claims(10, 1000), &key)),
            Err(JwtError::Expired)
        );
        assert_eq!(
            check(&signed(&claims(990, 2000), &key)),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            check(&signed(&claims(1100, 1500), &key)),
            Err(JwtError::Invalid)
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            check(&signed(&claims(990, 1500), &other)),
            Err(JwtError::Invalid)
        );
    }

    /// The fuzz target found `exp - iat` overflowing (a panic in debug builds; in release a
    /// JWT with `iat` far in the past and `exp` far ahead passed the lifetime check).
    #[test]
    fn extreme_iat_and_exp_are_refused_not_overflowed() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let vk = key.verifying_key();
        let check = |jwt: &str| {
            UnverifiedJwt::parse(jwt).and_then(|u| u.verify(&vk, "https://l.example", 1000))
        };
        assert_eq!(
            check(&signed(&claims(i64::MIN + 1, i64::MAX), &key)),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            check(&signed(&claims(i64::MIN, 1500), &key)),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            check(&signed(&claims(i64::MAX, i64::MAX), &key)),
            Err(JwtError::Invalid)
        );
        let far = UnverifiedJwt::parse(&signed(&claims(990, 1500), &key))
            .and_then(|u| u.verify(&vk, "https://l.example", i64::MAX));
        assert_eq!(far, Err(JwtError::Expired));
    }
}
