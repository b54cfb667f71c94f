//! The little of the RTP header SRTP needs (RFC 3550 §5.1, §5.3.1).
//!
//! Kept private to SRTP on purpose: the full RTP parser lives in `crate::rtp`.

use super::error::SrtpError;

/// Fixed RTP header length in bytes.
const FIXED_HEADER_LEN: usize = 12;

/// The fields of an RTP header that SRTP processing depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    /// Header length in bytes including CSRCs and the header extension:
    /// SRTP encrypts from here on.
    pub(crate) len: usize,
    /// Sequence number.
    pub(crate) seq: u16,
    /// Synchronization source.
    pub(crate) ssrc: u32,
}

impl RtpHeader {
    /// Parses the header at the start of `packet`. Fails with `Malformed` if
    /// `packet` is shorter than 12 bytes, is not version 2, or its CSRC list
    /// or extension runs past its end.
    pub(crate) fn parse(packet: &[u8]) -> Result<Self, SrtpError> {
        let fixed: &[u8; FIXED_HEADER_LEN] = packet
            .get(..FIXED_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(SrtpError::Malformed)?;
        if fixed[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let has_extension = fixed[0] & 0x10 != 0;
        let mut len = FIXED_HEADER_LEN + 4 * csrc_count;
        if has_extension {
            let ext: &[u8; 4] = packet
                .get(len..len + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or(SrtpError::Malformed)?;
            let ext_words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            len += 4 + 4 * ext_words;
        }
        if len > packet.len() {
            return Err(SrtpError::Malformed);
        }
        Ok(RtpHeader {
            len,
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header() {
        let p = [
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab,
        ];
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                len: 12,
                seq: 0x1234,
                ssrc: 0xcafe_babe
            }
        );
        assert_eq!(RtpHeader::parse(&p[..12]).unwrap().len, 12);
    }

    #[test]
    fn csrcs_and_extension() {
        let mut p = vec![0x92, 0x0f, 0x12, 0x35, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe];
        p.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02]); // extension, two words
        p.extend_from_slice(&[0x10, 0xff, 0, 0, 0, 0, 0, 0]);
        assert_eq!(RtpHeader::parse(&p).unwrap().len, 12 + 8 + 4 + 8);
        // Every truncation that cuts into the header is malformed.
        for cut in 0..p.len() {
            assert_eq!(
                RtpHeader::parse(&p[..cut]),
                Err(SrtpError::Malformed),
                "{cut}"
            );
        }
    }

    #[test]
    fn wrong_version() {
        let mut p = [0u8; 12];
        for version in [0u8, 1, 3] {
            p[0] = version << 6;
            assert_eq!(RtpHeader::parse(&p), Err(SrtpError::Malformed));
        }
    }
}
