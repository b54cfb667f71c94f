//! The origin line, `o=` (RFC 8866 section 5.2), and our own session's version counter.

use std::fmt;

use super::connection::Connection;

/// `o=<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// User name, `-` when there is none.
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; increases with every change of the description.
    pub session_version: u64,
    /// Network and address of the originator.
    pub connection: Connection,
}

impl Origin {
    /// Parses the value of an `o=` line; `None` when a field is missing or not numeric.
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split_ascii_whitespace();
        let username = fields.next()?.to_owned();
        let session_id = fields.next()?.parse().ok()?;
        let session_version = fields.next()?.parse().ok()?;
        let rest: Vec<&str> = fields.collect();
        let connection = Connection::parse(&rest.join(" "))?;
        Some(Origin {
            username,
            session_id,
            session_version,
            connection,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.username, self.session_id, self.session_version, self.connection
        )
    }
}

/// The version of our side's session description: RFC 3264 section 8 wants it increased by
/// one with every new offer or answer of the same session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionVersion(pub u64);

impl SessionVersion {
    /// The version after this one (wrapping, which no real session reaches).
    pub fn next(self) -> Self {
        SessionVersion(self.0.wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let o = Origin::parse("- 1234 5678 IN IP4 192.0.2.1").unwrap();
        assert_eq!(o.username, "-");
        assert_eq!(o.session_id, 1234);
        assert_eq!(o.session_version, 5678);
        assert_eq!(o.to_string(), "- 1234 5678 IN IP4 192.0.2.1");
    }

    #[test]
    fn rejects_missing_or_non_numeric_fields() {
        assert!(Origin::parse("- 1234 IN IP4 192.0.2.1").is_none());
        assert!(Origin::parse("- x 1 IN IP4 192.0.2.1").is_none());
        assert!(Origin::parse("").is_none());
    }

    #[test]
    fn version_increments() {
        assert_eq!(SessionVersion(7).next(), SessionVersion(8));
        assert_eq!(SessionVersion(u64::MAX).next(), SessionVersion(0));
    }
}
