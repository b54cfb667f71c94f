//! The SIP request method, as far as the transaction layer cares.

use std::fmt;

/// A SIP request method (RFC 3261 section 7.1 and the extensions Chorus meets).
///
/// Methods are case-sensitive tokens; anything not listed is kept verbatim in `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// REFER (RFC 3515).
    Refer,
    /// REGISTER (RFC 3261).
    Register,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// MESSAGE (RFC 3428).
    Message,
    /// Any other extension method, spelled as on the wire.
    Other(String),
}

impl Method {
    /// Maps a method token to a `Method`; unknown tokens become `Other`.
    pub fn from_token(token: &str) -> Self {
        match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "REFER" => Self::Refer,
            "REGISTER" => Self::Register,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "MESSAGE" => Self::Message,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Refer => "REFER",
            Self::Register => "REGISTER",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Message => "MESSAGE",
            Self::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for token in [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "INFO",
            "UPDATE",
            "PRACK",
            "REFER",
            "REGISTER",
            "SUBSCRIBE",
            "NOTIFY",
            "MESSAGE",
            "PUBLISH",
        ] {
            assert_eq!(Method::from_token(token).as_str(), token);
        }
        assert_eq!(Method::from_token("invite"), Method::Other("invite".into()));
    }
}
