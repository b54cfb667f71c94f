//! The bandwidth line, `b=` (RFC 8866 section 5.8; TIAS from RFC 3890).

use std::fmt;

/// The bandwidth modifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BandwidthKind {
    /// `AS`: application-specific maximum, kilobits per second.
    As,
    /// `CT`: conference total, kilobits per second.
    Ct,
    /// `TIAS`: transport-independent maximum, bits per second (RFC 3890).
    Tias,
    /// Any other modifier, kept as written.
    Other(String),
}

/// `b=<modifier>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bandwidth {
    /// The modifier.
    pub kind: BandwidthKind,
    /// The value, in the modifier's unit.
    pub value: u64,
}

impl Bandwidth {
    /// Parses `AS:64`; `None` without a colon or a number.
    pub fn parse(value: &str) -> Option<Self> {
        let (kind, number) = value.split_once(':')?;
        let value = number.trim().parse().ok()?;
        let kind = match kind.trim() {
            k if k.eq_ignore_ascii_case("AS") => BandwidthKind::As,
            k if k.eq_ignore_ascii_case("CT") => BandwidthKind::Ct,
            k if k.eq_ignore_ascii_case("TIAS") => BandwidthKind::Tias,
            "" => return None,
            k => BandwidthKind::Other(k.to_owned()),
        };
        Some(Bandwidth { kind, value })
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            BandwidthKind::As => "AS",
            BandwidthKind::Ct => "CT",
            BandwidthKind::Tias => "TIAS",
            BandwidthKind::Other(k) => k,
        };
        write!(f, "{kind}:{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_unknown_modifiers() {
        let b = Bandwidth::parse("AS:64").unwrap();
        assert_eq!((b.kind.clone(), b.value), (BandwidthKind::As, 64));
        assert_eq!(
            Bandwidth::parse("TIAS:64000").unwrap().kind,
            BandwidthKind::Tias
        );
        let b = Bandwidth::parse("RR:0").unwrap();
        assert_eq!(b.kind, BandwidthKind::Other("RR".into()));
        assert_eq!(b.to_string(), "RR:0");
        assert!(Bandwidth::parse("AS").is_none());
        assert!(Bandwidth::parse("AS:x").is_none());
    }
}
