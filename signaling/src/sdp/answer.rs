//! RFC 3264 section 6: answering an offer as the UAS.
//!
//! Decisions:
//! - One m-line per offered m-line, same order. We accept the first acceptable audio m-line
//!   (one leg has one RTP address); every other m-line (video, a second audio) is answered
//!   with port 0 and the first offered format.
//! - The codec is the first of *our* preference list that the offer has, under the offer's
//!   payload type; the answer lists only it (and `telephone-event`), so the remote sends one
//!   codec.
//! - RTP/AVP with `a=crypto` lines (sent by many phones as "best effort SRTP"): under
//!   [`SrtpPolicy::Optional`] and [`SrtpPolicy::Required`] we accept SRTP on them, keep
//!   RTP/AVP in the answer and add our crypto line; under [`SrtpPolicy::Off`] we answer
//!   plain without crypto. An RTP/AVP offer whose crypto lines are all unusable falls back to
//!   plain under `Optional`.
//! - RFC 2543 hold (`c=0.0.0.0`): the offerer cannot receive, so it is treated as if it had
//!   removed `recv` from its direction (sendrecv becomes sendonly) and we answer recvonly.
//! - Our SRTP key (audio, and video's own) is kept across re-offers of the same dialog while
//!   the suite stays the same (see [`LocalSession`]); the tag is always the offer's.
//! - `a=rtcp-mux` is echoed only when offered; `a=ptime` always written (offer's, else ours,
//!   capped by `a=maxptime`); `a=mid` echoed when present.
//! - With `OfferAnswerConfig::video` and a local video address, the first offered video
//!   m-line we can take is answered too ([`answer_video`]), with its own SRTP key under the same policy.
//!   Video from the same remote address and port as the audio (BUNDLE without the BUNDLE
//!   group, which we do not do) is refused with port 0, as is any other video m-line. A video
//!   m-line we cannot take never fails the call: audio goes on.

use std::net::SocketAddr;

use chorus_engine::srtp::sdes::{CryptoAttribute, SdesError};

use super::attribute::Attribute;
use super::codec::TELEPHONE_EVENT;
use super::config::{OfferAnswerConfig, SrtpPolicy};
use super::connection::Connection;
use super::error::SdpError;
use super::local_session::{LocalSession, Stream};
use super::media::{MediaDescription, MediaKind};
use super::negotiated::{
    Negotiated, NegotiatedCodec, RemoteTransport, SrtpKeys, max_bitrate_bps, pick_codec,
    pick_comfort_noise, pick_telephone_event,
};
use super::offer::announce_sources;
use super::protocol::Protocol;
use super::rtpmap::Rtpmap;
use super::session::{SessionDescription, Timing};
use super::video::{
    LAYOUT_ATTRIBUTE, NegotiatedVideo, VideoConfig, VideoSession, announced_sources, answer_video,
};

/// `fmtp` we write for `telephone-event` when the offer gave none: DTMF digits and flash.
pub(crate) const DEFAULT_EVENTS: &str = "0-16";

/// Answers `offer` for a leg whose local RTP address is `local_rtp`.
///
/// Returns the answer (its `o=` from `local`, whose version advances) and what was
/// negotiated. `Err` when no audio m-line can be accepted: [`SdpError::sip_status`] gives 488
/// and [`SdpError::warning`] the Warning header.
pub fn answer_offer(
    offer: &SessionDescription,
    local: &mut LocalSession,
    local_rtp: SocketAddr,
    config: &OfferAnswerConfig,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let mut media = Vec::with_capacity(offer.media.len());
    let mut negotiated = None;
    let mut video = None;
    let mut first_failure = None;
    for (index, offered) in offer.media.iter().enumerate() {
        if let (None, MediaKind::Video, Some(video_config), Some(video_rtp)) = (
            &video,
            &offered.kind,
            &config.video,
            local.video_rtp.filter(|_| offered.port != 0),
        ) {
            match accept_video(
                offer,
                index,
                offered,
                local,
                video_rtp,
                config,
                video_config,
            ) {
                Ok((answer, session)) => {
                    media.push(answer);
                    video = Some(session);
                    continue;
                }
                Err(e) => tracing::debug!(index, error = %e, "offered video m-line refused"),
            }
        }
        let candidate =
            negotiated.is_none() && offered.kind == MediaKind::Audio && offered.port != 0;
        if candidate {
            match accept_audio(offer, index, offered, local, local_rtp, config) {
                Ok((answer, n)) => {
                    media.push(answer);
                    negotiated = Some(n);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(index, error = %e, "offered audio m-line refused");
                    first_failure.get_or_insert(e);
                }
            }
        }
        media.push(rejected(offered));
    }
    let mut negotiated = negotiated.ok_or(first_failure.unwrap_or(SdpError::NoAudio))?;
    if let Some(v) = video.take_if(|v| v.remote_rtp == negotiated.remote_rtp) {
        tracing::debug!(remote = %v.remote_rtp, "video on the audio's address refused");
        media[v.media_index] = rejected(&offer.media[v.media_index]);
    }
    local.set_srtp_key(Stream::Audio, negotiated.srtp.as_ref().map(|k| &k.local));
    if let Some(v) = &video {
        local.set_srtp_key(Stream::Video, v.srtp.as_ref().map(|k| &k.local));
    }
    local.video_current = video.as_ref().map(|v| v.media.clone());
    negotiated.video = video;
    let answer = SessionDescription {
        origin: local.next_origin(),
        session_name: "chorus".to_owned(),
        connection: Some(Connection::from_ip(local_rtp.ip())),
        bandwidths: Vec::new(),
        timing: vec![Timing::default()],
        other_lines: Vec::new(),
        attributes: Vec::new(),
        media,
    };
    Ok((answer, negotiated))
}

/// RFC 3264 section 6: a refused stream keeps its media and protocol, port 0, one format.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    let first = offered
        .formats
        .first()
        .cloned()
        .unwrap_or_else(|| "0".to_owned());
    let mut m = MediaDescription::new(
        offered.kind.clone(),
        0,
        offered.protocol.clone(),
        vec![first],
    );
    if let Some(mid) = offered.mid() {
        m.attributes.push(Attribute::new("mid", mid));
    }
    m
}

/// Whether to run SRTP on an offered m-line, and with which of its crypto lines.
pub(crate) fn choose_srtp(
    media: &MediaDescription,
    config: &OfferAnswerConfig,
) -> Result<Option<CryptoAttribute>, SdpError> {
    let sdes = match &media.protocol {
        p if p.is_sdes_srtp() => true,
        p if p.is_plain_rtp() => false,
        _ => return Err(SdpError::UnsupportedProtocol),
    };
    if config.srtp == SrtpPolicy::Off {
        return if sdes {
            Err(SdpError::SrtpDisabled)
        } else {
            Ok(None)
        };
    }
    let usable: Vec<CryptoAttribute> = media
        .crypto()
        .into_iter()
        .filter_map(log_unusable)
        .collect();
    let best = config
        .srtp_suites
        .iter()
        .find_map(|suite| usable.iter().find(|c| c.suite == *suite))
        .cloned();
    match (best, sdes, config.srtp) {
        (Some(c), _, _) => Ok(Some(c)),
        (None, true, _) => Err(SdpError::NoUsableCrypto),
        (None, false, SrtpPolicy::Required) => Err(SdpError::SrtpRequired),
        (None, false, _) => Ok(None),
    }
}

fn log_unusable(parsed: Result<CryptoAttribute, SdesError>) -> Option<CryptoAttribute> {
    parsed
        .map_err(|e| tracing::debug!(error = %e, "skipping offered crypto line"))
        .ok()
}

fn accept_audio(
    offer: &SessionDescription,
    index: usize,
    offered: &MediaDescription,
    local: &LocalSession,
    local_rtp: SocketAddr,
    config: &OfferAnswerConfig,
) -> Result<(MediaDescription, Negotiated), SdpError> {
    let remote_crypto = choose_srtp(offered, config)?;
    let (codec, pt) = pick_codec(offered, &config.codecs).ok_or(SdpError::NoCommonCodec)?;
    let transport = RemoteTransport::of(offer, index, offered, true)?;
    let telephone_event = if config.telephone_event {
        pick_telephone_event(offered, codec.clock_rate())
    } else {
        None
    };
    let comfort_noise = config
        .comfort_noise
        .then(|| pick_comfort_noise(offered, codec.clock_rate()))
        .flatten();
    let direction = transport.direction(offer, index).reversed();
    let mut ptime_ms = offered.ptime_ms().unwrap_or(config.ptime_ms);
    if let Some(max) = offered.maxptime_ms() {
        ptime_ms = ptime_ms.min(max);
    }
    let srtp = answer_keys(local, Stream::Audio, remote_crypto)?;
    let fmtp = offered.fmtp(pt).map(|f| f.params);

    let mut formats = vec![pt.to_string()];
    let mut attributes = Vec::new();
    if let Some(mid) = offered.mid() {
        attributes.push(Attribute::new("mid", mid));
    }
    let rtpmap = codec.rtpmap(pt);
    attributes.push(Attribute::new("rtpmap", &rtpmap));
    if let Some(params) = &fmtp {
        attributes.push(Attribute::new("fmtp", format!("{pt} {params}")));
    }
    if let Some(te) = telephone_event {
        formats.push(te.payload_type.to_string());
        let map = Rtpmap {
            payload_type: te.payload_type,
            encoding: TELEPHONE_EVENT.to_owned(),
            clock_rate: te.clock_rate,
            channels: None,
        };
        attributes.push(Attribute::new("rtpmap", map));
        let events = offered.fmtp(te.payload_type).map(|f| f.params);
        let events = events
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_EVENTS.to_owned());
        attributes.push(Attribute::new(
            "fmtp",
            format!("{} {events}", te.payload_type),
        ));
    }
    if let Some(pt) = comfort_noise {
        formats.push(pt.to_string());
        let map = Rtpmap {
            payload_type: pt,
            encoding: "CN".to_owned(),
            clock_rate: codec.clock_rate(),
            channels: None,
        };
        attributes.push(Attribute::new("rtpmap", map));
    }
    attributes.push(Attribute::new("ptime", ptime_ms));
    attributes.push(Attribute::flag(direction.attribute()));
    if transport.rtcp_mux {
        attributes.push(Attribute::flag("rtcp-mux"));
    }
    if let Some(keys) = &srtp {
        attributes.push(Attribute::new("crypto", &keys.local));
    }
    if let Some(source) = &local.source {
        attributes.push(source.attribute());
    }
    let answer = MediaDescription {
        attributes,
        ..MediaDescription::new(
            MediaKind::Audio,
            local_rtp.port(),
            answer_protocol(&offered.protocol),
            formats,
        )
    };
    let negotiated = Negotiated {
        media_index: index,
        remote_rtp: transport.rtp,
        remote_rtcp: transport.rtcp,
        rtcp_mux: transport.rtcp_mux,
        codec: NegotiatedCodec {
            codec,
            payload_type: pt,
            clock_rate: codec.clock_rate(),
            sample_rate: codec.sample_rate(),
            channels: codec.channels(),
            ptime_ms,
            fmtp,
        },
        telephone_event,
        comfort_noise,
        direction,
        srtp,
        remote_ssrc: offered.ssrcs().first().map(|s| s.ssrc),
        remote_max_bitrate_bps: max_bitrate_bps(offer, offered),
        video: None,
    };
    Ok((answer, negotiated))
}

/// The keys of an m-line answered with SRTP: the offer's, and ours for `stream` in its suite
/// under its tag.
fn answer_keys(
    local: &LocalSession,
    stream: Stream,
    remote: Option<CryptoAttribute>,
) -> Result<Option<SrtpKeys>, SdpError> {
    let Some(remote) = remote else {
        return Ok(None);
    };
    let local = (local.srtp_key(stream, remote.tag, remote.suite)).map_err(SdpError::Keying)?;
    Ok(Some(SrtpKeys { local, remote }))
}

/// Answers the offered video m-line at `index` on our `video_rtp` (see the module docs).
fn accept_video(
    offer: &SessionDescription,
    index: usize,
    offered: &MediaDescription,
    local: &LocalSession,
    video_rtp: SocketAddr,
    config: &OfferAnswerConfig,
    video: &VideoConfig,
) -> Result<(MediaDescription, VideoSession), SdpError> {
    let remote_crypto = choose_srtp(offered, config)?;
    let transport = RemoteTransport::of(offer, index, offered, true)?;
    let direction = transport.direction(offer, index);
    let (mut answer, negotiated) = answer_video(offered, direction, video_rtp.port(), video)?;
    let srtp = answer_keys(local, Stream::Video, remote_crypto)?;
    if let Some(keys) = &srtp {
        answer
            .attributes
            .push(Attribute::new("crypto", &keys.local));
    }
    if let Some(cname) = local.source.as_ref().map(|s| s.cname.as_str()) {
        announce_sources(&mut answer.attributes, &local.video_sources, cname);
    }
    let session = VideoSession {
        // The m-line's cap, else the session's.
        media: NegotiatedVideo {
            remote_max_bps: max_bitrate_bps(offer, offered).filter(|&b| b > 0),
            ..negotiated
        },
        media_index: index,
        remote_rtp: transport.rtp,
        remote_rtcp: transport.rtcp,
        rtcp_mux: transport.rtcp_mux,
        srtp,
        remote_sources: announced_sources(offered),
        receive_all: offered.attribute(LAYOUT_ATTRIBUTE) == Some("all"),
    };
    Ok((answer, session))
}

/// The answer keeps the offer's profile (RTP/AVP stays RTP/AVP even with SRTP, see the
/// module docs).
fn answer_protocol(offered: &Protocol) -> Protocol {
    offered.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Direction;
    use crate::sdp::codec::Codec;
    use crate::sdp::testdata::*;
    use chorus_engine::rtp::Pt;
    use chorus_engine::srtp::SrtpSuite;

    fn local() -> LocalSession {
        LocalSession::new(1000, "192.0.2.50".parse().unwrap())
    }

    fn rtp() -> SocketAddr {
        "192.0.2.50:30000".parse().unwrap()
    }

    fn answer_with(
        offer: &str,
        config: &OfferAnswerConfig,
    ) -> Result<(SessionDescription, Negotiated), SdpError> {
        let offer: SessionDescription = offer.parse().expect("sample parses");
        let (answer, n) = answer_offer(&offer, &mut local(), rtp(), config)?;
        assert_eq!(
            answer.media.len(),
            offer.media.len(),
            "one m-line per offered m-line"
        );
        for (a, o) in answer.media.iter().zip(&offer.media) {
            assert_eq!(a.kind, o.kind);
        }
        let text = answer.to_string();
        let reparsed: SessionDescription = text.parse().expect("answer parses");
        assert_eq!(reparsed, answer, "round trip");
        Ok((answer, n))
    }

    fn accept(offer: &str) -> (SessionDescription, Negotiated) {
        answer_with(offer, &OfferAnswerConfig::default()).expect("accepted")
    }

    fn crypto_line(sdp: &SessionDescription) -> CryptoAttribute {
        let value = sdp.media[0].attribute("crypto").expect("crypto in answer");
        CryptoAttribute::parse(value).expect("our crypto parses")
    }

    #[test]
    fn baresip_savp_opus_with_rtcp_mux() {
        let (answer, n) = accept(BARESIP);
        assert_eq!(n.codec.codec, Codec::Opus);
        assert_eq!(n.codec.payload_type, Pt(115));
        assert_eq!((n.codec.clock_rate, n.codec.channels), (48_000, 2));
        assert!(n.rtcp_mux);
        assert_eq!(n.remote_rtp, "127.0.0.1:10120".parse().unwrap());
        assert_eq!(n.remote_rtcp, n.remote_rtp);
        let keys = n.srtp.as_ref().expect("srtp");
        assert_eq!(keys.suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(keys.remote.tag, 1);
        assert_eq!(keys.local.tag, 1);
        assert_ne!(keys.local.key_material, keys.remote.key_material);
        let m = &answer.media[0];
        assert_eq!(m.protocol, Protocol::RtpSavp);
        assert_eq!(m.port, 30000);
        assert!(m.rtcp_mux());
        assert_eq!(crypto_line(&answer), keys.local);
        let inline = m
            .attribute("crypto")
            .unwrap()
            .split("inline:")
            .nth(1)
            .unwrap();
        assert_eq!(inline.len(), 40, "30 bytes in base64");
        assert_eq!(m.rtpmap(Pt(115)).unwrap().to_string(), "115 opus/48000/2");
        assert_eq!(answer.connection.as_ref().unwrap().address, "192.0.2.50");
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(m.direction(), Some(Direction::SendRecv));
    }

    #[test]
    fn comfort_noise_is_accepted_when_offered_at_the_codecs_clock() {
        // A gateway's offer: static CN (13) with no rtpmap, and wideband CN we do not use.
        let gateway = "v=0\r\no=gw 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                       m=audio 4000 RTP/AVP 0 13 118 101\r\na=rtpmap:118 CN/16000\r\n\
                       a=rtpmap:101 telephone-event/8000\r\n";
        let (answer, n) = accept(gateway);
        assert_eq!(n.codec.codec, Codec::Pcmu);
        assert_eq!(n.comfort_noise, Some(Pt(13)));
        assert_eq!(answer.media[0].formats, ["0", "101", "13"]);
        assert_eq!(
            answer.media[0].rtpmap(Pt(13)).unwrap().to_string(),
            "13 CN/8000"
        );
        // Not offered, or turned off: none.
        let (answer, n) = accept(&gateway.replace(" 13 118", ""));
        assert_eq!((n.comfort_noise, answer.media[0].formats.len()), (None, 2));
        let off = OfferAnswerConfig {
            comfort_noise: false,
            ..OfferAnswerConfig::default()
        };
        let (_, n) = answer_with(gateway, &off).unwrap();
        assert_eq!(n.comfort_noise, None);
    }

    #[test]
    fn linphone_offer() {
        let (answer, n) = accept(LINPHONE);
        assert_eq!(n.codec.codec, Codec::Opus);
        assert_eq!(n.codec.payload_type, Pt(96));
        assert_eq!(n.codec.fmtp.as_deref(), Some("useinbandfec=1"));
        let te = n.telephone_event.unwrap();
        assert_eq!((te.payload_type, te.clock_rate), (Pt(101), 48_000));
        assert!(n.srtp.is_none());
        assert_eq!(n.remote_rtcp, "192.168.1.20:7079".parse().unwrap());
        assert_eq!(answer.media[0].formats, ["96", "101"]);
        assert!(!answer.media[0].rtcp_mux());
        assert_eq!(answer.media[0].fmtp(Pt(101)).unwrap().params, "0-16");
    }

    #[test]
    fn sipp_default_offer() {
        let (answer, n) = accept(SIPP);
        assert_eq!(n.codec.codec, Codec::Pcmu);
        assert_eq!(n.codec.payload_type, Pt(0));
        assert_eq!(n.telephone_event.unwrap().payload_type, Pt(101));
        assert_eq!(n.codec.ptime_ms, 20);
        assert!(n.srtp.is_none() && !n.rtcp_mux);
        assert_eq!(n.remote_rtcp, "127.0.0.1:6001".parse().unwrap());
        let m = &answer.media[0];
        assert_eq!(m.protocol, Protocol::RtpAvp);
        assert_eq!(m.formats, ["0", "101"]);
        assert_eq!(m.ptime_ms(), Some(20));
        assert!(!m.has_attribute("crypto"));
        assert_eq!(m.fmtp(Pt(101)).unwrap().params, "0-11");
    }

    #[test]
    fn carrier_trunk_offer() {
        let (answer, n) = accept(CARRIER);
        assert_eq!(
            n.codec.codec,
            Codec::Pcmu,
            "PCMU before PCMA in our preference"
        );
        assert_eq!(n.codec.ptime_ms, 20);
        assert!(!n.rtcp_mux);
        assert_eq!(n.remote_rtcp, "203.0.113.7:41001".parse().unwrap());
        assert_eq!(n.telephone_event.unwrap().payload_type, Pt(100));
        assert_eq!(n.remote_max_bitrate_bps, Some(64_000));
        assert!(!answer.media[0].rtcp_mux());
        let config = OfferAnswerConfig {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            ..OfferAnswerConfig::default()
        };
        let (_, n) = answer_with(CARRIER, &config).unwrap();
        assert_eq!(n.codec.codec, Codec::Pcma);
    }

    #[test]
    fn paused_simulcast_layers_do_not_pair_rids_with_the_wrong_ssrcs() {
        use crate::sdp::VideoConfig;
        // SIM lists all three SSRCs lowest first; the RIDs send h and m, l paused.
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 5000 RTP/AVP 0\r\n\
            m=video 5002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=rtcp-mux\r\n\
            a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
            a=rid:h send max-height=720\r\na=rid:m send max-height=360\r\n\
            a=rid:l send max-height=180\r\na=simulcast:send h;m;~l\r\n\
            a=ssrc:1 cname:x\r\na=ssrc:2 cname:x\r\na=ssrc:3 cname:x\r\n\
            a=ssrc-group:SIM 1 2 3\r\n";
        let config = OfferAnswerConfig {
            video: Some(VideoConfig::default()),
            ..OfferAnswerConfig::default()
        };
        let mut session = local();
        session.video_rtp = Some("192.0.2.50:30002".parse().unwrap());
        let (_, n) = answer_offer(&offer.parse().unwrap(), &mut session, rtp(), &config).unwrap();
        let engine = crate::media_leg::video_config(&n.video.unwrap(), 0);
        let layers: Vec<_> = (engine.producer.unwrap().encodings.iter())
            .map(|e| (e.rid.clone().unwrap(), e.height, e.ssrc))
            .collect();
        assert_eq!(
            layers,
            [("m".to_owned(), 360, None), ("h".to_owned(), 720, None)],
            "two layers by RID, their SSRCs learned from the rid extension"
        );
    }

    #[test]
    fn sip_video_endpoint_gets_its_video_answered() {
        use crate::sdp::VideoConfig;
        // A baresip-style call: VP8 on its own port, plain RTP, no rtcp-mux, no a=ssrc.
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 5000 RTP/AVP 0\r\na=sendrecv\r\n\
            m=video 5002 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n\
            a=rtcp-fb:100 nack pli\r\na=sendrecv\r\n";
        let config = OfferAnswerConfig {
            video: Some(VideoConfig::default()),
            ..OfferAnswerConfig::default()
        };
        let offer: SessionDescription = offer.parse().unwrap();
        let mut session = local();
        session.video_rtp = Some("192.0.2.50:30002".parse().unwrap());
        let (answer, n) = answer_offer(&offer, &mut session, rtp(), &config).unwrap();
        let m = &answer.media[1];
        assert_eq!(
            (m.port, m.formats.as_slice()),
            (30002, ["100".to_owned()].as_slice())
        );
        assert!(!m.rtcp_mux(), "rtcp-mux only echoed");
        assert!(!m.has_attribute("crypto"));
        let v = n.video.unwrap();
        assert_eq!(v.remote_rtp, "10.0.0.1:5002".parse().unwrap());
        assert_eq!(v.remote_rtcp, "10.0.0.1:5003".parse().unwrap());
        assert!(v.remote_sources.is_empty() && !v.receive_all && v.srtp.is_none());
        assert!(v.media.feedback.pli && !v.media.feedback.nack);
        let engine = crate::media_leg::video_config(&v, 0);
        assert_eq!(
            engine.layout,
            chorus_engine::runtime::VideoLayout::ActiveSpeaker
        );
        let p = engine.producer.unwrap();
        assert_eq!(p.encodings.len(), 1);
        assert_eq!(
            (p.encodings[0].ssrc, p.encodings[0].rid.as_ref()),
            (None, None)
        );

        // The peer's cap: the session's `b=AS` when the m-line has none; a huge one saturates
        // rather than overflows.
        for (line, want) in [("b=AS:500", 500_000), ("b=AS:18446744073709552", u64::MAX)] {
            let capped = offer
                .to_string()
                .replace("t=0 0\r\n", &format!("{line}\r\nt=0 0\r\n"));
            let capped: SessionDescription = capped.parse().unwrap();
            let (_, n) = answer_offer(&capped, &mut session, rtp(), &config).unwrap();
            assert_eq!(n.video.unwrap().media.remote_max_bps, Some(want), "{line}");
            let m = capped.to_string().replace(
                "m=video 5002 RTP/AVP 100\r\n",
                &format!("m=video 5002 RTP/AVP 100\r\n{line}\r\n"),
            );
            let m: SessionDescription = m.parse().unwrap();
            let (_, n) = answer_offer(&m, &mut session, rtp(), &config).unwrap();
            assert_eq!(
                n.video.unwrap().media.remote_max_bps,
                Some(want),
                "media {line}"
            );
        }

        // Video on the audio's own address (bundled without BUNDLE) is refused, audio kept.
        let bundled = offer.to_string().replace("m=video 5002", "m=video 5000");
        let bundled: SessionDescription = bundled.parse().unwrap();
        let (answer, n) = answer_offer(&bundled, &mut session, rtp(), &config).unwrap();
        assert_eq!((answer.media[1].port, n.video.is_none()), (0, true));
        assert_eq!(answer.media[0].port, 30000);
    }

    #[test]
    fn webrtc_ish_video_gets_port_zero() {
        let (answer, n) = accept(WEBRTCISH);
        assert_eq!(n.media_index, 0);
        assert_eq!(n.codec.codec, Codec::Opus);
        assert_eq!(n.telephone_event.unwrap().clock_rate, 48_000);
        assert_eq!(answer.media[0].mid(), Some("0"));
        let video = &answer.media[1];
        assert_eq!(
            (video.port, video.formats.as_slice()),
            (0, ["96".to_owned()].as_slice())
        );
        assert_eq!(video.protocol, Protocol::RtpSavpf);
        assert_eq!(video.mid(), Some("1"));
        assert_eq!(n.srtp.unwrap().suite(), SrtpSuite::AeadAes128Gcm);
        assert_eq!(n.remote_ssrc, Some(chorus_engine::rtp::Ssrc(1_111_111_111)));
    }

    #[test]
    fn gcm_preferred_over_cm() {
        let (answer, n) = accept(GCM_AND_CM);
        let keys = n.srtp.unwrap();
        assert_eq!(keys.suite(), SrtpSuite::AeadAes256Gcm);
        assert_eq!(keys.remote.tag, 2);
        let ours = crypto_line(&answer);
        assert_eq!((ours.tag, ours.suite), (2, SrtpSuite::AeadAes256Gcm));
        assert_eq!(ours.key_material.key().len(), 32);
        let inline = answer.media[0]
            .attribute("crypto")
            .unwrap()
            .split("inline:")
            .nth(1)
            .unwrap();
        assert!(
            inline.ends_with('='),
            "offer's key was unpadded, ours is padded"
        );
        assert_eq!(answer.media[0].attribute_values("crypto").count(), 1);
        let cm_first = OfferAnswerConfig {
            srtp_suites: vec![SrtpSuite::AesCm128HmacSha1_80],
            ..OfferAnswerConfig::default()
        };
        let (_, n) = answer_with(GCM_AND_CM, &cm_first).unwrap();
        assert_eq!(n.srtp.unwrap().remote.tag, 3);
    }

    #[test]
    fn required_policy_refuses_plain() {
        let required = OfferAnswerConfig {
            srtp: SrtpPolicy::Required,
            ..OfferAnswerConfig::default()
        };
        let e = answer_with(SIPP, &required).unwrap_err();
        assert_eq!(e, SdpError::SrtpRequired);
        assert_eq!(e.sip_status(), 488);
        assert!(e.warning().is_some());
        assert!(answer_with(BARESIP, &required).unwrap().1.srtp.is_some());
    }

    #[test]
    fn off_policy_refuses_savp_and_answers_avp_crypto_plain() {
        let off = OfferAnswerConfig {
            srtp: SrtpPolicy::Off,
            ..OfferAnswerConfig::default()
        };
        let e = answer_with(BARESIP, &off).unwrap_err();
        assert_eq!((e.clone(), e.sip_status()), (SdpError::SrtpDisabled, 488));
        let (answer, n) = answer_with(AVP_WITH_CRYPTO, &off).unwrap();
        assert!(n.srtp.is_none());
        assert!(!answer.media[0].has_attribute("crypto"));
    }

    #[test]
    fn avp_with_crypto_is_best_effort_srtp() {
        let (answer, n) = accept(AVP_WITH_CRYPTO);
        assert_eq!(answer.media[0].protocol, Protocol::RtpAvp);
        assert_eq!(n.srtp.unwrap().suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert!(answer.media[0].has_attribute("crypto"));
        // Only unusable crypto (unknown suite): plain under Optional.
        let odd = AVP_WITH_CRYPTO.replace("AES_CM_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_80");
        let (answer, n) = answer_with(&odd, &OfferAnswerConfig::default()).unwrap();
        assert!(n.srtp.is_none());
        assert!(!answer.media[0].has_attribute("crypto"));
        // Unusable crypto on RTP/SAVP is a 488.
        let odd = BARESIP.replace("AES_CM_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_80");
        assert_eq!(
            answer_with(&odd, &OfferAnswerConfig::default()).unwrap_err(),
            SdpError::NoUsableCrypto
        );
    }

    #[test]
    fn hold_and_resume() {
        let mut session = local();
        let offer: SessionDescription = SIPP.parse().unwrap();
        let (a1, n1) =
            answer_offer(&offer, &mut session, rtp(), &OfferAnswerConfig::default()).unwrap();
        assert_eq!(n1.direction, Direction::SendRecv);
        let hold: SessionDescription = SIPP.replace("a=sendrecv", "a=sendonly").parse().unwrap();
        let (a2, n2) =
            answer_offer(&hold, &mut session, rtp(), &OfferAnswerConfig::default()).unwrap();
        assert_eq!(n2.direction, Direction::RecvOnly);
        assert_eq!(a2.media[0].direction(), Some(Direction::RecvOnly));
        assert_eq!(a2.origin.session_version, a1.origin.session_version + 1);
        let inactive: SessionDescription =
            SIPP.replace("a=sendrecv", "a=inactive").parse().unwrap();
        let (a3, n3) = answer_offer(
            &inactive,
            &mut session,
            rtp(),
            &OfferAnswerConfig::default(),
        )
        .unwrap();
        assert_eq!(n3.direction, Direction::Inactive);
        assert_eq!(a3.media[0].direction(), Some(Direction::Inactive));
        let (a4, n4) =
            answer_offer(&offer, &mut session, rtp(), &OfferAnswerConfig::default()).unwrap();
        assert_eq!(n4.direction, Direction::SendRecv);
        assert_eq!(a4.origin.session_version, a1.origin.session_version + 3);
        assert_eq!(a4.origin.session_id, a1.origin.session_id);
        // Session-level direction applies when the media has none.
        let session_level: SessionDescription = SIPP
            .replace("a=sendrecv\r\n", "")
            .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")
            .parse()
            .unwrap();
        let (_, n5) = answer_offer(
            &session_level,
            &mut session,
            rtp(),
            &OfferAnswerConfig::default(),
        )
        .unwrap();
        assert_eq!(n5.direction, Direction::RecvOnly);
    }

    #[test]
    fn rfc2543_hold_address() {
        let hold = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let (answer, n) = answer_with(&hold, &OfferAnswerConfig::default()).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(!n.direction.sends());
        assert_eq!(answer.media[0].direction(), Some(Direction::RecvOnly));
    }

    #[test]
    fn g722_keeps_8000_clock() {
        let config = OfferAnswerConfig {
            codecs: vec![Codec::G722, Codec::Pcmu],
            ..OfferAnswerConfig::default()
        };
        let (answer, n) = answer_with(LINPHONE, &config).unwrap();
        assert_eq!(n.codec.codec, Codec::G722);
        assert_eq!(
            (
                n.codec.payload_type,
                n.codec.clock_rate,
                n.codec.sample_rate
            ),
            (Pt(9), 8_000, 16_000)
        );
        assert_eq!(
            answer.media[0].rtpmap(Pt(9)).unwrap().to_string(),
            "9 G722/8000"
        );
        assert_eq!(n.telephone_event.unwrap().payload_type, Pt(100));
    }

    #[test]
    fn opus_48000_2_and_maxptime() {
        let (answer, n) = accept(WEBRTCISH);
        assert_eq!(
            answer.media[0].rtpmap(Pt(111)).unwrap().to_string(),
            "111 opus/48000/2"
        );
        assert_eq!(
            (n.codec.clock_rate, n.codec.sample_rate, n.codec.channels),
            (48_000, 48_000, 2)
        );
        assert_eq!(n.codec.ptime_ms, 20);
        let capped = WEBRTCISH.replace("a=maxptime:120", "a=maxptime:10");
        let (answer, n) = answer_with(&capped, &OfferAnswerConfig::default()).unwrap();
        assert_eq!(n.codec.ptime_ms, 10);
        assert_eq!(answer.media[0].ptime_ms(), Some(10));
    }

    #[test]
    fn unknown_codecs_only_is_488() {
        let e = answer_with(UNKNOWN_CODECS, &OfferAnswerConfig::default()).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
        assert_eq!(e.sip_status(), 488);
        assert_eq!(e.warning().map(|w| w.0), Some(305));
    }

    #[test]
    fn no_audio_is_488_304() {
        let video_only = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                          m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
        let e = answer_with(video_only, &OfferAnswerConfig::default()).unwrap_err();
        assert_eq!((e.sip_status(), e.warning().map(|w| w.0)), (488, Some(304)));
        let dtls = WEBRTCISH.replace("RTP/SAVPF", "UDP/TLS/RTP/SAVPF");
        assert_eq!(
            answer_with(&dtls, &OfferAnswerConfig::default()).unwrap_err(),
            SdpError::UnsupportedProtocol
        );
    }

    #[test]
    fn second_audio_line_is_refused_and_first_bad_one_skipped() {
        let two = format!("{SIPP}m=audio 7000 RTP/AVP 8\r\n");
        let (answer, n) = accept(&two);
        assert_eq!(n.media_index, 0);
        assert_eq!(answer.media[1].port, 0);
        let bad_then_good = SIPP.replace(
            "m=audio 6000 RTP/AVP 0 101",
            "m=audio 6000 RTP/AVP 18\r\nm=audio 6002 RTP/AVP 0 101",
        );
        let (answer, n) = accept(&bad_then_good);
        assert_eq!(
            (n.media_index, answer.media[0].port, answer.media[1].port),
            (1, 0, 30000)
        );
    }

    #[test]
    fn reoffer_keeps_our_key_while_the_suite_stays() {
        let mut session = local();
        let config = OfferAnswerConfig::default();
        let first: SessionDescription = BARESIP.parse().unwrap();
        let (_, n1) = answer_offer(&first, &mut session, rtp(), &config).unwrap();
        let hold: SessionDescription = BARESIP.replace("a=sendrecv", "a=sendonly").parse().unwrap();
        let (_, n2) = answer_offer(&hold, &mut session, rtp(), &config).unwrap();
        let (k1, k2) = (n1.srtp.unwrap(), n2.srtp.unwrap());
        assert_eq!(k1.local, k2.local);
        let gcm: SessionDescription = GCM_AND_CM.parse().unwrap();
        let (_, n3) = answer_offer(&gcm, &mut session, rtp(), &config).unwrap();
        let k3 = n3.srtp.unwrap();
        assert_eq!(
            (k3.local.tag, k3.local.suite),
            (2, SrtpSuite::AeadAes256Gcm)
        );
        let (_, n4) = answer_offer(&first, &mut session, rtp(), &config).unwrap();
        assert_ne!(
            n4.srtp.unwrap().local,
            k1.local,
            "suite changed twice: fresh key"
        );
    }

    #[test]
    fn ipv6_media_level_connection_and_tias() {
        let v6 = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n\
                  m=audio 5000 RTP/AVP 8\r\nc=IN IP6 2001:db8::7\r\nb=TIAS:64000\r\nb=AS:90\r\n";
        let offer: SessionDescription = v6.parse().unwrap();
        let mut session = LocalSession::new(5, "2001:db8::50".parse().unwrap());
        let local_rtp: SocketAddr = "[2001:db8::50]:30000".parse().unwrap();
        let (answer, n) = answer_offer(
            &offer,
            &mut session,
            local_rtp,
            &OfferAnswerConfig::default(),
        )
        .unwrap();
        assert_eq!(n.remote_rtp, "[2001:db8::7]:5000".parse().unwrap());
        assert_eq!(n.remote_rtcp, "[2001:db8::7]:5001".parse().unwrap());
        assert_eq!(n.remote_max_bitrate_bps, Some(64_000));
        assert_eq!(n.codec.codec, Codec::Pcma);
        assert_eq!(
            answer.connection.as_ref().unwrap().to_string(),
            "IN IP6 2001:db8::50"
        );
        assert_eq!(answer.origin.connection.to_string(), "IN IP6 2001:db8::50");
        let no_address = v6
            .replace("c=IN IP6 2001:db8::7\r\n", "")
            .replace("c=IN IP4 10.9.9.9\r\n", "");
        let e = answer_with(&no_address, &OfferAnswerConfig::default()).unwrap_err();
        assert_eq!(
            (e.clone(), e.sip_status()),
            (SdpError::NoConnectionAddress, 488)
        );
    }
}
