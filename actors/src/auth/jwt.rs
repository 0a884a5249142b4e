//! Ed25519 (EdDSA) JWT signing keys on disk, and the two kinds of token they sign: access tokens
//! and MFA login tickets.
//!
//! Keys live in `<dir>/jwt/<kid>.pem` (PKCS#8, mode 0600 on unix), where the `kid` is derived from
//! the public key so a file cannot claim someone else's id. `<dir>/jwt/current` names the key that
//! signs; every other key in the directory still verifies, which is what makes rotation free of
//! downtime: rotate, wait out the longest token lifetime, then [`JwtKeys::remove_key`] the old one.
//!
//! Verification trusts nothing in the token header except `kid` as an index into our own keys:
//! the algorithm is pinned to EdDSA, the `typ` header must name the expected kind of token, and
//! `iss`, `aud` and `exp` are required and checked with **zero leeway** (all nodes of a cluster
//! mint and check tokens against NTP-synced clocks; a token rejected a second early costs one
//! refresh, while leeway would extend every revoked session).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::TryRngCore as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use enrichment_protocol::Timestamp;
use enrichment_storage::SigningKeyRecord;

use super::AuthError;

/// `typ` header of access tokens (RFC 9068's media type for JWT access tokens).
pub const ACCESS_TYP: &str = "at+jwt";
/// `typ` header of MFA login tickets.
pub const MFA_TICKET_TYP: &str = "mfa-ticket+jwt";
/// Suffix appended to the audience for MFA tickets, so that even a verifier that ignored `typ`
/// would refuse a ticket as an access token and vice versa.
const MFA_AUDIENCE_SUFFIX: &str = "#mfa-ticket";
const KEY_DIR: &str = "jwt";
const CURRENT_FILE: &str = "current";
const KEY_EXT: &str = "pem";

/// Claims of an access token. `sub` and `sid` are decimal strings on the wire, as JWT requires
/// `sub` to be a string and as JavaScript clients cannot hold a u64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    #[serde(with = "decimal")]
    pub sub: u64,
    /// The session: the refresh-token family this access token was minted from, so that
    /// revoking the family can revoke its access tokens.
    #[serde(with = "decimal")]
    pub sid: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Claims of an MFA login ticket: proof that the password step passed for `sub`, valid only to
/// complete the TOTP step within a few minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MfaTicketClaims {
    #[serde(with = "decimal")]
    sub: u64,
    iat: u64,
    exp: u64,
    iss: String,
    aud: String,
    /// Random, so two tickets for one user differ (and a caller may track single use by it).
    jti: String,
}

/// u64 as a JSON decimal string.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(serde::de::Error::custom("expected a decimal id"));
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The node's JWT keys: one signs, all verify.
pub struct JwtKeys {
    keys: HashMap<String, KeyPair>,
    signing_kid: String,
    issuer: String,
    audience: String,
    access_validation: Validation,
    ticket_validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("JwtKeys")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::KeyIo {
        path: path.to_owned(),
        source,
    }
}

/// First 16 hex characters of SHA-256 of the raw public key.
fn kid_of(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn key_pair(key: &SigningKey) -> Result<KeyPair, AuthError> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| AuthError::Signing(e.to_string()))?;
    Ok(KeyPair {
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        decoding: DecodingKey::from_ed_der(key.verifying_key().as_bytes()),
    })
}

fn generate_key() -> Result<SigningKey, AuthError> {
    let mut seed = [0u8; 32];
    // Long-lived key material comes straight from the OS, not from a userspace generator.
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|_| AuthError::Rng)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn to_pem(key: &SigningKey, path: &Path) -> Result<String, AuthError> {
    let der = key.to_pkcs8_der().map_err(|e| AuthError::KeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let b64 = STANDARD.encode(der.as_bytes());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

fn from_pem(pem: &[u8], path: &Path) -> Result<SigningKey, AuthError> {
    let bad = |reason: String| AuthError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let encoding = EncodingKey::from_ed_pem(pem).map_err(|e| bad(e.to_string()))?;
    SigningKey::from_pkcs8_der(encoding.as_bytes()).map_err(|e| bad(e.to_string()))
}

/// Writes `contents` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written key or pointer. `private` files are created 0600 (unix).
fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), AuthError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.leeway = 0;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = false;
    v.validate_aud = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

impl JwtKeys {
    fn with_keys(
        keys: HashMap<String, KeyPair>,
        signing_kid: String,
        issuer: String,
        audience: String,
    ) -> Self {
        let access_validation = validation(&issuer, &audience);
        let ticket_validation = validation(&issuer, &format!("{audience}{MFA_AUDIENCE_SUFFIX}"));
        JwtKeys {
            keys,
            signing_kid,
            issuer,
            audience,
            access_validation,
            ticket_validation,
        }
    }

    /// Loads every key in `dir/jwt/`, creating the directory and a first key if there is none.
    /// The signing key is the one named in `dir/jwt/current`, or failing that the most recently
    /// written key file.
    pub fn load_or_create(
        dir: &Path,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<JwtKeys, AuthError> {
        let key_dir = dir.join(KEY_DIR);
        create_private_dir(&key_dir)?;

        let mut keys = HashMap::new();
        let mut newest: Option<(SystemTime, String)> = None;
        for entry in fs::read_dir(&key_dir).map_err(io_err(&key_dir))? {
            let entry = entry.map_err(io_err(&key_dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(KEY_EXT) {
                continue;
            }
            let pem = fs::read(&path).map_err(io_err(&path))?;
            let key = from_pem(&pem, &path)?;
            let kid = kid_of(&key);
            if path.file_stem().and_then(|s| s.to_str()) != Some(kid.as_str()) {
                return Err(AuthError::KeyFile {
                    path,
                    reason: format!("file name does not match the key's kid {kid}"),
                });
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH);
            if newest
                .as_ref()
                .is_none_or(|(t, k)| (modified, &kid) > (*t, k))
            {
                newest = Some((modified, kid.clone()));
            }
            keys.insert(kid, key_pair(&key)?);
        }

        let current_path = key_dir.join(CURRENT_FILE);
        let named = match fs::read_to_string(&current_path) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&current_path)(e)),
        };
        let signing_kid = match (named, newest) {
            (Some(kid), _) if keys.contains_key(&kid) => kid,
            (_, Some((_, kid))) => kid,
            (_, None) => {
                let key = generate_key()?;
                let kid = store_new_key(&key_dir, &key)?;
                keys.insert(kid.clone(), key_pair(&key)?);
                kid
            }
        };
        Ok(Self::with_keys(
            keys,
            signing_kid,
            issuer.into(),
            audience.into(),
        ))
    }

    /// The keys as the store holds them: every listed key verifies; the newest one not
    /// retired signs (by `created_at`, then `kid`).
    pub fn from_records(
        records: &[SigningKeyRecord],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<JwtKeys, AuthError> {
        let place = Path::new("signing keys in the store");
        let mut keys = HashMap::new();
        for r in records {
            let key = from_pem(r.private_pem.as_bytes(), place)?;
            if kid_of(&key) != r.kid {
                return Err(AuthError::KeyFile {
                    path: place.to_owned(),
                    reason: format!("key {} does not match its kid", r.kid),
                });
            }
            keys.insert(r.kid.clone(), key_pair(&key)?);
        }
        let signing_kid = records
            .iter()
            .filter(|r| !r.retired)
            .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .map(|r| r.kid.clone())
            .ok_or_else(|| AuthError::KeyFile {
                path: place.to_owned(),
                reason: "no key that may sign".into(),
            })?;
        Ok(Self::with_keys(
            keys,
            signing_kid,
            issuer.into(),
            audience.into(),
        ))
    }

    /// A freshly generated key, as the store records it.
    pub fn new_record(created_at: Timestamp) -> Result<SigningKeyRecord, AuthError> {
        let key = generate_key()?;
        let pem = to_pem(&key, Path::new("a new signing key"))?;
        Ok(super::keyring::record(kid_of(&key), pem, created_at))
    }

    /// The keys an earlier version kept in `dir/jwt/`, as store records; the one `current`
    /// names is dated last, so it stays the signing key. Empty when there is no such directory.
    pub fn legacy_records(dir: &Path) -> Result<Vec<SigningKeyRecord>, AuthError> {
        let key_dir = dir.join(KEY_DIR);
        let entries = match fs::read_dir(&key_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&key_dir)(e)),
        };
        let current = fs::read_to_string(key_dir.join(CURRENT_FILE))
            .map(|s| s.trim().to_owned())
            .ok();
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err(&key_dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(KEY_EXT) {
                continue;
            }
            let pem = fs::read_to_string(&path).map_err(io_err(&path))?;
            let key = from_pem(pem.as_bytes(), &path)?;
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            out.push(super::keyring::record(
                kid_of(&key),
                pem,
                Timestamp::from_unix_ms(modified),
            ));
        }
        let newest = out
            .iter()
            .map(|r| r.created_at.unix_ms().max(0) as u64)
            .max()
            .unwrap_or(0);
        for r in &mut out {
            if current.as_deref() == Some(r.kid.as_str()) {
                r.created_at = Timestamp::from_unix_ms(newest + 1);
            }
        }
        Ok(out)
    }

    /// A single fresh key that lives only in memory: for tests and throwaway nodes.
    pub fn ephemeral(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<JwtKeys, AuthError> {
        let key = generate_key()?;
        let kid = kid_of(&key);
        let keys = HashMap::from([(kid.clone(), key_pair(&key)?)]);
        Ok(Self::with_keys(keys, kid, issuer.into(), audience.into()))
    }

    /// Generates a new key in `dir/jwt/` and makes it the signing key; older keys keep
    /// verifying. Returns the new `kid`.
    pub fn rotate(&mut self, dir: &Path) -> Result<String, AuthError> {
        let key_dir = dir.join(KEY_DIR);
        create_private_dir(&key_dir)?;
        let key = generate_key()?;
        let pair = key_pair(&key)?;
        let kid = store_new_key(&key_dir, &key)?;
        self.keys.insert(kid.clone(), pair);
        self.signing_kid = kid.clone();
        Ok(kid)
    }

    /// Forgets a retired key and deletes its file, so tokens it signed stop verifying. Refuses
    /// to remove the signing key. Returns whether the key existed.
    pub fn remove_key(&mut self, dir: &Path, kid: &str) -> Result<bool, AuthError> {
        if kid == self.signing_kid {
            return Err(AuthError::KeyFile {
                path: dir.join(KEY_DIR),
                reason: format!("{kid} is the signing key; rotate first"),
            });
        }
        if self.keys.remove(kid).is_none() {
            return Ok(false);
        }
        let path = dir.join(KEY_DIR).join(format!("{kid}.{KEY_EXT}"));
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The `kid` of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Every `kid` that verifies, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, AuthError> {
        let key = self
            .keys
            .get(&self.signing_kid)
            .ok_or_else(|| AuthError::Signing("signing key missing".to_owned()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Signs `claims` as an access token. The claims are taken as given (tests use this to mint
    /// expired or foreign tokens); [`JwtKeys::issue_for`] is the everyday entry point.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        self.sign(ACCESS_TYP, claims)
    }

    /// An access token for `user_id` in session `family_id`, valid for `ttl` from now.
    pub fn issue_for(
        &self,
        user_id: u64,
        family_id: u64,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let iat = now_secs();
        self.issue(&AccessClaims {
            sub: user_id,
            sid: family_id,
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        })
    }

    /// Verifies an access token: EdDSA only, known `kid`, `typ` at+jwt, our `iss` and `aud`,
    /// not expired.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        self.check(token, ACCESS_TYP, &self.access_validation)
    }

    /// A short-lived ticket saying `user_id` passed the password step and must now give a TOTP
    /// or backup code.
    pub fn issue_mfa_ticket(&self, user_id: u64, ttl: Duration) -> Result<String, AuthError> {
        let iat = now_secs();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut jti)
            .map_err(|_| AuthError::Rng)?;
        self.sign(
            MFA_TICKET_TYP,
            &MfaTicketClaims {
                sub: user_id,
                iat,
                exp: iat.saturating_add(ttl.as_secs()),
                iss: self.issuer.clone(),
                aud: format!("{}{MFA_AUDIENCE_SUFFIX}", self.audience),
                jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
            },
        )
    }

    /// The user id of a valid MFA ticket. Access tokens are refused.
    pub fn verify_mfa_ticket(&self, token: &str) -> Result<u64, AuthError> {
        self.check::<MfaTicketClaims>(token, MFA_TICKET_TYP, &self.ticket_validation)
            .map(|c| c.sub)
    }

    fn check<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        validation: &Validation,
    ) -> Result<T, AuthError> {
        // The header is unauthenticated input: it only selects among our own keys, and only
        // after the algorithm has been pinned.
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken("algorithm"));
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(AuthError::InvalidToken("type"));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(AuthError::InvalidToken("unknown key"))?;
        jsonwebtoken::decode::<T>(token, &key.decoding, validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                ErrorKind::InvalidSignature => AuthError::InvalidToken("signature"),
                ErrorKind::InvalidIssuer => AuthError::InvalidToken("issuer"),
                ErrorKind::InvalidAudience => AuthError::InvalidToken("audience"),
                ErrorKind::InvalidAlgorithm => AuthError::InvalidToken("algorithm"),
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_) => AuthError::InvalidToken("claims"),
                _ => AuthError::InvalidToken("malformed"),
            })
    }
}

fn create_private_dir(path: &Path) -> Result<(), AuthError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path).map_err(io_err(path))
}

/// Writes a new key file and points `current` at it; returns its kid.
fn store_new_key(key_dir: &Path, key: &SigningKey) -> Result<String, AuthError> {
    let kid = kid_of(key);
    let path: PathBuf = key_dir.join(format!("{kid}.{KEY_EXT}"));
    write_atomic(&path, to_pem(key, &path)?.as_bytes(), true)?;
    write_atomic(
        &key_dir.join(CURRENT_FILE),
        format!("{kid}\n").as_bytes(),
        false,
    )?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const ISS: &str = "https://enrichment.test";
    const AUD: &str = "enrichment-api";
    const HOUR: Duration = Duration::from_secs(3600);

    fn keys() -> (tempfile::TempDir, JwtKeys) {
        let dir = tempfile::tempdir().unwrap();
        let keys = JwtKeys::load_or_create(dir.path(), ISS, AUD).unwrap();
        (dir, keys)
    }

    fn claims(keys: &JwtKeys, exp: u64) -> AccessClaims {
        AccessClaims {
            sub: 42,
            sid: 7,
            iat: now_secs(),
            exp,
            iss: keys.issuer().to_owned(),
            aud: keys.audience().to_owned(),
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    fn header_of(token: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(token)[0]).unwrap()).unwrap()
    }

    fn payload_of(token: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(token)[1]).unwrap()).unwrap()
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let (_dir, keys) = keys();
        let token = keys.issue_for(42, 7, HOUR).unwrap();
        let c = keys.verify(&token).unwrap();
        assert_eq!(
            (c.sub, c.sid, c.iss.as_str(), c.aud.as_str()),
            (42, 7, ISS, AUD)
        );
        assert_eq!(c.exp - c.iat, 3600);
        assert!(c.iat.abs_diff(now_secs()) < 5);
        let h = header_of(&token);
        assert_eq!(h["alg"], "EdDSA");
        assert_eq!(h["typ"], ACCESS_TYP);
        assert_eq!(h["kid"], keys.current_kid());
        // Ids are decimal strings on the wire.
        assert_eq!(payload_of(&token)["sub"], "42");
        assert_eq!(payload_of(&token)["sid"], "7");
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let (_dir, keys) = keys();
        let token = keys.issue_for(42, 7, HOUR).unwrap();
        let s = segments(&token);

        // Payload changed to another user, original signature kept.
        let mut p = payload_of(&token);
        p["sub"] = "43".into();
        let forged = format!("{}.{}.{}", s[0], b64(&p), s[2]);
        assert!(matches!(
            keys.verify(&forged),
            Err(AuthError::InvalidToken("signature"))
        ));

        // One signature byte flipped.
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        sig[10] ^= 1;
        let forged = format!("{}.{}.{}", s[0], s[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(matches!(
            keys.verify(&forged),
            Err(AuthError::InvalidToken("signature"))
        ));

        // Signed by a key that is not ours but claims our kid.
        let other = JwtKeys::ephemeral(ISS, AUD).unwrap();
        let foreign = other.issue_for(42, 7, HOUR).unwrap();
        let fs = segments(&foreign);
        let forged = format!("{}.{}.{}", s[0], fs[1], fs[2]);
        assert!(matches!(
            keys.verify(&forged),
            Err(AuthError::InvalidToken("signature"))
        ));

        for junk in ["", "a.b", "a.b.c", "...", &token[..token.len() - 3]] {
            assert!(keys.verify(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let (_dir, keys) = keys();
        let now = now_secs();
        let expired = keys.issue(&claims(&keys, now - 1)).unwrap();
        assert!(matches!(
            keys.verify(&expired),
            Err(AuthError::TokenExpired)
        ));
        let long_expired = keys.issue(&claims(&keys, now - 3600)).unwrap();
        assert!(matches!(
            keys.verify(&long_expired),
            Err(AuthError::TokenExpired)
        ));
        // Same construction, still valid: the rejection above is about exp alone.
        let fresh = keys.issue(&claims(&keys, now + 60)).unwrap();
        assert!(keys.verify(&fresh).is_ok());
    }

    #[test]
    fn wrong_issuer_or_audience_is_rejected() {
        let (dir, keys) = keys();
        let mut c = claims(&keys, now_secs() + 60);
        c.iss = "https://evil.test".to_owned();
        assert!(matches!(
            keys.verify(&keys.issue(&c).unwrap()),
            Err(AuthError::InvalidToken("issuer"))
        ));
        let mut c = claims(&keys, now_secs() + 60);
        c.aud = "other-api".to_owned();
        assert!(matches!(
            keys.verify(&keys.issue(&c).unwrap()),
            Err(AuthError::InvalidToken("audience"))
        ));
        // Same keys configured for another audience refuse our tokens, and vice versa.
        let other = JwtKeys::load_or_create(dir.path(), ISS, "other-api").unwrap();
        let token = keys.issue_for(1, 1, HOUR).unwrap();
        assert!(matches!(
            other.verify(&token),
            Err(AuthError::InvalidToken("audience"))
        ));
        assert!(keys.verify(&other.issue_for(1, 1, HOUR).unwrap()).is_err());
    }

    #[test]
    fn missing_claims_are_rejected() {
        let (_dir, keys) = keys();
        let key = keys.keys.get(keys.current_kid()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.current_kid().to_owned());
        header.typ = Some(ACCESS_TYP.to_owned());
        let full = serde_json::json!({
            "sub": "1", "sid": "2", "iat": now_secs(), "exp": now_secs() + 60,
            "iss": ISS, "aud": AUD,
        });
        let ok = jsonwebtoken::encode(&header, &full, &key.encoding).unwrap();
        assert!(keys.verify(&ok).is_ok());
        for field in ["sub", "exp", "iss", "aud", "sid"] {
            let mut c = full.clone();
            c.as_object_mut().unwrap().remove(field);
            let token = jsonwebtoken::encode(&header, &c, &key.encoding).unwrap();
            assert!(
                matches!(keys.verify(&token), Err(AuthError::InvalidToken("claims"))),
                "without {field}"
            );
        }
        for (field, value) in [
            ("sub", serde_json::json!("+1")),
            ("sub", serde_json::json!(1)),
            ("sid", serde_json::json!("")),
            ("exp", serde_json::json!("soon")),
        ] {
            let mut c = full.clone();
            c[field] = value.clone();
            let token = jsonwebtoken::encode(&header, &c, &key.encoding).unwrap();
            assert!(
                matches!(keys.verify(&token), Err(AuthError::InvalidToken("claims"))),
                "{field}: {value}"
            );
        }
    }

    #[test]
    fn alg_confusion_is_rejected() {
        let (_dir, keys) = keys();
        let good = keys.issue_for(42, 7, HOUR).unwrap();
        let payload = segments(&good)[1].clone();
        let public = keys
            .keys
            .get(keys.current_kid())
            .unwrap()
            .decoding
            .try_get_as_bytes()
            .unwrap()
            .to_vec();

        // HS256 keyed with the public key bytes: the textbook confusion attack.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.current_kid().to_owned());
        header.typ = Some(ACCESS_TYP.to_owned());
        let claims = keys.verify(&good).unwrap();
        let hs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
        assert!(matches!(
            keys.verify(&hs),
            Err(AuthError::InvalidToken("algorithm"))
        ));

        // alg none with an empty signature, and with the original signature.
        let none = b64(&serde_json::json!({
            "alg": "none", "typ": ACCESS_TYP, "kid": keys.current_kid(),
        }));
        for sig in ["", segments(&good)[2].as_str()] {
            let token = format!("{none}.{payload}.{sig}");
            assert!(keys.verify(&token).is_err(), "alg none accepted");
        }

        // RS256 / ES256 claims on an EdDSA key, with the real signature.
        for alg in ["RS256", "ES256", "HS512"] {
            let h = b64(&serde_json::json!({
                "alg": alg, "typ": ACCESS_TYP, "kid": keys.current_kid(),
            }));
            let token = format!("{h}.{payload}.{}", segments(&good)[2]);
            assert!(matches!(
                keys.verify(&token),
                Err(AuthError::InvalidToken("algorithm"))
            ));
        }
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected() {
        let (_dir, keys) = keys();
        let good = keys.issue_for(42, 7, HOUR).unwrap();
        let s = segments(&good);
        for h in [
            serde_json::json!({"alg": "EdDSA", "typ": ACCESS_TYP, "kid": "0000000000000000"}),
            serde_json::json!({"alg": "EdDSA", "typ": ACCESS_TYP}),
        ] {
            let token = format!("{}.{}.{}", b64(&h), s[1], s[2]);
            assert!(matches!(
                keys.verify(&token),
                Err(AuthError::InvalidToken("unknown key"))
            ));
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let (dir, mut keys) = keys();
        let old_kid = keys.current_kid().to_owned();
        let old_token = keys.issue_for(1, 1, HOUR).unwrap();

        let new_kid = keys.rotate(dir.path()).unwrap();
        assert_ne!(new_kid, old_kid);
        assert_eq!(keys.current_kid(), new_kid);
        let new_token = keys.issue_for(2, 2, HOUR).unwrap();
        assert_eq!(header_of(&new_token)["kid"], new_kid.as_str());
        assert_eq!(keys.verify(&old_token).unwrap().sub, 1);
        assert_eq!(keys.verify(&new_token).unwrap().sub, 2);

        // A restart sees both keys and keeps signing with the new one.
        let reloaded = JwtKeys::load_or_create(dir.path(), ISS, AUD).unwrap();
        assert_eq!(reloaded.current_kid(), new_kid);
        assert_eq!(reloaded.kids().len(), 2);
        assert!(reloaded.verify(&old_token).is_ok());
        assert!(reloaded.verify(&new_token).is_ok());

        // Retiring the old key ends its tokens; the signing key cannot be retired.
        assert!(keys.remove_key(dir.path(), &new_kid).is_err());
        assert!(keys.remove_key(dir.path(), &old_kid).unwrap());
        assert!(!keys.remove_key(dir.path(), &old_kid).unwrap());
        assert!(matches!(
            keys.verify(&old_token),
            Err(AuthError::InvalidToken("unknown key"))
        ));
        assert!(keys.verify(&new_token).is_ok());
        let reloaded = JwtKeys::load_or_create(dir.path(), ISS, AUD).unwrap();
        assert_eq!(reloaded.kids(), vec![new_kid]);
    }

    #[test]
    fn keys_persist_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = JwtKeys::load_or_create(dir.path(), ISS, AUD).unwrap();
        let b = JwtKeys::load_or_create(dir.path(), ISS, AUD).unwrap();
        assert_eq!(a.current_kid(), b.current_kid());
        assert_eq!(a.kids(), b.kids());
        let token = a.issue_for(5, 6, HOUR).unwrap();
        assert_eq!(b.verify(&token).unwrap().sub, 5);
        // A different directory is a different key.
        let elsewhere = tempfile::tempdir().unwrap();
        let c = JwtKeys::load_or_create(elsewhere.path(), ISS, AUD).unwrap();
        assert_ne!(c.current_kid(), a.current_kid());
        assert!(c.verify(&token).is_err());
    }

    #[test]
    fn key_files_are_named_by_kid_and_private() {
        let (dir, keys) = keys();
        let kid = keys.current_kid();
        assert_eq!(kid.len(), 16);
        assert!(kid.bytes().all(|b| b.is_ascii_hexdigit()));
        let path = dir.path().join("jwt").join(format!("{kid}.pem"));
        let pem = fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(
            fs::read_to_string(dir.path().join("jwt/current"))
                .unwrap()
                .trim(),
            kid
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(dir.path().join("jwt"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o077, 0);
        }
    }

    #[test]
    fn key_file_under_a_wrong_name_is_refused() {
        let (dir, keys) = keys();
        let jwt = dir.path().join("jwt");
        fs::rename(
            jwt.join(format!("{}.pem", keys.current_kid())),
            jwt.join("0123456789abcdef.pem"),
        )
        .unwrap();
        assert!(matches!(
            JwtKeys::load_or_create(dir.path(), ISS, AUD),
            Err(AuthError::KeyFile { .. })
        ));
        fs::write(jwt.join("0123456789abcdef.pem"), "not a key").unwrap();
        assert!(matches!(
            JwtKeys::load_or_create(dir.path(), ISS, AUD),
            Err(AuthError::KeyFile { .. })
        ));
    }

    #[test]
    fn mfa_tickets_round_trip_and_expire() {
        let (_dir, keys) = keys();
        let ticket = keys.issue_mfa_ticket(99, Duration::from_secs(300)).unwrap();
        assert_eq!(keys.verify_mfa_ticket(&ticket).unwrap(), 99);
        assert_ne!(
            ticket,
            keys.issue_mfa_ticket(99, Duration::from_secs(300)).unwrap()
        );
        let expired = keys.issue_mfa_ticket(99, Duration::ZERO).unwrap();
        // exp == now is still valid with zero leeway; wait until it is strictly past.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            keys.verify_mfa_ticket(&expired),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn tickets_and_access_tokens_are_not_interchangeable() {
        let (_dir, keys) = keys();
        let ticket = keys.issue_mfa_ticket(99, HOUR).unwrap();
        let access = keys.issue_for(99, 1, HOUR).unwrap();
        assert!(matches!(
            keys.verify(&ticket),
            Err(AuthError::InvalidToken("type"))
        ));
        assert!(matches!(
            keys.verify_mfa_ticket(&access),
            Err(AuthError::InvalidToken("type"))
        ));

        // Even with the typ header swapped (re-signed with our key, as a buggy issuer might),
        // the audience keeps them apart.
        let key = keys.keys.get(keys.current_kid()).unwrap();
        let mut as_access = Header::new(Algorithm::EdDSA);
        as_access.kid = Some(keys.current_kid().to_owned());
        as_access.typ = Some(ACCESS_TYP.to_owned());
        let mut ticket_claims = payload_of(&ticket);
        // Give it every access-token claim, so only the audience can stop it.
        ticket_claims["sid"] = "1".into();
        let relabelled = jsonwebtoken::encode(&as_access, &ticket_claims, &key.encoding).unwrap();
        assert!(matches!(
            keys.verify(&relabelled),
            Err(AuthError::InvalidToken("audience"))
        ));
        let mut as_ticket = as_access.clone();
        as_ticket.typ = Some(MFA_TICKET_TYP.to_owned());
        let mut access_claims = payload_of(&access);
        access_claims["jti"] = "00".into();
        let relabelled = jsonwebtoken::encode(&as_ticket, &access_claims, &key.encoding).unwrap();
        assert!(matches!(
            keys.verify_mfa_ticket(&relabelled),
            Err(AuthError::InvalidToken("audience"))
        ));
    }
}
