//! The token format (DESIGN.md §2): `<prefix>_<32 random base62><6 base62 CRC32>`.
//!
//! The checksum lets clients, secret scanners and the server reject a mistyped or made-up
//! token without a database read. Secret-scanner regex:
//! `\blk[plcfa]_[0-9A-Za-z]{38}\b` (then check the CRC32 of the 32 random characters).

use latchkey_proto::TokenType;
use rand::Rng;
use rand::rngs::OsRng;

/// The base62 alphabet, in digit order.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the random part.
pub const RANDOM_LEN: usize = 32;
/// Length of the checksum part.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole secret: three-letter prefix, `_`, random part, checksum.
pub const SECRET_LEN: usize = 3 + 1 + RANDOM_LEN + CHECKSUM_LEN;

/// What a secret's prefix says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// An API token of this type.
    Token(TokenType),
    /// A console session (`lks_`), never listed.
    Session,
}

impl SecretKind {
    /// The three-letter prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::Token(TokenType::Personal) => "lkp",
            SecretKind::Token(TokenType::Legacy) => "lkl",
            SecretKind::Token(TokenType::Client) => "lkc",
            SecretKind::Token(TokenType::Frontend) => "lkf",
            SecretKind::Token(TokenType::Admin) => "lka",
            SecretKind::Session => "lks",
        }
    }

    fn from_prefix(prefix: &[u8]) -> Option<SecretKind> {
        Some(match prefix {
            b"lkp" => SecretKind::Token(TokenType::Personal),
            b"lkl" => SecretKind::Token(TokenType::Legacy),
            b"lkc" => SecretKind::Token(TokenType::Client),
            b"lkf" => SecretKind::Token(TokenType::Frontend),
            b"lka" => SecretKind::Token(TokenType::Admin),
            b"lks" => SecretKind::Session,
            _ => return None,
        })
    }
}

/// Why a string is not a Latchkey secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Wrong total length.
    #[error("wrong length")]
    Length,
    /// Unknown prefix or missing `_`.
    #[error("unknown prefix")]
    Prefix,
    /// A character outside base62.
    #[error("character outside base62")]
    Alphabet,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
}

/// The base62 CRC32 (IEEE, as zlib) checksum of the random part, six digits, most
/// significant first, left-padded with `0`.
pub fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Makes a new secret of `kind` from the operating system's CSPRNG.
pub fn generate(kind: SecretKind) -> String {
    // Uniform base62 digits by rejection sampling over random bytes (248 = 4 × 62, so
    // `b % 62` is uniform for b < 248), drawing from the OS in one call per 64 bytes
    // rather than one per digit.
    let mut rng = OsRng;
    let mut random = [0u8; RANDOM_LEN];
    let mut pool = [0u8; 64];
    let mut used = pool.len();
    let mut filled = 0;
    while filled < RANDOM_LEN {
        if used == pool.len() {
            rng.fill(&mut pool[..]);
            used = 0;
        }
        let b = pool[used];
        used += 1;
        if b < 248 {
            random[filled] = BASE62[usize::from(b % 62)];
            filled += 1;
        }
    }
    assemble(kind, &random)
}

/// Builds a secret from a prefix kind and 32 base62 characters.
pub fn assemble(kind: SecretKind, random: &[u8; RANDOM_LEN]) -> String {
    let mut out = String::with_capacity(SECRET_LEN);
    out.push_str(kind.prefix());
    out.push('_');
    for &b in random {
        out.push(char::from(b));
    }
    for b in checksum(random) {
        out.push(char::from(b));
    }
    out
}

/// Checks prefix, length, alphabet and checksum, without any lookup.
#[inline]
pub fn parse(secret: &str) -> Result<SecretKind, FormatError> {
    let bytes = secret.as_bytes();
    if bytes.len() != SECRET_LEN {
        return Err(FormatError::Length);
    }
    if bytes[3] != b'_' {
        return Err(FormatError::Prefix);
    }
    let kind = SecretKind::from_prefix(&bytes[..3]).ok_or(FormatError::Prefix)?;
    let body = &bytes[4..];
    // Branch-free over the fixed 38 bytes (the compiler vectorises it): `0-9`, then
    // `A-Z`/`a-z` folded to lower case.
    let base62 = body.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26))
    });
    if !base62 {
        return Err(FormatError::Alphabet);
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    if checksum(random) != sum {
        return Err(FormatError::Checksum);
    }
    Ok(kind)
}

/// The hint shown in lists: `lkp_…a1B2` (prefix and last four characters).
pub fn hint(secret: &str) -> String {
    let prefix = secret.get(..3).unwrap_or("lk?");
    let tail = secret.get(secret.len().saturating_sub(4)..).unwrap_or("");
    format!("{prefix}_…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_parse_with_their_kind() {
        for t in TokenType::ALL {
            let s = generate(SecretKind::Token(t));
            assert_eq!(s.len(), SECRET_LEN);
            assert_eq!(parse(&s), Ok(SecretKind::Token(t)));
            assert!(s.starts_with(SecretKind::Token(t).prefix()));
        }
        assert_eq!(
            parse(&generate(SecretKind::Session)),
            Ok(SecretKind::Session)
        );
    }

    #[test]
    fn checksum_matches_zlib_crc32_in_base62() {
        // Expected values computed with Python's zlib.crc32 and the documented base62.
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
        assert_eq!(&checksum(&[b'A'; RANDOM_LEN]), b"3Ae0o2");
        assert_eq!(
            parse(&format!("lkc_{}3Ae0o2", "A".repeat(32))),
            Ok(SecretKind::Token(TokenType::Client))
        );
    }

    #[test]
    fn rejects_wrong_shapes() {
        let good = generate(SecretKind::Token(TokenType::Client));
        assert_eq!(parse(&good[1..]), Err(FormatError::Length));
        assert_eq!(
            parse(&format!("lkx{}", &good[3..])),
            Err(FormatError::Prefix)
        );
        assert_eq!(
            parse(&format!("lkp-{}", &good[4..])),
            Err(FormatError::Prefix)
        );
        let mut bad = good.clone().into_bytes();
        bad[10] = b'!';
        assert_eq!(
            parse(&String::from_utf8(bad).unwrap()),
            Err(FormatError::Alphabet)
        );
        assert_eq!(parse(""), Err(FormatError::Length));
        assert_eq!(parse("é".repeat(20).as_str()), Err(FormatError::Length));
        assert!(
            parse("é".repeat(21).as_str()).is_err(),
            "42 bytes, not ASCII"
        );
    }

    #[test]
    fn hint_shows_prefix_and_last_four() {
        let s = generate(SecretKind::Token(TokenType::Personal));
        let h = hint(&s);
        assert!(h.starts_with("lkp_…"));
        assert!(h.ends_with(&s[s.len() - 4..]));
    }

    proptest! {
        #[test]
        fn round_trip(random in proptest::collection::vec(0usize..62, RANDOM_LEN), t in 0usize..5) {
            let mut r = [0u8; RANDOM_LEN];
            for (slot, i) in r.iter_mut().zip(random) { *slot = BASE62[i]; }
            let kind = SecretKind::Token(TokenType::ALL[t]);
            let s = assemble(kind, &r);
            prop_assert_eq!(parse(&s), Ok(kind));
        }

        #[test]
        fn any_single_character_change_is_rejected(pos in 4usize..SECRET_LEN, digit in 0usize..62) {
            let s = generate(SecretKind::Token(TokenType::Personal));
            let mut bytes = s.clone().into_bytes();
            prop_assume!(bytes[pos] != BASE62[digit]);
            bytes[pos] = BASE62[digit];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(parse(&changed), Err(FormatError::Checksum));
        }
    }
}
