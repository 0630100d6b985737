//! Who is logged in to the console: login sessions behind random cookie tokens, each with its
//! CSRF token, and the rate limits on login attempts per source and per name. Sans-IO: the
//! caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ponte_transport::bucket::TokenBucket;

use super::accounts::{Operator, Role};
use crate::source::Source;

/// A login ends after this long without a request…
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// …and after this long in any case.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// Logins kept at once; beyond, the least recently used ends.
const MAX_LOGINS: usize = 1024;
/// Sources whose login attempts are counted at once; beyond, the least recently seen is
/// forgotten.
const MAX_SOURCES: usize = 4096;

/// Login attempts from one source: a burst, then one per `SOURCE_EVERY`.
const SOURCE_BURST: f64 = 20.0;
const SOURCE_EVERY: Duration = Duration::from_secs(3);
/// Login attempts on one name, whoever makes them: a burst, then one per `ACCOUNT_EVERY`.
/// A name that is no account gets the same allowance as one that is (sharing one would tell
/// the two apart).
const ACCOUNT_BURST: f64 = 5.0;
const ACCOUNT_EVERY: Duration = Duration::from_secs(12);
/// Names that are no account whose attempts are counted at once; beyond, the least recently
/// tried is forgotten. The accounts' own are never forgotten.
const MAX_UNKNOWN_NAMES: usize = 4096;

/// One operator's login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The operator's name.
    pub operator: String,
    /// Its role when it logged in.
    pub role: Role,
    /// When its account was made (a login outlives neither its account nor the account's
    /// removal and remaking).
    pub created: i64,
    /// The token every form of this login carries.
    pub csrf: String,
    started: Instant,
    last: Instant,
}

/// The console's logins and login limits.
#[derive(Debug, Default)]
pub struct Gate {
    logins: HashMap<String, Login>,
    sources: HashMap<Source, (TokenBucket, Instant)>,
    accounts: HashMap<String, TokenBucket>,
    unknown: HashMap<String, (TokenBucket, Instant)>,
    /// The last TOTP time step each operator logged in with: a code works once.
    totp_used: HashMap<String, u64>,
}

fn token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut ponte_wire::os_rng(), &mut bytes);
    hex::encode(bytes)
}

fn bucket(burst: f64, every: Duration, now: Instant) -> TokenBucket {
    TokenBucket::new(1.0 / every.as_secs_f64(), burst, now)
}

/// `key`'s bucket in a map of at most `max` keys, the least recently used one forgotten to make
/// room.
fn take_lru<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, (TokenBucket, Instant)>,
    key: K,
    max: usize,
    now: Instant,
    new: impl FnOnce() -> TokenBucket,
) -> &mut TokenBucket {
    if map.len() >= max && !map.contains_key(&key) {
        let oldest = map
            .iter()
            .min_by_key(|(_, (_, seen))| *seen)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
    let (bucket, seen) = map.entry(key).or_insert_with(|| (new(), now));
    *seen = now;
    bucket
}

impl Gate {
    /// Takes one login attempt from `source`'s allowance, before anything else is done for it;
    /// `Err` says how long until the next may be tried.
    pub fn attempt_from(&mut self, source: Source, now: Instant) -> Result<(), Duration> {
        let bucket = take_lru(&mut self.sources, source, MAX_SOURCES, now, || {
            bucket(SOURCE_BURST, SOURCE_EVERY, now)
        });
        bucket.try_take(1.0, now)
    }

    /// Takes one login attempt on `name` (`known`: it is an account) from the name's
    /// allowance; `Err` says how long until the next may be tried.
    pub fn attempt_on(&mut self, name: &str, known: bool, now: Instant) -> Result<(), Duration> {
        let bucket = if known {
            self.accounts
                .entry(name.to_owned())
                .or_insert_with(|| bucket(ACCOUNT_BURST, ACCOUNT_EVERY, now))
        } else {
            take_lru(&mut self.unknown, name.to_owned(), MAX_UNKNOWN_NAMES, now, || {
                bucket(ACCOUNT_BURST, ACCOUNT_EVERY, now)
            })
        };
        bucket.try_take(1.0, now)
    }

    /// Spends `operator`'s TOTP code of time `step`: `false` if a code of that step or a later
    /// one was used already (a code seen over a shoulder or in a log cannot be used again).
    pub fn spend_totp(&mut self, operator: &str, step: u64) -> bool {
        match self.totp_used.get(operator) {
            Some(&last) if step <= last => false,
            _ => {
                self.totp_used.insert(operator.to_owned(), step);
                true
            }
        }
    }

    /// Opens a login for `operator`; returns its cookie token.
    pub fn open(&mut self, operator: &Operator, now: Instant) -> String {
        self.expire(now);
        if self.logins.len() >= MAX_LOGINS {
            let oldest = self
                .logins
                .iter()
                .min_by_key(|(_, l)| l.last)
                .map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                self.logins.remove(&oldest);
            }
        }
        let cookie = token();
        self.logins.insert(
            cookie.clone(),
            Login {
                operator: operator.name.clone(),
                role: operator.role,
                created: operator.created,
                csrf: token(),
                started: now,
                last: now,
            },
        );
        cookie
    }

    /// The login behind a cookie token, if it is live (and marks it used).
    pub fn login(&mut self, cookie: &str, now: Instant) -> Option<Login> {
        let login = self.logins.get_mut(cookie)?;
        if now.duration_since(login.last) > IDLE || now.duration_since(login.started) > LONGEST {
            self.logins.remove(cookie);
            return None;
        }
        login.last = now;
        Some(login.clone())
    }

    /// Ends a login.
    pub fn close(&mut self, cookie: &str) {
        self.logins.remove(cookie);
    }

    fn expire(&mut self, now: Instant) {
        self.logins
            .retain(|_, l| now.duration_since(l.last) <= IDLE && now.duration_since(l.started) <= LONGEST);
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
impl Login {
    /// A login for page tests.
    pub fn for_tests(operator: &str, role: Role) -> Login {
        let now = Instant::now();
        Login {
            operator: operator.into(),
            role,
            created: 0,
            csrf: "0".repeat(64),
            started: now,
            last: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: u8) -> Source {
        crate::source::SourceMask::default().source(std::net::IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn a_name_gets_a_few_tries_then_waits_and_unknown_names_alike() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        for known in [true, false] {
            let name = if known { "anna" } else { "ghost" };
            for _ in 0..ACCOUNT_BURST as u8 {
                assert!(gate.attempt_on(name, known, t0).is_ok());
            }
            let wait = gate.attempt_on(name, known, t0).unwrap_err();
            assert!(wait > Duration::ZERO && wait <= ACCOUNT_EVERY, "{wait:?}");
            // …and may try again once the allowance has grown back.
            assert!(gate.attempt_on(name, known, t0 + ACCOUNT_EVERY).is_ok());
        }
        // Another name is not held up by theirs, known or not: no answer tells the two apart.
        assert!(gate.attempt_on("bea", true, t0).is_ok());
        assert!(gate.attempt_on("ghost2", false, t0).is_ok());
    }

    #[test]
    fn a_source_gets_a_few_tries_whatever_the_names() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        for _ in 0..SOURCE_BURST as usize {
            assert!(gate.attempt_from(source(1), t0).is_ok());
        }
        assert!(gate.attempt_from(source(1), t0).is_err());
        assert!(gate.attempt_from(source(2), t0).is_ok());
    }

    #[test]
    fn unknown_names_are_forgotten_first_accounts_never() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        for _ in 0..ACCOUNT_BURST as u8 {
            let _ = gate.attempt_on("anna", true, t0);
        }
        for i in 0..MAX_UNKNOWN_NAMES + 10 {
            let _ = gate.attempt_on(&format!("junk{i}"), false, t0);
        }
        assert_eq!(gate.unknown.len(), MAX_UNKNOWN_NAMES);
        assert!(
            gate.attempt_on("anna", true, t0).is_err(),
            "a flood of names does not reset an account's"
        );
    }

    #[test]
    fn logins_end_when_idle_too_long_or_closed() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        let a = gate.open(&Operator::for_tests("anna", Role::Admin), t0);
        let b = gate.open(&Operator::for_tests("bea", Role::Billing), t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let login = gate.login(&a, t0 + IDLE / 2).unwrap();
        assert_eq!((login.operator.as_str(), login.role), ("anna", Role::Admin));
        assert_eq!(login.csrf.len(), 64);
        assert!(
            gate.login(&a, t0 + IDLE).is_some(),
            "used within IDLE of its last use"
        );
        assert!(
            gate.login(&b, t0 + IDLE + Duration::from_secs(1)).is_none(),
            "idle too long"
        );
        assert!(gate.login("not a token", t0).is_none());
        gate.close(&a);
        assert!(gate.login(&a, t0 + IDLE).is_none());
        let c = gate.open(&Operator::for_tests("carla", Role::Admin), t0);
        let mut t = t0;
        while t <= t0 + LONGEST {
            t += IDLE / 2;
            let _ = gate.login(&c, t);
        }
        assert!(gate.login(&c, t).is_none(), "no login outlives LONGEST");
    }

    #[test]
    fn a_totp_code_works_once() {
        let mut gate = Gate::default();
        assert!(gate.spend_totp("anna", 100));
        assert!(!gate.spend_totp("anna", 100));
        assert!(!gate.spend_totp("anna", 99), "an older step after a newer one");
        assert!(gate.spend_totp("bea", 100));
        assert!(gate.spend_totp("anna", 101));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
