//! `a=rtcp:<port> [IN <IP4|IP6> <address>]` (RFC 3605).

use std::fmt;

use super::connection::Connection;
use super::error::SdpError;

/// Where the RTCP of a stream goes when it is not RTP's port plus one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the media's `c=`.
    pub connection: Option<Connection>,
}

impl RtcpAttribute {
    /// Parses the value after `a=rtcp:`.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let bad = SdpError::BadAttribute("rtcp");
        let value = value.trim();
        let (port, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let port = port.parse().map_err(|_| bad.clone())?;
        let rest = rest.trim();
        let connection = if rest.is_empty() {
            None
        } else {
            Some(Connection::parse(rest).ok_or(bad)?)
        };
        Ok(RtcpAttribute { port, connection })
    }
}

impl fmt::Display for RtcpAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        match &self.connection {
            Some(c) => write!(f, " {c}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_and_address() {
        let r = RtcpAttribute::parse("53020").unwrap();
        assert_eq!((r.port, r.connection), (53_020, None));
        let r = RtcpAttribute::parse("53020 IN IP4 126.16.64.4").unwrap();
        assert_eq!(r.connection.unwrap().address, "126.16.64.4");
        assert!(RtcpAttribute::parse("70000").is_err());
        assert!(RtcpAttribute::parse("5 IN").is_err());
        assert_eq!(
            RtcpAttribute::parse("9 IN IP6 ::1").unwrap().to_string(),
            "9 IN IP6 ::1"
        );
    }
}
