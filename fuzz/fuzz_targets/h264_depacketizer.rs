//! Fuzzes the H.264 RTP depacketizer (RFC 6184 mode 1) two ways, and the SPS parser.
//!
//! 1. Arbitrary packets: records of a sequence-number byte (a small range, so reordering,
//!    duplicates and late packets occur), a timestamp selector, flags (marker, a time step),
//!    a length and payload bytes, fed with timeouts in between. It never panics, gives out
//!    exactly one verdict per frame it counts, and holds nothing after a long silence.
//! 2. A round trip: the input cut into NAL units, packetized at a payload size taken from
//!    the input, and fed back in order: the same access unit comes out.
#![no_main]

use std::time::{Duration, Instant};

use chorus_codecs::h264::{
    AccessUnit, Depacketizer, DepacketizerConfig, Packetizer, Reassembled, SequenceParameterSet,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The SPS parser takes the same untrusted bytes (a subscriber parses received key frames).
    if let Some(sps) = SequenceParameterSet::parse(data) {
        assert!(sps.profile_level_id() < 1 << 24);
    }

    let mut d = Depacketizer::new(DepacketizerConfig {
        window: 8,
        max_wait: Duration::from_millis(50),
    });
    let mut now = Instant::now();
    let mut outputs = 0u64;
    let mut rest = data;
    while let [seq, ts, flags, len, tail @ ..] = rest {
        let len = usize::from(*len % 32).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        now += Duration::from_millis(u64::from(flags >> 4) * 10);
        d.handle_timeout(now);
        d.handle_packet(
            now,
            u16::from(*seq),
            u32::from(*ts % 4) * 3_000,
            flags & 1 == 1,
            payload,
        );
        while let Some(out) = d.poll_frame() {
            if let Reassembled::Frame(au) = &out {
                assert!(au.nal_count() > 0);
            }
            outputs += 1;
        }
    }
    d.handle_timeout(now + Duration::from_secs(1));
    while d.poll_frame().is_some() {
        outputs += 1;
    }
    let stats = d.stats();
    assert_eq!(stats.frames + stats.broken_frames, outputs);
    assert_eq!(d.poll_timeout(), None);

    // Round trip: the first byte picks the payload size, the rest is NAL units of up to 255
    // bytes, each after its length byte (empty ones are skipped; the header's type is folded
    // into 1..=23, the NAL unit types). A one-packet frame goes first, so the access unit does
    // not start the stream (where its first packet would have to begin a picture).
    let Some((&size, mut body)) = data.split_first() else {
        return;
    };
    let mut au = AccessUnit::default();
    let mut nal = Vec::new();
    while let [len, tail @ ..] = body {
        let len = usize::from(*len).min(tail.len());
        if let [header, rest @ ..] = &tail[..len] {
            nal.clear();
            nal.push((header & 0xE0) | (1 + (header & 0x1F) % 23));
            nal.extend_from_slice(rest);
            au.push_nal(&nal);
        }
        body = &tail[len..];
    }
    au.timestamp = 90_000;
    let Ok(p) = Packetizer::new(3 + usize::from(size)) else {
        return;
    };
    let mut payloads = Vec::new();
    if p.packetize(&au, &mut payloads).is_err() {
        assert_eq!(au.nal_count(), 0);
        return;
    }
    let mut d = Depacketizer::new(DepacketizerConfig::default());
    d.handle_packet(now, 0, 0, true, &[0x67, 0x42]);
    assert!(matches!(d.poll_frame(), Some(Reassembled::Frame(_))));
    for (i, pl) in payloads.iter().enumerate() {
        assert!(pl.data.len() <= p.max_payload());
        d.handle_packet(now, 1 + i as u16, au.timestamp, pl.marker, &pl.data);
    }
    assert_eq!(d.poll_frame(), Some(Reassembled::Frame(au)));
    assert_eq!(d.poll_frame(), None);
});
