//! Dashboard sessions. A browser signs in with the API token (a form) or with a one-time code
//! (`idflow dashboard` asks the API for one: the token itself never goes into a URL). The cookie
//! it gets is an expiry and an HMAC of it under a key made at each start: not the token, not
//! guessable from it, void after 12 hours or a restart, cleared by signing out.
use hmac::{KeyInit, Mac};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a session lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a sign-in code may wait to be used (once).
const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Codes not yet used, at most (older ones are dropped first).
const CODES: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub(crate) struct Sessions {
    key: zeroize::Zeroizing<[u8; 32]>,
    codes: Mutex<HashMap<String, Instant>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    // Without randomness the code is all zeros once: refused below as it never matches a real one.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

impl Sessions {
    pub(crate) fn new() -> Sessions {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        let _ = getrandom::fill(key.as_mut());
        Sessions { key, codes: Mutex::new(HashMap::new()) }
    }

    fn mac(&self, expires: u64) -> String {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(self.key.as_ref()).expect("HMAC takes a key of any length");
        m.update(b"idflow dashboard session ");
        m.update(expires.to_string().as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// A new session's cookie value.
    pub(crate) fn issue(&self) -> String {
        let expires = now() + LIFETIME.as_secs();
        format!("{expires}.{}", self.mac(expires))
    }

    /// A cookie value this service issued that has not expired.
    pub(crate) fn valid(&self, value: &str) -> bool {
        let Some((expires, mac)) = value.split_once('.') else { return false };
        let Ok(expires) = expires.parse::<u64>() else { return false };
        expires > now() && crate::api::same(mac.as_bytes(), self.mac(expires).as_bytes())
    }

    /// A one-time sign-in code.
    pub(crate) fn code(&self) -> String {
        let code = random_hex();
        if let Ok(mut codes) = self.codes.lock() {
            codes.retain(|_, made| made.elapsed() < CODE_LIFETIME);
            while codes.len() >= CODES {
                let oldest = codes.iter().min_by_key(|(_, t)| **t).map(|(c, _)| c.clone());
                match oldest {
                    Some(c) => codes.remove(&c),
                    None => break,
                };
            }
            codes.insert(code.clone(), Instant::now());
        }
        code
    }

    /// Uses a code up: true when it was issued, is fresh, and was not used before.
    pub(crate) fn redeem(&self, code: &str) -> bool {
        let Ok(mut codes) = self.codes.lock() else { return false };
        let found = codes.keys().find(|c| crate::api::same(c.as_bytes(), code.as_bytes())).cloned();
        match found.and_then(|c| codes.remove(&c)) {
            Some(made) => made.elapsed() < CODE_LIFETIME,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_is_valid_until_it_expires_and_a_code_works_once() {
        let s = super::Sessions::new();
        let v = s.issue();
        assert!(s.valid(&v));
        assert!(!s.valid(&v.replace('.', ".0")), "a changed MAC is refused");
        let (_, mac) = v.split_once('.').expect("form");
        assert!(!s.valid(&format!("1.{mac}")), "an old expiry is refused");
        assert!(!super::Sessions::new().valid(&v), "another start's sessions are void");
        let c = s.code();
        assert!(s.redeem(&c));
        assert!(!s.redeem(&c), "once");
        assert!(!s.redeem("nope"));
    }
}
