//! TOTP second factor (RFC 6238) as every authenticator app implements it: HMAC-SHA1, 6 digits,
//! 30-second steps.
//!
//! Codes are computed and compared (in constant time) by `totp-rs`. What this module adds is the
//! policy: one step of clock skew either way, and refusal of any step at or before the last one
//! accepted for the user, so a code seen over someone's shoulder or replayed from a log is
//! useless (RFC 6238 §5.2). The caller stores the returned step and passes it back next time.

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps of clock skew accepted on either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// The shortest secret accepted (RFC 4226 §4), in bits.
pub const MIN_SECRET_BITS: usize = 128;
/// The base32 characters (5 bits each) that carry [`MIN_SECRET_BITS`]: 26.
pub const MIN_SECRET_CHARS: usize = MIN_SECRET_BITS.div_ceil(5);

/// Why a TOTP code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP secret is not base32 (RFC 4648, no padding)")]
    SecretNotBase32,
    /// RFC 4226 §4: a shared secret of fewer than 128 bits is refused (by `totp-rs` too).
    #[error("TOTP secret is {bits} bits; it must be at least {MIN_SECRET_BITS}")]
    SecretTooShort { bits: usize },
    #[error("TOTP code must be {DIGITS} digits")]
    MalformedCode,
    #[error("TOTP code is wrong")]
    WrongCode,
    #[error("TOTP code was already used")]
    Replayed,
}

/// A new random 160-bit secret (RFC 4226's recommendation), base32 without padding, ready for an
/// `otpauth://` URI or manual entry.
pub fn generate_secret() -> String {
    Secret::generate().to_base32()
}

/// Whether `secret_b32` can be a TOTP secret: base32 of at least [`MIN_SECRET_BITS`].
pub fn check_secret(secret_b32: &str) -> Result<(), TotpError> {
    decode_secret(secret_b32).map(drop)
}

fn decode_secret(secret_b32: &str) -> Result<Secret, TotpError> {
    let secret = Secret::try_from_base32(secret_b32).map_err(|_| TotpError::SecretNotBase32)?;
    let bits = secret.as_ref().len() * 8;
    if bits < MIN_SECRET_BITS {
        return Err(TotpError::SecretTooShort { bits });
    }
    Ok(secret)
}

fn totp(secret_b32: &str) -> Result<Totp, TotpError> {
    let secret = decode_secret(secret_b32)?;
    let bits = secret.as_ref().len() * 8;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        // We walk the skew window ourselves so that each candidate step can be checked against
        // the replay floor individually.
        .with_skew(0)
        .with_secret(secret)
        .build()
        // The digits and step are the constants above; only the secret's length can fail, and
        // `decode_secret` checked it already.
        .map_err(|_| TotpError::SecretTooShort { bits })
}

/// The code for the step containing `unix_time` (what an authenticator app shows).
pub fn current_code(secret_b32: &str, unix_time: u64) -> Result<String, TotpError> {
    Ok(totp(secret_b32)?.generate(unix_time).to_string())
}

/// Checks `code` at `unix_time`, accepting the current step and one step either side, but never
/// a step `<= last_accepted_step` (pass 0 if the user never used a code). Returns the accepted
/// step, which the caller must persist as the new `last_accepted_step`.
pub fn verify_totp(
    secret_b32: &str,
    code: &str,
    unix_time: u64,
    last_accepted_step: u64,
) -> Result<u64, TotpError> {
    let totp = totp(secret_b32)?;
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::MalformedCode);
    }
    let current = unix_time / STEP_SECS;
    // Current step first, then the past one, then the future one: on the (one in a million)
    // chance a code matches two steps, prefer not to burn the next window.
    let candidates = [
        Some(current),
        current.checked_sub(SKEW_STEPS),
        current.checked_add(SKEW_STEPS),
    ];
    let mut replayed = false;
    for step in candidates.into_iter().flatten() {
        let Some(time) = step.checked_mul(STEP_SECS) else {
            continue;
        };
        if totp.check(code, time) == Some(step) {
            if step > last_accepted_step {
                return Ok(step);
            }
            replayed = true;
        }
    }
    Err(if replayed {
        TotpError::Replayed
    } else {
        TotpError::WrongCode
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA1 secret, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    /// Somewhere in the middle of a step.
    const T: u64 = 1_700_000_015;

    fn step(t: u64) -> u64 {
        t / STEP_SECS
    }

    #[test]
    fn codes_match_rfc6238_test_vectors() {
        // Appendix B lists 8-digit codes; the 6-digit code is their last 6 digits.
        for (t, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(current_code(RFC_SECRET, t).unwrap(), code8[2..], "t={t}");
        }
    }

    #[test]
    fn generated_secrets_are_160_bit_base32_and_unique() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        // 20 bytes = 160 bits = 32 base32 characters, no padding.
        assert_eq!(a.len(), 32, "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        let code = current_code(&a, T).unwrap();
        assert_eq!(verify_totp(&a, &code, T, 0), Ok(step(T)));
    }

    #[test]
    fn accepts_current_and_one_step_of_skew() {
        let s = generate_secret();
        let now = current_code(&s, T).unwrap();
        let prev = current_code(&s, T - STEP_SECS).unwrap();
        let next = current_code(&s, T + STEP_SECS).unwrap();
        assert_eq!(verify_totp(&s, &now, T, 0), Ok(step(T)));
        assert_eq!(verify_totp(&s, &prev, T, 0), Ok(step(T) - 1));
        assert_eq!(verify_totp(&s, &next, T, 0), Ok(step(T) + 1));
    }

    #[test]
    fn rejects_two_steps_of_skew() {
        let s = generate_secret();
        let now = current_code(&s, T).unwrap();
        for off in [-2i64, 2, -3, 3] {
            let t = T.checked_add_signed(off * STEP_SECS as i64).unwrap();
            let code = current_code(&s, t).unwrap();
            if code == now {
                continue; // a 1-in-10^6 collision with the current code is not a skew bug
            }
            assert_eq!(
                verify_totp(&s, &code, T, 0),
                Err(TotpError::WrongCode),
                "off {off}"
            );
        }
    }

    #[test]
    fn refuses_replay_of_the_accepted_step_and_older_steps() {
        let s = generate_secret();
        let now = current_code(&s, T).unwrap();
        let accepted = verify_totp(&s, &now, T, 0).unwrap();
        // Same code again, same moment or a few seconds later: replay.
        assert_eq!(verify_totp(&s, &now, T, accepted), Err(TotpError::Replayed));
        assert_eq!(
            verify_totp(&s, &now, T + 5, accepted),
            Err(TotpError::Replayed)
        );
        // The previous step's code is still within skew but older than what was accepted.
        let prev = current_code(&s, T - STEP_SECS).unwrap();
        assert_eq!(
            verify_totp(&s, &prev, T, accepted),
            Err(TotpError::Replayed)
        );
        // The next step's code is newer, so it is fine, and then it too is spent.
        let next = current_code(&s, T + STEP_SECS).unwrap();
        let accepted2 = verify_totp(&s, &next, T, accepted).unwrap();
        assert_eq!(accepted2, accepted + 1);
        assert_eq!(
            verify_totp(&s, &next, T + STEP_SECS, accepted2),
            Err(TotpError::Replayed)
        );
    }

    #[test]
    fn rejects_wrong_and_malformed_codes() {
        let s = generate_secret();
        let now = current_code(&s, T).unwrap();
        let wrong = format!("{:06}", (now.parse::<u32>().unwrap() + 1) % 1_000_000);
        let candidates: Vec<String> = (-1..=1)
            .map(|o: i64| current_code(&s, T.checked_add_signed(o * 30).unwrap()).unwrap())
            .collect();
        if !candidates.contains(&wrong) {
            assert_eq!(verify_totp(&s, &wrong, T, 0), Err(TotpError::WrongCode));
        }
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+12345",
            " 123456",
            "１２３４５６",
        ] {
            assert_eq!(
                verify_totp(&s, bad, T, 0),
                Err(TotpError::MalformedCode),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_secrets() {
        assert_eq!(
            current_code("not base32!", T),
            Err(TotpError::SecretNotBase32)
        );
        // 80 bits: valid base32 but shorter than RFC 4226's 128-bit minimum.
        assert_eq!(
            verify_totp("GEZDGNBVGY3TQOJQ", "123456", T, 0),
            Err(TotpError::SecretTooShort { bits: 80 })
        );
    }

    #[test]
    fn the_shortest_secret_is_26_base32_characters() {
        // 26 characters carry 130 bits, of which 128 make whole bytes; 25 carry 125 (15 bytes).
        assert_eq!(MIN_SECRET_CHARS, 26);
        assert_eq!(check_secret(&RFC_SECRET[..26]), Ok(()));
        assert!(current_code(&RFC_SECRET[..26], T).is_ok());
        assert_eq!(
            check_secret(&RFC_SECRET[..25]),
            Err(TotpError::SecretTooShort { bits: 120 })
        );
        assert_eq!(check_secret(""), Err(TotpError::SecretTooShort { bits: 0 }));
        assert_eq!(check_secret(RFC_SECRET), Ok(()));
    }

    #[test]
    fn times_near_zero_do_not_underflow() {
        let code = current_code(RFC_SECRET, 5).unwrap();
        assert_eq!(
            verify_totp(RFC_SECRET, &code, 5, 0),
            Err(TotpError::Replayed)
        );
        let next = current_code(RFC_SECRET, 35).unwrap();
        assert_eq!(verify_totp(RFC_SECRET, &next, 5, 0), Ok(1));
    }
}
