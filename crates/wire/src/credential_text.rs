//! The text form of an assistant credential: the secret an operator's relay issues to an
//! assistant (`ponte-relay assistant add`), kept in a file and presented by the viewer.
//!
//! `ponte-assistant-v1-` followed by 64 hex digits: the 32-byte Ed25519 seed. The relay keeps
//! only the public key; the viewer proves possession with a signature bound to its TLS
//! connection ([`crate::rendezvous::AssistantProof`]), so the secret never travels. Parsing is
//! strict and its errors never repeat the input, which is a secret.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

/// What every credential starts with; it names the format and makes a leaked credential easy
/// to recognise (secret scanners, grep).
pub const PREFIX: &str = "ponte-assistant-v1-";

/// Length of a credential's text form.
pub const TEXT_LEN: usize = PREFIX.len() + 64;

/// An assistant credential's secret: the Ed25519 seed. Wiped from memory when dropped; its
/// `Debug` output says nothing about it.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSecret(Zeroizing<[u8; 32]>);

/// Text that is not a credential. Deliberately without detail: the input may be a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an assistant credential (expected {PREFIX} followed by 64 hex digits)")]
pub struct BadCredential;

impl CredentialSecret {
    /// A credential from its 32 secret bytes.
    pub fn from_bytes(seed: [u8; 32]) -> CredentialSecret {
        CredentialSecret(Zeroizing::new(seed))
    }

    /// The 32 secret bytes (the Ed25519 seed).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The text form, to print once or write to the assistant's file.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(TEXT_LEN));
        s.push_str(PREFIX);
        for b in self.0.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for CredentialSecret {
    type Err = BadCredential;

    /// Accepts the text form with surrounding white space (a file's trailing newline).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.trim().strip_prefix(PREFIX).ok_or(BadCredential)?.as_bytes();
        if hex.len() != 64 {
            return Err(BadCredential);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        for (out, pair) in seed.iter_mut().zip(hex.chunks_exact(2)) {
            let (hi, lo) = (hex_value(pair[0]), hex_value(pair[1]));
            *out = hi.zip(lo).map(|(h, l)| h << 4 | l).ok_or(BadCredential)?;
        }
        Ok(CredentialSecret(seed))
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_round_trips_and_debug_hides_it() {
        let secret = CredentialSecret::from_bytes([0xa5; 32]);
        let text = secret.to_text();
        assert_eq!(text.len(), TEXT_LEN);
        assert!(text.starts_with(PREFIX));
        assert_eq!(
            format!("  {}\n", *text).parse::<CredentialSecret>().unwrap(),
            secret
        );
        assert_eq!(
            text.to_uppercase()
                .replace("PONTE-ASSISTANT-V1-", PREFIX)
                .parse::<CredentialSecret>()
                .unwrap(),
            secret
        );
        assert!(!format!("{secret:?}").contains("a5"));
    }

    #[test]
    fn anything_else_is_refused_without_echo() {
        let good = CredentialSecret::from_bytes([1; 32]).to_text();
        for bad in [
            String::new(),
            good[..good.len() - 1].to_owned(),
            format!("{}0", *good),
            good.replace(PREFIX, "ponte-assistant-v2-"),
            format!("{}g", &good[..good.len() - 1]),
            format!("{}é", &good[..good.len() - 2]),
        ] {
            let err = bad.parse::<CredentialSecret>().unwrap_err();
            assert!(!err.to_string().contains(&good[PREFIX.len()..]));
        }
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in ".{0,100}") {
            let _ = s.parse::<CredentialSecret>();
        }
    }
}
