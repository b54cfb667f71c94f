//! The transport protocol of an m-line.

use std::fmt;

/// The `<proto>` field of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `RTP/AVP` (RFC 3551): plain RTP, or SDES SRTP best effort when `a=crypto` is present.
    RtpAvp,
    /// `RTP/SAVP` (RFC 3711): SRTP.
    RtpSavp,
    /// `RTP/AVPF` (RFC 4585): RTP with RTCP feedback.
    RtpAvpf,
    /// `RTP/SAVPF` (RFC 5124): SRTP with RTCP feedback.
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVPF` (RFC 5764): DTLS-SRTP, as WebRTC offers.
    UdpTlsRtpSavpf,
    /// Anything else, kept as written.
    Other(String),
}

impl Protocol {
    /// The protocol for a `<proto>` token (RTP profiles case-insensitively).
    pub fn parse(token: &str) -> Self {
        const KNOWN: [(&str, Protocol); 5] = [
            ("RTP/AVP", Protocol::RtpAvp),
            ("RTP/SAVP", Protocol::RtpSavp),
            ("RTP/AVPF", Protocol::RtpAvpf),
            ("RTP/SAVPF", Protocol::RtpSavpf),
            ("UDP/TLS/RTP/SAVPF", Protocol::UdpTlsRtpSavpf),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map_or_else(|| Protocol::Other(token.to_owned()), |(_, p)| p)
    }

    /// The SDP token.
    pub fn token(&self) -> &str {
        match self {
            Protocol::RtpAvp => "RTP/AVP",
            Protocol::RtpSavp => "RTP/SAVP",
            Protocol::RtpAvpf => "RTP/AVPF",
            Protocol::RtpSavpf => "RTP/SAVPF",
            Protocol::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            Protocol::Other(s) => s,
        }
    }

    /// Whether the profile is SDES-keyed SRTP (`RTP/SAVP`, `RTP/SAVPF`).
    pub fn is_sdes_srtp(&self) -> bool {
        matches!(self, Protocol::RtpSavp | Protocol::RtpSavpf)
    }

    /// Whether the profile is plain RTP (`RTP/AVP`, `RTP/AVPF`).
    pub fn is_plain_rtp(&self) -> bool {
        matches!(self, Protocol::RtpAvp | Protocol::RtpAvpf)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tokens_round_trip() {
        for token in [
            "RTP/AVP",
            "RTP/SAVP",
            "RTP/AVPF",
            "RTP/SAVPF",
            "UDP/TLS/RTP/SAVPF",
        ] {
            let p = Protocol::parse(token);
            assert!(!matches!(p, Protocol::Other(_)), "{token}");
            assert_eq!(p.token(), token);
        }
        assert_eq!(Protocol::parse("rtp/savp"), Protocol::RtpSavp);
        assert_eq!(Protocol::parse("udp"), Protocol::Other("udp".into()));
        assert!(Protocol::RtpSavpf.is_sdes_srtp());
        assert!(!Protocol::UdpTlsRtpSavpf.is_sdes_srtp());
        assert!(Protocol::RtpAvpf.is_plain_rtp());
    }
}
