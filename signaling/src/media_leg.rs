//! What a negotiation (`sdp::Negotiated`) means for a media leg: its `LegConfig` as data for
//! the engine, shared by the UAS (answered calls), the UAC users (dial-out, the load
//! generator).

use chorus_engine::codecs::AudioCodec;
use chorus_engine::rtp::Ssrc;
use chorus_engine::runtime::{
    AudioFormat, LegConfig, LegId, SrtpKey, TelephoneEventPt, VideoConfig, VideoLayout,
    VideoReceiveCodec,
};
use chorus_engine::sfu::{EncodingConfig, ExtensionIds, KeyFrameMethod, ProducerConfig, RtxConfig};
use chorus_engine::srtp::sdes::CryptoAttribute;

use crate::sdp::{
    Codec, Extension, Negotiated, SrtpKeys, VIDEO_CLOCK_RATE, VideoSession, VideoSource,
};

/// The (inbound, outbound) SRTP keys of a negotiation; None for plain RTP.
pub fn srtp_keys(neg: &Negotiated) -> (Option<SrtpKey>, Option<SrtpKey>) {
    keys_of(neg.srtp.as_ref())
}

/// The (inbound, outbound) engine keys of an m-line's SDES keys.
fn keys_of(keys: Option<&SrtpKeys>) -> (Option<SrtpKey>, Option<SrtpKey>) {
    let key = |c: &CryptoAttribute| SrtpKey {
        suite: c.suite,
        key: c.key_material.key().to_vec(),
        salt: c.key_material.salt().to_vec(),
    };
    match keys {
        Some(s) => (Some(key(&s.remote)), Some(key(&s.local))),
        None => (None, None),
    }
}

/// The leg's audio format from the answer: the codec and its payload type on this leg (each
/// leg keeps its own mapping; the mixer encodes per codec and writes each leg's type).
pub fn audio_format(neg: &Negotiated) -> AudioFormat {
    let codec = &neg.codec;
    let kind = match codec.codec {
        Codec::Pcmu => AudioCodec::Pcmu,
        Codec::Pcma => AudioCodec::Pcma,
        Codec::G722 => AudioCodec::G722,
        Codec::Opus => AudioCodec::Opus,
    };
    AudioFormat {
        codec: kind,
        pt: codec.payload_type,
        cn_pt: neg.comfort_noise,
        // RFC 6464 levels from `a=extmap` are not negotiated yet: the mixer measures.
        audio_level_ext_id: None,
    }
}

/// A leg for a negotiated session: remote addresses, rtcp-mux, SRTP keys, direction, the
/// remote's SSRC, clock rate, telephone-event types and audio format. Latching, inactivity
/// timeout and socket pair are the caller's to set.
pub fn leg_config(id: LegId, neg: &Negotiated) -> LegConfig {
    let mut cfg = LegConfig::new(id);
    cfg.remote_rtp = Some(neg.remote_rtp);
    cfg.remote_rtcp = (!neg.rtcp_mux).then_some(neg.remote_rtcp);
    cfg.rtcp_mux = neg.rtcp_mux;
    (cfg.srtp_in, cfg.srtp_out) = srtp_keys(neg);
    cfg.send = neg.direction.sends();
    cfg.remote_ssrc = neg.remote_ssrc.map(|s| s.0);
    cfg.clock_rate = neg.codec.clock_rate;
    cfg.telephone_events = (neg.telephone_event.iter())
        .map(|t| TelephoneEventPt {
            pt: t.payload_type,
            clock_rate: t.clock_rate,
        })
        .collect();
    cfg.audio = Some(audio_format(neg));
    cfg
}

/// The picture height a SIP video endpoint is sent at most (it names none in its SDP).
pub const DEFAULT_MAX_HEIGHT: u16 = 1_080;

/// The engine's video for a negotiated video m-line, received on the core's socket `pair`.
///
/// - The peer publishes when it sends: one encoding per simulcast RID, lowest first (by
///   `max-height`, else the offer's order read highest first, RFC 8853's convention), with
///   the SSRCs of its `SIM` group when it gave them; else one per announced SSRC; else one
///   stream learned from its first packet.
/// - It receives when we send: its format, with RTX when negotiated; one stream per publisher
///   when it asked ([`crate::sdp::LAYOUT_ATTRIBUTE`]), else the active speaker's.
pub fn video_config(v: &VideoSession, pair: u16) -> VideoConfig {
    let (srtp_in, srtp_out) = keys_of(v.srtp.as_ref());
    let m = &v.media;
    let producer = m.direction.receives().then(|| producer_config(v));
    let receive = if m.direction.sends() {
        vec![VideoReceiveCodec {
            codec: m.codec,
            pt: m.pt,
            rtx_pt: m.rtx_pt,
        }]
    } else {
        Vec::new()
    };
    VideoConfig {
        remote_rtp: v.remote_rtp,
        remote_rtcp: (!v.rtcp_mux).then_some(v.remote_rtcp),
        rtcp_mux: v.rtcp_mux,
        srtp_in,
        srtp_out,
        pair: Some(pair),
        producer,
        receive,
        layout: if v.receive_all {
            VideoLayout::All
        } else {
            VideoLayout::ActiveSpeaker
        },
        max_height: DEFAULT_MAX_HEIGHT,
        bandwidth_bps: (m.remote_max_bps).map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
        extensions: extension_ids(v),
    }
}

/// The bitrate an encoding `height` lines tall is expected to need until it is measured.
fn expected_bps(height: u16) -> u32 {
    match height {
        0..=240 => 200_000,
        241..=480 => 600_000,
        _ => 1_500_000,
    }
}

/// Heights for `n` layers whose sizes were not signaled: the top at 720 lines, each lower one
/// half the one above.
fn guessed_height(index: usize, n: usize) -> u16 {
    720u16 >> (n - 1 - index).min(4)
}

fn producer_config(v: &VideoSession) -> ProducerConfig {
    let m = &v.media;
    let rtx = |s: &VideoSource| {
        let (ssrc, pt) = (s.rtx?, m.rtx_pt?);
        Some(RtxConfig {
            ssrc: Ssrc(ssrc),
            pt,
        })
    };
    let mut rids = m.simulcast.clone();
    if rids.iter().all(|r| r.max_height.is_some()) {
        rids.sort_by_key(|r| r.max_height);
    } else {
        rids.reverse();
    }
    let n = rids.len().max(v.remote_sources.len()).max(1);
    let encodings = (0..n)
        .map(|i| {
            let source = v.remote_sources.get(i);
            let rid = rids.get(i);
            let height = (rid.and_then(|r| r.max_height)).map_or(guessed_height(i, n), |h| {
                u16::try_from(h).unwrap_or(u16::MAX)
            });
            EncodingConfig {
                ssrc: source.map(|s| Ssrc(s.ssrc)),
                rid: rid.map(|r| r.id.clone()),
                rtx: source.and_then(rtx),
                height,
                max_bitrate_bps: expected_bps(height),
            }
        })
        .collect();
    ProducerConfig {
        codec: m.codec,
        pt: m.pt,
        clock_rate: VIDEO_CLOCK_RATE,
        encodings,
        key_frame_method: if m.feedback.pli || !m.feedback.fir {
            KeyFrameMethod::Pli
        } else {
            KeyFrameMethod::Fir
        },
        nack: m.feedback.nack,
        rid_ext_id: m.extensions.id(Extension::Rid),
        extensions: extension_ids(v),
    }
}

/// The extension ids the SFU carries across, as this m-line numbered them.
fn extension_ids(v: &VideoSession) -> ExtensionIds {
    ExtensionIds {
        abs_send_time: v.media.extensions.id(Extension::AbsSendTime),
    }
}
