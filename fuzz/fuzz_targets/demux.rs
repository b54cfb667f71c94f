//! Fuzzes the RFC 7983 / RFC 5761 demultiplexer, then the parser it picks.
#![no_main]

use chorus_engine::rtcp::{PacketKind, classify, parse_rtcp_compound};
use chorus_engine::rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    match kind {
        PacketKind::Rtp => {
            if let Ok(p) = RtpPacket::parse(data) {
                std::hint::black_box(p.payload());
            }
        }
        PacketKind::Rtcp => {
            for p in parse_rtcp_compound(data) {
                if p.is_err() {
                    break;
                }
            }
        }
        PacketKind::Stun | PacketKind::Dtls | PacketKind::Unknown => {}
    }
    // Anything either parser accepts is version 2, so it must be classified as RTP or RTCP.
    let rtp_or_rtcp = matches!(kind, PacketKind::Rtp | PacketKind::Rtcp);
    if RtpPacket::parse(data).is_ok() {
        assert!(rtp_or_rtcp);
    }
    if let Some(Ok(_)) = parse_rtcp_compound(data).next() {
        assert!(rtp_or_rtcp);
    }
});
