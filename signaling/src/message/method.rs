//! SIP request methods.

use std::fmt;

use super::header::is_token;

/// A request method: the ones Chorus acts on by name, anything else as an extension token
/// (case-sensitive, RFC 3261 section 7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// OPTIONS.
    Options,
    /// REGISTER.
    Register,
    /// PRACK (RFC 3262).
    Prack,
    /// UPDATE (RFC 3311).
    Update,
    /// INFO (RFC 6086).
    Info,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// Any other token.
    Extension(String),
}

const KNOWN: [(Method, &str); 13] = [
    (Method::Invite, "INVITE"),
    (Method::Ack, "ACK"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Options, "OPTIONS"),
    (Method::Register, "REGISTER"),
    (Method::Prack, "PRACK"),
    (Method::Update, "UPDATE"),
    (Method::Info, "INFO"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Notify, "NOTIFY"),
    (Method::Refer, "REFER"),
    (Method::Message, "MESSAGE"),
];

impl Method {
    /// Parses a method token; `None` when it is not a token.
    pub fn parse(s: &str) -> Option<Method> {
        if !is_token(s) {
            return None;
        }
        Some(
            KNOWN
                .iter()
                .find(|(_, name)| *name == s)
                .map_or_else(|| Method::Extension(s.to_owned()), |(m, _)| m.clone()),
        )
    }

    /// The method as it appears on the wire.
    /// Like [`Method::parse`], but any text that is not a known method becomes an
    /// extension method (for fields already validated elsewhere, such as a parsed CSeq).
    pub fn from_token(token: &str) -> Method {
        Method::parse(token).unwrap_or_else(|| Method::Extension(token.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(s) => s,
            known => KNOWN
                .iter()
                .find(|(m, _)| m == known)
                .map_or("", |(_, name)| name),
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
    fn known_extension_and_invalid() {
        assert_eq!(Method::parse("INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::parse("invite"),
            Some(Method::Extension("invite".into()))
        );
        assert_eq!(
            Method::parse("RE%47IST%45R").unwrap().as_str(),
            "RE%47IST%45R"
        );
        assert!(Method::parse("IN VITE").is_none());
        assert!(Method::parse("").is_none());
        for (m, name) in KNOWN {
            assert_eq!(m.as_str(), name);
        }
    }
}
