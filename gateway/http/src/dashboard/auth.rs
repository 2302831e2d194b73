//! Dashboard users, password hashes, sessions and CSRF tokens (docs/dashboard.md).
//!
//! A password hash is `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`: PBKDF2-HMAC-SHA256
//! over OpenSSL with a 16-byte random salt; comparisons are constant-time. Sessions live in
//! this process's memory only (a restart logs everyone out), keyed by 32 random bytes, and
//! end after an idle time and an absolute lifetime measured on the gateway's clock.

use openssl::hash::MessageDigest;
use std::collections::HashMap;
use std::sync::Mutex;

/// The fewest PBKDF2 iterations a hash may have (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const MIN_ITERATIONS: u32 = 210_000;
/// What `mezhved dashboard hash-password` uses.
pub const DEFAULT_ITERATIONS: u32 = 600_000;
const PREFIX: &str = "pbkdf2-sha256";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("a password hash is pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>")]
    Malformed,
    #[error("a password hash needs at least {MIN_ITERATIONS} iterations")]
    TooFewIterations,
    #[error("OpenSSL: {0}")]
    OpenSsl(String),
}

fn b64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

fn pbkdf2(password: &str, salt: &[u8], iterations: u32, out: &mut [u8]) -> Result<(), HashError> {
    openssl::pkcs5::pbkdf2_hmac(
        password.as_bytes(),
        salt,
        iterations as usize,
        MessageDigest::sha256(),
        out,
    )
    .map_err(|e| HashError::OpenSsl(e.to_string()))
}

/// Hashes `password` with a fresh random salt.
pub fn hash_password(password: &str, iterations: u32) -> Result<String, HashError> {
    if iterations < MIN_ITERATIONS {
        return Err(HashError::TooFewIterations);
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| HashError::OpenSsl(e.to_string()))?;
    let mut out = [0u8; 32];
    pbkdf2(password, &salt, iterations, &mut out)?;
    Ok(format!(
        "{PREFIX}${iterations}${}${}",
        b64(&salt),
        b64(&out)
    ))
}

/// A parsed hash: iterations, salt, derived key.
pub fn parse_hash(encoded: &str) -> Result<(u32, Vec<u8>, Vec<u8>), HashError> {
    let parts: Vec<&str> = encoded.trim().split('$').collect();
    let [prefix, iterations, salt, hash] = parts.as_slice() else {
        return Err(HashError::Malformed);
    };
    if *prefix != PREFIX {
        return Err(HashError::Malformed);
    }
    let iterations: u32 = iterations.parse().map_err(|_| HashError::Malformed)?;
    if iterations < MIN_ITERATIONS {
        return Err(HashError::TooFewIterations);
    }
    let salt = openssl::base64::decode_block(salt).map_err(|_| HashError::Malformed)?;
    let hash = openssl::base64::decode_block(hash).map_err(|_| HashError::Malformed)?;
    if salt.len() < 16 || hash.len() != 32 {
        return Err(HashError::Malformed);
    }
    Ok((iterations, salt, hash))
}

/// Whether `password` matches `encoded` (constant-time in the comparison).
pub fn verify_password(password: &str, encoded: &str) -> Result<bool, HashError> {
    let (iterations, salt, expected) = parse_hash(encoded)?;
    let mut out = vec![0u8; expected.len()];
    pbkdf2(password, &salt, iterations, &mut out)?;
    Ok(openssl::memcmp::eq(&out, &expected))
}

/// `len` random bytes as URL-safe text (hex).
pub fn random_token(len: usize) -> String {
    let mut b = vec![0u8; len];
    // OpenSSL's CSPRNG fails only when the process cannot be seeded at all.
    if openssl::rand::rand_bytes(&mut b).is_err() {
        panic!("OpenSSL random generator unavailable");
    }
    hex::encode(b)
}

/// Constant-time equality of two tokens (false when lengths differ).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && !a.is_empty() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// The two dashboard roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Auditor,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "operator" => Some(Role::Operator),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }
}

/// One logged-in user's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The CSRF token every state-changing form of this session carries.
    pub csrf: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

/// Whether `submitted` is this session's CSRF token.
pub fn csrf_ok(session: &Session, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|t| tokens_equal(t, &session.csrf))
}

/// How long a failed login counts towards the delay.
const FAILURE_MEMORY_MS: i64 = 15 * 60 * 1000;
/// At most this many user names and addresses with failures are remembered.
const MAX_FAILURE_KEYS: usize = 10_000;

/// The in-memory session store.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// Failed logins per user name and per client address: (count, last failure ms).
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl Sessions {
    /// Starts a session; returns its id.
    pub fn create(&self, user: &str, role: Role, now_ms: i64) -> String {
        let id = random_token(32);
        let s = Session {
            user: user.to_string(),
            role,
            csrf: random_token(32),
            created_ms: now_ms,
            last_seen_ms: now_ms,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.clone(), s);
        id
    }

    /// The live session `id`, touched if `activity`; an expired one is removed.
    pub fn get(
        &self,
        id: &str,
        now_ms: i64,
        idle_ms: i64,
        max_ms: i64,
        activity: bool,
    ) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| now_ms - s.last_seen_ms <= idle_ms && now_ms - s.created_ms <= max_ms);
        let s = map.get_mut(id)?;
        if activity {
            s.last_seen_ms = now_ms;
        }
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Failures recorded against any of `keys` within the last 15 minutes.
    pub fn recent_failures(&self, keys: &[String], now_ms: i64) -> u32 {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| f.get(k))
            .filter(|(_, at)| now_ms - at < FAILURE_MEMORY_MS)
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0)
    }

    /// Counts a failure against each key. The map is bounded: entries older than the
    /// 15-minute memory go first, then the least recent (names and addresses are chosen
    /// by whoever tries).
    pub fn record_failure(&self, keys: &[String], now_ms: i64) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() + keys.len() > MAX_FAILURE_KEYS {
            f.retain(|_, (_, at)| now_ms - *at < FAILURE_MEMORY_MS);
        }
        while f.len() + keys.len() > MAX_FAILURE_KEYS {
            let Some(oldest) = f
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            f.remove(&oldest);
        }
        for k in keys {
            let e = f.entry(k.clone()).or_insert((0, now_ms));
            e.0 += 1;
            e.1 = now_ms;
        }
    }

    pub fn clear_failures(&self, keys: &[String]) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            f.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_round_trips_and_refuses_a_wrong_password() {
        let h = hash_password("correct horse", MIN_ITERATIONS).expect("hash");
        assert!(h.starts_with("pbkdf2-sha256$210000$"), "{h}");
        assert_eq!(verify_password("correct horse", &h), Ok(true));
        assert_eq!(verify_password("correct horsE", &h), Ok(false));
        assert_eq!(verify_password("", &h), Ok(false));
        // A fresh salt each time.
        assert_ne!(
            h,
            hash_password("correct horse", MIN_ITERATIONS).expect("hash")
        );
    }

    #[test]
    fn malformed_hashes_are_refused() {
        let good = hash_password("x", MIN_ITERATIONS).expect("hash");
        let parts: Vec<&str> = good.split('$').collect();
        for bad in [
            String::new(),
            "plain".to_string(),
            format!("pbkdf2-sha1${}${}${}", parts[1], parts[2], parts[3]),
            format!("{}$abc${}${}", parts[0], parts[2], parts[3]),
            format!("{}${}$!!!${}", parts[0], parts[1], parts[3]),
            format!("{}${}${}$AAAA", parts[0], parts[1], parts[2]),
            format!("{}${}${}", parts[0], parts[1], parts[2]),
            format!("{good}$extra"),
        ] {
            assert_eq!(
                verify_password("x", &bad),
                Err(HashError::Malformed),
                "{bad}"
            );
        }
        let weak = format!("{}$1000${}${}", parts[0], parts[2], parts[3]);
        assert_eq!(
            verify_password("x", &weak),
            Err(HashError::TooFewIterations)
        );
        assert_eq!(hash_password("x", 1000), Err(HashError::TooFewIterations));
    }

    #[test]
    fn the_csrf_check_wants_exactly_the_sessions_token() {
        let sessions = Sessions::default();
        let id = sessions.create("op", Role::Operator, 0);
        let s = sessions.get(&id, 1, 1000, 1000, true).expect("session");
        assert!(csrf_ok(&s, Some(&s.csrf)));
        assert!(!csrf_ok(&s, None));
        assert!(!csrf_ok(&s, Some("")));
        assert!(!csrf_ok(&s, Some(&s.csrf[..10])));
        let mut other = s.csrf.clone().into_bytes();
        other[0] = if other[0] == b'a' { b'b' } else { b'a' };
        assert!(!csrf_ok(&s, Some(&String::from_utf8(other).expect("utf8"))));
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let sessions = Sessions::default();
        let id = sessions.create("op", Role::Operator, 0);
        assert!(sessions.get(&id, 900, 1000, 5000, true).is_some());
        assert!(sessions.get(&id, 2500, 1000, 5000, true).is_none(), "idle");
        let id = sessions.create("op", Role::Operator, 0);
        for t in [900, 1800, 2700, 3600, 4500] {
            assert!(sessions.get(&id, t, 1000, 5000, true).is_some());
        }
        assert!(
            sessions.get(&id, 5400, 1000, 5000, true).is_none(),
            "absolute"
        );
        let id = sessions.create("op", Role::Operator, 0);
        sessions.remove(&id);
        assert!(sessions.get(&id, 1, 1000, 5000, true).is_none());
    }

    #[test]
    fn a_pages_own_refresh_does_not_keep_a_session_alive() {
        let sessions = Sessions::default();
        let id = sessions.create("op", Role::Operator, 0);
        for t in [500, 1000] {
            assert!(sessions.get(&id, t, 1000, 5000, false).is_some());
        }
        assert!(sessions.get(&id, 1001, 1000, 5000, false).is_none());
    }

    #[test]
    fn remembered_failures_stay_bounded_and_keep_the_recent_ones() {
        let sessions = Sessions::default();
        for i in 0..(MAX_FAILURE_KEYS + 500) {
            sessions.record_failure(&[format!("user:{i}")], i as i64);
        }
        let n = sessions.failures.lock().map(|f| f.len()).unwrap_or(0);
        assert!(n <= MAX_FAILURE_KEYS, "{n}");
        let last = format!("user:{}", MAX_FAILURE_KEYS + 499);
        assert_eq!(sessions.recent_failures(&[last], 20_000), 1);
        assert_eq!(sessions.recent_failures(&["user:0".into()], 20_000), 0);
    }
}
