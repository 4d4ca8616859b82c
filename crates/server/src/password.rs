//! Password hashing with Argon2id, off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordConfig;
use crate::error::ApiError;

fn hasher(config: &PasswordConfig) -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| ApiError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks that the configured Argon2 parameters are usable (at start).
pub fn check_config(config: &PasswordConfig) -> Result<(), ApiError> {
    hasher(config).map(|_| ())
}

/// Hashes a password into a PHC string (in a blocking thread).
pub async fn hash_password(config: &PasswordConfig, password: String) -> Result<String, ApiError> {
    let argon = hasher(config)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
}

/// Checks a password against a PHC string (in a blocking thread). The parameters come from
/// the hash itself, so hashes made under older settings keep working.
pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Checks the rules for a new password.
pub fn check_new_password(field: &str, password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if !(8..=1024).contains(&len) {
        return Err(ApiError::field(
            field,
            "passwords must be 8 to 1024 characters long",
        ));
    }
    Ok(())
}

/// A random password for the first start: 24 base62 characters (~143 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| char::from(latchkey_core::token::BASE62[rng.gen_range(0..62)]))
        .collect()
}
