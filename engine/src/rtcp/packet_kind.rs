//! Demultiplexing STUN, DTLS, RTP and RTCP on one port (RFC 7983, RFC 5761 section 4).

/// What a datagram received on a multiplexed port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// RTP: first byte 128-191 (version 2) and a second byte outside 192-223.
    Rtp,
    /// RTCP: first byte 128-191 (version 2) and a second byte (packet type) in 192-223.
    Rtcp,
    /// STUN: first byte 0-3.
    Stun,
    /// DTLS: first byte 20-63.
    Dtls,
    /// Anything else: empty, ZRTP (16-19), TURN channel data (64-79), or unassigned.
    Unknown,
}

/// Classifies a datagram by its first bytes.
///
/// RFC 7983 section 7 splits on the first byte. Within 128-191, RFC 5761 section 4 tells
/// RTCP from RTP by the second byte: RTCP packet types 192-223 (200-206 and the reserved
/// rest of the range) collide only with RTP payload types 64-95 with the marker bit set,
/// which a multiplexing endpoint must not use.
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf {
        [0..=3, ..] => PacketKind::Stun,
        [20..=63, ..] => PacketKind::Dtls,
        [128..=191, 192..=223, ..] => PacketKind::Rtcp,
        [128..=191, _, ..] => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_and_second_byte() {
        for b0 in 0..=u8::MAX {
            for b1 in 0..=u8::MAX {
                let kind = classify(&[b0, b1]);
                let want = match b0 {
                    0..=3 => PacketKind::Stun,
                    20..=63 => PacketKind::Dtls,
                    128..=191 if (192..=223).contains(&b1) => PacketKind::Rtcp,
                    128..=191 => PacketKind::Rtp,
                    _ => PacketKind::Unknown,
                };
                assert_eq!(kind, want, "{b0} {b1}");
            }
        }
    }

    #[test]
    fn real_packets_and_short_input() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
        assert_eq!(classify(&[0x00, 0x01, 0x00, 0x00]), PacketKind::Stun); // binding request
        assert_eq!(classify(&[22, 0xfe, 0xfd]), PacketKind::Dtls); // handshake record
        assert_eq!(classify(&[0x80, 0x6f]), PacketKind::Rtp); // PT 111
        assert_eq!(classify(&[0x80, 0xc0]), PacketKind::Rtcp); // PT 64 + marker: avoided
        assert_eq!(classify(&[0x80, 0xdf]), PacketKind::Rtcp); // PT 95 + marker: avoided
        assert_eq!(classify(&[0x80, 0xe0]), PacketKind::Rtp); // PT 96 + marker
        assert_eq!(classify(&[0x80, 0xbf]), PacketKind::Rtp); // PT 63 + marker
        assert_eq!(classify(&[0x81, 200, 0, 6]), PacketKind::Rtcp); // SR
        assert_eq!(classify(&[0x8f, 206]), PacketKind::Rtcp); // PSFB
        assert_eq!(classify(&[0x40, 0x00]), PacketKind::Unknown); // TURN channel
        assert_eq!(classify(&[0x10, 0x00]), PacketKind::Unknown); // ZRTP
    }
}
