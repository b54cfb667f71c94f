//! One Via header element (RFC 3261 section 20.42), RFC 3581 rport included.

use super::header::{find_unquoted, is_token};
use super::param::{self, Param, parse_header_params};
use super::uri::split_hostport;

/// RFC 3261 section 8.1.1.7 magic cookie that starts an RFC 3261 branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// `SIP/2.0/<transport> <sent-by>;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, e.g. `SIP/2.0`, whitespace removed.
    pub protocol: String,
    /// Transport token as received (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or unknown).
    pub transport: String,
    /// Sent-by host (IPv6 in brackets).
    pub host: String,
    /// Sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl...).
    pub params: Vec<Param>,
}

impl Via {
    /// Parses one element, allowing LWS around `/`, `;` and `=` (RFC 4475 wsinv).
    pub fn parse(s: &str) -> Option<Via> {
        let end = find_unquoted(s, ';').unwrap_or(s.len());
        let (head, params) = s.split_at(end);
        let mut parts = head.splitn(3, '/');
        let (name, version, rest) = (parts.next()?.trim(), parts.next()?.trim(), parts.next()?);
        let rest = rest.trim();
        let split = rest.find(char::is_whitespace)?;
        let (transport, sent_by) = (&rest[..split], rest[split..].trim()); // INVARIANT: split is a char boundary.
        if !is_token(name) || !is_token(version) || !is_token(transport) {
            return None;
        }
        let (host, port) = split_hostport(sent_by)?;
        Some(Via {
            protocol: format!("{name}/{version}"),
            transport: transport.to_owned(),
            host: host.to_owned(),
            port,
            params: parse_header_params(params)?,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        param::value(&self.params, "branch")
    }

    /// Whether the branch follows RFC 3261 (magic cookie plus something unique). A branch that
    /// is only the cookie (RFC 4475 badbranch) or missing (RFC 2543) means transactions are
    /// matched the RFC 2543 way (section 17.2.3).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| {
            b.len() > BRANCH_MAGIC_COOKIE.len() && b.starts_with(BRANCH_MAGIC_COOKIE)
        })
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&str> {
        param::value(&self.params, "received")
    }

    /// RFC 3581 rport: `Some(None)` when requested without value, `Some(Some(port))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        param::find(&self.params, "rport").map(|p| p.value.as_deref().and_then(|v| v.parse().ok()))
    }

    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&str> {
        param::value(&self.params, "maddr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_everywhere() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.host, "spindle.example.com");
        assert!(v.has_rfc3261_branch());
    }

    #[test]
    fn rport_received_and_errors() {
        let v = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5060;rport=1234;received=192.0.2.1").unwrap();
        assert_eq!(v.rport(), Some(Some(1234)));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(v.host, "[2001:db8::9]");
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_none());
        assert!(Via::parse("SIP/2.0/UDP").is_none());
        assert!(Via::parse("").is_none());
    }
}
