//! Fuzzes the SFU's payload parsers and its router. H.264 and VP8 payloads are classified or
//! refused, never a panic; a VP8 rewrite touches only the descriptor. Then the input drives a
//! router with two simulcast producers and three consumers (one with RTX, one following
//! the speaker) as a stream of records: publisher RTP, receiver RTCP, publisher RTCP, time
//! steps, bandwidth and speaker changes. Nothing panics, and every output packet parses.
#![no_main]

use std::time::{Duration, Instant};

use chorus_engine::rtcp::{NtpClock, NtpTime, parse_rtcp_compound};
use chorus_engine::rtp::{Pt, RtpPacket, Ssrc};
use chorus_engine::sfu::h264::H264Payload;
use chorus_engine::sfu::vp8::Vp8Descriptor;
use chorus_engine::sfu::*;
use libfuzzer_sys::fuzz_target;

struct Tx;

impl SfuTransmit for Tx {
    fn send_rtp(&mut self, _: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut buf = [0u8; 2_048];
        let n = fill(&mut buf);
        assert!(n == 0 || RtpPacket::parse(&buf[..n]).is_ok());
        n > 0
    }

    fn send_rtcp(&mut self, _: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut buf = [0u8; 2_048];
        let n = fill(&mut buf);
        assert!(parse_rtcp_compound(&buf[..n]).all(|p| p.is_ok()));
        n > 0
    }
}

fn producer(codec: VideoCodec, base: u32) -> ProducerConfig {
    ProducerConfig {
        codec,
        pt: Pt(96),
        clock_rate: 90_000,
        encodings: (0..3)
            .map(|l| EncodingConfig {
                ssrc: (l != 2).then_some(Ssrc(base + l)),
                rid: Some(["q", "h", "f"][l as usize].to_string()),
                rtx: Some(RtxConfig {
                    ssrc: Ssrc(base + 10 + l),
                    pt: Pt(97),
                }),
                height: [180, 360, 720][l as usize],
                max_bitrate_bps: [150_000, 500_000, 1_500_000][l as usize],
            })
            .collect(),
        key_frame_method: KeyFrameMethod::Fir,
        nack: true,
        rid_ext_id: Some(3),
        extensions: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = H264Payload::parse(data);
    if let Ok(d) = Vp8Descriptor::parse(data) {
        let mut copy = data.to_vec();
        d.rewrite(&mut copy, Some(0x7fff), Some(1));
        assert_eq!(copy[d.len..], data[d.len..]);
    }

    let t0 = Instant::now();
    let mut now = t0;
    let mut config = RouterConfig::new(NtpClock::new(t0, NtpTime(0)));
    // Small buffers: cheap runs, and the store and history wrap within one input.
    config.sizes = BufferSizes {
        store_packets: 16,
        history_packets: 16,
        ..BufferSizes::default()
    };
    config.last_n = Some(1);
    let mut r = Router::new(t0, config);
    let h264 = r.add_producer(now, producer(VideoCodec::H264, 100)).unwrap();
    let vp8 = r.add_producer(now, producer(VideoCodec::Vp8, 200)).unwrap();
    let consumer = |source, ssrc, rtx: Option<u32>| ConsumerConfig {
        source,
        ssrc: Ssrc(ssrc),
        pt: Pt(100),
        rtx: rtx.map(|s| RtxConfig {
            ssrc: Ssrc(s),
            pt: Pt(101),
        }),
        max_height: 720,
        nack_limits: NackLimits::default(),
        extensions: Default::default(),
    };
    let c = [
        r.add_consumer(now, consumer(ConsumerSource::Producer(h264), 1_000, Some(1_001))).unwrap(),
        r.add_consumer(now, consumer(ConsumerSource::Producer(vp8), 1_002, None)).unwrap(),
        r.add_consumer(now, consumer(ConsumerSource::ActiveSpeaker { except: None }, 1_003, None))
            .unwrap(),
    ];
    let mut tx = Tx;
    // Records: a kind byte, a length byte, then that many bytes.
    let mut rest = data;
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        match kind % 7 {
            0 => r.handle_rtp(now, h264, body, &mut tx),
            1 => r.handle_rtp(now, vp8, body, &mut tx),
            2 => r.handle_consumer_rtcp(now, body, &mut tx),
            3 => r.handle_producer_rtcp(now, if kind & 8 != 0 { vp8 } else { h264 }, body),
            4 => {
                now += Duration::from_millis(u64::from(*len) * 4);
                while let Some((at, _)) = r.poll_timeout() {
                    if at > now {
                        break;
                    }
                    r.handle_timeout(now, &mut tx);
                }
            }
            5 => {
                let bps = u32::from(*len) * 20_000;
                let _ = r.set_bandwidth(now, c[usize::from(*len) % 3], bps);
                let _ = r.set_max_height(now, c[usize::from(kind >> 4) % 3], u16::from(*len) * 4);
            }
            _ => r.handle_active_speaker(now, if kind & 8 != 0 { vp8 } else { h264 }),
        }
        while r.poll_event().is_some() {}
    }
});
