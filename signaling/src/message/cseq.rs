//! The CSeq header (RFC 3261 section 20.16).

use std::fmt;

use super::method::Method;

/// Sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2**31 when generated, up to 2**32-1 when received.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`; `None` when the number exceeds 2**32-1 (RFC 4475 scalar02).
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut parts = s.split_whitespace();
        let (num, method, extra) = (parts.next()?, parts.next()?, parts.next());
        if extra.is_some() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(CSeq {
            seq: num.parse().ok()?,
            method: Method::parse(method)?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_range() {
        let c = CSeq::parse("0009 INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert_eq!(c.to_string(), "9 INVITE");
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("4294967296 ACK").is_none());
        assert!(CSeq::parse("-1 ACK").is_none());
        assert!(CSeq::parse("1").is_none());
    }
}
