//! The RTP payload type.

use std::fmt;

/// An RTP payload type (RFC 3550 section 5.1): 7 bits on the wire, so valid values are 0-127.
///
/// The field is public so tables can be built in `const` context; writers and setters reject
/// values above [`Pt::MAX`] with an error instead of silently truncating them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pt(pub u8);

impl Pt {
    /// The largest payload type the 7-bit field holds.
    pub const MAX: u8 = 0x7f;

    /// Whether the value fits the 7-bit wire field.
    pub const fn is_valid(self) -> bool {
        self.0 <= Self::MAX
    }
}

impl fmt::Display for Pt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_seven_bits() {
        assert!(Pt(0).is_valid());
        assert!(Pt(127).is_valid());
        assert!(!Pt(128).is_valid());
        assert_eq!(Pt(111).to_string(), "111");
    }
}
