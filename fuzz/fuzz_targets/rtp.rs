//! Fuzzes RTP parsing: the packet view, the in-place setters, RFC 8285 extension iteration
//! and the RFC 6464 audio level.
#![no_main]

use chorus_engine::rtp::{AudioLevel, ExtensionIter, Pt, RtpPacket, RtpPacketMut, Ssrc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        std::hint::black_box((p.pt(), p.marker(), p.seq(), p.timestamp(), p.ssrc()));
        assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
        let range = p.payload_range();
        assert!(p.header_len() == range.start && range.end <= data.len());
        assert_eq!(range.end + p.padding_len(), data.len());
        assert_eq!(p.payload().len(), range.len());
        if let Ok(exts) = p.extensions() {
            for e in exts {
                match e {
                    Ok(e) => {
                        if let Ok(level) = AudioLevel::parse(e.data) {
                            assert!(level.level() <= AudioLevel::SILENCE);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // The forwarder's rewrite must touch only the fields it sets.
        let mut copy = data.to_vec();
        let mut m = RtpPacketMut::parse(&mut copy).expect("the same bytes parse the same");
        m.set_seq(p.seq().wrapping_add(1));
        m.set_timestamp(p.timestamp().wrapping_add(960));
        m.set_ssrc(Ssrc(p.ssrc().0 ^ 1));
        m.set_pt(Pt(p.pt().0 ^ 1)).expect("a 7-bit payload type");
        m.set_marker(!p.marker());
        let q = m.as_packet();
        assert_eq!(q.seq(), p.seq().wrapping_add(1));
        assert_eq!(q.pt(), Pt(p.pt().0 ^ 1));
        assert_eq!(q.marker(), !p.marker());
        assert_eq!(q.payload(), p.payload());
        assert_eq!(q.extension_data(), p.extension_data());
    }

    // Extension blocks on their own: the first two bytes pick the profile.
    if let [hi, lo, rest @ ..] = data
        && let Ok(it) = ExtensionIter::new(u16::from_be_bytes([*hi, *lo]), rest)
    {
        let mut total = 0;
        for e in it.map_while(Result::ok) {
            total += e.data.len();
        }
        assert!(total <= rest.len());
    }

    if let Some(&b) = data.first() {
        assert_eq!(AudioLevel::from_byte(b).to_byte(), b);
    }
});
