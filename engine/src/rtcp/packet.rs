//! One RTCP packet of any type, as the compound parser yields it.

use crate::rtcp::header::{Frame, frame_exact, split_feedback};
use crate::rtcp::remb::is_remb;
use crate::rtcp::{
    App, FMT_AFB, FMT_FIR, FMT_NACK, FMT_PLI, FMT_TWCC, Fir, Goodbye, Nack, PT_APP, PT_BYE,
    PT_PSFB, PT_RR, PT_RTPFB, PT_SDES, PT_SR, Pli, ReceiverReport, Remb, RtcpError, SenderReport,
    SourceDescription, TransportCc,
};

/// A parsed RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report (PT 200).
    SenderReport(SenderReport<'a>),
    /// Receiver report (PT 201).
    ReceiverReport(ReceiverReport<'a>),
    /// Source description (PT 202).
    SourceDescription(SourceDescription<'a>),
    /// Goodbye (PT 203).
    Goodbye(Goodbye<'a>),
    /// Application-defined (PT 204).
    App(App<'a>),
    /// Generic NACK (PT 205, FMT 1).
    Nack(Nack<'a>),
    /// Transport-wide congestion control feedback (PT 205, FMT 15).
    TransportCc(TransportCc<'a>),
    /// Picture loss indication (PT 206, FMT 1).
    Pli(Pli),
    /// Full intra request (PT 206, FMT 4).
    Fir(Fir<'a>),
    /// Receiver estimated maximum bitrate (PT 206, FMT 15, "REMB").
    Remb(Remb<'a>),
    /// A well-framed packet of a type or format this module does not decode (XR, SLI, RPSI,
    /// other application layer feedback...).
    Unknown {
        /// The packet type.
        pt: u8,
        /// The count/format field.
        fmt: u8,
        /// The whole packet, header and padding included.
        packet: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// Parses `buf` as exactly one RTCP packet of any type.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        let f = crate::rtcp::header::frame(buf)?;
        // Re-frame strictly so a buffer with trailing bytes is refused.
        frame_exact(buf, f.header.pt, None)?;
        Self::from_frame(&f)
    }

    pub(crate) fn from_frame(f: &Frame<'a>) -> Result<Self, RtcpError> {
        let fmt = f.header.count;
        Ok(match (f.header.pt, fmt) {
            (PT_SR, _) => RtcpPacket::SenderReport(SenderReport::from_frame(f)?),
            (PT_RR, _) => RtcpPacket::ReceiverReport(ReceiverReport::from_frame(f)?),
            (PT_SDES, _) => RtcpPacket::SourceDescription(SourceDescription::from_frame(f)?),
            (PT_BYE, _) => RtcpPacket::Goodbye(Goodbye::from_frame(f)?),
            (PT_APP, _) => RtcpPacket::App(App::from_frame(f)?),
            (PT_RTPFB, FMT_NACK) => RtcpPacket::Nack(Nack::from_frame(f)?),
            (PT_RTPFB, FMT_TWCC) => RtcpPacket::TransportCc(TransportCc::from_frame(f)?),
            (PT_PSFB, FMT_PLI) => RtcpPacket::Pli(Pli::from_frame(f)?),
            (PT_PSFB, FMT_FIR) => RtcpPacket::Fir(Fir::from_frame(f)?),
            (PT_PSFB, FMT_AFB) if split_feedback(f).is_ok_and(|(_, _, fci)| is_remb(fci)) => {
                RtcpPacket::Remb(Remb::from_frame(f)?)
            }
            (pt, fmt) => RtcpPacket::Unknown {
                pt,
                fmt,
                packet: f.packet,
            },
        })
    }

    /// The packet type.
    pub fn pt(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => PT_SR,
            RtcpPacket::ReceiverReport(_) => PT_RR,
            RtcpPacket::SourceDescription(_) => PT_SDES,
            RtcpPacket::Goodbye(_) => PT_BYE,
            RtcpPacket::App(_) => PT_APP,
            RtcpPacket::Nack(_) | RtcpPacket::TransportCc(_) => PT_RTPFB,
            RtcpPacket::Pli(_) | RtcpPacket::Fir(_) | RtcpPacket::Remb(_) => PT_PSFB,
            RtcpPacket::Unknown { pt, .. } => *pt,
        }
    }

    /// Whether this is a sender or receiver report.
    pub fn is_report(&self) -> bool {
        matches!(
            self,
            RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::Ssrc;

    #[test]
    fn dispatches_on_type_and_format() {
        let mut buf = [0u8; 64];
        let n = Pli {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
        }
        .write(&mut buf)
        .unwrap();
        let p = RtcpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.pt(), PT_PSFB);
        assert!(matches!(p, RtcpPacket::Pli(_)));
        assert!(!p.is_report());

        let n = Remb::write(&mut buf, Ssrc(1), 300_000, &[Ssrc(2)]).unwrap();
        assert!(matches!(
            RtcpPacket::parse(&buf[..n]),
            Ok(RtcpPacket::Remb(_))
        ));
        // Application layer feedback that is not REMB is unknown, not an error.
        buf[12..16].copy_from_slice(b"GOOG");
        assert!(matches!(
            RtcpPacket::parse(&buf[..n]),
            Ok(RtcpPacket::Unknown {
                pt: 206,
                fmt: 15,
                ..
            })
        ));
        // XR (207) and SLI (PSFB FMT 2) are unknown.
        let xr = [0x80, 207, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            RtcpPacket::parse(&xr),
            Ok(RtcpPacket::Unknown {
                pt: 207,
                fmt: 0,
                packet: &xr
            })
        );
        let sli = [0x82, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        assert!(matches!(
            RtcpPacket::parse(&sli),
            Ok(RtcpPacket::Unknown {
                pt: 206,
                fmt: 2,
                ..
            })
        ));
        assert_eq!(
            RtcpPacket::parse(&[0x80, 207, 0, 1, 0, 0, 0, 1, 0]),
            Err(RtcpError::LengthMismatch {
                declared: 8,
                actual: 9
            })
        );
    }

    use crate::rtcp::{
        CompoundBuilder, FirEntry, NtpTime, ReportBlock, SdesItem, SdesType, SenderInfo,
        parse_rtcp_compound,
    };
    use crate::rtp::xorshift::Xorshift;

    /// Reads every field and sub-item of a packet, checking the iterators agree with the
    /// counts parse validated.
    fn walk(p: &RtcpPacket<'_>) -> usize {
        match p {
            RtcpPacket::SenderReport(sr) => {
                sr.report_blocks().count()
                    + sr.profile_extension().len()
                    + sr.info().ssrc.0 as usize
            }
            RtcpPacket::ReceiverReport(rr) => {
                rr.report_blocks()
                    .map(|b| b.jitter_ticks as usize)
                    .sum::<usize>()
                    + rr.profile_extension().len()
            }
            RtcpPacket::SourceDescription(sdes) => sdes
                .chunks()
                .map(|c| {
                    c.items()
                        .map(|i| i.text.len() + usize::from(i.kind.code()))
                        .sum::<usize>()
                })
                .sum(),
            RtcpPacket::Goodbye(bye) => bye.ssrcs().count() + bye.reason().map_or(0, <[u8]>::len),
            RtcpPacket::App(app) => app.data().len() + usize::from(app.subtype()),
            RtcpPacket::Nack(nack) => {
                assert!(nack.entries().len() > 0);
                nack.lost().count()
            }
            RtcpPacket::TransportCc(tcc) => {
                let n = tcc.statuses().count();
                assert_eq!(n, usize::from(tcc.status_count()));
                n + tcc.statuses().filter(|s| s.delta_us.is_some()).count()
            }
            RtcpPacket::Pli(pli) => pli.media_ssrc.0 as usize,
            RtcpPacket::Fir(fir) => fir.entries().count(),
            RtcpPacket::Remb(remb) => remb.ssrcs().count() + (remb.bitrate_bps() % 7) as usize,
            RtcpPacket::Unknown { packet, .. } => packet.len(),
        }
    }

    /// One valid packet of every type, built by the writers.
    fn samples() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        let block = ReportBlock {
            ssrc: Ssrc(9),
            fraction_lost: 1,
            cumulative_lost: -2,
            highest_seq: 3,
            jitter_ticks: 4,
            lsr: 5,
            dlsr: 6,
        };
        let info = SenderInfo {
            ssrc: Ssrc(1),
            ntp: NtpTime(7),
            rtp_timestamp: 8,
            packet_count: 9,
            octet_count: 10,
        };
        let items = [
            SdesItem {
                kind: SdesType::Cname,
                text: b"cname",
            },
            SdesItem {
                kind: SdesType::Tool,
                text: b"t",
            },
        ];
        let mut push =
            |r: Result<usize, RtcpError>, buf: &[u8]| out.push(buf[..r.unwrap()].to_vec());
        push(SenderReport::write(&mut buf, &info, &[block, block]), &buf);
        push(ReceiverReport::write(&mut buf, Ssrc(1), &[block]), &buf);
        push(
            SourceDescription::write(&mut buf, &[(Ssrc(1), &items), (Ssrc(2), &[])]),
            &buf,
        );
        push(
            Goodbye::write(&mut buf, &[Ssrc(1), Ssrc(2)], Some(b"done")),
            &buf,
        );
        push(
            App::write(&mut buf, 3, Ssrc(1), *b"NAME", &[1, 2, 3, 4]),
            &buf,
        );
        push(
            Nack::write(&mut buf, Ssrc(1), Ssrc(2), [1, 3, 40, 41, 65_535]),
            &buf,
        );
        push(
            TransportCc::write(
                &mut buf,
                Ssrc(1),
                Ssrc(2),
                100,
                1,
                &[(100, 1_000), (101, 2_000), (104, 200_000), (130, 150_000)],
            ),
            &buf,
        );
        push(
            Pli {
                sender_ssrc: Ssrc(1),
                media_ssrc: Ssrc(2),
            }
            .write(&mut buf),
            &buf,
        );
        push(
            Fir::write(
                &mut buf,
                Ssrc(1),
                &[FirEntry {
                    ssrc: Ssrc(2),
                    seq_nr: 3,
                }],
            ),
            &buf,
        );
        push(
            Remb::write(&mut buf, Ssrc(1), 1_000_000, &[Ssrc(2), Ssrc(3)]),
            &buf,
        );
        out.push(vec![0x80, 207, 0, 1, 0, 0, 0, 1]);
        out
    }

    /// Every single-type parser on `buf`; none may panic.
    fn parse_each(buf: &[u8]) {
        let _ = SenderReport::parse(buf).map(|p| walk(&RtcpPacket::SenderReport(p)));
        let _ = ReceiverReport::parse(buf).map(|p| walk(&RtcpPacket::ReceiverReport(p)));
        let _ = SourceDescription::parse(buf).map(|p| walk(&RtcpPacket::SourceDescription(p)));
        let _ = Goodbye::parse(buf).map(|p| walk(&RtcpPacket::Goodbye(p)));
        let _ = App::parse(buf).map(|p| walk(&RtcpPacket::App(p)));
        let _ = Nack::parse(buf).map(|p| walk(&RtcpPacket::Nack(p)));
        let _ = TransportCc::parse(buf).map(|p| walk(&RtcpPacket::TransportCc(p)));
        let _ = Pli::parse(buf).map(|p| walk(&RtcpPacket::Pli(p)));
        let _ = Fir::parse(buf).map(|p| walk(&RtcpPacket::Fir(p)));
        let _ = Remb::parse(buf).map(|p| walk(&RtcpPacket::Remb(p)));
        let _ = RtcpPacket::parse(buf).map(|p| walk(&p));
        let mut packets = 0;
        for p in parse_rtcp_compound(buf) {
            packets += 1;
            assert!(packets <= buf.len() / 4 + 1, "compound iteration must end");
            if let Ok(p) = p {
                walk(&p);
            }
        }
    }

    #[test]
    fn every_sample_parses_and_round_trips() {
        for s in samples() {
            let p = RtcpPacket::parse(&s).unwrap();
            walk(&p);
            assert_eq!(parse_rtcp_compound(&s).count(), 1);
        }
    }

    #[test]
    fn survives_truncation_mutation_and_noise() {
        let samples = samples();
        let mut compound = [0u8; 1024];
        let mut b = CompoundBuilder::new(&mut compound);
        for s in &samples {
            b.append(|o| {
                let dst = o.get_mut(..s.len()).ok_or(RtcpError::BufferTooSmall {
                    need: s.len(),
                    have: 0,
                })?;
                dst.copy_from_slice(s);
                Ok(s.len())
            })
            .unwrap();
        }
        let compound = b.as_bytes().to_vec();
        assert_eq!(
            parse_rtcp_compound(&compound).filter(Result::is_ok).count(),
            samples.len()
        );

        let mut rng = Xorshift::new(0x5eed_0002);
        for s in samples.iter().chain([&compound]) {
            for n in 0..=s.len() {
                parse_each(&s[..n]);
            }
            for _ in 0..5_000 {
                let mut m = s.clone();
                rng.mutate(&mut m);
                parse_each(&m);
                let cut = rng.below(m.len() as u64 + 1) as usize;
                parse_each(&m[..cut]);
            }
        }
        let mut buf = [0u8; 96];
        for _ in 0..30_000 {
            let len = rng.below(97) as usize;
            rng.fill(&mut buf[..len]);
            if len >= 4 && rng.chance(80) {
                // Version 2, a known packet type, a length that fits, so parsing goes deep.
                buf[0] = (buf[0] & 0x3f) | 0x80;
                buf[1] = 200 + rng.below(8) as u8;
                buf[2] = 0;
                buf[3] = rng.below(len as u64 / 4 + 1) as u8;
            }
            parse_each(&buf[..len]);
        }
    }
}
