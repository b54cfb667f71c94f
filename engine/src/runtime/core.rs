//! One media core: its legs, flow table and the run-to-completion loop.
//!
//! ```text
//! loop {
//!     io.wait(next tick)          -- one submit: sends queued last round, recvs, timers
//!     commands                    -- create/remove/connect legs (bounded per round)
//!     io.drain(on_packet)         -- demux -> SRTP unprotect -> RTP/RTCP check -> forward
//!     tick                        -- inactivity, publish counters
//! }
//! ```

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::command::{
    CN_REFRESH_TICKS, Command, ConferenceId, CoreId, Event, LegConfig, LegId, LegUpdate,
    SilenceSend, VideoConfig, VideoLayout,
};
use super::flow::{FastBuild, FlowKey, FlowTable, LegSlot, Route};
use super::io::{self, IoKind, IoSizes, RxMeta, SockId, TxQueue, sys};
use super::leg::REPORT_INTERVAL;
use super::leg::{Leg, MovingLeg};
use super::leg_video::LegVideo;
use super::mailbox::Mailbox;
use super::metrics::{CoreMetrics, Counters, Metric};
use super::tick::{Tick, TickClock};
use super::video_room::{VideoRoom, VideoTx};
use crate::mixer::{ClipCache, Conference, LegAudio, Player, PrivateEncoder, TalkerConfig};
use crate::rtcp::{
    CompoundBuilder, NtpClock, NtpTime, PacketKind, ReceiverReport, RtcpPacket, SenderInfo,
    SenderReport, SourceDescription,
};
use crate::rtp::{RtpHeader, Ssrc};
use crate::sfu::{
    ConsumerConfig, ConsumerId, ConsumerSource, NackLimits, Router, RouterConfig, RtxConfig,
    SfuError, SfuEvent, VideoCodec,
};
use crate::srtp::{SrtpContext, SrtpError};

/// The source id under which a leg's mixed audio goes through its outbound numbering (so a
/// switch between forwarded and mixed audio continues the stream).
const MIX_SOURCE: u32 = 0;
/// A frame whose samples all stay within this is silence (for CN; a resampler's tail after
/// digital silence is a sample or two off zero).
const SILENT_SAMPLE: i16 = 8;
/// Ticks between the frames an idle Opus DTX leg sends (400 ms at 20 ms, as libopus does).
const DTX_REFRESH_TICKS: u32 = 20;
/// The noise level of the CN packets sent for silence: -90 dBov (RFC 3389 section 3.1).
const CN_SILENCE_LEVEL: u8 = 90;
/// Commands handled per loop iteration at most, so a flood of commands cannot starve media.
const COMMANDS_PER_ROUND: usize = 256;
/// What a packet offered to the legs waiting to latch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latch {
    /// An address no leg receives from.
    NewAddress,
    /// An address one leg receives from, with an SSRC that leg has not sent.
    SameAddress,
}

/// Legs waiting to latch that one unknown-source packet is tried against at most. The window
/// rotates, so every waiting leg is tried within a few packets of its caller's stream.
const LATCH_TRIES: usize = 32;
/// Trial authentications per tick for packets from unknown sources, so a flood of garbage
/// costs a bounded share of the core (32 per packet, 2,048 per 20 ms: well under 1 ms).
const LATCH_BUDGET_PER_TICK: u32 = 2048;

/// A UDP socket pair of a core: RTP on an even port, RTCP on the next one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketPair {
    pub rtp: SockId,
    pub rtcp: SockId,
    pub rtp_addr: SocketAddr,
    pub rtcp_addr: SocketAddr,
}

/// Everything a core thread starts with.
pub(crate) struct CoreParams {
    pub core: CoreId,
    pub io: IoKind,
    pub sizes: IoSizes,
    /// UDP GSO on the transmit path.
    pub gso: bool,
    pub sockets: Vec<(UdpSocket, UdpSocket)>,
    pub tick: Duration,
    pub pin_cpu: Option<usize>,
    pub mailbox: Arc<Mailbox>,
    pub metrics: Arc<CoreMetrics>,
    /// Talkers mixed per conference at most.
    pub talkers: usize,
    /// The rate conferences mix at.
    pub mix_rate: u32,
    /// Last-N for the conferences' video routers.
    pub video_last_n: Option<usize>,
}

/// What a core reports once it is running (or why it could not start).
pub(crate) type CoreReady = Result<(IoKind, Option<String>), String>;

/// Leg state and packet handling of one core, separate from its I/O so that the handler can
/// borrow it while the backend lends out buffers.
pub(crate) struct CoreState {
    core: CoreId,
    mailbox: Arc<Mailbox>,
    pairs: Vec<SocketPair>,
    next_pair: usize,
    legs: Vec<Option<Leg>>,
    free: Vec<LegSlot>,
    by_id: HashMap<LegId, LegSlot, FastBuild>,
    flows: FlowTable,
    /// Per socket: legs waiting for their first authenticated packet from a new address.
    pending: Vec<Vec<LegSlot>>,
    /// Per socket: where the next latch scan starts in `pending`.
    pending_cursor: Vec<usize>,
    /// Trial authentications left in this tick.
    latch_budget: u32,
    /// Legs with an RFC 4733 event in progress, whose end-packet timeout each tick checks.
    /// Grows to the most legs ever in a key press at once, then stays (no allocation per
    /// packet).
    dtmf_open: Vec<LegSlot>,
    /// Legs sending RFC 4733 keys (each tick sends their next event packet).
    dtmf_sending: Vec<LegSlot>,
    /// In-band key presses found in the packet being handled (at most a few; no allocation
    /// once grown).
    inband_events: Vec<(LegId, char, u32)>,
    /// Tone onsets found by a packet's probe, emitted after it.
    tone_onsets: Vec<(LegId, u8, Instant)>,
    /// Legs with a clip playing (checked each tick; conference legs play in the mix pass).
    playing: Vec<LegSlot>,
    /// Scratch frame for prompts.
    scratch_frame: Vec<i16>,
    /// One encoded frame of silence per codec, sent to every idle leg of that codec (an Opus
    /// encode per idle leg per tick would cost a core for a few thousand callers in the IVR).
    silence_payloads: Vec<(chorus_codecs::AudioCodec, Vec<u8>)>,
    /// Conferences spanning cores: their partial-mix bus (kept for a conference made later).
    spans: HashMap<ConferenceId, std::sync::Arc<crate::mixer::MixBus>, FastBuild>,
    /// Scratch: this tick's conference ids (kept, so a tick allocates nothing).
    conference_ids: Vec<ConferenceId>,
    /// Conferences with members on this core.
    conferences: HashMap<ConferenceId, Conference, FastBuild>,
    /// The video of conferences with video members on this core: one SFU router each.
    videos: HashMap<ConferenceId, VideoRoom, FastBuild>,
    /// Wall-clock anchor for sender reports: the routers' to video receivers and the legs'.
    ntp: NtpClock,
    /// Talker selection of new conferences.
    pub talker_config: TalkerConfig,
    /// The tick period in milliseconds (conference frames are one tick long).
    pub tick_ms: u32,
    /// The rate conferences mix at and the engine's own audio (prompts, silence) is framed
    /// at before each leg's encoder.
    pub mix_rate: u32,
    /// Each conference's video router forwards only its N most recent speakers' video.
    pub video_last_n: Option<usize>,
    /// Clips (prompts, tones) resampled to the mix rate once, not per leg and tick.
    clips: ClipCache,
    pub counters: Counters,
    events_emitted: bool,
    shutdown: bool,
}

/// The SSRC of a packet of the given kind (RTP: header; RTCP: sender SSRC), if long enough.
fn packet_ssrc(buf: &[u8], kind: PacketKind) -> Option<u32> {
    let at = if kind == PacketKind::Rtcp { 4 } else { 8 };
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl CoreState {
    pub fn new(core: CoreId, mailbox: Arc<Mailbox>, pairs: Vec<SocketPair>, socks: usize) -> Self {
        CoreState {
            core,
            mailbox,
            pairs,
            next_pair: 0,
            legs: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::default(),
            flows: FlowTable::new(),
            pending: vec![Vec::new(); socks],
            pending_cursor: vec![0; socks],
            latch_budget: LATCH_BUDGET_PER_TICK,
            dtmf_open: Vec::new(),
            dtmf_sending: Vec::new(),
            inband_events: Vec::new(),
            tone_onsets: Vec::new(),
            playing: Vec::new(),
            scratch_frame: Vec::new(),
            silence_payloads: Vec::new(),
            spans: HashMap::default(),
            conference_ids: Vec::new(),
            conferences: HashMap::default(),
            videos: HashMap::default(),
            ntp: wall_clock(),
            talker_config: TalkerConfig::default(),
            tick_ms: 20,
            mix_rate: crate::mixer::MIX_RATE,
            video_last_n: None,
            clips: ClipCache::default(),
            counters: Counters::default(),
            events_emitted: false,
            shutdown: false,
        }
    }

    fn emit(&mut self, event: Event) {
        self.counters.inc(Metric::Events);
        self.mailbox.emit(event);
        self.events_emitted = true;
    }

    fn leg_mut(&mut self, slot: LegSlot) -> Option<&mut Leg> {
        self.legs.get_mut(slot as usize).and_then(Option::as_mut)
    }

    // ---- packets -------------------------------------------------------------------------

    /// Handles one received datagram (decrypted in place in `buf`).
    pub fn on_packet(&mut self, now: Instant, meta: RxMeta, buf: &mut [u8], tx: &mut TxQueue) {
        let kind = crate::rtcp::classify(buf);
        if !matches!(kind, PacketKind::Rtp | PacketKind::Rtcp) {
            self.counters.inc(Metric::DropNotRtp);
            return;
        }
        let key = FlowKey {
            sock: meta.sock,
            remote: meta.src,
        };
        let slot = match self.flows.lookup(&key, || packet_ssrc(buf, kind)) {
            Route::Leg(slot) => slot,
            // A second call from the same address and port (its leg waits to latch there), or
            // else the owner's new stream.
            Route::OtherSsrc(owner) => self
                .try_latch(now, key, buf, kind, Latch::SameAddress)
                .unwrap_or(owner),
            Route::Unknown => match self.try_latch(now, key, buf, kind, Latch::NewAddress) {
                Some(slot) => slot,
                None => {
                    self.counters.inc(Metric::DropUnknownFlow);
                    return;
                }
            },
        };
        let video = (self.legs.get(slot as usize))
            .and_then(Option::as_ref)
            .and_then(|l| l.video.as_ref())
            .is_some_and(|v| v.owns(&key));
        match kind {
            _ if video => self.on_video(now, slot, kind, buf, tx),
            PacketKind::Rtp => self.on_rtp(now, slot, key, buf, tx),
            _ => self.on_rtcp(now, slot, buf),
        }
    }

    /// A packet from a leg's video flow: SRTP-unprotected with its video context, then to
    /// its conference's router (RTP to its producer; RTCP as the publisher's reports and as
    /// a receiver's feedback).
    fn on_video(
        &mut self,
        now: Instant,
        slot: LegSlot,
        kind: PacketKind,
        buf: &mut [u8],
        tx: &mut TxQueue,
    ) {
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let conference = leg.conference.as_ref().map(|(c, _)| *c);
        let Some(video) = leg.video.as_deref_mut() else {
            return;
        };
        let producer = video.producer;
        let len = match unprotect_with(video.srtp_in.as_mut(), buf, kind) {
            Ok(n) => n,
            Err(e) => {
                leg.count_srtp_error(e);
                leg.stats.video_dropped += 1;
                self.counters.inc(drop_metric(e));
                self.counters.inc(Metric::VideoDropped);
                return;
            }
        };
        let Some(room) = conference.and_then(|c| self.videos.get_mut(&c)) else {
            // Not in a conference: nobody to forward to.
            leg.stats.video_dropped += 1;
            self.counters.inc(Metric::VideoDropped);
            return;
        };
        if kind == PacketKind::Rtp && producer.is_none() {
            // A receive-only leg sent video: nothing to forward it as.
            leg.stats.video_dropped += 1;
            self.counters.inc(Metric::VideoDropped);
            return;
        }
        leg.last_rx = now;
        leg.inactive_reported = false;
        let plain = &buf[..len];
        if kind == PacketKind::Rtp {
            leg.stats.video_rtp_in += 1;
            self.counters.inc(Metric::VideoRtpIn);
        } else {
            leg.stats.video_rtcp_in += 1;
            self.counters.inc(Metric::VideoRtcpIn);
        }
        let mut sink = VideoTx {
            tx,
            legs: &mut self.legs,
            routes: &room.routes,
            counters: &mut self.counters,
        };
        // (RTP from a leg without a producer returned above.)
        match (kind, producer) {
            (PacketKind::Rtp, p) => {
                if let Some(p) = p {
                    room.router.handle_rtp(now, p, plain, &mut sink);
                }
            }
            (_, p) => {
                if let Some(p) = p {
                    room.router.handle_producer_rtcp(now, p, plain);
                }
                room.router.handle_consumer_rtcp(now, plain, &mut sink);
            }
        }
        // The router's events (switches, for logs and tests) are drained once per tick by
        // `video_timeouts`, not after every packet.
    }

    /// Turns a router's events into engine events (layer and speaker switches) and forgets
    /// consumers the router closed with their producer.
    fn video_events(&mut self, cid: ConferenceId) {
        loop {
            let Some(room) = self.videos.get_mut(&cid) else {
                return;
            };
            let Some(event) = room.router.poll_event() else {
                return;
            };
            match event {
                SfuEvent::Switched {
                    consumer,
                    producer,
                    encoding,
                } => {
                    let leg = room.routes.consumer(consumer);
                    let source = room.routes.producer(producer);
                    let id = |s: Option<LegSlot>| {
                        s.and_then(|s| self.legs.get(s as usize))
                            .and_then(Option::as_ref)
                            .map(|l| l.id)
                    };
                    if let (Some(leg), Some(source)) = (id(leg), id(source)) {
                        self.emit(Event::VideoSwitched {
                            leg,
                            source,
                            encoding,
                        });
                    }
                }
                SfuEvent::ConsumerClosed(c) => {
                    let owner = room.routes.consumer(c);
                    room.routes.set_consumer(c, None);
                    if let Some(v) = owner
                        .and_then(|s| self.leg_mut(s))
                        .and_then(|l| l.video.as_deref_mut())
                    {
                        v.consumers.retain(|&x| x != c);
                    }
                }
            }
        }
    }

    fn on_rtp(
        &mut self,
        now: Instant,
        slot: LegSlot,
        key: FlowKey,
        buf: &mut [u8],
        tx: &mut TxQueue,
    ) {
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(len) = unprotect(leg, &mut self.counters, buf, PacketKind::Rtp) else {
            return;
        };
        let plain = &buf[..len];
        let level_ext = (leg.conference.as_ref()).and_then(|(_, a)| a.format().audio_level_ext_id);
        let (ssrc, seq, timestamp, pt, payload, marker, audio_level) =
            match crate::rtp::RtpPacket::parse(plain) {
                Ok(p) => (
                    p.ssrc().0,
                    p.seq(),
                    p.timestamp(),
                    p.pt(),
                    p.payload_range(),
                    p.marker(),
                    // RFC 6464: a malformed element is as if the packet carried none.
                    level_ext
                        .and_then(|id| p.extension(id))
                        .and_then(|d| crate::rtp::AudioLevel::parse(d).ok())
                        .map(|l| l.level()),
                ),
                Err(_) => {
                    leg.stats.malformed += 1;
                    self.counters.inc(Metric::DropMalformed);
                    return;
                }
            };
        // RFC 4733 events are detected whatever happens to the packet next (forwarding).
        let dtmf = leg.telephone_event_rate(pt).map(|rate| {
            let was_open = leg.dtmf.is_open();
            let payload = plain.get(payload.clone()).unwrap_or_default();
            (
                leg.dtmf.handle_packet(now, timestamp, rate, payload),
                was_open,
            )
        });
        if let Some((Err(_), _)) = dtmf {
            leg.stats.malformed += 1;
            self.counters.inc(Metric::DropMalformed);
            return;
        }
        if let Some((_, audio)) = &mut leg.conference {
            let payload = plain.get(payload.clone()).unwrap_or_default();
            audio.push_with_level(now, pt, seq, timestamp, marker, payload, audio_level);
        }
        if let Some(probe) = &mut leg.probe {
            let payload = plain.get(payload.clone()).unwrap_or_default();
            let (id, onsets) = (leg.id, &mut self.tone_onsets);
            probe.handle(pt, payload, now, |tone, at| onsets.push((id, tone, at)));
        }
        if let Some(detector) = &mut leg.inband_dtmf {
            let payload = plain.get(payload).unwrap_or_default();
            let (id, events) = (leg.id, &mut self.inband_events);
            detector.handle(pt, payload, |digit, duration_ms| {
                events.push((id, digit, duration_ms))
            });
        }
        leg.stats.rtp_in += 1;
        leg.stats.rtp_bytes_in += len as u64;
        leg.account_rtp(now, ssrc, seq, timestamp);
        leg.last_rx = now;
        leg.inactive_reported = false;
        let learn_ssrc = leg.remote_ssrc.is_none();
        if learn_ssrc {
            leg.remote_ssrc = Some(ssrc);
        }
        let first = !leg.latched;
        leg.latched = true;
        let targets = std::mem::take(&mut leg.targets);
        self.counters.inc(Metric::RtpIn);
        if learn_ssrc {
            // Knowing the SSRC lets other legs share this address later.
            let _ = self.flows.insert(key, slot, Some(ssrc));
        }
        if first {
            self.drop_pending(slot);
        }
        for &t in &targets {
            self.forward_rtp(t, plain, (ssrc, seq, timestamp), tx);
        }
        if let Some(leg) = self.leg_mut(slot) {
            leg.targets = targets;
            if let Some((_, was_open)) = dtmf
                && !was_open
                && leg.dtmf.is_open()
            {
                self.dtmf_open.push(slot);
            }
        }
        if dtmf.is_some() {
            self.report_dtmf(slot);
        }
        while let Some((leg, tone, at)) = self.tone_onsets.pop() {
            self.emit(Event::ToneOnset { leg, tone, at });
        }
        while let Some((id, digit, duration_ms)) = self.inband_events.pop() {
            self.counters.inc(Metric::DtmfDigits);
            if let Some(leg) = self.leg_mut(slot) {
                leg.stats.dtmf_digits += 1;
            }
            self.emit(Event::Dtmf {
                id,
                digit,
                duration_ms,
                inband: true,
            });
        }
    }

    /// Emits the finished RFC 4733 events of a leg: keys as `Event::Dtmf`, other events
    /// counted.
    fn report_dtmf(&mut self, slot: LegSlot) {
        while let Some(leg) = self.leg_mut(slot) {
            let Some(report) = leg.dtmf.poll_report() else {
                return;
            };
            let id = leg.id;
            match crate::rtp::dtmf_digit(report.event) {
                Some(digit) => {
                    leg.stats.dtmf_digits += 1;
                    self.counters.inc(Metric::DtmfDigits);
                    self.emit(Event::Dtmf {
                        id,
                        digit,
                        duration_ms: report.duration_ms,
                        inband: false,
                    });
                }
                None => {
                    leg.stats.dtmf_other_events += 1;
                    self.counters.inc(Metric::DtmfOtherEvents);
                }
            }
        }
    }

    /// Ends the RFC 4733 events whose end packets never came (`dtmf_receiver::END_TIMEOUT`).
    fn check_dtmf_timeouts(&mut self, now: Instant) {
        if self.dtmf_open.is_empty() {
            return;
        }
        let mut open = std::mem::take(&mut self.dtmf_open);
        open.retain(|&slot| {
            let Some(leg) = self.leg_mut(slot) else {
                return false;
            };
            leg.dtmf.handle_timeout(now);
            let still = leg.dtmf.is_open();
            self.report_dtmf(slot);
            still
        });
        // A slot may appear twice if its leg was removed and the slot reused mid-press.
        open.dedup();
        self.dtmf_open = open;
    }

    /// Sends a copy of `plain` (a validated RTP packet from source `ids` = (SSRC, sequence,
    /// timestamp)) to leg `to`, renumbered into that leg's outbound stream and protected with
    /// its keys.
    fn forward_rtp(&mut self, to: LegSlot, plain: &[u8], ids: (u32, u16, u32), tx: &mut TxQueue) {
        let Some(leg) = self.legs.get_mut(to as usize).and_then(Option::as_mut) else {
            return;
        };
        if !leg.send {
            return; // On hold: the remote does not want our RTP.
        }
        let Some(dst) = leg.remote_rtp else {
            leg.stats.out_dropped += 1;
            self.counters.inc(Metric::DropNoRemote);
            return;
        };
        let mut protect_failed = false;
        let (seq, ts) = leg.out_numbering.map(ids.0, ids.1, ids.2);
        let ssrc = leg.local_ssrc;
        let queued = tx.send_with(leg.rtp_sock, dst, |out| {
            let n = plain.len();
            let Some(dst) = out.get_mut(..n) else {
                return 0;
            };
            dst.copy_from_slice(plain);
            // INVARIANT: `plain` parsed as RTP, so it holds the 12-byte fixed header.
            dst[2..4].copy_from_slice(&seq.to_be_bytes());
            dst[4..8].copy_from_slice(&ts.to_be_bytes());
            dst[8..12].copy_from_slice(&ssrc.to_be_bytes());
            match leg.srtp_out.as_mut() {
                Some(ctx) => ctx.protect_rtp(out, n).unwrap_or_else(|_| {
                    protect_failed = true;
                    0
                }),
                None => n,
            }
        });
        let payload = plain.len().saturating_sub(crate::rtp::FIXED_HEADER_LEN);
        count_sent(
            leg,
            &mut self.counters,
            (queued, protect_failed),
            Metric::Forwarded,
            ts,
            payload,
        );
    }

    fn on_rtcp(&mut self, now: Instant, slot: LegSlot, buf: &mut [u8]) {
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(len) = unprotect(leg, &mut self.counters, buf, PacketKind::Rtcp) else {
            return;
        };
        let mut malformed = false;
        for packet in crate::rtcp::parse_rtcp_compound(&buf[..len]) {
            match packet {
                // The remote's SR feeds LSR/DLSR of our reports, so it can measure RTT.
                Ok(RtcpPacket::SenderReport(sr)) => {
                    if let Some(recv) = leg.recv.as_mut().filter(|r| r.ssrc() == sr.ssrc()) {
                        recv.handle_sender_report(now, sr.info().ntp);
                    }
                }
                Ok(_) => {}
                Err(_) => malformed = true,
            }
        }
        if malformed {
            leg.stats.malformed += 1;
            self.counters.inc(Metric::DropMalformed);
            return;
        }
        leg.stats.rtcp_in += 1;
        leg.last_rx = now;
        leg.inactive_reported = false;
        self.counters.inc(Metric::RtcpIn);
    }

    /// A packet came from an address no flow knows: offer it to the legs on that socket that
    /// wait for their first packet. SRTP legs take it only if it authenticates with their key;
    /// a plain-RTP leg takes it if its SDP named the same IP, or if it is the only plain leg
    /// waiting on that socket (otherwise the packet cannot be attributed and is dropped).
    /// With [`Latch::SameAddress`] (the address has a leg, the SSRC is new) a plain leg takes
    /// it only if its SDP named exactly that address.
    fn try_latch(
        &mut self,
        now: Instant,
        key: FlowKey,
        buf: &[u8],
        kind: PacketKind,
        how: Latch,
    ) -> Option<LegSlot> {
        if kind != PacketKind::Rtp {
            return None;
        }
        let sock = usize::from(key.sock.0);
        let waiting = self.pending.get(sock)?;
        if waiting.is_empty() || self.latch_budget == 0 {
            return None;
        }
        // When every waiting leg is in view, a lone plain-RTP leg may take the packet.
        let complete = waiting.len() <= LATCH_TRIES;
        let start = self.pending_cursor.get(sock).copied().unwrap_or(0) % waiting.len();
        let mut plain_only: Option<LegSlot> = None;
        let mut plain_count = 0;
        // The payload type (an RTP packet: kind is Rtp).
        let pt = crate::rtp::Pt(buf.get(1).map_or(0, |b| b & 0x7f));
        let mut chosen = None;
        let mut tried = 0;
        for k in 0..waiting.len().min(LATCH_TRIES) {
            let slot = waiting[(start + k) % waiting.len()];
            let Some(leg) = self.legs.get(slot as usize).and_then(Option::as_ref) else {
                continue;
            };
            match &leg.srtp_in {
                Some(ctx) => {
                    if tried == self.latch_budget {
                        break;
                    }
                    tried += 1;
                    if ctx.authenticates_rtp(buf) {
                        chosen = Some(slot);
                        break;
                    }
                }
                // Plain RTP of a payload type the leg's audio does not take (another
                // call's video on this socket, say) is not its stream.
                None if !leg.takes_audio_pt(pt) => {}
                None => {
                    let named = match how {
                        Latch::NewAddress => {
                            leg.remote_rtp.is_some_and(|r| r.ip() == key.remote.ip())
                        }
                        Latch::SameAddress => leg.remote_rtp == Some(key.remote),
                    };
                    if named {
                        chosen = Some(slot);
                        break;
                    }
                    plain_count += 1;
                    plain_only = Some(slot);
                }
            }
        }
        self.latch_budget -= tried;
        if let Some(c) = self.pending_cursor.get_mut(sock) {
            *c = start + LATCH_TRIES;
        }
        let lone_plain = if complete && plain_count == 1 && how == Latch::NewAddress {
            plain_only
        } else {
            None
        };
        let slot = chosen.or(lone_plain)?;
        let ssrc = packet_ssrc(buf, kind);
        let leg = self.leg_mut(slot)?;
        let old = leg.flow_rtp;
        leg.set_remote(key.remote, None);
        let rtcp_new = leg.wanted_flows().1;
        let rtcp_old = leg.flow_rtcp;
        let id = leg.id;
        if let Some(old) = old {
            self.flows.remove(old, slot);
        }
        if self.flows.insert(key, slot, ssrc).is_err() {
            self.counters.inc(Metric::DropUnknownFlow);
            return None;
        }
        if rtcp_new != rtcp_old {
            if let Some(k) = rtcp_old {
                self.flows.remove(k, slot);
            }
            if let Some(k) = rtcp_new {
                let _ = self.flows.insert(k, slot, ssrc);
            }
        }
        let leg = self.leg_mut(slot)?;
        leg.flow_rtp = Some(key);
        leg.flow_rtcp = rtcp_new;
        leg.stats.latched += 1;
        leg.last_rx = now;
        self.emit(Event::Latched {
            id,
            remote: key.remote,
        });
        Some(slot)
    }

    fn drop_pending(&mut self, slot: LegSlot) {
        for list in &mut self.pending {
            list.retain(|&s| s != slot);
        }
    }

    // ---- commands ------------------------------------------------------------------------

    /// Handles one command from the control side.
    pub fn on_command(&mut self, now: Instant, cmd: Command) {
        self.counters.inc(Metric::Commands);
        match cmd {
            Command::CreateLeg(cfg) => self.create_leg(now, &cfg),
            Command::UpdateLeg(u) => match self.by_id.get(&u.id).copied() {
                Some(slot) => self.update_leg(slot, &u),
                None => self.emit(Event::UnknownLeg { id: u.id }),
            },
            Command::RemoveLeg(id) => self.remove_leg(now, id),
            Command::JoinConference { leg, conference } => self.join(now, leg, conference),
            Command::LeaveConference(leg) => {
                if let Some(slot) = self.by_id.get(&leg).copied() {
                    self.leave(now, slot);
                    self.wake_idle(leg);
                } else {
                    self.emit(Event::UnknownLeg { id: leg });
                }
            }
            Command::SetLegVolume {
                leg,
                listen_db,
                talk_db,
            } => match self.by_id.get(&leg).copied().and_then(|s| self.leg_mut(s)) {
                Some(l) => {
                    l.listen_gain_q8 = crate::mixer::leg_audio::gain_q8(listen_db);
                    if let Some((_, audio)) = &mut l.conference {
                        audio.set_talk_gain_db(talk_db);
                    }
                }
                None => self.emit(Event::UnknownLeg { id: leg }),
            },
            Command::SetLegAudio { leg, mute, deaf } => {
                match self.by_id.get(&leg).copied().and_then(|s| self.leg_mut(s)) {
                    Some(l) => (l.muted, l.deaf) = (mute, deaf),
                    None => self.emit(Event::UnknownLeg { id: leg }),
                }
            }
            Command::Play { leg, clip, id } => self.play(leg, clip, id),
            Command::SendDtmf { leg, keys } => self.send_dtmf(leg, &keys),
            Command::StopPlay(leg) => {
                let stopped = (self.by_id.get(&leg).copied())
                    .and_then(|s| self.leg_mut(s))
                    .and_then(|l| l.player.take());
                if let Some(p) = stopped {
                    self.emit(Event::PlayDone {
                        leg,
                        id: p.id,
                        completed: false,
                    });
                }
            }
            Command::Record { conference, sink } => match self.conferences.get_mut(&conference) {
                Some(c) => c.record(sink),
                // No such conference here (it ended): the writer is told to finish.
                None => {
                    if let Some(sink) = sink {
                        sink.close();
                    }
                }
            },
            Command::SpanConference { conference, bus } => {
                if let Some(c) = self.conferences.get_mut(&conference) {
                    c.span(bus.clone(), self.core);
                }
                match bus {
                    Some(bus) => self.spans.insert(conference, bus),
                    None => self.spans.remove(&conference),
                };
            }
            Command::PlayConference { conference, clip } => {
                if let Some(c) = self.conferences.get_mut(&conference) {
                    c.play_tone(self.clips.at_rate(&clip, self.mix_rate));
                }
            }
            Command::DetachLeg(id) => {
                if let Some(leg) = self.take_leg(now, id) {
                    let leg = leg.detach();
                    self.emit(Event::LegDetached { leg });
                }
            }
            Command::AttachLeg { leg, pair } => self.attach_leg(leg, pair),
            Command::Connect { from, to } => self.link(from, to, true),
            Command::Disconnect { from, to } => self.link(from, to, false),
            Command::SetVideo { leg, video } => self.set_video(now, leg, video),
            Command::QueryLeg(id) => {
                match self.by_id.get(&id).copied().and_then(|s| self.leg_mut(s)) {
                    Some(leg) => {
                        let stats = leg.stats;
                        self.emit(Event::LegStats { id, stats });
                    }
                    None => self.emit(Event::UnknownLeg { id }),
                }
            }
            Command::Shutdown => self.shutdown = true,
        }
    }

    fn create_leg(&mut self, now: Instant, cfg: &LegConfig) {
        let id = cfg.id;
        let Some(pair) = self.free_pair_for(id, cfg.pair) else {
            return;
        };
        let leg = match Leg::new(cfg, pair.rtp, pair.rtcp, now) {
            Ok(leg) => leg,
            Err(e) => {
                self.emit(Event::LegRejected {
                    id,
                    reason: format!("SRTP keys rejected: {e}"),
                });
                return;
            }
        };
        let (rtp, rtcp) = self.install_leg(leg, pair);
        self.wake_idle(id);
        let core = self.core;
        self.emit(Event::LegCreated {
            id,
            core,
            rtp,
            rtcp,
        });
    }

    /// The socket pair a new leg `id` gets (`wanted`, or round-robin), or None after emitting
    /// `LegRejected` (the id exists here, or no such pair).
    fn free_pair_for(&mut self, id: LegId, wanted: Option<u16>) -> Option<SocketPair> {
        if self.by_id.contains_key(&id) {
            self.emit(Event::LegRejected {
                id,
                reason: format!("{id} already exists on {}", self.core),
            });
            return None;
        }
        let index = match wanted {
            Some(p) => usize::from(p),
            None => {
                self.next_pair = self.next_pair.wrapping_add(1);
                self.next_pair.wrapping_sub(1) % self.pairs.len().max(1)
            }
        };
        let pair = self.pairs.get(index).copied();
        if pair.is_none() {
            self.emit(Event::LegRejected {
                id,
                reason: format!("{} has no socket pair {index}", self.core),
            });
        }
        pair
    }

    /// Gives a leg a slot, its flows and (latching) a place among the waiting legs; returns
    /// its local RTP and RTCP addresses.
    fn install_leg(&mut self, leg: Leg, pair: SocketPair) -> (SocketAddr, SocketAddr) {
        let id = leg.id;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.legs.push(None);
                (self.legs.len() - 1) as LegSlot
            }
        };
        let rtcp_addr = if leg.rtcp_mux {
            pair.rtp_addr
        } else {
            pair.rtcp_addr
        };
        let latch = leg.latch || leg.remote_rtp.is_none();
        self.legs[slot as usize] = Some(leg);
        self.by_id.insert(id, slot);
        self.install_flows(slot);
        if latch && let Some(list) = self.pending.get_mut(usize::from(pair.rtp.0)) {
            list.push(slot);
        }
        self.counters.set(Metric::Legs, self.by_id.len() as u64);
        (pair.rtp_addr, rtcp_addr)
    }

    /// Adopts a leg detached from another core.
    fn attach_leg(&mut self, moving: MovingLeg, wanted: Option<u16>) {
        let mut leg = *moving.0;
        let id = leg.id;
        let Some(pair) = self.free_pair_for(id, wanted) else {
            return;
        };
        leg.rehome(pair.rtp, pair.rtcp);
        let (rtp, rtcp) = self.install_leg(leg, pair);
        self.wake_idle(id);
        let core = self.core;
        self.emit(Event::LegMoved {
            id,
            core,
            rtp,
            rtcp,
        });
    }

    /// Puts the leg's current remote addresses into the flow table (replacing old keys).
    fn install_flows(&mut self, slot: LegSlot) {
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let (rtp, rtcp) = leg.wanted_flows();
        let (old_rtp, old_rtcp) = (leg.flow_rtp.take(), leg.flow_rtcp.take());
        let ssrc = leg.remote_ssrc;
        for k in [old_rtp, old_rtcp].into_iter().flatten() {
            self.flows.remove(k, slot);
        }
        // An address shared with a leg of unknown SSRC cannot be routed yet; the leg then
        // stays reachable through latching only.
        let rtp = rtp.filter(|k| self.flows.insert(*k, slot, ssrc).is_ok());
        let rtcp = rtcp.filter(|k| self.flows.insert(*k, slot, ssrc).is_ok());
        if let Some(leg) = self.leg_mut(slot) {
            leg.flow_rtp = rtp;
            leg.flow_rtcp = rtcp;
        }
    }

    fn update_leg(&mut self, slot: LegSlot, u: &LegUpdate) {
        let (tick_ms, mix_rate) = (self.tick_ms, self.mix_rate);
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        if let Some((srtp_in, srtp_out)) = &u.srtp
            && let Err(e) = leg.rekey(srtp_in, srtp_out)
        {
            // Keys are checked by the SDP layer, so this is a bug there; keep the old keys.
            let reason = format!("new SRTP keys refused: {e}");
            self.emit(Event::LegRejected { id: u.id, reason });
            return;
        }
        leg.send = u.send;
        leg.set_remote(u.remote_rtp, u.remote_rtcp);
        if let Some(format) = u.audio
            && leg.audio_format != Some(format)
        {
            // A new codec or payload type: a conference leg gets a new audio path for it.
            leg.audio_format = Some(format);
            leg.private_encoder = None;
            leg.renew_detectors();
            if let Some((_, audio)) = &mut leg.conference {
                match LegAudio::new(format, mix_rate, tick_ms) {
                    Ok(a) => **audio = a,
                    Err(e) => {
                        let reason = format!("new audio format refused: {e}");
                        self.emit(Event::LegRejected { id: u.id, reason });
                    }
                }
            }
        }
        self.install_flows(slot);
    }

    fn remove_leg(&mut self, now: Instant, id: LegId) {
        if let Some(leg) = self.take_leg(now, id) {
            let stats = leg.stats();
            self.emit(Event::LegRemoved { id, stats });
        }
    }

    /// Takes a leg out of this core (slot, flows, waiting list, links), or emits `UnknownLeg`.
    fn take_leg(&mut self, now: Instant, id: LegId) -> Option<Leg> {
        let Some(slot) = self.by_id.get(&id).copied() else {
            self.emit(Event::UnknownLeg { id });
            return None;
        };
        self.leave(now, slot);
        self.by_id.remove(&id);
        let leg = self.legs.get_mut(slot as usize).and_then(Option::take)?;
        let video_flows = leg.video.as_ref().map(|v| v.flow_keys());
        for k in [leg.flow_rtp, leg.flow_rtcp].into_iter().flatten() {
            self.flows.remove(k, slot);
        }
        for k in video_flows.into_iter().flatten() {
            self.flows.remove(k, slot);
        }
        self.drop_pending(slot);
        self.dtmf_open.retain(|&s| s != slot);
        for &s in leg.sources.iter().chain(leg.targets.iter()) {
            if let Some(other) = self.leg_mut(s) {
                other.targets.retain(|&t| t != slot);
                other.sources.retain(|&t| t != slot);
            }
        }
        self.free.push(slot);
        self.counters.set(Metric::Legs, self.by_id.len() as u64);
        Some(leg)
    }

    /// Puts a leg into a conference (leaving the one it was in).
    fn join(&mut self, now: Instant, id: LegId, conference: ConferenceId) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            self.emit(Event::UnknownLeg { id });
            return;
        };
        self.leave(now, slot);
        let (tick_ms, mix_rate) = (self.tick_ms, self.mix_rate);
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let audio = match leg.audio_format {
            Some(format) => LegAudio::new(format, mix_rate, tick_ms).map_err(|e| e.to_string()),
            None => Err("the leg has no negotiated audio format".to_string()),
        };
        match audio {
            Ok(audio) => {
                leg.conference = Some((conference, Box::new(audio)));
                let talkers = self.talker_config;
                let core = self.core;
                let span = self.spans.get(&conference).cloned();
                self.conferences
                    .entry(conference)
                    .or_insert_with(|| {
                        let mut c = Conference::new(talkers, tick_ms, mix_rate);
                        c.span(span, core);
                        c
                    })
                    .members
                    .push(id);
                self.counters
                    .set(Metric::Conferences, self.conferences.len() as u64);
                self.video_join(now, slot, conference);
            }
            Err(e) => self.emit(Event::LegRejected {
                id,
                reason: format!("cannot join {conference}: {e}"),
            }),
        }
    }

    /// Takes a leg out of its conference, if in one.
    fn leave(&mut self, now: Instant, slot: LegSlot) {
        let Some(conference) = (self.leg_mut(slot))
            .and_then(|l| l.conference.as_ref())
            .map(|(c, _)| *c)
        else {
            return;
        };
        self.video_leave(now, slot, conference);
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let id = leg.id;
        let Some((conference, _)) = leg.conference.take() else {
            return;
        };
        if let Some(c) = self.conferences.get_mut(&conference) {
            c.members.retain(|&m| m != id);
            if c.members.is_empty()
                && let Some(mut gone) = self.conferences.remove(&conference)
            {
                // A recording of an emptied conference ends with it.
                gone.record(None);
            }
        }
        self.counters
            .set(Metric::Conferences, self.conferences.len() as u64);
    }

    // ---- video ---------------------------------------------------------------------------

    /// Gives a leg video, replaces it, or takes it away (`Command::SetVideo`).
    fn set_video(&mut self, now: Instant, id: LegId, video: Option<Box<VideoConfig>>) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            self.emit(Event::UnknownLeg { id });
            return;
        };
        let conference = (self.leg_mut(slot))
            .and_then(|l| l.conference.as_ref())
            .map(|(c, _)| *c);
        if let Some(c) = conference {
            self.video_leave(now, slot, c);
        }
        let old = self.leg_mut(slot).and_then(|l| l.video.take());
        if let Some(old) = old {
            for k in old.flow_keys() {
                self.flows.remove(k, slot);
            }
            if let Some(leg) = self.leg_mut(slot) {
                leg.video_srtp = old.into_srtp();
            }
        }
        let Some(cfg) = video else {
            return;
        };
        let reject = |reason: String| Event::VideoRejected { id, reason };
        let Some(leg) = self.legs.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        if leg.remote_rtp == Some(cfg.remote_rtp) {
            let e = reject("video on the audio address (bundled) is not supported".into());
            self.emit(e);
            return;
        }
        let pair = match cfg.pair {
            Some(i) => self.pairs.get(usize::from(i)).copied(),
            None => self.pairs.iter().find(|p| p.rtp == leg.rtp_sock).copied(),
        };
        let Some(pair) = pair else {
            let e = reject(format!(
                "{} has no socket pair {:?} for video",
                self.core, cfg.pair
            ));
            self.emit(e);
            return;
        };
        let rtcp_addr = if cfg.rtcp_mux {
            pair.rtp_addr
        } else {
            pair.rtcp_addr
        };
        let mut video = match LegVideo::new(*cfg, pair.rtp, pair.rtcp) {
            Ok(v) => v,
            Err(e) => {
                self.emit(reject(format!("video SRTP keys rejected: {e}")));
                return;
            }
        };
        // A key that did not change keeps its context (RFC 4568 7.1.4), whether the video
        // was replaced, taken away and given back, or moved here with the leg: the rollover
        // counter, replay window and SRTCP index go on. A fresh context under an old key
        // would protect indexes it already used.
        if let Some(leg) = self.leg_mut(slot) {
            video.resume_srtp(&mut leg.video_srtp);
        }
        let (rtp_key, rtcp_key) = (video.flow_rtp, video.flow_rtcp);
        if self.flows.insert(rtp_key, slot, None).is_err() {
            self.emit(reject("video address already used by another leg".into()));
            return;
        }
        if let Some(k) = rtcp_key
            && self.flows.insert(k, slot, None).is_err()
        {
            self.flows.remove(rtp_key, slot);
            self.emit(reject(
                "video RTCP address already used by another leg".into(),
            ));
            return;
        }
        if let Some(leg) = self.leg_mut(slot) {
            leg.video = Some(Box::new(video));
        }
        self.emit(Event::VideoReady {
            id,
            rtp: pair.rtp_addr,
            rtcp: rtcp_addr,
        });
        if let Some(c) = conference {
            self.video_join(now, slot, c);
        }
    }

    /// Puts a conference member's video into its conference's router (made on the first
    /// video member): its producer if it sends, consumers of the others' producers (or one
    /// that follows the speaker), and consumers of its producer for the others.
    fn video_join(&mut self, now: Instant, slot: LegSlot, cid: ConferenceId) {
        let Some(leg) = self.legs.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let Some(video) = leg.video.as_ref() else {
            return;
        };
        let id = leg.id;
        let producer_cfg = video.config.producer.clone();
        let layout = video.config.layout;
        let (ntp, last_n) = (self.ntp, self.video_last_n);
        let room = self.videos.entry(cid).or_insert_with(|| {
            let mut config = RouterConfig::new(ntp);
            config.last_n = last_n;
            config.rtcp_ssrc = Ssrc(0x5f0_0000 ^ cid.0.rotate_left(8));
            VideoRoom::new(Router::new(now, config))
        });
        if room.members.contains(&slot) {
            return;
        }
        room.members.push(slot);
        let mut refused = None;
        let producer = match producer_cfg {
            Some(cfg) => match room.router.add_producer(now, cfg) {
                Ok(p) => {
                    room.routes.set_producer(p, Some(slot));
                    Some(p)
                }
                Err(e) => {
                    refused = Some(e);
                    None
                }
            },
            None => None,
        };
        if let Some(v) = self.leg_mut(slot).and_then(|l| l.video.as_deref_mut()) {
            v.producer = producer;
        }
        let others: Vec<LegSlot> = (self.videos.get(&cid))
            .map(|r| r.members.iter().copied().filter(|&m| m != slot).collect())
            .unwrap_or_default();
        // The newcomer's streams.
        match layout {
            VideoLayout::ActiveSpeaker => {
                self.add_consumer(
                    now,
                    cid,
                    slot,
                    ConsumerSource::ActiveSpeaker { except: producer },
                    None,
                );
            }
            VideoLayout::All => {
                for &m in &others {
                    if let Some((p, codec)) = self.producer_of(m) {
                        self.add_consumer(now, cid, slot, ConsumerSource::Producer(p), Some(codec));
                    }
                }
            }
        }
        // The others' streams of the newcomer.
        if let Some((p, codec)) = self.producer_of(slot) {
            for &m in &others {
                let all = (self.legs.get(m as usize))
                    .and_then(Option::as_ref)
                    .and_then(|l| l.video.as_ref())
                    .is_some_and(|v| v.config.layout == VideoLayout::All);
                if all {
                    self.add_consumer(now, cid, m, ConsumerSource::Producer(p), Some(codec));
                }
            }
        }
        for m in others.into_iter().chain(std::iter::once(slot)) {
            self.share_bandwidth(now, cid, m);
        }
        if let Some(e) = refused {
            self.emit(Event::VideoRejected {
                id,
                reason: format!("video producer refused: {e}"),
            });
        }
        self.video_events(cid);
    }

    /// A video leg's producer in its room and the producer's codec.
    fn producer_of(&self, slot: LegSlot) -> Option<(crate::sfu::ProducerId, VideoCodec)> {
        let v = self.legs.get(slot as usize)?.as_ref()?.video.as_ref()?;
        Some((v.producer?, v.config.producer.as_ref()?.codec))
    }

    /// Adds a consumer for leg `slot` from `source`, in the receiver's payload type for
    /// `codec` (None: its first codec); a receiver that does not take the codec gets none.
    /// Its SSRC is derived from the leg's own and the count of consumer SSRCs it has had
    /// (never one it had before), skipping any the router already uses.
    fn add_consumer(
        &mut self,
        now: Instant,
        cid: ConferenceId,
        slot: LegSlot,
        source: ConsumerSource,
        codec: Option<VideoCodec>,
    ) -> Option<ConsumerId> {
        let leg = self.legs.get(slot as usize)?.as_ref()?;
        let video = leg.video.as_ref()?;
        let recv = video
            .config
            .receive
            .iter()
            .find(|r| codec.is_none_or(|c| r.codec == c))
            .copied()?;
        let (base, max_height) = (leg.local_ssrc, video.config.max_height);
        let extensions = video.config.extensions;
        let used = leg.video_ssrcs_used;
        // A speaker follower takes every codec the receiver does, each in its own payload
        // type (the stream changes payload type with the speaker's codec).
        let pt_of = |codec| {
            (video.config.receive.iter())
                .find(|r| r.codec == codec)
                .map(|r| r.pt)
        };
        let codec_pts = (pt_of(VideoCodec::H264), pt_of(VideoCodec::Vp8));
        let room = self.videos.get_mut(&cid)?;
        let mut added = None;
        let mut k = used;
        for _ in 0..32 {
            k = k.wrapping_add(1);
            let ssrc = base ^ k.wrapping_mul(0x9e37_79b9);
            let config = ConsumerConfig {
                source,
                ssrc: Ssrc(ssrc),
                pt: recv.pt,
                rtx: recv.rtx_pt.map(|pt| RtxConfig {
                    ssrc: Ssrc(ssrc ^ 0x0000_8000),
                    pt,
                }),
                max_height,
                nack_limits: NackLimits::default(),
                extensions,
            };
            match room.router.add_consumer(now, config) {
                Ok(c) => {
                    if let ConsumerSource::ActiveSpeaker { .. } = source {
                        let _ = room.router.set_codec_pts(now, c, codec_pts.0, codec_pts.1);
                    }
                    room.routes.set_consumer(c, Some(slot));
                    added = Some(c);
                    break;
                }
                Err(SfuError::SsrcCollision(_)) => continue,
                Err(_) => break,
            }
        }
        let leg = self.leg_mut(slot)?;
        leg.video_ssrcs_used = k;
        if let (Some(c), Some(v)) = (added, leg.video.as_deref_mut()) {
            v.consumers.push(c);
        }
        added
    }

    /// Splits a receiver's bandwidth cap equally among its consumers.
    fn share_bandwidth(&mut self, now: Instant, cid: ConferenceId, slot: LegSlot) {
        let Some(v) = (self.legs.get(slot as usize))
            .and_then(Option::as_ref)
            .and_then(|l| l.video.as_ref())
        else {
            return;
        };
        let (Some(cap), n) = (v.config.bandwidth_bps, v.consumers.len()) else {
            return;
        };
        let Some(room) = self.videos.get_mut(&cid) else {
            return;
        };
        let share = cap / (n.max(1) as u32);
        for &c in &v.consumers {
            let _ = room.router.set_bandwidth(now, c, share);
        }
    }

    /// Takes a leg's video out of its conference's router: its producer (with the others'
    /// consumers of it) and its consumers. The last video member drops the router.
    fn video_leave(&mut self, now: Instant, slot: LegSlot, cid: ConferenceId) {
        let Some(video) = self.leg_mut(slot).and_then(|l| l.video.as_deref_mut()) else {
            return;
        };
        let producer = video.producer.take();
        let consumers = std::mem::take(&mut video.consumers);
        let Some(room) = self.videos.get_mut(&cid) else {
            return;
        };
        for c in consumers {
            let _ = room.router.remove_consumer(c);
            room.routes.set_consumer(c, None);
        }
        if let Some(p) = producer {
            let _ = room.router.remove_producer(now, p);
            room.routes.set_producer(p, None);
            if room.speaker == Some(p) {
                room.speaker = None;
            }
        }
        room.members.retain(|&m| m != slot);
        if room.members.is_empty() {
            self.videos.remove(&cid);
            return;
        }
        // Consumers closed with the producer leave their receivers' lists, and the
        // receivers' caps are shared among the streams they have left.
        self.video_events(cid);
        let members = (self.videos.get(&cid)).map_or(0, |r| r.members.len());
        for i in 0..members {
            let Some(&m) = self.videos.get(&cid).and_then(|r| r.members.get(i)) else {
                break;
            };
            self.share_bandwidth(now, cid, m);
        }
    }

    /// Runs the routers' due timers (NACKs, key-frame requests, layers, reports).
    fn video_timeouts(&mut self, now: Instant, tx: &mut TxQueue) {
        let mut ids = std::mem::take(&mut self.conference_ids);
        ids.clear();
        ids.extend(self.videos.keys().copied());
        for &cid in &ids {
            if let Some(room) = self.videos.get_mut(&cid) {
                room.handle_timeouts(now, &mut self.legs, tx, &mut self.counters);
            }
            self.video_events(cid);
        }
        self.conference_ids = ids;
    }

    /// One tick of every conference: pull each member's frame, pick the talkers, mix, and
    /// send each listener its mix, encoded once per (mix, codec).
    fn mix_conferences(&mut self, now: Instant, tx: &mut TxQueue) {
        let mut ids = std::mem::take(&mut self.conference_ids);
        ids.clear();
        ids.extend(self.conferences.keys().copied());
        for &cid in &ids {
            let Some(mut conf) = self.conferences.remove(&cid) else {
                continue;
            };
            conf.levels.clear();
            for &m in &conf.members {
                let Some(leg) = self
                    .by_id
                    .get(&m)
                    .and_then(|&s| self.legs.get_mut(s as usize))
                    .and_then(Option::as_mut)
                else {
                    continue;
                };
                let muted = leg.muted;
                if let Some((_, audio)) = &mut leg.conference {
                    // Frames known to be quieter than speech are not decoded for members
                    // that are not talkers (they cannot become one this tick).
                    audio.pull_skipping(now, conf.skip_quieter_than(m));
                    if !muted {
                        conf.levels.push((m, audio.level()));
                    }
                }
            }
            // Only the talkers are resampled to the conference rate.
            for &t in conf.select() {
                if let Some((_, audio)) = self
                    .by_id
                    .get(&t)
                    .and_then(|&s| self.legs.get_mut(s as usize))
                    .and_then(Option::as_mut)
                    .and_then(|l| l.conference.as_mut())
                {
                    audio.frame_for_mix();
                }
            }
            // The loudest talker is the video's active speaker.
            if let Some(room) = self.videos.get_mut(&cid)
                && let Some(p) = (conf.talkers_selected().first())
                    .and_then(|t| self.by_id.get(t))
                    .and_then(|&s| self.legs.get(s as usize))
                    .and_then(Option::as_ref)
                    .and_then(|l| l.video.as_ref())
                    .and_then(|v| v.producer)
                && room.speaker != Some(p)
            {
                room.speaker = Some(p);
                room.router.handle_active_speaker(now, p);
            }
            if conf.talkers_changed() {
                let talkers = conf.talkers_selected().to_vec();
                self.emit(Event::Talkers {
                    conference: cid,
                    talkers,
                });
            }
            let (legs, by_id) = (&self.legs, &self.by_id);
            conf.mix_selected(|id| {
                let leg = by_id
                    .get(&id)
                    .and_then(|&s| legs.get(s as usize))
                    .and_then(Option::as_ref)?;
                leg.conference.as_ref().map(|(_, a)| a.frame())
            });
            self.counters.add(Metric::Mixes, 1);
            for i in 0..conf.members.len() {
                let m = conf.members[i];
                let Some(slot) = self.by_id.get(&m).copied() else {
                    continue;
                };
                let Some((codec, pt)) = self
                    .leg_mut(slot)
                    .filter(|l| !l.deaf && l.send)
                    .and_then(|l| l.conference.as_ref())
                    .map(|(_, a)| (a.format().codec, a.format().pt))
                else {
                    continue;
                };
                let mix = conf.mix_for(m);
                let (gain, prompt) = self
                    .leg_mut(slot)
                    .map_or((256, false), |l| (l.listen_gain_q8, l.player.is_some()));
                if gain == 256 && !prompt {
                    if let Some(payload) = conf.encoded(mix, codec) {
                        self.send_audio(slot, pt, payload, tx);
                    }
                    continue;
                }
                // Only this leg hears this (its volume, its prompt over the mix): its own
                // encode, from a scratch frame the core keeps.
                let mut frame = std::mem::take(&mut self.scratch_frame);
                frame.clear();
                frame.extend_from_slice(conf.pcm(mix));
                if gain != 256 {
                    crate::mixer::leg_audio::apply_gain(&mut frame, gain);
                }
                let (started, finished) = self.leg_mut(slot).map_or((None, None), |l| {
                    let Some(player) = l.player.as_mut() else {
                        return (None, None);
                    };
                    let started = player.at_start().then_some(player.id);
                    if player.mix_into(&mut frame) {
                        (started, None)
                    } else {
                        (started, l.player.take().map(|p| p.id))
                    }
                });
                if let Some(id) = started {
                    self.emit(Event::PlayStarted {
                        leg: m,
                        id,
                        at: now,
                    });
                }
                if let Some(id) = finished {
                    self.emit(Event::PlayDone {
                        leg: m,
                        id,
                        completed: true,
                    });
                }
                self.send_private(slot, &frame, tx);
                self.scratch_frame = frame;
            }
            self.conferences.insert(cid, conf);
        }
        self.conference_ids = ids;
    }

    /// Sends one frame of audio the engine made (a mix, a prompt) to a leg, in its outbound
    /// stream: payload type `pt`, the leg's SSRC and numbering, its SRTP.
    fn send_audio(&mut self, slot: LegSlot, pt: crate::rtp::Pt, payload: &[u8], tx: &mut TxQueue) {
        let tick_ms = self.tick_ms;
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(dst) = leg.remote_rtp else {
            leg.stats.out_dropped += 1;
            self.counters.inc(Metric::DropNoRemote);
            return;
        };
        let Some(format) = leg.audio_format else {
            return;
        };
        let (out_seq, out_ts) = leg.audio_out;
        // The first packet, and the first audio after CN or DTX, start a talkspurt.
        let is_cn = format.cn_pt == Some(pt);
        let marker = (out_seq == 0 && out_ts == 0) || (leg.silent_ticks > 0 && !is_cn);
        if !is_cn {
            leg.silent_ticks = 0;
        }
        let (seq, ts) = leg.out_numbering.map(MIX_SOURCE, out_seq, out_ts);
        let clock = format.codec.rtp_clock_rate();
        leg.audio_out = (
            out_seq.wrapping_add(1),
            out_ts.wrapping_add(clock * tick_ms / 1000),
        );
        let head = RtpHeader {
            pt,
            marker,
            seq,
            timestamp: ts,
            ..RtpHeader::default()
        };
        queue_rtp(
            leg,
            &mut self.counters,
            tx,
            dst,
            head,
            payload,
            Metric::MixedOut,
        );
    }

    /// One tick of silence to an idle leg, the way the leg sends silence: as CN, as DTX (a
    /// frame every `DTX_REFRESH_TICKS`, nothing between) or as an encoded silent frame shared
    /// by every idle leg of the codec.
    fn send_idle_silence(&mut self, slot: LegSlot, zeros: &[i16], tx: &mut TxQueue) {
        let mix_rate = self.mix_rate;
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let Some(format) = leg.audio_format else {
            return;
        };
        match leg.silence {
            SilenceSend::ComfortNoise if format.cn_pt.is_some() => {
                return self.send_private(slot, zeros, tx);
            }
            SilenceSend::Dtx if format.codec == chorus_codecs::AudioCodec::Opus => {
                let refresh = leg.silent_ticks % DTX_REFRESH_TICKS == 0;
                leg.silent_ticks = leg.silent_ticks.saturating_add(1).max(1);
                if !refresh {
                    return self.skip_audio_tick(slot);
                }
            }
            _ => {}
        }
        let codec = format.codec;
        let cached = self.silence_payloads.iter().position(|(c, _)| *c == codec);
        let index = match cached {
            Some(i) => i,
            None => {
                let Some(mut enc) = PrivateEncoder::new(codec, mix_rate) else {
                    return;
                };
                if !enc.encode(zeros) {
                    return;
                }
                self.silence_payloads
                    .push((codec, std::mem::take(&mut enc.payload)));
                self.silence_payloads.len() - 1
            }
        };
        let payload = std::mem::take(&mut self.silence_payloads[index].1);
        // A DTX refresh frame starts no talkspurt (no marker bit), and the leg stays in DTX.
        let silent_ticks = self
            .leg_mut(slot)
            .map_or(0, |l| std::mem::take(&mut l.silent_ticks));
        self.send_audio(slot, format.pt, &payload, tx);
        if let Some(leg) = self.leg_mut(slot) {
            leg.silent_ticks = silent_ticks;
        }
        self.silence_payloads[index].1 = payload;
    }

    /// A tick of the leg's engine-made audio not sent (CN or DTX silence): the RTP
    /// timestamp runs on, the sequence number does not.
    fn skip_audio_tick(&mut self, slot: LegSlot) {
        let tick_ms = self.tick_ms;
        if let Some(leg) = self.leg_mut(slot)
            && let Some(format) = leg.audio_format
        {
            let step = format.codec.rtp_clock_rate() * tick_ms / 1000;
            leg.audio_out.1 = leg.audio_out.1.wrapping_add(step);
        }
    }

    /// Encodes `frame` (at the mix rate) with the leg's own encoder and sends it to the leg.
    fn send_private(&mut self, slot: LegSlot, frame: &[i16], tx: &mut TxQueue) {
        let mix_rate = self.mix_rate;
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let Some(format) = leg.audio_format else {
            return;
        };
        // Silence as comfort noise: a CN packet when it starts and every CN_REFRESH_TICKS.
        let silent = || frame.iter().all(|s| s.abs() <= SILENT_SAMPLE);
        if leg.silence == SilenceSend::ComfortNoise
            && let Some(cn_pt) = format.cn_pt
            && silent()
        {
            let refresh = leg.silent_ticks % CN_REFRESH_TICKS == 0;
            leg.silent_ticks = leg.silent_ticks.saturating_add(1).max(1);
            if refresh {
                self.send_audio(slot, cn_pt, &[CN_SILENCE_LEVEL], tx);
            } else {
                self.skip_audio_tick(slot);
            }
            return;
        }
        let dtx = leg.silence == SilenceSend::Dtx;
        if leg.private_encoder.as_ref().map(|e| e.codec()) != Some(format.codec) {
            leg.private_encoder = PrivateEncoder::with_dtx(format.codec, mix_rate, dtx);
        }
        let Some(enc) = leg.private_encoder.as_mut() else {
            return;
        };
        if !enc.encode(frame) {
            return;
        }
        if dtx
            && chorus_codecs::opus::is_dtx(&enc.payload)
            && format.codec == chorus_codecs::AudioCodec::Opus
        {
            leg.silent_ticks = leg.silent_ticks.saturating_add(1);
            self.skip_audio_tick(slot);
            return;
        }
        let payload = std::mem::take(&mut enc.payload);
        self.send_audio(slot, format.pt, &payload, tx);
        if let Some(enc) = self.leg_mut(slot).and_then(|l| l.private_encoder.as_mut()) {
            enc.payload = payload;
        }
    }

    /// Queues keys to send to a leg as RFC 4733 events.
    fn send_dtmf(&mut self, id: LegId, keys: &str) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            self.emit(Event::UnknownLeg { id });
            return;
        };
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        if leg.telephone_events.is_empty() || leg.audio_format.is_none() {
            self.counters.inc(Metric::DtmfNotSent);
            return;
        }
        leg.dtmf_out
            .get_or_insert_with(Default::default)
            .queue(keys);
        if !self.dtmf_sending.contains(&slot) {
            self.dtmf_sending.push(slot);
        }
    }

    /// One tick of every leg sending keys: an event packet each, in the leg's outbound
    /// stream (its sequence numbers; the press's start timestamp).
    fn send_dtmf_events(&mut self, tx: &mut TxQueue) {
        let tick_ms = self.tick_ms;
        let mut sending = std::mem::take(&mut self.dtmf_sending);
        sending.retain(|&slot| {
            let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
                return false;
            };
            let Some(format) = leg.audio_format else {
                return false;
            };
            let clock = format.codec.rtp_clock_rate();
            // The remote's event payload type on the audio clock, else its first one.
            let Some(pt) = (leg.telephone_events.iter())
                .find(|t| t.clock_rate == clock)
                .or(leg.telephone_events.first())
                .map(|t| t.pt)
            else {
                return false;
            };
            let Some(sender) = leg.dtmf_out.as_mut() else {
                return false;
            };
            let packet = sender.tick(tick_ms, clock, leg.audio_out.1);
            let idle = sender.is_idle();
            if let Some(packet) = packet {
                let seq = leg.audio_out.0;
                leg.audio_out.0 = seq.wrapping_add(1);
                if let Some(end) = packet.done_at
                    && end.wrapping_sub(leg.audio_out.1) < 0x8000_0000
                {
                    leg.audio_out.1 = end;
                }
                let (seq, ts) = leg.out_numbering.map(MIX_SOURCE, seq, packet.timestamp);
                if let (Some(dst), true) = (leg.remote_rtp, leg.send) {
                    let head = RtpHeader {
                        pt,
                        marker: packet.marker,
                        seq,
                        timestamp: ts,
                        ..RtpHeader::default()
                    };
                    let (counters, sent) = (&mut self.counters, Metric::DtmfEventsOut);
                    queue_rtp(leg, counters, tx, dst, head, &packet.payload, sent);
                }
            }
            if idle {
                leg.dtmf_out = None;
            }
            !idle
        });
        self.dtmf_sending = sending;
    }

    /// Starts a playback on a leg (ending the one before).
    fn play(&mut self, id: LegId, clip: std::sync::Arc<[i16]>, play_id: u32) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            self.emit(Event::UnknownLeg { id });
            return;
        };
        let clip = self.clips.at_rate(&clip, self.mix_rate);
        let Some(leg) = self.leg_mut(slot) else {
            return;
        };
        let playable = leg
            .audio_format
            .is_some_and(|f| f.codec.encoder().is_some());
        let old = leg.player.take();
        if playable {
            leg.player = Some(Player::new(clip, play_id));
            if !self.playing.contains(&slot) {
                self.playing.push(slot);
            }
        }
        if let Some(old) = old {
            self.emit(Event::PlayDone {
                leg: id,
                id: old.id,
                completed: false,
            });
        }
        if !playable {
            self.emit(Event::PlayDone {
                leg: id,
                id: play_id,
                completed: false,
            });
        }
    }

    /// Puts a leg that sends silence when idle among the playing legs, where `play_prompts`
    /// keeps it while it is outside a conference.
    fn wake_idle(&mut self, id: LegId) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        if self.leg_mut(slot).is_some_and(|l| l.idle_silence) && !self.playing.contains(&slot) {
            self.playing.push(slot);
        }
    }

    /// Plays one tick of each leg's clip to legs outside conferences (conference legs hear
    /// theirs over the mix, in `mix_conferences`), and silence to idle legs that want it.
    fn play_prompts(&mut self, now: Instant, tx: &mut TxQueue) {
        let frame_len = (self.mix_rate * self.tick_ms / 1000) as usize;
        let mut playing = std::mem::take(&mut self.playing);
        let mut frame = std::mem::take(&mut self.scratch_frame);
        playing.retain(|&slot| {
            let Some(leg) = self.leg_mut(slot) else {
                return false;
            };
            if leg.conference.is_some() {
                return leg.player.is_some();
            }
            let id = leg.id;
            frame.clear();
            frame.resize(frame_len, 0);
            let Some(player) = leg.player.as_mut() else {
                // Idle: silence, unless media is forwarded to it or DTMF goes out on it.
                let idle = leg.idle_silence;
                if idle && leg.send && leg.sources.is_empty() && leg.dtmf_out.is_none() {
                    self.send_idle_silence(slot, &frame, tx);
                }
                return idle;
            };
            let started = player.at_start().then_some(player.id);
            let more = player.mix_into(&mut frame);
            let (send, idle) = (leg.send, leg.idle_silence);
            let done = if more { None } else { leg.player.take() };
            if let Some(play) = started {
                self.emit(Event::PlayStarted {
                    leg: id,
                    id: play,
                    at: now,
                });
            }
            if let Some(done) = done {
                self.emit(Event::PlayDone {
                    leg: id,
                    id: done.id,
                    completed: true,
                });
            }
            if send {
                self.send_private(slot, &frame, tx);
            }
            more || idle
        });
        self.playing = playing;
        self.scratch_frame = frame;
    }

    fn link(&mut self, from: LegId, to: LegId, connect: bool) {
        let (Some(&f), Some(&t)) = (self.by_id.get(&from), self.by_id.get(&to)) else {
            let id = if self.by_id.contains_key(&from) {
                to
            } else {
                from
            };
            self.emit(Event::UnknownLeg { id });
            return;
        };
        if let Some(src) = self.leg_mut(f) {
            src.targets.retain(|&x| x != t);
            if connect {
                src.targets.push(t);
            }
        }
        if let Some(dst) = self.leg_mut(t) {
            dst.sources.retain(|&x| x != f);
            if connect {
                dst.sources.push(f);
            }
        }
    }

    // ---- tick ----------------------------------------------------------------------------

    /// Runs one media tick.
    pub fn on_tick(&mut self, now: Instant, tick: Tick, period: Duration, tx: &mut TxQueue) {
        self.counters.inc(Metric::Ticks);
        self.counters.add(Metric::TicksSkipped, tick.skipped);
        self.latch_budget = LATCH_BUDGET_PER_TICK;
        self.check_dtmf_timeouts(now);
        if !self.conferences.is_empty() {
            self.mix_conferences(now, tx);
        }
        if !self.videos.is_empty() {
            self.video_timeouts(now, tx);
        }
        if !self.playing.is_empty() {
            self.play_prompts(now, tx);
        }
        if !self.dtmf_sending.is_empty() {
            self.send_dtmf_events(tx);
        }
        let late_us = tick.late.as_micros() as u64;
        if late_us > self.counters.get(Metric::TickLateMaxUs) {
            self.counters.set(Metric::TickLateMaxUs, late_us);
        }
        // Inactivity is checked about once a second.
        let per_second = (1_000_000 / period.as_micros().max(1)) as u64;
        if tick.index.is_multiple_of(per_second.max(1)) {
            self.check_inactivity(now);
            self.send_reports(now, tx);
        }
    }

    /// Sends each leg whose report is due an SR if the engine sent it RTP since the last
    /// report, else an RR (either with a block on the remote's stream once it is valid), and
    /// an SDES CNAME, SRTCP-protected, to its RTCP address. The SR pairs the report's NTP
    /// time with the last packet's RTP timestamp (sent on this tick or the last few).
    fn send_reports(&mut self, now: Instant, tx: &mut TxQueue) {
        let ntp = self.ntp.ntp(now);
        for leg in self.legs.iter_mut().flatten() {
            if leg.next_report > now {
                continue;
            }
            leg.next_report = (leg.next_report + REPORT_INTERVAL).max(now + REPORT_INTERVAL / 2);
            let Some(dst) = leg.remote_rtcp else {
                continue;
            };
            let block = leg.recv.as_mut().and_then(|r| r.report_block(now));
            let blocks = block.as_slice();
            let (ssrc, cname) = (Ssrc(leg.local_ssrc), &leg.cname);
            // RFC 3550 6.4.1: the counts wrap at 32 bits.
            let sender = leg.sent.since_report.then_some(SenderInfo {
                ssrc,
                ntp,
                rtp_timestamp: leg.sent.last_ts,
                packet_count: leg.stats.rtp_out as u32,
                octet_count: leg.sent.octets as u32,
            });
            leg.sent.since_report = false;
            let mut failed = false;
            let queued = tx.send_with(leg.rtcp_sock, dst, |out| {
                let overhead = leg
                    .srtp_out
                    .as_ref()
                    .map_or(0, |c| c.suite().rtcp_overhead());
                let room = out.len().saturating_sub(overhead);
                let mut b = CompoundBuilder::new(&mut out[..room]);
                let built = match &sender {
                    Some(info) => b.append(|o| SenderReport::write(o, info, blocks)),
                    None => b.append(|o| ReceiverReport::write(o, ssrc, blocks)),
                }
                .and_then(|b| b.append(|o| SourceDescription::write_cname(o, ssrc, cname)));
                if built.is_err() {
                    failed = true;
                    return 0;
                }
                let n = b.len();
                match leg.srtp_out.as_mut() {
                    Some(ctx) => ctx.protect_rtcp(out, n).unwrap_or_else(|_| {
                        failed = true;
                        0
                    }),
                    None => n,
                }
            });
            if queued {
                leg.stats.rtcp_out += 1;
            } else if !failed {
                self.counters.inc(Metric::DropTxFull);
            }
        }
    }

    fn check_inactivity(&mut self, now: Instant) {
        let mut idle_legs = Vec::new();
        for leg in self.legs.iter_mut().flatten() {
            let Some(limit) = leg.inactivity_timeout else {
                continue;
            };
            let idle = now.saturating_duration_since(leg.last_rx);
            if idle >= limit && !leg.inactive_reported {
                leg.inactive_reported = true;
                idle_legs.push((leg.id, idle));
            }
        }
        for (id, idle) in idle_legs {
            self.emit(Event::Inactive { id, idle });
        }
    }
}

/// The wall-clock anchor of the sender reports (read once per core).
fn wall_clock() -> NtpClock {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    NtpClock::new(Instant::now(), NtpTime::from_unix(unix))
}

/// Queues a packet the engine originates for `leg` to `dst`: `head` (in the leg's outbound
/// numbering) with the leg's SSRC, the payload, SRTP with the leg's outbound context. Counts
/// it under `sent`, or why it was not sent.
fn queue_rtp(
    leg: &mut Leg,
    counters: &mut Counters,
    tx: &mut TxQueue,
    dst: SocketAddr,
    head: RtpHeader<'static>,
    payload: &[u8],
    sent: Metric,
) {
    let head = RtpHeader {
        ssrc: Ssrc(leg.local_ssrc),
        ..head
    };
    let mut protect_failed = false;
    let queued = tx.send_with(leg.rtp_sock, dst, |out| {
        let Ok(at) = head.write(out) else {
            return 0;
        };
        let n = at + payload.len();
        let Some(body) = out.get_mut(at..n) else {
            return 0;
        };
        body.copy_from_slice(payload);
        match leg.srtp_out.as_mut() {
            Some(ctx) => ctx.protect_rtp(out, n).unwrap_or_else(|_| {
                protect_failed = true;
                0
            }),
            None => n,
        }
    });
    let ts = head.timestamp;
    count_sent(
        leg,
        counters,
        (queued, protect_failed),
        sent,
        ts,
        payload.len(),
    );
}

/// Counts a packet queued for a leg (under `sent`, its timestamp and payload size kept for
/// the sender reports) or dropped (SRTP refused, no buffer).
fn count_sent(
    leg: &mut Leg,
    counters: &mut Counters,
    (queued, protect_failed): (bool, bool),
    sent: Metric,
    ts: u32,
    payload: usize,
) {
    if queued {
        leg.stats.rtp_out += 1;
        leg.sent.last_ts = ts;
        leg.sent.octets += payload as u64;
        leg.sent.since_report = true;
        counters.inc(sent);
    } else {
        leg.stats.out_dropped += 1;
        counters.inc(if protect_failed {
            Metric::DropSrtpOther
        } else {
            Metric::DropTxFull
        });
    }
}

/// Decrypts a packet from `leg` in place (plain legs pass it through) and returns its plain
/// length; a refusal is counted on the leg and the core, and gives None.
fn unprotect(
    leg: &mut Leg,
    counters: &mut Counters,
    buf: &mut [u8],
    kind: PacketKind,
) -> Option<usize> {
    unprotect_with(leg.srtp_in.as_mut(), buf, kind)
        .map_err(|e| {
            leg.count_srtp_error(e);
            counters.inc(drop_metric(e));
        })
        .ok()
}

/// Decrypts `buf` in place with `ctx` (None: plain, passed through): its plain length.
fn unprotect_with(
    ctx: Option<&mut SrtpContext>,
    buf: &mut [u8],
    kind: PacketKind,
) -> Result<usize, SrtpError> {
    match ctx {
        None => Ok(buf.len()),
        Some(ctx) if kind == PacketKind::Rtcp => ctx.unprotect_rtcp(buf),
        Some(ctx) => ctx.unprotect_rtp(buf),
    }
}

fn drop_metric(e: SrtpError) -> Metric {
    match e {
        SrtpError::AuthFailed => Metric::DropAuthFailed,
        SrtpError::Replayed | SrtpError::TooOld => Metric::DropReplayed,
        SrtpError::Malformed => Metric::DropMalformed,
        _ => Metric::DropSrtpOther,
    }
}

/// The core thread: sets up the backend on this thread (io_uring rings are single-issuer),
/// reports readiness, then loops until shutdown.
pub(crate) fn run_core(params: CoreParams, ready: std::sync::mpsc::Sender<CoreReady>) {
    let CoreParams {
        core,
        io: kind,
        sizes,
        gso,
        sockets,
        tick,
        pin_cpu,
        mailbox,
        metrics,
        talkers,
        mix_rate,
        video_last_n,
    } = params;
    if let Some(cpu) = pin_cpu
        && let Err(e) = sys::pin_current_thread(cpu)
    {
        tracing::warn!(%core, cpu, error = %e, "could not pin core thread");
    }
    let (mut backend, fallback) = match io::open_backend(kind, mailbox.wake_fd(), sizes, gso) {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(format!("{core}: packet I/O setup failed: {e}")));
            return;
        }
    };
    let mut pairs = Vec::with_capacity(sockets.len());
    for (rtp, rtcp) in sockets {
        let (rtp_addr, rtcp_addr) = match (rtp.local_addr(), rtcp.local_addr()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(format!("{core}: socket address: {e}")));
                return;
            }
        };
        match (backend.add_socket(rtp), backend.add_socket(rtcp)) {
            (Ok(r), Ok(c)) => pairs.push(SocketPair {
                rtp: r,
                rtcp: c,
                rtp_addr,
                rtcp_addr,
            }),
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(format!("{core}: socket registration: {e}")));
                return;
            }
        }
    }
    let socks = pairs.len() * 2;
    let mut state = CoreState::new(core, mailbox.clone(), pairs, socks);
    state.tick_ms = tick.as_millis().clamp(1, 1000) as u32;
    state.talker_config.max_talkers = talkers.clamp(1, 16);
    state.mix_rate = mix_rate;
    state.video_last_n = video_last_n;
    let _ = ready.send(Ok((backend.kind(), fallback.map(|e| e.to_string()))));
    drop(ready);
    tracing::debug!(%core, io = %backend.kind(), tid = sys::thread_id(), "media core running");

    let mut clock = TickClock::new(Instant::now(), tick);
    let mut last_counters = io::IoCounters::default();
    loop {
        if let Err(e) = backend.wait(clock.next_deadline()) {
            tracing::error!(%core, error = %e, "packet I/O wait failed");
            std::thread::sleep(Duration::from_millis(1));
        }
        let now = Instant::now();
        state.counters.inc(Metric::Loops);
        // Commands before packets: the control side creates a leg before it answers the
        // call, so a caller's first packet may arrive in the same round as the command that
        // creates its leg, and must find the leg there.
        for _ in 0..COMMANDS_PER_ROUND {
            let Some(cmd) = mailbox.next_command() else {
                break;
            };
            state.on_command(now, cmd);
        }
        backend.drain(&mut |meta, buf, tx| state.on_packet(now, meta, buf, tx));
        if let Some(t) = clock.poll(now) {
            state.on_tick(now, t, clock.period(), backend.tx());
            let c = backend.counters();
            fold_io_counters(&mut state.counters, &last_counters, &c);
            last_counters = c;
            publish_cpu(&mut state.counters);
            metrics.publish(&state.counters);
        }
        if state.events_emitted {
            state.events_emitted = false;
            mailbox.notify_events();
        }
        if state.shutdown {
            break;
        }
    }
    // Final stats of every leg still here, then one last publish.
    let ids: Vec<LegId> = state.by_id.keys().copied().collect();
    let now = Instant::now();
    for id in ids {
        state.remove_leg(now, id);
    }
    let c = backend.counters();
    fold_io_counters(&mut state.counters, &last_counters, &c);
    publish_cpu(&mut state.counters);
    metrics.publish(&state.counters);
    mailbox.notify_events();
    tracing::debug!(%core, "media core stopped");
}

fn publish_cpu(c: &mut Counters) {
    c.set(Metric::CpuNs, sys::thread_cpu_ns());
    let (user, system) = sys::thread_cpu_split_ns();
    c.set(Metric::CpuUserNs, user);
    c.set(Metric::CpuSysNs, system);
}

fn fold_io_counters(c: &mut Counters, last: &io::IoCounters, now: &io::IoCounters) {
    c.add(Metric::RxPackets, now.rx_packets - last.rx_packets);
    c.add(Metric::TxPackets, now.tx_packets - last.tx_packets);
    c.add(Metric::TxErrors, now.tx_errors - last.tx_errors);
    c.add(Metric::RxTruncated, now.rx_truncated - last.rx_truncated);
    c.add(Metric::RxNoBuffers, now.rx_no_buffers - last.rx_no_buffers);
    c.add(Metric::IoSyscalls, now.syscalls - last.syscalls);
    c.add(Metric::GsoSends, now.gso_sends - last.gso_sends);
    c.add(Metric::GsoSegments, now.gso_segments - last.gso_segments);
    c.add(Metric::GsoFallbacks, now.gso_fallbacks - last.gso_fallbacks);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::command::{LegStats, SrtpKey};
    use crate::runtime::io::sys::EventFd;
    use crate::srtp::{SrtpContext, SrtpSuite};

    const SUITE: SrtpSuite = SrtpSuite::AeadAes128Gcm;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn key(seed: u32) -> SrtpKey {
        let b = seed.to_be_bytes();
        SrtpKey {
            suite: SUITE,
            key: (0..16).map(|i| b[i % 4] ^ i as u8).collect(),
            salt: (0..12).map(|i| b[i % 4].wrapping_add(i as u8)).collect(),
        }
    }

    fn ctx(k: &SrtpKey) -> SrtpContext {
        SrtpContext::new(k.suite, &k.key, &k.salt).unwrap()
    }

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn srtp(c: &mut SrtpContext, ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = rtp(ssrc, seq);
        let n = p.len();
        p.resize(n + 16, 0);
        let len = c.protect_rtp(&mut p, n).unwrap();
        p.truncate(len);
        p
    }

    struct Rig {
        state: CoreState,
        tx: TxQueue,
        now: Instant,
        mailbox: Arc<Mailbox>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig::core(0)
        }

        /// Core `n`, whose one socket pair is at ports 20000 + 2n and 20001 + 2n.
        fn core(n: u16) -> Rig {
            let mailbox = Arc::new(
                Mailbox::new(CoreId(n), 4096, Arc::new(EventFd::new(true).unwrap())).unwrap(),
            );
            let pair = SocketPair {
                rtp: SockId(0),
                rtcp: SockId(1),
                rtp_addr: addr(20_000 + 2 * n),
                rtcp_addr: addr(20_001 + 2 * n),
            };
            Rig {
                state: CoreState::new(CoreId(n), mailbox.clone(), vec![pair], 2),
                tx: TxQueue::new(64),
                now: Instant::now(),
                mailbox,
            }
        }

        fn create(&mut self, cfg: LegConfig) {
            self.state
                .on_command(self.now, Command::CreateLeg(Box::new(cfg)));
        }

        fn packet(&mut self, from: SocketAddr, mut pkt: Vec<u8>) {
            let meta = RxMeta {
                sock: SockId(0),
                src: from,
            };
            self.state.on_packet(self.now, meta, &mut pkt, &mut self.tx);
        }

        fn stats(&mut self, id: u32) -> LegStats {
            let slot = self.state.by_id[&LegId(id)];
            self.state.legs[slot as usize].as_ref().unwrap().stats()
        }

        fn events(&self) -> Vec<Event> {
            std::iter::from_fn(|| self.mailbox.next_event()).collect()
        }

        /// Runs tick `index` of 20 ms at `now`, then moves `now` on by 20 ms; returns what
        /// the tick sent: (destination, packet as on the wire).
        fn tick(&mut self, index: u64) -> Vec<(SocketAddr, Vec<u8>)> {
            let t = Tick {
                index,
                at: self.now,
                late: Duration::ZERO,
                skipped: 0,
            };
            self.state
                .on_tick(self.now, t, Duration::from_millis(20), &mut self.tx);
            let mut queued = Vec::new();
            self.tx.take_queued(&mut queued);
            let sent = (queued.iter())
                .map(|e| (e.dst, self.tx.slot(e.slot)[..usize::from(e.len)].to_vec()))
                .collect();
            for e in queued {
                self.tx.release(e.slot);
            }
            self.now += Duration::from_millis(20);
            sent
        }
    }

    #[test]
    fn one_address_many_legs_split_by_ssrc() {
        let mut r = Rig::new();
        let gateway = addr(5004);
        for id in 1..=3u32 {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(gateway);
            c.remote_ssrc = Some(0x1000 + id);
            c.latch = false;
            r.create(c);
        }
        r.packet(gateway, rtp(0x1002, 1));
        r.packet(gateway, rtp(0x1002, 2));
        r.packet(gateway, rtp(0x1003, 1));
        r.packet(gateway, rtp(0x9999, 1));
        assert_eq!(r.stats(1).rtp_in, 0);
        assert_eq!(r.stats(2).rtp_in, 2);
        assert_eq!(r.stats(3).rtp_in, 1);
        assert_eq!(r.state.counters.get(Metric::DropUnknownFlow), 1);
    }

    #[test]
    fn srtp_leg_among_many_waiting_latches_by_its_key() {
        let mut r = Rig::new();
        // 200 callers behind NAT, none with a usable SDP address.
        for id in 1..=200u32 {
            let mut c = LegConfig::new(LegId(id));
            c.srtp_in = Some(key(id));
            r.create(c);
        }
        let nat = addr(61_000);
        let mut caller = ctx(&key(177));
        // Its stream is tried against a rotating window of 32 waiting legs per packet; it
        // latches within 200 / 32 packets.
        let mut latched_after = None;
        for seq in 1..=10u16 {
            r.packet(nat, srtp(&mut caller, 0xabc, seq));
            if r.stats(177).rtp_in > 0 {
                latched_after = Some(seq);
                break;
            }
        }
        let n = latched_after.expect("leg 177 latched");
        assert!(n <= 7, "latched after {n} packets");
        assert!(
            r.events()
                .iter()
                .any(|e| matches!(e, Event::Latched { id: LegId(177), remote } if *remote == nat))
        );
        // From now on the flow is direct: the next packet needs no trial.
        r.packet(nat, srtp(&mut caller, 0xabc, 100));
        assert_eq!(r.stats(177).rtp_in, 2);
        for id in (1..=200u32).filter(|&i| i != 177) {
            assert_eq!(r.stats(id).rtp_in + r.stats(id).auth_failed, 0, "leg {id}");
        }
    }

    #[test]
    fn garbage_flood_is_bounded_by_the_latch_budget() {
        let mut r = Rig::new();
        for id in 1..=64u32 {
            let mut c = LegConfig::new(LegId(id));
            c.srtp_in = Some(key(id));
            r.create(c);
        }
        let attacker = addr(6666);
        let mut forged = ctx(&key(9999));
        for seq in 0..1000u16 {
            r.packet(attacker, srtp(&mut forged, 1, seq));
        }
        assert_eq!(r.state.counters.get(Metric::DropUnknownFlow), 1000);
        assert_eq!(
            r.state.latch_budget, 0,
            "the flood used up this tick's trials"
        );
        // A real caller arriving during the flood waits for the next tick's budget.
        let mut real = ctx(&key(5));
        r.packet(addr(7000), srtp(&mut real, 2, 1));
        assert_eq!(r.stats(5).rtp_in, 0);
        let t = Tick {
            index: 1,
            at: r.now,
            late: Duration::ZERO,
            skipped: 0,
        };
        r.state
            .on_tick(r.now, t, Duration::from_millis(20), &mut r.tx);
        for seq in 2..=3 {
            r.packet(addr(7000), srtp(&mut real, 2, seq));
        }
        assert!(r.stats(5).rtp_in >= 1);
    }

    #[test]
    fn plain_rtp_latch_rules() {
        let mut r = Rig::new();
        let mut c = LegConfig::new(LegId(1));
        c.remote_rtp = Some(SocketAddr::from(([10, 0, 0, 7], 4000)));
        r.create(c);
        // The only plain leg waiting: a packet from elsewhere (NAT) is its.
        r.packet(addr(30_000), rtp(7, 1));
        assert_eq!(r.stats(1).rtp_in, 1);
        assert_eq!(r.stats(1).latched, 1);

        // Two plain legs waiting: an unknown source can't be attributed unless its IP
        // matches one leg's SDP.
        r.create(LegConfig::new(LegId(2)));
        let mut c = LegConfig::new(LegId(3));
        c.remote_rtp = Some(SocketAddr::from(([127, 0, 0, 9], 4000)));
        r.create(c);
        r.packet(addr(30_002), rtp(8, 1));
        assert_eq!(r.stats(2).rtp_in + r.stats(3).rtp_in, 0);
        r.packet(SocketAddr::from(([127, 0, 0, 9], 4444)), rtp(9, 1));
        assert_eq!(
            r.stats(3).rtp_in,
            1,
            "SDP IP matches, port rewritten by NAT"
        );
    }

    #[test]
    fn a_plain_leg_does_not_latch_onto_another_calls_video() {
        // Video of another call arriving on this socket before its flow exists (its
        // SetVideo follows the ACK, say) has a payload type the waiting leg's audio does not
        // take: it is not the leg's stream, however lone the leg.
        let mut r = Rig::new();
        let mut c = LegConfig::new(LegId(1));
        c.remote_rtp = Some(SocketAddr::from(([127, 0, 0, 7], 4000)));
        c.audio = Some(crate::mixer::AudioFormat {
            codec: crate::codecs::AudioCodec::Pcmu,
            pt: crate::rtp::Pt(0),
            cn_pt: Some(crate::rtp::Pt(13)),
            audio_level_ext_id: None,
        });
        r.create(c);
        let mut video = rtp(7, 1);
        video[1] = 96;
        r.packet(SocketAddr::from(([127, 0, 0, 7], 5000)), video);
        assert_eq!((r.stats(1).rtp_in, r.stats(1).latched), (0, 0));
        r.packet(SocketAddr::from(([127, 0, 0, 7], 4002)), rtp(8, 1));
        assert_eq!((r.stats(1).rtp_in, r.stats(1).latched), (1, 1));
    }

    #[test]
    fn calls_sharing_one_address_without_announced_ssrcs_each_get_their_stream() {
        // A gateway (or sipp) sending every call from one address and port, no a=ssrc.
        let mut r = Rig::new();
        let gateway = SocketAddr::from(([127, 0, 0, 9], 6000));
        for id in [1, 2] {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(gateway);
            r.create(c);
            r.packet(gateway, rtp(100 + id, 1));
        }
        r.packet(gateway, rtp(101, 2));
        r.packet(gateway, rtp(102, 2));
        assert_eq!((r.stats(1).rtp_in, r.stats(2).rtp_in), (2, 2));
        // With nobody waiting there, a new SSRC is the owner's new stream.
        r.state.on_command(r.now, Command::RemoveLeg(LegId(2)));
        r.packet(gateway, rtp(555, 1));
        assert_eq!(r.stats(1).rtp_in, 3);
        // A call from another port of the same gateway does not take a stranger's stream.
        let mut c = LegConfig::new(LegId(3));
        c.remote_rtp = Some(SocketAddr::from(([127, 0, 0, 9], 6002)));
        r.create(c);
        r.packet(gateway, rtp(777, 1));
        assert_eq!((r.stats(1).rtp_in, r.stats(3).rtp_in), (4, 0));
    }

    #[test]
    fn bad_packets_are_counted_and_never_forwarded() {
        let mut r = Rig::new();
        let (pa, pb) = (addr(9000), addr(9002));
        for (id, remote) in [(1, pa), (2, pb)] {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(remote);
            c.latch = false;
            r.create(c);
        }
        r.state.on_command(
            r.now,
            Command::Connect {
                from: LegId(1),
                to: LegId(2),
            },
        );
        r.packet(pa, vec![0x00, 0x01]); // not RTP
        r.packet(pa, vec![0x80, 0x00, 0x00]); // truncated RTP
        let mut padded = rtp(1, 1);
        padded[0] |= 0x20; // padding bit with a bogus count
        *padded.last_mut().unwrap() = 200;
        r.packet(pa, padded);
        r.packet(pa, vec![0x80, 200, 0, 1]); // RTCP SR with a bad length
        assert_eq!(r.state.counters.get(Metric::DropNotRtp), 1);
        assert_eq!(r.state.counters.get(Metric::DropMalformed), 3);
        assert_eq!(r.tx.queued_len(), 0);
        r.packet(pa, rtp(1, 2));
        assert_eq!(r.tx.queued_len(), 1, "a good packet still goes through");
        assert_eq!(r.stats(2).rtp_out, 1);
    }

    #[test]
    fn removing_a_leg_unlinks_it() {
        let mut r = Rig::new();
        for id in 1..=2 {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(addr(9000 + id as u16 * 2));
            c.latch = false;
            r.create(c);
        }
        r.state.on_command(
            r.now,
            Command::Connect {
                from: LegId(1),
                to: LegId(2),
            },
        );
        r.state.on_command(r.now, Command::RemoveLeg(LegId(2)));
        r.packet(addr(9002), rtp(1, 1));
        assert_eq!(r.tx.queued_len(), 0);
        assert_eq!(r.state.counters.get(Metric::Legs), 1);
        // The slot is reused by the next leg, which starts clean.
        let mut c = LegConfig::new(LegId(3));
        c.remote_rtp = Some(addr(9100));
        c.latch = false;
        r.create(c);
        assert_eq!(r.stats(3), LegStats::default());
        assert!(
            r.events()
                .iter()
                .any(|e| matches!(e, Event::LegRemoved { id: LegId(2), .. }))
        );
    }

    #[test]
    fn periodic_receiver_report_describes_the_remote_stream() {
        let mut r = Rig::new();
        let peer = addr(9000);
        let (k_in, k_out) = (key(1), key(2));
        let mut c = LegConfig::new(LegId(1));
        c.remote_rtp = Some(peer);
        c.srtp_in = Some(k_in.clone());
        c.srtp_out = Some(k_out.clone());
        c.latch = false;
        r.create(c);
        let mut caller = ctx(&k_in);
        // Packets 1..=101 with every 20th missing: 5 lost.
        for seq in (1..=100u16).filter(|s| s % 20 != 0) {
            r.packet(peer, srtp(&mut caller, 0x5151, seq));
        }
        r.packet(peer, srtp(&mut caller, 0x5151, 100 + 1));
        let stats = r.stats(1);
        assert_eq!(stats.lost, 5);
        // Nothing due yet; 6 s later the report goes out.
        let tick = |index, at| Tick {
            index,
            at,
            late: Duration::ZERO,
            skipped: 0,
        };
        r.state
            .on_tick(r.now, tick(0, r.now), Duration::from_millis(20), &mut r.tx);
        assert_eq!(r.tx.queued_len(), 0);
        r.now += Duration::from_secs(6);
        let t = tick(300, r.now);
        r.state
            .on_tick(r.now, t, Duration::from_millis(20), &mut r.tx);
        assert_eq!(r.tx.queued_len(), 1);
        let mut sent = Vec::new();
        r.tx.take_queued(&mut sent);
        let e = sent[0];
        assert_eq!(
            (e.sock, e.dst),
            (SockId(0), peer),
            "rtcp-mux: to the RTP address"
        );
        let mut pkt = r.tx.slot(e.slot)[..usize::from(e.len)].to_vec();
        let n = ctx(&k_out).unprotect_rtcp(&mut pkt).expect("valid SRTCP");
        let mut blocks = Vec::new();
        let mut cname = None;
        for p in crate::rtcp::parse_rtcp_compound(&pkt[..n]) {
            match p.unwrap() {
                RtcpPacket::ReceiverReport(rr) => blocks.extend(rr.report_blocks()),
                RtcpPacket::SourceDescription(sd) => {
                    cname = sd
                        .chunks()
                        .next()
                        .and_then(|c| c.item(crate::rtcp::SdesType::Cname).map(<[u8]>::to_vec))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(cname.as_deref(), Some(&b"leg1@chorus"[..]));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].ssrc, Ssrc(0x5151));
        assert_eq!(blocks[0].highest_seq, 101);
        assert_eq!(blocks[0].cumulative_lost, 5);
        assert!(blocks[0].fraction_lost > 0);
        assert_eq!(r.stats(1).rtcp_out, 1);
    }

    #[test]
    fn forwarded_media_carries_the_receiving_legs_own_numbering() {
        let mut r = Rig::new();
        let (pa, pb) = (addr(9000), addr(9002));
        for (id, remote) in [(1, pa), (2, pb)] {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(remote);
            c.latch = false;
            r.create(c);
        }
        // Echo: leg 1 hears itself; then leg 2 is also forwarded to leg 1.
        for from in [1, 2] {
            r.state.on_command(
                r.now,
                Command::Connect {
                    from: LegId(from),
                    to: LegId(1),
                },
            );
        }
        r.packet(pa, rtp(0xaaaa, 500));
        r.packet(pa, rtp(0xaaaa, 501));
        r.packet(pb, rtp(0xbbbb, 9));
        let mut sent = Vec::new();
        r.tx.take_queued(&mut sent);
        let leg1_ssrc = LegConfig::new(LegId(1)).local_ssrc;
        let got: Vec<(u16, u32)> = sent
            .iter()
            .map(|e| {
                let p =
                    crate::rtp::RtpPacket::parse(&r.tx.slot(e.slot)[..usize::from(e.len)]).unwrap();
                assert_eq!(e.dst, pa);
                (p.seq(), p.ssrc().0)
            })
            .collect();
        // The caller never sees its own SSRC come back, and the switch to leg 2's stream
        // continues the numbering instead of jumping.
        assert_eq!(
            got,
            vec![(500, leg1_ssrc), (501, leg1_ssrc), (502, leg1_ssrc)]
        );
        for e in sent {
            r.tx.release(e.slot);
        }

        // Its next report is an SR (it was sent RTP), leg 2's an RR; after a quiet interval
        // leg 1's is an RR again.
        let reports = |r: &mut Rig, index: u64| {
            r.now += Duration::from_secs(6);
            let mut out = Vec::new();
            for (dst, pkt) in r.tick(index) {
                let first = crate::rtcp::parse_rtcp_compound(&pkt)
                    .next()
                    .unwrap()
                    .unwrap();
                let sr = match first {
                    RtcpPacket::SenderReport(sr) => {
                        let info = sr.info();
                        assert_eq!((info.packet_count, info.octet_count), (3, 3 * 160));
                        assert_eq!(info.ssrc, Ssrc(leg1_ssrc));
                        true
                    }
                    _ => false,
                };
                out.push((dst, sr));
            }
            out.sort_by_key(|(dst, _)| dst.port());
            out
        };
        assert_eq!(reports(&mut r, 300), [(pa, true), (pb, false)]);
        assert_eq!(reports(&mut r, 600), [(pa, false), (pb, false)]);
    }

    #[test]
    fn a_leg_moves_between_cores_with_its_media_state() {
        let (mut a, mut b) = (Rig::core(0), Rig::core(1));
        let caller = addr(9200);
        let mut c = LegConfig::new(LegId(1));
        c.remote_rtp = Some(caller);
        c.srtp_in = Some(key(1));
        c.srtp_out = Some(key(3));
        c.latch = false;
        a.create(c);
        let echo = || Command::Connect {
            from: LegId(1),
            to: LegId(1),
        };
        a.state.on_command(a.now, echo());
        let mut up = ctx(&key(1));
        let mut down = ctx(&key(3));
        let third = srtp(&mut up, 7, 3);
        for p in [srtp(&mut up, 7, 1), srtp(&mut up, 7, 2), third.clone()] {
            a.packet(caller, p);
        }
        a.events();

        a.state.on_command(a.now, Command::DetachLeg(LegId(1)));
        let Some(Event::LegDetached { leg }) = a.events().pop() else {
            panic!("no LegDetached");
        };
        assert_eq!(leg.id(), LegId(1));
        assert!(a.state.by_id.is_empty() && a.state.flows.is_empty());
        // The old core no longer knows the caller.
        a.packet(caller, srtp(&mut up, 7, 4));
        assert_eq!(a.state.counters.get(Metric::DropUnknownFlow), 1);

        b.state
            .on_command(b.now, Command::AttachLeg { leg, pair: None });
        let events = b.events();
        assert!(matches!(
            events.as_slice(),
            [Event::LegMoved { id: LegId(1), core: CoreId(1), rtp, .. }] if *rtp == addr(20_002)
        ));
        b.state.on_command(b.now, echo());
        // The replay window came along: an old packet is refused, a new one taken.
        b.packet(caller, third);
        b.packet(caller, srtp(&mut up, 7, 5));
        let stats = b.stats(1);
        assert_eq!((stats.rtp_in, stats.replayed), (4, 1));
        // The outbound stream continues: same SSRC, same key, and the numbering of the echoed
        // stream (packet 4, sent to the old core after the move, shows as one lost packet).
        let mut sent = Vec::new();
        a.tx.take_queued(&mut sent);
        let last = sent
            .pop()
            .map(|e| a.tx.slot(e.slot)[..usize::from(e.len)].to_vec());
        b.tx.take_queued(&mut sent);
        let moved = b.tx.slot(sent[0].slot)[..usize::from(sent[0].len)].to_vec();
        let ids = |mut p: Vec<u8>, down: &mut SrtpContext| {
            let n = down.unprotect_rtp(&mut p).unwrap();
            let p = crate::rtp::RtpPacket::parse(&p[..n]).unwrap();
            (p.ssrc().0, p.seq())
        };
        let (ssrc_a, seq_a) = ids(last.unwrap(), &mut down);
        assert_eq!(ids(moved, &mut down), (ssrc_a, seq_a.wrapping_add(2)));
    }

    mod conference {
        use super::*;
        use crate::mixer::AudioFormat;
        use crate::rtp::Pt;
        use chorus_codecs::{AudioCodec, g711};

        /// A leg at `remote` (not latching) whose audio is `codec` at payload type `pt`.
        fn audio_leg(id: u32, remote: SocketAddr, codec: AudioCodec, pt: u8) -> LegConfig {
            let mut c = LegConfig::new(LegId(id));
            c.remote_rtp = Some(remote);
            c.latch = false;
            c.audio = Some(AudioFormat {
                codec,
                pt: Pt(pt),
                cn_pt: None,
                audio_level_ext_id: None,
            });
            c
        }

        /// Energy of `freq` in `pcm` (8 kHz) relative to the signal's, by Goertzel.
        fn tone_share(pcm: &[i16], freq: f64) -> f64 {
            let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in pcm {
                let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
            let energy: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            // A pure tone of energy E gives power N*E/2.
            2.0 * power / (pcm.len() as f64 * energy.max(1.0))
        }

        struct Caller {
            id: u32,
            addr: SocketAddr,
            freq: f64,
            seq: u16,
            phase: usize,
            heard: Vec<i16>,
            srtp_up: SrtpContext,
            srtp_down: SrtpContext,
        }

        /// Three callers (PCMU, SRTP), each sending its own tone, in one conference for
        /// 150 ticks; `at_75` is given to the core at the middle.
        fn run(at_75: Option<Command>) -> (Vec<Caller>, Rig) {
            run_at(at_75, crate::mixer::MIX_RATE)
        }

        /// The same with the engine mixing at `mix_rate`.
        fn run_at(mut at_75: Option<Command>, mix_rate: u32) -> (Vec<Caller>, Rig) {
            let mut r = Rig::new();
            r.state.mix_rate = mix_rate;
            let mut callers = Vec::new();
            for (i, freq) in [(1u32, 440.0), (2, 770.0), (3, 1_320.0)] {
                let addr = addr(9400 + i as u16 * 2);
                let mut c = audio_leg(i, addr, AudioCodec::Pcmu, 0);
                c.srtp_in = Some(key(i));
                c.srtp_out = Some(key(100 + i));
                r.create(c);
                let join = Command::JoinConference {
                    leg: LegId(i),
                    conference: ConferenceId(7),
                };
                r.state.on_command(r.now, join);
                callers.push(Caller {
                    id: i,
                    addr,
                    freq,
                    seq: 1,
                    phase: 0,
                    heard: Vec::new(),
                    srtp_up: ctx(&key(i)),
                    srtp_down: ctx(&key(100 + i)),
                });
            }
            for index in 0..150u64 {
                if index == 75
                    && let Some(command) = at_75.take()
                {
                    r.state.on_command(r.now, command);
                }
                for c in &mut callers {
                    let pcm: Vec<i16> = (0..160)
                        .map(|n| {
                            let t = (c.phase + n) as f64 / 8000.0;
                            (8_000.0 * (2.0 * std::f64::consts::PI * c.freq * t).sin()) as i16
                        })
                        .collect();
                    c.phase += 160;
                    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    p[2..4].copy_from_slice(&c.seq.to_be_bytes());
                    p[4..8].copy_from_slice(&(u32::from(c.seq) * 160).to_be_bytes());
                    p.extend_from_slice(&(0x1000 + c.id).to_be_bytes());
                    g711::encode_into(g711::Law::Mu, &pcm, &mut p);
                    let n = p.len();
                    p.resize(n + 16, 0);
                    let n = c.srtp_up.protect_rtp(&mut p, n).unwrap();
                    p.truncate(n);
                    c.seq += 1;
                    r.packet(c.addr, p);
                }
                for (dst, mut pkt) in r.tick(index) {
                    let c = callers.iter_mut().find(|c| c.addr == dst).unwrap();
                    let n = c.srtp_down.unprotect_rtp(&mut pkt).unwrap();
                    let p = crate::rtp::RtpPacket::parse(&pkt[..n]).unwrap();
                    assert_eq!(p.pt(), Pt(0));
                    g711::decode_into(g711::Law::Mu, p.payload(), &mut c.heard);
                }
            }
            (callers, r)
        }

        #[test]
        fn each_caller_hears_the_others_and_not_itself() {
            for rate in [16_000, 8_000] {
                hears_the_others_and_not_itself(rate);
            }
        }

        fn hears_the_others_and_not_itself(mix_rate: u32) {
            let (callers, r) = run_at(None, mix_rate);
            for c in &callers {
                // 150 ticks, one packet each; the first ones may be silence (jitter buffer).
                assert_eq!(c.heard.len(), 150 * 160, "caller {}", c.id);
                let tail = &c.heard[c.heard.len() - 8000..];
                for other in &callers {
                    let share = tone_share(tail, other.freq);
                    if other.id == c.id {
                        assert!(share < 0.01, "caller {} hears itself: {share:.3}", c.id);
                    } else {
                        assert!(
                            share > 0.2,
                            "caller {} hears {}: {share:.3}",
                            c.id,
                            other.id
                        );
                    }
                }
            }
            // Three talkers: at most four distinct mixes per tick, one codec.
            let conf = &r.state.conferences[&ConferenceId(7)];
            assert!(conf.encodes() <= 150 * 4, "{} encodes", conf.encodes());
            assert_eq!(r.state.counters.get(Metric::MixedOut), 450);
        }

        #[test]
        fn prompts_play_to_one_leg_and_tones_to_the_conference() {
            for rate in [16_000, 8_000] {
                prompts_and_tones(rate);
            }
        }

        /// Clips are 16 kHz whatever the mix rate; recordings are at the mix rate.
        fn prompts_and_tones(mix_rate: u32) {
            let mut r = Rig::new();
            r.state.mix_rate = mix_rate;
            let clip: std::sync::Arc<[i16]> = (0..16_000)
                .map(|n| {
                    (6_000.0 * (2.0 * std::f64::consts::PI * 600.0 * n as f64 / 16_000.0).sin())
                        as i16
                })
                .collect();
            for i in 1..=2u32 {
                let c = audio_leg(i, addr(9500 + i as u16 * 2), AudioCodec::Pcma, 8);
                r.create(c);
            }
            // Leg 1 is in the IVR (no conference): it hears the prompt and nothing else.
            r.state.on_command(
                r.now,
                Command::Play {
                    leg: LegId(1),
                    clip: clip.clone(),
                    id: 9,
                },
            );
            // Leg 2 is alone in a conference: it hears the join tone.
            let join = Command::JoinConference {
                leg: LegId(2),
                conference: ConferenceId(1),
            };
            r.state.on_command(r.now, join);
            let tone = Command::PlayConference {
                conference: ConferenceId(1),
                clip: clip.clone(),
            };
            r.state.on_command(r.now, tone);
            let sink = std::sync::Arc::new(crate::mixer::RecordingSink::new(mix_rate, 100));
            let record = Command::Record {
                conference: ConferenceId(1),
                sink: Some(sink.clone()),
            };
            r.state.on_command(r.now, record);
            let mut heard: [Vec<i16>; 2] = [Vec::new(), Vec::new()];
            for p in sent_over(&mut r, 60) {
                assert_eq!(p.pt, 8);
                let who = usize::from(p.dst.port() != 9502);
                g711::decode_into(g711::Law::A, &p.payload, &mut heard[who]);
            }
            let done: Vec<_> = r
                .events()
                .into_iter()
                .filter(|e| matches!(e, Event::PlayDone { .. }))
                .collect();
            assert!(
                matches!(
                    done.as_slice(),
                    [Event::PlayDone {
                        leg: LegId(1),
                        id: 9,
                        completed: true
                    }]
                ),
                "{done:?}"
            );
            // One second of prompt, then silence (nothing is sent once it is over).
            assert_eq!(heard[0].len(), 50 * 160);
            assert!(tone_share(&heard[0][800..7_200], 600.0) > 0.8);
            // The conference member hears the tone for a second, then the (silent) mix.
            assert_eq!(heard[1].len(), 60 * 160);
            assert!(tone_share(&heard[1][800..7_200], 600.0) > 0.8);
            assert!(heard[1][8_400..].iter().all(|&s| s.abs() < 16));
            // The recording got the conference's full mix, a frame per tick: the tone.
            let recorded: Vec<i16> = std::iter::from_fn(|| sink.pop())
                .flat_map(|f| f.to_vec())
                .collect();
            let step = (mix_rate / 8_000) as usize;
            assert_eq!(recorded.len(), 60 * 160 * step);
            let at8k: Vec<i16> = recorded.iter().step_by(step).copied().collect();
            assert!(tone_share(&at8k[800..7_200], 600.0) > 0.8);
            assert_eq!(sink.dropped(), 0);
            // The last member leaving ends the conference and its recording.
            r.state
                .on_command(r.now, Command::LeaveConference(LegId(2)));
            assert!(sink.is_closed());
        }

        #[test]
        fn a_codec_change_carries_in_band_key_detection_to_the_new_codec() {
            let mut r = Rig::new();
            let caller = addr(9580);
            r.create(audio_leg(1, caller, AudioCodec::Pcmu, 0));
            // The trunk re-offers: PCMA at 8 from now on.
            r.state.on_command(
                r.now,
                Command::UpdateLeg(Box::new(LegUpdate {
                    id: LegId(1),
                    remote_rtp: caller,
                    remote_rtcp: None,
                    srtp: None,
                    send: true,
                    audio: audio_leg(1, caller, AudioCodec::Pcma, 8).audio,
                })),
            );
            // Key 1 as tones (697 + 1209 Hz) for 100 ms, then silence, in PCMA.
            for seq in 0..15u16 {
                let pcm: Vec<i16> = (0..160)
                    .map(|n| {
                        let t = f64::from(u32::from(seq) * 160 + n) / 8000.0;
                        let tone = |f: f64| (std::f64::consts::TAU * f * t).sin();
                        if seq < 5 {
                            (6_000.0 * (tone(697.0) + tone(1_209.0))) as i16
                        } else {
                            0
                        }
                    })
                    .collect();
                let mut p = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x33, 0x44];
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                g711::encode_into(g711::Law::A, &pcm, &mut p);
                r.packet(caller, p);
            }
            let keys: Vec<_> = (r.events().into_iter())
                .filter_map(|e| match e {
                    Event::Dtmf {
                        digit,
                        inband: true,
                        ..
                    } => Some(digit),
                    _ => None,
                })
                .collect();
            assert_eq!(keys, ['1']);
        }

        #[test]
        fn an_idle_leg_that_wants_silence_gets_a_frame_every_tick_outside_its_conference() {
            let mut r = Rig::new();
            let clip: std::sync::Arc<[i16]> = vec![4_000i16; 3_200].into();
            let mut c = audio_leg(1, addr(9560), AudioCodec::Pcmu, 0);
            c.idle_silence = true;
            r.create(c);
            // Per phase: (packets sent, loud ones).
            let run = |r: &mut Rig, ticks: u64| {
                let sent = sent_over(r, ticks);
                let loud = (sent.iter())
                    .filter(|p| {
                        let mut pcm = Vec::new();
                        g711::decode_into(g711::Law::Mu, &p.payload, &mut pcm);
                        pcm.iter().any(|s| s.abs() > 1_000)
                    })
                    .count();
                (sent.len(), loud)
            };
            // Waiting in the IVR: silence, a frame per tick.
            assert_eq!(run(&mut r, 10), (10, 0));
            // A 200 ms prompt, then silence again: still one frame per tick.
            let play = Command::Play {
                leg: LegId(1),
                clip,
                id: 1,
            };
            r.state.on_command(r.now, play);
            let first_tick = r.now;
            // (The resampler's delay carries the prompt's end into an eleventh frame.)
            let (n, loud) = run(&mut r, 20);
            // The first frame's tick is reported, for the load generator's delay figures.
            let started: Vec<_> = (r.events().into_iter())
                .filter_map(|e| match e {
                    Event::PlayStarted { leg, id, at } => Some((leg, id, at)),
                    _ => None,
                })
                .collect();
            assert_eq!(started, vec![(LegId(1), 1, first_tick)]);
            assert!(
                n == 20 && (10..=11).contains(&loud),
                "{n} sent, {loud} loud"
            );
            // In a conference the mix is all it gets (one frame per tick, not two).
            let join = Command::JoinConference {
                leg: LegId(1),
                conference: ConferenceId(3),
            };
            r.state.on_command(r.now, join);
            assert_eq!(run(&mut r, 10), (10, 0));
            // Out of it again, silence resumes; forwarding media to it stops the silence.
            r.state
                .on_command(r.now, Command::LeaveConference(LegId(1)));
            assert_eq!(run(&mut r, 5), (5, 0));
            let forward = Command::Connect {
                from: LegId(1),
                to: LegId(1),
            };
            r.state.on_command(r.now, forward);
            assert_eq!(run(&mut r, 5), (0, 0));
        }

        /// One RTP packet the engine sent.
        #[derive(Debug)]
        struct Sent {
            dst: SocketAddr,
            pt: u8,
            marker: bool,
            seq: u16,
            ts: u32,
            payload: Vec<u8>,
        }

        /// The packets the engine sends over `ticks` ticks of 20 ms.
        fn sent_over(r: &mut Rig, ticks: u64) -> Vec<Sent> {
            let mut out = Vec::new();
            for index in 0..ticks {
                for (dst, pkt) in r.tick(index) {
                    let p = crate::rtp::RtpPacket::parse(&pkt).unwrap();
                    out.push(Sent {
                        dst,
                        pt: p.pt().0,
                        marker: p.marker(),
                        seq: p.seq(),
                        ts: p.timestamp(),
                        payload: p.payload().to_vec(),
                    });
                }
            }
            out
        }

        #[test]
        fn silence_goes_out_as_comfort_noise_or_dtx_when_the_leg_asks() {
            let loud: std::sync::Arc<[i16]> = vec![6_000i16; 1_600].into();
            // CN: a packet when silence starts and every 200 ms; the timestamp runs on.
            let mut r = Rig::new();
            let mut c = audio_leg(1, addr(9570), AudioCodec::Pcmu, 0);
            c.idle_silence = true;
            c.silence = SilenceSend::ComfortNoise;
            if let Some(f) = c.audio.as_mut() {
                f.cn_pt = Some(Pt(13));
            }
            r.create(c);
            let idle = sent_over(&mut r, 25);
            assert_eq!(idle.len(), 3, "{idle:?}");
            assert!(idle.iter().all(|p| p.pt == 13 && p.payload.len() == 1));
            let (s0, t0) = (idle[0].seq, idle[0].ts);
            assert_eq!(idle[1].seq, s0.wrapping_add(1));
            assert_eq!(idle[1].ts, t0.wrapping_add(1_600));
            // Speech after it: every tick, the first with the marker bit, the clock unbroken.
            let play = Command::Play {
                leg: LegId(1),
                clip: loud.clone(),
                id: 1,
            };
            r.state.on_command(r.now, play);
            let talk = sent_over(&mut r, 5);
            assert_eq!(talk.len(), 5);
            assert_eq!((talk[0].pt, talk[0].marker), (0, true));
            assert!(talk[1..].iter().all(|p| p.pt == 0 && !p.marker));
            assert_eq!(talk[0].seq, s0.wrapping_add(3));
            assert_eq!(talk[0].ts, t0.wrapping_add(25 * 160));

            // Opus DTX: an idle leg sends a frame every 400 ms (no marker: no talkspurt), a
            // talker's DTX frames stay home.
            let mut r = Rig::new();
            let mut c = audio_leg(2, addr(9574), AudioCodec::Opus, 111);
            c.idle_silence = true;
            c.silence = SilenceSend::Dtx;
            r.create(c);
            let idle = sent_over(&mut r, 100);
            assert_eq!(idle.len(), 5, "{idle:?}");
            assert!(idle[1..].iter().all(|p| !p.marker && p.ts > idle[0].ts));
            let play = Command::Play {
                leg: LegId(2),
                clip: loud,
                id: 2,
            };
            r.state.on_command(r.now, play);
            let talk = sent_over(&mut r, 5);
            assert_eq!(talk.len(), 5);
            assert!(
                talk[0].marker,
                "a talkspurt after DTX starts with the marker"
            );
            assert_eq!(talk[0].ts, idle[0].ts.wrapping_add(100 * 960));
        }

        #[test]
        fn key_tones_in_a_g711_legs_audio_are_reported() {
            let mut r = Rig::new();
            let caller = addr(9600);
            let c = audio_leg(1, caller, AudioCodec::Pcmu, 0);
            r.create(c);
            // 5 (770 + 1336 Hz) and # (941 + 1477 Hz), 100 ms each, 100 ms apart, -10 dBm0.
            let tone = |low: f64, high: f64, n: usize| -> i16 {
                let t = n as f64 / 8000.0;
                let w = std::f64::consts::TAU;
                (5_000.0 * ((w * low * t).sin() + (w * high * t).sin())) as i16
            };
            let mut seq = 1u16;
            let mut n = 0usize;
            for (low, high) in [(770.0, 1336.0), (0.0, 0.0), (941.0, 1477.0), (0.0, 0.0)] {
                for _ in 0..5 {
                    let pcm: Vec<i16> = (0..160)
                        .map(|i| if low > 0.0 { tone(low, high, n + i) } else { 0 })
                        .collect();
                    n += 160;
                    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    p.extend_from_slice(&0x77u32.to_be_bytes());
                    g711::encode_into(g711::Law::Mu, &pcm, &mut p);
                    seq += 1;
                    r.packet(caller, p);
                }
            }
            let keys: Vec<(char, bool)> = r
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Dtmf {
                        digit,
                        inband,
                        duration_ms,
                        ..
                    } => {
                        assert!((90..=110).contains(&duration_ms), "{duration_ms} ms");
                        Some((digit, inband))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(keys, [('5', true), ('#', true)]);
            assert_eq!(r.stats(1).dtmf_digits, 2);
        }

        #[test]
        fn keys_are_sent_as_rfc4733_events_a_receiver_reads_back() {
            let mut r = Rig::new();
            let phone = addr(9700);
            let mut c = audio_leg(1, phone, AudioCodec::Pcmu, 0);
            c.srtp_out = Some(key(5));
            c.telephone_events = vec![crate::runtime::TelephoneEventPt {
                pt: Pt(101),
                clock_rate: 8000,
            }];
            r.create(c);
            let send = Command::SendDtmf {
                leg: LegId(1),
                keys: "1#".into(),
            };
            r.state.on_command(r.now, send);
            let mut down = ctx(&key(5));
            let mut receiver = crate::runtime::DtmfReceiver::new();
            let (mut keys, mut seqs) = (Vec::new(), Vec::new());
            for index in 0..30u64 {
                let now = r.now;
                for (_, mut pkt) in r.tick(index) {
                    let n = down.unprotect_rtp(&mut pkt).unwrap();
                    let p = crate::rtp::RtpPacket::parse(&pkt[..n]).unwrap();
                    assert_eq!(
                        (p.pt(), p.ssrc().0),
                        (Pt(101), LegConfig::new(LegId(1)).local_ssrc)
                    );
                    seqs.push(p.seq());
                    receiver
                        .handle_packet(now, p.timestamp(), 8000, p.payload())
                        .unwrap();
                    while let Some(rep) = receiver.poll_report() {
                        keys.push((crate::rtp::dtmf_digit(rep.event), rep.duration_ms));
                    }
                }
            }
            assert_eq!(keys, [(Some('1'), 100), (Some('#'), 100)]);
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                "{seqs:?}"
            );
            assert_eq!(r.state.counters.get(Metric::DtmfEventsOut), 14);
            assert!(r.state.dtmf_sending.is_empty());
            // A leg without telephone-event cannot send keys: counted.
            let mut c = LegConfig::new(LegId(2));
            c.audio = Some(AudioFormat {
                codec: AudioCodec::Pcmu,
                pt: Pt(0),
                cn_pt: None,
                audio_level_ext_id: None,
            });
            r.create(c);
            r.state.on_command(
                r.now,
                Command::SendDtmf {
                    leg: LegId(2),
                    keys: "5".into(),
                },
            );
            assert_eq!(r.state.counters.get(Metric::DtmfNotSent), 1);
        }

        #[test]
        fn listen_volume_and_who_is_talking() {
            let quieter = Command::SetLegVolume {
                leg: LegId(1),
                listen_db: -6,
                talk_db: 0,
            };
            let (callers, r) = run(Some(quieter));
            let rms = |pcm: &[i16]| {
                (pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
            };
            let heard = &callers[0].heard;
            let (before, after) = (rms(&heard[8_000..11_200]), rms(&heard[16_000..23_000]));
            let ratio = after / before;
            assert!((0.45..0.56).contains(&ratio), "-6 dB gave {ratio:.3}");
            // The others hear as before.
            let other = &callers[1].heard;
            let ratio = rms(&other[16_000..23_000]) / rms(&other[8_000..11_200]);
            assert!((0.9..1.1).contains(&ratio), "{ratio:.3}");
            // Who is talking: one event when the three started, none while they went on.
            let talkers: Vec<Vec<LegId>> = r
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Talkers { talkers, .. } => Some(talkers),
                    _ => None,
                })
                .collect();
            assert_eq!(talkers.len(), 1, "{talkers:?}");
            let mut set = talkers[0].clone();
            set.sort();
            assert_eq!(set, [LegId(1), LegId(2), LegId(3)]);
        }

        /// One conference over two cores: caller 1 on core 0, callers 2 and 3 on core 1,
        /// plain PCMU; the cores exchange partial mixes over a `MixBus`.
        #[test]
        fn a_conference_spread_over_two_cores_is_heard_whole() {
            let mut cores = [Rig::core(0), Rig::core(1)];
            let bus = std::sync::Arc::new(crate::mixer::MixBus::new(2));
            let placement = [(1u32, 0usize, 440.0), (2, 1, 770.0), (3, 1, 1_320.0)];
            for rig in &mut cores {
                let span = Command::SpanConference {
                    conference: ConferenceId(9),
                    bus: Some(bus.clone()),
                };
                rig.state.on_command(rig.now, span);
            }
            for &(id, core, _) in &placement {
                let rig = &mut cores[core];
                let c = audio_leg(id, addr(9800 + id as u16 * 2), AudioCodec::Pcmu, 0);
                rig.create(c);
                let join = Command::JoinConference {
                    leg: LegId(id),
                    conference: ConferenceId(9),
                };
                rig.state.on_command(rig.now, join);
            }
            let mut heard: Vec<Vec<i16>> = vec![Vec::new(); 4];
            for index in 0..150u64 {
                for &(id, core, freq) in &placement {
                    let pcm: Vec<i16> = (0..160)
                        .map(|n| {
                            let t = (index as usize * 160 + n) as f64 / 8000.0;
                            (8_000.0 * (std::f64::consts::TAU * freq * t).sin()) as i16
                        })
                        .collect();
                    let seq = index as u16 + 1;
                    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    p.extend_from_slice(&(0x2000 + id).to_be_bytes());
                    g711::encode_into(g711::Law::Mu, &pcm, &mut p);
                    cores[core].packet(addr(9800 + id as u16 * 2), p);
                }
                for rig in &mut cores {
                    for (dst, pkt) in rig.tick(index) {
                        let id = usize::from((dst.port() - 9800) / 2);
                        let p = crate::rtp::RtpPacket::parse(&pkt).unwrap();
                        g711::decode_into(g711::Law::Mu, p.payload(), &mut heard[id]);
                    }
                }
            }
            for &(id, _, _) in &placement {
                let tail = &heard[id as usize][heard[id as usize].len() - 8000..];
                for &(other, _, freq) in &placement {
                    let share = tone_share(tail, freq);
                    if other == id {
                        assert!(share < 0.01, "caller {id} hears itself: {share:.3}");
                    } else {
                        assert!(share > 0.2, "caller {id} hears {other} at {share:.3}");
                    }
                }
            }
        }

        #[test]
        fn a_muted_caller_is_not_heard() {
            let (callers, _) = run(Some(Command::SetLegAudio {
                leg: LegId(3),
                mute: true,
                deaf: false,
            }));
            for c in callers.iter().filter(|c| c.id != 3) {
                let tail = &c.heard[c.heard.len() - 4000..];
                let share = tone_share(tail, 1_320.0);
                assert!(share < 0.01, "caller {} still hears 3: {share:.3}", c.id);
            }
            // Muted is not deaf: 3 still hears 1 and 2.
            let tail = &callers[2].heard[callers[2].heard.len() - 4000..];
            assert!(tone_share(tail, 440.0) > 0.2 && tone_share(tail, 770.0) > 0.2);
        }
    }

    #[test]
    fn renegotiation_holds_resumes_and_rekeys() {
        let mut r = Rig::new();
        let (pa, pb) = (addr(9100), addr(9102));
        let (ka, kb) = (key(1), key(2));
        let mut c = LegConfig::new(LegId(1));
        c.remote_rtp = Some(pa);
        c.srtp_in = Some(ka.clone());
        c.srtp_out = Some(key(3));
        c.latch = false;
        r.create(c);
        r.state.on_command(
            r.now,
            Command::Connect {
                from: LegId(1),
                to: LegId(1),
            },
        );
        let update = |send: bool, srtp: Option<(Option<SrtpKey>, Option<SrtpKey>)>| {
            Command::UpdateLeg(Box::new(LegUpdate {
                id: LegId(1),
                remote_rtp: pb,
                remote_rtcp: None,
                srtp,
                send,
                audio: None,
            }))
        };
        let mut sent = Vec::new();
        let mut a = ctx(&ka);
        // Held (the caller sent sendonly): its media is taken in but nothing goes back.
        r.state.on_command(r.now, update(false, None));
        r.packet(pb, srtp(&mut a, 7, 1));
        r.tx.take_queued(&mut sent);
        assert!(
            sent.is_empty(),
            "nothing is sent to a caller holding the call"
        );
        assert_eq!(r.stats(1).rtp_in, 1);
        // Resumed, at the new address, same keys: the stream continues.
        r.state.on_command(r.now, update(true, None));
        r.packet(pb, srtp(&mut a, 7, 2));
        r.tx.take_queued(&mut sent);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].dst, pb);
        // A re-offer with a new key from the caller and ours unchanged: the old key no
        // longer authenticates, the new one does, and our sending context goes on (a new one
        // under the same key would start its indexes over).
        let protected = |r: &Rig| {
            let slot = r.state.by_id[&LegId(1)];
            (r.state.legs[slot as usize].as_ref())
                .and_then(|l| l.srtp_out.as_ref())
                .map_or(0, |c| c.rtp_packets_protected())
        };
        let before = protected(&r);
        assert!(before >= 1);
        r.state
            .on_command(r.now, update(true, Some((Some(kb.clone()), Some(key(3))))));
        assert_eq!(protected(&r), before, "the outbound context is kept");
        r.packet(pb, srtp(&mut a, 7, 3));
        assert_eq!(r.stats(1).auth_failed, 1);
        let mut b = ctx(&kb);
        r.packet(pb, srtp(&mut b, 7, 4));
        assert_eq!(r.stats(1).rtp_in, 3);
        // An unknown leg is reported, not a panic.
        r.state.on_command(
            r.now,
            Command::UpdateLeg(Box::new(LegUpdate {
                id: LegId(99),
                remote_rtp: pb,
                remote_rtcp: None,
                srtp: None,
                send: true,
                audio: None,
            })),
        );
        assert!(
            r.events()
                .iter()
                .any(|e| matches!(e, Event::UnknownLeg { id } if *id == LegId(99)))
        );
    }

    /// RFC 4733 events on the packet path: one `Event::Dtmf` per key press, whatever the loss,
    /// duplication and reordering, on plain and SRTP legs, alongside forwarding.
    mod dtmf {
        use super::*;
        use crate::rtp::{Pt, TelephoneEvent};
        use crate::runtime::command::TelephoneEventPt;
        use crate::srtp::SrtpSuite;

        const PEER: u16 = 9000;
        const TE: Pt = Pt(101);

        /// A telephone-event packet (8 kHz units) of the peer's stream.
        fn te(seq: u16, timestamp: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
            let mut p = vec![0x80, TE.0];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&timestamp.to_be_bytes());
            p.extend_from_slice(&0x7e57_u32.to_be_bytes());
            let mut block = [0u8; 4];
            TelephoneEvent {
                event,
                end,
                volume: 10,
                duration,
            }
            .write(&mut block)
            .unwrap();
            p.extend_from_slice(&block);
            p
        }

        /// The packets of one key press: start, updates every 50 ms, the end three times.
        fn press(seq: &mut u16, timestamp: u32, event: u8, ms: u16) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            for i in 0..ms / 50 {
                out.push(te(*seq, timestamp, event, false, i * 400));
                *seq += 1;
            }
            for _ in 0..3 {
                out.push(te(*seq, timestamp, event, true, ms * 8));
                *seq += 1;
            }
            out
        }

        /// The core rig with one event-aware leg, virtual ticks and optional SRTP.
        struct DtmfRig {
            rig: Rig,
            tick: u64,
            srtp: Option<SrtpContext>,
        }

        impl DtmfRig {
            /// One leg (id 1) at PEER with PT 101 as telephone-event, echoing to itself; with
            /// `srtp`, an AES-CM SRTP leg.
            fn new(srtp: bool) -> DtmfRig {
                let mut r = DtmfRig {
                    rig: Rig::new(),
                    tick: 0,
                    srtp: None,
                };
                let mut c = LegConfig::new(LegId(1));
                c.remote_rtp = Some(addr(PEER));
                c.latch = false;
                c.telephone_events = vec![
                    TelephoneEventPt {
                        pt: TE,
                        clock_rate: 8000,
                    },
                    TelephoneEventPt {
                        pt: Pt(110),
                        clock_rate: 48_000,
                    },
                ];
                if srtp {
                    let k = SrtpKey {
                        suite: SrtpSuite::AesCm128HmacSha1_80,
                        key: (1..=16).collect(),
                        salt: (1..=14).collect(),
                    };
                    r.srtp = Some(ctx(&k));
                    c.srtp_in = Some(k.clone());
                    c.srtp_out = Some(k);
                }
                r.rig.create(c);
                let now = r.rig.now;
                r.rig.state.on_command(
                    now,
                    Command::Connect {
                        from: LegId(1),
                        to: LegId(1),
                    },
                );
                r.digits();
                r
            }

            fn packet(&mut self, mut pkt: Vec<u8>) {
                if let Some(ctx) = self.srtp.as_mut() {
                    let n = pkt.len();
                    pkt.resize(n + 16, 0);
                    let len = ctx.protect_rtp(&mut pkt, n).unwrap();
                    pkt.truncate(len);
                }
                self.rig.packet(addr(PEER), pkt);
            }

            /// Advances virtual time in 20 ms ticks.
            fn run_for(&mut self, d: Duration) {
                let r = &mut self.rig;
                let end = r.now + d;
                while r.now < end {
                    r.now += Duration::from_millis(20);
                    self.tick += 1;
                    let t = Tick {
                        index: self.tick,
                        at: r.now,
                        late: Duration::ZERO,
                        skipped: 0,
                    };
                    r.state
                        .on_tick(r.now, t, Duration::from_millis(20), &mut r.tx);
                }
            }

            /// The DTMF events emitted so far: (digit, duration_ms).
            fn digits(&self) -> Vec<(char, u32)> {
                self.rig
                    .events()
                    .into_iter()
                    .filter_map(|e| match e {
                        Event::Dtmf {
                            id: LegId(1),
                            digit,
                            duration_ms,
                            inband: false,
                        } => Some((digit, duration_ms)),
                        Event::Dtmf { .. } => panic!("wrong leg"),
                        _ => None,
                    })
                    .collect()
            }

            fn stats(&mut self) -> LegStats {
                self.rig.stats(1)
            }
        }

        fn clean_press(srtp: bool) {
            let mut r = DtmfRig::new(srtp);
            let mut seq = 100;
            for p in press(&mut seq, 16_000, 1, 200) {
                r.packet(p);
                r.run_for(Duration::from_millis(20));
            }
            assert_eq!(r.digits(), vec![('1', 200)]);
            assert_eq!(r.stats().dtmf_digits, 1);
            assert_eq!(r.rig.state.counters.get(Metric::DtmfDigits), 1);
            // Detection does not change forwarding: every event packet was echoed.
            assert_eq!(r.stats().rtp_out, 7);
            r.run_for(Duration::from_secs(2));
            assert_eq!(r.digits(), vec![], "reported once, no timeout afterwards");
            assert!(r.rig.state.dtmf_open.is_empty());
        }

        #[test]
        fn a_clean_key_press_is_one_event() {
            clean_press(false);
        }

        #[test]
        fn srtp_legs_report_key_presses_after_unprotect() {
            clean_press(true);
            // A forged event packet (wrong key) is refused before detection.
            let mut r = DtmfRig::new(true);
            let mut forged = te(1, 5000, 9, true, 800);
            forged.extend_from_slice(&[0u8; 10]);
            let meta = RxMeta {
                sock: SockId(0),
                src: addr(PEER),
            };
            r.rig
                .state
                .on_packet(r.rig.now, meta, &mut forged, &mut r.rig.tx);
            assert_eq!(r.digits(), vec![]);
            assert_eq!(r.stats().auth_failed, 1);
        }

        #[test]
        fn lost_end_packets_report_on_the_next_press_or_after_the_timeout() {
            let mut r = DtmfRig::new(false);
            let mut seq = 1;
            // '4' loses all three end packets; '5' follows: '4' is reported when '5' starts.
            let four = press(&mut seq, 8000, 4, 150);
            for p in &four[..3] {
                r.packet(p.clone());
                r.run_for(Duration::from_millis(50));
            }
            assert_eq!(r.digits(), vec![]);
            let five = press(&mut seq, 12_000, 5, 100);
            r.packet(five[0].clone());
            assert_eq!(r.digits(), vec![('4', 100)]);
            // '5' loses its ends and nothing follows: reported once the timeout passes.
            r.packet(five[1].clone());
            r.run_for(Duration::from_millis(480));
            assert_eq!(r.digits(), vec![]);
            r.run_for(Duration::from_millis(40));
            assert_eq!(r.digits(), vec![('5', 50)]);
            // Its end packets finally arrive: nothing more.
            for p in &five[2..] {
                r.packet(p.clone());
            }
            r.run_for(Duration::from_secs(1));
            assert_eq!(r.digits(), vec![]);
            assert_eq!(r.stats().dtmf_digits, 2);
        }

        #[test]
        fn duplicated_and_reordered_packets_give_each_digit_once() {
            let mut r = DtmfRig::new(false);
            let mut seq = 1;
            let a = press(&mut seq, 1000, 0xa, 150); // '*'
            let b = press(&mut seq, 3000, 0xb, 100); // '#'
            let order = [
                &a[0], &a[0], &a[2], &a[1], &a[3], &b[0], &a[4], &a[5], &b[1], &b[0], &b[2], &b[2],
                &b[3], &b[4],
            ];
            for p in order {
                r.packet(p.clone());
                r.run_for(Duration::from_millis(20));
            }
            r.run_for(Duration::from_secs(1));
            assert_eq!(r.digits(), vec![('*', 150), ('#', 100)]);
        }

        #[test]
        fn the_same_digit_pressed_twice_is_two_events() {
            let mut r = DtmfRig::new(false);
            let mut seq = 1;
            for ts in [8000, 16_000] {
                for p in press(&mut seq, ts, 7, 100) {
                    r.packet(p);
                    r.run_for(Duration::from_millis(20));
                }
                r.run_for(Duration::from_millis(300));
            }
            assert_eq!(r.digits(), vec![('7', 100), ('7', 100)]);
        }

        #[test]
        fn a_long_press_is_reported_once_with_its_final_duration() {
            let mut r = DtmfRig::new(false);
            let mut seq = 1;
            // 2 s of 'D': 40 duration updates, one event at the end.
            let packets = press(&mut seq, 40_000, 15, 2000);
            for p in &packets[..40] {
                r.packet(p.clone());
                r.run_for(Duration::from_millis(50));
                assert_eq!(r.digits(), vec![]);
            }
            for p in &packets[40..] {
                r.packet(p.clone());
            }
            assert_eq!(r.digits(), vec![('D', 2000)]);
        }

        #[test]
        fn other_events_are_counted_and_short_payloads_dropped() {
            let mut r = DtmfRig::new(false);
            let mut seq = 1;
            // Flash (16), then a truncated event packet, then '9'.
            for p in press(&mut seq, 1000, 16, 100) {
                r.packet(p);
            }
            let mut short = te(seq, 2000, 9, false, 0);
            short.truncate(14);
            r.packet(short);
            for p in press(&mut seq, 3000, 9, 100) {
                r.packet(p);
            }
            assert_eq!(r.digits(), vec![('9', 100)]);
            let s = r.stats();
            assert_eq!((s.dtmf_other_events, s.malformed), (1, 1));
            assert_eq!(r.rig.state.counters.get(Metric::DtmfOtherEvents), 1);
            assert_eq!(r.rig.state.counters.get(Metric::DropMalformed), 1);
            assert_eq!(s.rtp_out, 10, "the malformed packet was not echoed");
            // Audio with another payload type is not taken for events.
            let mut audio = te(seq + 10, 9000, 3, true, 800);
            audio[1] = 0;
            r.packet(audio);
            assert_eq!(r.digits(), vec![]);
        }

        #[test]
        fn a_leg_removed_mid_press_reports_nothing_later() {
            let mut r = DtmfRig::new(false);
            r.packet(te(1, 1000, 2, false, 0));
            r.rig
                .state
                .on_command(r.rig.now, Command::RemoveLeg(LegId(1)));
            r.run_for(Duration::from_secs(1));
            assert_eq!(r.digits(), vec![]);
            assert!(r.rig.state.dtmf_open.is_empty());
        }
    }

    mod video {
        use super::*;
        use crate::mixer::AudioFormat;
        use crate::rtcp::{Nack, Pli};
        use crate::rtp::{Pt, RtpPacket};
        use crate::runtime::command::{VideoLayout, VideoReceiveCodec};
        use crate::sfu::{EncodingConfig, KeyFrameMethod, ProducerConfig, VideoCodec};
        use chorus_codecs::{AudioCodec, g711};

        const CONF: ConferenceId = ConferenceId(9);
        /// The H.264 publisher's three simulcast encodings.
        const SIMULCAST: [u32; 3] = [0x1110, 0x1111, 0x1112];
        const VP8_SSRC: u32 = 0x2220;

        fn video_addr(id: u32) -> SocketAddr {
            addr(9600 + 2 * id as u16)
        }

        fn encoding(ssrc: u32, height: u16, bps: u32) -> EncodingConfig {
            EncodingConfig {
                ssrc: Some(Ssrc(ssrc)),
                rid: None,
                rtx: None,
                height,
                max_bitrate_bps: bps,
            }
        }

        fn producer(codec: VideoCodec, pt: u8, encodings: Vec<EncodingConfig>) -> ProducerConfig {
            ProducerConfig {
                codec,
                pt: Pt(pt),
                clock_rate: 90_000,
                encodings,
                key_frame_method: KeyFrameMethod::Pli,
                nack: true,
                rid_ext_id: None,
                extensions: Default::default(),
            }
        }

        fn receive(codecs: &[(VideoCodec, u8)]) -> Vec<VideoReceiveCodec> {
            (codecs.iter())
                .map(|&(codec, pt)| VideoReceiveCodec {
                    codec,
                    pt: Pt(pt),
                    rtx_pt: None,
                })
                .collect()
        }

        /// One caller with audio and video as its own end sees them (plain RTP after SRTP).
        struct Peer {
            id: u32,
            up: Option<SrtpContext>,
            down: Option<SrtpContext>,
            audio_seq: u16,
            loud: bool,
            /// Video RTP received, per tick.
            rtp: Vec<(u64, Vec<u8>)>,
            /// Video RTCP received, per tick.
            rtcp: Vec<(u64, Vec<u8>)>,
            /// Outbound video: per encoding (sequence number); key frame due.
            seqs: [u16; 3],
            key_due: bool,
            /// Video RTP as it arrived (SRTP), by tick.
            raw: Vec<(u64, Vec<u8>)>,
        }

        struct Room {
            r: Rig,
            peers: Vec<Peer>,
        }

        impl Room {
            /// Leg 1 sends H.264 in three encodings and takes every other publisher (SRTP
            /// video); leg 2 sends VP8 and takes every other publisher; leg 3 is a SIP
            /// endpoint that takes one stream, the speaker's, in H.264 or VP8.
            fn new() -> Room {
                let mut r = Rig::new();
                let configs = [
                    VideoConfig {
                        remote_rtp: video_addr(1),
                        remote_rtcp: None,
                        rtcp_mux: true,
                        srtp_in: Some(key(201)),
                        srtp_out: Some(key(301)),
                        pair: None,
                        producer: Some(producer(
                            VideoCodec::H264,
                            96,
                            vec![
                                encoding(SIMULCAST[0], 180, 150_000),
                                encoding(SIMULCAST[1], 360, 500_000),
                                encoding(SIMULCAST[2], 720, 1_500_000),
                            ],
                        )),
                        // No RTX: retransmissions to this SRTP leg repeat the original
                        // SRTP packet, byte for byte.
                        receive: receive(&[(VideoCodec::H264, 96), (VideoCodec::Vp8, 98)]),
                        layout: VideoLayout::All,
                        max_height: 720,
                        bandwidth_bps: None,
                        extensions: Default::default(),
                    },
                    VideoConfig {
                        remote_rtp: video_addr(2),
                        remote_rtcp: None,
                        rtcp_mux: true,
                        srtp_in: None,
                        srtp_out: None,
                        pair: None,
                        producer: Some(producer(
                            VideoCodec::Vp8,
                            100,
                            vec![encoding(VP8_SSRC, 360, 500_000)],
                        )),
                        receive: receive(&[(VideoCodec::Vp8, 100), (VideoCodec::H264, 102)]),
                        layout: VideoLayout::All,
                        max_height: 720,
                        bandwidth_bps: Some(4_000_000),
                        extensions: Default::default(),
                    },
                    VideoConfig {
                        remote_rtp: video_addr(3),
                        remote_rtcp: None,
                        rtcp_mux: true,
                        srtp_in: None,
                        srtp_out: None,
                        pair: None,
                        producer: None,
                        receive: receive(&[(VideoCodec::H264, 104), (VideoCodec::Vp8, 105)]),
                        layout: VideoLayout::ActiveSpeaker,
                        max_height: 360,
                        bandwidth_bps: None,
                        extensions: Default::default(),
                    },
                ];
                let mut peers = Vec::new();
                for (i, v) in configs.into_iter().enumerate() {
                    let id = i as u32 + 1;
                    let mut c = LegConfig::new(LegId(id));
                    c.remote_rtp = Some(addr(9500 + 2 * id as u16));
                    c.latch = false;
                    c.audio = Some(AudioFormat {
                        codec: AudioCodec::Pcmu,
                        pt: Pt(0),
                        cn_pt: None,
                        audio_level_ext_id: None,
                    });
                    r.create(c);
                    peers.push(Peer {
                        id,
                        up: v.srtp_in.as_ref().map(ctx),
                        down: v.srtp_out.as_ref().map(ctx),
                        audio_seq: 1,
                        loud: false,
                        rtp: Vec::new(),
                        rtcp: Vec::new(),
                        seqs: [100 * id as u16, 60_000, 65_500],
                        key_due: true,
                        raw: Vec::new(),
                    });
                    let video = Some(Box::new(v));
                    r.state.on_command(
                        r.now,
                        Command::SetVideo {
                            leg: LegId(id),
                            video,
                        },
                    );
                    let join = Command::JoinConference {
                        leg: LegId(id),
                        conference: CONF,
                    };
                    r.state.on_command(r.now, join);
                }
                Room { r, peers }
            }

            /// Whether leg `leg`'s stream switched to leg `source`'s video since the events
            /// were last read (it reads them).
            fn switched(&mut self, leg: u32, source: u32) -> bool {
                self.r.events().into_iter().any(|e| {
                    matches!(e, Event::VideoSwitched { leg: l, source: s, .. }
                        if l == LegId(leg) && s == LegId(source))
                })
            }

            fn peer(&mut self, id: u32) -> &mut Peer {
                self.peers.iter_mut().find(|p| p.id == id).unwrap()
            }

            /// Sends `pkt` (plain) from peer `id`'s video port, protected with its key.
            fn send_video(&mut self, id: u32, mut pkt: Vec<u8>) {
                let rtcp = crate::rtcp::classify(&pkt) == PacketKind::Rtcp;
                if let Some(up) = self.peer(id).up.as_mut() {
                    let n = pkt.len();
                    pkt.resize(n + 32, 0);
                    let n = if rtcp {
                        up.protect_rtcp(&mut pkt, n).unwrap()
                    } else {
                        up.protect_rtp(&mut pkt, n).unwrap()
                    };
                    pkt.truncate(n);
                }
                self.r.packet(video_addr(id), pkt);
            }

            /// One tick: every peer sends its audio (a tone if loud, else silence) and a
            /// frame of video; then the core ticks and each peer takes what reached it.
            fn step(&mut self, index: u64) {
                let ts = (index as u32).wrapping_mul(3_000);
                for i in 0..self.peers.len() {
                    let p = &mut self.peers[i];
                    let pcm: Vec<i16> = (0..160)
                        .map(|n| {
                            let t = (index as usize * 160 + n) as f64 / 8000.0;
                            let v = 8_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
                            if p.loud { v as i16 } else { 0 }
                        })
                        .collect();
                    let mut a = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
                    a[2..4].copy_from_slice(&p.audio_seq.to_be_bytes());
                    a[4..8].copy_from_slice(&(u32::from(p.audio_seq) * 160).to_be_bytes());
                    a.extend_from_slice(&(0x900 + p.id).to_be_bytes());
                    g711::encode_into(g711::Law::Mu, &pcm, &mut a);
                    p.audio_seq += 1;
                    let (id, key) = (p.id, std::mem::take(&mut p.key_due));
                    let from = addr(9500 + 2 * id as u16);
                    self.r.packet(from, a);
                    match id {
                        1 => {
                            for (e, &ssrc) in SIMULCAST.iter().enumerate() {
                                let p = self.peer(1);
                                let seq = p.seqs[e];
                                p.seqs[e] = seq.wrapping_add(1);
                                let nal = if key { [0x65, 0x88] } else { [0x41, 0x9a] };
                                let pkt = video_rtp(96, seq, ts, ssrc, &[nal[0], nal[1], e as u8]);
                                self.send_video(1, pkt);
                            }
                        }
                        2 => {
                            let p = self.peer(2);
                            let seq = p.seqs[0];
                            p.seqs[0] = seq.wrapping_add(1);
                            let body = [0x10, if key { 0x00 } else { 0x01 }, 0xaa];
                            self.send_video(2, video_rtp(100, seq, ts, VP8_SSRC, &body));
                        }
                        _ => {}
                    }
                }
                for (dst, mut pkt) in self.r.tick(index) {
                    let Some(p) = self.peers.iter_mut().find(|p| video_addr(p.id) == dst) else {
                        continue; // Audio.
                    };
                    let rtcp = crate::rtcp::classify(&pkt) == PacketKind::Rtcp;
                    if !rtcp {
                        p.raw.push((index, pkt.clone()));
                    }
                    let n = match (p.down.as_mut(), rtcp) {
                        (None, _) => pkt.len(),
                        (Some(d), true) => d.unprotect_rtcp(&mut pkt).unwrap(),
                        // A retransmission of a packet this peer did get is a replay to it.
                        (Some(d), false) => match d.unprotect_rtp(&mut pkt) {
                            Err(crate::srtp::SrtpError::Replayed) => continue,
                            n => n.unwrap(),
                        },
                    };
                    pkt.truncate(n);
                    if rtcp {
                        // A publisher answers a PLI with a key frame (next tick).
                        let pli = crate::rtcp::parse_rtcp_compound(&pkt)
                            .any(|x| matches!(x, Ok(RtcpPacket::Pli(_))));
                        p.key_due |= pli;
                        p.rtcp.push((index, pkt));
                    } else {
                        p.rtp.push((index, pkt));
                    }
                }
                // A key frame every 2 s regardless.
                if index % 100 == 99 {
                    for p in &mut self.peers {
                        p.key_due = true;
                    }
                }
            }

            /// PLIs peer `id` received in ticks `from..`, by media SSRC.
            fn plis(&mut self, id: u32, from: u64) -> Vec<u32> {
                let mut out = Vec::new();
                for (_, pkt) in self.peer(id).rtcp.iter().filter(|(t, _)| *t >= from) {
                    for x in crate::rtcp::parse_rtcp_compound(pkt) {
                        if let Ok(RtcpPacket::Pli(pli)) = x {
                            out.push(pli.media_ssrc.0);
                        }
                    }
                }
                out
            }

            fn video_state(&self, id: u32) -> (Option<crate::sfu::ProducerId>, usize) {
                let slot = self.r.state.by_id[&LegId(id)];
                let v = self.r.state.legs[slot as usize]
                    .as_ref()
                    .unwrap()
                    .video
                    .as_ref();
                v.map_or((None, 0), |v| (v.producer, v.consumers.len()))
            }
        }

        fn video_rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
            let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0];
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(payload);
            p
        }

        /// (SSRC, PT, sequence number) of each RTP packet in `rtp` from tick `from` on.
        fn ids(rtp: &[(u64, Vec<u8>)], from: u64) -> Vec<(u32, u8, u16)> {
            (rtp.iter().filter(|(t, _)| *t >= from))
                .map(|(_, b)| {
                    let p = RtpPacket::parse(b).unwrap();
                    (p.ssrc().0, p.pt().0, p.seq())
                })
                .collect()
        }

        /// One SSRC, sequence numbers that go up by one (retransmissions aside).
        fn assert_continuous(ids: &[(u32, u8, u16)], what: &str) {
            assert!(!ids.is_empty(), "{what}: nothing received");
            let ssrc = ids[0].0;
            let mut high = ids[0].2;
            for &(s, _, seq) in &ids[1..] {
                assert_eq!(s, ssrc, "{what}: one SSRC");
                if seq.wrapping_sub(high) < 0x8000 {
                    assert_eq!(seq, high.wrapping_add(1), "{what}: continuous");
                    high = seq;
                }
            }
        }

        /// A renegotiation that gives an SRTP leg the same video again (`SetVideo` with
        /// unchanged keys) keeps its SRTP contexts: the peer, whose contexts go on, still
        /// takes every SRTP and SRTCP packet (a restarted context would repeat indexes, which
        /// the peer refuses as replays and which reuse keystream). Its consumers come back
        /// with SSRCs it never had.
        #[test]
        fn video_set_again_keeps_its_srtp_contexts_and_never_reuses_an_ssrc() {
            let mut room = Room::new();
            for i in 0..120 {
                room.step(i);
            }
            let before: Vec<u32> = ids(&room.peer(1).rtp, 0).iter().map(|x| x.0).collect();
            assert!(!before.is_empty() && !room.peer(1).rtcp.is_empty());
            let slot = room.r.state.by_id[&LegId(1)];
            let again = (room.r.state.legs[slot as usize].as_ref())
                .and_then(|l| l.video.as_ref())
                .map(|v| v.config.clone())
                .unwrap();
            room.r.state.on_command(
                room.r.now,
                Command::SetVideo {
                    leg: LegId(1),
                    video: Some(Box::new(again)),
                },
            );
            // Every packet after it must unprotect with the peer's running contexts (the
            // step unwraps), SRTCP reports included.
            for i in 120..300 {
                room.step(i);
            }
            let after = ids(&room.peer(1).rtp, 121);
            assert!(!after.is_empty(), "video goes on");
            assert!(
                after.iter().all(|x| !before.contains(&x.0)),
                "new consumer SSRCs: {before:?} then {after:?}"
            );
            assert!(
                room.peer(1).rtcp.iter().any(|(t, _)| *t > 200),
                "SRTCP goes on"
            );
        }

        #[test]
        fn three_video_legs_forward_switch_and_leave() {
            let mut room = Room::new();
            assert_eq!(room.r.state.videos.len(), 1);
            assert_eq!(room.video_state(1).1, 1, "leg 1 takes leg 2's VP8");
            assert_eq!(room.video_state(2).1, 1, "leg 2 takes leg 1's H.264");
            assert_eq!(room.video_state(3).1, 1, "leg 3 takes the speaker");
            let ready = (room.r.events().into_iter())
                .filter(|e| matches!(e, Event::VideoReady { .. }))
                .count();
            assert_eq!(ready, 3);

            // Leg 1 talks first.
            room.peer(1).loud = true;
            for i in 0..60 {
                room.step(i);
            }
            // Each receiver gets the others' video in its own SSRC, its own payload type,
            // with continuous sequence numbers.
            let to2 = ids(&room.peer(2).rtp, 0);
            assert_continuous(&to2, "H.264 to leg 2");
            assert!(
                to2.iter()
                    .all(|&(s, pt, _)| pt == 102 && !SIMULCAST.contains(&s))
            );
            let to1: Vec<_> = (ids(&room.peer(1).rtp, 0).into_iter())
                .filter(|&(_, pt, _)| pt != 99)
                .collect();
            assert_continuous(&to1, "VP8 to leg 1 (SRTP)");
            assert!(to1.iter().all(|&(s, pt, _)| pt == 98 && s != VP8_SSRC));
            let to3 = ids(&room.peer(3).rtp, 0);
            assert_continuous(&to3, "speaker to leg 3");
            assert!(
                to3.iter().all(|&(_, pt, _)| pt == 104),
                "leg 3 sees leg 1 (H.264)"
            );
            // Leg 3 wants 360 lines: the middle encoding.
            let body = |t: &(u64, Vec<u8>)| RtpPacket::parse(&t.1).unwrap().payload().to_vec();
            let last3 = room.peer(3).rtp.last().map(body).unwrap();
            assert_eq!(last3[2], 1, "leg 3 gets encoding 1");

            // A NACK from leg 2 is answered with the packet again.
            let (ssrc2, _, seq) = *to2.iter().rev().nth(2).unwrap();
            let nack = {
                let mut b = vec![0; 64];
                let n = Nack::write(&mut b, Ssrc(2), Ssrc(ssrc2), [seq]).unwrap();
                b.truncate(n);
                b
            };
            room.send_video(2, nack);
            // And one from leg 1 over SRTCP, answered over SRTP.
            let (ssrc1, _, seq1) = *to1.iter().rev().nth(3).unwrap();
            let mut b = vec![0; 64];
            let n = Nack::write(&mut b, Ssrc(1), Ssrc(ssrc1), [seq1]).unwrap();
            b.truncate(n);
            room.send_video(1, b);
            assert_eq!(room.r.stats(1).video_rtcp_in, 1);
            room.step(60);
            let again = ids(&room.peer(2).rtp, 60);
            assert!(again.iter().any(|&(_, _, s)| s == seq), "retransmitted");
            // Leg 1 has no RTX: the retransmission is the original SRTP packet again, byte
            // for byte (no keystream reused on other data).
            let raw = &room.peer(1).raw;
            let repeated = (raw.iter().filter(|(t, _)| *t >= 60)).any(|(_, b)| {
                let p = RtpPacket::parse(b).unwrap();
                (p.ssrc().0, p.seq()) == (ssrc1, seq1)
                    && raw.iter().any(|(t, first)| *t < 60 && first == b)
            });
            assert!(repeated, "retransmitted over SRTP as the same packet");

            // PLIs from both receivers of leg 1 (several each) reach leg 1 as one PLI per
            // encoding asked for, SRTCP-protected on its video address.
            let ssrc3 = to3[0].0;
            for (id, media) in [(2, ssrc2), (3, ssrc3), (2, ssrc2), (3, ssrc3), (2, ssrc2)] {
                let mut b = vec![0; 32];
                let pli = Pli {
                    sender_ssrc: Ssrc(id),
                    media_ssrc: Ssrc(media),
                };
                let n = pli.write(&mut b).unwrap();
                b.truncate(n);
                room.send_video(id, b);
            }
            room.step(61);
            let plis = room.plis(1, 61);
            assert!(!plis.is_empty() && plis.len() <= 2, "aggregated: {plis:x?}");
            let mut distinct = plis.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                plis.len(),
                "one PLI per encoding: {plis:x?}"
            );
            assert!(plis.iter().all(|s| SIMULCAST.contains(s)));

            // Leg 2 talks: leg 3's stream moves to leg 2's VP8 at its key frame, asked for
            // with a PLI; same SSRC, sequence numbers continue, VP8's payload type.
            let _ = room.r.events();
            room.peer(1).loud = false;
            room.peer(2).loud = true;
            for i in 62..140 {
                room.step(i);
            }
            assert!(room.switched(3, 2), "leg 3 follows leg 2");
            assert!(
                room.plis(2, 62).contains(&VP8_SSRC),
                "key frame asked of leg 2"
            );
            let to3 = ids(&room.peer(3).rtp, 0);
            assert_continuous(&to3, "speaker to leg 3 across the switch");
            assert_eq!(to3.last().unwrap().1, 105, "now VP8");

            // Garbage on the video ports is counted, never forwarded, never panics.
            let before = room.r.state.counters;
            let queued = room.r.tx.queued_len();
            for (i, junk) in [
                vec![],
                vec![0x80],
                vec![0x80, 96, 0, 1],
                vec![0xff; 40],
                vec![0x80, 0xc8, 0, 40, 1, 2, 3, 4],
                vec![
                    0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0x11, 0x12, 0xbe, 0xde, 0, 9,
                ],
                video_rtp(96, 1, 1, 0xdead, &[0x7c]),
            ]
            .into_iter()
            .enumerate()
            {
                room.r.packet(video_addr(1 + i as u32 % 3), junk.clone());
                room.r.packet(video_addr(3), junk);
            }
            // Plain RTP on leg 1's SRTP video port: refused by authentication.
            let ahead = room.peer(1).seqs[0].wrapping_add(10);
            let forged = video_rtp(96, ahead, 0, SIMULCAST[0], &[0x65; 40]);
            room.r.packet(video_addr(1), forged);
            let after = room.r.state.counters;
            let dropped = |c: &Counters| {
                c.get(Metric::DropNotRtp)
                    + c.get(Metric::DropAuthFailed)
                    + c.get(Metric::DropMalformed)
                    + c.get(Metric::VideoDropped)
            };
            assert!(dropped(&after) > dropped(&before));
            assert_eq!(
                room.r.tx.queued_len(),
                queued,
                "nothing of it was forwarded"
            );
            let s1 = room.r.stats(1);
            assert!(s1.auth_failed > 0, "SRTP leg: forged video refused: {s1:?}");

            // Leg 2 leaves: its producer and consumers go; leg 1 has no stream left, leg 3
            // follows leg 1 again.
            room.r
                .state
                .on_command(room.r.now, Command::RemoveLeg(LegId(2)));
            assert_eq!(room.video_state(1).1, 0);
            room.peer(1).loud = true;
            room.peers.retain(|p| p.id != 2);
            let _ = room.r.events();
            for i in 140..200 {
                room.step(i);
            }
            assert!(room.switched(3, 1), "leg 3 follows leg 1 again");
            let stats = room.r.stats(3);
            assert!(stats.video_out > 0 && stats.video_rtp_in == 0);
            assert!(room.r.state.counters.get(Metric::VideoOut) > 0);
            for id in [1, 3] {
                room.r
                    .state
                    .on_command(room.r.now, Command::RemoveLeg(LegId(id)));
            }
            assert!(
                room.r.state.videos.is_empty(),
                "the router goes with the last member"
            );
        }

        /// Runs tick `index` and returns what it sent: (socket, destination, packet).
        fn tick_socks(r: &mut Rig, index: u64) -> Vec<(SockId, SocketAddr, Vec<u8>)> {
            let t = Tick {
                index,
                at: r.now,
                late: Duration::ZERO,
                skipped: 0,
            };
            r.state
                .on_tick(r.now, t, Duration::from_millis(20), &mut r.tx);
            let mut queued = Vec::new();
            r.tx.take_queued(&mut queued);
            let sent = (queued.iter())
                .map(|e| {
                    let b = r.tx.slot(e.slot)[..usize::from(e.len)].to_vec();
                    (e.sock, e.dst, b)
                })
                .collect();
            for e in queued {
                r.tx.release(e.slot);
            }
            r.now += Duration::from_millis(20);
            sent
        }

        #[test]
        fn video_on_its_own_socket_pair_without_rtcp_mux_and_taken_away() {
            // Two socket pairs: audio on the first, video on the second.
            let mut r = Rig::new();
            let pairs = vec![
                SocketPair {
                    rtp: SockId(0),
                    rtcp: SockId(1),
                    rtp_addr: addr(20_000),
                    rtcp_addr: addr(20_001),
                },
                SocketPair {
                    rtp: SockId(2),
                    rtcp: SockId(3),
                    rtp_addr: addr(20_002),
                    rtcp_addr: addr(20_003),
                },
            ];
            r.state = CoreState::new(CoreId(0), r.mailbox.clone(), pairs, 4);
            let video = |id: u32, producer: Option<ProducerConfig>| VideoConfig {
                remote_rtp: addr(9700 + 2 * id as u16),
                remote_rtcp: (id == 1).then_some(addr(9711)),
                rtcp_mux: false,
                srtp_in: None,
                srtp_out: None,
                pair: Some(1),
                producer,
                receive: receive(&[(VideoCodec::H264, 97)]),
                layout: VideoLayout::All,
                max_height: 720,
                bandwidth_bps: None,
                extensions: Default::default(),
            };
            let publisher = producer(VideoCodec::H264, 96, vec![encoding(0x77, 720, 1_000_000)]);
            for (id, v) in [(1, video(1, Some(publisher))), (2, video(2, None))] {
                let mut c = LegConfig::new(LegId(id));
                c.remote_rtp = Some(addr(9500 + 2 * id as u16));
                c.latch = false;
                c.pair = Some(0);
                c.audio = Some(AudioFormat {
                    codec: AudioCodec::Pcmu,
                    pt: Pt(0),
                    cn_pt: None,
                    audio_level_ext_id: None,
                });
                r.create(c);
                let cmd = Command::SetVideo {
                    leg: LegId(id),
                    video: Some(Box::new(v)),
                };
                r.state.on_command(r.now, cmd);
                let join = Command::JoinConference {
                    leg: LegId(id),
                    conference: CONF,
                };
                r.state.on_command(r.now, join);
            }
            let ready: Vec<_> = (r.events().into_iter())
                .filter_map(|e| match e {
                    Event::VideoReady { rtp, rtcp, .. } => Some((rtp, rtcp)),
                    _ => None,
                })
                .collect();
            assert_eq!(ready, vec![(addr(20_002), addr(20_003)); 2]);

            // Video RTP in on the video socket reaches leg 2 from the video socket.
            let mut pkt = video_rtp(96, 1, 0, 0x77, &[0x65, 0x88]);
            let meta = RxMeta {
                sock: SockId(2),
                src: addr(9702),
            };
            r.state.on_packet(r.now, meta, &mut pkt, &mut r.tx);
            let sent = tick_socks(&mut r, 0);
            let (sock, _, b) = (sent.iter())
                .find(|(_, d, _)| *d == addr(9704))
                .expect("forwarded to leg 2's video");
            assert_eq!(*sock, SockId(2));
            assert_eq!(RtpPacket::parse(b).unwrap().pt(), Pt(97));
            let ssrc2 = RtpPacket::parse(b).unwrap().ssrc();

            // A PLI on leg 2's video RTCP port (RTP port + 1) reaches leg 1's explicit RTCP
            // address from the video RTCP socket.
            let mut b = vec![0; 32];
            let pli = Pli {
                sender_ssrc: Ssrc(2),
                media_ssrc: ssrc2,
            };
            let n = pli.write(&mut b).unwrap();
            b.truncate(n);
            let meta = RxMeta {
                sock: SockId(3),
                src: addr(9705),
            };
            r.state.on_packet(r.now, meta, &mut b, &mut r.tx);
            let sent = tick_socks(&mut r, 1);
            let plis: Vec<_> = (sent.iter())
                .filter(|(_, d, _)| *d == addr(9711))
                .filter(|(_, _, b)| {
                    crate::rtcp::parse_rtcp_compound(b)
                        .any(|p| matches!(p, Ok(RtcpPacket::Pli(p)) if p.media_ssrc == Ssrc(0x77)))
                })
                .collect();
            assert_eq!(plis.len(), 1);
            assert_eq!(plis[0].0, SockId(3));
            assert_eq!(r.stats(2).video_rtcp_in, 1);

            // Video on the audio address (bundled) is refused; the leg keeps its audio.
            let mut bundled = video(2, None);
            bundled.remote_rtp = addr(9504);
            let cmd = Command::SetVideo {
                leg: LegId(2),
                video: Some(Box::new(bundled)),
            };
            r.state.on_command(r.now, cmd);
            let rejected = (r.events().into_iter())
                .any(|e| matches!(e, Event::VideoRejected { id: LegId(2), .. }));
            assert!(rejected);

            // Leg 2's video was taken away with it: its flows and consumer are gone.
            let room = &r.state.videos[&CONF];
            assert_eq!(room.members.len(), 1);
            let mut pkt = video_rtp(97, 9, 0, 0x99, &[0x41]);
            let before = r.state.counters.get(Metric::DropUnknownFlow);
            let meta = RxMeta {
                sock: SockId(2),
                src: addr(9704),
            };
            r.state.on_packet(r.now, meta, &mut pkt, &mut r.tx);
            assert_eq!(r.state.counters.get(Metric::DropUnknownFlow), before + 1);
            let cmd = Command::SetVideo {
                leg: LegId(1),
                video: None,
            };
            r.state.on_command(r.now, cmd);
            assert!(r.state.videos.is_empty());
            assert_eq!(r.state.flows.len(), 2, "the two legs' audio flows");
        }

        #[test]
        fn a_publisher_reusing_an_ssrc_is_refused_its_producer_and_still_receives() {
            let mut room = Room::new();
            let _ = room.r.events();
            let mut c = LegConfig::new(LegId(4));
            c.remote_rtp = Some(addr(9508));
            c.latch = false;
            c.audio = Some(AudioFormat {
                codec: AudioCodec::Pcmu,
                pt: Pt(0),
                cn_pt: None,
                audio_level_ext_id: None,
            });
            room.r.create(c);
            let v = VideoConfig {
                remote_rtp: video_addr(4),
                remote_rtcp: None,
                rtcp_mux: true,
                srtp_in: None,
                srtp_out: None,
                pair: None,
                producer: Some(producer(
                    VideoCodec::Vp8,
                    100,
                    vec![encoding(VP8_SSRC, 360, 500_000)],
                )),
                receive: receive(&[(VideoCodec::H264, 96), (VideoCodec::Vp8, 100)]),
                layout: VideoLayout::All,
                max_height: 720,
                bandwidth_bps: None,
                extensions: Default::default(),
            };
            let cmd = Command::SetVideo {
                leg: LegId(4),
                video: Some(Box::new(v)),
            };
            room.r.state.on_command(room.r.now, cmd);
            let join = Command::JoinConference {
                leg: LegId(4),
                conference: CONF,
            };
            room.r.state.on_command(room.r.now, join);
            let events = room.r.events();
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::VideoRejected { id: LegId(4), .. }))
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::LegRejected { .. }))
            );
            assert_eq!(
                room.video_state(4),
                (None, 2),
                "no producer, the others' two streams"
            );
            assert_eq!(room.video_state(1).1, 1, "nothing of leg 4 to take");
        }
    }
}
