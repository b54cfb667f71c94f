//! DTMF digits carried in SIP INFO bodies, as phones and gateways send them when they do not
//! use RFC 4733 events: `application/dtmf-relay` (`Signal=5` / `Duration=160` lines, Cisco
//! style, widely copied) and `application/dtmf` (the digit alone). Also the key type and the
//! source names shared with RFC 4733 digits from the media cores.

/// How a key press reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 `telephone-event` packets on the media leg.
    Rfc4733,
    /// A SIP INFO request (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Key tones in the caller's audio (a trunk without RFC 4733).
    InBand,
}

impl DtmfSource {
    /// Lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip-info",
            DtmfSource::InBand => "inband",
        }
    }
}

/// A DTMF key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfKey {
    /// 0-9.
    Digit(u8),
    /// `*`.
    Star,
    /// `#`.
    Pound,
    /// A-D.
    Letter(char),
}

impl DtmfKey {
    /// Parses one key: `0`-`9`, `*`, `#`, `A`-`D`, or the RFC 4733 event numbers 10 (`*`),
    /// 11 (`#`) and 12-15 (`A`-`D`) that some senders put in `Signal=`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        match s {
            "*" | "10" => Some(DtmfKey::Star),
            "#" | "11" => Some(DtmfKey::Pound),
            "12" => Some(DtmfKey::Letter('A')),
            "13" => Some(DtmfKey::Letter('B')),
            "14" => Some(DtmfKey::Letter('C')),
            "15" => Some(DtmfKey::Letter('D')),
            _ => {
                let mut chars = s.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                match c {
                    '0'..='9' => Some(DtmfKey::Digit(c as u8 - b'0')),
                    'a'..='d' | 'A'..='D' => Some(DtmfKey::Letter(c.to_ascii_uppercase())),
                    _ => None,
                }
            }
        }
    }

    /// The key for a character `0`-`9`, `*`, `#`, `A`-`D` (case-insensitive).
    pub fn from_char(c: char) -> Option<Self> {
        match c {
            '0'..='9' | '*' | '#' | 'a'..='d' | 'A'..='D' => {
                Self::parse(c.encode_utf8(&mut [0; 4]))
            }
            _ => None,
        }
    }

    /// The key as a character.
    pub fn as_char(self) -> char {
        match self {
            DtmfKey::Digit(d) => char::from(b'0' + d),
            DtmfKey::Star => '*',
            DtmfKey::Pound => '#',
            DtmfKey::Letter(c) => c,
        }
    }
}

/// One key press from an INFO body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoDigit {
    /// The key.
    pub key: DtmfKey,
    /// Duration in milliseconds, when the body gave one.
    pub duration_ms: Option<u32>,
}

/// Why an INFO body carried no digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DtmfInfoError {
    /// The Content-Type is not a DTMF type (the INFO gets 415 Unsupported Media Type).
    #[error("not a DTMF content type")]
    ContentType,
    /// The body did not hold a valid key (the INFO gets 400).
    #[error("no valid DTMF key in the body")]
    Body,
}

/// Reads the key press from an INFO request's Content-Type and body.
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<InfoDigit, DtmfInfoError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| DtmfInfoError::Body)?;
    match mime.as_str() {
        "application/dtmf-relay" => {
            let mut key = None;
            let mut duration_ms = None;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => key = DtmfKey::parse(value),
                    "duration" => duration_ms = value.trim().parse().ok(),
                    _ => {}
                }
            }
            Ok(InfoDigit {
                key: key.ok_or(DtmfInfoError::Body)?,
                duration_ms,
            })
        }
        "application/dtmf" => Ok(InfoDigit {
            key: DtmfKey::parse(text).ok_or(DtmfInfoError::Body)?,
            duration_ms: None,
        }),
        _ => Err(DtmfInfoError::ContentType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_bodies() {
        let d = parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(d.key, DtmfKey::Digit(5));
        assert_eq!(d.duration_ms, Some(160));
        let d = parse_info("Application/DTMF-Relay", b"signal= #\nduration=250").unwrap();
        assert_eq!((d.key.as_char(), d.duration_ms), ('#', Some(250)));
        let d = parse_info("application/dtmf-relay", b"Signal=11\r\n").unwrap();
        assert_eq!(d.key, DtmfKey::Pound);
        assert_eq!(d.duration_ms, None);
    }

    #[test]
    fn dtmf_bodies() {
        let d = parse_info("application/dtmf; charset=utf-8", b"*\r\n").unwrap();
        assert_eq!(d.key, DtmfKey::Star);
        assert_eq!(
            parse_info("application/dtmf", b"b").unwrap().key.as_char(),
            'B'
        );
    }

    #[test]
    fn keys_from_characters_round_trip() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(DtmfKey::from_char(c).map(DtmfKey::as_char), Some(c));
        }
        assert_eq!(DtmfKey::from_char('b'), Some(DtmfKey::Letter('B')));
        for c in ['E', ' ', 'x', '\u{663}'] {
            assert_eq!(DtmfKey::from_char(c), None, "{c:?}");
        }
        assert_eq!(DtmfSource::Rfc4733.as_str(), "rfc4733");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_info("application/sdp", b"v=0"),
            Err(DtmfInfoError::ContentType)
        );
        for body in [
            &b""[..],
            b"Signal=\r\n",
            b"Signal=55",
            b"Duration=100",
            b"\xff\xfe",
            b"x",
        ] {
            assert!(
                parse_info("application/dtmf-relay", body).is_err(),
                "{body:?}"
            );
        }
        assert_eq!(
            parse_info("application/dtmf", b"12"),
            Ok(InfoDigit {
                key: DtmfKey::Letter('A'),
                duration_ms: None
            })
        );
        assert!(parse_info("application/dtmf", b"").is_err());
    }
}
