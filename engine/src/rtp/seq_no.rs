//! The extended RTP sequence number.

use std::fmt;

/// An extended RTP sequence number: the 16-bit wire value in the low bits and the count of
/// wrap-arounds (cycles) above it, as in RFC 3550 Appendix A.1 and the SRTP index of
/// RFC 3711 section 3.3.1. Produced by [`SeqNoUnwrapper`](crate::rtp::SeqNoUnwrapper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// Builds an extended sequence number from a cycle count and a wire value.
    pub const fn from_parts(cycles: u64, wire: u16) -> Self {
        SeqNo((cycles << 16) | wire as u64)
    }

    /// The 16-bit value carried on the wire.
    pub const fn wire(self) -> u16 {
        // Truncation to the low 16 bits is the point.
        self.0 as u16
    }

    /// How many times the 16-bit wire value has wrapped.
    pub const fn cycles(self) -> u64 {
        self.0 >> 16
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_cycles_and_wire() {
        let s = SeqNo::from_parts(3, 0xfffe);
        assert_eq!(s.0, 3 * 65_536 + 0xfffe);
        assert_eq!(s.wire(), 0xfffe);
        assert_eq!(s.cycles(), 3);
        assert_eq!(s.to_string(), "262142");
    }
}
