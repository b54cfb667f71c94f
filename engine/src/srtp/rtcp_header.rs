//! The little of the RTCP header SRTCP needs (RFC 3550 §6.4, RFC 3711 §3.4).

use super::error::SrtpError;

/// Bytes SRTCP leaves in the clear: the first RTCP header word and the
/// sender SSRC. Encryption starts after them.
pub(crate) const RTCP_CLEAR_LEN: usize = 8;

/// The fields of the first RTCP header that SRTCP depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtcpHeader {
    /// SSRC of the packet sender (bytes 4..8).
    pub(crate) ssrc: u32,
}

impl RtcpHeader {
    /// Parses the start of `packet`: at least 8 bytes, version 2.
    pub(crate) fn parse(packet: &[u8]) -> Result<Self, SrtpError> {
        let clear: &[u8; RTCP_CLEAR_LEN] = packet
            .get(..RTCP_CLEAR_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(SrtpError::Malformed)?;
        if clear[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        Ok(RtcpHeader {
            ssrc: u32::from_be_bytes([clear[4], clear[5], clear[6], clear[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sender_ssrc() {
        let p = [0x80, 0xc8, 0x00, 0x06, 0xca, 0xfe, 0xba, 0xbe];
        assert_eq!(RtcpHeader::parse(&p), Ok(RtcpHeader { ssrc: 0xcafe_babe }));
        for cut in 0..p.len() {
            assert_eq!(RtcpHeader::parse(&p[..cut]), Err(SrtpError::Malformed));
        }
        assert_eq!(
            RtcpHeader::parse(&[0x40, 0xc8, 0, 6, 0, 0, 0, 0]),
            Err(SrtpError::Malformed)
        );
    }
}
