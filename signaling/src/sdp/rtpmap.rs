//! `a=rtpmap:<pt> <name>/<rate>[/<channels>]` (RFC 8866 section 6.6).

use std::fmt;

use chorus_engine::rtp::Pt;

use super::error::SdpError;

/// One payload type's encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rtpmap {
    /// The payload type it maps.
    pub payload_type: Pt,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given (audio only).
    pub channels: Option<u8>,
}

impl Rtpmap {
    /// Parses the value after `a=rtpmap:`.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let bad = SdpError::BadAttribute("rtpmap");
        let (pt, rest) = value
            .trim()
            .split_once(char::is_whitespace)
            .ok_or(bad.clone())?;
        let payload_type = parse_pt(pt).ok_or(bad.clone())?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty()).ok_or(bad.clone())?;
        let clock_rate = parts
            .next()
            .and_then(|r| r.trim().parse().ok())
            .filter(|&r: &u32| r > 0)
            .ok_or(bad.clone())?;
        let channels = match parts.next() {
            None => None,
            Some(c) => Some(
                c.trim()
                    .parse()
                    .ok()
                    .filter(|&c: &u8| c > 0)
                    .ok_or(bad.clone())?,
            ),
        };
        if parts.next().is_some() {
            return Err(bad);
        }
        Ok(Rtpmap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The channel count, 1 when not given.
    pub fn channel_count(&self) -> u8 {
        self.channels.unwrap_or(1)
    }
}

/// A payload type number 0-127.
pub(crate) fn parse_pt(text: &str) -> Option<Pt> {
    let pt: u8 = text.trim().parse().ok()?;
    Some(Pt(pt)).filter(|p| p.is_valid())
}

impl fmt::Display for Rtpmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        match self.channels {
            Some(c) => write!(f, "/{c}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_opus_and_g711() {
        let r = Rtpmap::parse("111 opus/48000/2").unwrap();
        assert_eq!(r.payload_type, Pt(111));
        assert_eq!(
            (r.encoding.as_str(), r.clock_rate, r.channels),
            ("opus", 48_000, Some(2))
        );
        assert_eq!(r.to_string(), "111 opus/48000/2");
        let r = Rtpmap::parse("0 PCMU/8000").unwrap();
        assert_eq!((r.channel_count(), r.channels), (1, None));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "111",
            "128 opus/48000",
            "x opus/48000",
            "0 PCMU",
            "0 PCMU/0",
            "0 /8000",
            "0 a/8000/2/3",
            "0 a/8000/0",
        ] {
            assert!(Rtpmap::parse(bad).is_err(), "{bad}");
        }
    }
}
