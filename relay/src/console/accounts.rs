//! The console's operator accounts: a name, a role and an argon2id hash of the password, kept
//! in the ledger's database (so every node of a cluster that shares a PostgreSQL ledger shares
//! them). `ponte-relay console-user add|list|remove` manages them; the console only reads them.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

use data_encoding::BASE32_NOPAD;

use crate::ledger::{LedgerError, OperatorRow, Store, now_ms};

/// Shortest password accepted for an operator account, in characters.
pub const MIN_PASSWORD: usize = 12;

/// Longest password accepted, in bytes (hashing is bounded work whatever a login form sends).
pub const MAX_PASSWORD: usize = 256;

/// What an operator may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: live sessions (and ending them), the ledger, assistants, the cluster, the
    /// audit log.
    Admin,
    /// Read the ledger and its reports, nothing else.
    Billing,
}

impl Role {
    /// The role's stored and shown name.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Billing => "billing",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "billing" => Some(Role::Billing),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An operator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was made (ms since 1970 UTC).
    pub created: i64,
    password_hash: String,
    totp: Option<Vec<u8>>,
}

/// What went wrong with an operator account.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The ledger database failed (or is off).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The name is not usable.
    #[error("an operator name is 1 to 64 letters, digits and . _ @ -, starting with a letter or digit")]
    BadName,
    /// The password is too short or too long.
    #[error("the password must have at least {MIN_PASSWORD} characters (and at most {MAX_PASSWORD} bytes)")]
    BadPassword,
    /// An account of that name exists.
    #[error("an operator named {0} exists already")]
    Exists(String),
    /// No account of that name.
    #[error("no operator named {0}")]
    Unknown(String),
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Checks an operator name (the same plain alphabet as assistant names).
pub fn check_name(name: &str) -> Result<(), AccountError> {
    crate::assistants::check_name(name).map_err(|_| AccountError::BadName)
}

fn argon2() -> Argon2<'static> {
    // argon2id v19 with the crate's defaults (19 MiB, 2 passes: OWASP's recommendation).
    Argon2::default()
}

/// The argon2id hash of `password` (PHC string form, with a fresh salt).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AccountError::BadPassword);
    }
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// A hash no password matches, checked when a login names no account, so that the answer
/// takes as long as for a real one.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        argon2()
            .hash_password(b"no account has this password")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl Operator {
    /// Whether `password` is this account's (blocking: argon2id takes tens of milliseconds).
    pub fn verify(&self, password: &str) -> bool {
        verify(&self.password_hash, password)
    }

    /// Whether the account asks for a TOTP code at login.
    pub fn has_totp(&self) -> bool {
        self.totp.is_some()
    }

    /// The TOTP time step `code` is valid for at `unix_secs` (this step or one either side, for
    /// clocks a little apart), if any; an account without TOTP takes any code as step 0.
    pub fn totp_step(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let Some(secret) = &self.totp else { return Some(0) };
        let code = code.trim();
        let step = unix_secs / TOTP_STEP_SECS;
        [step, step.saturating_sub(1), step + 1]
            .into_iter()
            .find(|&s| totp_at(secret, s).is_some_and(|want| crate::console::gate::same_secret(&want, code)))
    }

    fn from_row(row: OperatorRow) -> Option<Operator> {
        let totp = match row.totp_secret {
            Some(text) => Some(BASE32_NOPAD.decode(text.as_bytes()).ok()?),
            None => None,
        };
        Some(Operator {
            role: Role::parse(&row.role)?,
            name: row.name,
            created: row.created,
            password_hash: row.password_hash,
            totp,
        })
    }
}

#[cfg(test)]
impl Operator {
    /// An account for tests of the logins (no password matches it).
    pub fn for_tests(name: &str, role: Role) -> Operator {
        Operator {
            name: name.into(),
            role,
            created: 0,
            password_hash: String::new(),
            totp: None,
        }
    }
}

/// TOTP's time step (RFC 6238's default, and every authenticator app's).
pub const TOTP_STEP_SECS: u64 = 30;

/// The 6-digit TOTP code of `secret` for time step `step` (RFC 6238 with HMAC-SHA-1).
pub fn totp_at(secret: &[u8], step: u64) -> Option<String> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).ok()?;
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let word = u32::from_be_bytes(hash[offset..offset + 4].try_into().ok()?) & 0x7fff_ffff;
    Some(format!("{:06}", word % 1_000_000))
}

/// A fresh TOTP secret: 20 random bytes (RFC 4226's recommended length), base32 as apps take it.
pub fn new_totp_secret() -> String {
    let mut secret = [0u8; 20];
    rand_core::Rng::fill_bytes(&mut ponte_wire::os_rng(), &mut secret);
    BASE32_NOPAD.encode(&secret)
}

/// The `otpauth://` URI an authenticator app reads (as a QR code or pasted) for `name`.
pub fn totp_uri(name: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/Ponte%20relay:{name}?secret={secret}&issuer=Ponte%20relay&digits=6&period={TOTP_STEP_SECS}"
    )
}

fn verify(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// Checks `password` for the account `name` among `operators` (blocking, like
/// [`Operator::verify`], and as long for an unknown name as for a known one).
pub fn authenticate(operators: &[Operator], name: &str, password: &str) -> Option<Operator> {
    match operators.iter().find(|o| o.name == name) {
        Some(op) => op.verify(password).then(|| op.clone()),
        None => {
            verify(decoy(), password);
            None
        }
    }
}

/// Every account, by name; rows with an unknown role (written by hand, or by a newer relay)
/// are left out.
pub async fn operators(store: &mut Store) -> Result<Vec<Operator>, AccountError> {
    Ok(store
        .operators()
        .await?
        .into_iter()
        .filter_map(Operator::from_row)
        .collect())
}

/// Adds an account, with a second factor if `totp_secret` (from [`new_totp_secret`]) is given.
pub async fn add(
    store: &mut Store,
    name: &str,
    role: Role,
    password: &str,
    totp_secret: Option<&str>,
) -> Result<(), AccountError> {
    check_name(name)?;
    let password_hash = {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))??
    };
    let row = OperatorRow {
        name: name.to_owned(),
        role: role.label().to_owned(),
        password_hash,
        totp_secret: totp_secret.map(str::to_owned),
        created: now_ms(),
    };
    if store.add_operator(row).await? {
        Ok(())
    } else {
        Err(AccountError::Exists(name.to_owned()))
    }
}

/// Removes an account; the console ends its logins at their next request.
pub async fn remove(store: &mut Store, name: &str) -> Result<(), AccountError> {
    if store.remove_operator(name).await? {
        Ok(())
    } else {
        Err(AccountError::Unknown(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(name: &str, password: &str) -> Operator {
        Operator {
            name: name.into(),
            role: Role::Billing,
            created: 0,
            password_hash: hash_password(password).unwrap(),
            totp: None,
        }
    }

    #[test]
    fn totp_codes_are_rfc_6238s() {
        // RFC 6238, appendix B (SHA-1): the 8-digit codes' last six digits.
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(
                totp_at(secret, time / TOTP_STEP_SECS).unwrap(),
                code,
                "T = {time}"
            );
        }
    }

    #[test]
    fn an_account_with_totp_takes_this_steps_code_and_its_neighbours_only() {
        let secret = new_totp_secret();
        let mut op = operator("anna", "correct horse battery");
        op.totp = Some(BASE32_NOPAD.decode(secret.as_bytes()).unwrap());
        assert!(op.has_totp());
        let now = 1_800_000_000;
        let step = now / TOTP_STEP_SECS;
        let code = |s| totp_at(op.totp.as_ref().unwrap(), s).unwrap();
        assert_eq!(op.totp_step(&code(step), now), Some(step));
        assert_eq!(op.totp_step(&code(step - 1), now), Some(step - 1));
        assert_eq!(op.totp_step(&code(step + 1), now), Some(step + 1));
        assert_eq!(op.totp_step(&code(step - 2), now), None);
        assert_eq!(op.totp_step("", now), None);
        assert_eq!(op.totp_step("12345", now), None);
        assert!(totp_uri("anna", &secret).starts_with("otpauth://totp/Ponte%20relay:anna?secret="));
        assert_eq!(operator("bea", "another long secret").totp_step("", now), Some(0));
    }

    #[test]
    fn only_the_right_password_of_an_existing_account_logs_in() {
        let all = [
            operator("anna", "correct horse battery"),
            operator("bea", "another long secret"),
        ];
        assert_eq!(
            authenticate(&all, "anna", "correct horse battery").map(|o| o.name),
            Some("anna".into())
        );
        assert!(authenticate(&all, "anna", "another long secret").is_none());
        assert!(authenticate(&all, "anna", "correct horse batter").is_none());
        assert!(authenticate(&all, "nobody", "correct horse battery").is_none());
        assert!(authenticate(&all, "anna", &"x".repeat(MAX_PASSWORD + 1)).is_none());
    }

    #[test]
    fn the_hash_is_argon2id_with_a_fresh_salt_and_no_password_in_it() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("horse"));
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        assert!(matches!(hash_password("short"), Err(AccountError::BadPassword)));
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD + 1)),
            Err(AccountError::BadPassword)
        ));
        assert!(check_name("anna.rossi@example").is_ok());
        for bad in ["", "-anna", "anna rossi", "<script>", "=cmd", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
