//! Conference PINs: validated, stored only as argon2id PHC strings, checked with the argon2
//! crate's verify (which compares the derived hashes in constant time).
//!
//! A PIN of 3 to 12 digits has at most 10^12 values, so a stolen database can still be
//! brute-forced given time; the hash raises the cost of that (argon2id, 19 MiB, 2 passes, a
//! random salt per PIN, so equal PINs do not show as equal hashes), and the IVR's wrong-PIN
//! lockout is what protects a conference against guessing over the phone.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::DirectoryError;

/// Shortest PIN accepted.
pub const PIN_MIN_DIGITS: usize = 3;
/// Longest PIN accepted.
pub const PIN_MAX_DIGITS: usize = 12;

/// The result of checking digits a caller entered against a conference's PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// The digits admit the caller; `moderator` when they are the moderator PIN.
    Ok {
        /// The digits matched the moderator PIN.
        moderator: bool,
    },
    /// The conference has a participant PIN and the digits match neither PIN.
    Wrong,
    /// The conference has no PIN at all: anyone joins, as a participant; ask for nothing.
    NoPin,
}

/// Which of a conference's two PINs a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    /// The participants' PIN.
    Participant,
    /// The moderator PIN.
    Moderator,
}

impl std::fmt::Display for PinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinKind::Participant => "PIN",
            PinKind::Moderator => "moderator PIN",
        })
    }
}

/// Checks that `pin` is 3-12 ASCII digits.
pub fn validate(kind: PinKind, pin: &str) -> Result<(), DirectoryError> {
    let reason = if !pin.bytes().all(|b| b.is_ascii_digit()) {
        "must be digits only (0-9)"
    } else if !(PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&pin.len()) {
        "must be 3 to 12 digits long"
    } else {
        return Ok(());
    };
    Err(DirectoryError::BadPin { kind, reason })
}

/// Validates `pin` and hashes it with argon2id (default parameters, a fresh random salt) into
/// a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which carries its own
/// parameters, so they can be raised later without invalidating stored PINs.
pub fn hash(kind: PinKind, pin: &str) -> Result<String, DirectoryError> {
    validate(kind, pin)?;
    Argon2::default()
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| DirectoryError::Hash(e.to_string()))
}

/// Whether `entered` is the PIN hashed into `phc`. A stored hash that does not parse counts
/// as no match (and is logged): a damaged row must not let a caller in.
pub fn matches(entered: &str, phc: &str) -> bool {
    match Argon2::default().verify_password(entered.as_bytes(), phc) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(e) => {
            tracing::warn!(error = %e, "stored PIN hash does not parse; treated as no match");
            false
        }
    }
}

/// The verdict for `entered` given a conference's stored hashes (see [`PinCheck`]). With only
/// a moderator PIN set, other digits (or none) admit a participant.
pub fn check(entered: &str, pin: Option<&str>, moderator_pin: Option<&str>) -> PinCheck {
    if pin.is_none() && moderator_pin.is_none() {
        return PinCheck::NoPin;
    }
    if moderator_pin.is_some_and(|h| matches(entered, h)) {
        return PinCheck::Ok { moderator: true };
    }
    match pin {
        None => PinCheck::Ok { moderator: false },
        Some(h) if matches(entered, h) => PinCheck::Ok { moderator: false },
        Some(_) => PinCheck::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_rule() {
        assert!(validate(PinKind::Participant, "123").is_ok());
        assert!(validate(PinKind::Participant, "123456789012").is_ok());
        for (bad, why) in [
            ("12", "3 to 12"),
            ("1234567890123", "3 to 12"),
            ("", "3 to 12"),
            ("12a4", "digits only"),
            ("１２３", "digits only"),
            (" 123", "digits only"),
        ] {
            let e = validate(PinKind::Moderator, bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("moderator PIN"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn hashes_are_salted_phc_strings_and_verify() {
        let a = hash(PinKind::Participant, "4321").unwrap();
        let b = hash(PinKind::Participant, "4321").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "a fresh salt per hash");
        assert!(!a.contains("4321"));
        assert!(matches("4321", &a) && matches("4321", &b));
        assert!(!matches("4322", &a));
        assert!(!matches("", &a));
        assert!(!matches("4321", "not a phc string"));
    }

    #[test]
    fn check_covers_both_pins() {
        let p = hash(PinKind::Participant, "1111").unwrap();
        let m = hash(PinKind::Moderator, "9999").unwrap();
        assert_eq!(check("1111", None, None), PinCheck::NoPin);
        assert_eq!(
            check("1111", Some(&p), Some(&m)),
            PinCheck::Ok { moderator: false }
        );
        assert_eq!(
            check("9999", Some(&p), Some(&m)),
            PinCheck::Ok { moderator: true }
        );
        assert_eq!(check("1112", Some(&p), Some(&m)), PinCheck::Wrong);
        assert_eq!(check("", Some(&p), None), PinCheck::Wrong);
        // Only a moderator PIN: anything else admits a participant.
        assert_eq!(
            check("9999", None, Some(&m)),
            PinCheck::Ok { moderator: true }
        );
        assert_eq!(check("", None, Some(&m)), PinCheck::Ok { moderator: false });
    }
}
