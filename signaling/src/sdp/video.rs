//! Video m-lines for the selective forwarding unit: which format (H.264 in packetization
//! mode 1, or VP8), its retransmission format (RFC 4588 `rtx`), the RTCP feedback
//! (RFC 4585 `a=rtcp-fb`), the RTP header extensions (RFC 8285 `a=extmap`), simulcast
//! (RFC 8853 `a=simulcast`, RFC 8851 `a=rid`) and the bandwidth caps (`b=AS`, RFC 3890
//! `b=TIAS`) both sides agree on.
//!
//! The SFU forwards without transcoding, so what matters is that every receiver can decode
//! what a publisher sends: one format per m-line, H.264 only in profiles the others accept,
//! at a level no higher than ours. Everything we do not support is left out of the answer
//! (an unknown `rtcp-fb` or `extmap` is not an error: the peer simply does not get it).
//!
//! [`answer_video`] answers an offered video m-line; [`offer_video`] writes our offer and
//! [`accept_video_answer`] reads the answer to it.

use std::fmt;
use std::net::SocketAddr;

use chorus_engine::rtp::Pt;

use super::attribute::Attribute;
use super::bandwidth::{Bandwidth, BandwidthKind};
use super::direction::Direction;
use super::error::SdpError;
use super::local_session::VideoSource;
use super::media::{MediaDescription, MediaKind};
use super::negotiated::{SrtpKeys, bitrate_bps};
use super::protocol::Protocol;
use super::rtpmap::Rtpmap;

/// The RTP clock of every video format here (RFC 6184, RFC 7741).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// A video format the SFU forwards (the engine's own type: what is negotiated here is what
/// its router is configured with).
pub use chorus_engine::sfu::VideoCodec;

/// The encoding name of `codec` in `a=rtpmap`.
pub fn encoding(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "H264",
        VideoCodec::Vp8 => "VP8",
    }
}

/// The video format an rtpmap names, if one we forward (at the 90 kHz clock).
fn codec_of(rtpmap: &Rtpmap) -> Option<VideoCodec> {
    if rtpmap.clock_rate != VIDEO_CLOCK_RATE {
        return None;
    }
    [VideoCodec::H264, VideoCodec::Vp8]
        .into_iter()
        .find(|&c| rtpmap.encoding.eq_ignore_ascii_case(encoding(c)))
}

/// The H.264 profiles told apart by `profile-level-id` (RFC 6184 section 8.1, Table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum H264Profile {
    /// Constrained Baseline: what WebRTC endpoints and openh264 send.
    ConstrainedBaseline,
    /// Baseline.
    Baseline,
    /// Main.
    Main,
    /// Extended.
    Extended,
    /// High.
    High,
    /// Anything else (High 10, 4:2:2, 4:4:4 ...).
    Other,
}

/// `profile-level-id`: profile_idc, the constraint-flag byte (profile-iop) and level_idc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProfileLevelId {
    /// profile_idc.
    pub profile_idc: u8,
    /// constraint_set0..5 flags, most significant bit first.
    pub profile_iop: u8,
    /// level_idc (31 is level 3.1).
    pub level_idc: u8,
}

impl ProfileLevelId {
    /// What an H.264 format without `profile-level-id` means: Baseline, level 1 (RFC 6184
    /// section 8.1).
    pub const IMPLIED: ProfileLevelId = ProfileLevelId {
        profile_idc: 0x42,
        profile_iop: 0x00,
        level_idc: 0x0a,
    };

    /// Parses six hex digits.
    pub fn parse(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 6 || !hex.is_ascii() {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(ProfileLevelId {
            profile_idc: byte(0)?,
            profile_iop: byte(2)?,
            level_idc: byte(4)?,
        })
    }

    /// The profile, by RFC 6184 Table 5 (the low two flag bits are reserved and ignored).
    pub fn profile(self) -> H264Profile {
        let iop = self.profile_iop;
        let set = |bit: u8| iop & (0x80 >> bit) != 0;
        match self.profile_idc {
            0x42 if set(1) => H264Profile::ConstrainedBaseline,
            0x42 => H264Profile::Baseline,
            0x4d if set(0) => H264Profile::ConstrainedBaseline,
            0x4d => H264Profile::Main,
            0x58 if set(0) && set(1) => H264Profile::ConstrainedBaseline,
            0x58 if set(0) => H264Profile::Baseline,
            0x58 => H264Profile::Extended,
            0x64 => H264Profile::High,
            _ => H264Profile::Other,
        }
    }
}

impl fmt::Display for ProfileLevelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_iop, self.level_idc
        )
    }
}

/// RTCP feedback both sides use (RFC 4585, RFC 5104, REMB, transport-wide CC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Feedback {
    /// `nack`: generic NACK.
    pub nack: bool,
    /// `nack pli`: picture loss indication.
    pub pli: bool,
    /// `ccm fir`: full intra request (RFC 5104).
    pub fir: bool,
    /// `goog-remb`: receiver estimated maximum bitrate.
    pub remb: bool,
    /// `transport-cc`: transport-wide congestion control feedback.
    pub transport_cc: bool,
}

impl Feedback {
    /// Every kind this module reads and writes.
    pub const ALL: Feedback = Feedback {
        nack: true,
        pli: true,
        fir: true,
        remb: true,
        transport_cc: true,
    };

    /// What the SFU acts on, and so negotiates by default: not `transport-cc`. The router
    /// neither sends transport-wide feedback to publishers nor estimates bandwidth from a
    /// subscriber's (it takes REMB), and a peer that agreed transport-cc stops sending REMB
    /// (a browser does), which would leave its streams without an estimate.
    pub const USED: Feedback = Feedback {
        transport_cc: false,
        ..Feedback::ALL
    };

    /// The feedback the m-line offers for `pt` (its own lines and the `*` wildcard).
    fn offered(media: &MediaDescription, pt: Pt) -> Feedback {
        let mut fb = Feedback::default();
        for value in media.attribute_values("rtcp-fb") {
            let mut fields = value.split_ascii_whitespace();
            let applies = fields
                .next()
                .is_some_and(|p| p == "*" || p.parse::<u8>().is_ok_and(|p| p == pt.0));
            if !applies {
                continue;
            }
            let kind = fields.next().unwrap_or_default().to_ascii_lowercase();
            let param = fields.next().map(str::to_ascii_lowercase);
            match (kind.as_str(), param.as_deref()) {
                ("nack", None) => fb.nack = true,
                ("nack", Some("pli")) => fb.pli = true,
                ("ccm", Some("fir")) => fb.fir = true,
                ("goog-remb", None) => fb.remb = true,
                ("transport-cc", None) => fb.transport_cc = true,
                _ => {}
            }
        }
        fb
    }

    fn and(self, other: Feedback) -> Feedback {
        Feedback {
            nack: self.nack && other.nack,
            pli: self.pli && other.pli,
            fir: self.fir && other.fir,
            remb: self.remb && other.remb,
            transport_cc: self.transport_cc && other.transport_cc,
        }
    }

    /// The `a=rtcp-fb` lines for `pt`.
    fn attributes(self, pt: Pt) -> Vec<Attribute> {
        [
            (self.nack, "nack"),
            (self.pli, "nack pli"),
            (self.fir, "ccm fir"),
            (self.remb, "goog-remb"),
            (self.transport_cc, "transport-cc"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, kind)| Attribute::new("rtcp-fb", format!("{pt} {kind}")))
        .collect()
    }
}

/// An RTP header extension the SFU reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// abs-send-time (for REMB bandwidth estimation).
    AbsSendTime,
    /// transport-wide sequence numbers (for transport-cc feedback).
    TransportCc,
    /// RFC 6464 client-to-mixer audio level.
    AudioLevel,
    /// RFC 8843 `mid`.
    Mid,
    /// RFC 8852 RTP stream ID (the simulcast `rid`).
    Rid,
    /// RFC 8852 repaired RTP stream ID (RTX of a simulcast layer).
    RepairedRid,
}

impl Extension {
    /// Every extension, in the order we offer them.
    pub const ALL: [Extension; 6] = [
        Extension::AbsSendTime,
        Extension::TransportCc,
        Extension::AudioLevel,
        Extension::Mid,
        Extension::Rid,
        Extension::RepairedRid,
    ];

    /// The ones negotiated by default: all but the transport-wide sequence numbers, which
    /// only serve transport-cc feedback ([`Feedback::USED`]).
    pub const USED: [Extension; 5] = [
        Extension::AbsSendTime,
        Extension::AudioLevel,
        Extension::Mid,
        Extension::Rid,
        Extension::RepairedRid,
    ];

    /// The extension's URI.
    pub fn uri(self) -> &'static str {
        match self {
            Extension::AbsSendTime => "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            Extension::TransportCc => {
                "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
            }
            Extension::AudioLevel => "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            Extension::Mid => "urn:ietf:params:rtp-hdrext:sdes:mid",
            Extension::Rid => "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            Extension::RepairedRid => "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        }
    }

    fn of(uri: &str) -> Option<Self> {
        Extension::ALL.into_iter().find(|e| e.uri() == uri)
    }
}

/// The header extensions in use and their ids (RFC 8285: 1-14 one-byte, up to 255 two-byte).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions(Vec<(Extension, u8)>);

impl Extensions {
    /// The id of `ext`, if negotiated.
    pub fn id(&self, ext: Extension) -> Option<u8> {
        self.0.iter().find(|(e, _)| *e == ext).map(|(_, id)| *id)
    }

    /// The ones among `offered`'s `a=extmap` lines that are in `wanted`, with the offered
    /// ids (an answer keeps the offerer's ids; RFC 8285 section 6).
    fn offered(media: &MediaDescription, wanted: &[Extension]) -> Extensions {
        let mut out = Vec::new();
        for value in media.attribute_values("extmap") {
            let mut fields = value.split_ascii_whitespace();
            let (Some(id), Some(uri)) = (fields.next(), fields.next()) else {
                continue;
            };
            // `<id>[/<direction>]`; a direction other than ours would be honoured here if we
            // ever offered one-way extensions.
            let id = id.split('/').next().and_then(|i| i.parse::<u8>().ok());
            let ext = Extension::of(uri);
            if let (Some(id @ 1..=255), Some(ext)) = (id, ext)
                && id != 15
                && wanted.contains(&ext)
                && !out.iter().any(|(e, i)| *e == ext || *i == id)
            {
                out.push((ext, id));
            }
        }
        Extensions(out)
    }

    fn attributes(&self) -> impl Iterator<Item = Attribute> + '_ {
        (self.0.iter()).map(|(e, id)| Attribute::new("extmap", format!("{id} {}", e.uri())))
    }
}

/// One RTP stream identifier of an `a=simulcast` list (RFC 8853), `~` marking it paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastId {
    /// The rid.
    pub rid: String,
    /// Written with `~`: not sent for now.
    pub paused: bool,
}

/// `a=simulcast`: the streams sent and received, each a list of alternatives (RFC 8853
/// section 5.1). Chorus uses the first alternative of each stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simulcast {
    /// The `send` streams.
    pub send: Vec<Vec<SimulcastId>>,
    /// The `recv` streams.
    pub recv: Vec<Vec<SimulcastId>>,
}

impl Simulcast {
    /// Parses the value after `a=simulcast:`.
    pub fn parse(value: &str) -> Option<Self> {
        let mut sc = Simulcast::default();
        let mut fields = value.split_ascii_whitespace();
        while let Some(dir) = fields.next() {
            let list = fields.next()?;
            let streams: Option<Vec<Vec<SimulcastId>>> = list
                .split(';')
                .map(|alts| {
                    alts.split(',')
                        .map(|id| {
                            let (paused, rid) = match id.strip_prefix('~') {
                                Some(rid) => (true, rid),
                                None => (false, id),
                            };
                            valid_rid(rid).then(|| SimulcastId {
                                rid: rid.to_owned(),
                                paused,
                            })
                        })
                        .collect()
                })
                .collect();
            let target = match dir {
                "send" if sc.send.is_empty() => &mut sc.send,
                "recv" if sc.recv.is_empty() => &mut sc.recv,
                _ => return None,
            };
            *target = streams?;
        }
        (!sc.send.is_empty() || !sc.recv.is_empty()).then_some(sc)
    }
}

impl fmt::Display for Simulcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |streams: &[Vec<SimulcastId>]| {
            streams
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|id| format!("{}{}", if id.paused { "~" } else { "" }, id.rid))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
                .join(";")
        };
        let mut parts = Vec::new();
        if !self.send.is_empty() {
            parts.push(format!("send {}", list(&self.send)));
        }
        if !self.recv.is_empty() {
            parts.push(format!("recv {}", list(&self.recv)));
        }
        f.write_str(&parts.join(" "))
    }
}

/// An `a=simulcast` stream list of `rids`, one unpaused alternative each.
fn streams(rids: &[Rid]) -> Vec<Vec<SimulcastId>> {
    (rids.iter())
        .map(|r| {
            vec![SimulcastId {
                rid: r.id.clone(),
                paused: false,
            }]
        })
        .collect()
}

/// RFC 8851 `rid-id`: letters, digits, `-` and `_`; RFC 8852 limits it to 255 bytes... and
/// the header extension to 16, which is what we accept.
fn valid_rid(rid: &str) -> bool {
    (1..=16).contains(&rid.len())
        && rid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One offered `a=rid:<id> send [restrictions]` (RFC 8851), the restrictions kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid {
    /// The rid.
    pub id: String,
    /// `max-width`, if restricted.
    pub max_width: Option<u32>,
    /// `max-height`, if restricted.
    pub max_height: Option<u32>,
    /// The rest (`pt=`, `max-fps=`, `max-br=` ...) as written.
    pub restrictions: String,
}

impl Rid {
    /// A layer we send, at most `max_height` lines tall.
    pub fn sending(id: &str, max_height: u32) -> Rid {
        Rid {
            id: id.to_owned(),
            max_width: None,
            max_height: Some(max_height),
            restrictions: format!("max-height={max_height}"),
        }
    }

    /// Parses `a=rid` values; `(rid, is_send)`.
    fn parse(value: &str) -> Option<(Rid, bool)> {
        let mut fields = value.split_ascii_whitespace();
        let id = fields.next().filter(|id| valid_rid(id))?;
        let send = match fields.next()? {
            "send" => true,
            "recv" => false,
            _ => return None,
        };
        let restrictions = fields.next().unwrap_or_default().to_owned();
        let number = |key: &str| {
            restrictions.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
            })
        };
        Some((
            Rid {
                id: id.to_owned(),
                max_width: number("max-width"),
                max_height: number("max-height"),
                restrictions,
            },
            send,
        ))
    }
}

/// What we negotiate for video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Formats in our order of preference.
    pub codecs: Vec<VideoCodec>,
    /// H.264 profiles we accept (a receiver must be able to decode what others publish).
    pub h264_profiles: Vec<H264Profile>,
    /// The highest H.264 level we answer with (level_idc; 31 = 3.1, 720p at 30 fps).
    pub h264_max_level: u8,
    /// Feedback we use.
    pub feedback: Feedback,
    /// Header extensions we use.
    pub extensions: Vec<Extension>,
    /// Negotiate RFC 4588 retransmission formats.
    pub rtx: bool,
    /// Accept simulcast offers (otherwise one stream per publisher).
    pub simulcast: bool,
    /// The most a publisher may send us, in bits per second (`b=TIAS` in our SDP).
    pub max_receive_bps: Option<u64>,
    /// Simulcast layers our offers send, lowest first (`a=rid:<id> send` and
    /// `a=simulcast:send`); empty: one stream. For a publisher such as the load generator.
    pub send_simulcast: Vec<Rid>,
    /// Our offers ask for one stream per other publisher ([`LAYOUT_ATTRIBUTE`]`:all`) rather
    /// than the one stream following the active speaker a SIP video endpoint gets.
    pub receive_all: bool,
}

/// `a=chorus-video-layout:all` in an offer's m=video: the offerer takes one stream per other
/// publisher on that m-line (told apart by SSRC, RFC 8108) instead of one that follows the
/// active speaker. Without it a SIP video endpoint, which has one decoder per m-line, gets
/// the speaker.
pub const LAYOUT_ATTRIBUTE: &str = "chorus-video-layout";

/// One video m-line agreed in full: the formats and feedback ([`NegotiatedVideo`]), where the
/// peer's video goes and comes from, its keys, and the streams it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSession {
    /// Formats, feedback, extensions, simulcast, caps, direction.
    pub media: NegotiatedVideo,
    /// Index of the video m-line.
    pub media_index: usize,
    /// Where to send video RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send video RTCP (`remote_rtp` under rtcp-mux).
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share the video port (RFC 5761).
    pub rtcp_mux: bool,
    /// The video m-line's own SDES keys; None for plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// The streams the peer announced (`a=ssrc-group:SIM` lowest layer first with their
    /// `FID` RTX streams, else its first `a=ssrc`); empty if it announced none.
    pub remote_sources: Vec<VideoSource>,
    /// The peer takes one stream per publisher ([`LAYOUT_ATTRIBUTE`]).
    pub receive_all: bool,
}

/// The video streams an m-line announces: the `SIM` group's SSRCs in order (else the first
/// `a=ssrc` that is not some group's RTX), each with the RTX SSRC its `FID` group names.
pub(crate) fn announced_sources(media: &MediaDescription) -> Vec<VideoSource> {
    let groups: Vec<(String, Vec<u32>)> = media
        .attribute_values("ssrc-group")
        .filter_map(|v| {
            let mut fields = v.split_ascii_whitespace();
            let semantics = fields.next()?.to_ascii_uppercase();
            let ssrcs: Option<Vec<u32>> = fields.map(|s| s.parse().ok()).collect();
            Some((semantics, ssrcs?))
        })
        .collect();
    let fid = |ssrc: u32| {
        groups
            .iter()
            .find_map(|(sem, ssrcs)| match ssrcs.as_slice() {
                [primary, rtx] if sem == "FID" && *primary == ssrc => Some(*rtx),
                _ => None,
            })
    };
    let is_rtx =
        |ssrc: u32| (groups.iter()).any(|(sem, ssrcs)| sem == "FID" && ssrcs.get(1) == Some(&ssrc));
    let primaries: Vec<u32> = match groups.iter().find(|(sem, _)| sem == "SIM") {
        Some((_, ssrcs)) => ssrcs.clone(),
        None => (media.ssrcs().iter())
            .map(|s| s.ssrc.0)
            .find(|&s| !is_rtx(s))
            .into_iter()
            .collect(),
    };
    primaries
        .into_iter()
        .map(|ssrc| VideoSource {
            ssrc,
            rtx: fid(ssrc),
        })
        .collect()
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            codecs: vec![VideoCodec::Vp8, VideoCodec::H264],
            h264_profiles: vec![H264Profile::ConstrainedBaseline, H264Profile::Baseline],
            h264_max_level: 0x1f,
            feedback: Feedback::USED,
            extensions: Extension::USED.to_vec(),
            rtx: true,
            simulcast: true,
            max_receive_bps: Some(2_500_000),
            send_simulcast: Vec::new(),
            receive_all: false,
        }
    }
}

/// What was agreed for one video m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedVideo {
    /// The format.
    pub codec: VideoCodec,
    /// Its payload type.
    pub pt: Pt,
    /// Its RTX payload type, if retransmissions go over RTX.
    pub rtx_pt: Option<Pt>,
    /// H.264: the profile and level in use.
    pub h264: Option<ProfileLevelId>,
    /// RTCP feedback in use.
    pub feedback: Feedback,
    /// Header extensions in use.
    pub extensions: Extensions,
    /// The simulcast layers the peer sends us, in its order (highest first by convention),
    /// paused ones left out; empty without simulcast.
    pub simulcast: Vec<Rid>,
    /// The most the peer lets us send it (its `b=TIAS`, else `b=AS`), bits per second.
    pub remote_max_bps: Option<u64>,
    /// Our direction toward the peer.
    pub direction: Direction,
}

/// The H.264 format of `pt`, if packetization mode 1 in a profile we accept.
fn h264_format(media: &MediaDescription, pt: Pt, config: &VideoConfig) -> Option<ProfileLevelId> {
    let fmtp = media.fmtp(pt);
    let mode = fmtp.as_ref().and_then(|f| f.param("packetization-mode"));
    if mode.map(str::trim) != Some("1") {
        return None;
    }
    let plid = match fmtp.as_ref().and_then(|f| f.param("profile-level-id")) {
        Some(hex) => ProfileLevelId::parse(hex)?,
        None => ProfileLevelId::IMPLIED,
    };
    config
        .h264_profiles
        .contains(&plid.profile())
        .then_some(plid)
}

/// The first of our formats the m-line has, with its payload type (and H.264 parameters).
fn pick_video(
    media: &MediaDescription,
    config: &VideoConfig,
) -> Option<(VideoCodec, Pt, Option<ProfileLevelId>)> {
    let maps = media.rtpmaps();
    let offered: Vec<Pt> = media.payload_types();
    config.codecs.iter().find_map(|&codec| {
        offered.iter().find_map(|&pt| {
            let map = maps.iter().find(|m| m.payload_type == pt)?;
            if codec_of(map) != Some(codec) {
                return None;
            }
            match codec {
                VideoCodec::H264 => h264_format(media, pt, config).map(|p| (codec, pt, Some(p))),
                VideoCodec::Vp8 => Some((codec, pt, None)),
            }
        })
    })
}

/// The `rtx` payload type whose `apt` is `pt` (RFC 4588 section 8.6).
fn rtx_for(media: &MediaDescription, pt: Pt) -> Option<Pt> {
    media.rtpmaps().into_iter().find_map(|m| {
        let is_rtx = m.encoding.eq_ignore_ascii_case("rtx") && m.clock_rate == VIDEO_CLOCK_RATE;
        let apt = media.fmtp(m.payload_type)?;
        (is_rtx && apt.param("apt")?.parse::<u8>().ok()? == pt.0).then_some(m.payload_type)
    })
}

/// The peer's cap on what we send, from the m-line's `b=` lines (the callers, which see the
/// whole description, fall back to the session's).
fn remote_cap(media: &MediaDescription) -> Option<u64> {
    bitrate_bps(&media.bandwidths).filter(|&bps| bps > 0)
}

/// One video format as written: the codec, its payload type, its RTX payload type and, for
/// H.264, its profile and level.
type Format = (VideoCodec, Pt, Option<Pt>, Option<ProfileLevelId>);

/// One format's lines: its rtpmap and fmtp, its feedback, and those of its RTX.
fn format_lines(m: &mut MediaDescription, (codec, pt, rtx_pt, h264): Format, feedback: Feedback) {
    m.attributes.push(Attribute::new(
        "rtpmap",
        format!("{pt} {}/{VIDEO_CLOCK_RATE}", encoding(codec)),
    ));
    if let Some(plid) = h264 {
        m.attributes.push(Attribute::new(
            "fmtp",
            format!("{pt} packetization-mode=1;profile-level-id={plid};level-asymmetry-allowed=1"),
        ));
    }
    m.attributes.extend(feedback.attributes(pt));
    if let Some(rtx) = rtx_pt {
        m.attributes.push(Attribute::new(
            "rtpmap",
            format!("{rtx} rtx/{VIDEO_CLOCK_RATE}"),
        ));
        m.attributes
            .push(Attribute::new("fmtp", format!("{rtx} apt={pt}")));
    }
}

/// The m-line's lines after its formats, once: our bandwidth cap, the extensions, rtcp-mux
/// (always in an offer, echoed in an answer only when offered: RFC 5761 section 5.1.1).
fn shared_lines(
    m: &mut MediaDescription,
    extensions: &Extensions,
    max_receive_bps: Option<u64>,
    rtcp_mux: bool,
) {
    if let Some(bps) = max_receive_bps {
        m.bandwidths.push(Bandwidth {
            kind: BandwidthKind::Tias,
            value: bps,
        });
        m.bandwidths.push(Bandwidth {
            kind: BandwidthKind::As,
            value: bps.div_ceil(1000),
        });
    }
    m.attributes.extend(extensions.attributes());
    if rtcp_mux {
        m.attributes.push(Attribute::flag("rtcp-mux"));
    }
}

/// Answers an offered video m-line (RFC 3264 section 6.1) on our `port`, with the offer's
/// `offered_direction` (session-level already applied). `Err` refuses the stream (answered
/// with port 0 by the caller).
pub fn answer_video(
    offered: &MediaDescription,
    offered_direction: Direction,
    port: u16,
    config: &VideoConfig,
) -> Result<(MediaDescription, NegotiatedVideo), SdpError> {
    if offered.kind != MediaKind::Video || offered.port == 0 {
        return Err(SdpError::AnswerRejected);
    }
    if !offered.protocol.is_plain_rtp() && !offered.protocol.is_sdes_srtp() {
        return Err(SdpError::UnsupportedProtocol);
    }
    let (codec, pt, plid) = pick_video(offered, config).ok_or(SdpError::NoCommonCodec)?;
    // RFC 6184 8.2.2: same profile; our level no higher than we can take.
    let h264 = plid.map(|p| ProfileLevelId {
        level_idc: p.level_idc.min(config.h264_max_level),
        ..p
    });
    let rtx_pt = config.rtx.then(|| rtx_for(offered, pt)).flatten();
    let feedback = Feedback::offered(offered, pt).and(config.feedback);
    let extensions = Extensions::offered(offered, &config.extensions);
    let direction = offered_direction.reversed();

    let simulcast = sent_layers(offered, &extensions, config);
    // Ours, if we send simulcast and the offer takes it: the layers it lists to receive.
    let takes = receive_list(offered);
    let ours: Vec<Rid> = (config.send_simulcast.iter())
        .filter(|r| extensions.id(Extension::Rid).is_some() && takes.contains(&r.id))
        .cloned()
        .collect();

    let mut m = MediaDescription::new(
        MediaKind::Video,
        port,
        offered.protocol.clone(),
        std::iter::once(pt)
            .chain(rtx_pt)
            .map(|p| p.to_string())
            .collect(),
    );
    if let Some(mid) = offered.mid() {
        m.attributes.push(Attribute::new("mid", mid));
    }
    format_lines(&mut m, (codec, pt, rtx_pt, h264), feedback);
    shared_lines(
        &mut m,
        &extensions,
        config.max_receive_bps,
        offered.rtcp_mux(),
    );
    m.attributes.push(Attribute::flag(direction.attribute()));
    simulcast_lines(&mut m, &ours, &simulcast);
    if config.receive_all {
        m.attributes.push(Attribute::new(LAYOUT_ATTRIBUTE, "all"));
    }
    let negotiated = NegotiatedVideo {
        codec,
        pt,
        rtx_pt,
        h264,
        feedback,
        extensions,
        simulcast,
        remote_max_bps: remote_cap(offered),
        direction,
    };
    Ok((m, negotiated))
}

/// The layers `media`'s sender sends: its `a=simulcast` send streams (the first unpaused
/// alternative of each) described by its `a=rid ... send` lines, when we take simulcast and
/// the rid extension is agreed.
fn sent_layers(
    media: &MediaDescription,
    extensions: &Extensions,
    config: &VideoConfig,
) -> Vec<Rid> {
    let rids: Vec<Rid> = media
        .attribute_values("rid")
        .filter_map(Rid::parse)
        .filter_map(|(rid, send)| send.then_some(rid))
        .collect();
    match media.attribute("simulcast").and_then(Simulcast::parse) {
        Some(sc) if config.simulcast && extensions.id(Extension::Rid).is_some() => sc
            .send
            .iter()
            .filter_map(|alts| alts.iter().find(|id| !id.paused))
            .filter_map(|id| rids.iter().find(|r| r.id == id.rid).cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The rids `media`'s sender takes (its `a=simulcast` recv streams, first alternative each).
fn receive_list(media: &MediaDescription) -> Vec<String> {
    let sc = media.attribute("simulcast").and_then(Simulcast::parse);
    (sc.iter().flat_map(|sc| &sc.recv))
        .filter_map(|alts| alts.first().map(|id| id.rid.clone()))
        .collect()
}

/// `a=rid` lines for the layers we `send` (with their restrictions) and those we `recv`, and
/// the `a=simulcast` naming both; nothing when both are empty.
fn simulcast_lines(m: &mut MediaDescription, send: &[Rid], recv: &[Rid]) {
    if send.is_empty() && recv.is_empty() {
        return;
    }
    for rid in send {
        let line = format!("{} send {}", rid.id, rid.restrictions);
        m.attributes.push(Attribute::new("rid", line.trim_end()));
    }
    for rid in recv {
        m.attributes
            .push(Attribute::new("rid", format!("{} recv", rid.id)));
    }
    let sc = Simulcast {
        send: streams(send),
        recv: streams(recv),
    };
    m.attributes
        .push(Attribute::new("simulcast", sc.to_string()));
}

/// Our video offer on `port`, with payload types from 96 up: each format, then each one's
/// RTX. One stream each way (what the server offers a SIP endpoint), unless the config sends
/// simulcast or asks for every publisher's stream.
///
/// A re-offer passes the `current` agreement and keeps it: its one format under its payload
/// types (RFC 3264 8.3.2: a mapping does not change within a session), its extension ids,
/// and the layers the peer sends us listed to receive (RFC 8853 simulcast lasts only as long
/// as each offer and answer restate it).
pub fn offer_video(
    port: u16,
    protocol: Protocol,
    config: &VideoConfig,
    current: Option<&NegotiatedVideo>,
    direction: Direction,
) -> MediaDescription {
    let mut pts = (96u8..=127).map(Pt);
    let mut formats: Vec<(VideoCodec, Pt, Option<Pt>)> = Vec::new();
    match current {
        Some(c) => formats.push((c.codec, c.pt, c.rtx_pt)),
        None => {
            for &codec in &config.codecs {
                let Some(pt) = pts.next() else { break };
                let rtx = if config.rtx { pts.next() } else { None };
                formats.push((codec, pt, rtx));
            }
        }
    }
    let mut m = MediaDescription::new(
        MediaKind::Video,
        port,
        protocol,
        formats
            .iter()
            .flat_map(|(_, pt, rtx)| std::iter::once(*pt).chain(*rtx))
            .map(|p| p.to_string())
            .collect(),
    );
    let extensions = match current {
        Some(c) => c.extensions.clone(),
        None => Extensions(
            (config.extensions.iter())
                .filter(|e| !matches!(e, Extension::AudioLevel))
                .zip(1u8..)
                .map(|(e, id)| (*e, id))
                .collect(),
        ),
    };
    let h264 = current.and_then(|c| c.h264).unwrap_or(ProfileLevelId {
        profile_idc: 0x42,
        profile_iop: 0xe0,
        level_idc: config.h264_max_level,
    });
    for &(codec, pt, rtx) in &formats {
        let plid = (codec == VideoCodec::H264).then_some(h264);
        format_lines(&mut m, (codec, pt, rtx, plid), config.feedback);
    }
    shared_lines(&mut m, &extensions, config.max_receive_bps, true);
    m.attributes.push(Attribute::flag(direction.attribute()));
    let receive = current.map_or(&[][..], |c| &c.simulcast[..]);
    simulcast_lines(&mut m, &config.send_simulcast, receive);
    if config.receive_all {
        m.attributes.push(Attribute::new(LAYOUT_ATTRIBUTE, "all"));
    }
    m
}

/// Reads the answer to our [`offer_video`] m-line: the format the peer chose (the first it
/// lists that we offered), and the feedback and extensions both have.
pub fn accept_video_answer(
    offer: &MediaDescription,
    answer: &MediaDescription,
    config: &VideoConfig,
) -> Result<NegotiatedVideo, SdpError> {
    if answer.port == 0 {
        return Err(SdpError::AnswerRejected);
    }
    if answer.kind != MediaKind::Video {
        return Err(SdpError::AnswerMismatch);
    }
    let ours = offer.payload_types();
    // The answer's formats must be among ours (RFC 3264 6.1), in its order of preference.
    let (codec, pt, plid) = answer
        .payload_types()
        .into_iter()
        .filter(|pt| ours.contains(pt))
        .find_map(|pt| {
            let map = answer.rtpmap(pt).or_else(|| offer.rtpmap(pt))?;
            match codec_of(&map)? {
                VideoCodec::H264 => {
                    h264_format(answer, pt, config).map(|p| (VideoCodec::H264, pt, Some(p)))
                }
                VideoCodec::Vp8 => Some((VideoCodec::Vp8, pt, None)),
            }
        })
        .ok_or(SdpError::AnswerMismatch)?;
    let rtx_pt = config.rtx.then(|| rtx_for(answer, pt)).flatten();
    let feedback = Feedback::offered(answer, pt).and(config.feedback);
    let extensions = Extensions::offered(answer, &config.extensions);
    let direction = answer.direction().unwrap_or(Direction::SendRecv).reversed();
    // The layers the answerer sends, if our offer took them (it listed them to receive).
    let takes = receive_list(offer);
    let mut simulcast = sent_layers(answer, &extensions, config);
    simulcast.retain(|r| takes.contains(&r.id));
    Ok(NegotiatedVideo {
        codec,
        pt,
        rtx_pt,
        h264: plid,
        feedback,
        extensions,
        simulcast,
        remote_max_bps: remote_cap(answer),
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::SessionDescription;

    /// A browser-style offer: VP8 and H.264 (two profiles) with RTX, feedback, extensions and
    /// three simulcast layers (RFC 8853 section 6.1's shape), capped at 1.5 Mbit/s.
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=video 40000 RTP/AVP 96 97 102 103 108 109\r\n\
        b=TIAS:1500000\r\n\
        a=mid:1\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\n\
        a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 foo bar\r\n\
        a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtcp-fb:102 nack\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
        a=rtpmap:108 H264/90000\r\n\
        a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e033\r\n\
        a=rtcp-fb:* nack pli\r\n\
        a=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n\
        a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
        a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
        a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
        a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n\
        a=sendrecv\r\n\
        a=rid:h send max-width=1280;max-height=720\r\n\
        a=rid:m send max-width=640;max-height=360\r\n\
        a=rid:l send max-width=320;max-height=180\r\n\
        a=simulcast:send h;m;~l\r\n";

    fn offered() -> MediaDescription {
        SessionDescription::parse(OFFER.as_bytes()).unwrap().media[0].clone()
    }

    fn values<'a>(m: &'a MediaDescription, name: &str) -> Vec<&'a str> {
        m.attribute_values(name).collect()
    }

    #[test]
    fn answers_vp8_with_rtx_feedback_extensions_and_the_unpaused_layers() {
        // By default transport-cc and its extension are left out (`Feedback::USED`).
        let (m, n) = answer_video(
            &offered(),
            Direction::SendRecv,
            30000,
            &VideoConfig::default(),
        )
        .unwrap();
        assert_eq!(n.feedback, Feedback::USED);
        assert_eq!(n.extensions.id(Extension::TransportCc), None);
        assert!(!values(&m, "rtcp-fb").contains(&"96 transport-cc"));
        let all = VideoConfig {
            feedback: Feedback::ALL,
            extensions: Extension::ALL.to_vec(),
            ..VideoConfig::default()
        };
        let (m, n) = answer_video(&offered(), Direction::SendRecv, 30000, &all).unwrap();
        assert_eq!(
            (n.codec, n.pt, n.rtx_pt),
            (VideoCodec::Vp8, Pt(96), Some(Pt(97)))
        );
        assert_eq!(
            n.feedback,
            Feedback::ALL,
            "the unknown `foo bar` is left out"
        );
        assert_eq!(n.extensions.id(Extension::AbsSendTime), Some(3));
        assert_eq!(n.extensions.id(Extension::Rid), Some(10));
        assert_eq!(n.extensions.id(Extension::AudioLevel), None);
        let layers: Vec<_> = n
            .simulcast
            .iter()
            .map(|r| (r.id.as_str(), r.max_height))
            .collect();
        assert_eq!(layers, [("h", Some(720)), ("m", Some(360))], "~l is paused");
        assert_eq!(n.remote_max_bps, Some(1_500_000));
        assert_eq!(m.formats, ["96", "97"]);
        assert_eq!(m.port, 30000);
        assert_eq!(values(&m, "mid"), ["1"]);
        assert_eq!(values(&m, "rid"), ["h recv", "m recv"]);
        assert_eq!(values(&m, "simulcast"), ["recv h;m"]);
        assert_eq!(values(&m, "fmtp"), ["97 apt=96"]);
        assert_eq!(
            values(&m, "rtcp-fb"),
            [
                "96 nack",
                "96 nack pli",
                "96 ccm fir",
                "96 goog-remb",
                "96 transport-cc"
            ]
        );
        assert!(values(&m, "extmap").contains(&"10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
        assert!(!values(&m, "extmap").iter().any(|e| e.contains("toffset")));
        assert!(m.has_attribute("sendrecv"));
        assert_eq!(m.bandwidth(&BandwidthKind::Tias), Some(2_500_000));
        // What we wrote parses back as what was negotiated.
        let text =
            format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{m}");
        let back = SessionDescription::parse(text.as_bytes()).unwrap().media[0].clone();
        assert_eq!(back, m);
    }

    #[test]
    fn h264_keeps_the_offered_profile_and_caps_the_level() {
        let config = VideoConfig {
            codecs: vec![VideoCodec::H264],
            h264_profiles: vec![H264Profile::ConstrainedBaseline],
            ..VideoConfig::default()
        };
        // 102 is Baseline (42 00): not accepted; 108 is Constrained Baseline at level 5.1.
        let (m, n) = answer_video(&offered(), Direction::SendRecv, 30000, &config).unwrap();
        assert_eq!(
            (n.codec, n.pt, n.rtx_pt),
            (VideoCodec::H264, Pt(108), Some(Pt(109)))
        );
        let plid = n.h264.unwrap();
        assert_eq!(plid.profile(), H264Profile::ConstrainedBaseline);
        assert_eq!(plid.level_idc, 0x1f);
        assert_eq!(
            values(&m, "fmtp")[0],
            "108 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1"
        );
        // Only `nack pli` (from `*`) is offered for 108.
        assert_eq!(
            n.feedback,
            Feedback {
                pli: true,
                ..Feedback::default()
            }
        );
    }

    #[test]
    fn refusals() {
        let config = VideoConfig::default();
        let mode0 = OFFER
            .replace(
                "m=video 40000 RTP/AVP 96 97 102 103 108 109",
                "m=video 40000 RTP/AVP 102",
            )
            .replace("packetization-mode=1", "packetization-mode=0");
        let m = SessionDescription::parse(mode0.as_bytes()).unwrap().media[0].clone();
        assert_eq!(
            answer_video(&m, Direction::SendRecv, 1, &config).err(),
            Some(SdpError::NoCommonCodec),
            "packetization mode 0 only"
        );
        let mut audio = offered();
        audio.kind = MediaKind::Audio;
        assert!(answer_video(&audio, Direction::SendRecv, 1, &config).is_err());
        let mut disabled = offered();
        disabled.port = 0;
        assert!(answer_video(&disabled, Direction::SendRecv, 1, &config).is_err());
        // Simulcast needs the rid extension to tell the layers apart.
        let no_rid = VideoConfig {
            extensions: vec![Extension::Mid],
            ..VideoConfig::default()
        };
        let (m, n) = answer_video(&offered(), Direction::SendOnly, 1, &no_rid).unwrap();
        assert!(n.simulcast.is_empty() && !m.has_attribute("simulcast"));
        assert_eq!(n.direction, Direction::RecvOnly);
    }

    #[test]
    fn profile_level_ids_by_rfc_6184_table_5() {
        let profile = |hex: &str| ProfileLevelId::parse(hex).unwrap().profile();
        assert_eq!(profile("42e01f"), H264Profile::ConstrainedBaseline);
        assert_eq!(profile("42c01f"), H264Profile::ConstrainedBaseline);
        assert_eq!(profile("42001f"), H264Profile::Baseline);
        assert_eq!(profile("4d401f"), H264Profile::Main);
        assert_eq!(profile("4d801f"), H264Profile::ConstrainedBaseline);
        assert_eq!(profile("58c01f"), H264Profile::ConstrainedBaseline);
        assert_eq!(profile("58801f"), H264Profile::Baseline);
        assert_eq!(profile("58001f"), H264Profile::Extended);
        assert_eq!(profile("640c1f"), H264Profile::High);
        assert_eq!(profile("f4001f"), H264Profile::Other);
        for bad in ["", "42e0", "42e01f0", "zze01f", "42é01"] {
            assert_eq!(ProfileLevelId::parse(bad), None, "{bad}");
        }
        assert_eq!(
            ProfileLevelId::parse("42E01F").unwrap().to_string(),
            "42e01f"
        );
    }

    #[test]
    fn simulcast_attribute_round_trips_and_rejects_garbage() {
        let sc = Simulcast::parse("send 1,~4;2;3 recv c").unwrap();
        assert_eq!(sc.send.len(), 3);
        assert!(sc.send[0][1].paused);
        assert_eq!(sc.recv[0][0].rid, "c");
        assert_eq!(sc.to_string(), "send 1,~4;2;3 recv c");
        for bad in [
            "",
            "send",
            "sideways a",
            "send a recv",
            "send a send b",
            "send a;;b",
            "send a b",
        ] {
            assert_eq!(Simulcast::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn our_offer_is_answered_and_read_back() {
        let config = VideoConfig::default();
        let offer = offer_video(
            30000,
            Protocol::parse("RTP/AVP"),
            &config,
            None,
            Direction::SendRecv,
        );
        assert_eq!(offer.formats, ["96", "97", "98", "99"]);
        assert_eq!(
            values(&offer, "fmtp"),
            [
                "97 apt=96",
                "98 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1",
                "99 apt=98",
            ]
        );
        // A SIP phone that does only H.264 answers with it (and no RTX).
        let phone = VideoConfig {
            codecs: vec![VideoCodec::H264],
            rtx: false,
            feedback: Feedback {
                nack: true,
                pli: true,
                ..Feedback::default()
            },
            extensions: Vec::new(),
            simulcast: false,
            max_receive_bps: Some(768_000),
            ..VideoConfig::default()
        };
        let (answer, theirs) = answer_video(&offer, Direction::SendRecv, 5000, &phone).unwrap();
        assert_eq!(
            (theirs.codec, theirs.pt, theirs.rtx_pt),
            (VideoCodec::H264, Pt(98), None)
        );
        let ours = accept_video_answer(&offer, &answer, &config).unwrap();
        assert_eq!(
            (ours.codec, ours.pt, ours.rtx_pt),
            (VideoCodec::H264, Pt(98), None)
        );
        assert_eq!(
            ours.feedback,
            Feedback {
                nack: true,
                pli: true,
                ..Feedback::default()
            }
        );
        assert_eq!(ours.remote_max_bps, Some(768_000));
        assert_eq!(ours.extensions, Extensions::default());
        let mut refused = answer.clone();
        refused.port = 0;
        assert_eq!(
            accept_video_answer(&offer, &refused, &config).err(),
            Some(SdpError::AnswerRejected)
        );
        let mut foreign = answer;
        foreign.formats = vec!["120".into()];
        assert_eq!(
            accept_video_answer(&offer, &foreign, &config).err(),
            Some(SdpError::AnswerMismatch)
        );
    }
}
