//! A conference as the directory knows it: its ID, name, PINs (hashed) and flags.

use std::fmt;
use std::str::FromStr;

use super::{DirectoryError, PinKind, UnixMs};

/// Longest conference ID (digits) accepted: callers key it on a phone.
pub const ID_MAX_DIGITS: usize = 20;
/// Longest conference name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Most participants a conference may be limited to.
pub const MAX_PARTICIPANTS_LIMIT: u32 = 100_000;

/// A conference ID: 1 to 20 ASCII digits, as keyed on a phone or dialled as a Request-URI
/// user part. Leading zeros are significant ("007" and "7" are two conferences).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId(String);

impl ConferenceId {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConferenceId {
    type Err = DirectoryError;

    fn from_str(s: &str) -> Result<ConferenceId, DirectoryError> {
        let reason = if s.is_empty() {
            "is empty"
        } else if !s.bytes().all(|b| b.is_ascii_digit()) {
            "must be digits only (0-9)"
        } else if s.len() > ID_MAX_DIGITS {
            "must be at most 20 digits"
        } else {
            return Ok(ConferenceId(s.to_string()));
        };
        Err(DirectoryError::BadId {
            id: s.to_string(),
            reason,
        })
    }
}

impl fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-conference behaviour. Stored as one INTEGER (0 or 1) column each in `conferences`,
/// so a query or an operator reading the table sees them by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConferenceFlags {
    /// Record the mix from the start (the moderator's key can start it otherwise).
    pub record: bool,
    /// Participants hear hold audio until a moderator joins.
    pub wait_for_moderator: bool,
    /// A joining caller hears how many are already in the conference.
    pub announce_count: bool,
    /// Everyone hears a tone when someone joins or leaves.
    pub join_tones: bool,
}

impl Default for ConferenceFlags {
    /// Recording and waiting off; count announcement and join tones on.
    fn default() -> ConferenceFlags {
        ConferenceFlags {
            record: false,
            wait_for_moderator: false,
            announce_count: true,
            join_tones: true,
        }
    }
}

/// What `Directory::create` needs: the PINs in clear, hashed before they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSpec {
    /// The ID callers key in.
    pub id: ConferenceId,
    /// A label for operators (at most 100 characters, no control characters).
    pub name: Option<String>,
    /// Participants' PIN, 3-12 digits.
    pub pin: Option<String>,
    /// Moderator PIN, 3-12 digits, different from `pin`.
    pub moderator_pin: Option<String>,
    /// Most participants at once (1-100,000); none means the server's limits only.
    pub max_participants: Option<u32>,
    /// Behaviour flags.
    pub flags: ConferenceFlags,
}

impl ConferenceSpec {
    /// A conference with this ID, no name, no PINs, no limit and default flags.
    #[cfg(test)]
    pub fn new(id: ConferenceId) -> ConferenceSpec {
        ConferenceSpec {
            id,
            name: None,
            pin: None,
            moderator_pin: None,
            max_participants: None,
            flags: ConferenceFlags::default(),
        }
    }

    /// Checks everything but uniqueness: the name, the limit, both PINs' format, and that
    /// the two PINs differ. `Directory::create` checks it too.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        if let Some(p) = &self.pin {
            super::pin::validate(PinKind::Participant, p)?;
        }
        if let Some(p) = &self.moderator_pin {
            super::pin::validate(PinKind::Moderator, p)?;
        }
        if let Some(name) = &self.name {
            if name.chars().count() > NAME_MAX_CHARS {
                return Err(DirectoryError::BadName("must be at most 100 characters"));
            }
            if name.chars().any(char::is_control) {
                return Err(DirectoryError::BadName(
                    "must not contain control characters",
                ));
            }
        }
        if let Some(max) = self.max_participants
            && !(1..=MAX_PARTICIPANTS_LIMIT).contains(&max)
        {
            return Err(DirectoryError::BadMax(max));
        }
        if self.pin.is_some() && self.pin == self.moderator_pin {
            return Err(DirectoryError::SamePins);
        }
        Ok(())
    }
}

/// A stored conference. The PIN hashes stay in the database: only whether each is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// Its ID.
    pub id: ConferenceId,
    /// Its label, if any.
    pub name: Option<String>,
    /// A participant PIN is set.
    pub has_pin: bool,
    /// A moderator PIN is set.
    pub has_moderator_pin: bool,
    /// Most participants at once, if limited.
    pub max_participants: Option<u32>,
    /// Behaviour flags.
    pub flags: ConferenceFlags,
    /// When it was created.
    pub created_at: UnixMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_1_to_20_digits() {
        for good in ["0", "007", "12345678901234567890"] {
            assert_eq!(good.parse::<ConferenceId>().unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("", "empty"),
            ("123456789012345678901", "at most 20"),
            ("12a", "digits only"),
            ("-1", "digits only"),
            ("12 3", "digits only"),
            ("٣", "digits only"),
        ] {
            let e = bad.parse::<ConferenceId>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn spec_validation() {
        let id: ConferenceId = "1".parse().unwrap();
        let mut s = ConferenceSpec::new(id);
        assert!(s.validate().is_ok());
        s.max_participants = Some(0);
        assert!(matches!(s.validate(), Err(DirectoryError::BadMax(0))));
        s.max_participants = Some(10);
        s.name = Some("x".repeat(101));
        assert!(matches!(s.validate(), Err(DirectoryError::BadName(_))));
        s.name = Some("line\nbreak".into());
        assert!(matches!(s.validate(), Err(DirectoryError::BadName(_))));
        s.name = Some("Weekly sync".into());
        s.pin = Some("1234".into());
        s.moderator_pin = Some("1234".into());
        assert!(matches!(s.validate(), Err(DirectoryError::SamePins)));
        s.moderator_pin = Some("4321".into());
        assert!(s.validate().is_ok());
        s.moderator_pin = Some("43".into());
        assert!(matches!(s.validate(), Err(DirectoryError::BadPin { .. })));
    }
}
