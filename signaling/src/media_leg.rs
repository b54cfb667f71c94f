//! What a negotiation (`sdp::Negotiated`) means for a media leg: its `LegConfig` as data for
//! the engine, shared by the UAS (answered calls), the UAC users (dial-out, the load
//! generator).

use chorus_engine::codecs::AudioCodec;
use chorus_engine::runtime::{AudioFormat, LegConfig, LegId, SrtpKey, TelephoneEventPt};

use crate::sdp::{Codec, Negotiated};

/// The (inbound, outbound) SRTP keys of a negotiation; None for plain RTP.
pub fn srtp_keys(neg: &Negotiated) -> (Option<SrtpKey>, Option<SrtpKey>) {
    let key = |c: &chorus_engine::srtp::sdes::CryptoAttribute| SrtpKey {
        suite: c.suite,
        key: c.key_material.key().to_vec(),
        salt: c.key_material.salt().to_vec(),
    };
    match &neg.srtp {
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
