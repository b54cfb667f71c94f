//! The SFU in virtual time: publishers sending three simulcast encodings of synthetic H.264
//! or VP8, subscribers behind lossy, jittery links with bandwidth limits, all seeded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::rtcp::{
    CompoundBuilder, FirEntry, Nack, NtpClock, NtpTime, Pli, Remb, RtcpPacket, parse_rtcp_compound,
};
use crate::rtp::xorshift::Xorshift;
use crate::rtp::{Pt, RtpHeader, RtpPacket, SeqNoUnwrapper, Ssrc};
use crate::sfu::h264::{self, H264Payload};
use crate::sfu::vp8::Vp8Descriptor;
use crate::sfu::*;

const MS: Duration = Duration::from_millis(1);
const PT_VIDEO: Pt = Pt(96);
const PT_RTX: Pt = Pt(97);
const HEIGHTS: [u16; 3] = [180, 360, 720];
const BITRATES: [u32; 3] = [150_000, 500_000, 1_500_000];
const FRAME_MS: u64 = 33;
const MTU_PAYLOAD: usize = 1_000;

/// Packets in flight between the parties.
enum Hop {
    /// Publisher RTP to the router.
    Up(usize, Vec<u8>),
    /// Router RTCP to a publisher.
    ToPublisher(usize, Vec<u8>),
    /// Router RTP or RTCP to a subscriber.
    Down(usize, Vec<u8>),
    /// Subscriber RTCP to the router.
    Feedback(Vec<u8>),
}

struct Net {
    rng: Xorshift,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    hops: HashMap<u64, Hop>,
    n: u64,
}

impl Net {
    fn send(&mut self, at: Instant, loss_pct: u64, delay: (u64, u64), hop: Hop) {
        if self.rng.chance(loss_pct) {
            return;
        }
        let d = delay.0 + self.rng.below(delay.1 - delay.0 + 1);
        self.n += 1;
        self.queue
            .push(Reverse((at + Duration::from_millis(d), self.n)));
        self.hops.insert(self.n, hop);
    }

    fn due(&mut self, now: Instant) -> Option<Hop> {
        let Reverse((at, n)) = *self.queue.peek()?;
        if at > now {
            return None;
        }
        self.queue.pop();
        self.hops.remove(&n)
    }
}

struct Layer {
    ssrc: Ssrc,
    rtx_ssrc: Ssrc,
    seq: u16,
    rtx_seq: u16,
    ts: u32,
    pid: u16,
    tl0: u8,
    want_key: bool,
    last_key: Option<Instant>,
    history: VecDeque<(u16, Vec<u8>)>,
    plis: u32,
}

struct Publisher {
    codec: VideoCodec,
    producer: ProducerId,
    layers: Vec<Layer>,
    stop_at: Option<Instant>,
    stopped: bool,
    nacked: u64,
}

/// What a subscriber saw of one consumer's stream, by extended sequence number.
#[derive(Debug, Clone, Copy)]
struct Seen {
    ts: u32,
    publisher: u8,
    layer: u8,
    key_start: bool,
    frame_start: bool,
    picture_id: Option<u16>,
}

struct Stream {
    consumer: ConsumerId,
    ssrc: Ssrc,
    rtx_ssrc: Ssrc,
    unwrap: SeqNoUnwrapper,
    seen: BTreeMap<u64, Seen>,
    /// Missing extended sequence number -> (found, last NACK, NACKs sent).
    missing: BTreeMap<u64, (Instant, Option<Instant>)>,
    rtx_received: u64,
}

struct Subscriber {
    streams: Vec<Stream>,
    bandwidth_bps: u32,
    loss_pct: u64,
    hostile: bool,
}

struct Sink(Vec<(Option<ConsumerId>, Option<RtcpTarget>, Vec<u8>)>);

impl SfuTransmit for Sink {
    fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut buf = vec![0u8; 2_048];
        let n = fill(&mut buf);
        if n == 0 {
            return false;
        }
        buf.truncate(n);
        self.0.push((Some(to), None, buf));
        true
    }

    fn send_rtcp(&mut self, to: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let mut buf = vec![0u8; 2_048];
        let n = fill(&mut buf);
        if n == 0 {
            return false;
        }
        buf.truncate(n);
        self.0.push((None, Some(to), buf));
        true
    }
}

struct Sim {
    t0: Instant,
    now: Instant,
    net: Net,
    router: Router,
    sink: Sink,
    publishers: Vec<Publisher>,
    subscribers: Vec<Subscriber>,
    /// Consumer slot -> subscriber index.
    owner: HashMap<u32, usize>,
    up_loss_pct: u64,
    key_every: Duration,
    next_frame: Instant,
}

fn h264_payloads(key: bool, size: usize, tag: [u8; 2], out: &mut Vec<Vec<u8>>) {
    let nal_type = if key { h264::NAL_IDR } else { h264::NAL_SLICE };
    if key {
        // STAP-A with SPS and PPS.
        let mut p = vec![0x78];
        p.extend_from_slice(&[0, 4, 0x67, 0x42, 0x00, 0x1f, 0, 4, 0x68, 0xce]);
        // The tag rides in the PPS unit, whose size (4) counts it.
        p.truncate(9);
        p.extend_from_slice(&[0x68, 0xce]);
        p.extend_from_slice(&tag);
        out.push(p);
    }
    if size <= MTU_PAYLOAD {
        let mut p = vec![0x60 | nal_type];
        p.resize(size.max(3), 0xab);
        p.extend_from_slice(&tag);
        out.push(p);
        return;
    }
    let mut left = size;
    let mut first = true;
    while left > 0 {
        let chunk = left.min(MTU_PAYLOAD);
        left -= chunk;
        let mut fu = nal_type;
        if first {
            fu |= 0x80;
        }
        if left == 0 {
            fu |= 0x40;
        }
        let mut p = vec![0x60 | h264::FU_A, fu];
        p.resize(2 + chunk, 0xcd);
        p.extend_from_slice(&tag);
        out.push(p);
        first = false;
    }
}

fn vp8_payloads(key: bool, size: usize, pid: u16, tl0: u8, tag: [u8; 2], out: &mut Vec<Vec<u8>>) {
    let mut left = size.max(1);
    let mut first = true;
    while left > 0 {
        let chunk = left.min(MTU_PAYLOAD);
        left -= chunk;
        let s = if first { 0x10 } else { 0 };
        let [hi, lo] = pid.to_be_bytes();
        let mut p = vec![0x80 | s, 0xe0, 0x80 | (hi & 0x7f), lo, tl0, 0x20];
        if first {
            // VP8 payload header: P = 0 for a key frame.
            p.push(if key { 0x00 } else { 0x01 });
        }
        p.resize(p.len() + chunk, 0xef);
        p.extend_from_slice(&tag);
        out.push(p);
        first = false;
    }
}

impl Sim {
    fn new(seed: u64, codec: VideoCodec, publishers: usize, last_n: Option<usize>) -> Sim {
        let t0 = Instant::now();
        let mut config = RouterConfig::new(NtpClock::new(t0, NtpTime(1 << 40)));
        config.last_n = last_n;
        let mut rng = Xorshift::new(seed);
        let mut router = Router::new(t0, config);
        let mut pubs = Vec::new();
        for p in 0..publishers {
            let layers: Vec<Layer> = (0..3)
                .map(|l| Layer {
                    ssrc: Ssrc(0x1000 + (p * 16 + l) as u32),
                    rtx_ssrc: Ssrc(0x2000 + (p * 16 + l) as u32),
                    // The top encoding's sequence numbers and timestamps wrap early on.
                    seq: if l == 2 {
                        65_000
                    } else {
                        rng.next_u64() as u16
                    },
                    rtx_seq: 0,
                    ts: if l == 2 {
                        u32::MAX - 100_000
                    } else {
                        rng.next_u64() as u32
                    },
                    pid: (rng.next_u64() as u16) & 0x7fff,
                    tl0: rng.next_u64() as u8,
                    want_key: false,
                    last_key: None,
                    history: VecDeque::new(),
                    plis: 0,
                })
                .collect();
            let producer = router
                .add_producer(
                    t0,
                    ProducerConfig {
                        codec,
                        pt: PT_VIDEO,
                        clock_rate: 90_000,
                        encodings: (0..3)
                            .map(|l| EncodingConfig {
                                ssrc: Some(layers[l].ssrc),
                                rid: Some(["q", "h", "f"][l].to_string()),
                                rtx: Some(RtxConfig {
                                    ssrc: layers[l].rtx_ssrc,
                                    pt: PT_RTX,
                                }),
                                height: HEIGHTS[l],
                                max_bitrate_bps: BITRATES[l],
                            })
                            .collect(),
                        key_frame_method: if p % 2 == 0 {
                            KeyFrameMethod::Pli
                        } else {
                            KeyFrameMethod::Fir
                        },
                        nack: true,
                        rid_ext_id: None,
                        extensions: Default::default(),
                    },
                )
                .unwrap();
            pubs.push(Publisher {
                codec,
                producer,
                layers,
                stop_at: None,
                stopped: false,
                nacked: 0,
            });
        }
        Sim {
            t0,
            now: t0,
            net: Net {
                rng: Xorshift::new(seed ^ 0x5eed),
                queue: BinaryHeap::new(),
                hops: HashMap::new(),
                n: 0,
            },
            router,
            sink: Sink(Vec::new()),
            publishers: pubs,
            subscribers: Vec::new(),
            owner: HashMap::new(),
            up_loss_pct: 2,
            key_every: Duration::from_secs(4),
            next_frame: t0,
        }
    }

    /// A subscriber taking every publisher's video (or one stream following the speaker).
    fn subscribe(&mut self, loss_pct: u64, bandwidth_bps: u32, follow_speaker: bool) -> usize {
        let s = self.subscribers.len();
        let mut streams = Vec::new();
        let sources: Vec<ConsumerSource> = if follow_speaker {
            vec![ConsumerSource::ActiveSpeaker { except: None }]
        } else {
            self.publishers
                .iter()
                .map(|p| ConsumerSource::Producer(p.producer))
                .collect()
        };
        for (i, source) in sources.into_iter().enumerate() {
            let ssrc = Ssrc(0x9000_0000 + (s * 64 + i) as u32);
            let rtx_ssrc = Ssrc(0xa000_0000 + (s * 64 + i) as u32);
            let consumer = self
                .router
                .add_consumer(
                    self.now,
                    ConsumerConfig {
                        source,
                        ssrc,
                        pt: Pt(100),
                        rtx: Some(RtxConfig {
                            ssrc: rtx_ssrc,
                            pt: Pt(101),
                        }),
                        max_height: 720,
                        nack_limits: NackLimits::default(),
                        extensions: Default::default(),
                    },
                )
                .unwrap();
            self.owner.insert(consumer.0, s);
            streams.push(Stream {
                consumer,
                ssrc,
                rtx_ssrc,
                unwrap: SeqNoUnwrapper::new(),
                seen: BTreeMap::new(),
                missing: BTreeMap::new(),
                rtx_received: 0,
            });
        }
        self.subscribers.push(Subscriber {
            streams,
            bandwidth_bps,
            loss_pct,
            hostile: false,
        });
        s
    }

    fn ms(&self, n: u64) -> Instant {
        self.t0 + Duration::from_millis(n)
    }

    fn run_until(&mut self, end_ms: u64) {
        while self.now < self.ms(end_ms) {
            self.now += MS;
            self.step();
        }
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(hop) = self.net.due(now) {
            match hop {
                Hop::Up(p, bytes) => {
                    let id = self.publishers[p].producer;
                    self.router.handle_rtp(now, id, &bytes, &mut self.sink);
                }
                Hop::ToPublisher(p, bytes) => self.publisher_rtcp(p, &bytes),
                Hop::Down(s, bytes) => self.subscriber_packet(s, &bytes),
                Hop::Feedback(bytes) => {
                    self.router
                        .handle_consumer_rtcp(now, &bytes, &mut self.sink)
                }
            }
        }
        if now >= self.next_frame {
            self.next_frame += Duration::from_millis(FRAME_MS);
            for p in 0..self.publishers.len() {
                self.send_frame(p);
            }
        }
        let elapsed = now.duration_since(self.t0).as_millis() as u64;
        if elapsed.is_multiple_of(20) {
            for s in 0..self.subscribers.len() {
                self.subscriber_feedback(s, elapsed.is_multiple_of(500));
            }
        }
        while let Some((at, _)) = self.router.poll_timeout() {
            if at > now {
                break;
            }
            self.router.handle_timeout(now, &mut self.sink);
        }
        self.flush();
    }

    fn flush(&mut self) {
        let now = self.now;
        for (consumer, rtcp, bytes) in std::mem::take(&mut self.sink.0) {
            match (consumer, rtcp) {
                (Some(c), _) | (None, Some(RtcpTarget::Consumer(c))) => {
                    let s = self.owner[&c.0];
                    let loss = self.subscribers[s].loss_pct;
                    self.net.send(now, loss, (20, 50), Hop::Down(s, bytes));
                }
                (None, Some(RtcpTarget::Producer(p))) => {
                    let i = self
                        .publishers
                        .iter()
                        .position(|x| x.producer == p)
                        .unwrap();
                    self.net
                        .send(now, self.up_loss_pct, (10, 12), Hop::ToPublisher(i, bytes));
                }
                (None, None) => unreachable!(),
            }
        }
    }

    fn send_frame(&mut self, p: usize) {
        let now = self.now;
        let key_every = self.key_every;
        let pubr = &mut self.publishers[p];
        if pubr.stopped {
            return;
        }
        let stop_mid_frame = pubr.stop_at.is_some_and(|t| now >= t);
        let mut packets = Vec::new();
        for (l, layer) in pubr.layers.iter_mut().enumerate() {
            let key = layer.want_key || layer.last_key.is_none_or(|t| now >= t + key_every);
            if key {
                layer.want_key = false;
                layer.last_key = Some(now);
            }
            let size = (BITRATES[l] as usize / 8 / 30) * if key { 3 } else { 1 };
            let tag = [p as u8, l as u8];
            let mut payloads = Vec::new();
            layer.pid = (layer.pid + 1) & 0x7fff;
            layer.tl0 = layer.tl0.wrapping_add(1);
            match pubr.codec {
                VideoCodec::H264 => h264_payloads(key, size, tag, &mut payloads),
                VideoCodec::Vp8 => {
                    vp8_payloads(key, size, layer.pid, layer.tl0, tag, &mut payloads)
                }
            }
            layer.ts = layer.ts.wrapping_add(3_000);
            let count = payloads.len();
            for (i, payload) in payloads.into_iter().enumerate() {
                let mut buf = vec![0u8; 12 + payload.len()];
                let h = RtpHeader {
                    marker: i + 1 == count,
                    pt: PT_VIDEO,
                    seq: layer.seq,
                    timestamp: layer.ts,
                    ssrc: layer.ssrc,
                    ..Default::default()
                };
                let hl = h.write(&mut buf).unwrap();
                buf[hl..].copy_from_slice(&payload);
                layer.history.push_back((layer.seq, buf.clone()));
                if layer.history.len() > 2_000 {
                    layer.history.pop_front();
                }
                layer.seq = layer.seq.wrapping_add(1);
                packets.push(buf);
                // A publisher that stops mid-frame: only the first packet of its frame.
                if stop_mid_frame && count > 1 {
                    break;
                }
            }
        }
        if stop_mid_frame {
            pubr.stopped = true;
        }
        for buf in packets {
            self.net
                .send(now, self.up_loss_pct, (10, 12), Hop::Up(p, buf));
        }
    }

    fn publisher_rtcp(&mut self, p: usize, bytes: &[u8]) {
        let now = self.now;
        let pubr = &mut self.publishers[p];
        let mut resend = Vec::new();
        for packet in parse_rtcp_compound(bytes) {
            match packet.unwrap() {
                RtcpPacket::Pli(pli) => {
                    if let Some(l) = pubr.layers.iter_mut().find(|l| l.ssrc == pli.media_ssrc) {
                        l.want_key = true;
                        l.plis += 1;
                    }
                }
                RtcpPacket::Fir(fir) => {
                    for FirEntry { ssrc, .. } in fir.entries() {
                        if let Some(l) = pubr.layers.iter_mut().find(|l| l.ssrc == ssrc) {
                            l.want_key = true;
                            l.plis += 1;
                        }
                    }
                }
                RtcpPacket::Nack(nack) => {
                    let Some(l) = pubr.layers.iter_mut().find(|l| l.ssrc == nack.media_ssrc())
                    else {
                        continue;
                    };
                    for seq in nack.lost() {
                        pubr.nacked += 1;
                        if let Some((_, b)) = l.history.iter().find(|(s, _)| *s == seq) {
                            let mut buf = b.clone();
                            buf.extend_from_slice(&[0, 0]);
                            let cfg = RtxConfig {
                                ssrc: l.rtx_ssrc,
                                pt: PT_RTX,
                            };
                            let n = rtx::wrap_in_place(&mut buf, b.len(), cfg, l.rtx_seq).unwrap();
                            buf.truncate(n);
                            l.rtx_seq = l.rtx_seq.wrapping_add(1);
                            resend.push(buf);
                        }
                    }
                }
                _ => {}
            }
        }
        for buf in resend {
            self.net
                .send(now, self.up_loss_pct, (10, 12), Hop::Up(p, buf));
        }
    }

    fn subscriber_packet(&mut self, s: usize, bytes: &[u8]) {
        let now = self.now;
        if crate::rtcp::classify(bytes) == crate::rtcp::PacketKind::Rtcp {
            for p in parse_rtcp_compound(bytes) {
                assert!(matches!(p, Ok(RtcpPacket::SenderReport(_))));
            }
            return;
        }
        let codec = self.publishers[0].codec;
        let mut buf = bytes.to_vec();
        let p = RtpPacket::parse(&buf).unwrap();
        let ssrc = p.ssrc();
        let sub = &mut self.subscribers[s];
        let Some(st) = sub
            .streams
            .iter_mut()
            .find(|st| st.ssrc == ssrc || st.rtx_ssrc == ssrc)
        else {
            panic!("subscriber {s} got an SSRC it does not know: {ssrc}");
        };
        let ext = if ssrc == st.rtx_ssrc {
            let (n, osn) = rtx::unwrap_in_place(&mut buf, bytes.len(), st.ssrc, Pt(100)).unwrap();
            buf.truncate(n);
            st.rtx_received += 1;
            st.unwrap.peek(osn).0
        } else {
            let ext = st.unwrap.extend(p.seq()).0;
            if let Some((&last, _)) = st.seen.last_key_value()
                && ext > last + 1
            {
                for m in last + 1..ext {
                    st.missing.entry(m).or_insert((now, None));
                }
            }
            // Reordered before the first packet seen: the ones between are missing too.
            if let Some((&first, _)) = st.seen.first_key_value()
                && ext + 1 < first
            {
                for m in ext + 1..first {
                    if !st.seen.contains_key(&m) {
                        st.missing.entry(m).or_insert((now, None));
                    }
                }
            }
            ext
        };
        st.missing.remove(&ext);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.pt(), Pt(100));
        let payload = p.payload();
        let tag = &payload[payload.len() - 2..];
        let (key_start, frame_start, picture_id) = match codec {
            VideoCodec::H264 => {
                let h = H264Payload::parse(payload).unwrap();
                (h.starts_key_frame(), h.starts_nal_unit(), None)
            }
            VideoCodec::Vp8 => {
                let d = Vp8Descriptor::parse(payload).unwrap();
                (d.key_frame, d.starts_frame(), d.picture_id.map(|p| p.value))
            }
        };
        st.seen.insert(
            ext,
            Seen {
                ts: p.timestamp(),
                publisher: tag[0],
                layer: tag[1],
                key_start,
                frame_start,
                picture_id,
            },
        );
    }

    fn subscriber_feedback(&mut self, s: usize, remb: bool) {
        let now = self.now;
        let sub = &mut self.subscribers[s];
        let mut buf = vec![0u8; 8_192];
        let mut b = CompoundBuilder::new(&mut buf);
        let me = Ssrc(0x7000 + s as u32);
        for st in &mut sub.streams {
            let due: Vec<u16> = st
                .missing
                .iter_mut()
                .filter(|(_, (found, last))| {
                    now.duration_since(*found) >= 35 * MS
                        && last.is_none_or(|l| now.duration_since(l) >= 100 * MS)
                })
                .map(|(seq, (_, last))| {
                    *last = Some(now);
                    *seq as u16
                })
                .take(40)
                .collect();
            if !due.is_empty() {
                b.append(|out| Nack::write(out, me, st.ssrc, due.iter().copied()))
                    .unwrap();
            }
            // Give up on what is older than a second.
            st.missing
                .retain(|_, (found, _)| now.duration_since(*found) < 1_000 * MS);
        }
        if remb {
            let ssrcs: Vec<Ssrc> = sub.streams.iter().map(|st| st.ssrc).collect();
            let total = u64::from(sub.bandwidth_bps) * ssrcs.len() as u64;
            b.append(|out| Remb::write(out, me, total, &ssrcs)).unwrap();
        }
        if sub.hostile {
            for st in &sub.streams {
                // A NACK for 3,000 packets and a PLI, every 20 ms.
                b.append(|out| Nack::write(out, me, st.ssrc, 0..3_000u16))
                    .ok();
                b.append(|out| {
                    Pli {
                        sender_ssrc: me,
                        media_ssrc: st.ssrc,
                    }
                    .write(out)
                })
                .ok();
            }
        }
        let n = b.len();
        if n > 0 {
            let loss = sub.loss_pct;
            buf.truncate(n);
            self.net.send(now, loss, (20, 20), Hop::Feedback(buf));
        }
    }

    /// Checks one received stream: the sequence numbers it saw are continuous apart from
    /// what is still missing near the end, switches of source or layer happen at key frames,
    /// timestamps never go back and jump plausibly, VP8 picture IDs continue.
    fn check_stream(&self, s: usize, i: usize, tail: u64) -> StreamReport {
        let st = &self.subscribers[s].streams[i];
        let first = *st.seen.keys().next().expect("stream received nothing");
        let last = *st.seen.keys().last().unwrap();
        let mut gaps = 0;
        for seq in first..=last.saturating_sub(tail) {
            if !st.seen.contains_key(&seq) {
                gaps += 1;
            }
        }
        let mut switches = Vec::new();
        let mut prev: Option<(u64, Seen)> = None;
        let mut layer_time = [0u64; 3];
        for (&seq, &now) in &st.seen {
            if let Some((pseq, p)) = prev {
                if (p.publisher, p.layer) != (now.publisher, now.layer) {
                    assert!(
                        now.key_start,
                        "switch {:?} -> {:?} at {seq} without a key frame",
                        (p.publisher, p.layer),
                        (now.publisher, now.layer)
                    );
                    switches.push((seq, now.publisher, now.layer));
                }
                let dts = now.ts.wrapping_sub(p.ts) as i32;
                assert!(
                    (0..90_000).contains(&dts) || seq != pseq + 1,
                    "timestamp jump {dts} at {seq}"
                );
                if seq == pseq + 1 && dts < 0 {
                    panic!("timestamp went back at {seq}");
                }
                if let (Some(a), Some(b)) = (p.picture_id, now.picture_id)
                    && seq == pseq + 1
                {
                    let d = b.wrapping_sub(a) & 0x7fff;
                    assert!(
                        d == 0 && !now.frame_start || d == 1 && now.frame_start,
                        "picture ID {a} -> {b} at {seq}"
                    );
                }
            }
            layer_time[usize::from(now.layer)] += 1;
            prev = Some((seq, now));
        }
        StreamReport {
            received: st.seen.len(),
            gaps,
            switches,
            last_layer: prev.map(|p| p.1.layer),
            rtx: st.rtx_received,
        }
    }
}

#[derive(Debug)]
struct StreamReport {
    received: usize,
    gaps: usize,
    switches: Vec<(u64, u8, u8)>,
    last_layer: Option<u8>,
    rtx: u64,
}

fn simulcast_under_loss(codec: VideoCodec, seed: u64) {
    let mut sim = Sim::new(seed, codec, 3, None);
    let a = sim.subscribe(3, 10_000_000, false);
    let b = sim.subscribe(3, 10_000_000, false);
    sim.run_until(6_000);
    // Everyone gets the top layer with plenty of bandwidth.
    for s in [a, b] {
        for st in &sim.subscribers[s].streams {
            let cur = sim.router.consumer_layers(st.consumer).unwrap().current;
            assert_eq!(cur.map(|c| c.1), Some(2), "subscriber {s}");
        }
    }
    // A's bandwidth drops to 300 kbit/s per stream: down to the lowest encoding.
    sim.subscribers[a].bandwidth_bps = 300_000;
    sim.run_until(11_000);
    for st in &sim.subscribers[a].streams {
        let cur = sim.router.consumer_layers(st.consumer).unwrap().current;
        assert_eq!(cur.map(|c| c.1), Some(0));
    }
    // Back up: after the hold and a key frame, the top layer again.
    sim.subscribers[a].bandwidth_bps = 10_000_000;
    sim.run_until(17_000);
    for s in [a, b] {
        for (i, _) in sim.subscribers[s].streams.iter().enumerate() {
            let r = sim.check_stream(s, i, 300);
            if std::env::var_os("SFU_SIM_REPORT").is_some() {
                let st = &sim.subscribers[s].streams[i];
                let (cc, nc) = sim.router.consumer_counters(st.consumer).unwrap();
                eprintln!(
                    "{codec:?} subscriber {s} stream {i}: received {} gaps {} rtx {} \
                     switches {:?}; forwarded {} retransmitted {} nacked {}",
                    r.received,
                    r.gaps,
                    r.rtx,
                    r.switches,
                    cc.forwarded,
                    nc.retransmitted,
                    nc.requested
                );
            }
            assert_eq!(r.gaps, 0, "subscriber {s} stream {i}: {r:?}");
            assert_eq!(r.last_layer, Some(2));
            assert!(r.received > 1_000);
            assert!(r.rtx > 0, "losses were repaired over RTX");
            if s == a {
                let layers: Vec<u8> = r.switches.iter().map(|x| x.2).collect();
                assert!(layers.contains(&0) && layers.ends_with(&[2]), "{layers:?}");
            } else {
                // B never changed layer after its first key frame.
                assert!(r.switches.is_empty(), "{:?}", r.switches);
            }
        }
    }
    // Key-frame requests toward each publisher were aggregated: at most one per 500 ms per
    // encoding (plus the repeats), however many consumers asked.
    for p in &sim.publishers {
        for (l, layer) in p.layers.iter().enumerate() {
            assert!(
                layer.plis <= 17 * 2 + 2,
                "publisher layer {l}: {} requests",
                layer.plis
            );
            let (nack, kf) = sim.router.encoding_counters(p.producer, l as u8).unwrap();
            assert!(kf.sent >= u64::from(layer.plis));
            assert!(nack.recovered > 0, "{nack:?}");
        }
    }
    let c = sim.router.counters();
    if std::env::var_os("SFU_SIM_REPORT").is_some() {
        eprintln!("{codec:?} router: {c:?}");
        for p in &sim.publishers {
            let plis: Vec<u32> = p.layers.iter().map(|l| l.plis).collect();
            eprintln!(
                "{codec:?} publisher: key-frame requests per layer {plis:?}, NACKed {}",
                p.nacked
            );
        }
    }
    assert_eq!(
        c.malformed_rtp + c.bad_payload + c.unknown_ssrc + c.wrong_pt,
        0
    );
    assert!(c.retransmissions > 0 && c.nacks_sent > 0 && c.reports_sent > 0);
}

#[test]
fn h264_simulcast_under_loss_is_continuous_and_switches_at_key_frames() {
    simulcast_under_loss(VideoCodec::H264, 1);
}

#[test]
fn vp8_simulcast_under_loss_keeps_picture_ids_continuous() {
    simulcast_under_loss(VideoCodec::Vp8, 2);
}

#[test]
fn hostile_subscriber_and_a_publisher_stopping_mid_frame_do_not_hurt_the_others() {
    let mut sim = Sim::new(3, VideoCodec::H264, 3, None);
    let good = sim.subscribe(3, 10_000_000, false);
    let bad = sim.subscribe(0, 10_000_000, false);
    sim.subscribers[bad].hostile = true;
    sim.publishers[2].stop_at = Some(sim.ms(5_000));
    sim.run_until(10_000);
    for i in 0..2 {
        let r = sim.check_stream(good, i, 300);
        assert_eq!(r.gaps, 0, "{r:?}");
        // Still receiving long after the third publisher stopped.
        let last = *sim.subscribers[good].streams[i].seen.keys().last().unwrap();
        let first = *sim.subscribers[good].streams[i].seen.keys().next().unwrap();
        assert!(last - first > 1_500, "stream {i} stalled");
    }
    let r = sim.check_stream(good, 2, 0);
    assert!(r.received > 100);
    // The hostile receiver's NACK storm was capped and rate-limited.
    for st in &sim.subscribers[bad].streams {
        let (cc, nc) = sim.router.consumer_counters(st.consumer).unwrap();
        assert!(nc.capped > 100_000, "{nc:?}");
        assert!(nc.retransmitted <= 100 + 400 * 10, "{nc:?}");
        assert!(cc.pli_fir_received > 400);
    }
    // Its PLI flood reached each publisher as at most one request per 500 ms per encoding.
    for p in &sim.publishers[..2] {
        for layer in &p.layers {
            assert!(layer.plis <= 2 * 10 + 2, "{}", layer.plis);
        }
    }
}

#[test]
fn last_n_forwards_only_the_recent_speakers_and_a_sip_endpoint_follows_the_speaker() {
    let mut sim = Sim::new(4, VideoCodec::H264, 3, Some(1));
    let viewer = sim.subscribe(0, 10_000_000, false);
    let sip = sim.subscribe(0, 10_000_000, true);
    let producers: Vec<ProducerId> = sim.publishers.iter().map(|p| p.producer).collect();
    sim.router.handle_active_speaker(sim.now, producers[1]);
    sim.run_until(3_000);
    let received = |sim: &Sim, i: usize| sim.subscribers[viewer].streams[i].seen.len();
    assert_eq!(received(&sim, 0), 0);
    assert!(received(&sim, 1) > 100);
    assert_eq!(received(&sim, 2), 0);
    sim.router.handle_active_speaker(sim.now, producers[2]);
    let before = received(&sim, 1);
    sim.run_until(6_000);
    assert!(
        received(&sim, 1) - before < 200,
        "stopped soon after the change"
    );
    assert!(received(&sim, 2) > 100);
    let r = sim.check_stream(sip, 0, 300);
    assert_eq!(r.gaps, 0);
    // The SIP endpoint's one stream moved from speaker 1 to speaker 2 at a key frame.
    let pubs: Vec<u8> = r.switches.iter().map(|x| x.1).collect();
    assert_eq!(pubs, [2], "{r:?}");
}

/// Many seeds of the loss test, both codecs (run on purpose: `cargo test -p chorus-engine
/// --lib stress_sfu -- --ignored`).
#[test]
#[ignore]
fn stress_sfu_simulcast_many_seeds() {
    for seed in 10..40 {
        simulcast_under_loss(VideoCodec::H264, seed);
        simulcast_under_loss(VideoCodec::Vp8, seed + 1_000);
    }
}
