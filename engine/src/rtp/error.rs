//! The RTP module's error enum.

use crate::rtp::cursor::Overflow;

/// Why an RTP packet, header extension or audio level could not be parsed or written.
///
/// Parse variants describe malformed input (drop the packet and count it); write variants
/// describe misuse by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The packet is shorter than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte fixed header")]
    HeaderTruncated {
        /// Bytes in the packet.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC list declared by the CC field runs past the end of the packet.
    #[error("{csrc_count} CSRCs do not fit in a {len}-byte packet")]
    CsrcTruncated {
        /// The CC field.
        csrc_count: u8,
        /// Bytes in the packet.
        len: usize,
    },
    /// The X bit is set but the 4-byte extension header does not fit.
    #[error("extension header does not fit in a {len}-byte packet")]
    ExtensionHeaderTruncated {
        /// Bytes in the packet.
        len: usize,
    },
    /// The extension length field runs past the end of the packet.
    #[error("extension of {declared} bytes overruns the {available} bytes left")]
    ExtensionTruncated {
        /// Extension data bytes declared by the length field.
        declared: usize,
        /// Bytes left in the packet after the extension header.
        available: usize,
    },
    /// The P bit is set but the padding count (last octet) is zero.
    #[error("padding bit set with a zero padding count")]
    ZeroPadding,
    /// The padding count exceeds the bytes that follow the header.
    #[error("padding of {pad} bytes overruns the {available} bytes after the header")]
    PaddingOverrun {
        /// The padding count octet.
        pad: u8,
        /// Bytes after the header, padding included.
        available: usize,
    },
    /// A `telephone-event` payload is shorter than one 4-byte event block (RFC 4733 2.3).
    #[error("telephone-event payload of {len} bytes, need 4")]
    TelephoneEventTruncated {
        /// Bytes in the payload.
        len: usize,
    },
    /// The extension profile is neither RFC 8285 one-byte (0xBEDE) nor two-byte (0x100X).
    #[error("unknown header extension profile {0:#06x}")]
    UnknownExtensionProfile(u16),
    /// An extension element runs past the end of the extension block.
    #[error("extension element id {id} of {len} bytes overruns the {available} bytes left")]
    ExtensionElementOverrun {
        /// The element's local identifier.
        id: u8,
        /// Data bytes the element declares (0 when even its length byte is missing).
        len: usize,
        /// Bytes left in the block after the element's header.
        available: usize,
    },
    /// A one-byte-form element with ID 0 (reserved for padding) has a nonzero length.
    #[error("one-byte extension padding byte {0:#04x} is not zero")]
    ExtensionPaddingNotZero(u8),
    /// The output buffer is too small for what is being written.
    #[error("output buffer of {have} bytes is too small, need at least {need}")]
    BufferTooSmall {
        /// Bytes needed at least.
        need: usize,
        /// Bytes in the buffer.
        have: usize,
    },
    /// A payload type above 127 was given to a writer or setter.
    #[error("payload type {0} does not fit in 7 bits")]
    PtOutOfRange(u8),
    /// More than 15 CSRCs were given to the header writer.
    #[error("{0} CSRCs, at most 15 fit")]
    TooManyCsrcs(usize),
    /// An extension element ID is not usable in the chosen form (1-14 one-byte, 1-255 two-byte).
    #[error("extension id {id} is not valid in the chosen form")]
    ExtensionId {
        /// The rejected ID.
        id: u8,
    },
    /// An extension element's data length is not encodable in the chosen form
    /// (1-16 bytes one-byte, 0-255 bytes two-byte).
    #[error("extension id {id} with {len} data bytes is not encodable in the chosen form")]
    ExtensionDataLength {
        /// The element's ID.
        id: u8,
        /// The rejected data length.
        len: usize,
    },
    /// The extension block would exceed the 16-bit length field (65535 words).
    #[error("extension block of {len} bytes exceeds the length field")]
    ExtensionBlockTooLong {
        /// Bytes of element data and padding.
        len: usize,
    },
    /// An audio level element's data is not exactly one byte.
    #[error("audio level element of {0} bytes, expected 1")]
    AudioLevelLength(usize),
    /// An audio level above 127 -dBov was given to the writer.
    #[error("audio level {0} -dBov is above 127")]
    AudioLevelOutOfRange(u8),
    /// A padding count of zero was requested, or the packet to pad is shorter than a header.
    #[error("cannot pad: padding count {pad} on a {len}-byte packet")]
    PaddingRequest {
        /// The requested padding count.
        pad: u8,
        /// The packet length given.
        len: usize,
    },
}

impl From<Overflow> for RtpError {
    fn from(o: Overflow) -> Self {
        RtpError::BufferTooSmall {
            need: o.need,
            have: o.have,
        }
    }
}
