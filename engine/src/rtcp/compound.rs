//! Iterating the packets of a compound RTCP packet (RFC 3550 section 6.1, RFC 5506).

use crate::rtcp::header::frame;
use crate::rtcp::{PT_RR, PT_SR, RtcpError, RtcpHeader, RtcpPacket};

/// The packets of one compound RTCP datagram, in order.
///
/// A packet whose length field does not fit what is left (or a bad header) ends the
/// iteration with one `Err`: nothing after it can be framed. A well-framed packet whose body
/// is malformed yields an `Err` and the iteration goes on with the next packet. Unknown
/// packet types come out as [`RtcpPacket::Unknown`]. Reduced-size RTCP (RFC 5506) is accepted:
/// the first packet need not be a report; [`Compound::starts_with_report`] tells whether it is.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    buf: &'a [u8],
    rest: &'a [u8],
    started: bool,
    done: bool,
}

impl<'a> Compound<'a> {
    /// Iterates the packets of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            rest: buf,
            started: false,
            done: false,
        }
    }

    /// Whether the first packet is an SR or RR, as RFC 3550 section 6.1 requires of a full
    /// compound packet; a reduced-size one (RFC 5506) may start with anything.
    pub fn starts_with_report(&self) -> bool {
        RtcpHeader::parse(self.buf).is_ok_and(|h| h.pt == PT_SR || h.pt == PT_RR)
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.buf.len() - self.rest.len()
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || (self.started && self.rest.is_empty()) {
            return None;
        }
        self.started = true;
        match frame(self.rest) {
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(f) => {
                self.rest = self.rest.get(f.packet.len()..).unwrap_or(&[]);
                Some(RtcpPacket::from_frame(&f))
            }
        }
    }
}

impl std::iter::FusedIterator for Compound<'_> {}

/// Iterates the packets of one compound (or reduced-size) RTCP datagram: the single entry
/// point for the runtime and for fuzzing. An empty buffer yields one `Err`.
pub fn parse_rtcp_compound(buf: &[u8]) -> Compound<'_> {
    Compound::new(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{CompoundBuilder, Goodbye, Pli, ReceiverReport, SourceDescription};
    use crate::rtp::Ssrc;

    fn compound() -> ([u8; 256], usize) {
        let mut buf = [0u8; 256];
        let mut b = CompoundBuilder::new(&mut buf);
        b.append(|o| ReceiverReport::write(o, Ssrc(1), &[]))
            .unwrap()
            .append(|o| SourceDescription::write_cname(o, Ssrc(1), b"cname"))
            .unwrap()
            .append(|o| {
                Pli {
                    sender_ssrc: Ssrc(1),
                    media_ssrc: Ssrc(2),
                }
                .write(o)
            })
            .unwrap()
            .append(|o| Goodbye::write(o, &[Ssrc(1)], None))
            .unwrap();
        let n = b.len();
        (buf, n)
    }

    #[test]
    fn iterates_every_packet() {
        let (buf, n) = compound();
        let c = parse_rtcp_compound(&buf[..n]);
        assert!(c.starts_with_report());
        let pts: Vec<_> = c.map(|p| p.unwrap().pt()).collect();
        assert_eq!(pts, vec![201, 202, 206, 203]);
    }

    #[test]
    fn reduced_size_is_accepted_and_flagged() {
        let (buf, n) = compound();
        // Skip the RR: starts with SDES.
        let c = parse_rtcp_compound(&buf[8..n]);
        assert!(!c.starts_with_report());
        assert_eq!(c.filter(Result::is_ok).count(), 3);
    }

    #[test]
    fn bad_length_stops_with_one_error() {
        let (mut buf, n) = compound();
        // Make the SDES claim more words than remain.
        buf[8 + 3] = 60;
        let items: Vec<_> = parse_rtcp_compound(&buf[..n]).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1],
            Err(RtcpError::LengthOverrun {
                declared: 244,
                available: n - 8
            })
        );
        // Trailing bytes too short for a header.
        let items: Vec<_> = parse_rtcp_compound(&buf[..10]).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Err(RtcpError::HeaderTruncated { len: 2 }));
    }

    #[test]
    fn malformed_body_is_reported_and_skipped() {
        let (mut buf, n) = compound();
        // The PLI (after the 8-byte RR and 16-byte SDES) gets FMT 4: a FIR with an empty
        // FCI, malformed.
        assert_eq!(&buf[24..26], &[0x81, 206]);
        buf[24] = 0x84;
        let items: Vec<_> = parse_rtcp_compound(&buf[..n]).collect();
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[2],
            Err(RtcpError::FciLength {
                pt: 206,
                fmt: 4,
                len: 0
            })
        );
        assert!(matches!(items[3], Ok(RtcpPacket::Goodbye(_))));
    }

    #[test]
    fn unknown_types_are_skipped_not_errors() {
        let mut buf = [0u8; 64];
        let mut b = CompoundBuilder::new(&mut buf);
        b.append(|o| {
            o.get_mut(..8)
                .ok_or(RtcpError::BufferTooSmall { need: 8, have: 0 })?
                .copy_from_slice(&[0x80, 195, 0, 1, 1, 2, 3, 4]);
            Ok(8)
        })
        .unwrap()
        .append(|o| ReceiverReport::write(o, Ssrc(3), &[]))
        .unwrap();
        let n = b.len();
        let items: Vec<_> = parse_rtcp_compound(&buf[..n]).collect();
        assert!(matches!(items[0], Ok(RtcpPacket::Unknown { pt: 195, .. })));
        assert!(matches!(items[1], Ok(RtcpPacket::ReceiverReport(_))));
    }

    #[test]
    fn empty_and_bad_version() {
        let items: Vec<_> = parse_rtcp_compound(&[]).collect();
        assert_eq!(items, vec![Err(RtcpError::HeaderTruncated { len: 0 })]);
        let items: Vec<_> = parse_rtcp_compound(&[0x00, 200, 0, 0]).collect();
        assert_eq!(items, vec![Err(RtcpError::BadVersion(0))]);
        let mut c = parse_rtcp_compound(&[0x80, 201, 0, 1, 0, 0, 0, 1]);
        assert!(c.next().unwrap().is_ok());
        assert_eq!(c.offset(), 8);
        assert!(c.next().is_none());
    }
}
