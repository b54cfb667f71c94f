//! Connection data: the `c=` line (RFC 8866 section 5.7), also the address part of `o=` and
//! of `a=rtcp:`.

use std::fmt;
use std::net::IpAddr;

/// The address type of a connection address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddressType {
    /// The SDP token, `IP4` or `IP6`.
    pub fn token(self) -> &'static str {
        match self {
            AddressType::Ip4 => "IP4",
            AddressType::Ip6 => "IP6",
        }
    }

    fn parse(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("IP4") {
            Some(AddressType::Ip4)
        } else if token.eq_ignore_ascii_case("IP6") {
            Some(AddressType::Ip6)
        } else {
            None
        }
    }
}

/// `IN <IP4|IP6> <address>`. The address is kept as written (it may be a host name or carry a
/// multicast `/ttl`); [`Connection::ip`] gives it typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// IPv4 or IPv6.
    pub address_type: AddressType,
    /// The address as written.
    pub address: String,
}

impl Connection {
    /// The connection for one unicast address.
    pub fn from_ip(ip: IpAddr) -> Self {
        let address_type = match ip {
            IpAddr::V4(_) => AddressType::Ip4,
            IpAddr::V6(_) => AddressType::Ip6,
        };
        Connection {
            address_type,
            address: ip.to_string(),
        }
    }

    /// Parses `IN IP4 192.0.2.1` (the network type `IN` is required, case-insensitively).
    /// `None` when the fields are missing or unknown.
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split_ascii_whitespace();
        let net = fields.next()?;
        let address_type = AddressType::parse(fields.next()?)?;
        let address = fields.next()?;
        if !net.eq_ignore_ascii_case("IN") || fields.next().is_some() {
            return None;
        }
        Some(Connection {
            address_type,
            address: address.to_owned(),
        })
    }

    /// The address as an IP, without any multicast `/ttl` suffix; `None` for host names or
    /// an address that does not match its type.
    pub fn ip(&self) -> Option<IpAddr> {
        let bare = self.address.split('/').next().unwrap_or_default();
        let ip: IpAddr = bare.parse().ok()?;
        match (self.address_type, ip) {
            (AddressType::Ip4, IpAddr::V4(_)) | (AddressType::Ip6, IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }

    /// Whether this is the RFC 2543 hold address (`0.0.0.0`, or `::`).
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.address_type.token(), self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_ipv6_and_multicast() {
        let c = Connection::parse("IN IP4 192.0.2.10").unwrap();
        assert_eq!(c.ip(), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(c.to_string(), "IN IP4 192.0.2.10");
        let c = Connection::parse("IN IP6 2001:db8::1").unwrap();
        assert_eq!(c.ip(), Some("2001:db8::1".parse().unwrap()));
        let c = Connection::parse("IN IP4 224.2.1.1/127").unwrap();
        assert_eq!(c.ip(), Some("224.2.1.1".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_and_flags_hold() {
        assert!(Connection::parse("IN IP4").is_none());
        assert!(Connection::parse("ATM NSAP 1").is_none());
        assert!(Connection::parse("IN IP4 1.2.3.4 extra").is_none());
        assert_eq!(Connection::parse("IN IP6 1.2.3.4").unwrap().ip(), None);
        assert!(Connection::parse("IN IP4 0.0.0.0").unwrap().is_hold());
        assert!(!Connection::parse("IN IP4 10.0.0.1").unwrap().is_hold());
    }
}
