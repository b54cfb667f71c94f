//! Fuzzes RTCP compound parsing and every sub-item iterator: report blocks, SDES chunks and
//! items, BYE sources, NACK lost sequence numbers, TWCC statuses, FIR entries, REMB SSRCs.
#![no_main]

use chorus_engine::rtcp::{RtcpPacket, parse_rtcp_compound};
use libfuzzer_sys::fuzz_target;

fn walk(p: &RtcpPacket<'_>) {
    match p {
        RtcpPacket::SenderReport(sr) => {
            std::hint::black_box(sr.info());
            for b in sr.report_blocks() {
                std::hint::black_box(b);
            }
            std::hint::black_box(sr.profile_extension());
        }
        RtcpPacket::ReceiverReport(rr) => {
            for b in rr.report_blocks() {
                std::hint::black_box(b);
            }
        }
        RtcpPacket::SourceDescription(sdes) => {
            for chunk in sdes.chunks() {
                for item in chunk.items() {
                    assert!(item.text.len() <= 255);
                }
            }
        }
        RtcpPacket::Goodbye(bye) => {
            std::hint::black_box(bye.ssrcs().count());
            std::hint::black_box(bye.reason());
        }
        RtcpPacket::App(app) => {
            std::hint::black_box((app.name(), app.data()));
        }
        RtcpPacket::Nack(nack) => {
            assert!(nack.entries().len() > 0);
            let lost = nack.lost().count();
            assert!(lost >= nack.entries().len() && lost <= 17 * nack.entries().len());
        }
        RtcpPacket::TransportCc(tcc) => {
            let mut n = 0usize;
            for s in tcc.statuses() {
                assert_eq!(s.seq, tcc.base_seq().wrapping_add(n as u16));
                n += 1;
            }
            assert_eq!(n, usize::from(tcc.status_count()));
        }
        RtcpPacket::Pli(pli) => {
            std::hint::black_box(pli);
        }
        RtcpPacket::Fir(fir) => {
            assert!(fir.entries().count() > 0);
        }
        RtcpPacket::Remb(remb) => {
            std::hint::black_box((remb.bitrate_bps(), remb.ssrcs().count()));
        }
        RtcpPacket::Unknown { packet, .. } => {
            assert!(packet.len() >= 4 && packet.len() % 4 == 0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut consumed = 0usize;
    for p in parse_rtcp_compound(data) {
        consumed += 1;
        assert!(consumed <= data.len() / 4 + 1);
        if let Ok(p) = p {
            walk(&p);
        }
    }
    if let Ok(p) = RtcpPacket::parse(data) {
        walk(&p);
    }
});
