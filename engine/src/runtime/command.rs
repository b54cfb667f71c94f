//! What the control side tells a core, and what a core tells the control side.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use super::leg::MovingLeg;
pub use crate::mixer::AudioFormat;
use crate::rtp::Pt;
pub use crate::sfu::{ExtensionIds, ProducerConfig, VideoCodec};
use crate::srtp::SrtpSuite;

/// A media core, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub u16);

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core{}", self.0)
    }
}

/// A media leg (one caller's media session), named by the control side; unique per engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg{}", self.0)
    }
}

/// A conference, named by the control side; its members on one core are mixed there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId(pub u32);

impl fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conf{}", self.0)
    }
}

/// SRTP master key material for one direction (RFC 4568 `inline:` key and salt).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// The crypto suite.
    pub suite: SrtpSuite,
    /// Master key (16 or 32 bytes).
    pub key: Vec<u8>,
    /// Master salt (14 or 12 bytes).
    pub salt: Vec<u8>,
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach logs.
        f.debug_struct("SrtpKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// An RFC 4733 `telephone-event` payload type negotiated for a leg, with its clock rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEventPt {
    /// The payload type the remote sends its events with.
    pub pt: Pt,
    /// Its RTP clock rate (8000 or 48000): durations are in these units.
    pub clock_rate: u32,
}

/// Everything a core needs to create a leg. Leg state travels as data, so a leg can be
/// created on one core and re-created on another.
#[derive(Clone, Debug)]
pub struct LegConfig {
    /// The leg's id.
    pub id: LegId,
    /// Where to send RTP (from the remote SDP), if known yet.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP when not multiplexed (default: RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// Keys to decrypt what the remote sends; None for plain RTP.
    pub srtp_in: Option<SrtpKey>,
    /// Keys to encrypt what we send; None for plain RTP.
    pub srtp_out: Option<SrtpKey>,
    /// The SSRC the remote announced (a=ssrc), if any.
    pub remote_ssrc: Option<u32>,
    /// Symmetric RTP: send to wherever the first authenticated packet came from (callers
    /// behind NAT).
    pub latch: bool,
    /// Report the leg inactive after this long without RTP or RTCP from the remote.
    pub inactivity_timeout: Option<Duration>,
    /// RTP clock rate of what the remote sends (for jitter), e.g. 8000 for G.711.
    pub clock_rate: u32,
    /// The SSRC the engine uses in RTCP reports to this leg.
    pub local_ssrc: u32,
    /// CNAME in the engine's RTCP SDES to this leg.
    pub cname: String,
    /// The `telephone-event` payload types the remote may send (RFC 4733); their packets are
    /// reported as `Event::Dtmf`, one per key press.
    pub telephone_events: Vec<TelephoneEventPt>,
    /// Whether RTP may be sent to the remote (false: the call starts on hold).
    pub send: bool,
    /// The negotiated audio codec and payload types, for mixing (None: forwarding only).
    pub audio: Option<AudioFormat>,
    /// Send silence while nothing else goes to the leg (outside a conference, no prompt, no
    /// forwarded media, no DTMF), so the remote gets a steady stream: SBC media timeouts, NAT
    /// bindings and phones' jitter buffers expect one, and a caller waiting in an IVR hears
    /// the line stay open. Off: the leg sends only what it is given.
    pub idle_silence: bool,
    /// How engine-made audio sent to this leg alone (prompts, clips, idle silence) carries
    /// silence.
    pub silence: SilenceSend,
    /// Tones (Hz) to watch for in what the leg receives: the onset of each burst of one is
    /// reported as `Event::ToneOnset` (the load generator's check of which talkers a caller
    /// hears, and when). Needs `audio`; ignored when its decoder cannot take the tones.
    pub tone_probe: Option<Vec<f32>>,
    /// Which of the core's socket pairs to use (index into `Engine::media_addrs`), so the
    /// control side knows the local address for its SDP answer without a round trip; None:
    /// the core picks round-robin.
    pub pair: Option<u16>,
}

/// A codec a leg takes video in, with its payload types on that leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoReceiveCodec {
    /// The codec.
    pub codec: VideoCodec,
    /// Its payload type on the leg.
    pub pt: Pt,
    /// Its RTX payload type (RFC 4588), if negotiated: retransmissions go there.
    pub rtx_pt: Option<Pt>,
}

/// What video a leg takes from its conference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoLayout {
    /// One stream per other publisher (a WebRTC-style client with several m-lines or SSRCs).
    #[default]
    All,
    /// One stream that follows the conference's active speaker (a SIP video endpoint with one
    /// m=video and one decoder).
    ActiveSpeaker,
}

/// A leg's negotiated video stream, in the engine's own terms (signaling fills it from its
/// SDP answer). Video has its own remote address (the m=video port), its own SRTP keys (its
/// own SDES keys per m-line), and what the SFU needs to forward it.
#[derive(Clone, Debug)]
pub struct VideoConfig {
    /// Where to send video RTP (the remote's m=video address). Must differ from the audio
    /// address: audio and video bundled on one port are not demultiplexed yet.
    pub remote_rtp: SocketAddr,
    /// Where to send video RTCP when not multiplexed (default: RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the video port (RFC 5761).
    pub rtcp_mux: bool,
    /// Keys to decrypt the video the remote sends; None for plain RTP.
    pub srtp_in: Option<SrtpKey>,
    /// Keys to encrypt the video we send; None for plain RTP.
    pub srtp_out: Option<SrtpKey>,
    /// Which of the core's socket pairs receives the video (index into
    /// `Engine::media_addrs`); None: the leg's own pair, told apart from its audio by the
    /// remote video address.
    pub pair: Option<u16>,
    /// What the remote sends (codec, payload type, simulcast encodings by SSRC or RID, RTX,
    /// feedback it takes); None: it only receives.
    pub producer: Option<ProducerConfig>,
    /// The codecs the remote takes, in its order of preference; empty: it only sends.
    pub receive: Vec<VideoReceiveCodec>,
    /// One stream per publisher or one that follows the speaker.
    pub layout: VideoLayout,
    /// The tallest picture it wants.
    pub max_height: u16,
    /// Its bandwidth cap for all the video it receives, in bits/s (shared equally among its
    /// streams); None: no cap but what its REMB says.
    pub bandwidth_bps: Option<u32>,
    /// Its header extension ids that the SFU carries across (what it receives is renumbered
    /// to these; its producer's `extensions` are what it sends).
    pub extensions: ExtensionIds,
}

/// How a leg's engine-made audio carries silence (what phone-network gateways and phones do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SilenceSend {
    /// Silent frames are encoded and sent like any other (a continuous stream).
    #[default]
    Audio,
    /// RFC 3389: a comfort noise packet when silence starts and every `CN_REFRESH_TICKS`
    /// ticks after, nothing in between (the timestamp runs on); the next audio packet starts a
    /// talkspurt (marker bit). Needs the leg's `AudioFormat::cn_pt`, else silence is audio.
    ComfortNoise,
    /// Opus DTX: the encoder's DTX frames are not sent (the timestamp runs on); other codecs
    /// send audio.
    Dtx,
}

/// Ticks between comfort noise packets during silence (200 ms at 20 ms).
pub const CN_REFRESH_TICKS: u32 = 10;

impl LegConfig {
    /// A plain-RTP leg with latching on and nothing else set.
    pub fn new(id: LegId) -> Self {
        LegConfig {
            id,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: true,
            srtp_in: None,
            srtp_out: None,
            remote_ssrc: None,
            latch: true,
            inactivity_timeout: None,
            clock_rate: 8000,
            // A fixed odd multiplier spreads consecutive ids over the SSRC space.
            local_ssrc: id.0.wrapping_mul(0x9e37_79b1) | 1,
            cname: format!("{id}@chorus"),
            telephone_events: Vec::new(),
            send: true,
            audio: None,
            idle_silence: false,
            tone_probe: None,
            silence: SilenceSend::Audio,
            pair: None,
        }
    }
}

/// What a renegotiation changes on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegUpdate {
    /// The leg.
    pub id: LegId,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP (None: RTP port + 1, or the RTP address with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    /// New SRTP keys (inbound, outbound) when the offer/answer changed them; None keeps the
    /// current contexts, so an unchanged key keeps its rollover counter and replay window.
    pub srtp: Option<(Option<SrtpKey>, Option<SrtpKey>)>,
    /// Whether RTP may be sent to the remote (false while it holds the call: sendonly or
    /// inactive from its side). RTCP continues either way (RFC 3264 5.1).
    pub send: bool,
    /// The audio format from the new answer (a codec change rebuilds the leg's mixer path);
    /// None keeps the current one.
    pub audio: Option<AudioFormat>,
}

/// A command to a core.
#[derive(Debug)]
pub enum Command {
    /// Create a leg; answered by `LegCreated` or `LegRejected`.
    CreateLeg(Box<LegConfig>),
    /// Apply a renegotiation (re-INVITE, UPDATE): new remote address, keys, direction.
    UpdateLeg(Box<LegUpdate>),
    /// Remove a leg; answered by `LegRemoved`.
    RemoveLeg(LegId),
    /// Forward the RTP received on `from` to `to` (both on this core).
    Connect {
        /// Source leg.
        from: LegId,
        /// Destination leg.
        to: LegId,
    },
    /// Stop forwarding `from` to `to`.
    Disconnect {
        /// Source leg.
        from: LegId,
        /// Destination leg.
        to: LegId,
    },
    /// Mix a leg into a conference on this core (created on first join): it hears the
    /// conference's mix and is heard in it. Answered by `LegRejected` if the leg has no audio
    /// format this build can decode and encode.
    JoinConference {
        /// The leg.
        leg: LegId,
        /// The conference.
        conference: ConferenceId,
    },
    /// Take a leg out of its conference (a conference left empty is dropped).
    LeaveConference(LegId),
    /// Mute (not heard) and deafen (hears nothing) a conference leg.
    SetLegAudio {
        /// The leg.
        leg: LegId,
        /// Not mixed into what others hear.
        mute: bool,
        /// Sent nothing.
        deaf: bool,
    },
    /// Play a clip (16 kHz mono) to one leg, replacing what it played; over the conference
    /// mix if the leg is in one. Answered by `PlayDone`.
    Play {
        /// The leg.
        leg: LegId,
        /// The samples.
        clip: Arc<[i16]>,
        /// Reported back in `PlayDone`.
        id: u32,
    },
    /// Send keys to a leg as RFC 4733 events (100 ms each, 60 ms apart) in its outbound
    /// stream, with the `telephone-event` payload type it negotiated; a leg without one
    /// sends nothing (counted as `dtmf_not_sent`).
    SendDtmf {
        /// The leg.
        leg: LegId,
        /// `0`-`9`, `*`, `#`, `A`-`D`; other characters are skipped.
        keys: String,
    },
    /// Stop a leg's playback (answered by `PlayDone` with `completed: false`).
    StopPlay(LegId),
    /// Play a clip to every member of a conference (join and leave tones), mixed into every
    /// mix of the conference.
    PlayConference {
        /// The conference.
        conference: ConferenceId,
        /// The samples (16 kHz mono).
        clip: Arc<[i16]>,
    },
    /// Start (a sink) or stop (None) recording a conference's full mix (16 kHz frames, one
    /// per tick) into a sink the control side drains.
    Record {
        /// The conference.
        conference: ConferenceId,
        /// Where the frames go.
        sink: Option<Arc<crate::mixer::RecordingSink>>,
    },
    /// Volume of a conference leg: what it hears (listen) and what it says (talk), in dB
    /// (-12..=12; 0 is unchanged). A leg listening at another volume gets its own encode.
    SetLegVolume {
        /// The leg.
        leg: LegId,
        /// Gain on the mix it hears.
        listen_db: i8,
        /// Gain on its voice in the mix.
        talk_db: i8,
    },
    /// Make this core's part of a conference exchange partial mixes with its parts on other
    /// cores (the same bus to every core that has members), or stop (None).
    SpanConference {
        /// The conference.
        conference: ConferenceId,
        /// The queues between the cores.
        bus: Option<Arc<crate::mixer::MixBus>>,
    },
    /// Take a leg off this core to move it to another; answered by `LegDetached`, which
    /// carries the leg's state for `AttachLeg` on the new core.
    DetachLeg(LegId),
    /// Put a leg detached from another core on this one, on socket pair `pair` (None:
    /// round-robin); answered by `LegMoved` with its new local addresses (the remote must be
    /// told them, e.g. by re-INVITE) or `LegRejected`.
    AttachLeg {
        /// The leg's state, from `LegDetached`.
        leg: MovingLeg,
        /// Which of this core's socket pairs to use.
        pair: Option<u16>,
    },
    /// Ask for a leg's counters; answered by `LegStats`.
    QueryLeg(LegId),
    /// Give a leg video (an offer/answer with m=video), replace it (a renegotiation), or take
    /// it away (None). Answered by `VideoReady` with the local video addresses, or
    /// `VideoRejected` (bad keys, no such pair, audio and video on one remote address, an
    /// address another leg uses; the leg is then left without video, its audio untouched). A
    /// conference member's video joins its conference's router at once. Video is not
    /// latched (it goes to `VideoConfig::remote_rtp`) and does not move with `DetachLeg`.
    SetVideo {
        /// The leg.
        leg: LegId,
        /// Its video.
        video: Option<Box<VideoConfig>>,
    },
    /// Stop the core (legs are dropped; their final stats are reported).
    Shutdown,
}

/// Per-leg counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets accepted (decrypted and valid).
    pub rtp_in: u64,
    /// RTP payload bytes accepted.
    pub rtp_bytes_in: u64,
    /// RTCP packets accepted.
    pub rtcp_in: u64,
    /// RTP packets sent to this leg.
    pub rtp_out: u64,
    /// RTCP packets sent to this leg.
    pub rtcp_out: u64,
    /// Packets that failed SRTP/SRTCP authentication.
    pub auth_failed: u64,
    /// Replayed packets (already seen, or older than the replay window).
    pub replayed: u64,
    /// Malformed RTP/RTCP (bad version, truncated, bad lengths).
    pub malformed: u64,
    /// Other SRTP refusals (unknown SSRC beyond the table, key lifetime).
    pub srtp_other: u64,
    /// Outgoing packets dropped (no remote address yet, protect failed, no send buffer).
    pub out_dropped: u64,
    /// Times the remote address was latched or re-latched.
    pub latched: u64,
    /// RTP packets lost from the remote (RFC 3550 A.3: expected - received; negative with
    /// duplicates).
    pub lost: i64,
    /// Interarrival jitter of the remote's stream (RFC 3550 A.8), in microseconds.
    pub jitter_us: u64,
    /// Duplicate RTP packets from the remote.
    pub duplicates: u64,
    /// RTP packets that arrived out of order.
    pub reordered: u64,
    /// DTMF key presses received as RFC 4733 events (each reported once).
    pub dtmf_digits: u64,
    /// Other RFC 4733 events received (flash, tones): counted, not reported.
    pub dtmf_other_events: u64,
    /// Video RTP packets accepted from the leg (decrypted, handed to the SFU).
    pub video_rtp_in: u64,
    /// Video RTCP packets accepted from the leg.
    pub video_rtcp_in: u64,
    /// Video RTP and RTCP packets sent to the leg (forwarded, retransmitted, reports).
    pub video_out: u64,
    /// Video packets from the leg dropped (SRTP refusal, malformed, not RTP) or not sent to
    /// it (no buffer, protect failed).
    pub video_dropped: u64,
}

/// An event from a core.
#[derive(Debug)]
pub enum Event {
    /// A leg exists and listens at these local addresses.
    LegCreated {
        /// The leg.
        id: LegId,
        /// The core that owns it.
        core: CoreId,
        /// Local RTP address (for the SDP answer).
        rtp: SocketAddr,
        /// Local RTCP address (same as `rtp` with rtcp-mux).
        rtcp: SocketAddr,
    },
    /// A leg could not be created.
    LegRejected {
        /// The leg.
        id: LegId,
        /// Why.
        reason: String,
    },
    /// A leg left this core (`DetachLeg`); its state goes to the new core in `AttachLeg`.
    LegDetached {
        /// The leg's state: SRTP contexts (rollover counters, replay windows), outbound
        /// numbering, reception statistics and counters.
        leg: MovingLeg,
    },
    /// A leg moved here from another core and listens at these local addresses.
    LegMoved {
        /// The leg.
        id: LegId,
        /// The core that owns it now.
        core: CoreId,
        /// Local RTP address (for the new SDP offer to the remote).
        rtp: SocketAddr,
        /// Local RTCP address (same as `rtp` with rtcp-mux).
        rtcp: SocketAddr,
    },
    /// A command named a leg this core does not have.
    UnknownLeg {
        /// The leg.
        id: LegId,
    },
    /// The leg's remote address was learned from its first authenticated packet.
    Latched {
        /// The leg.
        id: LegId,
        /// Where its media comes from (and now goes to).
        remote: SocketAddr,
    },
    /// Answer to `QueryLeg`.
    LegStats {
        /// The leg.
        id: LegId,
        /// Its counters.
        stats: LegStats,
    },
    /// A leg was removed.
    LegRemoved {
        /// The leg.
        id: LegId,
        /// Its final counters.
        stats: LegStats,
    },
    /// A DTMF key press from the leg's RFC 4733 events, or heard as tones in its audio
    /// (reported once per press, when it ends).
    Dtmf {
        /// The leg.
        id: LegId,
        /// The key: `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// How long it was held, in milliseconds.
        duration_ms: u32,
        /// Detected in the audio (a trunk that sends no RFC 4733 events), not from events.
        inband: bool,
    },
    /// A conference's talkers changed (who is talking now, loudest first).
    Talkers {
        /// The conference.
        conference: ConferenceId,
        /// Its talkers.
        talkers: Vec<LegId>,
    },
    /// A playback sent its first frame (at the tick `at`).
    PlayStarted {
        /// The leg.
        leg: LegId,
        /// The id given in `Play`.
        id: u32,
        /// The tick that sent it.
        at: std::time::Instant,
    },
    /// A burst of one of the leg's `tone_probe` tones started arriving.
    ToneOnset {
        /// The leg.
        leg: LegId,
        /// Index of the tone in `LegConfig::tone_probe`.
        tone: u8,
        /// Arrival of its first frame.
        at: std::time::Instant,
    },
    /// A playback ended.
    PlayDone {
        /// The leg.
        leg: LegId,
        /// The id given in `Play`.
        id: u32,
        /// Played to the end (false: replaced, stopped, or the leg left).
        completed: bool,
    },
    /// A leg's video was refused (`SetVideo`, or its producer when it joined a conference's
    /// router); the leg is left without video (or without a producer), its audio untouched,
    /// so the control side can answer with m=video port 0 rather than end the call.
    VideoRejected {
        /// The leg.
        id: LegId,
        /// Why.
        reason: String,
    },
    /// A leg's video (`SetVideo`) listens at these local addresses (for the m=video line).
    VideoReady {
        /// The leg.
        id: LegId,
        /// Local video RTP address.
        rtp: SocketAddr,
        /// Local video RTCP address (same as `rtp` with rtcp-mux).
        rtcp: SocketAddr,
    },
    /// A receiver's video stream now carries another publisher or simulcast encoding (after
    /// that source's key frame): layer and speaker changes, for logs and tests.
    VideoSwitched {
        /// The receiving leg.
        leg: LegId,
        /// The leg whose video it now gets.
        source: LegId,
        /// The simulcast encoding index (0: lowest).
        encoding: u8,
    },
    /// No RTP or RTCP from the remote for longer than the leg's inactivity timeout.
    Inactive {
        /// The leg.
        id: LegId,
        /// How long it has been silent.
        idle: Duration,
    },
}
