//! Opaque random secrets and the hash they are stored under.
//!
//! Refresh tokens, bot tokens and backup codes are bearer secrets: whoever holds one is the user.
//! The database keeps only [`hash_token`] of each, so a leaked table cannot be replayed; a plain
//! SHA-256 suffices (no salt or stretching) because the inputs are high-entropy random strings,
//! not guessable passwords, and a deterministic hash is what makes lookup by token possible.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};

/// Random bytes in a refresh token: 256 bits.
pub const REFRESH_TOKEN_BYTES: usize = 32;
/// Random bytes in the last segment of a bot token: 216 bits, which keeps the segment at
/// Discord's length (bot libraries sometimes check the shape with a regex).
pub const BOT_TOKEN_RANDOM_BYTES: usize = 27;
/// Backup codes handed out when MFA is enabled, and their length.
pub const BACKUP_CODE_COUNT: usize = 10;
pub const BACKUP_CODE_LEN: usize = 8;
const BACKUP_CODE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Decodes base64url with or without padding: Discord's segments are unpadded, but a client that
/// re-encoded one with padding still names the same user.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // ThreadRng is a CSPRNG (ChaCha, reseeded from the OS), fast enough for per-request use.
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new refresh token: 256 random bits, base64url without padding (43 characters).
pub fn new_refresh_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<REFRESH_TOKEN_BYTES>())
}

/// The storage key for a bearer secret: lowercase hex SHA-256.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new bot token in Discord's shape:
/// `base64url(user id in decimal) . base64url(issue time, u32 BE seconds) . base64url(random)`.
///
/// Only the first segment means anything (it lets a client learn its own id offline, which some
/// bot libraries do); authentication is a lookup of [`hash_token`] of the whole string.
pub fn new_bot_token(bot_user_id: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Truncation after 2106 is harmless: the segment is informative only.
    let ts = (now as u32).to_be_bytes();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(bot_user_id.to_string()),
        URL_SAFE_NO_PAD.encode(ts),
        URL_SAFE_NO_PAD.encode(random_bytes::<BOT_TOKEN_RANDOM_BYTES>())
    )
}

/// The user id in a bot token's first segment, if the token has the right shape. This is *not*
/// authentication: anyone can forge the first segment.
pub fn bot_token_user_id(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (id, ts, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || id.is_empty() || ts.is_empty() || secret.is_empty() {
        return None;
    }
    let decoded = URL_SAFE_LENIENT.decode(id).ok()?;
    // u64::from_str accepts a leading '+'; a snowflake in decimal has only digits.
    if decoded.is_empty() || !decoded.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&decoded).ok()?.parse().ok()
}

/// Ten fresh, distinct one-time backup codes of eight lowercase alphanumerics (~41 bits each).
/// Store them with [`hash_token`]; show them to the user once.
pub fn new_backup_codes() -> Vec<String> {
    let mut rng = rand::rng();
    let mut codes: Vec<String> = Vec::with_capacity(BACKUP_CODE_COUNT);
    while codes.len() < BACKUP_CODE_COUNT {
        let code: String = (0..BACKUP_CODE_LEN)
            .map(|_| {
                char::from(BACKUP_CODE_ALPHABET[rng.random_range(0..BACKUP_CODE_ALPHABET.len())])
            })
            .collect();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn refresh_tokens_are_long_url_safe_and_unique() {
        let tokens: HashSet<String> = (0..1000).map(|_| new_refresh_token()).collect();
        assert_eq!(tokens.len(), 1000);
        for t in &tokens {
            assert_eq!(t.len(), 43, "{t}");
            assert!(
                t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
            assert_eq!(URL_SAFE_NO_PAD.decode(t).unwrap().len(), 32);
        }
    }

    #[test]
    fn hash_is_stable_sha256_hex() {
        // FIPS 180-2 test vector.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_refresh_token();
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_ne!(hash_token(&t), hash_token(&new_refresh_token()));
        assert_eq!(hash_token(&t).len(), 64);
    }

    #[test]
    fn bot_token_round_trips_the_user_id() {
        for id in [
            0,
            1,
            175_928_847_299_117_063,
            1_234_567_890_123_456_789,
            u64::MAX,
        ] {
            let token = new_bot_token(id);
            assert_eq!(bot_token_user_id(&token), Some(id), "{token}");
        }
    }

    #[test]
    fn bot_token_has_discords_shape() {
        let token = new_bot_token(175_928_847_299_117_063);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "MTc1OTI4ODQ3Mjk5MTE3MDYz");
        assert_eq!(parts[1].len(), 6);
        assert_eq!(parts[2].len(), 36);
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        );
        let ts = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        let secs = u32::from_be_bytes(ts.try_into().unwrap());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(u64::from(secs).abs_diff(now) < 60);
        assert_ne!(new_bot_token(1), new_bot_token(1));
    }

    #[test]
    fn bot_token_user_id_rejects_malformed_tokens() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "abc".to_owned(),
            format!("{}.x", b64("123")),
            format!("{}.x.y.z", b64("123")),
            ".x.y".to_owned(),
            format!("{}..y", b64("123")),
            format!("{}.x.", b64("123")),
            format!("{}.x.y", b64("+123")),
            format!("{}.x.y", b64("-1")),
            format!("{}.x.y", b64("12a")),
            format!("{}.x.y", b64("18446744073709551616")),
            "!!!!.x.y".to_owned(),
        ] {
            assert_eq!(bot_token_user_id(&bad), None, "{bad:?}");
        }
        // Padded first segment still parses.
        assert_eq!(bot_token_user_id("MTIz.x.y"), Some(123));
        assert_eq!(bot_token_user_id("MTIzNA==.x.y"), Some(1234));
    }

    #[test]
    fn backup_codes_are_ten_distinct_lowercase_alphanumerics() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), 10);
        let unique: HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 8, "{c}");
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{c}"
            );
        }
        assert_ne!(codes, new_backup_codes());
    }
}
