//! The SFU's forwarding path: one incoming video packet fanned out to N consumers.
//!
//! What one iteration is: `Router::handle_rtp` for one H.264 packet (1,100 bytes, a FU-A
//! middle fragment of the top simulcast encoding) of one producer with N consumers on that
//! encoding, each copy written with its consumer's SSRC, sequence number, timestamp and
//! payload type into a transmit buffer (the driver's `SfuTransmit` here copies into one
//! reused 2 KiB slot per packet, as a transmit slot would). Included: RTP parse, extended
//! sequence number, duplicate check, H.264 classification, upstream NACK bookkeeping,
//! receive statistics, the packet store copy, per consumer the rewrite and the send history
//! entry. Not included: SRTP protection and the send queue (per copy, the same as for audio).
//!
//! Baseline in the same run (`copy_only`): the N plain copies of the packet into the slot
//! with the four header fields patched, nothing else: the floor any forwarder pays.
//! Throughput is packets out per second.
//!
//! Run: `cargo bench -p chorus-engine --bench sfu -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_engine::rtcp::{NtpClock, NtpTime};
use chorus_engine::rtp::{Pt, RtpHeader, Ssrc};
use chorus_engine::sfu::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const CONSUMERS: [usize; 3] = [1, 10, 100];

struct Slot {
    buf: Box<[u8; 2_048]>,
    sent: u64,
}

impl SfuTransmit for Slot {
    fn send_rtp(&mut self, _: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let n = fill(&mut self.buf[..]);
        self.sent += 1;
        black_box(&self.buf[..n]);
        n > 0
    }

    fn send_rtcp(&mut self, _: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        fill(&mut self.buf[..]) > 0
    }
}

fn packet(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    let h = RtpHeader {
        pt: Pt(96),
        seq,
        timestamp: u32::from(seq / 8) * 3_000,
        ssrc: Ssrc(3),
        ..Default::default()
    };
    let n = h.write(&mut b).unwrap();
    b[n..].copy_from_slice(payload);
    b
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("sfu_forward");
    for n in CONSUMERS {
        group.throughput(Throughput::Elements(n as u64));
        let t0 = Instant::now();
        let mut router = Router::new(t0, RouterConfig::new(NtpClock::new(t0, NtpTime(0))));
        let enc = |ssrc, height, bps| EncodingConfig {
            ssrc: Some(Ssrc(ssrc)),
            rid: None,
            rtx: None,
            height,
            max_bitrate_bps: bps,
        };
        let p = router
            .add_producer(
                t0,
                ProducerConfig {
                    codec: VideoCodec::H264,
                    pt: Pt(96),
                    clock_rate: 90_000,
                    encodings: vec![
                        enc(1, 180, 150_000),
                        enc(2, 360, 500_000),
                        enc(3, 720, 1_500_000),
                    ],
                    key_frame_method: KeyFrameMethod::Pli,
                    nack: true,
                    rid_ext_id: None,
                    extensions: Default::default(),
                },
            )
            .unwrap();
        for i in 0..n {
            router
                .add_consumer(
                    t0,
                    ConsumerConfig {
                        source: ConsumerSource::Producer(p),
                        ssrc: Ssrc(0x1000 + i as u32),
                        pt: Pt(102),
                        rtx: None,
                        max_height: 720,
                        nack_limits: NackLimits::default(),
                        extensions: Default::default(),
                    },
                )
                .unwrap();
        }
        let mut slot = Slot {
            buf: Box::new([0; 2_048]),
            sent: 0,
        };
        // A key frame first, so every consumer forwards the top encoding.
        router.handle_rtp(t0, p, &packet(0, &[0x65, 0x88, 0x84]), &mut slot);
        let mut middle = vec![0x7c, 0x05];
        middle.resize(1_100, 0xab);
        let mut pkt = packet(1, &middle);
        let mut seq = 1u16;
        let mut now = t0;
        group.bench_with_input(BenchmarkId::new("router", n), &n, |b, _| {
            b.iter(|| {
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                seq = seq.wrapping_add(1);
                now += Duration::from_micros(200);
                router.handle_rtp(now, p, black_box(&pkt), &mut slot);
            })
        });
        group.bench_with_input(BenchmarkId::new("copy_only", n), &n, |b, &n| {
            b.iter(|| {
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                seq = seq.wrapping_add(1);
                for i in 0..n {
                    let out = &mut slot.buf[..pkt.len()];
                    out.copy_from_slice(black_box(&pkt));
                    out[1] = 102;
                    out[2..4].copy_from_slice(&seq.to_be_bytes());
                    out[8..12].copy_from_slice(&(0x1000 + i as u32).to_be_bytes());
                    black_box(&out[..]);
                }
            })
        });
        assert!(slot.sent > 0);
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
