//! Sign-in and request safety: argon2 passwords, signed session cookies, CSRF tokens, the
//! sign-in rate limit and the optional trusted header of a single-sign-on proxy.
//!
//! Sessions are stateless: the cookie holds the user, the expiry and a random nonce, signed
//! with HMAC-SHA256 under `session.secret`; nothing to store, and changing the secret signs
//! everyone out. A form's CSRF token is the MAC of the session's nonce, so it is valid only with
//! the cookie it was rendered for; the sign-in form's token is bound the same way to a short
//! pre-session cookie. The cookie is HttpOnly (no script reads it) and SameSite=Lax: a link from
//! Slack opens the account page signed in, but no other site's form posts with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ConsoleError;

pub const SESSION_COOKIE: &str = "uptake_session";
pub const LOGIN_COOKIE: &str = "uptake_login";

/// An argon2id PHC string for `password` (argon2's recommended parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| ConsoleError::Password(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Password(e.to_string()))
}

/// Whether `password` matches `hash`. With no hash (unknown user) a dummy hash is checked, so
/// a wrong name costs the same time as a wrong password and does not reveal who exists.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not anyone's password").unwrap_or_default());
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or(dummy)) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && hash.is_some()
}

/// An API token's SHA-256 in hex, as `api_tokens` holds it: a token is long and random, so a
/// plain hash suffices where a password needs argon2.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API token: 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source");
    b
}

/// Who a request is from, once its session cookie checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: String,
    /// Seconds since the epoch.
    pub expires: i64,
    nonce: String,
}

/// Signs and checks session cookies and CSRF tokens.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    fn mac(&self, purpose: &str, data: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A new session for `user` until `expires`, as its cookie value.
    pub fn issue(&self, user: &str, expires: i64) -> String {
        let payload = format!("{user}\n{expires}\n{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>()));
        let encoded = URL_SAFE_NO_PAD.encode(&payload);
        format!("{encoded}.{}", self.mac("session", &encoded))
    }

    /// The session a cookie value holds, if its signature is ours and it has not expired at `now`.
    pub fn check(&self, cookie: &str, now: i64) -> Option<Session> {
        let (encoded, mac) = cookie.split_once('.')?;
        if !bool::from(self.mac("session", encoded).as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
        let mut parts = payload.splitn(3, '\n');
        let (user, expires, nonce) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?);
        (expires > now).then(|| Session { user: user.into(), expires, nonce: nonce.into() })
    }

    /// The CSRF token of the forms rendered for `session`.
    pub fn csrf(&self, session: &Session) -> String {
        self.mac("csrf", &session.nonce)
    }

    /// The CSRF token of a user signed in by the trusted header (no cookie of ours to bind to).
    pub fn header_csrf(&self, user: &str) -> String {
        self.mac("csrf-header", user)
    }

    /// The CSRF token of the sign-in form, bound to its pre-session cookie value.
    pub fn login_csrf(&self, login_cookie: &str) -> String {
        self.mac("login", login_cookie)
    }

    pub fn same(a: &str, b: &str) -> bool {
        !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
    }
}

/// Failed sign-ins per user name and per client address, each in a fixed window. A name gets
/// few attempts (password guessing); an address more, since many CSMs may share one (an office,
/// a proxy), so one person's typos do not lock out the rest. Bounded: keys whose window is over
/// are dropped once the map grows, so a flood of names cannot fill memory.
pub struct LoginLimiter {
    user_attempts: u32,
    address_attempts: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const LIMITER_KEYS: usize = 10_000;

impl LoginLimiter {
    pub fn new(user_attempts: u32, address_attempts: u32, window: Duration) -> Self {
        Self { user_attempts, address_attempts, window, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(&self, user: &str, address: &str) -> [(String, u32); 2] {
        [
            (format!("user:{}", user.to_ascii_lowercase()), self.user_attempts),
            (format!("addr:{address}"), self.address_attempts),
        ]
    }

    /// Whether the name or the address used up its attempts (then the sign-in is refused unchecked).
    pub fn blocked(&self, user: &str, address: &str) -> bool {
        let map = self.failures.lock().expect("limiter lock");
        self.keys(user, address)
            .iter()
            .any(|(k, limit)| map.get(k).is_some_and(|(n, since)| *n >= *limit && since.elapsed() < self.window))
    }

    pub fn fail(&self, user: &str, address: &str) {
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() >= LIMITER_KEYS {
            map.retain(|_, (_, since)| since.elapsed() < self.window);
        }
        for (k, _) in self.keys(user, address) {
            if map.len() >= LIMITER_KEYS && !map.contains_key(&k) {
                continue; // full of live windows: the other key still counts
            }
            let entry = map.entry(k).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= self.window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    /// A successful sign-in clears its name's failures (not its address's).
    pub fn succeed(&self, user: &str) {
        let [(key, _), _] = self.keys(user, "");
        self.failures.lock().expect("limiter lock").remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(Some(&hash), "correct horse"));
        assert!(!verify_password(Some(&hash), "correct horse "));
        assert!(!verify_password(None, "correct horse"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef");
        let cookie = s.issue("dana", 2_000);
        let session = s.check(&cookie, 1_000).unwrap();
        assert_eq!(session.user, "dana");
        assert_eq!(s.check(&cookie, 2_000), None, "expired");
        let (payload, mac) = cookie.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode("sam\n2000\nAAAA");
        assert_eq!(s.check(&format!("{forged}.{mac}"), 1_000), None, "payload swapped");
        assert_eq!(Signer::new(b"another secret, another console!").check(&cookie, 1_000), None);
        assert_eq!(s.check(payload, 1_000), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef");
        let a = s.check(&s.issue("dana", 9_000), 0).unwrap();
        let b = s.check(&s.issue("dana", 9_000), 0).unwrap();
        assert!(Signer::same(&s.csrf(&a), &s.csrf(&a)));
        assert!(!Signer::same(&s.csrf(&a), &s.csrf(&b)));
        assert!(!Signer::same("", ""));
    }

    #[test]
    fn the_limiter_blocks_a_name_and_an_address_each_at_its_own_limit() {
        let l = LoginLimiter::new(3, 5, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(!l.blocked("Dana", "10.0.0.1"));
            l.fail("dana", "10.0.0.1");
        }
        assert!(l.blocked("DANA", "10.0.0.9"), "the name, from any address");
        assert!(!l.blocked("sam", "10.0.0.1"), "the address has attempts left for others");
        l.fail("sam", "10.0.0.1");
        l.fail("lee", "10.0.0.1");
        assert!(l.blocked("ana", "10.0.0.1"), "5 failures from the address: blocked for any name");
        l.succeed("dana");
        assert!(!l.blocked("dana", "10.0.0.2"));
    }
}
