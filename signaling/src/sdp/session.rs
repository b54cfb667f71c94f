//! A whole session description: parse (tolerant of what phones send, strict where it
//! matters) and serialize (RFC 8866 line order, CRLF).

use std::fmt;
use std::str::FromStr;

use super::attribute::Attribute;
use super::bandwidth::Bandwidth;
use super::connection::Connection;
use super::direction::Direction;
use super::error::SdpError;
use super::media::MediaDescription;
use super::origin::Origin;

/// Largest SDP body we parse; real offers are a few kilobytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// `t=<start> <stop>` (NTP seconds; `0 0` for an unbounded session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timing {
    /// Start time.
    pub start: u64,
    /// Stop time.
    pub stop: u64,
}

/// A parsed SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` when missing or empty).
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=`.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines.
    pub timing: Vec<Timing>,
    /// Other session-level lines (`i u e p r z k`) as `(type, value)`, kept verbatim.
    pub other_lines: Vec<(char, String)>,
    /// Session-level `a=` lines in their order.
    pub attributes: Vec<Attribute>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body.
    ///
    /// Tolerant: CRLF, bare LF or bare CR, whitespace around lines, blank lines, unknown line types and
    /// attributes (kept), attributes in any order, a missing `s=` or `t=`. Strict: the body
    /// must start with `v=0`, have a well-formed `o=`, and well-formed `c=`, `b=`, `t=` and
    /// `m=` lines.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        if input.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
        // A bare CR also ends a line (old phones), so no value can smuggle one through.
        let mut lines = text
            .split('\n')
            .enumerate()
            .flat_map(|(i, l)| l.split('\r').map(move |part| (i + 1, part.trim())))
            .filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, l)) if l.strip_prefix("v=").is_some_and(|v| v.trim() == "0") => {}
            _ => return Err(SdpError::BadVersion),
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut bandwidths = Vec::new();
        let mut timing = Vec::new();
        let mut other_lines = Vec::new();
        let mut attributes = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        for (line, text) in lines {
            let (kind, value) = split_line(text).ok_or(SdpError::MalformedLine { line })?;
            let current = media.last_mut();
            match (kind, current) {
                ('m', _) => media.push(
                    MediaDescription::parse_media_line(value)
                        .ok_or(SdpError::BadMediaLine { line })?,
                ),
                ('c', current) => {
                    let c = Connection::parse(value).ok_or(SdpError::BadConnection { line })?;
                    match current {
                        Some(m) => m.connection = Some(c),
                        None => connection = Some(c),
                    }
                }
                ('b', current) => {
                    let b = Bandwidth::parse(value).ok_or(SdpError::BadBandwidth { line })?;
                    match current {
                        Some(m) => m.bandwidths.push(b),
                        None => bandwidths.push(b),
                    }
                }
                ('a', Some(m)) => m.attributes.push(Attribute::parse(value)),
                ('a', None) => attributes.push(Attribute::parse(value)),
                ('v', _) => return Err(SdpError::MalformedLine { line }),
                (_, Some(m)) => m.other_lines.push((kind, value.to_owned())),
                ('o', None) => origin = Some(Origin::parse(value).ok_or(SdpError::BadOrigin)?),
                ('s', None) => session_name = Some(value.to_owned()),
                ('t', None) => {
                    timing.push(parse_timing(value).ok_or(SdpError::BadTiming { line })?)
                }
                (_, None) => other_lines.push((kind, value.to_owned())),
            }
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::BadOrigin)?,
            session_name: session_name
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".to_owned()),
            connection,
            bandwidths,
            timing,
            other_lines,
            attributes,
            media,
        })
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::from_attribute(&a.name))
    }

    /// The direction that applies to media section `index`: its own attribute, else the
    /// session's, else `sendrecv`.
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(MediaDescription::direction)
            .or_else(|| self.direction())
            .unwrap_or_default()
    }

    /// The connection that applies to media section `index`: its own `c=`, else the session's.
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }
}

/// `x=value` with a single-letter type.
fn split_line(text: &str) -> Option<(char, &str)> {
    let (kind, value) = text.split_once('=')?;
    let mut chars = kind.trim_end().chars();
    let c = chars.next().filter(char::is_ascii_alphabetic)?;
    chars.next().is_none().then_some((c, value.trim()))
}

fn parse_timing(value: &str) -> Option<Timing> {
    let mut fields = value.split_ascii_whitespace();
    let start = fields.next()?.parse().ok()?;
    let stop = fields.next()?.parse().ok()?;
    fields.next().is_none().then_some(Timing { start, stop })
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s.as_bytes())
    }
}

/// The body, CRLF line ends, lines in RFC 8866 order.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name)?;
        let early = |t: &char| matches!(t, 'i' | 'u' | 'e' | 'p');
        for (t, v) in self.other_lines.iter().filter(|(t, _)| early(t)) {
            write!(f, "{t}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for t in &self.timing {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
        }
        for (t, v) in self.other_lines.iter().filter(|(t, _)| !early(t)) {
            write!(f, "{t}={v}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::media::MediaKind;
    use crate::sdp::protocol::Protocol;

    const SIMPLE: &str = "v=0\r\n\
        o=- 1 2 IN IP4 192.0.2.1\r\n\
        s=call\r\n\
        c=IN IP4 192.0.2.1\r\n\
        t=0 0\r\n\
        a=sendrecv\r\n\
        m=audio 4000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        m=video 4002 RTP/AVP 96\r\n\
        c=IN IP4 192.0.2.9\r\n\
        a=inactive\r\n";

    #[test]
    fn parses_sessions_and_media_levels() {
        let sdp: SessionDescription = SIMPLE.parse().unwrap();
        assert_eq!(sdp.origin.session_version, 2);
        assert_eq!(sdp.session_name, "call");
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].kind, MediaKind::Audio);
        assert_eq!(sdp.media[1].protocol, Protocol::RtpAvp);
        assert_eq!(sdp.media_direction(0), Direction::SendRecv);
        assert_eq!(sdp.media_direction(1), Direction::Inactive);
        assert_eq!(sdp.media_connection(0).unwrap().address, "192.0.2.1");
        assert_eq!(sdp.media_connection(1).unwrap().address, "192.0.2.9");
        assert_eq!(sdp.to_string(), SIMPLE);
    }

    #[test]
    fn tolerates_lf_whitespace_and_unknown_lines() {
        let sloppy = "v=0 \no=alice 1 1 IN IP4 10.0.0.1  \n\ni=info\nt=0 0\t\nx=whatever\n\
                      m=audio 4000 RTP/AVP 0   \r\na=foo:bar \n";
        let sdp = SessionDescription::parse(sloppy.as_bytes()).unwrap();
        assert_eq!(sdp.session_name, "-");
        assert_eq!(sdp.other_lines.len(), 2);
        assert_eq!(sdp.media[0].attribute("foo"), Some("bar"));
        let cr_only = SessionDescription::parse(sloppy.replace('\n', "\r").as_bytes()).unwrap();
        assert_eq!(cr_only, sdp);
        let again = SessionDescription::parse(sdp.to_string().as_bytes()).unwrap();
        assert_eq!(again, sdp);
    }

    #[test]
    fn strict_where_it_matters() {
        let cases = [
            ("", SdpError::BadVersion),
            ("v=1\r\n", SdpError::BadVersion),
            ("v=0\r\ns=x\r\n", SdpError::BadOrigin),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
                SdpError::BadMediaLine { line: 3 },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN\r\n",
                SdpError::BadConnection { line: 3 },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0\r\n",
                SdpError::BadTiming { line: 3 },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ngarbage\r\n",
                SdpError::MalformedLine { line: 3 },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nab=c\r\n",
                SdpError::MalformedLine { line: 3 },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                SessionDescription::parse(input.as_bytes()),
                Err(expected),
                "{input:?}"
            );
        }
        assert_eq!(
            SessionDescription::parse(&[0xff, 0xfe]),
            Err(SdpError::NotUtf8)
        );
        assert_eq!(
            SessionDescription::parse(&vec![b'a'; MAX_SDP_LEN + 1]),
            Err(SdpError::TooLarge)
        );
    }

    /// Parses, and if that works answers, without panicking: both must only return.
    fn parse_and_answer(bytes: &[u8]) {
        use crate::sdp::{LocalSession, OfferAnswerConfig, answer_offer};
        if let Ok(sdp) = SessionDescription::parse(bytes) {
            let again = SessionDescription::parse(sdp.to_string().as_bytes());
            assert_eq!(
                again.as_ref(),
                Ok(&sdp),
                "reparse of {:?}",
                String::from_utf8_lossy(bytes)
            );
            let mut local = LocalSession::new(1, "192.0.2.1".parse().unwrap());
            let rtp = "192.0.2.1:4000".parse().unwrap();
            let _ = answer_offer(&sdp, &mut local, rtp, &OfferAnswerConfig::default());
        }
    }

    #[test]
    fn every_truncation_of_every_sample() {
        for sample in crate::sdp::testdata::ALL {
            assert!(SessionDescription::parse(sample.as_bytes()).is_ok());
            for len in 0..=sample.len() {
                parse_and_answer(&sample.as_bytes()[..len]);
            }
        }
    }

    #[test]
    fn random_byte_flips() {
        // xorshift64, fixed seed: the same inputs on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for sample in crate::sdp::testdata::ALL {
            for _ in 0..400 {
                let mut bytes = sample.as_bytes().to_vec();
                let flips = 1 + next() % 4;
                for _ in 0..flips {
                    let at = (next() % bytes.len() as u64) as usize;
                    // INVARIANT: `at` < len (modulo), samples are non-empty.
                    bytes[at] = match next() % 4 {
                        0 => bytes[at] ^ (1 << (next() % 8)),
                        1 => b"\r\n =:/ 0"[(next() % 8) as usize],
                        2 => b'0' + (next() % 10) as u8,
                        _ => next() as u8,
                    };
                }
                parse_and_answer(&bytes);
            }
        }
    }
}
