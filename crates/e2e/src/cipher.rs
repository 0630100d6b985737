//! The AES-256-GCM seam: one small key type over the backends this build carries.
//!
//! aws-lc-rs is the default because the session cipher is the hot path and it is several
//! times faster here than the pure-Rust implementation (see docs/BENCHMARKS.md); RustCrypto's
//! `aes-gcm` stays available for builds that want no C code. Both produce identical bytes.

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("the e2e feature needs an AES-256-GCM backend: enable `aws-lc` or `rustcrypto`");

use zeroize::Zeroizing;

/// Bytes of an AES-256-GCM key.
pub const KEY_LEN: usize = 32;
/// Bytes of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of a GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM implementation compiled into this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// aws-lc-rs (AWS-LC, assembly-optimised).
    #[cfg(feature = "aws-lc")]
    AwsLc,
    /// RustCrypto `aes-gcm` (pure Rust, AES-NI/CLMUL when the CPU has them).
    #[cfg(feature = "rustcrypto")]
    RustCrypto,
}

impl Backend {
    /// Every backend in this build, fastest first.
    pub const ALL: &'static [Backend] = &[
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
        #[cfg(feature = "rustcrypto")]
        Backend::RustCrypto,
    ];

    /// The fastest backend in this build.
    pub fn fastest() -> Backend {
        Self::ALL[0]
    }

    /// A short name for logs and benchmark IDs.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc-rs",
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => "rustcrypto",
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::fastest()
    }
}

/// The tag did not match: the ciphertext, the associated data, the nonce or the key differ
/// from what the sender used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticationFailed;

/// An AES-256-GCM key bound to one backend.
pub(crate) enum AeadKey {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    #[cfg(feature = "rustcrypto")]
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    pub(crate) fn new(backend: Backend, key: &Zeroizing<[u8; KEY_LEN]>) -> AeadKey {
        match backend {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
                // A 32-byte key is always valid for AES-256-GCM; `new` fails only on length.
                let unbound = UnboundKey::new(&AES_256_GCM, key.as_slice())
                    .unwrap_or_else(|_| unreachable!("AES-256 key length is fixed"));
                AeadKey::AwsLc(LessSafeKey::new(unbound))
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use aes_gcm::KeyInit;
                AeadKey::RustCrypto(Box::new(aes_gcm::Aes256Gcm::new((&**key).into())))
            }
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                // Sealing fails only for inputs beyond GCM's 64 GiB limit, which the record
                // layer's bounded record size rules out.
                let tag = key
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
                    .unwrap_or_else(|_| unreachable!("record within GCM limits"));
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                out
            }
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(key) => {
                use aes_gcm::AeadInOut;
                let tag = key
                    .encrypt_inout_detached(&nonce.into(), aad, buf.into())
                    .unwrap_or_else(|_| unreachable!("record within GCM limits"));
                tag.into()
            }
        }
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `nonce` and `aad`.
    pub(crate) fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthenticationFailed> {
        match self {
            #[cfg(feature = "aws-lc")]
            AeadKey::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                key.open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tag, buf)
                    .map(|_| ())
                    .map_err(|_| AuthenticationFailed)
            }
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(key) => {
                use aes_gcm::AeadInOut;
                key.decrypt_inout_detached(&nonce.into(), aad, buf.into(), tag.into())
                    .map_err(|_| AuthenticationFailed)
            }
        }
    }
}
