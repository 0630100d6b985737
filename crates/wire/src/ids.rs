//! Session IDs and one-time codes: what a customer reads to an assistant over the phone.
//!
//! Both are plain digits so they are easy to say in any language. They are drawn from the
//! operating system's CSPRNG: a session ID must not be guessable from earlier ones, and the
//! code is the only secret the whole end-to-end handshake rests on.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// Why a typed-in session ID or code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// A character other than a digit, a space or a dash.
    #[error("{what} may contain only digits, spaces and dashes (found {found:?})")]
    InvalidCharacter {
        /// "session ID" or "code".
        what: &'static str,
        /// The offending character.
        found: char,
    },
    /// The wrong number of digits.
    #[error("{what} must have {expected} digits, got {got}")]
    WrongLength {
        /// "session ID" or "code".
        what: &'static str,
        /// How many digits the value needs.
        expected: usize,
        /// How many digits were given.
        got: usize,
    },
}

/// Collects exactly `N` digits from `input`, allowing spaces and dashes between them and
/// white space around them, so that `123 456 789`, `123-456-789` and `123456789` all parse.
fn parse_digits<const N: usize>(input: &str, what: &'static str) -> Result<[u8; N], ParseIdError> {
    let mut digits = [0u8; N];
    let mut count = 0usize;
    for c in input.trim().chars() {
        match c {
            '0'..='9' => {
                if count < N {
                    digits[count] = c as u8 - b'0';
                }
                count += 1;
            }
            ' ' | '-' => {}
            found => return Err(ParseIdError::InvalidCharacter { what, found }),
        }
    }
    if count != N {
        return Err(ParseIdError::WrongLength {
            what,
            expected: N,
            got: count,
        });
    }
    Ok(digits)
}

/// `N` uniformly random decimal digits, by rejection sampling so no digit is more likely.
fn random_digits<const N: usize>(rng: &mut impl CryptoRng) -> [u8; N] {
    let mut digits = [0u8; N];
    for d in &mut digits {
        *d = loop {
            // 250 = 25 * 10: values at or above it would bias the low digits.
            let mut byte = [0u8];
            rng.fill_bytes(&mut byte);
            if byte[0] < 250 {
                break byte[0] % 10;
            }
        };
    }
    digits
}

fn digits_to_u64(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |acc, &d| acc * 10 + u64::from(d))
}

/// The operating system's CSPRNG, for callers that do not bring their own generator.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// What a relay knows a quick-access device by: 16 bytes derived from the device's public
/// key (`SHA-256("ponte/1 device tag\0" ‖ key)`, first 16 bytes), never the key itself.
///
/// It is stable for one device key, so the relay can tell that the same device came back; it
/// is no secret and proves nothing: whoever answers under a tag must still complete the
/// key-authenticated handshake with the device's private key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceTag(pub [u8; 16]);

impl fmt::Display for DeviceTag {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceTag({self})")
    }
}

/// A relay-issued session ID: 9 random digits, shown as `123 456 789`.
///
/// It names a waiting agent on one relay. It is not a secret (the relay sees it), but it is
/// unguessable so that nobody can join sessions by counting.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct SessionId(u32);

impl SessionId {
    /// Number of digits in a session ID.
    pub const DIGITS: usize = 9;

    /// A fresh random session ID from the given CSPRNG.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        Self(digits_to_u64(&random_digits::<9>(rng)) as u32)
    }

    /// The session ID as a number below 10^9.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The 9 digits without separators, as used in JSON output and key derivation.
    pub fn to_digits(self) -> String {
        format!("{:09}", self.0)
    }
}

impl TryFrom<u32> for SessionId {
    type Error = ParseIdError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if value >= 1_000_000_000 {
            return Err(ParseIdError::WrongLength {
                what: "session ID",
                expected: Self::DIGITS,
                got: 10,
            });
        }
        Ok(Self(value))
    }
}

impl From<SessionId> for u32 {
    fn from(id: SessionId) -> u32 {
        id.0
    }
}

impl FromStr for SessionId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = parse_digits::<9>(s, "session ID")?;
        Ok(Self(digits_to_u64(&digits) as u32))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.to_digits();
        write!(f, "{} {} {}", &d[0..3], &d[3..6], &d[6..9])
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The agent's one-time code: 8 digits from the OS CSPRNG, shown as `1234-5678`.
///
/// This is the secret the end-to-end handshake is gated on. It never goes to the relay, and
/// its `Debug` output is redacted so it cannot slip into a log line by accident. Only
/// [`OneTimeCode::reveal`] (for showing it to the customer) and the handshake read it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode([u8; 8]);

impl OneTimeCode {
    /// Number of digits in a code.
    pub const DIGITS: usize = 8;

    /// A fresh random code from the given CSPRNG.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        Self(random_digits::<8>(rng))
    }

    /// The code grouped for reading aloud, `1234-5678`. Only for showing to the customer.
    pub fn reveal(&self) -> String {
        let d = self.digits();
        format!("{}-{}", &d[0..4], &d[4..8])
    }

    /// The 8 digits without separator, as used for `--json` output and the PAKE password.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl FromStr for OneTimeCode {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_digits::<8>(s, "code").map(Self)
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(<redacted>)")
    }
}

impl Drop for OneTimeCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_id_formats_grouped_and_round_trips() {
        let id: SessionId = "012345678".parse().unwrap();
        assert_eq!(id.to_string(), "012 345 678");
        assert_eq!(id.to_digits(), "012345678");
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert_eq!(" 012-345-678 \n".parse::<SessionId>().unwrap(), id);
    }

    #[test]
    fn session_id_rejects_bad_input_with_reason() {
        assert_eq!(
            "12345678".parse::<SessionId>(),
            Err(ParseIdError::WrongLength {
                what: "session ID",
                expected: 9,
                got: 8
            })
        );
        assert!(matches!(
            "1234567890".parse::<SessionId>(),
            Err(ParseIdError::WrongLength { got: 10, .. })
        ));
        assert_eq!(
            "123 456 78x".parse::<SessionId>(),
            Err(ParseIdError::InvalidCharacter {
                what: "session ID",
                found: 'x'
            })
        );
        assert!("123_456_789".parse::<SessionId>().is_err());
        assert!("".parse::<SessionId>().is_err());
        assert!(SessionId::try_from(1_000_000_000).is_err());
    }

    #[test]
    fn code_formats_grouped_and_debug_hides_it() {
        let code: OneTimeCode = "1234 5678".parse().unwrap();
        assert_eq!(code.reveal(), "1234-5678");
        assert_eq!(code.digits(), "12345678");
        let debug = format!("{code:?}");
        assert!(!debug.contains("1234"), "{debug}");
        assert!(!debug.contains("5678"), "{debug}");
        assert_eq!("  1234-5678 ".parse::<OneTimeCode>().unwrap(), code);
        assert!("1234-567".parse::<OneTimeCode>().is_err());
        assert!("1234+5678".parse::<OneTimeCode>().is_err());
        assert!("１２３４５６７８".parse::<OneTimeCode>().is_err());
    }

    #[test]
    fn random_values_use_every_digit() {
        let mut rng = os_rng();
        let mut seen = [false; 10];
        for _ in 0..200 {
            for c in OneTimeCode::random(&mut rng).digits().chars() {
                seen[c as usize - '0' as usize] = true;
            }
            let id = SessionId::random(&mut rng);
            assert!(id.value() < 1_000_000_000);
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<SessionId>();
            let _ = s.parse::<OneTimeCode>();
        }

        #[test]
        fn display_round_trips(v in 0u32..1_000_000_000) {
            let id = SessionId::try_from(v).unwrap();
            prop_assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        }
    }
}
