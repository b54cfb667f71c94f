//! [`Publisher`]: one caller's camera, the pre-encoded simulcast clip looped at its frame
//! rate, as RTP with retransmissions, key frames on request and sender reports.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_engine::codecs::h264::Clip;
use chorus_engine::rtcp::{
    CompoundBuilder, NtpClock, RtcpPacket, SenderInfo, SenderReport, SourceDescription,
};
use chorus_engine::rtp::{Extension, ExtensionForm, Pt, RtpHeader, Ssrc};
use chorus_engine::sfu::rtx::{self, RtxConfig};

use super::{PacketKind, abs_send_time};

/// Packets of each layer kept for retransmission (a 720p key frame is about 50; at 1.5
/// Mbit/s this is over 2 s of the top layer).
const HISTORY: usize = 1_024;
/// Sender reports per layer this often.
const SR_INTERVAL: Duration = Duration::from_secs(1);
/// Packets queued at most (a frame of every layer plus retransmissions); past it a
/// retransmission request is dropped and counted.
const QUEUE_MAX: usize = 1_024;

/// How a publisher sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// One SSRC per clip layer, lowest layer first.
    pub ssrcs: Vec<Ssrc>,
    /// The RIDs of the layers (same order), written in the `rtp-stream-id` element when
    /// `rid_ext` is set.
    pub rids: Vec<String>,
    /// The payload type of H.264.
    pub pt: Pt,
    /// RTX: its payload type and one SSRC per layer; None resends in the media stream.
    pub rtx: Option<(Pt, Vec<Ssrc>)>,
    /// The negotiated id of the RFC 8852 `rtp-stream-id` element.
    pub rid_ext: Option<u8>,
    /// The negotiated id of abs-send-time.
    pub abs_send_time_ext: Option<u8>,
    /// The RTCP CNAME.
    pub cname: String,
    /// Seeds the initial sequence numbers and timestamps.
    pub seed: u64,
    /// Who it is, told in an SEI added to each key frame's first packet (a STAP-A with the
    /// parameter sets): [`super::source_sei`].
    pub source: Option<u32>,
}

/// Why a publisher wants [`Publisher::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherTimer {
    /// The next frame is due.
    Frame,
    /// Sender reports are due.
    Report,
}

/// What a publisher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherCounters {
    /// Frames sent (one per layer counted once: clip frames played).
    pub frames: u64,
    /// RTP media packets sent (all layers).
    pub packets: u64,
    /// Sequence numbers asked for in NACKs.
    pub nacked: u64,
    /// Retransmissions sent.
    pub retransmitted: u64,
    /// NACKed packets no longer in the history (or never sent).
    pub nack_misses: u64,
    /// PLIs and FIRs received.
    pub key_requests: u64,
    /// Times the clip jumped ahead to a key frame for a request.
    pub key_jumps: u64,
    /// Sender reports sent.
    pub reports: u64,
    /// Retransmissions dropped because the queue was full.
    pub queue_full: u64,
}

/// One sent packet, enough to send it again.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u16,
    /// The clip frame (loop position) and its payload index.
    frame: u64,
    payload: u16,
    timestamp: u32,
    abs_send: u32,
    valid: bool,
}

#[derive(Debug)]
struct LayerSend {
    seq: u16,
    rtx_seq: u16,
    ts_base: u32,
    history: Vec<Sent>,
    packets: u32,
    octets: u32,
}

#[derive(Debug, Clone, Copy)]
enum Out {
    Media {
        layer: usize,
        frame: u64,
        payload: u16,
        timestamp: u32,
    },
    Resend {
        layer: usize,
        sent: Sent,
    },
    Report {
        layer: usize,
    },
}

/// Sans-IO simulcast H.264 sender: frame `k` of its timeline is due at `start + k / fps`;
/// [`Self::handle_timeout`] queues the packets of every layer of the frames due, and
/// [`Self::poll_transmit`] writes them one at a time into the caller's buffer. Feedback goes
/// in through [`Self::handle_rtcp`].
#[derive(Debug)]
pub struct Publisher {
    clip: Arc<Clip>,
    config: PublisherConfig,
    epoch: Instant,
    ntp: NtpClock,
    start: Instant,
    /// Frames of the timeline sent (the next one is due at `start + sent / fps`).
    sent: u64,
    /// The clip frame played next (jumps ahead on key-frame requests).
    position: u64,
    layers: Vec<LayerSend>,
    queue: VecDeque<Out>,
    next_report: Instant,
    counters: PublisherCounters,
}

impl Publisher {
    /// A publisher of `clip` starting at `now`; abs-send-time counts from `epoch` and SRs
    /// carry `ntp`'s wall clock. `Err` when the config does not give one SSRC per layer.
    pub fn new(
        now: Instant,
        epoch: Instant,
        ntp: NtpClock,
        clip: Arc<Clip>,
        config: PublisherConfig,
    ) -> Result<Self, String> {
        let n = clip.layers().len();
        if config.ssrcs.len() != n {
            return Err(format!("{} SSRCs for {n} layers", config.ssrcs.len()));
        }
        if config.rid_ext.is_some() && config.rids.len() != n {
            return Err(format!("{} RIDs for {n} layers", config.rids.len()));
        }
        if let Some((_, r)) = &config.rtx
            && r.len() != n
        {
            return Err(format!("{} RTX SSRCs for {n} layers", r.len()));
        }
        let mut rng = super::Rng::new(config.seed);
        let layers = (0..n)
            .map(|_| LayerSend {
                seq: (rng.next_f64() * 65_536.0) as u16,
                rtx_seq: (rng.next_f64() * 65_536.0) as u16,
                ts_base: (rng.next_f64() * 4_294_967_296.0) as u32,
                history: vec![Sent::default(); HISTORY],
                packets: 0,
                octets: 0,
            })
            .collect();
        Ok(Publisher {
            clip,
            config,
            epoch,
            ntp,
            start: now,
            sent: 0,
            position: 0,
            layers,
            queue: VecDeque::with_capacity(QUEUE_MAX),
            next_report: now + SR_INTERVAL,
            counters: PublisherCounters::default(),
        })
    }

    /// Its counters.
    pub fn counters(&self) -> PublisherCounters {
        self.counters
    }

    fn frame_due(&self, k: u64) -> Instant {
        let fps = u64::from(self.clip.fps().max(1));
        self.start + Duration::from_nanos(k * 1_000_000_000 / fps)
    }

    /// When [`Self::handle_timeout`] is next due, and why.
    pub fn poll_timeout(&self) -> (Instant, PublisherTimer) {
        let frame = self.frame_due(self.sent);
        if frame <= self.next_report {
            (frame, PublisherTimer::Frame)
        } else {
            (self.next_report, PublisherTimer::Report)
        }
    }

    /// Queues the frames and reports that are due at `now`. A publisher that fell behind
    /// (a stalled thread) skips the frames it missed rather than bursting them.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.frame_due(self.sent) <= now {
            // Frames more than 100 ms late are skipped (timeline and clip both move on).
            while self.frame_due(self.sent + 1) <= now
                && now.saturating_duration_since(self.frame_due(self.sent))
                    > Duration::from_millis(100)
            {
                self.sent += 1;
                self.position += 1;
            }
            let step = self.clip.timestamp_step();
            let frame = self.position;
            // The layers' packets interleave, as from one encoder per layer.
            // INVARIANT: `self.layers` has one entry per clip layer (checked in `new`), so `l` and `layer` index both.
            let counts: Vec<usize> = (0..self.layers.len())
                .map(|l| self.clip.layers()[l].frame(frame).payloads.len())
                .collect();
            let most = counts.iter().copied().max().unwrap_or(0);
            for payload in 0..most {
                for (layer, send) in self.layers.iter().enumerate() {
                    if payload < counts[layer] {
                        let timestamp = send
                            .ts_base
                            .wrapping_add((self.sent as u32).wrapping_mul(step));
                        self.queue.push_back(Out::Media {
                            layer,
                            frame,
                            payload: payload as u16,
                            timestamp,
                        });
                    }
                }
            }
            self.sent += 1;
            self.position += 1;
            self.counters.frames += 1;
        }
        if self.next_report <= now {
            for layer in 0..self.layers.len() {
                // INVARIANT: `layer` ranges over `self.layers`.
                if self.layers[layer].packets > 0 {
                    self.queue.push_back(Out::Report { layer });
                }
            }
            self.next_report = now + SR_INTERVAL;
        }
    }

    /// Takes a compound RTCP packet from the server: NACKs are answered from the history,
    /// PLI and FIR move every layer to the next key frame (the clip's key frames are on the
    /// same frames in all layers). Feedback for SSRCs that are not ours is ignored.
    pub fn handle_rtcp(&mut self, _now: Instant, compound: &[u8]) {
        for packet in chorus_engine::rtcp::parse_rtcp_compound(compound).flatten() {
            match packet {
                RtcpPacket::Nack(nack) => {
                    let Some(layer) = self.layer_of(nack.media_ssrc()) else {
                        continue;
                    };
                    for seq in nack.lost() {
                        self.counters.nacked += 1;
                        // INVARIANT: `layer_of` found `layer` in the SSRCs, one per layer; histories are HISTORY long.
                        let sent = self.layers[layer].history[usize::from(seq) % HISTORY];
                        if !sent.valid || sent.seq != seq {
                            self.counters.nack_misses += 1;
                            continue;
                        }
                        if self.queue.len() >= QUEUE_MAX {
                            self.counters.queue_full += 1;
                            continue;
                        }
                        self.queue.push_back(Out::Resend { layer, sent });
                    }
                }
                RtcpPacket::Pli(pli) if self.layer_of(pli.media_ssrc).is_some() => {
                    self.key_frame_requested();
                }
                RtcpPacket::Fir(fir) if fir.entries().any(|e| self.layer_of(e.ssrc).is_some()) => {
                    self.key_frame_requested();
                }
                _ => {}
            }
        }
    }

    fn layer_of(&self, ssrc: Ssrc) -> Option<usize> {
        self.config.ssrcs.iter().position(|&s| s == ssrc)
    }

    /// The next frame played is the clip's next key frame (unless it already is one).
    fn key_frame_requested(&mut self) {
        self.counters.key_requests += 1;
        let interval = u64::from(self.clip.key_interval_frames().max(1));
        if !self.position.is_multiple_of(interval) {
            self.position = self.position.div_ceil(interval) * interval;
            self.counters.key_jumps += 1;
        }
    }

    /// Writes the next packet due into `buf` (with room for SRTP's tag after it) and says
    /// its length and kind; None when nothing is queued.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(usize, PacketKind)> {
        while let Some(out) = self.queue.pop_front() {
            let written = match out {
                Out::Media {
                    layer,
                    frame,
                    payload,
                    timestamp,
                } => self.write_media(now, buf, layer, frame, payload, timestamp),
                Out::Resend { layer, sent } => self.write_resend(buf, layer, sent),
                Out::Report { layer } => self.write_report(now, buf, layer),
            };
            if let Some(w) = written {
                return Some(w);
            }
        }
        None
    }

    fn write_rtp(&self, buf: &mut [u8], layer: usize, seq: u16, s: &Sent) -> Option<usize> {
        let p = self
            .clip
            .layers()
            .get(layer)?
            .frame(s.frame)
            .payloads
            .get(usize::from(s.payload))?;
        let abs = s.abs_send.to_be_bytes();
        // INVARIANT: at most two elements are put in `exts` below (`n` <= 2).
        let mut exts = [Extension { id: 1, data: &[] }; 2];
        let mut n = 0;
        if let (Some(id), Some(rid)) = (self.config.rid_ext, self.config.rids.get(layer)) {
            exts[n] = Extension {
                id,
                data: rid.as_bytes(),
            };
            n += 1;
        }
        if let Some(id) = self.config.abs_send_time_ext {
            exts[n] = Extension {
                id,
                data: &abs[1..],
            };
            n += 1;
        }
        let header = RtpHeader {
            marker: p.marker,
            pt: self.config.pt,
            seq,
            timestamp: s.timestamp,
            ssrc: *self.config.ssrcs.get(layer)?,
            csrcs: &[],
            extensions: &exts[..n],
            extension_form: ExtensionForm::OneByte,
        };
        let at = header.write(buf).ok()?;
        let mut end = at + p.data.len();
        buf.get_mut(at..end)?.copy_from_slice(&p.data);
        // A key frame's parameter sets travel in a STAP-A: the SEI joins them (RFC 6184
        // section 5.7.1: a 16-bit size, then the NAL unit).
        let frame = self.clip.layers().get(layer)?.frame(s.frame);
        if let Some(source) = self.config.source
            && frame.key
            && s.payload == 0
            && p.data
                .first()
                .is_some_and(|b| b & 0x1f == chorus_engine::codecs::h264::STAP_A)
        {
            let sei = super::source_sei(source);
            let size = (sei.len() as u16).to_be_bytes();
            buf.get_mut(end..end + 2)?.copy_from_slice(&size);
            buf.get_mut(end + 2..end + 2 + sei.len())?
                .copy_from_slice(&sei);
            end += 2 + sei.len();
        }
        Some(end)
    }

    fn write_media(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        layer: usize,
        frame: u64,
        payload: u16,
        timestamp: u32,
    ) -> Option<(usize, PacketKind)> {
        let seq = self.layers.get(layer)?.seq;
        let sent = Sent {
            seq,
            frame,
            payload,
            timestamp,
            abs_send: abs_send_time(self.epoch, now),
            valid: true,
        };
        let len = self.write_rtp(buf, layer, seq, &sent)?;
        // INVARIANT: queued `Media` items name a layer and payload that exist (`handle_timeout`).
        let payload_len = self.clip.layers()[layer].frame(frame).payloads[usize::from(payload)]
            .data
            .len();
        // INVARIANT: `write_rtp` above returned Some, so `layer` exists.
        let l = &mut self.layers[layer];
        l.history[usize::from(seq) % HISTORY] = sent;
        l.seq = seq.wrapping_add(1);
        l.packets = l.packets.wrapping_add(1);
        l.octets = l.octets.wrapping_add(payload_len as u32);
        self.counters.packets += 1;
        Some((len, PacketKind::Rtp))
    }

    fn write_resend(
        &mut self,
        buf: &mut [u8],
        layer: usize,
        sent: Sent,
    ) -> Option<(usize, PacketKind)> {
        let len = self.write_rtp(buf, layer, sent.seq, &sent)?;
        let len = match &self.config.rtx {
            Some((pt, ssrcs)) => {
                let rtx = RtxConfig {
                    ssrc: *ssrcs.get(layer)?,
                    pt: *pt,
                };
                // INVARIANT: `write_rtp` above returned Some, so `layer` exists.
                let l = &mut self.layers[layer];
                let n = rtx::wrap_in_place(buf, len, rtx, l.rtx_seq)?;
                l.rtx_seq = l.rtx_seq.wrapping_add(1);
                n
            }
            None => len,
        };
        self.counters.retransmitted += 1;
        Some((len, PacketKind::Rtp))
    }

    fn write_report(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        layer: usize,
    ) -> Option<(usize, PacketKind)> {
        let l = self.layers.get(layer)?;
        let ssrc = *self.config.ssrcs.get(layer)?;
        // The RTP time of `now` on this layer's timeline.
        let since = now.saturating_duration_since(self.start);
        let ticks = (since.as_micros() * 90 / 1_000) as u32;
        let info = SenderInfo {
            ssrc,
            ntp: self.ntp.ntp(now),
            rtp_timestamp: l.ts_base.wrapping_add(ticks),
            packet_count: l.packets,
            octet_count: l.octets,
        };
        let mut b = CompoundBuilder::new(buf);
        b.append(|out| SenderReport::write(out, &info, &[]))
            .ok()?
            .append(|out| SourceDescription::write_cname(out, ssrc, self.config.cname.as_bytes()))
            .ok()?;
        let len = b.len();
        self.counters.reports += 1;
        Some((len, PacketKind::Rtcp))
    }
}
