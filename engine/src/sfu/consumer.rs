//! A consumer: one receiver's copy of one producer (or of whoever speaks), renumbered into
//! the receiver's own stream.

use std::time::{Duration, Instant};

use crate::rtp::{Pt, RtpPacket, RtpPacketMut, SeqNo, Ssrc};
use crate::sfu::producer::Encoding;
use crate::sfu::vp8::Vp8Descriptor;
use crate::sfu::{ExtensionIds, NackLimits, NackResponder, RtxConfig, SentPacket, VideoCodec};

/// Where a consumer's video comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerSource {
    /// One producer.
    Producer(super::ProducerId),
    /// Whoever spoke last (a SIP video endpoint taking one stream), never `except` (the
    /// receiver's own video).
    ActiveSpeaker {
        /// The receiver's own producer, if it publishes.
        except: Option<super::ProducerId>,
    },
}

/// A consumer's configuration: its source and the receiver's side of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Where its video comes from.
    pub source: ConsumerSource,
    /// The SSRC the receiver sees (one per consumer, constant across switches).
    pub ssrc: Ssrc,
    /// The codec's payload type on the receiver's leg.
    pub pt: Pt,
    /// The receiver's RTX stream, if negotiated; retransmissions go there.
    pub rtx: Option<RtxConfig>,
    /// The tallest picture the receiver wants.
    pub max_height: u16,
    /// Limits on answering this receiver's NACKs.
    pub nack_limits: NackLimits,
    /// The receiver's extension ids, which forwarded packets are renumbered to.
    pub extensions: ExtensionIds,
}

/// What one consumer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerCounters {
    /// Packets forwarded (retransmissions not included).
    pub forwarded: u64,
    /// Bytes forwarded.
    pub forwarded_bytes: u64,
    /// Packets the sink refused (transmit buffer full).
    pub sink_full: u64,
    /// Packets of the current encoding older than the switch to it, dropped.
    pub before_switch: u64,
    /// Switches between encodings or sources, at key frames.
    pub switches: u64,
    /// Key frames requested on the receiver's behalf (its PLI/FIR, and switches).
    pub key_frame_requests: u64,
    /// PLI and FIR received from the receiver.
    pub pli_fir_received: u64,
}

/// Bandwidth margin to move up (percent of the higher encoding's bitrate).
const UP_MARGIN_PCT: u64 = 115;
/// Bandwidth margin to stay (percent of the current encoding's bitrate).
const STAY_MARGIN_PCT: u64 = 90;
/// An upward choice must hold this long before it is acted on.
pub(crate) const UP_HOLD: Duration = Duration::from_millis(1_500);

/// How one source's packets map into the consumer's stream.
#[derive(Debug, Clone, Copy, Default)]
struct Mapping {
    seq_offset: u64,
    ts_offset: u32,
    pid_offset: u16,
    tl0_offset: u8,
}

/// The source forwarded before the last switch: its packets older than the switch (late
/// ones, or retransmissions from the publisher) still fill their places.
#[derive(Debug, Clone, Copy)]
struct Previous {
    source: (u32, u8),
    mapping: Mapping,
    /// The first source sequence number not forwarded from it.
    end: SeqNo,
}

/// A consumer in a router.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub config: ConsumerConfig,
    /// The producer and encoding being forwarded.
    pub current: Option<(u32, u8)>,
    /// The producer and encoding wanted; forwarding moves there at its next key frame.
    pub target: Option<(u32, u8)>,
    /// Not forwarded (its producer is outside the last N speakers).
    pub paused: bool,
    /// For an active-speaker consumer: the producer it follows now.
    pub speaker: Option<u32>,
    pub bandwidth_bps: Option<u32>,
    /// The receiver's payload type per codec (`VideoCodec::index`), when it takes several
    /// on one stream (a SIP endpoint following the speaker); all None: `config.pt` for any.
    pub codec_pts: [Option<Pt>; 2],
    /// Since when an upward choice has held.
    up_since: Option<(Instant, u8)>,
    // Rewriting state.
    started: bool,
    mapping: Mapping,
    previous: Option<Previous>,
    switch_src_seq: SeqNo,
    /// The highest source sequence number forwarded from the current source.
    high_src_seq: SeqNo,
    last_out_seq: SeqNo,
    last_out_ts: u32,
    last_out_at: Option<Instant>,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    pub rtx_seq: u16,
    pub nack: NackResponder,
    pub packets_sent: u32,
    pub octets_sent: u32,
    pub counters: ConsumerCounters,
}

/// A packet of a producer encoding, as the router hands it to its consumers.
#[derive(Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub producer: u32,
    pub encoding: u8,
    pub src_seq: SeqNo,
    pub packet: RtpPacket<'a>,
    pub vp8: Option<Vp8Descriptor>,
    pub key_frame: bool,
    pub clock_rate: u32,
    pub codec: VideoCodec,
    pub extensions: ExtensionIds,
}

/// How a forwarded packet is rewritten.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rewrite {
    pub ssrc: Ssrc,
    pub pt: Pt,
    pub seq: u16,
    pub timestamp: u32,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    /// Header extension ids: the publisher's, the receiver's.
    pub extensions: (ExtensionIds, ExtensionIds),
}

/// Copies `src` into `out` with `rw` applied; returns the length, 0 if it does not fit.
pub(crate) fn write_rewritten(out: &mut [u8], src: &[u8], rw: &Rewrite) -> usize {
    let n = src.len();
    let Some(dst) = out.get_mut(..n) else {
        return 0;
    };
    dst.copy_from_slice(src);
    let Ok(mut p) = RtpPacketMut::parse(dst) else {
        return 0;
    };
    p.set_ssrc(rw.ssrc);
    p.set_seq(rw.seq);
    p.set_timestamp(rw.timestamp);
    if p.set_pt(rw.pt).is_err() {
        return 0;
    }
    if p.as_packet().has_extension() {
        let (from, to) = rw.extensions;
        p.remap_extensions(|id| from.map_to(to, id));
    }
    if rw.picture_id.is_some() || rw.tl0_pic_idx.is_some() {
        let payload = p.payload_mut();
        if let Ok(d) = Vp8Descriptor::parse(payload) {
            d.rewrite(payload, rw.picture_id, rw.tl0_pic_idx);
        }
    }
    n
}

impl Consumer {
    pub fn new(config: ConsumerConfig, history_packets: usize) -> Self {
        Self {
            nack: NackResponder::new(history_packets, config.nack_limits),
            config,
            current: None,
            target: None,
            paused: false,
            speaker: None,
            bandwidth_bps: None,
            codec_pts: [None; 2],
            up_since: None,
            started: false,
            mapping: Mapping::default(),
            previous: None,
            switch_src_seq: SeqNo(0),
            high_src_seq: SeqNo(0),
            last_out_seq: SeqNo(0),
            last_out_ts: 0,
            last_out_at: None,
            last_pid: None,
            last_tl0: None,
            rtx_seq: 0,
            packets_sent: 0,
            octets_sent: 0,
            counters: ConsumerCounters::default(),
        }
    }

    /// The payload type this receiver takes `codec` with (None: it does not take it).
    pub fn pt_for(&self, codec: VideoCodec) -> Option<Pt> {
        if self.codec_pts.iter().all(Option::is_none) {
            return Some(self.config.pt);
        }
        self.codec_pts.get(codec.index()).copied().flatten()
    }

    /// The RTP timestamp the stream would carry at `now` (for sender reports), if started.
    pub fn rtp_time_at(&self, now: Instant, clock_rate: u32) -> Option<u32> {
        let at = self.last_out_at?;
        Some(
            self.last_out_ts
                .wrapping_add(ticks(now.saturating_duration_since(at), clock_rate)),
        )
    }

    /// Picks the encoding of `encodings` to forward: the tallest active one the receiver
    /// wants that the bandwidth carries, with hysteresis (up only after a margin held for
    /// [`UP_HOLD`], down when below the current one's bitrate less a margin).
    pub fn choose_encoding(
        &mut self,
        now: Instant,
        encodings: &[Encoding],
        current: Option<u8>,
    ) -> Option<u8> {
        let mut ideal = None;
        let mut lowest = None;
        for (i, e) in encodings.iter().enumerate() {
            if !e.is_active(now) {
                continue;
            }
            let i = i as u8;
            lowest.get_or_insert(i);
            if e.config.height <= self.config.max_height {
                ideal = Some(i);
            }
        }
        let lowest = lowest?;
        let ideal = ideal.unwrap_or(lowest);
        let fits = |i: u8, pct: u64| {
            let Some(bw) = self.bandwidth_bps else {
                return true;
            };
            let need = encodings
                .get(usize::from(i))
                .map_or(u64::MAX, |e| u64::from(e.bitrate_bps()));
            u64::from(bw) * 100 >= need * pct
        };
        let usable = |i: u8, pct: u64| {
            encodings
                .get(usize::from(i))
                .is_some_and(|e| e.is_active(now))
                && fits(i, pct)
        };
        // The best one that carries without the up margin (the level to stay at or drop to).
        let stay_best = (lowest..=ideal)
            .rev()
            .find(|&i| usable(i, STAY_MARGIN_PCT))
            .unwrap_or(lowest);
        let Some(cur) = current.filter(|&c| {
            encodings
                .get(usize::from(c))
                .is_some_and(|e| e.is_active(now))
        }) else {
            self.up_since = None;
            return Some(stay_best);
        };
        if cur > ideal || stay_best <= cur {
            // Down to what carries (or stay: the current one still carries).
            self.up_since = None;
            return Some(stay_best);
        }
        // Up: the highest with the up margin, held for UP_HOLD.
        let up = (cur + 1..=ideal).rev().find(|&i| usable(i, UP_MARGIN_PCT));
        let Some(up) = up else {
            self.up_since = None;
            return Some(cur);
        };
        match self.up_since {
            Some((since, to)) if to == up => {
                if now.saturating_duration_since(since) >= UP_HOLD {
                    self.up_since = None;
                    Some(up)
                } else {
                    Some(cur)
                }
            }
            _ => {
                self.up_since = Some((now, up));
                Some(cur)
            }
        }
    }

    /// Forwards one incoming packet if it belongs to what this consumer sends, switching to
    /// the target at its key frame. `send` queues the bytes (returns whether it could).
    pub fn forward(
        &mut self,
        now: Instant,
        inc: &Incoming<'_>,
        send: impl FnOnce(&dyn Fn(&mut [u8]) -> usize) -> bool,
    ) {
        if self.paused {
            return;
        }
        let here = Some((inc.producer, inc.encoding));
        if inc.key_frame && here == self.target && self.current != self.target {
            self.switch_at(now, inc);
        }
        let mapping = if here == self.current {
            if inc.src_seq < self.switch_src_seq {
                self.counters.before_switch += 1;
                return;
            }
            if inc.src_seq > self.high_src_seq {
                self.high_src_seq = inc.src_seq;
            }
            self.mapping
        } else {
            match self.previous {
                Some(p) if here == Some(p.source) && inc.src_seq < p.end => p.mapping,
                _ => return,
            }
        };
        let out_seq = SeqNo(inc.src_seq.0.wrapping_add(mapping.seq_offset));
        let timestamp = inc.packet.timestamp().wrapping_add(mapping.ts_offset);
        let pid = inc
            .vp8
            .and_then(|d| d.picture_id)
            .map(|p| p.value.wrapping_add(mapping.pid_offset));
        let tl0 = inc
            .vp8
            .and_then(|d| d.tl0_pic_idx)
            .map(|t| t.wrapping_add(mapping.tl0_offset));
        let rw = Rewrite {
            ssrc: self.config.ssrc,
            pt: self.pt_for(inc.codec).unwrap_or(self.config.pt),
            seq: out_seq.wire(),
            timestamp,
            picture_id: pid,
            tl0_pic_idx: tl0,
            extensions: (inc.extensions, self.config.extensions),
        };
        let src = inc.packet.as_bytes();
        if !send(&|out: &mut [u8]| write_rewritten(out, src, &rw)) {
            self.counters.sink_full += 1;
            return;
        }
        self.nack.record(SentPacket {
            out_seq,
            producer: inc.producer,
            encoding: inc.encoding,
            src_seq: inc.src_seq,
            timestamp,
            picture_id: pid,
            tl0_pic_idx: tl0,
        });
        self.counters.forwarded += 1;
        self.counters.forwarded_bytes += src.len() as u64;
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self
            .octets_sent
            .wrapping_add(inc.packet.payload().len() as u32);
        if !self.started || out_seq > self.last_out_seq {
            self.last_out_seq = out_seq;
            self.last_out_ts = timestamp;
            self.last_out_at = Some(now);
            if pid.is_some() {
                self.last_pid = pid;
            }
            if tl0.is_some() {
                self.last_tl0 = tl0;
            }
        }
        self.started = true;
    }

    /// Moves forwarding to the target at this key-frame packet: sequence numbers continue
    /// by one, the timestamp advances by the wall-clock time since the last packet sent,
    /// VP8 picture IDs and TL0PICIDX continue by one.
    fn switch_at(&mut self, now: Instant, inc: &Incoming<'_>) {
        let src_ts = inc.packet.timestamp();
        self.previous = match self.current {
            Some(source) if self.started => Some(Previous {
                source,
                mapping: self.mapping,
                end: SeqNo(self.high_src_seq.0 + 1),
            }),
            _ => None,
        };
        let mut m = Mapping::default();
        if self.started {
            let next = self.last_out_seq.0.wrapping_add(1);
            m.seq_offset = next.wrapping_sub(inc.src_seq.0);
            let gap = self.last_out_at.map_or(0, |t| {
                ticks(now.saturating_duration_since(t), inc.clock_rate)
            });
            m.ts_offset = self
                .last_out_ts
                .wrapping_add(gap.max(1))
                .wrapping_sub(src_ts);
            self.counters.switches += 1;
        }
        let d = inc.vp8;
        if let (Some(p), Some(last)) = (d.and_then(|d| d.picture_id), self.last_pid) {
            m.pid_offset = last.wrapping_add(1).wrapping_sub(p.value);
        }
        if let (Some(t), Some(last)) = (d.and_then(|d| d.tl0_pic_idx), self.last_tl0) {
            m.tl0_offset = last.wrapping_add(1).wrapping_sub(t);
        }
        self.mapping = m;
        self.switch_src_seq = inc.src_seq;
        self.high_src_seq = inc.src_seq;
        self.current = self.target;
    }

    /// Forgets a producer that was removed (its slot may be reused by another).
    pub fn forget_producer(&mut self, p: u32) {
        self.nack.forget_producer(p);
        if self.current.is_some_and(|(cp, _)| cp == p) {
            self.current = None;
        }
        if self.target.is_some_and(|(tp, _)| tp == p) {
            self.target = None;
        }
        if self.speaker == Some(p) {
            self.speaker = None;
        }
        if self.previous.is_some_and(|prev| prev.source.0 == p) {
            self.previous = None;
        }
    }

    /// Stops forwarding until the next key frame of the target (resumed after a pause, or
    /// the source went away).
    pub fn reset_current(&mut self) {
        self.current = None;
    }
}

/// A duration in RTP clock ticks (wrapping at 32 bits).
fn ticks(d: Duration, clock_rate: u32) -> u32 {
    let t = d.as_micros().saturating_mul(u128::from(clock_rate)) / 1_000_000;
    // Truncation to 32 bits is RTP timestamp arithmetic.
    t as u32
}
