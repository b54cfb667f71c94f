//! The one error type of the SDP module: parse failures (a 400 to the peer) and offer/answer
//! failures (a 488 with a Warning).

use chorus_engine::srtp::sdes::SdesError;

/// Why an SDP body could not be parsed, or an offer or answer could not be accepted.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// The body is longer than [`super::MAX_SDP_LEN`].
    #[error("SDP body too large")]
    TooLarge,
    /// The body is not UTF-8.
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    /// A line is not `<letter>=<value>`.
    #[error("line {line}: not a <type>=<value> line")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
    },
    /// The first line is not `v=0`.
    #[error("first line is not v=0")]
    BadVersion,
    /// The `o=` line is missing or malformed.
    #[error("missing or malformed o= line")]
    BadOrigin,
    /// A `c=` line is malformed.
    #[error("line {line}: malformed c= line")]
    BadConnection {
        /// 1-based line number.
        line: usize,
    },
    /// A `b=` line is malformed.
    #[error("line {line}: malformed b= line")]
    BadBandwidth {
        /// 1-based line number.
        line: usize,
    },
    /// A `t=` line is malformed.
    #[error("line {line}: malformed t= line")]
    BadTiming {
        /// 1-based line number.
        line: usize,
    },
    /// An `m=` line is malformed (media, port, protocol or formats).
    #[error("line {line}: malformed m= line")]
    BadMediaLine {
        /// 1-based line number.
        line: usize,
    },
    /// A typed attribute (`rtpmap`, `fmtp`, `rtcp`, `ssrc`, ...) has a malformed value.
    #[error("malformed a={0} attribute")]
    BadAttribute(&'static str),
    /// The offer has no audio m-line at all (488, Warning 304).
    #[error("no audio media offered")]
    NoAudio,
    /// No offered audio codec is one we support (488, Warning 305).
    #[error("no common audio codec")]
    NoCommonCodec,
    /// The transport protocol is one we do not speak, e.g. DTLS-SRTP (488, Warning 302).
    #[error("unsupported media transport protocol")]
    UnsupportedProtocol,
    /// Our policy requires SRTP and the media is plain RTP (488, Warning 302).
    #[error("SRTP required but not offered")]
    SrtpRequired,
    /// Our policy refuses SRTP and the media is RTP/SAVP (488, Warning 302).
    #[error("SRTP offered but disabled by policy")]
    SrtpDisabled,
    /// SRTP media without one `a=crypto` line we can use (488, Warning 305).
    #[error("no usable a=crypto line")]
    NoUsableCrypto,
    /// The media has no connection address, at media or session level (488, Warning 301).
    #[error("no usable connection address")]
    NoConnectionAddress,
    /// The answer does not have one m-line per offered m-line (RFC 3264 section 6).
    #[error("answer m-lines do not match the offer")]
    AnswerMismatch,
    /// The answer rejected our audio stream (port 0).
    #[error("answer rejected the audio stream")]
    AnswerRejected,
    /// Generating our SRTP key failed.
    #[error("SRTP keying failed: {0}")]
    Keying(SdesError),
}

impl SdpError {
    /// The SIP status code to answer an INVITE carrying this SDP with: 400 for a body we
    /// cannot parse, 488 for one we cannot accept, 500 for our own failures.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Keying(_) => 500,
            SdpError::NoAudio
            | SdpError::NoCommonCodec
            | SdpError::UnsupportedProtocol
            | SdpError::SrtpRequired
            | SdpError::SrtpDisabled
            | SdpError::NoUsableCrypto
            | SdpError::NoConnectionAddress
            | SdpError::AnswerMismatch
            | SdpError::AnswerRejected => 488,
            _ => 400,
        }
    }

    /// The RFC 3261 section 20.43 warn-code and text to put in a `Warning` header of the 488,
    /// if the error is an offer/answer failure.
    pub fn warning(&self) -> Option<(u16, &'static str)> {
        match self {
            SdpError::NoAudio => Some((304, "Media type not available")),
            SdpError::NoCommonCodec | SdpError::NoUsableCrypto => {
                Some((305, "Incompatible media format"))
            }
            SdpError::UnsupportedProtocol | SdpError::SrtpRequired | SdpError::SrtpDisabled => {
                Some((302, "Incompatible transport protocol"))
            }
            SdpError::NoConnectionAddress => Some((301, "Incompatible network address formats")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_failures_are_488_with_warning() {
        for e in [
            SdpError::NoAudio,
            SdpError::NoCommonCodec,
            SdpError::SrtpRequired,
            SdpError::SrtpDisabled,
            SdpError::NoUsableCrypto,
        ] {
            assert_eq!(e.sip_status(), 488);
            assert!(e.warning().is_some());
        }
        assert_eq!(SdpError::NoAudio.warning().map(|w| w.0), Some(304));
        assert_eq!(SdpError::NoCommonCodec.warning().map(|w| w.0), Some(305));
    }

    #[test]
    fn parse_failures_are_400() {
        assert_eq!(SdpError::BadVersion.sip_status(), 400);
        assert_eq!(SdpError::BadMediaLine { line: 3 }.sip_status(), 400);
        assert_eq!(SdpError::BadVersion.warning(), None);
        assert_eq!(SdpError::Keying(SdesError::RandomFailed).sip_status(), 500);
    }
}
