//! What we are willing to negotiate: codecs, SRTP policy and suites, packet time.

use chorus_engine::srtp::SrtpSuite;

use super::codec::Codec;
use super::video::VideoConfig;

/// Whether media must, may or must not be SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Accept SRTP when offered (RTP/SAVP, or RTP/AVP with `a=crypto` as best effort), plain
    /// RTP otherwise; our offers are RTP/AVP with `a=crypto` lines.
    #[default]
    Optional,
    /// Refuse plain media (488); our offers are RTP/SAVP.
    Required,
    /// Refuse RTP/SAVP (488); answer RTP/AVP offers plain even with `a=crypto` lines; our
    /// offers carry no crypto.
    Off,
}

/// Offer/answer preferences for one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferAnswerConfig {
    /// Codecs in our order of preference; the first one the offer has wins.
    pub codecs: Vec<Codec>,
    /// SRTP policy.
    pub srtp: SrtpPolicy,
    /// SRTP suites in our order of preference; also the crypto lines of our offers.
    pub srtp_suites: Vec<SrtpSuite>,
    /// Packet time we ask for when the offer gives none, in milliseconds.
    pub ptime_ms: u32,
    /// Whether to negotiate RFC 4733 `telephone-event`.
    pub telephone_event: bool,
    /// Whether to offer and accept RFC 3389 comfort noise (`CN/8000`, with the 8 kHz-clock
    /// codecs): a gateway may then send CN during silence instead of audio. What the mixer
    /// sends stays audio.
    pub comfort_noise: bool,
    /// Video for the SFU: offer and accept one m=video at the session's `video_rtp`
    /// (`LocalSession`). None: video m-lines are answered with port 0 and never offered.
    pub video: Option<VideoConfig>,
}

impl OfferAnswerConfig {
    /// Default SRTP suite preference: GCM first (AEAD, cheaper per packet), then AES-CM with
    /// the 80-bit tag, then the 32-bit one.
    pub const DEFAULT_SUITES: [SrtpSuite; 4] = [
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];
}

impl Default for OfferAnswerConfig {
    fn default() -> Self {
        OfferAnswerConfig {
            codecs: Codec::DEFAULT_PREFERENCE.to_vec(),
            srtp: SrtpPolicy::default(),
            srtp_suites: Self::DEFAULT_SUITES.to_vec(),
            ptime_ms: 20,
            telephone_event: true,
            comfort_noise: true,
            video: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = OfferAnswerConfig::default();
        assert_eq!(
            c.codecs,
            [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma]
        );
        assert_eq!(c.srtp, SrtpPolicy::Optional);
        assert_eq!(c.srtp_suites.first(), Some(&SrtpSuite::AeadAes256Gcm));
        assert_eq!(c.ptime_ms, 20);
    }
}
