//! [`Subscriber`]: what one caller receives of the others' video, reassembled and checked.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chorus_engine::codecs::h264::{Depacketizer, DepacketizerConfig, Reassembled};
use chorus_engine::rtcp::{CompoundBuilder, Nack, Pli, ReceiverReport, Remb};
use chorus_engine::rtp::{Pt, RtpPacket, SeqNoUnwrapper, Ssrc};
use chorus_engine::sfu::{NackGenerator, NackGeneratorConfig, rtx};

use super::link::Verdict;
use super::stats::{StreamSummary, SubscriberStats};
use super::{Link, LinkConfig, abs_send_age};

/// Streams tracked at most (one per other publisher with `all` layout).
const MAX_STREAMS: usize = 64;
/// REMB this often (and at once when the announced bandwidth changes).
const REMB_INTERVAL: Duration = Duration::from_secs(1);
/// PLIs per stream at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(300);
/// A frame broken this soon after the link dropped a packet over its limit is put down to
/// the limit.
const OVER_LIMIT_BLAME: Duration = Duration::from_secs(1);
/// Frame start times remembered per stream (by RTP timestamp), for the delay.
const SEND_TIMES: usize = 64;
/// NACKed sequence numbers remembered per stream, to tell which stream an RTX packet repairs.
const ASKED: usize = 512;
/// Sequence numbers per NACK packet at most.
const NACK_MAX: usize = 128;

/// Why a subscriber wants [`Subscriber::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberTimer {
    /// A REMB is due.
    Remb,
    /// A packet behind a gap waited long enough: its frame is given up.
    Reassembly,
    /// A NACK is due.
    Nack,
    /// A PLI held back by the rate limit is due.
    Pli,
}

/// How a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberConfig {
    /// Our SSRC as the sender of RTCP feedback.
    pub ssrc: Ssrc,
    /// H.264's payload type.
    pub pt: Pt,
    /// RTX's payload type, when negotiated.
    pub rtx_pt: Option<Pt>,
    /// (RTX SSRC, media SSRC) pairs known from signaling; others are learned from the
    /// retransmissions themselves (the NACKed sequence number they carry).
    pub rtx_ssrcs: Vec<(Ssrc, Ssrc)>,
    /// abs-send-time's negotiated id (for the frame delay).
    pub abs_send_time_ext: Option<u8>,
    /// Generic NACK negotiated.
    pub nack: bool,
    /// PLI negotiated.
    pub pli: bool,
    /// REMB negotiated.
    pub remb: bool,
    /// The bandwidth announced while the link has no limit, bits per second.
    pub unlimited_bps: u64,
    /// The simulated path in front of it.
    pub link: LinkConfig,
}

#[derive(Debug)]
struct Stream {
    ssrc: Ssrc,
    rtx_ssrc: Option<Ssrc>,
    seqs: SeqNoUnwrapper,
    depacketizer: Depacketizer,
    nacks: NackGenerator,
    asked: VecDeque<u16>,
    /// (RTP timestamp, abs-send-time of its earliest packet).
    send_times: VecDeque<(u32, u32)>,
    height: Option<u16>,
    /// A complete key frame since the last broken frame.
    synced: bool,
    /// A complete key frame ever.
    started: bool,
    pli_due: bool,
    last_pli: Option<Instant>,
    last_packet: Instant,
    /// A wanted change (the announced bandwidth) not yet followed by a layer change.
    want_at: Option<Instant>,
    /// The publisher its last key frame named.
    source: Option<u32>,
    frames_by_height: std::collections::BTreeMap<u16, u64>,
}

/// Sans-IO receiver of the server's forwarded video: [`Self::handle_rtp`] with each
/// unprotected packet, [`Self::handle_timeout`] at [`Self::poll_timeout`], then drain
/// [`Self::poll_transmit`] (RTCP: RR, NACK, PLI, REMB) after either.
#[derive(Debug)]
pub struct Subscriber {
    config: SubscriberConfig,
    epoch: Instant,
    link: Link,
    streams: Vec<Stream>,
    stats: SubscriberStats,
    next_remb: Instant,
    /// The bandwidth last announced.
    announced: Option<u64>,
    last_over_limit: Option<Instant>,
    nack_buf: Vec<u16>,
    /// A talker that started speaking, and when, not yet shown.
    speaker_want: Option<(u32, Instant)>,
}

impl Subscriber {
    /// A subscriber starting at `now`; abs-send-time stamps count from `epoch`.
    pub fn new(now: Instant, epoch: Instant, config: SubscriberConfig) -> Self {
        Subscriber {
            link: Link::new(config.link),
            config,
            epoch,
            streams: Vec::new(),
            stats: SubscriberStats::default(),
            next_remb: now,
            announced: None,
            last_over_limit: None,
            nack_buf: vec![0; NACK_MAX],
            speaker_want: None,
        }
    }

    /// Complete frames so far, all layers.
    pub fn frames(&self) -> u64 {
        self.stats.frames()
    }

    /// Frames broken within the path's limit so far.
    pub fn broken(&self) -> u64 {
        self.stats.broken()
    }

    /// What it measured so far.
    pub fn stats(&self) -> SubscriberStats {
        let mut s = self.stats.clone();
        s.streams = (self.streams.iter())
            .map(|st| StreamSummary {
                ssrc: st.ssrc.0,
                height: st.height,
                frames_by_height: st.frames_by_height.clone(),
            })
            .collect();
        s
    }

    /// Publisher `source` has the floor from `from` (its talk burst's start, or later when
    /// others were still talking): unless a stream already shows it, the time from then to
    /// its first key frame on a stream is a speaker switch.
    pub fn handle_speaker(&mut self, from: Instant, source: u32) {
        let shown = self.streams.iter().any(|s| s.source == Some(source));
        self.speaker_want = (!shown).then_some((source, from));
    }

    /// Takes one unprotected RTP packet (`buf[..len]`, which RTX unwrapping rewrites).
    pub fn handle_rtp(&mut self, now: Instant, buf: &mut [u8], len: usize) {
        match self.link.admit(now, len) {
            Verdict::Pass => {}
            Verdict::Lost => {
                self.stats.dropped_loss += 1;
                return;
            }
            Verdict::OverLimit => {
                self.stats.dropped_link += 1;
                self.last_over_limit = Some(now);
                return;
            }
        }
        let Some(packet) = buf.get(..len).and_then(|b| RtpPacket::parse(b).ok()) else {
            self.stats.bad_packets += 1;
            return;
        };
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        let (ssrc, pt) = (packet.ssrc(), packet.pt());
        // A media packet is parsed once; an RTX one again after unwrapping.
        let packet = if Some(pt) == self.config.rtx_pt && pt != self.config.pt {
            let payload = packet.payload();
            let Some(osn) = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                // Padding-only RTX (bandwidth probing): nothing to repair.
                return;
            };
            let Some(index) = self.stream_of_rtx(ssrc, osn) else {
                self.stats.rtx_unmatched += 1;
                return;
            };
            // INVARIANT: `stream_of_rtx` returns an index into `self.streams`.
            let media = self.streams[index].ssrc;
            let Some((n, _)) = rtx::unwrap_in_place(buf, len, media, self.config.pt) else {
                self.stats.bad_packets += 1;
                return;
            };
            self.stats.rtx_received += 1;
            let Some(packet) = buf.get(..n).and_then(|b| RtpPacket::parse(b).ok()) else {
                self.stats.bad_packets += 1;
                return;
            };
            packet
        } else if pt != self.config.pt {
            self.stats.bad_packets += 1;
            return;
        } else {
            packet
        };
        let Some(index) = self.stream_index(now, packet.ssrc()) else {
            self.stats.bad_packets += 1;
            return;
        };
        let abs = self
            .config
            .abs_send_time_ext
            .and_then(|id| packet.extension(id))
            .filter(|d| d.len() == 3)
            .map(|d| u32::from_be_bytes([0, d[0], d[1], d[2]]));
        let epoch = self.epoch;
        // INVARIANT: `index` came from `stream_index` (an index into `self.streams`).
        let st = &mut self.streams[index];
        st.last_packet = now;
        let seq = st.seqs.extend(packet.seq());
        if self.config.nack {
            st.nacks.handle_packet(now, seq);
        }
        if let Some(abs) = abs {
            let ts = packet.timestamp();
            match st.send_times.iter_mut().find(|(t, _)| *t == ts) {
                // The earliest packet of the frame (a retransmission carries its original
                // stamp, which may be older than the first one that arrived).
                Some((_, a)) => {
                    if abs_send_age(epoch, abs, now) > abs_send_age(epoch, *a, now) {
                        *a = abs;
                    }
                }
                None => {
                    if st.send_times.len() == SEND_TIMES {
                        st.send_times.pop_front();
                    }
                    st.send_times.push_back((ts, abs));
                }
            }
        }
        st.depacketizer.handle_packet(
            now,
            packet.seq(),
            packet.timestamp(),
            packet.marker(),
            packet.payload(),
        );
        self.drain_frames(now, index);
    }

    /// The stream an RTX packet from `rtx_ssrc` repairs: known from signaling or an earlier
    /// match, else the one stream that NACKed `osn` (then remembered).
    fn stream_of_rtx(&mut self, rtx_ssrc: Ssrc, osn: u16) -> Option<usize> {
        if let Some(i) = self
            .streams
            .iter()
            .position(|s| s.rtx_ssrc == Some(rtx_ssrc))
        {
            return Some(i);
        }
        if let Some(&(_, media)) = self.config.rtx_ssrcs.iter().find(|(r, _)| *r == rtx_ssrc) {
            let i = self.streams.iter().position(|s| s.ssrc == media)?;
            // INVARIANT: `i` is a position in `self.streams`.
            self.streams[i].rtx_ssrc = Some(rtx_ssrc);
            return Some(i);
        }
        let mut found = None;
        for (i, s) in self.streams.iter().enumerate() {
            if s.rtx_ssrc.is_none() && s.asked.contains(&osn) {
                if found.is_some() {
                    return None;
                }
                found = Some(i);
            }
        }
        let i = found?;
        // INVARIANT: `i` is a position in `self.streams`.
        self.streams[i].rtx_ssrc = Some(rtx_ssrc);
        Some(i)
    }

    fn stream_index(&mut self, now: Instant, ssrc: Ssrc) -> Option<usize> {
        if let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) {
            return Some(i);
        }
        if self.streams.len() >= MAX_STREAMS {
            return None;
        }
        let rtx_ssrc = (self.config.rtx_ssrcs.iter())
            .find(|(_, m)| *m == ssrc)
            .map(|(r, _)| *r);
        self.streams.push(Stream {
            ssrc,
            rtx_ssrc,
            seqs: SeqNoUnwrapper::new(),
            depacketizer: Depacketizer::new(DepacketizerConfig {
                window: 512,
                max_wait: Duration::from_millis(500),
            }),
            nacks: NackGenerator::new(NackGeneratorConfig {
                capacity: 512,
                max_gap: 500,
                first_delay: Duration::from_millis(5),
                retry_interval: Duration::from_millis(40),
                max_retries: 10,
                give_up_after: Duration::from_millis(450),
            }),
            asked: VecDeque::with_capacity(ASKED),
            send_times: VecDeque::with_capacity(SEND_TIMES),
            height: None,
            synced: false,
            started: false,
            pli_due: false,
            last_pli: None,
            last_packet: now,
            want_at: None,
            source: None,
            frames_by_height: Default::default(),
        });
        Some(self.streams.len() - 1)
    }

    fn drain_frames(&mut self, now: Instant, index: usize) {
        let over_limit = self
            .last_over_limit
            .is_some_and(|t| now.saturating_duration_since(t) < OVER_LIMIT_BLAME);
        let epoch = self.epoch;
        // INVARIANT: `index` came from `stream_index` (an index into `self.streams`).
        let st = &mut self.streams[index];
        while let Some(out) = st.depacketizer.poll_frame() {
            match out {
                Reassembled::Frame(au) => {
                    let key_height = au
                        .is_key()
                        .then(|| au.sequence_parameter_set())
                        .flatten()
                        .map(|sps| sps.height.min(u32::from(u16::MAX)) as u16);
                    if let Some(h) = key_height {
                        if st.height.is_some_and(|old| old != h) {
                            self.stats.switches += 1;
                            if let Some(want) = st.want_at.take() {
                                let ms = now.saturating_duration_since(want).as_secs_f32() * 1e3;
                                self.stats.switch_ms.push(ms);
                            }
                        }
                        st.height = Some(h);
                        st.synced = true;
                        st.started = true;
                        let source = au.nals().find_map(super::parse_source_sei);
                        if let Some(src) = source {
                            if st.source.is_some_and(|old| old != src) {
                                self.stats.source_changes += 1;
                            }
                            if let Some((want, at)) = self.speaker_want
                                && want == src
                            {
                                if st.source.is_some_and(|old| old != src) {
                                    let ms = now.saturating_duration_since(at).as_secs_f32() * 1e3;
                                    self.stats.speaker_switch_ms.push(ms);
                                }
                                self.speaker_want = None;
                            }
                            st.source = Some(src);
                        }
                    }
                    match (st.synced, st.height) {
                        (true, Some(h)) => {
                            let layer = self.stats.layers.entry(h).or_default();
                            layer.frames += 1;
                            *st.frames_by_height.entry(h).or_default() += 1;
                            if let Some(&(_, abs)) =
                                st.send_times.iter().find(|(t, _)| *t == au.timestamp)
                            {
                                let d = abs_send_age(epoch, abs, now);
                                layer.delays_ms.push(d.as_secs_f32() * 1e3);
                            }
                        }
                        _ => self.stats.frames_waiting_key += 1,
                    }
                    st.depacketizer.recycle(au);
                }
                Reassembled::Broken(b) => {
                    *(self.stats.broken_reasons)
                        .entry(format!("{:?}", b.reason))
                        .or_default() += 1;
                    match (st.started, st.height) {
                        (true, Some(h)) => {
                            let layer = self.stats.layers.entry(h).or_default();
                            if over_limit {
                                layer.broken_over_limit += 1;
                            } else {
                                layer.broken += 1;
                            }
                        }
                        _ => self.stats.broken_at_start += 1,
                    }
                    st.synced = false;
                    st.pli_due = self.config.pli;
                }
            }
        }
    }

    /// When [`Self::handle_timeout`] (then [`Self::poll_transmit`]) is next due, and why.
    pub fn poll_timeout(&self) -> (Instant, SubscriberTimer) {
        let mut next = (self.next_remb, SubscriberTimer::Remb);
        for s in &self.streams {
            let pli = (s.pli_due).then(|| s.last_pli.map_or(next.0, |l| l + PLI_INTERVAL));
            for (t, why) in [
                (s.depacketizer.poll_timeout(), SubscriberTimer::Reassembly),
                (s.nacks.poll_timeout(), SubscriberTimer::Nack),
                (pli, SubscriberTimer::Pli),
            ] {
                if let Some(t) = t.filter(|&t| t < next.0) {
                    next = (t, why);
                }
            }
        }
        next
    }

    /// Gives up gaps that waited too long (finishing their frames as broken); what is due
    /// to send is then written by [`Self::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.streams.len() {
            // INVARIANT: `i` ranges over `self.streams`.
            if self.streams[i]
                .depacketizer
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.streams[i].depacketizer.handle_timeout(now);
                self.drain_frames(now, i);
            }
        }
    }

    /// The bandwidth it announces at `now`.
    fn bandwidth_bps(&self, now: Instant) -> u64 {
        self.link
            .bandwidth_bps(now)
            .unwrap_or(self.config.unlimited_bps)
    }

    /// Writes the RTCP due at `now` (an RR, then NACKs, PLIs and a REMB as due) into `buf`
    /// as one compound packet; None when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let sender = self.config.ssrc;
        let mut b = CompoundBuilder::new(buf);
        b.append(|out| ReceiverReport::write(out, sender, &[]))
            .ok()?;
        let empty = b.len();
        let bps = self.bandwidth_bps(now);
        let remb_due = self.config.remb
            && !self.streams.is_empty()
            && (now >= self.next_remb || self.announced.is_some_and(|a| a != bps));
        for st in &mut self.streams {
            if self.config.nack {
                let n = st.nacks.poll_nacks(now, &mut self.nack_buf);
                if n > 0 {
                    // INVARIANT: `poll_nacks` writes at most `nack_buf.len()` numbers.
                    let lost = &self.nack_buf[..n];
                    if b.append(|out| Nack::write(out, sender, st.ssrc, lost.iter().copied()))
                        .is_ok()
                    {
                        self.stats.nacks_sent += 1;
                        self.stats.nacked += n as u64;
                        for &seq in lost {
                            if st.asked.len() == ASKED {
                                st.asked.pop_front();
                            }
                            st.asked.push_back(seq);
                        }
                    }
                }
            }
            if st.pli_due && st.last_pli.is_none_or(|l| now >= l + PLI_INTERVAL) {
                let pli = Pli {
                    sender_ssrc: sender,
                    media_ssrc: st.ssrc,
                };
                if b.append(|out| pli.write(out)).is_ok() {
                    st.pli_due = false;
                    st.last_pli = Some(now);
                    self.stats.plis_sent += 1;
                }
            }
        }
        if remb_due {
            let mut ssrcs = [Ssrc(0); 32];
            let mut n = 0;
            for st in &self.streams {
                // INVARIANT: `n < ssrcs.len()` is checked before each write.
                if n < ssrcs.len()
                    && now.saturating_duration_since(st.last_packet) < Duration::from_secs(3)
                {
                    ssrcs[n] = st.ssrc;
                    n += 1;
                }
            }
            if n > 0
                && b.append(|out| Remb::write(out, sender, bps, &ssrcs[..n]))
                    .is_ok()
            {
                if self.announced.is_some_and(|a| a != bps) {
                    for st in &mut self.streams {
                        st.want_at = Some(now);
                    }
                }
                self.announced = Some(bps);
                self.stats.rembs_sent += 1;
            }
        }
        if now >= self.next_remb {
            self.next_remb = now + REMB_INTERVAL;
        }
        (b.len() > empty).then_some(b.len())
    }
}
