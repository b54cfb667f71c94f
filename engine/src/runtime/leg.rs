//! A leg as its core holds it: addresses, SRTP contexts, forwarding targets, counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::command::{
    AudioFormat, ConferenceId, LegConfig, LegId, LegStats, SrtpKey, TelephoneEventPt,
};
use super::dtmf_receiver::DtmfReceiver;
use super::dtmf_sender::DtmfSender;
use super::flow::{FlowKey, LegSlot};
use super::io::SockId;
use super::seq_rewriter::SeqRewriter;
use crate::mixer::{LegAudio, Player, PrivateEncoder};
use crate::rtp::{Pt, RtpStreamRecv, Ssrc};
use crate::srtp::{SrtpContext, SrtpError};

/// Interval between RTCP reports to a leg (RFC 3550's 5 s minimum for a small session).
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A leg between two cores: everything of its media state that is not the old core's
/// (sockets, flow-table keys, forwarding links are dropped on detach and made anew on attach).
pub struct MovingLeg(pub(crate) Box<Leg>);

impl MovingLeg {
    /// A leg that was never on a core, from its configuration (`AttachLeg` then works like
    /// `CreateLeg` without the choice of `cfg.pair`).
    pub fn new(cfg: &LegConfig, now: Instant) -> Result<Self, SrtpError> {
        Ok(Leg::new(cfg, SockId(0), SockId(0), now)?.detach())
    }

    /// The leg's id.
    pub fn id(&self) -> LegId {
        self.0.id
    }
}

impl std::fmt::Debug for MovingLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SRTP contexts hold keys: only the id reaches logs.
        f.debug_tuple("MovingLeg").field(&self.0.id).finish()
    }
}

/// Key tones detected in a G.711 leg's audio (ITU-T Q.24 timing, `codecs::dtmf_detect`),
/// decoded on the packet path from each packet of the audio payload type.
pub(crate) struct InbandDtmf {
    pt: Pt,
    law: chorus_codecs::g711::Law,
    detector: chorus_codecs::dtmf_detect::DtmfDetector,
    pcm: Vec<i16>,
}

impl InbandDtmf {
    /// Detection for a leg whose audio is `format`, if that is G.711 and the leg has no
    /// `telephone-event` (`has_events`).
    fn for_format(format: Option<AudioFormat>, has_events: bool) -> Option<Self> {
        use chorus_codecs::AudioCodec;
        let format = format?;
        let law = match format.codec {
            AudioCodec::Pcmu => chorus_codecs::g711::Law::Mu,
            AudioCodec::Pcma => chorus_codecs::g711::Law::A,
            _ => return None,
        };
        if has_events {
            return None;
        }
        Some(InbandDtmf {
            pt: format.pt,
            law,
            detector: chorus_codecs::dtmf_detect::DtmfDetector::new(8_000).ok()?,
            pcm: Vec::with_capacity(480),
        })
    }

    /// Feeds one packet; returns the key presses that ended with it.
    pub fn handle(&mut self, pt: Pt, payload: &[u8], mut ended: impl FnMut(char, u32)) {
        if pt != self.pt {
            return;
        }
        self.pcm.clear();
        chorus_codecs::g711::decode_into(self.law, payload, &mut self.pcm);
        self.detector.process(&self.pcm);
        while let Some(event) = self.detector.poll_event() {
            if let chorus_codecs::dtmf_detect::DtmfEvent::KeyUp { digit, duration_ms } = event {
                ended(digit, duration_ms);
            }
        }
    }
}

/// One leg on a core.
pub(crate) struct Leg {
    pub id: LegId,
    pub rtp_sock: SockId,
    pub rtcp_sock: SockId,
    pub rtcp_mux: bool,
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    /// RTCP address given explicitly (a=rtcp), kept when the RTP address is latched.
    pub rtcp_explicit: bool,
    /// Flow keys this leg is reachable by, as inserted in the flow table.
    pub flow_rtp: Option<FlowKey>,
    pub flow_rtcp: Option<FlowKey>,
    pub latch: bool,
    /// The first authenticated packet has arrived (and, with `latch`, fixed the remote).
    pub latched: bool,
    pub srtp_in: Option<SrtpContext>,
    pub srtp_out: Option<SrtpContext>,
    /// The keys of `srtp_in` and `srtp_out`, so a renegotiation rebuilds only a context
    /// whose key changed.
    srtp_keys: (Option<SrtpKey>, Option<SrtpKey>),
    /// RTP may be sent to the remote (not held).
    pub send: bool,
    pub remote_ssrc: Option<u32>,
    /// Legs that receive this leg's RTP.
    pub targets: Vec<LegSlot>,
    /// Legs whose RTP this leg receives (to unlink on removal).
    pub sources: Vec<LegSlot>,
    pub stats: LegStats,
    pub last_rx: Instant,
    pub inactivity_timeout: Option<Duration>,
    pub inactive_reported: bool,
    /// Reception statistics of the remote's RTP stream (RFC 3550 Appendix A).
    pub recv: Option<RtpStreamRecv>,
    pub clock_rate: u32,
    pub local_ssrc: u32,
    pub cname: Box<[u8]>,
    /// When the next RTCP report to this leg is due.
    pub next_report: Instant,
    /// What the leg's RTP stream toward the remote has carried, for its sender reports:
    /// the timestamp of the last packet, payload octets in all, and whether any went out
    /// since the last report (then the report is an SR, else an RR).
    pub sent: SentStream,
    /// Numbering of the RTP the engine sends to this leg (its own SSRC, continuous).
    pub out_numbering: SeqRewriter,
    /// The remote's RFC 4733 payload types.
    pub telephone_events: Box<[TelephoneEventPt]>,
    /// Key presses from those packets.
    pub dtmf: DtmfReceiver,
    /// The negotiated audio format (for mixing).
    pub audio_format: Option<AudioFormat>,
    /// The leg's conference and its audio path there.
    pub conference: Option<(ConferenceId, Box<LegAudio>)>,
    /// Not mixed into what others hear.
    pub muted: bool,
    /// Sent no mix.
    pub deaf: bool,
    /// Gain on the mix this leg hears, in 1/256 (256: unchanged).
    pub listen_gain_q8: i32,
    /// In-band DTMF detection on the leg's G.711 audio, when it negotiated no
    /// `telephone-event` (trunks that send key tones in the audio).
    pub inband_dtmf: Option<Box<InbandDtmf>>,
    /// The tones watched for in what the remote sends (`LegConfig::tone_probe`), and the
    /// probe for the current audio format.
    pub tone_freqs: Option<Vec<f32>>,
    pub probe: Option<Box<crate::mixer::ToneProbe>>,
    /// Keys being sent to the remote as RFC 4733 events.
    pub dtmf_out: Option<Box<DtmfSender>>,
    /// A clip playing to this leg.
    pub player: Option<Player>,
    /// Send silence while nothing else goes out (`LegConfig::idle_silence`).
    pub idle_silence: bool,
    /// How its engine-made audio carries silence (`LegConfig::silence`).
    pub silence: crate::runtime::SilenceSend,
    /// Ticks of silence sent as CN or DTX so far (0: in a talkspurt); the next audio packet
    /// after some carries the marker bit.
    pub silent_ticks: u32,
    /// The leg's own encoder (prompts, private mixes), made on first use.
    pub private_encoder: Option<PrivateEncoder>,
    /// Sequence number and timestamp of the audio the engine originates for this leg,
    /// before its outbound renumbering.
    pub audio_out: (u16, u32),
    /// Its video stream, if it negotiated one.
    pub video: Option<Box<super::leg_video::LegVideo>>,
    /// Consumer SSRCs given to its video so far: each new consumer takes a new one, even
    /// across `SetVideo` replacements, so one outbound SRTP context never sees an SSRC (and
    /// its sequence numbers) start over.
    pub video_ssrcs_used: u32,
    /// Its video's SRTP contexts while it has no video on a core (see `VideoSrtp`).
    pub video_srtp: super::leg_video::VideoSrtp,
}

pub(super) fn context(key: &Option<SrtpKey>) -> Result<Option<SrtpContext>, SrtpError> {
    key.as_ref()
        .map(|k| SrtpContext::new(k.suite, &k.key, &k.salt))
        .transpose()
}

/// A leg's outbound RTP as its sender reports describe it (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentStream {
    /// The RTP timestamp of the last packet sent.
    pub last_ts: u32,
    /// Payload octets sent (header and padding not counted).
    pub octets: u64,
    /// Something was sent since the last report.
    pub since_report: bool,
}

impl Leg {
    /// Builds a leg from its configuration on the given sockets.
    pub fn new(
        cfg: &LegConfig,
        rtp_sock: SockId,
        rtcp_sock: SockId,
        now: Instant,
    ) -> Result<Self, SrtpError> {
        let rtcp_sock = if cfg.rtcp_mux { rtp_sock } else { rtcp_sock };
        let mut leg = Leg {
            id: cfg.id,
            rtp_sock,
            rtcp_sock,
            rtcp_mux: cfg.rtcp_mux,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_explicit: cfg.remote_rtcp.is_some(),
            flow_rtp: None,
            flow_rtcp: None,
            latch: cfg.latch,
            latched: false,
            srtp_in: context(&cfg.srtp_in)?,
            srtp_out: context(&cfg.srtp_out)?,
            srtp_keys: (cfg.srtp_in.clone(), cfg.srtp_out.clone()),
            send: cfg.send,
            remote_ssrc: cfg.remote_ssrc,
            targets: Vec::new(),
            sources: Vec::new(),
            stats: LegStats::default(),
            last_rx: now,
            inactivity_timeout: cfg.inactivity_timeout,
            inactive_reported: false,
            recv: None,
            clock_rate: cfg.clock_rate.max(1),
            local_ssrc: cfg.local_ssrc,
            cname: cfg.cname.as_bytes()[..cfg.cname.len().min(255)].into(),
            // Spread the legs' reports over the interval instead of bursting them together.
            next_report: now + REPORT_INTERVAL.mul_f64(0.5 + f64::from(cfg.id.0 % 97) / 97.0),
            sent: SentStream::default(),
            out_numbering: SeqRewriter::new(cfg.clock_rate.max(1)),
            telephone_events: cfg.telephone_events.as_slice().into(),
            dtmf: DtmfReceiver::new(),
            audio_format: cfg.audio,
            conference: None,
            muted: false,
            deaf: false,
            listen_gain_q8: 256,
            inband_dtmf: None,
            tone_freqs: cfg.tone_probe.clone(),
            probe: None,
            dtmf_out: None,
            player: None,
            idle_silence: cfg.idle_silence,
            silence: cfg.silence,
            silent_ticks: 0,
            private_encoder: None,
            audio_out: (0, 0),
            video: None,
            video_ssrcs_used: 0,
            video_srtp: Default::default(),
        };
        if let Some(rtp) = cfg.remote_rtp {
            leg.set_remote(rtp, cfg.remote_rtcp);
        }
        leg.renew_detectors();
        Ok(leg)
    }

    /// What watches the leg's incoming audio, for its current format: in-band key tones
    /// (G.711 without `telephone-event`) and the tone probe, if it wants one.
    pub fn renew_detectors(&mut self) {
        let has_events = !self.telephone_events.is_empty();
        self.inband_dtmf = InbandDtmf::for_format(self.audio_format, has_events).map(Box::new);
        self.probe = match (&self.tone_freqs, self.audio_format) {
            (Some(freqs), Some(f)) => {
                crate::mixer::ToneProbe::new(f.codec, f.pt, freqs).map(Box::new)
            }
            _ => None,
        };
    }

    /// Whether RTP of payload type `pt` can be this leg's audio: its codec, comfort noise or
    /// telephone-event types (any type when it has no audio format).
    pub fn takes_audio_pt(&self, pt: Pt) -> bool {
        let Some(format) = &self.audio_format else {
            return true;
        };
        pt == format.pt
            || format.cn_pt == Some(pt)
            || self.telephone_events.iter().any(|t| t.pt == pt)
    }

    /// Takes the leg off its core: drops what belongs to the core (flows, links) so that
    /// another core can adopt it with `rehome`.
    pub fn detach(mut self) -> MovingLeg {
        self.flow_rtp = None;
        self.flow_rtcp = None;
        self.targets.clear();
        self.sources.clear();
        // Video is bound to the old core's sockets and router: the control side gives it
        // again (`SetVideo`) with the re-INVITE that tells the remote the new addresses. Its
        // SRTP contexts go with the leg, to continue under unchanged keys.
        if let Some(v) = self.video.take() {
            self.video_srtp = v.into_srtp();
        }
        MovingLeg(Box::new(self))
    }

    /// Puts a moved leg on this core's sockets. A latching leg waits for its remote's first
    /// packet at the new address (the remote has to be told it first).
    pub fn rehome(&mut self, rtp_sock: SockId, rtcp_sock: SockId) {
        self.rtp_sock = rtp_sock;
        self.rtcp_sock = if self.rtcp_mux { rtp_sock } else { rtcp_sock };
        self.latched = false;
    }

    /// New SRTP keys from a renegotiation (None: plain RTP from now on). Only a context
    /// whose key changed is rebuilt: one whose key stayed goes on (RFC 4568 7.1.4), since a
    /// new context under the same key would start its indexes over and reuse keystream.
    pub fn rekey(
        &mut self,
        srtp_in: &Option<SrtpKey>,
        srtp_out: &Option<SrtpKey>,
    ) -> Result<(), SrtpError> {
        let i = (self.srtp_keys.0 != *srtp_in)
            .then(|| context(srtp_in))
            .transpose()?;
        let o = (self.srtp_keys.1 != *srtp_out)
            .then(|| context(srtp_out))
            .transpose()?;
        if let Some(i) = i {
            self.srtp_in = i;
            self.srtp_keys.0 = srtp_in.clone();
        }
        if let Some(o) = o {
            self.srtp_out = o;
            self.srtp_keys.1 = srtp_out.clone();
        }
        Ok(())
    }

    /// Sets where media goes; RTCP defaults to the RTP address (mux) or RTP port + 1.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.remote_rtp = Some(rtp);
        if let Some(r) = rtcp {
            self.rtcp_explicit = true;
            self.remote_rtcp = Some(r);
        } else if !self.rtcp_explicit || self.remote_rtcp.is_none() {
            self.remote_rtcp = Some(if self.rtcp_mux {
                rtp
            } else {
                SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))
            });
        }
    }

    /// The flow keys for the current remote addresses.
    pub fn wanted_flows(&self) -> (Option<FlowKey>, Option<FlowKey>) {
        let rtp = self.remote_rtp.map(|remote| FlowKey {
            sock: self.rtp_sock,
            remote,
        });
        let rtcp = if self.rtcp_mux {
            None
        } else {
            self.remote_rtcp.map(|remote| FlowKey {
                sock: self.rtcp_sock,
                remote,
            })
        };
        (rtp, rtcp)
    }

    /// The clock rate of `pt` if it is one of the leg's `telephone-event` payload types.
    pub fn telephone_event_rate(&self, pt: Pt) -> Option<u32> {
        self.telephone_events
            .iter()
            .find(|t| t.pt == pt)
            .map(|t| t.clock_rate)
    }

    /// Feeds one accepted RTP packet to the reception statistics.
    pub fn account_rtp(&mut self, now: Instant, ssrc: u32, seq: u16, timestamp: u32) {
        let recv = match &mut self.recv {
            Some(r) if r.ssrc() == Ssrc(ssrc) => r,
            // A new SSRC (the remote restarted its stream) starts new statistics.
            _ => self
                .recv
                .insert(RtpStreamRecv::new(Ssrc(ssrc), self.clock_rate)),
        };
        recv.handle_packet(now, seq, timestamp);
    }

    /// Counters including the reception statistics.
    pub fn stats(&self) -> LegStats {
        let mut s = self.stats;
        if let Some(r) = &self.recv {
            s.lost = i64::from(r.cumulative_lost());
            s.jitter_us = u64::from(r.jitter_ticks()) * 1_000_000 / u64::from(self.clock_rate);
            s.duplicates = r.duplicates();
            s.reordered = r.reordered();
        }
        s
    }

    /// Counts an SRTP refusal on this leg.
    pub fn count_srtp_error(&mut self, e: SrtpError) {
        match e {
            SrtpError::AuthFailed => self.stats.auth_failed += 1,
            SrtpError::Replayed | SrtpError::TooOld => self.stats.replayed += 1,
            SrtpError::Malformed => self.stats.malformed += 1,
            _ => self.stats.srtp_other += 1,
        }
    }
}
