//! Our own offers (UAC dial-out, re-INVITE, hold from our side) and the remote's answer to
//! them (RFC 3264 sections 5 and 7).
//!
//! Decisions:
//! - One audio m-line: our codecs in preference order (Opus at payload type 111, the
//!   G.711/G.722 static types), `telephone-event/48000` at 110 when Opus is offered and
//!   `telephone-event/8000` at 101, `a=ptime`, the direction, `a=rtcp-mux`.
//! - SRTP: [`SrtpPolicy::Required`] offers RTP/SAVP; [`SrtpPolicy::Optional`] offers
//!   RTP/AVP with `a=crypto` lines (best effort, so plain-only peers still answer);
//!   [`SrtpPolicy::Off`] offers RTP/AVP without crypto. One crypto line per configured suite
//!   (GCM first by default), tags 1, 2, ... in that order.
//! - An answer with `a=crypto` lines none of which matches one of ours (tag and suite) is
//!   refused rather than run as plain RTP: the answerer would send SRTP.
//! - Our key for a suite (audio's, video's) is kept across re-offers (see [`LocalSession`]).
//! - The answer's codec is the first of its formats that we offered and support (the
//!   answerer's preference), under the answer's payload type.
//! - With `OfferAnswerConfig::video` and a local video address, a second m-line offers video
//!   ([`offer_video`]) with the same profile and its own crypto lines, our video streams'
//!   `a=ssrc` and `SIM`/`FID` groups, in the same direction as the audio. An answer that
//!   refuses it (port 0) or that we cannot read leaves the call audio-only.

use std::net::SocketAddr;

use chorus_engine::rtp::Pt;
use chorus_engine::srtp::sdes::CryptoAttribute;

use super::answer::DEFAULT_EVENTS;
use super::attribute::Attribute;
use super::codec::{Codec, TELEPHONE_EVENT};
use super::config::{OfferAnswerConfig, SrtpPolicy};
use super::connection::Connection;
use super::direction::Direction;
use super::error::SdpError;
use super::local_session::{LocalSession, Stream, VideoSource, ssrc_line};
use super::media::{MediaDescription, MediaKind};
use super::negotiated::{
    Negotiated, NegotiatedCodec, RemoteTransport, SrtpKeys, max_bitrate_bps, pick_comfort_noise,
    pick_telephone_event,
};
use super::protocol::Protocol;
use super::rtpmap::Rtpmap;
use super::session::{SessionDescription, Timing};
use super::video::{
    LAYOUT_ATTRIBUTE, VideoSession, accept_video_answer, announced_sources, offer_video,
};

/// Payload type of `telephone-event/8000` in our offers.
pub const OFFER_EVENT_PT_8000: Pt = Pt(101);

/// Payload type of `telephone-event/48000` in our offers.
pub const OFFER_EVENT_PT_48000: Pt = Pt(110);

/// `fmtp` of Opus in our offers: in-band FEC on, 10 ms packets allowed.
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";

/// An offer we sent and are waiting for the answer to; keeps our SRTP keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffer {
    sdp: SessionDescription,
    local_crypto: Vec<CryptoAttribute>,
    direction: Direction,
    media_index: usize,
    /// The video m-line's index and our crypto lines on it.
    video: Option<(usize, Vec<CryptoAttribute>)>,
}

impl PendingOffer {
    /// The offer to put in the INVITE (or re-INVITE) body.
    pub fn sdp(&self) -> &SessionDescription {
        &self.sdp
    }

    /// Our crypto lines, one per offered suite.
    pub fn local_crypto(&self) -> &[CryptoAttribute] {
        &self.local_crypto
    }

    /// The direction we offered.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// Builds an offer for a leg whose local RTP address is `local_rtp`, with `direction`
/// (`SendOnly` to hold the remote, `SendRecv` to resume). The `o=` comes from `local`, whose
/// version advances.
pub fn make_offer(
    local: &mut LocalSession,
    local_rtp: SocketAddr,
    config: &OfferAnswerConfig,
    direction: Direction,
) -> Result<PendingOffer, SdpError> {
    let mut formats = Vec::new();
    let mut attributes = Vec::new();
    let mut offered: Vec<Codec> = Vec::new();
    for &codec in &config.codecs {
        if offered.contains(&codec) {
            continue;
        }
        offered.push(codec);
        let pt = codec.offer_pt();
        formats.push(pt.to_string());
        attributes.push(Attribute::new("rtpmap", codec.rtpmap(pt)));
        if codec == Codec::Opus {
            attributes.push(Attribute::new("fmtp", format!("{pt} {OPUS_FMTP}")));
        }
    }
    if config.comfort_noise && offered.iter().any(|c| c.clock_rate() == 8_000) {
        formats.push("13".to_owned());
        let map = Rtpmap {
            payload_type: Pt(13),
            encoding: "CN".to_owned(),
            clock_rate: 8_000,
            channels: None,
        };
        attributes.push(Attribute::new("rtpmap", map));
    }
    if config.telephone_event {
        let mut events = vec![(OFFER_EVENT_PT_8000, 8_000)];
        if offered.iter().any(|c| c.clock_rate() == 48_000) {
            events.insert(0, (OFFER_EVENT_PT_48000, 48_000));
        }
        for (pt, clock_rate) in events {
            formats.push(pt.to_string());
            let map = Rtpmap {
                payload_type: pt,
                encoding: TELEPHONE_EVENT.to_owned(),
                clock_rate,
                channels: None,
            };
            attributes.push(Attribute::new("rtpmap", map));
            attributes.push(Attribute::new("fmtp", format!("{pt} {DEFAULT_EVENTS}")));
        }
    }
    if formats.is_empty() {
        return Err(SdpError::NoCommonCodec);
    }
    attributes.push(Attribute::new("ptime", config.ptime_ms));
    attributes.push(Attribute::flag(direction.attribute()));
    attributes.push(Attribute::flag("rtcp-mux"));
    if let Some(source) = &local.source {
        attributes.push(source.attribute());
    }
    let local_crypto = offer_crypto(local, Stream::Audio, config, &mut attributes)?;
    let protocol = match config.srtp {
        SrtpPolicy::Required => Protocol::RtpSavp,
        SrtpPolicy::Optional | SrtpPolicy::Off => Protocol::RtpAvp,
    };
    let mut media = vec![MediaDescription {
        attributes,
        ..MediaDescription::new(
            MediaKind::Audio,
            local_rtp.port(),
            protocol.clone(),
            formats,
        )
    }];
    let mut video = None;
    if let (Some(video_config), Some(video_rtp)) = (&config.video, local.video_rtp) {
        let mut m = offer_video(
            video_rtp.port(),
            protocol,
            video_config,
            local.video_current.as_ref(),
            direction,
        );
        let crypto = offer_crypto(local, Stream::Video, config, &mut m.attributes)?;
        if let Some(cname) = local.source.as_ref().map(|s| s.cname.as_str()) {
            announce_sources(&mut m.attributes, &local.video_sources, cname);
        }
        video = Some((media.len(), crypto));
        media.push(m);
    }
    let sdp = SessionDescription {
        origin: local.next_origin(),
        session_name: "chorus".to_owned(),
        connection: Some(Connection::from_ip(local_rtp.ip())),
        bandwidths: Vec::new(),
        timing: vec![Timing::default()],
        other_lines: Vec::new(),
        attributes: Vec::new(),
        media,
    };
    Ok(PendingOffer {
        sdp,
        local_crypto,
        direction,
        media_index: 0,
        video,
    })
}

/// Our crypto lines for `stream` (one per configured suite, tags 1, 2, ...), added to
/// `attributes`; none under [`SrtpPolicy::Off`].
fn offer_crypto(
    local: &LocalSession,
    stream: Stream,
    config: &OfferAnswerConfig,
    attributes: &mut Vec<Attribute>,
) -> Result<Vec<CryptoAttribute>, SdpError> {
    let mut crypto = Vec::new();
    if config.srtp != SrtpPolicy::Off {
        for (tag, &suite) in (1..).zip(&config.srtp_suites) {
            let c = local
                .srtp_key(stream, tag, suite)
                .map_err(SdpError::Keying)?;
            attributes.push(Attribute::new("crypto", &c));
            crypto.push(c);
        }
    }
    Ok(crypto)
}

/// `a=ssrc` for each of our video streams and their RTX, `a=ssrc-group:FID` pairing them and
/// `a=ssrc-group:SIM` listing the layers lowest first (the shape browsers use).
pub(crate) fn announce_sources(
    attributes: &mut Vec<Attribute>,
    sources: &[VideoSource],
    cname: &str,
) {
    for s in sources {
        attributes.push(ssrc_line(s.ssrc, cname));
        if let Some(rtx) = s.rtx {
            attributes.push(ssrc_line(rtx, cname));
            attributes.push(Attribute::new(
                "ssrc-group",
                format!("FID {} {rtx}", s.ssrc),
            ));
        }
    }
    if sources.len() > 1 {
        let ssrcs: Vec<String> = sources.iter().map(|s| s.ssrc.to_string()).collect();
        attributes.push(Attribute::new(
            "ssrc-group",
            format!("SIM {}", ssrcs.join(" ")),
        ));
    }
}

/// Reads the answer's video m-line for our offered one (`Ok(None)`: refused or unreadable,
/// so the call stays audio-only).
fn answered_video(
    pending: &PendingOffer,
    answer: &SessionDescription,
    config: &OfferAnswerConfig,
) -> Option<VideoSession> {
    let (index, ours) = pending.video.as_ref()?;
    let video_config = config.video.as_ref()?;
    let offered = pending.sdp.media.get(*index)?;
    let media = answer.media.get(*index)?;
    let negotiated = accept_video_answer(offered, media, video_config)
        .map_err(|e| tracing::debug!(error = %e, "video answer not taken"))
        .ok()?;
    let transport = RemoteTransport::of(answer, *index, media, offered.rtcp_mux()).ok()?;
    let srtp = match matching_crypto(media, ours) {
        Some(keys) => Some(keys),
        None if media.protocol.is_sdes_srtp() || media.has_attribute("crypto") => return None,
        None if config.srtp == SrtpPolicy::Required => return None,
        None => None,
    };
    // The answer's direction for the line, session level and RFC 2543 hold included, as
    // for audio.
    let answered = transport.direction(answer, *index);
    let mut negotiated = negotiated;
    negotiated.direction = pending.direction.intersect(answered.reversed());
    negotiated.remote_max_bps = max_bitrate_bps(answer, media).filter(|&b| b > 0);
    Some(VideoSession {
        media: negotiated,
        media_index: *index,
        remote_rtp: transport.rtp,
        remote_rtcp: transport.rtcp,
        rtcp_mux: transport.rtcp_mux,
        srtp,
        remote_sources: announced_sources(media),
        receive_all: media.attribute(LAYOUT_ATTRIBUTE) == Some("all"),
    })
}

/// The answer's crypto line that matches one of ours (tag and suite), with ours.
fn matching_crypto(media: &MediaDescription, ours: &[CryptoAttribute]) -> Option<SrtpKeys> {
    media.crypto().into_iter().flatten().find_map(|remote| {
        let local = ours
            .iter()
            .find(|l| l.tag == remote.tag && l.suite == remote.suite)?;
        Some(SrtpKeys {
            local: local.clone(),
            remote,
        })
    })
}

/// Reads the remote's answer to `pending` into what the leg runs with; `local` (the session
/// that made the offer) records the SRTP key put in effect.
pub fn process_answer(
    pending: &PendingOffer,
    answer: &SessionDescription,
    local: &mut LocalSession,
    config: &OfferAnswerConfig,
) -> Result<Negotiated, SdpError> {
    let index = pending.media_index;
    let offered = pending
        .sdp
        .media
        .get(index)
        .ok_or(SdpError::AnswerMismatch)?;
    let media = answer.media.get(index).ok_or(SdpError::AnswerMismatch)?;
    if answer.media.len() != pending.sdp.media.len()
        || media.kind != MediaKind::Audio
        || media.protocol != offered.protocol
    {
        return Err(SdpError::AnswerMismatch);
    }
    if media.port == 0 {
        return Err(SdpError::AnswerRejected);
    }
    let (codec, pt, rtpmap) = media
        .payload_types()
        .into_iter()
        .find_map(|pt| {
            let rtpmap = media.rtpmap(pt).or_else(|| offered.rtpmap(pt));
            let codec = Codec::find(&config.codecs, pt, rtpmap.as_ref())?;
            Some((codec, pt, rtpmap))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let transport = RemoteTransport::of(answer, index, media, offered.rtcp_mux())?;
    let srtp = matching_crypto(media, &pending.local_crypto);
    if srtp.is_none() {
        if media.protocol.is_sdes_srtp() || media.has_attribute("crypto") {
            return Err(SdpError::NoUsableCrypto);
        }
        if config.srtp == SrtpPolicy::Required {
            return Err(SdpError::SrtpRequired);
        }
    }
    let answered = transport.direction(answer, index);
    let direction = pending.direction.intersect(answered.reversed());
    let telephone_event = if config.telephone_event {
        pick_telephone_event(media, codec.clock_rate())
    } else {
        None
    };
    let comfort_noise = config
        .comfort_noise
        .then(|| pick_comfort_noise(media, codec.clock_rate()))
        .flatten();
    local.set_srtp_key(Stream::Audio, srtp.as_ref().map(|k| &k.local));
    let video = answered_video(pending, answer, config);
    if let Some(v) = &video {
        local.set_srtp_key(Stream::Video, v.srtp.as_ref().map(|k| &k.local));
    }
    local.video_current = video.as_ref().map(|v| v.media.clone());
    Ok(Negotiated {
        media_index: index,
        remote_rtp: transport.rtp,
        remote_rtcp: transport.rtcp,
        rtcp_mux: transport.rtcp_mux,
        codec: NegotiatedCodec {
            codec,
            payload_type: pt,
            clock_rate: codec.clock_rate(),
            sample_rate: codec.sample_rate(),
            channels: rtpmap.map_or(codec.channels(), |r| r.channel_count()),
            ptime_ms: media.ptime_ms().unwrap_or(config.ptime_ms),
            fmtp: media.fmtp(pt).map(|f| f.params),
        },
        telephone_event,
        comfort_noise,
        direction,
        srtp,
        remote_ssrc: media.ssrcs().first().map(|s| s.ssrc),
        remote_max_bitrate_bps: max_bitrate_bps(answer, media),
        video,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::answer::answer_offer;
    use crate::sdp::{LocalSource, VideoCodec};
    use chorus_engine::srtp::SrtpSuite;

    fn ours() -> LocalSession {
        LocalSession::new(7, "192.0.2.50".parse().unwrap())
    }

    fn theirs() -> LocalSession {
        LocalSession::new(9, "198.51.100.9".parse().unwrap())
    }

    const OUR_RTP: &str = "192.0.2.50:30000";
    const THEIR_RTP: &str = "198.51.100.9:40000";

    fn offer(config: &OfferAnswerConfig, direction: Direction) -> PendingOffer {
        make_offer(&mut ours(), OUR_RTP.parse().unwrap(), config, direction).unwrap()
    }

    #[test]
    fn default_offer_content_and_round_trip() {
        let pending = offer(&OfferAnswerConfig::default(), Direction::SendRecv);
        let sdp = pending.sdp();
        let reparsed: SessionDescription = sdp.to_string().parse().unwrap();
        assert_eq!(&reparsed, sdp);
        let m = &sdp.media[0];
        assert_eq!(m.protocol, Protocol::RtpAvp);
        assert_eq!(m.port, 30000);
        assert_eq!(m.formats, ["111", "9", "0", "8", "13", "110", "101"]);
        assert_eq!(m.rtpmap(Pt(111)).unwrap().to_string(), "111 opus/48000/2");
        assert_eq!(m.rtpmap(Pt(13)).unwrap().to_string(), "13 CN/8000");
        assert_eq!(m.rtpmap(Pt(9)).unwrap().to_string(), "9 G722/8000");
        assert!(m.rtcp_mux());
        assert_eq!(m.direction(), Some(Direction::SendRecv));
        let suites: Vec<_> = m.crypto().into_iter().map(|c| c.unwrap().suite).collect();
        assert_eq!(suites, OfferAnswerConfig::DEFAULT_SUITES);
        for value in m.attribute_values("crypto") {
            let key = value.split("inline:").nth(1).unwrap();
            assert_eq!(key.len() % 4, 0, "padded base64: {key}");
        }
        assert_eq!(pending.local_crypto().len(), 4);
        assert_eq!(sdp.connection.as_ref().unwrap().address, "192.0.2.50");
    }

    #[test]
    fn policy_shapes_the_offer() {
        let required = OfferAnswerConfig {
            srtp: SrtpPolicy::Required,
            ..OfferAnswerConfig::default()
        };
        assert_eq!(
            offer(&required, Direction::SendRecv).sdp().media[0].protocol,
            Protocol::RtpSavp
        );
        let off = OfferAnswerConfig {
            srtp: SrtpPolicy::Off,
            codecs: vec![Codec::Pcmu],
            ..OfferAnswerConfig::default()
        };
        let pending = offer(&off, Direction::SendRecv);
        let m = &pending.sdp().media[0];
        assert!(!m.has_attribute("crypto"));
        assert_eq!(
            m.formats,
            ["0", "13", "101"],
            "no 48 kHz events without Opus"
        );
        // Opus alone: no CN (Opus has DTX); CN can be turned off.
        for off in [
            OfferAnswerConfig {
                codecs: vec![Codec::Opus],
                ..OfferAnswerConfig::default()
            },
            OfferAnswerConfig {
                codecs: vec![Codec::Pcmu],
                comfort_noise: false,
                ..OfferAnswerConfig::default()
            },
        ] {
            let pending = offer(&off, Direction::SendRecv);
            assert!(!pending.sdp().media[0].formats.contains(&"13".to_owned()));
        }
    }

    #[test]
    fn versions_increase_per_offer() {
        let mut session = ours();
        let rtp = OUR_RTP.parse().unwrap();
        let config = OfferAnswerConfig::default();
        let a = make_offer(&mut session, rtp, &config, Direction::SendRecv).unwrap();
        let b = make_offer(&mut session, rtp, &config, Direction::SendOnly).unwrap();
        assert_eq!(
            b.sdp().origin.session_version,
            a.sdp().origin.session_version + 1
        );
    }

    #[test]
    fn our_answerer_answers_our_offer_with_matching_keys() {
        let config = OfferAnswerConfig::default();
        let pending = offer(&config, Direction::SendRecv);
        let (answer, theirs_neg) = answer_offer(
            pending.sdp(),
            &mut theirs(),
            THEIR_RTP.parse().unwrap(),
            &config,
        )
        .unwrap();
        let ours_neg = process_answer(&pending, &answer, &mut ours(), &config).unwrap();
        assert_eq!(ours_neg.codec.codec, Codec::Opus);
        assert_eq!(ours_neg.codec.payload_type, Pt(111));
        assert_eq!(
            ours_neg.telephone_event.unwrap().payload_type,
            OFFER_EVENT_PT_48000
        );
        assert_eq!(ours_neg.remote_rtp, THEIR_RTP.parse().unwrap());
        assert_eq!(theirs_neg.remote_rtp, OUR_RTP.parse().unwrap());
        assert!(ours_neg.rtcp_mux && theirs_neg.rtcp_mux);
        let (o, t) = (ours_neg.srtp.unwrap(), theirs_neg.srtp.unwrap());
        assert_eq!(o.suite(), SrtpSuite::AeadAes256Gcm);
        assert_eq!(o.local, t.remote);
        assert_eq!(o.remote, t.local);
        assert_eq!(ours_neg.direction, Direction::SendRecv);
    }

    #[test]
    fn hold_and_resume_from_our_side() {
        let config = OfferAnswerConfig::default();
        let their_rtp = THEIR_RTP.parse().unwrap();
        let hold = offer(&config, Direction::SendOnly);
        let (answer, theirs_neg) =
            answer_offer(hold.sdp(), &mut theirs(), their_rtp, &config).unwrap();
        assert_eq!(theirs_neg.direction, Direction::RecvOnly);
        assert_eq!(
            process_answer(&hold, &answer, &mut ours(), &config)
                .unwrap()
                .direction,
            Direction::SendOnly
        );
        let resume = offer(&config, Direction::SendRecv);
        let (answer, _) = answer_offer(resume.sdp(), &mut theirs(), their_rtp, &config).unwrap();
        assert_eq!(
            process_answer(&resume, &answer, &mut ours(), &config)
                .unwrap()
                .direction,
            Direction::SendRecv
        );
    }

    #[test]
    fn baresip_style_answer_picks_cm80_tag() {
        let config = OfferAnswerConfig::default();
        let pending = offer(&config, Direction::SendRecv);
        let answer = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 10122 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n\
            a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR\r\n";
        let answer: SessionDescription = answer.parse().unwrap();
        let n = process_answer(&pending, &answer, &mut ours(), &config).unwrap();
        assert_eq!((n.codec.codec, n.codec.payload_type), (Codec::Pcmu, Pt(0)));
        assert!(!n.rtcp_mux);
        assert_eq!(n.remote_rtcp, "127.0.0.1:10123".parse().unwrap());
        assert_eq!(n.telephone_event.unwrap().clock_rate, 8_000);
        let keys = n.srtp.unwrap();
        assert_eq!(
            (keys.remote.tag, keys.suite()),
            (3, SrtpSuite::AesCm128HmacSha1_80)
        );
        assert_eq!(&keys.local, &pending.local_crypto()[2]);
        // The same answer without crypto is plain under Optional, refused under Required.
        let plain: SessionDescription = answer
            .to_string()
            .lines()
            .filter(|l| !l.starts_with("a=crypto"))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .parse()
            .unwrap();
        assert!(
            process_answer(&pending, &plain, &mut ours(), &config)
                .unwrap()
                .srtp
                .is_none()
        );
        let required = OfferAnswerConfig {
            srtp: SrtpPolicy::Required,
            ..OfferAnswerConfig::default()
        };
        assert_eq!(
            process_answer(&pending, &plain, &mut ours(), &required),
            Err(SdpError::SrtpRequired)
        );
    }

    #[test]
    fn rejected_or_mismatched_answers() {
        let config = OfferAnswerConfig::default();
        let pending = offer(&config, Direction::SendRecv);
        let base = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
        let rejected: SessionDescription =
            format!("{base}m=audio 0 RTP/AVP 0\r\n").parse().unwrap();
        assert_eq!(
            process_answer(&pending, &rejected, &mut ours(), &config),
            Err(SdpError::AnswerRejected)
        );
        let none: SessionDescription = base.parse().unwrap();
        assert_eq!(
            process_answer(&pending, &none, &mut ours(), &config),
            Err(SdpError::AnswerMismatch)
        );
        let savp: SessionDescription = format!("{base}m=audio 4 RTP/SAVP 0\r\n").parse().unwrap();
        assert_eq!(
            process_answer(&pending, &savp, &mut ours(), &config),
            Err(SdpError::AnswerMismatch)
        );
        let odd: SessionDescription = format!("{base}m=audio 4 RTP/AVP 18\r\n").parse().unwrap();
        assert_eq!(
            process_answer(&pending, &odd, &mut ours(), &config),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn answer_with_unknown_crypto_is_refused_not_plain() {
        let config = OfferAnswerConfig::default();
        let pending = offer(&config, Direction::SendRecv);
        let answer: SessionDescription = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n\
            c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10122 RTP/AVP 0\r\n\
            a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR\r\n"
            .parse()
            .unwrap();
        assert_eq!(
            process_answer(&pending, &answer, &mut ours(), &config),
            Err(SdpError::NoUsableCrypto)
        );
    }

    #[test]
    fn reoffer_keeps_the_key_in_effect() {
        let config = OfferAnswerConfig::default();
        let (mut session, mut remote) = (ours(), theirs());
        let (our_rtp, their_rtp) = (OUR_RTP.parse().unwrap(), THEIR_RTP.parse().unwrap());
        let first = make_offer(&mut session, our_rtp, &config, Direction::SendRecv).unwrap();
        let (answer, _) = answer_offer(first.sdp(), &mut remote, their_rtp, &config).unwrap();
        let k1 = process_answer(&first, &answer, &mut session, &config)
            .unwrap()
            .srtp
            .unwrap();
        let hold = make_offer(&mut session, our_rtp, &config, Direction::SendOnly).unwrap();
        let (answer, theirs_neg) =
            answer_offer(hold.sdp(), &mut remote, their_rtp, &config).unwrap();
        let k2 = process_answer(&hold, &answer, &mut session, &config)
            .unwrap()
            .srtp
            .unwrap();
        assert_eq!(k1.local, k2.local);
        assert_eq!(k1.remote, k2.remote, "the remote kept its key too");
        assert_eq!(theirs_neg.srtp.unwrap().remote, k2.local);
    }

    /// A simulcast publisher's offer (the load generator's shape) answered by the server's
    /// answerer: both sides agree on the format, the keys (the video m-line's own), the
    /// layers and the layout, and the server's engine config has the layers lowest first.
    #[test]
    fn video_offer_with_simulcast_round_trip() {
        use crate::sdp::{Rid, VideoConfig, VideoSource};
        use chorus_engine::runtime::VideoLayout;
        let publisher = VideoConfig {
            codecs: vec![VideoCodec::H264],
            send_simulcast: vec![
                Rid::sending("q", 180),
                Rid::sending("h", 360),
                Rid::sending("f", 720),
            ],
            receive_all: true,
            ..VideoConfig::default()
        };
        let ours_cfg = OfferAnswerConfig {
            srtp: SrtpPolicy::Required,
            video: Some(publisher),
            ..OfferAnswerConfig::default()
        };
        let server_cfg = OfferAnswerConfig {
            video: Some(VideoConfig::default()),
            ..OfferAnswerConfig::default()
        };
        let (mut session, mut server) = (ours(), theirs());
        session.source = Some(LocalSource {
            ssrc: 1,
            cname: "load".into(),
        });
        session.video_rtp = Some("192.0.2.50:30010".parse().unwrap());
        session.video_sources = (0..3)
            .map(|i| VideoSource {
                ssrc: 100 + i,
                rtx: Some(200 + i),
            })
            .collect();
        server.video_rtp = Some("198.51.100.9:40002".parse().unwrap());
        let our_rtp = OUR_RTP.parse().unwrap();
        let pending = make_offer(&mut session, our_rtp, &ours_cfg, Direction::SendRecv).unwrap();
        let text = pending.sdp().to_string();
        assert!(text.contains("m=video 30010 RTP/SAVP 96 97\r\n"), "{text}");
        assert!(text.contains("a=ssrc-group:SIM 100 101 102\r\n"), "{text}");
        assert!(text.contains("a=ssrc-group:FID 100 200\r\n"), "{text}");
        assert!(text.contains("a=rid:q send max-height=180\r\n"), "{text}");
        assert!(text.contains("a=simulcast:send q;h;f\r\n"), "{text}");
        assert!(text.contains("a=chorus-video-layout:all\r\n"), "{text}");
        let offer = SessionDescription::parse(text.as_bytes()).unwrap();
        let (answer, theirs_neg) =
            answer_offer(&offer, &mut server, THEIR_RTP.parse().unwrap(), &server_cfg).unwrap();
        let answer = SessionDescription::parse(answer.to_string().as_bytes()).unwrap();
        // An answer putting us on hold the RFC 2543 way (c=0.0.0.0 at session level) holds
        // the video too: we stop sending it.
        let held = answer
            .to_string()
            .replace("c=IN IP4 198.51.100.9", "c=IN IP4 0.0.0.0");
        let held = SessionDescription::parse(held.as_bytes()).unwrap();
        let held = process_answer(&pending, &held, &mut session.clone(), &ours_cfg).unwrap();
        assert_eq!(held.video.unwrap().media.direction, Direction::RecvOnly);
        let ours_neg = process_answer(&pending, &answer, &mut session, &ours_cfg).unwrap();
        let (ov, tv) = (ours_neg.video.unwrap(), theirs_neg.video.unwrap());
        assert_eq!(
            (ov.media.codec, tv.media.codec),
            (VideoCodec::H264, VideoCodec::H264)
        );
        assert_eq!(
            (ov.media.rtx_pt, tv.media.rtx_pt),
            (Some(Pt(97)), Some(Pt(97)))
        );
        assert_eq!(ov.remote_rtp, "198.51.100.9:40002".parse().unwrap());
        assert_eq!(tv.remote_rtp, "192.0.2.50:30010".parse().unwrap());
        let (ok, tk) = (ov.srtp.unwrap(), tv.srtp.clone().unwrap());
        assert_eq!((&ok.local, &ok.remote), (&tk.remote, &tk.local));
        let audio_key = ours_neg.srtp.unwrap().local;
        assert_ne!(ok.local.key_material, audio_key.key_material);
        let rids: Vec<&str> = tv.media.simulcast.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(rids, ["q", "h", "f"]);
        assert!(tv.receive_all && tv.media.feedback.nack && tv.media.feedback.remb);
        assert_eq!(tv.remote_sources.len(), 3);
        assert_eq!(
            tv.remote_sources[2],
            VideoSource {
                ssrc: 102,
                rtx: Some(202)
            }
        );

        let engine = crate::media_leg::video_config(&tv, 1);
        assert_eq!(engine.pair, Some(1));
        assert_eq!(engine.layout, VideoLayout::All);
        assert!(engine.srtp_in.is_some() && engine.remote_rtcp.is_none());
        let producer = engine.producer.unwrap();
        let layers: Vec<_> = (producer.encodings.iter())
            .map(|e| {
                (
                    e.ssrc.map(|s| s.0),
                    e.rid.as_deref(),
                    e.height,
                    e.rtx.map(|r| r.ssrc.0),
                )
            })
            .collect();
        assert_eq!(
            layers,
            [
                (Some(100), Some("q"), 180, Some(200)),
                (Some(101), Some("h"), 360, Some(201)),
                (Some(102), Some("f"), 720, Some(202)),
            ]
        );
        assert_eq!(
            producer.rid_ext_id,
            tv.media.extensions.id(crate::sdp::Extension::Rid)
        );
        assert!(producer.rid_ext_id.is_some());
        assert_eq!(engine.receive.len(), 1);

        // The server's re-offer (a move to another core, say) lists the publisher's layers to
        // receive; the publisher's answer sends them again, with its SSRCs and its layout,
        // so the server keeps simulcast and one stream per publisher.
        let reoffer = make_offer(
            &mut server,
            "198.51.100.9:40100".parse().unwrap(),
            &server_cfg,
            Direction::SendRecv,
        )
        .unwrap();
        let text = reoffer.sdp().to_string();
        assert!(text.contains("a=simulcast:recv q;h;f\r\n"), "{text}");
        // The format agreed, under the same payload types (the server's own order would put
        // VP8 at 96), and the same extension ids.
        assert!(text.contains("m=video 40002 RTP/AVP 96 97\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 H264/90000\r\n"), "{text}");
        let rid_id = tv.media.extensions.id(crate::sdp::Extension::Rid).unwrap();
        assert!(
            text.contains(&format!(
                "a=extmap:{rid_id} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
            )),
            "{text}"
        );
        let (reanswer, _) =
            answer_offer(reoffer.sdp(), &mut session.clone(), our_rtp, &ours_cfg).unwrap();
        let text = reanswer.to_string();
        assert!(text.contains("a=simulcast:send q;h;f\r\n"), "{text}");
        assert!(text.contains("a=rid:f send max-height=720\r\n"), "{text}");
        let again = process_answer(&reoffer, &reanswer, &mut server, &server_cfg).unwrap();
        let again = again.video.unwrap();
        let rids: Vec<&str> = again
            .media
            .simulcast
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(rids, ["q", "h", "f"]);
        assert!(again.receive_all);
        assert_eq!(again.remote_sources, tv.remote_sources);

        // A server without video refuses the m-line: the call goes on with audio only.
        let (answer, theirs_neg) = answer_offer(
            &offer,
            &mut theirs(),
            THEIR_RTP.parse().unwrap(),
            &OfferAnswerConfig::default(),
        )
        .unwrap();
        assert_eq!(answer.media[1].port, 0);
        assert!(theirs_neg.video.is_none());
        let ours_neg = process_answer(&pending, &answer, &mut session, &ours_cfg).unwrap();
        assert!(ours_neg.video.is_none());
    }
}
