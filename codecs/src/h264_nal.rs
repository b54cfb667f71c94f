//! H.264 NAL unit and RTP payload structure types (ITU-T H.264 Table 7-1, RFC 6184 section
//! 5.4): the numbers both the SFU's payload classification and the load generator's
//! packetizer read, kept here (outside the `h264` feature) so they are written once.

/// NAL unit type: coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type: coded slice of an IDR picture (a key frame).
pub const NAL_IDR: u8 = 5;
/// NAL unit type: supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type: sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type: picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type: access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// Payload structure type: single-time aggregation packet (RFC 6184 section 5.7.1).
pub const STAP_A: u8 = 24;
/// Payload structure type: single-time aggregation packet with DON (interleaved mode only).
pub const STAP_B: u8 = 25;
/// Payload structure type: multi-time aggregation packet, 16-bit offsets (interleaved mode).
pub const MTAP16: u8 = 26;
/// Payload structure type: multi-time aggregation packet, 24-bit offsets (interleaved mode).
pub const MTAP24: u8 = 27;
/// Payload structure type: fragmentation unit A (RFC 6184 section 5.8).
pub const FU_A: u8 = 28;
/// Payload structure type: fragmentation unit B (interleaved mode only).
pub const FU_B: u8 = 29;

/// The NAL unit type of a NAL unit header byte (its low 5 bits); also the payload structure
/// type of an RTP payload's first byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1F
}
