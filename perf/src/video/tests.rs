//! The publisher and subscriber against each other in virtual time: directly with seeded
//! loss, and through the engine's own SFU router with a bandwidth-limited receiver.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chorus_engine::codecs::h264::{Clip, ClipConfig};
use chorus_engine::rtcp::{NtpClock, NtpTime};
use chorus_engine::rtp::{Pt, Ssrc};
use chorus_engine::sfu::{
    ConsumerConfig, ConsumerId, ConsumerSource, EncodingConfig, ExtensionIds, KeyFrameMethod,
    NackLimits, ProducerConfig, Router, RouterConfig, RtcpTarget, RtxConfig, SfuTransmit,
    VideoCodec,
};

use super::*;

/// Two seconds at 15 fps, a key frame a second, the usual three sizes; encoded once.
pub(super) fn clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| {
        let config = ClipConfig {
            fps: 15,
            key_interval_s: 1,
            ..ClipConfig::simulcast(2)
        };
        Arc::new(Clip::encode(&config).expect("clip encodes"))
    })
    .clone()
}

const PT: Pt = Pt(102);
const RTX_PT: Pt = Pt(103);

fn publisher(now: Instant, epoch: Instant, rtx: bool) -> Publisher {
    publisher_as(now, epoch, rtx, 1)
}

/// Publisher `source`, its SSRCs and seed its own.
fn publisher_as(now: Instant, epoch: Instant, rtx: bool, source: u32) -> Publisher {
    let base = 0x100 * source;
    let config = PublisherConfig {
        ssrcs: vec![Ssrc(base), Ssrc(base + 1), Ssrc(base + 2)],
        rids: vec!["q".into(), "h".into(), "f".into()],
        pt: PT,
        rtx: rtx.then(|| (RTX_PT, vec![Ssrc(base + 4), Ssrc(base + 5), Ssrc(base + 6)])),
        rid_ext: Some(4),
        abs_send_time_ext: Some(3),
        cname: "pub@load".into(),
        seed: u64::from(source),
        source: Some(source),
    };
    Publisher::new(
        now,
        epoch,
        NtpClock::new(epoch, NtpTime(1 << 32)),
        clip(),
        config,
    )
    .unwrap()
}

fn subscriber(now: Instant, epoch: Instant, link: LinkConfig) -> Subscriber {
    let config = SubscriberConfig {
        ssrc: Ssrc(0x900),
        pt: PT,
        rtx_pt: Some(RTX_PT),
        rtx_ssrcs: vec![],
        abs_send_time_ext: Some(3),
        nack: true,
        pli: true,
        remb: true,
        unlimited_bps: 10_000_000,
        link,
    };
    Subscriber::new(now, epoch, config)
}

fn lossy(loss: f64, seed: u64) -> LinkConfig {
    LinkConfig {
        loss,
        bandwidth_bps: None,
        burst: Duration::from_millis(500),
        limit_from: None,
        seed,
    }
}

/// Packets on their way, each due at a time (a one-way delay).
#[derive(Default)]
struct Wire(VecDeque<(Instant, Vec<u8>)>);

impl Wire {
    fn send(&mut self, at: Instant, bytes: &[u8]) {
        self.0.push_back((at, bytes.to_vec()));
    }
    fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        (self.0.front().is_some_and(|(t, _)| *t <= now)).then(|| self.0.pop_front().unwrap().1)
    }
}

/// The stats without the delay samples, for the test's log.
fn brief(s: &SubscriberStats) -> SubscriberStats {
    let mut s = s.clone();
    for l in s.layers.values_mut() {
        l.delays_ms = vec![stats::percentile(&l.delays_ms, 50.0).unwrap_or(-1.0)];
    }
    s
}

const ONE_WAY: Duration = Duration::from_millis(10);

#[test]
fn abs_send_time_wraps_and_measures() {
    let epoch = Instant::now();
    let t = epoch + Duration::from_millis(63_990);
    let sent = abs_send_time(epoch, t);
    let age = abs_send_age(epoch, sent, t + Duration::from_millis(25));
    assert!((age.as_secs_f64() - 0.025).abs() < 0.000_01, "{age:?}");
    assert_eq!(abs_send_time(epoch, epoch + Duration::from_secs(64)), 0);
}

#[test]
fn a_lossy_path_loses_no_frame_after_nack_and_rtx() {
    let t0 = Instant::now();
    let mut publisher = publisher(t0, t0, true);
    let mut sub = subscriber(t0, t0, lossy(0.05, 3));
    assert_eq!(
        publisher.poll_timeout(),
        (t0, publisher::PublisherTimer::Frame)
    );
    assert_eq!(sub.poll_timeout(), (t0, subscriber::SubscriberTimer::Remb));
    let (mut down, mut up) = (Wire::default(), Wire::default());
    let mut buf = vec![0u8; 1_600];
    let end = t0 + Duration::from_secs(6);
    let mut now = t0;
    while now < end {
        if publisher.poll_timeout().0 <= now {
            publisher.handle_timeout(now);
        }
        while let Some((n, kind)) = publisher.poll_transmit(now, &mut buf) {
            if kind == PacketKind::Rtp {
                down.send(now + ONE_WAY, &buf[..n]);
            }
        }
        while let Some(mut p) = down.due(now) {
            let n = p.len();
            sub.handle_rtp(now, &mut p, n);
        }
        if sub.poll_timeout().0 <= now {
            sub.handle_timeout(now);
        }
        while let Some(n) = sub.poll_transmit(now, &mut buf) {
            up.send(now + ONE_WAY, &buf[..n]);
        }
        while let Some(p) = up.due(now) {
            publisher.handle_rtcp(now, &p);
        }
        now += Duration::from_millis(1);
    }
    let s = sub.stats();
    let p = publisher.counters();
    eprintln!("{:?}\n{p:?}", brief(&s));
    // Each layer is its own stream here: 6 s at 15 fps, less the frames in flight.
    assert_eq!(s.streams.len(), 3);
    for (height, layer) in &s.layers {
        assert!(layer.frames >= 85, "{height}: {layer:?}");
        assert_eq!(layer.broken, 0, "{height}");
        // 10 ms one way; a repaired frame waits for its NACK and RTX (another 25 ms or so
        // each round): most of a 720p frame's dozen packets are hit at 5% loss, not 180p's.
        let p50 = stats::percentile(&layer.delays_ms, 50.0).unwrap();
        let p99 = stats::percentile(&layer.delays_ms, 99.0).unwrap();
        assert!(
            p50 >= 9.9 && p99 < 150.0,
            "{height}: delay p50 {p50}, p99 {p99} ms"
        );
        if *height == 180 {
            assert!(p50 < 15.0, "180p delay p50 {p50} ms");
        }
    }
    assert_eq!(
        s.layers.keys().copied().collect::<Vec<_>>(),
        [180, 360, 720]
    );
    assert!(s.dropped_loss > 50, "{}", s.dropped_loss);
    assert!(s.nacked >= s.dropped_loss / 2 && s.rtx_received > 0);
    assert!(
        s.rtx_received <= p.retransmitted,
        "{} > {}",
        s.rtx_received,
        p.retransmitted
    );
    assert_eq!(s.rtx_unmatched, 0);
    // Only a stream whose very first packets were lost starts mid-frame.
    assert!(s.broken_at_start <= 1, "{}", s.broken_at_start);
}

/// The engine's router as the server: collects what it sends per consumer and producer.
#[derive(Default)]
struct Sink {
    rtp: Vec<(ConsumerId, Vec<u8>)>,
    rtcp: Vec<(RtcpTarget, Vec<u8>)>,
}

impl SfuTransmit for Sink {
    fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut b = vec![0; 1_600];
        let n = fill(&mut b);
        b.truncate(n);
        self.rtp.push((to, b));
        n > 0
    }
    fn send_rtcp(&mut self, to: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut b = vec![0; 1_600];
        let n = fill(&mut b);
        b.truncate(n);
        self.rtcp.push((to, b));
        n > 0
    }
}

#[test]
fn source_sei_round_trips_and_ignores_other_seis() {
    for id in [0, 7, 0x00ff_0000, u32::MAX] {
        let nal = source_sei(id);
        assert!(
            !nal.windows(3).any(|w| w[..2] == [0, 0] && w[2] <= 3),
            "{nal:?}"
        );
        assert_eq!(parse_source_sei(&nal), Some(id));
    }
    let mut other = source_sei(3);
    other[5] ^= 1;
    assert_eq!(parse_source_sei(&other), None);
    assert_eq!(parse_source_sei(&[0x06, 5]), None);
    assert_eq!(parse_source_sei(&[0x65, 0x88]), None);
}

/// A producer on `router` of a publisher's three layers, known by RID.
fn add_producer(router: &mut Router, now: Instant) -> chorus_engine::sfu::ProducerId {
    let clip = clip();
    let layers = clip.layers();
    router
        .add_producer(
            now,
            ProducerConfig {
                codec: VideoCodec::H264,
                pt: PT,
                clock_rate: 90_000,
                encodings: (0..3)
                    .map(|i| EncodingConfig {
                        ssrc: None,
                        rid: Some(["q", "h", "f"][i].into()),
                        rtx: None,
                        height: layers[i].spec.height as u16,
                        max_bitrate_bps: layers[i].spec.bitrate_bps,
                    })
                    .collect(),
                key_frame_method: KeyFrameMethod::Pli,
                nack: true,
                rid_ext_id: Some(4),
                extensions: ExtensionIds {
                    abs_send_time: Some(3),
                },
            },
        )
        .unwrap()
}

#[test]
fn a_speaker_change_is_timed_to_the_new_speakers_first_key_frame() {
    // Publisher 2 starts talking at 3.3 s; the mixer's detection follows 100 ms later. The
    // publishers' frames are in step, so the switch falls between two frames.
    let s = speaker_run(3_300, 3_400, false);
    eprintln!("{:?}", brief(&s));
    assert_eq!(s.streams.len(), 1);
    assert_eq!(s.source_changes, 1);
    assert_eq!(s.speaker_switch_ms.len(), 1);
    // Detection, the key-frame request to publisher 2 and back, one frame: well under the
    // 2 s key-frame interval the switch would wait without the request.
    let ms = s.speaker_switch_ms[0];
    assert!((100.0..400.0).contains(&ms), "{ms} ms");
    assert_eq!(s.broken(), 0);
}

/// Found with chorus-load's speaker layout (an occasional broken frame with no packet lost):
/// when the publishers' packets interleave, the speaker's consumer switches at the new
/// speaker's key frame in the middle of the old speaker's frame, and the receiver gets that
/// frame cut (an FU-A without its end). Ignored until the SFU lets the old frame finish.
#[test]
#[ignore = "the SFU cuts the old speaker's frame at a speaker switch"]
fn a_speaker_switch_between_interleaved_publishers_breaks_no_frame() {
    let s = speaker_run(3_300, 3_400, true);
    assert_eq!(s.speaker_switch_ms.len(), 1);
    assert_eq!(s.broken(), 0, "{:?}", s.broken_reasons);
}

/// Two publishers (sources 1 and 2) through the engine's router to one receiver following
/// the speaker: publisher 1 speaks from the start, publisher 2 starts talking at `talk_ms`
/// and the router hears it at `detect_ms`. With `interleave` the publishers' packets
/// alternate on the way (two sockets), publisher 2's frames 10 ms out of step.
fn speaker_run(talk_ms: u64, detect_ms: u64, interleave: bool) -> SubscriberStats {
    let t0 = Instant::now();
    let mut router = Router::new(t0, RouterConfig::new(NtpClock::new(t0, NtpTime(1 << 32))));
    let producers = [add_producer(&mut router, t0), add_producer(&mut router, t0)];
    let mut publishers = [
        publisher_as(t0, t0, false, 1),
        publisher_as(t0, t0, false, 2),
    ];
    let viewer = router
        .add_consumer(
            t0,
            ConsumerConfig {
                source: ConsumerSource::ActiveSpeaker { except: None },
                ssrc: Ssrc(0xc00),
                pt: PT,
                rtx: None,
                max_height: 720,
                nack_limits: NackLimits::default(),
                extensions: ExtensionIds {
                    abs_send_time: Some(3),
                },
            },
        )
        .unwrap();
    router.handle_active_speaker(t0, producers[0]);
    let mut sub = subscriber(t0, t0, lossy(0.0, 1));
    let (mut up, mut down, mut feedback, mut to_pub) = (
        Wire::default(),
        Wire::default(),
        Wire::default(),
        Wire::default(),
    );
    let mut buf = vec![0u8; 1_600];
    let mut sink = Sink::default();
    let mut spoke = false;
    let mut now = t0;
    while now < t0 + Duration::from_secs(6) {
        if !spoke && now >= t0 + Duration::from_millis(talk_ms) {
            sub.handle_speaker(now, 2);
            spoke = true;
        }
        if now == t0 + Duration::from_millis(detect_ms) {
            router.handle_active_speaker(now, producers[1]);
        }
        for p in publishers.iter_mut() {
            if p.poll_timeout().0 <= now {
                p.handle_timeout(now);
            }
        }
        // One publisher's packets after the other's, or alternating.
        let mut any = true;
        while any {
            any = false;
            for (k, p) in publishers.iter_mut().enumerate() {
                while let Some((n, kind)) = p.poll_transmit(now, &mut buf) {
                    any = true;
                    if kind == PacketKind::Rtp {
                        let mut tagged = vec![k as u8];
                        tagged.extend_from_slice(&buf[..n]);
                        up.send(now + ONE_WAY, &tagged);
                    }
                    if interleave {
                        break;
                    }
                }
            }
        }
        while let Some(p) = up.due(now) {
            router.handle_rtp(now, producers[usize::from(p[0])], &p[1..], &mut sink);
        }
        while let Some(p) = feedback.due(now) {
            router.handle_consumer_rtcp(now, &p, &mut sink);
        }
        while router.poll_timeout().is_some_and(|(t, _)| t <= now) {
            router.handle_timeout(now, &mut sink);
        }
        for (to, p) in sink.rtp.drain(..) {
            assert_eq!(to, viewer);
            down.send(now + ONE_WAY, &p);
        }
        for (to, p) in sink.rtcp.drain(..) {
            if let Some(k) = producers
                .iter()
                .position(|&id| to == RtcpTarget::Producer(id))
            {
                let mut tagged = vec![k as u8];
                tagged.extend_from_slice(&p);
                to_pub.send(now + ONE_WAY, &tagged);
            }
        }
        while let Some(p) = to_pub.due(now) {
            publishers[usize::from(p[0])].handle_rtcp(now, &p[1..]);
        }
        while let Some(mut p) = down.due(now) {
            let n = p.len();
            sub.handle_rtp(now, &mut p, n);
        }
        if sub.poll_timeout().0 <= now {
            sub.handle_timeout(now);
        }
        while let Some(n) = sub.poll_transmit(now, &mut buf) {
            feedback.send(now + ONE_WAY, &buf[..n]);
        }
        now += Duration::from_millis(1);
    }
    sub.stats()
}

#[test]
fn through_the_sfu_a_capped_receiver_switches_down_and_a_lossy_one_recovers() {
    let t0 = Instant::now();
    let mut router = Router::new(t0, RouterConfig::new(NtpClock::new(t0, NtpTime(1 << 32))));
    let producer = add_producer(&mut router, t0);
    let consumer = |ssrc: u32| ConsumerConfig {
        source: ConsumerSource::Producer(producer),
        ssrc: Ssrc(ssrc),
        pt: PT,
        rtx: Some(RtxConfig {
            ssrc: Ssrc(ssrc + 1),
            pt: RTX_PT,
        }),
        max_height: 720,
        nack_limits: NackLimits::default(),
        extensions: ExtensionIds {
            abs_send_time: Some(3),
        },
    };
    let lossy_id = router.add_consumer(t0, consumer(0xa00)).unwrap();
    let capped_id = router.add_consumer(t0, consumer(0xb00)).unwrap();
    let mut publisher = publisher(t0, t0, false);
    let mut subs = [
        subscriber(t0, t0, lossy(0.03, 11)),
        subscriber(
            t0,
            t0,
            LinkConfig {
                bandwidth_bps: Some(300_000),
                limit_from: Some(t0 + Duration::from_secs(4)),
                ..lossy(0.0, 12)
            },
        ),
    ];
    let ids = [lossy_id, capped_id];
    let mut down = [Wire::default(), Wire::default()];
    let mut up_pub = Wire::default();
    let mut to_pub = Wire::default();
    let mut up_sub = Wire::default();
    let mut buf = vec![0u8; 1_600];
    let mut sink = Sink::default();
    let end = t0 + Duration::from_secs(12);
    let mut now = t0;
    while now < end {
        if publisher.poll_timeout().0 <= now {
            publisher.handle_timeout(now);
        }
        while let Some((n, kind)) = publisher.poll_transmit(now, &mut buf) {
            if kind == PacketKind::Rtp {
                up_pub.send(now + ONE_WAY, &buf[..n]);
            }
        }
        while let Some(p) = up_pub.due(now) {
            router.handle_rtp(now, producer, &p, &mut sink);
        }
        while let Some(p) = up_sub.due(now) {
            router.handle_consumer_rtcp(now, &p, &mut sink);
        }
        while router.poll_timeout().is_some_and(|(t, _)| t <= now) {
            router.handle_timeout(now, &mut sink);
        }
        for (to, p) in sink.rtp.drain(..) {
            if let Some(i) = ids.iter().position(|&c| c == to) {
                down[i].send(now + ONE_WAY, &p);
            }
        }
        for (to, p) in sink.rtcp.drain(..) {
            if to == RtcpTarget::Producer(producer) {
                to_pub.send(now + ONE_WAY, &p);
            }
        }
        while let Some(p) = to_pub.due(now) {
            publisher.handle_rtcp(now, &p);
        }
        for (sub, wire) in subs.iter_mut().zip(&mut down) {
            while let Some(mut p) = wire.due(now) {
                let n = p.len();
                sub.handle_rtp(now, &mut p, n);
            }
            if sub.poll_timeout().0 <= now {
                sub.handle_timeout(now);
            }
            while let Some(n) = sub.poll_transmit(now, &mut buf) {
                up_sub.send(now + ONE_WAY, &buf[..n]);
            }
        }
        now += Duration::from_millis(1);
    }
    let [lossy, capped] = subs.map(|s| s.stats());
    eprintln!(
        "lossy {:?}\ncapped {:?}\n{:?}",
        brief(&lossy),
        brief(&capped),
        publisher.counters()
    );
    // Both got one stream (the consumer's SSRC) with frames.
    assert_eq!(lossy.streams.len(), 1);
    assert_eq!(lossy.streams[0].ssrc, 0xa00);
    assert!(lossy.frames() > 120, "{}", lossy.frames());
    assert!(capped.frames() > 120, "{}", capped.frames());
    // The lossy receiver repaired everything over RTX and stayed on the top layer.
    assert_eq!(lossy.broken(), 0);
    assert!(lossy.dropped_loss > 20 && lossy.rtx_received > 0 && lossy.rtx_unmatched == 0);
    assert_eq!(lossy.final_height(), Some(720));
    // The capped one announced 300 kbit/s at 4 s and was switched down to a layer that fits.
    assert!(capped.final_height().unwrap() < 720);
    assert_eq!(capped.final_height(), Some(180));
    assert_eq!(capped.switch_ms.len(), 1, "{:?}", capped.switch_ms);
    assert!(capped.switch_ms[0] < 1_500.0, "{:?}", capped.switch_ms);
    assert_eq!(capped.broken(), 0);
    assert!(capped.layers[&720].frames > 40 && capped.layers[&180].frames > 40);
}
