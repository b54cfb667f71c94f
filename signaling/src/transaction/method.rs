//! The request method the transaction layer keys on: the message layer's [`Method`], so a
//! parsed request's method is used as it is.

pub use crate::message::Method;

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
            "FOO",
        ] {
            assert_eq!(Method::from_token(token).as_str(), token);
        }
        assert_eq!(Method::from_token("INVITE"), Method::Invite);
        // Method names are case-sensitive (RFC 3261 7.1).
        assert_eq!(
            Method::from_token("invite"),
            Method::Extension("invite".into())
        );
    }
}
