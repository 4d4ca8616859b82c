//! The token format: `token::parse` (prefix, length, alphabet, checksum), `checksum`,
//! `assemble` and `hint` on any input.

use latchkey_core::token::{self, BASE62, FormatError, RANDOM_LEN, SECRET_LEN, SecretKind};

/// Parses the input as a secret and checks every answer against the format's definition;
/// builds a secret from the input's bytes and checks it parses back to its kind.
pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = token::parse(&text);
    let bytes = text.as_bytes();
    match parsed {
        Ok(kind) => {
            assert_eq!(bytes.len(), SECRET_LEN);
            assert_eq!(&text[..3], kind.prefix());
            assert_eq!(bytes[3], b'_');
            assert!(bytes[4..].iter().all(|b| BASE62.contains(b)));
            let (random, sum) = bytes[4..].split_at(RANDOM_LEN);
            assert_eq!(&token::checksum(random)[..], sum);
            let random: [u8; RANDOM_LEN] = random.try_into().unwrap_or([b'0'; RANDOM_LEN]);
            assert_eq!(token::assemble(kind, &random), text);
        }
        Err(FormatError::Length) => assert_ne!(bytes.len(), SECRET_LEN),
        Err(FormatError::Alphabet) => {
            assert!(bytes[4..].iter().any(|b| !BASE62.contains(b)));
        }
        Err(FormatError::Prefix | FormatError::Checksum) => {}
    }
    let hint = token::hint(&text);
    assert!(hint.contains('…'));

    // Any input's checksum is six base62 digits; a secret built from the input's bytes
    // (mapped into the alphabet) parses as its kind, and any one changed digit of it fails.
    let sum = token::checksum(data);
    assert!(sum.iter().all(|b| BASE62.contains(b)));
    let mut random = [b'0'; RANDOM_LEN];
    for (slot, b) in random.iter_mut().zip(data) {
        *slot = BASE62[usize::from(*b) % BASE62.len()];
    }
    let kinds = [
        SecretKind::Token(latchkey_proto::TokenType::Personal),
        SecretKind::Token(latchkey_proto::TokenType::Legacy),
        SecretKind::Token(latchkey_proto::TokenType::Client),
        SecretKind::Token(latchkey_proto::TokenType::Frontend),
        SecretKind::Token(latchkey_proto::TokenType::Admin),
        SecretKind::Session,
    ];
    let kind = kinds[data.first().map_or(0, |b| usize::from(*b) % kinds.len())];
    let built = token::assemble(kind, &random);
    assert_eq!(token::parse(&built), Ok(kind));
    if let Some(&pick) = data.get(RANDOM_LEN) {
        let pos = 4 + usize::from(pick) % (SECRET_LEN - 4);
        let mut changed = built.into_bytes();
        let digit = data.get(RANDOM_LEN + 1).copied().unwrap_or(1);
        let replacement = BASE62[usize::from(digit) % BASE62.len()];
        if changed[pos] != replacement {
            changed[pos] = replacement;
            let changed = String::from_utf8(changed).unwrap_or_default();
            assert_eq!(token::parse(&changed), Err(FormatError::Checksum));
        }
    }
}
