//! The synchronization source identifier.

use std::fmt;

/// An RTP synchronization or contributing source identifier (RFC 3550 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

impl From<u32> for Ssrc {
    fn from(v: u32) -> Self {
        Ssrc(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_hex() {
        assert_eq!(Ssrc(0x1234).to_string(), "0x00001234");
        assert_eq!(Ssrc::from(7), Ssrc(7));
    }
}
