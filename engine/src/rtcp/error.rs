//! The RTCP module's error enum.

use crate::rtp::cursor::Overflow;

/// Why an RTCP packet could not be parsed or written.
///
/// Parse variants describe malformed input (drop the packet and count it); write variants
/// describe misuse by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer than the 4 bytes of a common header are left.
    #[error("{len} bytes left, too short for an RTCP header")]
    HeaderTruncated {
        /// Bytes left.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The length field declares more bytes than the buffer holds.
    #[error("length field declares {declared} bytes, {available} available")]
    LengthOverrun {
        /// Packet bytes declared by the length field.
        declared: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A single-packet parse got a buffer whose length differs from the length field's.
    #[error("length field declares {declared} bytes, buffer has {actual}")]
    LengthMismatch {
        /// Packet bytes declared by the length field.
        declared: usize,
        /// Bytes in the buffer.
        actual: usize,
    },
    /// The P bit is set but the padding count (last octet) is zero.
    #[error("padding bit set with a zero padding count")]
    ZeroPadding,
    /// The padding count exceeds the packet's body.
    #[error("padding of {pad} bytes overruns the {available}-byte body")]
    PaddingOverrun {
        /// The padding count octet.
        pad: u8,
        /// Bytes after the common header, padding included.
        available: usize,
    },
    /// A packet type's parser was handed a packet of another type or format.
    #[error("packet type {pt} format {fmt} is not the one this parser reads")]
    WrongPacketType {
        /// The packet type found.
        pt: u8,
        /// The count/format field found.
        fmt: u8,
    },
    /// The body is shorter than the fixed fields and the count field require.
    #[error("packet type {pt} needs {need} body bytes, has {have}")]
    BodyTruncated {
        /// The packet type.
        pt: u8,
        /// Body bytes required.
        need: usize,
        /// Body bytes present.
        have: usize,
    },
    /// An SDES chunk (SSRC, items, terminating null and padding) runs past the packet.
    #[error("SDES chunk {chunk} runs past the end of the packet")]
    SdesChunkTruncated {
        /// Index of the chunk.
        chunk: usize,
    },
    /// An SDES item of type 0 (which ends a chunk) was given to the writer.
    #[error("SDES item type 0 is reserved for the end of a chunk")]
    SdesEndItem,
    /// Bytes are left after the SDES chunks the source count declares.
    #[error("{trailing} bytes after the {chunks} SDES chunks declared")]
    SdesTrailingBytes {
        /// The source count.
        chunks: u8,
        /// Bytes left over.
        trailing: usize,
    },
    /// The BYE reason's length octet runs past the packet.
    #[error("BYE reason of {len} bytes overruns the {available} bytes left")]
    ByeReasonOverrun {
        /// The length octet.
        len: usize,
        /// Bytes after the length octet.
        available: usize,
    },
    /// A feedback packet's FCI is not a whole, allowed number of entries.
    #[error("feedback PT {pt} FMT {fmt} has an FCI of {len} bytes")]
    FciLength {
        /// The packet type.
        pt: u8,
        /// The feedback message type.
        fmt: u8,
        /// FCI bytes.
        len: usize,
    },
    /// A PSFB FMT 15 packet does not carry the "REMB" unique identifier.
    #[error("application layer feedback is not REMB")]
    NotRemb,
    /// A REMB declares more SSRCs than its FCI holds.
    #[error("REMB declares {declared} SSRCs, room for {available}")]
    RembSsrcOverrun {
        /// The Num SSRC field.
        declared: u8,
        /// SSRCs that fit in the FCI.
        available: usize,
    },
    /// Transport-wide CC status chunks run out before the packet status count is covered.
    #[error("TWCC chunks cover {covered} of {status_count} statuses")]
    TwccChunksTruncated {
        /// The packet status count.
        status_count: u16,
        /// Statuses the chunks present cover.
        covered: usize,
    },
    /// A transport-wide CC status chunk uses the reserved symbol 0b11.
    #[error("TWCC status chunk uses the reserved symbol")]
    TwccReservedSymbol,
    /// Transport-wide CC receive deltas run past the FCI.
    #[error("TWCC receive deltas need {need} bytes, {have} left")]
    TwccDeltasTruncated {
        /// Delta bytes the statuses require.
        need: usize,
        /// Bytes left after the chunks.
        have: usize,
    },
    /// The output buffer is too small for what is being written.
    #[error("output buffer of {have} bytes is too small, need at least {need}")]
    BufferTooSmall {
        /// Bytes needed at least.
        need: usize,
        /// Bytes in the buffer.
        have: usize,
    },
    /// More items than the packet's count field (or a per-packet limit) can carry.
    #[error("{got} items, at most {max} fit")]
    TooManyItems {
        /// The limit.
        max: usize,
        /// Items given.
        got: usize,
    },
    /// A length-prefixed text (SDES item, BYE reason) longer than 255 bytes.
    #[error("text of {len} bytes exceeds the 255-byte length octet")]
    TextTooLong {
        /// Bytes given.
        len: usize,
    },
    /// The packet would exceed the 16-bit length field.
    #[error("packet of {len} bytes exceeds the length field")]
    PacketTooLong {
        /// Bytes the packet would take.
        len: usize,
    },
    /// An APP subtype above 31.
    #[error("APP subtype {0} does not fit in 5 bits")]
    AppSubtype(u8),
    /// APP data that is not a multiple of 4 bytes.
    #[error("APP data of {0} bytes is not a multiple of 4")]
    AppDataUnaligned(usize),
    /// A generic NACK, FIR or TWCC feedback was asked for with nothing to report.
    #[error("feedback with no entries")]
    EmptyFeedback,
    /// TWCC arrivals not in strictly increasing sequence order from the base.
    #[error("TWCC arrival {index} is not after the previous one")]
    TwccUnordered {
        /// Index into the arrivals given.
        index: usize,
    },
    /// A TWCC receive delta does not fit the 16-bit signed large delta.
    #[error("TWCC delta of {delta_ticks} ticks for seq {seq} does not fit 16 bits")]
    TwccDeltaOutOfRange {
        /// The sequence number whose delta overflows.
        seq: u16,
        /// The delta in 250 us ticks.
        delta_ticks: i64,
    },
}

impl From<Overflow> for RtcpError {
    fn from(o: Overflow) -> Self {
        RtcpError::BufferTooSmall {
            need: o.need,
            have: o.have,
        }
    }
}
