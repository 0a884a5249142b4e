//! Ed25519 (EdDSA) JWT signing keys, and the two kinds of token they sign: access tokens and MFA
//! login tickets.
//!
//! The keys live in the store ([`SigningKeyRecord`], PKCS#8 PEM), shared by every node; the
//! [`super::Keyring`] loads them ([`JwtKeys::from_records`]) and rotates them. A key's `kid` is
//! derived from its public key, so a record cannot claim someone else's id. The newest key that is
//! not retired signs; every listed key verifies, which is what makes rotation free of downtime.
//! [`JwtKeys::legacy_records`] reads the `<data_dir>/jwt/` directory where earlier versions kept
//! their keys, so a node upgraded in place imports them once.
//!
//! Verification trusts nothing in the token header except `kid` as an index into our own keys:
//! the algorithm is pinned to EdDSA, the `typ` header must name the expected kind of token, and
//! `iss`, `aud` and `exp` are required and checked with **zero leeway** (all nodes of a cluster
//! mint and check tokens against NTP-synced clocks; a token rejected a second early costs one
//! refresh, while leeway would extend every revoked session).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::Path;
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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const ISS: &str = "https://enrichment.test";
    const AUD: &str = "enrichment-api";
    const HOUR: Duration = Duration::from_secs(3600);

    fn keys() -> JwtKeys {
        JwtKeys::ephemeral(ISS, AUD).unwrap()
    }

    fn record(created_ms: u64) -> SigningKeyRecord {
        JwtKeys::new_record(Timestamp::from_unix_ms(created_ms)).unwrap()
    }

    /// Writes keys the way earlier versions kept them: `{kid}.pem` files and a `current` file.
    fn write_legacy_dir(dir: &Path, records: &[SigningKeyRecord], current: &str) {
        let jwt = dir.join("jwt");
        fs::create_dir_all(&jwt).unwrap();
        for r in records {
            fs::write(jwt.join(format!("{}.pem", r.kid)), &r.private_pem).unwrap();
        }
        fs::write(jwt.join("current"), format!("{current}\n")).unwrap();
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
        let keys = keys();
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
        let keys = keys();
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
        let keys = keys();
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
        let keys = keys();
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
        let shared = record(1_000);
        let keys = JwtKeys::from_records(std::slice::from_ref(&shared), ISS, AUD).unwrap();
        let other = JwtKeys::from_records(&[shared], ISS, "other-api").unwrap();
        let token = keys.issue_for(1, 1, HOUR).unwrap();
        assert!(matches!(
            other.verify(&token),
            Err(AuthError::InvalidToken("audience"))
        ));
        assert!(keys.verify(&other.issue_for(1, 1, HOUR).unwrap()).is_err());
    }

    #[test]
    fn missing_claims_are_rejected() {
        let keys = keys();
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
        let keys = keys();
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
        let keys = keys();
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
    fn the_newest_key_not_retired_signs_and_every_listed_key_verifies() {
        let old = record(1_000);
        let old_keys = JwtKeys::from_records(std::slice::from_ref(&old), ISS, AUD).unwrap();
        assert_eq!(old_keys.current_kid(), old.kid);
        let old_token = old_keys.issue_for(1, 1, HOUR).unwrap();

        // A rotation adds a newer key: it signs, and the old key's tokens still verify.
        let new = record(2_000);
        let rotated = JwtKeys::from_records(&[old.clone(), new.clone()], ISS, AUD).unwrap();
        assert_eq!(rotated.current_kid(), new.kid);
        assert_eq!(rotated.kids().len(), 2);
        let new_token = rotated.issue_for(2, 2, HOUR).unwrap();
        assert_eq!(header_of(&new_token)["kid"], new.kid.as_str());
        assert_eq!(rotated.verify(&old_token).unwrap().sub, 1);
        assert_eq!(rotated.verify(&new_token).unwrap().sub, 2);

        // A retired key verifies but never signs, even when it is the newest.
        let retired = SigningKeyRecord {
            retired: true,
            ..record(3_000)
        };
        let keys = JwtKeys::from_records(&[old.clone(), new.clone(), retired], ISS, AUD).unwrap();
        assert_eq!(keys.current_kid(), new.kid);

        // A removed key's tokens stop verifying.
        let without_old = JwtKeys::from_records(std::slice::from_ref(&new), ISS, AUD).unwrap();
        assert!(matches!(
            without_old.verify(&old_token),
            Err(AuthError::InvalidToken("unknown key"))
        ));
        assert!(without_old.verify(&new_token).is_ok());

        // Nothing may sign: refused.
        let all_retired = SigningKeyRecord {
            retired: true,
            ..old
        };
        assert!(JwtKeys::from_records(&[all_retired], ISS, AUD).is_err());
    }

    #[test]
    fn a_record_whose_key_does_not_match_its_kid_is_refused() {
        let mut r = record(1_000);
        r.kid = "0123456789abcdef".into();
        assert!(matches!(
            JwtKeys::from_records(&[r], ISS, AUD),
            Err(AuthError::KeyFile { .. })
        ));
        let mut r = record(1_000);
        r.private_pem = "not a key".into();
        assert!(matches!(
            JwtKeys::from_records(&[r], ISS, AUD),
            Err(AuthError::KeyFile { .. })
        ));
    }

    #[test]
    fn keys_of_an_earlier_version_are_read_with_the_current_one_newest() {
        let dir = tempfile::tempdir().unwrap();
        assert!(JwtKeys::legacy_records(dir.path()).unwrap().is_empty());
        let (a, b) = (record(1_000), record(2_000));
        assert_eq!(a.kid.len(), 16);
        assert!(a.kid.bytes().all(|c| c.is_ascii_hexdigit()));
        // `current` names the older file: it must stay the signing key after the import.
        write_legacy_dir(dir.path(), &[a.clone(), b.clone()], &a.kid);
        let records = JwtKeys::legacy_records(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
        let keys = JwtKeys::from_records(&records, ISS, AUD).unwrap();
        assert_eq!(keys.current_kid(), a.kid);
        assert_eq!(keys.kids().len(), 2);
        let token = JwtKeys::from_records(std::slice::from_ref(&b), ISS, AUD)
            .unwrap()
            .issue_for(5, 6, HOUR)
            .unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, 5);
    }

    #[test]
    fn mfa_tickets_round_trip_and_expire() {
        let keys = keys();
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
        let keys = keys();
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
