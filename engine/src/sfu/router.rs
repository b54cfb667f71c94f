//! The router: one conference's producers and consumers, packet routing, feedback routing,
//! reports and last-N.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::rtcp::{
    Fir, FirEntry, Nack, NtpClock, Pli, ReceiverReport, ReportBlock, RtcpPacket, SenderInfo,
    SenderReport, parse_rtcp_compound,
};
use crate::rtp::{Pt, RtpPacket, Ssrc};
use crate::sfu::consumer::{Consumer, Incoming, Rewrite, write_rewritten};
use crate::sfu::h264::H264Payload;
use crate::sfu::producer::{BufferSizes, Producer};
use crate::sfu::vp8::Vp8Descriptor;
use crate::sfu::{
    Arrival, ConsumerConfig, ConsumerCounters, ConsumerSource, KeyFrameRequest, NackCounters,
    ProducerConfig, VideoCodec, rtx,
};

/// A producer in a router: a small copyable slab index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId(pub u32);

/// A consumer in a router: a small copyable slab index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u32);

/// A consumer's source now and the one it waits for, as (producer, encoding index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerLayers {
    /// What it forwards (None: waiting for a first key frame, or paused).
    pub current: Option<(ProducerId, u8)>,
    /// What it switches to at that source's next key frame.
    pub target: Option<(ProducerId, u8)>,
}

/// Where an RTCP packet the router made goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpTarget {
    /// To the publisher of a producer (NACK, PLI, FIR, RR).
    Producer(ProducerId),
    /// To the receiver of a consumer (SR).
    Consumer(ConsumerId),
}

/// The driver's transmit side: the router writes each outgoing packet straight into a buffer
/// the driver hands it (a transmit slot), then the driver protects and queues it.
pub trait SfuTransmit {
    /// Queues an RTP packet to the receiver of `to`: `fill` writes it into the buffer and
    /// returns its length (0: nothing to send). Returns whether a packet was queued.
    fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool;
    /// Queues an RTCP packet, the same way.
    fn send_rtcp(&mut self, to: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool;
}

/// Why a router call was refused (misuse or configuration; bad packets are counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    /// No producer with this id.
    #[error("unknown producer {0:?}")]
    UnknownProducer(ProducerId),
    /// No consumer with this id.
    #[error("unknown consumer {0:?}")]
    UnknownConsumer(ConsumerId),
    /// A producer needs 1 to 8 encodings.
    #[error("a producer needs 1 to 8 encodings, got {0}")]
    Encodings(usize),
    /// A payload type above 127.
    #[error("payload type {0} does not fit 7 bits")]
    PayloadType(u8),
    /// The SSRC is already used by a producer or consumer of this router.
    #[error("SSRC {0} already in use in this router")]
    SsrcCollision(Ssrc),
}

/// Why the router wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfuTimer {
    /// NACKs toward a publisher are due.
    Nack,
    /// A key-frame request toward a publisher may go out.
    KeyFrame,
    /// Layer choices are re-evaluated (bitrates, silent encodings).
    Layers,
    /// Sender reports to receivers and receiver reports to publishers.
    Reports,
}

/// What the router tells its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfuEvent {
    /// A consumer now forwards another producer or encoding (after its key frame).
    Switched {
        /// The consumer.
        consumer: ConsumerId,
        /// The producer now forwarded.
        producer: ProducerId,
        /// The encoding index within it.
        encoding: u8,
    },
    /// A consumer was removed with its producer.
    ConsumerClosed(ConsumerId),
}

/// Router-wide counters (bad input and what was done about it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterCounters {
    /// RTP packets taken in.
    pub rtp_in: u64,
    /// RTP that did not parse.
    pub malformed_rtp: u64,
    /// RTP for a producer id the router does not have.
    pub unknown_producer: u64,
    /// RTP whose SSRC is none of its producer's encodings (or a RID already bound).
    pub unknown_ssrc: u64,
    /// RTP with a payload type other than the producer's.
    pub wrong_pt: u64,
    /// Payloads the codec parser refused.
    pub bad_payload: u64,
    /// Packets already received (duplicates, retransmissions that came twice).
    pub duplicates: u64,
    /// Packets too long for the retransmission store (forwarded, not held).
    pub not_stored: u64,
    /// RTX packets that carried no original packet.
    pub bad_rtx: u64,
    /// RTCP from receivers that did not parse.
    pub malformed_rtcp: u64,
    /// Feedback naming an SSRC no consumer has.
    pub unknown_feedback_ssrc: u64,
    /// Upstream NACK packets sent.
    pub nacks_sent: u64,
    /// Upstream PLI sent.
    pub plis_sent: u64,
    /// Upstream FIR sent.
    pub firs_sent: u64,
    /// Retransmissions sent to receivers.
    pub retransmissions: u64,
    /// Reports (SR and RR) sent.
    pub reports_sent: u64,
    /// Events dropped because the driver did not poll them.
    pub events_dropped: u64,
}

/// A router's settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Forward only the video of the N most recent speakers (None: everyone).
    pub last_n: Option<usize>,
    /// Buffer sizes and feedback timing.
    pub sizes: BufferSizes,
    /// The SSRC the router sends its own RTCP (feedback, RRs) with.
    pub rtcp_ssrc: Ssrc,
    /// The wall-clock anchor for sender reports.
    pub ntp: NtpClock,
    /// Interval between SRs and RRs.
    pub report_interval: Duration,
    /// Interval between layer re-evaluations.
    pub layer_interval: Duration,
}

impl RouterConfig {
    /// Defaults around a wall-clock anchor.
    pub fn new(ntp: NtpClock) -> Self {
        Self {
            last_n: None,
            sizes: BufferSizes::default(),
            rtcp_ssrc: Ssrc(0x5f0_0001),
            ntp,
            report_interval: Duration::from_secs(1),
            layer_interval: Duration::from_millis(250),
        }
    }
}

/// Upstream NACKs per packet at most (the rest wait for the next round).
const NACKS_PER_PACKET: usize = 64;

/// One conference's SFU.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    producers: Vec<Option<Producer>>,
    consumers: Vec<Option<Consumer>>,
    /// Fixed-source consumers per producer slot.
    by_producer: Vec<Vec<u32>>,
    /// Consumers that follow the active speaker.
    followers: Vec<u32>,
    /// Producer slots, most recent speaker first (producers that never spoke in join order).
    speakers: Vec<u32>,
    /// Every SSRC in use: producers' (media and RTX) and consumers'.
    ssrcs: HashMap<u32, ()>,
    /// Consumer slot by its SSRC and its RTX SSRC, for feedback.
    consumer_by_ssrc: HashMap<u32, u32>,
    scratch: Box<[u8]>,
    events: VecDeque<SfuEvent>,
    counters: RouterCounters,
    next_reports: Instant,
    next_layers: Instant,
}

impl Router {
    /// An empty router.
    pub fn new(now: Instant, config: RouterConfig) -> Self {
        Self {
            scratch: vec![0; config.sizes.max_packet_len.max(64) + 64].into_boxed_slice(),
            config,
            producers: Vec::new(),
            consumers: Vec::new(),
            by_producer: Vec::new(),
            followers: Vec::new(),
            speakers: Vec::new(),
            ssrcs: HashMap::new(),
            consumer_by_ssrc: HashMap::new(),
            events: VecDeque::new(),
            counters: RouterCounters::default(),
            next_reports: now + config.report_interval,
            next_layers: now + config.layer_interval,
        }
    }

    /// The router-wide counters.
    pub fn counters(&self) -> &RouterCounters {
        &self.counters
    }

    /// A consumer's counters and its NACK responder's.
    pub fn consumer_counters(&self, id: ConsumerId) -> Option<(ConsumerCounters, NackCounters)> {
        let c = self.consumer(id)?;
        Some((c.counters, *c.nack.counters()))
    }

    /// What a consumer forwards now and what it waits to switch to.
    pub fn consumer_layers(&self, id: ConsumerId) -> Option<ConsumerLayers> {
        let c = self.consumer(id)?;
        let f = |x: Option<(u32, u8)>| x.map(|(p, e)| (ProducerId(p), e));
        Some(ConsumerLayers {
            current: f(c.current),
            target: f(c.target),
        })
    }

    /// Counters of a producer encoding: its upstream NACK generator and key-frame requester.
    pub fn encoding_counters(
        &self,
        id: ProducerId,
        encoding: u8,
    ) -> Option<(
        crate::sfu::NackGeneratorCounters,
        crate::sfu::KeyFrameCounters,
    )> {
        let e = self.producer(id)?.encodings.get(usize::from(encoding))?;
        Some((*e.nack.counters(), *e.key_frames.counters()))
    }

    fn producer(&self, id: ProducerId) -> Option<&Producer> {
        self.producers.get(id.0 as usize)?.as_ref()
    }

    fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        self.consumers.get(id.0 as usize)?.as_ref()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    // ---- control ----

    /// Adds a producer. Its SSRCs (media and RTX) must be new to the router.
    pub fn add_producer(
        &mut self,
        now: Instant,
        config: ProducerConfig,
    ) -> Result<ProducerId, SfuError> {
        let n = config.encodings.len();
        if n == 0 || n > 8 {
            return Err(SfuError::Encodings(n));
        }
        let rtx_pts = config.encodings.iter().filter_map(|e| e.rtx.map(|r| r.pt));
        check_pts(std::iter::once(config.pt).chain(rtx_pts))?;
        let mut new_ssrcs = Vec::new();
        for e in &config.encodings {
            new_ssrcs.extend(e.ssrc.map(|s| s.0));
            new_ssrcs.extend(e.rtx.map(|r| r.ssrc.0));
        }
        for (i, s) in new_ssrcs.iter().enumerate() {
            if self.ssrcs.contains_key(s) || new_ssrcs[..i].contains(s) {
                return Err(SfuError::SsrcCollision(Ssrc(*s)));
            }
        }
        for s in new_ssrcs {
            self.ssrcs.insert(s, ());
        }
        let producer = Producer::new(now, config, &self.config.sizes);
        let slot = match self.producers.iter().position(Option::is_none) {
            Some(i) => {
                // INVARIANT: i is the position of an empty slot.
                self.producers[i] = Some(producer);
                i
            }
            None => {
                self.producers.push(Some(producer));
                self.by_producer.push(Vec::new());
                self.producers.len() - 1
            }
        };
        let slot = slot as u32;
        self.speakers.push(slot);
        self.update_forwarding(now);
        Ok(ProducerId(slot))
    }

    /// Removes a producer and the consumers that take only it (`SfuEvent::ConsumerClosed`).
    pub fn remove_producer(&mut self, now: Instant, id: ProducerId) -> Result<(), SfuError> {
        let Some(p) = self.producers.get_mut(id.0 as usize).and_then(Option::take) else {
            return Err(SfuError::UnknownProducer(id));
        };
        for e in &p.encodings {
            if let Some(s) = e.ssrc {
                self.ssrcs.remove(&s.0);
            }
            if let Some(r) = e.config.rtx {
                self.ssrcs.remove(&r.ssrc.0);
            }
        }
        // INVARIANT: by_producer grows with producers, so a producer's slot has an entry.
        let consumers = std::mem::take(&mut self.by_producer[id.0 as usize]);
        for c in consumers {
            self.drop_consumer(c);
            self.events
                .push_back(SfuEvent::ConsumerClosed(ConsumerId(c)));
        }
        self.speakers.retain(|&s| s != id.0);
        for &f in &self.followers {
            if let Some(c) = self.consumers.get_mut(f as usize).and_then(Option::as_mut) {
                c.forget_producer(id.0);
            }
        }
        self.update_forwarding(now);
        Ok(())
    }

    /// Adds a consumer. It starts forwarding at the first key frame of the encoding chosen
    /// for it, which is requested at once.
    pub fn add_consumer(
        &mut self,
        now: Instant,
        config: ConsumerConfig,
    ) -> Result<ConsumerId, SfuError> {
        if let ConsumerSource::Producer(p) = config.source
            && self.producer(p).is_none()
        {
            return Err(SfuError::UnknownProducer(p));
        }
        check_pts(std::iter::once(config.pt).chain(config.rtx.map(|r| r.pt)))?;
        let mut new_ssrcs = vec![config.ssrc.0];
        new_ssrcs.extend(config.rtx.map(|r| r.ssrc.0));
        for (i, s) in new_ssrcs.iter().enumerate() {
            if self.ssrcs.contains_key(s) || new_ssrcs[..i].contains(s) {
                return Err(SfuError::SsrcCollision(Ssrc(*s)));
            }
        }
        let consumer = Consumer::new(config, self.config.sizes.history_packets);
        let slot = match self.consumers.iter().position(Option::is_none) {
            Some(i) => {
                // INVARIANT: i is the position of an empty slot.
                self.consumers[i] = Some(consumer);
                i
            }
            None => {
                self.consumers.push(Some(consumer));
                self.consumers.len() - 1
            }
        } as u32;
        for s in new_ssrcs {
            self.ssrcs.insert(s, ());
            self.consumer_by_ssrc.insert(s, slot);
        }
        match config.source {
            // INVARIANT: the producer was checked to exist, and by_producer grows with
            // producers.
            ConsumerSource::Producer(p) => self.by_producer[p.0 as usize].push(slot),
            ConsumerSource::ActiveSpeaker { .. } => self.followers.push(slot),
        }
        self.update_forwarding(now);
        self.choose_layers(now, slot);
        Ok(ConsumerId(slot))
    }

    /// Removes a consumer.
    pub fn remove_consumer(&mut self, id: ConsumerId) -> Result<(), SfuError> {
        if self.consumer(id).is_none() {
            return Err(SfuError::UnknownConsumer(id));
        }
        for list in &mut self.by_producer {
            list.retain(|&c| c != id.0);
        }
        self.followers.retain(|&c| c != id.0);
        self.drop_consumer(id.0);
        Ok(())
    }

    fn drop_consumer(&mut self, slot: u32) {
        if let Some(c) = self.consumers.get_mut(slot as usize).and_then(Option::take) {
            self.ssrcs.remove(&c.config.ssrc.0);
            self.consumer_by_ssrc.remove(&c.config.ssrc.0);
            if let Some(r) = c.config.rtx {
                self.ssrcs.remove(&r.ssrc.0);
                self.consumer_by_ssrc.remove(&r.ssrc.0);
            }
        }
    }

    /// The consumer `id`, or `UnknownConsumer`.
    fn consumer_mut(&mut self, id: ConsumerId) -> Result<&mut Consumer, SfuError> {
        self.consumers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(SfuError::UnknownConsumer(id))
    }

    /// The receiver's bandwidth estimate for this consumer (REMB, transport-cc), in bits/s.
    pub fn set_bandwidth(
        &mut self,
        now: Instant,
        id: ConsumerId,
        bps: u32,
    ) -> Result<(), SfuError> {
        let c = self.consumer_mut(id)?;
        c.bandwidth_bps = Some(bps);
        self.choose_layers(now, id.0);
        Ok(())
    }

    /// The tallest picture the receiver wants from this consumer.
    pub fn set_max_height(
        &mut self,
        now: Instant,
        id: ConsumerId,
        height: u16,
    ) -> Result<(), SfuError> {
        let c = self.consumer_mut(id)?;
        c.config.max_height = height;
        self.choose_layers(now, id.0);
        Ok(())
    }

    /// The payload types a receiver takes each codec with on this consumer's stream, when it
    /// takes several (a SIP endpoint following the speaker whose m=video offers H.264 and
    /// VP8): forwarded packets carry the one of their source's codec, and a speaker follower
    /// follows only publishers of a codec it takes. All None (the default): `pt` of the
    /// consumer's configuration for any codec.
    pub fn set_codec_pts(
        &mut self,
        now: Instant,
        id: ConsumerId,
        h264: Option<Pt>,
        vp8: Option<Pt>,
    ) -> Result<(), SfuError> {
        check_pts([h264, vp8].into_iter().flatten())?;
        let c = self.consumer_mut(id)?;
        c.codec_pts = [h264, vp8];
        self.update_forwarding(now);
        Ok(())
    }

    /// The mixer's active speaker changed to the publisher of `producer`: it moves to the
    /// front of the last-N order, and consumers following the speaker move to it.
    pub fn handle_active_speaker(&mut self, now: Instant, producer: ProducerId) {
        let Some(i) = self.speakers.iter().position(|&p| p == producer.0) else {
            return;
        };
        if i == 0 {
            return;
        }
        // INVARIANT: i is a position in speakers.
        self.speakers[..=i].rotate_right(1);
        self.update_forwarding(now);
    }

    /// Applies last-N and the active speaker: pauses consumers of producers outside the
    /// last N, resumes (with a key-frame request) those inside, points speaker followers at
    /// the most recent speaker other than themselves.
    fn update_forwarding(&mut self, now: Instant) {
        let n = self.config.last_n.unwrap_or(usize::MAX);
        for (rank, &p) in self.speakers.iter().enumerate() {
            let forwarded = rank < n;
            let Some(list) = self.by_producer.get(p as usize) else {
                continue;
            };
            for &c in list {
                let Some(consumer) = self.consumers.get_mut(c as usize).and_then(Option::as_mut)
                else {
                    continue;
                };
                let pause = !forwarded;
                if consumer.paused == pause {
                    continue;
                }
                consumer.paused = pause;
                if forwarded {
                    consumer.reset_current();
                    if let Some((tp, te)) = consumer.target {
                        consumer.counters.key_frame_requests += 1;
                        request_key_frame(&mut self.producers, now, tp, te);
                    }
                }
            }
        }
        for i in 0..self.followers.len() {
            // INVARIANT: i < followers.len(), and choose_layers does not change followers.
            let f = self.followers[i];
            let Some(c) = self.consumers.get(f as usize).and_then(Option::as_ref) else {
                continue;
            };
            let ConsumerSource::ActiveSpeaker { except } = c.config.source else {
                continue;
            };
            let producers = &self.producers;
            let takes = |p: u32| {
                (producers.get(p as usize))
                    .and_then(Option::as_ref)
                    .is_some_and(|p| c.pt_for(p.config.codec).is_some())
            };
            let speaker = self
                .speakers
                .iter()
                .copied()
                .find(|&p| Some(ProducerId(p)) != except && takes(p));
            if c.speaker != speaker {
                if let Some(c) = self.consumers.get_mut(f as usize).and_then(Option::as_mut) {
                    c.speaker = speaker;
                }
                self.choose_layers(now, f);
            }
        }
    }

    /// Re-chooses a consumer's encoding. A new target gets a key-frame request, and so
    /// does a target still waited for (the requester aggregates and rate-limits them).
    fn choose_layers(&mut self, now: Instant, slot: u32) {
        let Some(c) = self
            .consumers
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let source = match c.config.source {
            ConsumerSource::Producer(p) => Some(p.0),
            ConsumerSource::ActiveSpeaker { .. } => c.speaker,
        };
        let Some(p) = source else {
            return;
        };
        let Some(producer) = self.producers.get(p as usize).and_then(Option::as_ref) else {
            return;
        };
        let base = c.target.filter(|&(tp, _)| tp == p).map(|(_, e)| e);
        let chosen = c
            .choose_encoding(now, &producer.encodings, base)
            // Nothing active yet: aim at the tallest wanted encoding, for its first key frame.
            .unwrap_or_else(|| {
                producer
                    .encodings
                    .iter()
                    .rposition(|e| e.config.height <= c.config.max_height)
                    .unwrap_or(0) as u8
            });
        let new_target = Some((p, chosen));
        let changed = new_target != c.target;
        c.target = new_target;
        if c.paused || c.current == new_target {
            return;
        }
        if changed {
            c.counters.key_frame_requests += 1;
        }
        request_key_frame(&mut self.producers, now, p, chosen);
    }

    // ---- packets ----

    /// An RTP packet from the publisher of `producer` (decrypted). Forwards it to every
    /// consumer that sends its encoding; bad packets are counted and dropped.
    pub fn handle_rtp<S: SfuTransmit>(
        &mut self,
        now: Instant,
        producer: ProducerId,
        packet: &[u8],
        sink: &mut S,
    ) {
        self.counters.rtp_in += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        self.route_rtp(now, producer, packet, &mut scratch, sink);
        self.scratch = scratch;
    }

    fn route_rtp<S: SfuTransmit>(
        &mut self,
        now: Instant,
        producer: ProducerId,
        packet: &[u8],
        scratch: &mut [u8],
        sink: &mut S,
    ) {
        let Some(prod) = self
            .producers
            .get_mut(producer.0 as usize)
            .and_then(Option::as_mut)
        else {
            self.counters.unknown_producer += 1;
            return;
        };
        let Ok(first) = RtpPacket::parse(packet) else {
            self.counters.malformed_rtp += 1;
            return;
        };
        let ssrc = first.ssrc();
        let (index, is_rtx) = match prod.encoding_of(ssrc) {
            Some(found) => found,
            None => {
                // RFC 8852: an encoding named by RID learns its SSRC from its first packet;
                // so does the one stream of a publisher that announced no SSRC.
                let rid = prod.config.rid_ext_id.and_then(|id| first.extension(id));
                let unbound = rid.and_then(|r| prod.unbound_encoding_with_rid(r));
                match unbound.or_else(|| prod.unannounced_encoding(first.pt())) {
                    Some(i) if !self.ssrcs.contains_key(&ssrc.0) => {
                        self.ssrcs.insert(ssrc.0, ());
                        let e = &mut prod.encodings[i];
                        e.ssrc = Some(ssrc);
                        e.recv = Some(
                            crate::rtp::RtpStreamRecv::new(ssrc, prod.config.clock_rate)
                                .with_min_sequential(1),
                        );
                        (i, false)
                    }
                    _ => {
                        self.counters.unknown_ssrc += 1;
                        return;
                    }
                }
            }
        };
        let pt = prod.config.pt;
        // INVARIANT: encoding_of and unbound_encoding_with_rid return valid indices.
        let enc = &mut prod.encodings[index];
        let bytes: &[u8] = if is_rtx {
            if enc.config.rtx.is_some_and(|r| r.pt != first.pt()) {
                self.counters.wrong_pt += 1;
                return;
            }
            let Some(media_ssrc) = enc.ssrc else {
                self.counters.bad_rtx += 1;
                return;
            };
            let Some(dst) = scratch.get_mut(..packet.len()) else {
                self.counters.not_stored += 1;
                return;
            };
            dst.copy_from_slice(packet);
            match rtx::unwrap_in_place(scratch, packet.len(), media_ssrc, pt) {
                // INVARIANT: unwrapping shortens the packet, which fit the scratch buffer.
                Some((n, _)) => &scratch[..n],
                None => {
                    self.counters.bad_rtx += 1;
                    return;
                }
            }
        } else {
            packet
        };
        // An ordinary packet was parsed above; an unwrapped RTX one is parsed once, here.
        let pkt = if is_rtx {
            let Ok(pkt) = RtpPacket::parse(bytes) else {
                self.counters.malformed_rtp += 1;
                return;
            };
            pkt
        } else {
            first
        };
        if pkt.pt() != pt {
            self.counters.wrong_pt += 1;
            return;
        }
        let src_seq = enc.unwrapper.extend(pkt.seq());
        if enc.store.contains(src_seq) {
            self.counters.duplicates += 1;
            return;
        }
        let (key_frame, vp8) = match prod.config.codec {
            VideoCodec::H264 => match H264Payload::parse(pkt.payload()) {
                Ok(h) => (h.starts_key_frame(), None),
                Err(_) => {
                    self.counters.bad_payload += 1;
                    return;
                }
            },
            VideoCodec::Vp8 => match Vp8Descriptor::parse(pkt.payload()) {
                Ok(d) => (d.key_frame, Some(d)),
                Err(_) => {
                    self.counters.bad_payload += 1;
                    return;
                }
            },
        };
        if prod.config.nack && enc.nack.handle_packet(now, src_seq) == Arrival::GapTooBig {
            enc.key_frames.handle_request(now);
        }
        if let Some(recv) = enc.recv.as_mut() {
            recv.handle_packet(now, pkt.seq(), pkt.timestamp());
        }
        if !enc.store.insert(src_seq, bytes) {
            self.counters.not_stored += 1;
        }
        if key_frame {
            enc.key_frames.handle_key_frame();
            enc.key_frame_seen = true;
        }
        enc.account(now, bytes.len());
        let highest = enc.unwrapper.highest().unwrap_or(src_seq);
        let enc = &prod.encodings[index];
        let inc = Incoming {
            producer: producer.0,
            encoding: index as u8,
            src_seq,
            packet: pkt,
            vp8,
            key_frame,
            clock_rate: prod.config.clock_rate,
            codec: prod.config.codec,
            extensions: prod.config.extensions,
        };
        let fixed = self
            .by_producer
            .get(producer.0 as usize)
            .map_or(&[][..], |v| v);
        for &c in fixed.iter().chain(self.followers.iter()) {
            let Some(consumer) = self.consumers.get_mut(c as usize).and_then(Option::as_mut) else {
                continue;
            };
            let before = consumer.current;
            consumer.forward(now, &inc, |fill| sink.send_rtp(ConsumerId(c), fill));
            if consumer.current == before {
                continue;
            }
            let Some((p, e)) = consumer.current else {
                continue;
            };
            push_event(
                &mut self.events,
                &mut self.counters,
                SfuEvent::Switched {
                    consumer: ConsumerId(c),
                    producer: ProducerId(p),
                    encoding: e,
                },
            );
            // Packets of the new encoding that overtook its key frame were not forwarded
            // then: send them now, from the store, so the receiver sees no gap.
            let newer = highest
                .0
                .saturating_sub(src_seq.0)
                .min(enc.store.capacity() as u64);
            for seq in src_seq.0 + 1..=src_seq.0 + newer {
                let seq = crate::rtp::SeqNo(seq);
                let Some(pkt) = enc.store.get(seq).and_then(|b| RtpPacket::parse(b).ok()) else {
                    continue;
                };
                let vp8 = match prod.config.codec {
                    VideoCodec::Vp8 => Vp8Descriptor::parse(pkt.payload()).ok(),
                    VideoCodec::H264 => None,
                };
                let late = Incoming {
                    src_seq: seq,
                    packet: pkt,
                    vp8,
                    key_frame: false,
                    ..inc
                };
                consumer.forward(now, &late, |fill| sink.send_rtp(ConsumerId(c), fill));
            }
        }
    }

    /// An RTCP compound from a publisher (decrypted): its sender reports feed the LSR/DLSR
    /// of the router's receiver reports.
    pub fn handle_producer_rtcp(&mut self, now: Instant, producer: ProducerId, compound: &[u8]) {
        let Some(prod) = self
            .producers
            .get_mut(producer.0 as usize)
            .and_then(Option::as_mut)
        else {
            self.counters.unknown_producer += 1;
            return;
        };
        for packet in parse_rtcp_compound(compound) {
            match packet {
                Ok(RtcpPacket::SenderReport(sr)) => {
                    for e in &mut prod.encodings {
                        if let Some(recv) = e.recv.as_mut().filter(|r| r.ssrc() == sr.ssrc()) {
                            recv.handle_sender_report(now, sr.info().ntp);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    self.counters.malformed_rtcp += 1;
                    return;
                }
            }
        }
    }

    /// An RTCP compound from a receiver (decrypted): NACKs are answered from the consumer's
    /// history (over RTX when negotiated), PLI/FIR become key-frame requests toward the
    /// producer, REMB sets bandwidth (shared equally among the consumers it names).
    pub fn handle_consumer_rtcp<S: SfuTransmit>(
        &mut self,
        now: Instant,
        compound: &[u8],
        sink: &mut S,
    ) {
        for packet in parse_rtcp_compound(compound) {
            let packet = match packet {
                Ok(p) => p,
                Err(_) => {
                    self.counters.malformed_rtcp += 1;
                    return;
                }
            };
            match packet {
                RtcpPacket::Nack(nack) => self.answer_nack(now, &nack, sink),
                RtcpPacket::Pli(pli) => self.consumer_wants_key_frame(now, pli.media_ssrc),
                RtcpPacket::Fir(fir) => {
                    for FirEntry { ssrc, .. } in fir.entries() {
                        self.consumer_wants_key_frame(now, ssrc);
                    }
                }
                RtcpPacket::Remb(remb) => {
                    let found = remb
                        .ssrcs()
                        .filter(|s| self.consumer_by_ssrc.contains_key(&s.0))
                        .count();
                    if found == 0 {
                        self.counters.unknown_feedback_ssrc += 1;
                        continue;
                    }
                    let share =
                        u32::try_from(remb.bitrate_bps() / found as u64).unwrap_or(u32::MAX);
                    for s in remb.ssrcs() {
                        if let Some(&c) = self.consumer_by_ssrc.get(&s.0) {
                            let _ = self.set_bandwidth(now, ConsumerId(c), share);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn consumer_wants_key_frame(&mut self, now: Instant, media: Ssrc) {
        let Some(c) = self
            .consumer_by_ssrc
            .get(&media.0)
            .and_then(|&c| self.consumers.get_mut(c as usize))
            .and_then(Option::as_mut)
        else {
            self.counters.unknown_feedback_ssrc += 1;
            return;
        };
        c.counters.pli_fir_received += 1;
        if let Some((p, e)) = c.current.or(c.target) {
            c.counters.key_frame_requests += 1;
            request_key_frame(&mut self.producers, now, p, e);
        }
    }

    fn answer_nack<S: SfuTransmit>(&mut self, now: Instant, nack: &Nack<'_>, sink: &mut S) {
        let Some(&slot) = self.consumer_by_ssrc.get(&nack.media_ssrc().0) else {
            self.counters.unknown_feedback_ssrc += 1;
            return;
        };
        let Some(c) = self
            .consumers
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let producers = &self.producers;
        let (ssrc, rtx, to) = (c.config.ssrc, c.config.rtx, c.config.extensions);
        let codec_pt = |codec| c.pt_for(codec).unwrap_or(c.config.pt);
        let pts = [codec_pt(VideoCodec::H264), codec_pt(VideoCodec::Vp8)];
        let mut rtx_seq = c.rtx_seq;
        let mut sent = 0u64;
        c.nack.handle_nack(now, nack, |s| {
            let Some((src, codec, from)) = producers
                .get(s.producer as usize)
                .and_then(Option::as_ref)
                .and_then(|p| {
                    let e = p.encodings.get(usize::from(s.encoding))?;
                    Some((e.store.get(s.src_seq)?, p.config.codec, p.config.extensions))
                })
            else {
                return false;
            };
            let rw = Rewrite {
                ssrc,
                // INVARIANT: codec indices are 0 and 1.
                pt: pts[codec.index()],
                seq: s.out_seq.wire(),
                timestamp: s.timestamp,
                picture_id: s.picture_id,
                tl0_pic_idx: s.tl0_pic_idx,
                extensions: (from, to),
            };
            let this_rtx_seq = rtx_seq;
            let ok = sink.send_rtp(ConsumerId(slot), &|out: &mut [u8]| {
                let n = write_rewritten(out, src, &rw);
                match (n, rtx) {
                    (0, _) => 0,
                    (n, Some(r)) => rtx::wrap_in_place(out, n, r, this_rtx_seq).unwrap_or(0),
                    (n, None) => n,
                }
            });
            if ok {
                sent += 1;
                if rtx.is_some() {
                    rtx_seq = rtx_seq.wrapping_add(1);
                }
            }
            ok
        });
        c.rtx_seq = rtx_seq;
        self.counters.retransmissions += sent;
    }

    // ---- time ----

    /// When the router wants [`Router::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, SfuTimer)> {
        let mut best = (self.next_reports, SfuTimer::Reports);
        let mut consider = |t: Instant, why: SfuTimer| {
            if t < best.0 {
                best = (t, why);
            }
        };
        consider(self.next_layers, SfuTimer::Layers);
        for p in self.producers.iter().flatten() {
            // An encoding whose SSRC is not learned yet cannot be sent feedback.
            for e in p.encodings.iter().filter(|e| e.ssrc.is_some()) {
                if let Some(t) = e.nack.poll_timeout().filter(|_| p.config.nack) {
                    consider(t, SfuTimer::Nack);
                }
                if let Some(t) = e.key_frames.poll_timeout() {
                    consider(t, SfuTimer::KeyFrame);
                }
            }
        }
        Some(best)
    }

    /// Runs what is due at `now`: upstream NACKs and key-frame requests, layer choices,
    /// reports.
    pub fn handle_timeout<S: SfuTransmit>(&mut self, now: Instant, sink: &mut S) {
        let sender = self.config.rtcp_ssrc;
        let mut lost = [0u16; NACKS_PER_PACKET];
        for (slot, p) in self.producers.iter_mut().enumerate() {
            let Some(p) = p.as_mut() else {
                continue;
            };
            let to = RtcpTarget::Producer(ProducerId(slot as u32));
            for e in &mut p.encodings {
                let Some(media) = e.ssrc else {
                    continue;
                };
                if p.config.nack {
                    let n = e.nack.poll_nacks(now, &mut lost);
                    if n > 0 {
                        // INVARIANT: poll_nacks writes at most lost.len() entries.
                        let list = &lost[..n];
                        if sink.send_rtcp(to, &|out: &mut [u8]| {
                            Nack::write(out, sender, media, list.iter().copied()).unwrap_or(0)
                        }) {
                            self.counters.nacks_sent += 1;
                        }
                    }
                }
                match e.key_frames.poll_request(now) {
                    Some(KeyFrameRequest::Pli) => {
                        let pli = Pli {
                            sender_ssrc: sender,
                            media_ssrc: media,
                        };
                        if sink.send_rtcp(to, &|out: &mut [u8]| pli.write(out).unwrap_or(0)) {
                            self.counters.plis_sent += 1;
                        }
                    }
                    Some(KeyFrameRequest::Fir { seq_nr }) => {
                        let entry = [FirEntry {
                            ssrc: media,
                            seq_nr,
                        }];
                        if sink.send_rtcp(to, &|out: &mut [u8]| {
                            Fir::write(out, sender, &entry).unwrap_or(0)
                        }) {
                            self.counters.firs_sent += 1;
                        }
                    }
                    None => {}
                }
            }
        }
        if now >= self.next_layers {
            self.next_layers = now + self.config.layer_interval;
            for slot in 0..self.consumers.len() as u32 {
                self.choose_layers(now, slot);
            }
        }
        if now >= self.next_reports {
            self.next_reports = now + self.config.report_interval;
            self.send_reports(now, sink);
        }
    }

    fn send_reports<S: SfuTransmit>(&mut self, now: Instant, sink: &mut S) {
        let sender = self.config.rtcp_ssrc;
        for (slot, p) in self.producers.iter_mut().enumerate() {
            let Some(p) = p.as_mut() else {
                continue;
            };
            let mut blocks = [ReportBlock::default(); 8];
            let mut n = 0;
            for e in &mut p.encodings {
                if let Some(b) = e.recv.as_mut().and_then(|r| r.report_block(now))
                    && let Some(dst) = blocks.get_mut(n)
                {
                    *dst = b;
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            // INVARIANT: n counts the blocks written, at most blocks.len().
            let blocks = &blocks[..n];
            if sink.send_rtcp(RtcpTarget::Producer(ProducerId(slot as u32)), &|out| {
                ReceiverReport::write(out, sender, blocks).unwrap_or(0)
            }) {
                self.counters.reports_sent += 1;
            }
        }
        let ntp = self.config.ntp.ntp(now);
        for (slot, c) in self.consumers.iter().enumerate() {
            let Some(c) = c.as_ref() else {
                continue;
            };
            let rate = c
                .current
                .and_then(|(p, _)| self.producers.get(p as usize)?.as_ref())
                .map_or(90_000, |p| p.config.clock_rate);
            let Some(rtp_timestamp) = c.rtp_time_at(now, rate) else {
                continue;
            };
            let info = SenderInfo {
                ssrc: c.config.ssrc,
                ntp,
                rtp_timestamp,
                packet_count: c.packets_sent,
                octet_count: c.octets_sent,
            };
            if sink.send_rtcp(RtcpTarget::Consumer(ConsumerId(slot as u32)), &|out| {
                SenderReport::write(out, &info, &[]).unwrap_or(0)
            }) {
                self.counters.reports_sent += 1;
            }
        }
    }
}

/// Refuses a payload type that does not fit RTP's 7 bits.
fn check_pts(pts: impl IntoIterator<Item = Pt>) -> Result<(), SfuError> {
    match pts.into_iter().find(|pt| !pt.is_valid()) {
        Some(pt) => Err(SfuError::PayloadType(pt.0)),
        None => Ok(()),
    }
}

/// Events kept for the driver at most; older ones are dropped and counted.
const MAX_EVENTS: usize = 1_024;

fn push_event(events: &mut VecDeque<SfuEvent>, counters: &mut RouterCounters, e: SfuEvent) {
    if events.len() >= MAX_EVENTS {
        events.pop_front();
        counters.events_dropped += 1;
    }
    events.push_back(e);
}

/// Asks for a key frame of one producer encoding (aggregated by its requester).
fn request_key_frame(producers: &mut [Option<Producer>], now: Instant, p: u32, e: u8) {
    if let Some(enc) = producers
        .get_mut(p as usize)
        .and_then(Option::as_mut)
        .and_then(|p| p.encodings.get_mut(usize::from(e)))
    {
        enc.key_frames.handle_request(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{NtpTime, Remb};
    use crate::rtp::{Extension, ExtensionForm, Pt, RtpHeader};
    use crate::sfu::{EncodingConfig, KeyFrameMethod, NackLimits, RtxConfig};

    #[derive(Default)]
    struct Out(
        Vec<(Option<ConsumerId>, Vec<u8>)>,
        Vec<(RtcpTarget, Vec<u8>)>,
    );

    impl SfuTransmit for Out {
        fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
            let mut b = vec![0; 1_500];
            let n = fill(&mut b);
            b.truncate(n);
            self.0.push((Some(to), b));
            n > 0
        }

        fn send_rtcp(&mut self, to: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
            let mut b = vec![0; 1_500];
            let n = fill(&mut b);
            b.truncate(n);
            self.1.push((to, b));
            n > 0
        }
    }

    fn producer(ssrc: Option<u32>, rid: &str) -> ProducerConfig {
        ProducerConfig {
            codec: VideoCodec::H264,
            pt: Pt(96),
            clock_rate: 90_000,
            encodings: vec![EncodingConfig {
                ssrc: ssrc.map(Ssrc),
                rid: Some(rid.to_string()),
                rtx: Some(RtxConfig {
                    ssrc: Ssrc(ssrc.unwrap_or(0x77) + 1),
                    pt: Pt(97),
                }),
                height: 720,
                max_bitrate_bps: 1_000_000,
            }],
            key_frame_method: KeyFrameMethod::Pli,
            nack: true,
            rid_ext_id: Some(4),
            extensions: Default::default(),
        }
    }

    fn consumer(p: ProducerId, ssrc: u32) -> ConsumerConfig {
        ConsumerConfig {
            source: ConsumerSource::Producer(p),
            ssrc: Ssrc(ssrc),
            pt: Pt(100),
            rtx: None,
            max_height: 720,
            nack_limits: NackLimits::default(),
            extensions: Default::default(),
        }
    }

    fn router(now: Instant) -> Router {
        Router::new(now, RouterConfig::new(NtpClock::new(now, NtpTime(1 << 40))))
    }

    fn rtp(ssrc: u32, pt: u8, seq: u16, payload: &[u8], rid: Option<&[u8]>) -> Vec<u8> {
        let ext;
        let exts: &[Extension<'_>] = match rid {
            Some(r) => {
                ext = [Extension { id: 4, data: r }];
                &ext
            }
            None => &[],
        };
        let h = RtpHeader {
            pt: Pt(pt),
            seq,
            timestamp: u32::from(seq) * 3_000,
            ssrc: Ssrc(ssrc),
            extensions: exts,
            extension_form: ExtensionForm::OneByte,
            ..Default::default()
        };
        let mut b = vec![0; 200];
        let n = h.write(&mut b).unwrap();
        b.truncate(n);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_follower_taking_two_codecs_carries_each_in_its_payload_type() {
        let now = Instant::now();
        let mut r = router(now);
        let h264 = r.add_producer(now, producer(Some(10), "h")).unwrap();
        let mut vp8 = producer(Some(20), "v");
        vp8.codec = VideoCodec::Vp8;
        vp8.pt = Pt(98);
        let vp8 = r.add_producer(now, vp8).unwrap();
        let mut follower = consumer(h264, 500);
        follower.source = ConsumerSource::ActiveSpeaker { except: None };
        let f = r.add_consumer(now, follower).unwrap();
        // A receiver that takes only VP8 never follows the H.264 speaker.
        r.set_codec_pts(now, f, None, Some(Pt(111))).unwrap();
        let mut out = Out(Vec::new(), Vec::new());
        r.handle_rtp(now, h264, &rtp(10, 96, 1, &[0x65, 0x88], None), &mut out);
        assert!(
            out.0.is_empty(),
            "H.264 is not forwarded to a VP8-only follower"
        );
        r.handle_rtp(
            now,
            vp8,
            &rtp(20, 98, 1, &[0x10, 0x00, 0xaa], None),
            &mut out,
        );
        let sent = RtpPacket::parse(&out.0[0].1).unwrap();
        assert_eq!((sent.ssrc(), sent.pt()), (Ssrc(500), Pt(111)));
        // Taking both: the H.264 speaker comes in its own payload type, same stream.
        r.set_codec_pts(now, f, Some(Pt(110)), Some(Pt(111)))
            .unwrap();
        r.handle_active_speaker(now, h264);
        out.0.clear();
        r.handle_rtp(now, h264, &rtp(10, 96, 2, &[0x65, 0x88], None), &mut out);
        let sent = RtpPacket::parse(&out.0[0].1).unwrap();
        assert_eq!(
            (sent.ssrc(), sent.pt(), sent.seq()),
            (Ssrc(500), Pt(110), 2)
        );
        assert_eq!(
            r.set_codec_pts(now, f, Some(Pt(200)), None),
            Err(SfuError::PayloadType(200))
        );
    }

    #[test]
    fn refuses_ssrc_collisions_and_unknown_ids() {
        let now = Instant::now();
        let mut r = router(now);
        let p = r.add_producer(now, producer(Some(10), "f")).unwrap();
        assert_eq!(
            r.add_producer(now, producer(Some(10), "f")),
            Err(SfuError::SsrcCollision(Ssrc(10)))
        );
        // Its RTX SSRC (11) is taken too.
        assert_eq!(
            r.add_consumer(now, consumer(p, 11)),
            Err(SfuError::SsrcCollision(Ssrc(11)))
        );
        let mut no_encodings = producer(Some(20), "f");
        no_encodings.encodings.clear();
        assert_eq!(
            r.add_producer(now, no_encodings),
            Err(SfuError::Encodings(0))
        );
        assert_eq!(
            r.add_consumer(now, consumer(ProducerId(9), 30)),
            Err(SfuError::UnknownProducer(ProducerId(9)))
        );
        let mut bad_pt = consumer(p, 40);
        bad_pt.pt = Pt(200);
        assert_eq!(r.add_consumer(now, bad_pt), Err(SfuError::PayloadType(200)));
        let c = r.add_consumer(now, consumer(p, 30)).unwrap();
        assert_eq!(
            r.set_bandwidth(now, ConsumerId(5), 1),
            Err(SfuError::UnknownConsumer(ConsumerId(5)))
        );
        r.remove_producer(now, p).unwrap();
        assert_eq!(r.poll_event(), Some(SfuEvent::ConsumerClosed(c)));
        assert_eq!(r.remove_consumer(c), Err(SfuError::UnknownConsumer(c)));
        // The SSRCs are free again.
        let p = r.add_producer(now, producer(Some(10), "f")).unwrap();
        assert!(r.add_consumer(now, consumer(p, 30)).is_ok());
    }

    #[test]
    fn bad_input_is_counted_and_dropped() {
        let now = Instant::now();
        let mut r = router(now);
        let p = r.add_producer(now, producer(Some(10), "f")).unwrap();
        let c = r.add_consumer(now, consumer(p, 30)).unwrap();
        let mut out = Out::default();
        let idr = [0x65, 1, 2, 3];
        r.handle_rtp(now, p, &[0x80, 96, 0], &mut out);
        r.handle_rtp(now, ProducerId(7), &rtp(10, 96, 1, &idr, None), &mut out);
        r.handle_rtp(now, p, &rtp(99, 96, 1, &idr, None), &mut out);
        r.handle_rtp(now, p, &rtp(10, 111, 1, &idr, None), &mut out);
        r.handle_rtp(now, p, &rtp(10, 96, 1, &[0x7c], None), &mut out);
        // An RTX packet without an OSN.
        r.handle_rtp(now, p, &rtp(11, 97, 1, &[], None), &mut out);
        // An RTX packet with another payload type than its stream's.
        r.handle_rtp(now, p, &rtp(11, 98, 2, &[0, 1, 0x65], None), &mut out);
        assert!(out.0.is_empty());
        let k = *r.counters();
        assert_eq!(
            (
                k.malformed_rtp,
                k.unknown_producer,
                k.unknown_ssrc,
                k.wrong_pt,
                k.bad_payload,
                k.bad_rtx
            ),
            (1, 1, 1, 2, 1, 1)
        );
        // A good key frame is forwarded with the consumer's SSRC and payload type; its
        // duplicate is not.
        r.handle_rtp(now, p, &rtp(10, 96, 1, &idr, None), &mut out);
        r.handle_rtp(now, p, &rtp(10, 96, 1, &idr, None), &mut out);
        assert_eq!(out.0.len(), 1);
        let fwd = RtpPacket::parse(&out.0[0].1).unwrap();
        assert_eq!(
            (fwd.ssrc(), fwd.pt(), fwd.payload()),
            (Ssrc(30), Pt(100), &idr[..])
        );
        assert_eq!(r.counters().duplicates, 1);
        assert_eq!(
            r.poll_event(),
            Some(SfuEvent::Switched {
                consumer: c,
                producer: p,
                encoding: 0
            })
        );
        // Truncated RTCP and feedback for unknown SSRCs.
        r.handle_consumer_rtcp(now, &[0x81, 205, 0, 9, 0], &mut out);
        let mut b = [0u8; 64];
        let n = Remb::write(&mut b, Ssrc(1), 500_000, &[Ssrc(12_345)]).unwrap();
        r.handle_consumer_rtcp(now, &b[..n], &mut out);
        let k = *r.counters();
        assert_eq!((k.malformed_rtcp, k.unknown_feedback_ssrc), (1, 1));
    }

    #[test]
    fn an_encoding_named_by_rid_learns_its_ssrc() {
        let now = Instant::now();
        let mut r = router(now);
        let p = r.add_producer(now, producer(None, "hi")).unwrap();
        r.add_consumer(now, consumer(p, 30)).unwrap();
        // A key frame is wanted, but there is no SSRC to ask yet: no timer fires for it.
        assert!(r.poll_timeout().is_some_and(|(at, _)| at > now));
        let mut out = Out::default();
        // A wrong RID is not bound; the right one is, and later packets need no RID.
        r.handle_rtp(now, p, &rtp(50, 96, 1, &[0x65, 0], Some(b"lo")), &mut out);
        assert_eq!(r.counters().unknown_ssrc, 1);
        r.handle_rtp(now, p, &rtp(50, 96, 1, &[0x65, 0], Some(b"hi")), &mut out);
        r.handle_rtp(now, p, &rtp(50, 96, 2, &[0x41, 0], None), &mut out);
        assert_eq!(out.0.len(), 2);
        // Another producer cannot claim the learned SSRC.
        assert_eq!(
            r.add_producer(now, producer(Some(50), "x")),
            Err(SfuError::SsrcCollision(Ssrc(50)))
        );
    }

    #[test]
    fn forwarded_extensions_are_renumbered_for_the_receiver_and_the_rest_removed() {
        let now = Instant::now();
        let mut r = router(now);
        let mut config = producer(Some(80), "r");
        config.extensions.abs_send_time = Some(3);
        let p = r.add_producer(now, config).unwrap();
        let mut c = consumer(p, 90);
        c.extensions.abs_send_time = Some(9);
        c.rtx = None;
        r.add_consumer(now, c).unwrap();
        let exts = [
            Extension { id: 4, data: b"r" },
            Extension {
                id: 3,
                data: &[1, 2, 3],
            },
        ];
        let h = RtpHeader {
            pt: Pt(96),
            seq: 5,
            ssrc: Ssrc(80),
            extensions: &exts,
            extension_form: ExtensionForm::OneByte,
            ..Default::default()
        };
        let mut pkt = vec![0; 200];
        let n = h.write(&mut pkt).unwrap();
        pkt.truncate(n);
        pkt.extend_from_slice(&[0x65, 0x88]);
        let mut out = Out::default();
        r.handle_rtp(now, p, &pkt, &mut out);
        // A NACK for it: the retransmission is renumbered the same way.
        let mut b = [0u8; 64];
        let wire = RtpPacket::parse(&out.0[0].1).unwrap().seq();
        let n = crate::rtcp::Nack::write(&mut b, Ssrc(1), Ssrc(90), [wire]).unwrap();
        r.handle_consumer_rtcp(now, &b[..n], &mut out);
        assert_eq!(out.0.len(), 2, "forwarded and retransmitted");
        for (_, bytes) in &out.0 {
            let f = RtpPacket::parse(bytes).unwrap();
            let got: Vec<(u8, Vec<u8>)> = (f.extensions().unwrap())
                .map(|e| e.map(|e| (e.id, e.data.to_vec())).unwrap())
                .collect();
            assert_eq!(got, [(9, vec![1, 2, 3])], "abs-send-time as 9, no rid");
            assert_eq!(f.payload(), [0x65, 0x88]);
        }
    }

    #[test]
    fn a_nack_after_a_publisher_left_never_resends_another_publishers_packet() {
        let now = Instant::now();
        let mut r = router(now);
        let a = r.add_producer(now, producer(Some(10), "a")).unwrap();
        let mut follower = consumer(a, 90);
        follower.source = ConsumerSource::ActiveSpeaker { except: None };
        follower.rtx = None;
        r.add_consumer(now, follower).unwrap();
        r.handle_active_speaker(now, a);
        let mut out = Out::default();
        r.handle_rtp(now, a, &rtp(10, 96, 1, &[0x65, 0xaa], None), &mut out);
        assert_eq!(out.0.len(), 1);
        let wire = RtpPacket::parse(&out.0[0].1).unwrap().seq();
        // A leaves; B takes its slot and sends a packet with the same sequence number.
        r.remove_producer(now, a).unwrap();
        let b = r.add_producer(now, producer(Some(20), "b")).unwrap();
        assert_eq!(b, a, "the slot is reused");
        r.handle_rtp(now, b, &rtp(20, 96, 1, &[0x65, 0xbb], None), &mut out);
        let before = out.0.len();
        // The receiver NACKs A's packet: it is gone, and B's is not sent in its place.
        let mut buf = [0u8; 64];
        let n = crate::rtcp::Nack::write(&mut buf, Ssrc(1), Ssrc(90), [wire]).unwrap();
        r.handle_consumer_rtcp(now, &buf[..n], &mut out);
        let resent = out.0[before..].iter().any(|(_, p)| {
            RtpPacket::parse(p).is_ok_and(|p| p.seq() == wire && p.payload() == [0x65, 0xbb])
        });
        assert!(!resent, "B's packet under A's sequence number");
    }

    #[test]
    fn an_unannounced_stream_is_learned_from_its_media_payload_type() {
        let now = Instant::now();
        let mut r = router(now);
        let mut config = producer(None, "x");
        config.encodings[0].rid = None;
        let p = r.add_producer(now, config).unwrap();
        r.add_consumer(now, consumer(p, 30)).unwrap();
        let mut out = Out::default();
        // A packet of another payload type (an RTX stream, say) does not bind it.
        r.handle_rtp(now, p, &rtp(70, 97, 1, &[0, 1, 0x65, 0], None), &mut out);
        assert_eq!((r.counters().unknown_ssrc, out.0.len()), (1, 0));
        r.handle_rtp(now, p, &rtp(60, 96, 1, &[0x65, 0], None), &mut out);
        r.handle_rtp(now, p, &rtp(60, 96, 2, &[0x41, 0], None), &mut out);
        assert_eq!(out.0.len(), 2);
        // Once bound, a second SSRC is unknown.
        r.handle_rtp(now, p, &rtp(61, 96, 3, &[0x65, 0], None), &mut out);
        assert_eq!((r.counters().unknown_ssrc, out.0.len()), (2, 2));
    }

    #[test]
    fn mutated_packets_and_feedback_never_panic_and_outputs_parse() {
        use crate::rtcp::{CompoundBuilder, FirEntry, Pli};
        use crate::rtp::xorshift::Xorshift;

        struct Check;
        impl SfuTransmit for Check {
            fn send_rtp(&mut self, _: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
                let mut b = [0u8; 2_048];
                let n = fill(&mut b);
                assert!(n == 0 || RtpPacket::parse(&b[..n]).is_ok());
                n > 0
            }
            fn send_rtcp(&mut self, _: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
                let mut b = [0u8; 2_048];
                let n = fill(&mut b);
                assert!(parse_rtcp_compound(&b[..n]).all(|p| p.is_ok()));
                n > 0
            }
        }

        let t0 = Instant::now();
        let mut now = t0;
        let mut r = router(t0);
        let mut vp8_config = producer(Some(40), "v");
        vp8_config.codec = VideoCodec::Vp8;
        let h = r.add_producer(now, producer(Some(10), "h")).unwrap();
        let v = r.add_producer(now, vp8_config).unwrap();
        let mut with_rtx = consumer(h, 30);
        with_rtx.rtx = Some(RtxConfig {
            ssrc: Ssrc(31),
            pt: Pt(101),
        });
        r.add_consumer(now, with_rtx).unwrap();
        r.add_consumer(now, consumer(v, 32)).unwrap();
        let mut follower = consumer(h, 33);
        follower.source = ConsumerSource::ActiveSpeaker { except: None };
        r.add_consumer(now, follower).unwrap();
        let mut rng = Xorshift::new(0x5f0);
        let payloads: [&[u8]; 6] = [
            &[0x65, 1, 2],
            &[0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 2],
            &[0x7c, 0x85, 1, 2],
            &[0x90, 0xe0, 0x80, 5, 7, 0x20, 0x00, 1],
            &[0x80, 0x80, 0x05, 1],
            &[0x10, 0x01, 9],
        ];
        let mut fb = [0u8; 512];
        for i in 0..40_000u32 {
            now += Duration::from_micros(rng.below(3_000));
            let (ssrc, pt, p) = match rng.below(4) {
                0 => (10, 96, h),
                1 => (11, 97, h),
                2 => (40, 96, v),
                _ => (rng.below(64) as u32, rng.below(128) as u8, v),
            };
            let payload = payloads[rng.below(6) as usize];
            let mut pkt = rtp(ssrc, pt, (i / 2) as u16, payload, None);
            if rng.chance(30) {
                rng.mutate(&mut pkt);
            }
            if rng.chance(5) {
                pkt.truncate(rng.below(pkt.len() as u64 + 1) as usize);
            }
            r.handle_rtp(now, p, &pkt, &mut Check);
            if rng.chance(10) {
                let mut b = CompoundBuilder::new(&mut fb);
                let media = Ssrc(30 + rng.below(5) as u32);
                let seqs = (0..rng.below(40) as u16).map(|k| k.wrapping_mul(3));
                let _ = b.append(|o| Nack::write(o, Ssrc(1), media, seqs));
                let _ = b.append(|o| {
                    Pli {
                        sender_ssrc: Ssrc(1),
                        media_ssrc: media,
                    }
                    .write(o)
                });
                let entry = [FirEntry {
                    ssrc: media,
                    seq_nr: 1,
                }];
                let _ = b.append(|o| Fir::write(o, Ssrc(1), &entry));
                let _ = b.append(|o| {
                    crate::rtcp::Remb::write(o, Ssrc(1), rng.below(3_000_000), &[media])
                });
                let n = b.len();
                if rng.chance(30) {
                    rng.mutate(&mut fb[..n]);
                }
                r.handle_consumer_rtcp(now, &fb[..n], &mut Check);
                r.handle_producer_rtcp(now, h, &fb[..n]);
            }
            if rng.chance(1) {
                r.handle_active_speaker(now, if rng.chance(50) { h } else { v });
            }
            while let Some((at, _)) = r.poll_timeout() {
                if at > now {
                    break;
                }
                r.handle_timeout(now, &mut Check);
            }
            while r.poll_event().is_some() {}
        }
        let c = r.counters();
        assert!(
            c.malformed_rtp + c.unknown_ssrc + c.wrong_pt + c.bad_payload > 1_000,
            "{c:?}"
        );
    }

    #[test]
    fn reports_go_both_ways_and_feedback_reaches_the_publisher() {
        let t0 = Instant::now();
        let mut r = router(t0);
        let p = r.add_producer(t0, producer(Some(10), "f")).unwrap();
        let c = r.add_consumer(t0, consumer(p, 30)).unwrap();
        let mut out = Out::default();
        // The consumer's creation asked for a key frame: a PLI for SSRC 10 goes up at once.
        r.handle_timeout(t0, &mut out);
        let (to, pli) = out.1.pop().unwrap();
        assert_eq!(to, RtcpTarget::Producer(p));
        assert_eq!(Pli::parse(&pli).unwrap().media_ssrc, Ssrc(10));
        // Key frame (seq 1, ts 3,000), then seq 4 (2 and 3 lost upstream).
        r.handle_rtp(t0, p, &rtp(10, 96, 1, &[0x65, 0], None), &mut out);
        r.handle_rtp(t0, p, &rtp(10, 96, 4, &[0x41, 0], None), &mut out);
        assert_eq!(out.0.len(), 2);
        let t1 = t0 + Duration::from_millis(10);
        r.handle_timeout(t1, &mut out);
        let (to, nack) = out.1.pop().unwrap();
        assert_eq!(to, RtcpTarget::Producer(p));
        let nack = Nack::parse(&nack).unwrap();
        assert_eq!(nack.lost().collect::<Vec<_>>(), [2, 3]);
        // One second on: an RR about SSRC 10 to the publisher, an SR from the consumer's
        // SSRC whose RTP time runs on from its last packet (ts 12,000 sent at t0).
        let t2 = t0 + Duration::from_secs(1);
        out.1.clear();
        while let Some((at, _)) = r.poll_timeout() {
            if at > t2 {
                break;
            }
            r.handle_timeout(at.max(t1), &mut out);
        }
        let mut saw = (false, false);
        for (to, bytes) in &out.1 {
            for packet in parse_rtcp_compound(bytes) {
                match (to, packet.unwrap()) {
                    (RtcpTarget::Producer(_), RtcpPacket::ReceiverReport(rr)) => {
                        let b = rr.report_blocks().next().unwrap();
                        assert_eq!(b.ssrc, Ssrc(10));
                        saw.0 = true;
                    }
                    (RtcpTarget::Consumer(to), RtcpPacket::SenderReport(sr)) => {
                        assert_eq!(*to, c);
                        let info = sr.info();
                        assert_eq!(info.ssrc, Ssrc(30));
                        assert_eq!(info.packet_count, 2);
                        assert_eq!(info.rtp_timestamp, 12_000 + 90_000);
                        saw.1 = true;
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(saw, (true, true));
    }
}
