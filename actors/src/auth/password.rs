//! Password hashing with argon2id, stored as PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! The PHC string carries its own parameters, so verification needs no configuration and old
//! hashes keep verifying after the parameters are raised; [`PasswordParams::needs_rehash`] tells
//! the caller when to re-hash on the next successful login. Comparison of the digests is done by
//! the `password-hash` crate in constant time; we never compare hash strings ourselves.

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _,
    PasswordVerifier as _, Version,
};

use super::AuthError;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB (19 MiB), t=2, p=1.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 accepts: for tests only, where hashing cost is pure waste.
    pub fn for_tests() -> Self {
        PasswordParams {
            memory_kib: Params::MIN_M_COST,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::PasswordHash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with a fresh random salt; returns the PHC string to store.
    pub fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        self.argon2()?
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AuthError::PasswordHash(e.to_string()))
    }

    /// Whether `phc` was made with other parameters (or another algorithm) than these, so the
    /// caller should re-hash the password it just verified.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm != ARGON2ID_IDENT
            || hash.version != Some(Version::V0x13.into())
            || params.m_cost() != self.memory_kib
            || params.t_cost() != self.iterations
            || params.p_cost() != self.parallelism
    }
}

/// Hashes `password` with the default (OWASP) parameters.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    PasswordParams::default().hash_password(password)
}

/// Whether `password` matches the stored PHC string. Malformed or non-argon2id hashes never
/// match: a downgrade to argon2i/argon2d or another scheme is not something we ever store.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != ARGON2ID_IDENT {
        return false;
    }
    // Parameters come from the PHC string; the instance's own parameters are not used.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str) -> String {
        PasswordParams::for_tests().hash_password(password).unwrap()
    }

    #[test]
    fn right_password_verifies_and_wrong_ones_do_not() {
        let phc = hash("correct horse battery staple");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("Correct horse battery staple", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn empty_and_unicode_passwords_work() {
        let phc = hash("");
        assert!(verify_password("", &phc));
        assert!(!verify_password(" ", &phc));
        let phc = hash("pässwörd 🔑");
        assert!(verify_password("pässwörd 🔑", &phc));
        assert!(!verify_password("passwörd 🔑", &phc));
    }

    #[test]
    fn hashes_are_salted_phc_argon2id_strings() {
        let a = hash("same");
        let b = hash("same");
        assert_ne!(a, b, "two hashes of one password must differ by salt");
        assert!(a.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{a}");
        assert!(verify_password("same", &a) && verify_password("same", &b));
    }

    #[test]
    fn default_parameters_are_owasp() {
        let p = PasswordParams::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19_456, 2, 1));
        let phc = hash_password("hunter2").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("hunter2", &phc));
        assert!(!verify_password("hunter3", &phc));
    }

    #[test]
    fn garbage_and_other_algorithms_never_verify() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", "$argon2id$v=19$m=8,t=1,p=1$"));
        // A valid argon2i hash of the right password is still refused.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"x")
        .unwrap()
        .to_string();
        assert!(
            Argon2::default()
                .verify_password(b"x", argon2i.as_str())
                .is_ok()
        );
        assert!(!verify_password("x", &argon2i));
    }

    #[test]
    fn tampered_hash_does_not_verify() {
        let phc = hash("secret");
        // Flip one character of the digest (the last field).
        let mut chars: Vec<char> = phc.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_ne!(tampered, phc);
        assert!(!verify_password("secret", &tampered));
    }

    #[test]
    fn invalid_parameters_are_an_error() {
        let p = PasswordParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        };
        assert!(matches!(
            p.hash_password("x"),
            Err(AuthError::PasswordHash(_))
        ));
    }

    #[test]
    fn needs_rehash_when_parameters_change() {
        let cheap = PasswordParams::for_tests();
        let phc = hash("pw");
        assert!(!cheap.needs_rehash(&phc));
        assert!(PasswordParams::default().needs_rehash(&phc));
        assert!(
            PasswordParams {
                iterations: 2,
                ..cheap
            }
            .needs_rehash(&phc)
        );
        assert!(cheap.needs_rehash("garbage"));
    }
}
