//! The audio codecs Chorus negotiates, and how to recognise them in an offer.

use chorus_engine::rtp::Pt;

use super::rtpmap::Rtpmap;

/// Encoding name of RFC 4733 events.
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// Clock rates at which we take `telephone-event`.
pub const TELEPHONE_EVENT_RATES: [u32; 2] = [8_000, 48_000];

/// A codec the media engine can decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus (RFC 7587): always `opus/48000/2` in SDP whatever is actually sent.
    Opus,
    /// G.722: RTP clock 8000 although it samples at 16 kHz (RFC 3551 section 4.5.2).
    G722,
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// Our default order of preference.
    pub const DEFAULT_PREFERENCE: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

    /// The rtpmap encoding name.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "G722",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate written in rtpmap and used for timestamps.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 8_000,
        }
    }

    /// The audio sample rate the codec works at (differs from the clock for G.722).
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::G722 => 16_000,
            Codec::Pcmu | Codec::Pcma => 8_000,
        }
    }

    /// The channel count written in rtpmap (2 for Opus by RFC 7587).
    pub fn channels(self) -> u8 {
        match self {
            Codec::Opus => 2,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 1,
        }
    }

    /// The RFC 3551 static payload type, if the codec has one.
    pub fn static_pt(self) -> Option<Pt> {
        match self {
            Codec::Pcmu => Some(Pt(0)),
            Codec::Pcma => Some(Pt(8)),
            Codec::G722 => Some(Pt(9)),
            Codec::Opus => None,
        }
    }

    /// The payload type we use when we offer.
    pub fn offer_pt(self) -> Pt {
        self.static_pt().unwrap_or(Pt(111))
    }

    /// Our rtpmap for the codec at `pt`.
    pub fn rtpmap(self, pt: Pt) -> Rtpmap {
        Rtpmap {
            payload_type: pt,
            encoding: self.encoding().to_owned(),
            clock_rate: self.clock_rate(),
            channels: (self == Codec::Opus).then_some(2),
        }
    }

    /// Whether payload type `pt`, with its rtpmap if the description has one, is this codec.
    /// An rtpmap decides when present (name case-insensitively, clock rate, channel count 1 or
    /// absent, 2 or absent for Opus); otherwise only the static payload type.
    pub fn matches(self, pt: Pt, rtpmap: Option<&Rtpmap>) -> bool {
        match rtpmap {
            Some(r) => {
                r.encoding.eq_ignore_ascii_case(self.encoding())
                    && r.clock_rate == self.clock_rate()
                    && r.channels.is_none_or(|c| c == self.channels())
            }
            None => self.static_pt() == Some(pt),
        }
    }

    /// The codec of a payload type among `codecs`, if any.
    pub fn find(codecs: &[Codec], pt: Pt, rtpmap: Option<&Rtpmap>) -> Option<Codec> {
        codecs.iter().copied().find(|c| c.matches(pt, rtpmap))
    }
}

/// Whether an rtpmap is `telephone-event` at a rate we take.
pub fn is_telephone_event(rtpmap: &Rtpmap) -> bool {
    rtpmap.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT)
        && TELEPHONE_EVENT_RATES.contains(&rtpmap.clock_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g722_clock_is_8000_but_samples_16k() {
        assert_eq!(Codec::G722.clock_rate(), 8_000);
        assert_eq!(Codec::G722.sample_rate(), 16_000);
        assert!(Codec::G722.matches(Pt(9), None));
        assert!(!Codec::G722.matches(Pt(9), Rtpmap::parse("9 G722/16000").ok().as_ref()));
    }

    #[test]
    fn opus_is_48000_2() {
        assert_eq!(Codec::Opus.rtpmap(Pt(111)).to_string(), "111 opus/48000/2");
        let r = Rtpmap::parse("96 OPUS/48000/2").unwrap();
        assert!(Codec::Opus.matches(Pt(96), Some(&r)));
        let r = Rtpmap::parse("96 opus/48000").unwrap();
        assert!(Codec::Opus.matches(Pt(96), Some(&r)));
        let r = Rtpmap::parse("96 opus/16000/2").unwrap();
        assert!(!Codec::Opus.matches(Pt(96), Some(&r)));
        assert!(!Codec::Opus.matches(Pt(96), None));
    }

    #[test]
    fn static_and_dynamic_matching() {
        assert_eq!(
            Codec::find(&Codec::DEFAULT_PREFERENCE, Pt(0), None),
            Some(Codec::Pcmu)
        );
        assert_eq!(
            Codec::find(&Codec::DEFAULT_PREFERENCE, Pt(8), None),
            Some(Codec::Pcma)
        );
        assert_eq!(Codec::find(&Codec::DEFAULT_PREFERENCE, Pt(18), None), None);
        let r = Rtpmap::parse("100 PCMA/8000").unwrap();
        assert_eq!(
            Codec::find(&Codec::DEFAULT_PREFERENCE, Pt(100), Some(&r)),
            Some(Codec::Pcma)
        );
        assert!(is_telephone_event(
            &Rtpmap::parse("101 telephone-event/8000").unwrap()
        ));
        assert!(is_telephone_event(
            &Rtpmap::parse("110 telephone-event/48000").unwrap()
        ));
        assert!(!is_telephone_event(
            &Rtpmap::parse("110 telephone-event/16000").unwrap()
        ));
    }
}
