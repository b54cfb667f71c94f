//! A media description: the `m=` line and the `c=`, `b=` and `a=` lines under it
//! (RFC 8866 section 5.14), with typed access to the attributes Chorus uses.

use std::fmt;

use chorus_engine::rtp::Pt;
use chorus_engine::srtp::sdes::{CryptoAttribute, SdesError};

use super::attribute::Attribute;
use super::bandwidth::{Bandwidth, BandwidthKind};
use super::connection::Connection;
use super::direction::Direction;
use super::fmtp::Fmtp;
use super::protocol::Protocol;
use super::rtcp::RtcpAttribute;
use super::rtpmap::{Rtpmap, parse_pt};
use super::ssrc::SsrcAttribute;

/// The `<media>` field of an m-line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `application`.
    Application,
    /// Anything else (`text`, `message`, `image`...), kept as written.
    Other(String),
}

impl MediaKind {
    /// The kind for a `<media>` token.
    pub fn parse(token: &str) -> Self {
        match token {
            t if t.eq_ignore_ascii_case("audio") => MediaKind::Audio,
            t if t.eq_ignore_ascii_case("video") => MediaKind::Video,
            t if t.eq_ignore_ascii_case("application") => MediaKind::Application,
            t => MediaKind::Other(t.to_owned()),
        }
    }

    /// The SDP token.
    pub fn token(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
            MediaKind::Other(t) => t,
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port; 0 rejects or disables the stream.
    pub port: u16,
    /// The `/<number of ports>` suffix, if written.
    pub port_count: Option<u16>,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Media formats as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`, overriding the session's.
    pub connection: Option<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// Other lines (`i=`, `k=`) as `(type, value)`, kept verbatim.
    pub other_lines: Vec<(char, String)>,
    /// `a=` lines in their order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A media section with no lines under the m-line.
    pub fn new(kind: MediaKind, port: u16, protocol: Protocol, formats: Vec<String>) -> Self {
        MediaDescription {
            kind,
            port,
            port_count: None,
            protocol,
            formats,
            connection: None,
            bandwidths: Vec::new(),
            other_lines: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Parses the value of an `m=` line; `None` when malformed (missing fields, bad port,
    /// no formats).
    pub fn parse_media_line(value: &str) -> Option<Self> {
        let mut fields = value.split_ascii_whitespace();
        let kind = MediaKind::parse(fields.next()?);
        let port_field = fields.next()?;
        let (port, port_count) = match port_field.split_once('/') {
            Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
            None => (port_field.parse().ok()?, None),
        };
        let protocol = Protocol::parse(fields.next()?);
        let formats: Vec<String> = fields.map(str::to_owned).collect();
        if formats.is_empty() {
            return None;
        }
        let mut media = MediaDescription::new(kind, port, protocol, formats);
        media.port_count = port_count;
        Some(media)
    }

    /// The values of every attribute called `name`.
    pub fn attribute_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_owned();
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
    }

    /// The value of the first attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attribute_values(name).next()
    }

    /// Whether a property attribute (or any attribute) called `name` is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// The formats that are RTP payload type numbers, in offer order.
    pub fn payload_types(&self) -> Vec<Pt> {
        self.formats.iter().filter_map(|f| parse_pt(f)).collect()
    }

    /// Every well-formed `a=rtpmap`, in order (malformed ones are skipped).
    pub fn rtpmaps(&self) -> Vec<Rtpmap> {
        self.attribute_values("rtpmap")
            .filter_map(|v| Rtpmap::parse(v).ok())
            .collect()
    }

    /// The `a=rtpmap` of one payload type.
    pub fn rtpmap(&self, pt: Pt) -> Option<Rtpmap> {
        self.rtpmaps().into_iter().find(|r| r.payload_type == pt)
    }

    /// The `a=fmtp` of one payload type.
    pub fn fmtp(&self, pt: Pt) -> Option<Fmtp> {
        self.attribute_values("fmtp")
            .filter_map(|v| Fmtp::parse(v).ok())
            .find(|f| f.payload_type == pt)
    }

    /// `a=ptime`, in milliseconds (fractional values are rounded down).
    pub fn ptime_ms(&self) -> Option<u32> {
        self.attribute("ptime").and_then(parse_ms)
    }

    /// `a=maxptime`, in milliseconds.
    pub fn maxptime_ms(&self) -> Option<u32> {
        self.attribute("maxptime").and_then(parse_ms)
    }

    /// The media-level direction attribute, if any (the last one wins).
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::from_attribute(&a.name))
    }

    /// Whether `a=rtcp-mux` (RFC 5761) is present.
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// The `a=rtcp` attribute (RFC 3605), if present and well-formed.
    pub fn rtcp(&self) -> Option<RtcpAttribute> {
        self.attribute("rtcp")
            .and_then(|v| RtcpAttribute::parse(v).ok())
    }

    /// Every `a=crypto` line, parsed by the engine's SDES parser, in order.
    pub fn crypto(&self) -> Vec<Result<CryptoAttribute, SdesError>> {
        self.attribute_values("crypto")
            .map(CryptoAttribute::parse)
            .collect()
    }

    /// Every well-formed `a=ssrc` line.
    pub fn ssrcs(&self) -> Vec<SsrcAttribute> {
        self.attribute_values("ssrc")
            .filter_map(|v| SsrcAttribute::parse(v).ok())
            .collect()
    }

    /// `a=mid`.
    pub fn mid(&self) -> Option<&str> {
        self.attribute("mid")
    }

    /// The first `b=` value of a kind (`AS` in kbit/s, `TIAS` in bit/s).
    pub fn bandwidth(&self, kind: &BandwidthKind) -> Option<u64> {
        self.bandwidths
            .iter()
            .find(|b| &b.kind == kind)
            .map(|b| b.value)
    }
}

/// `20` or `20.5` (some phones write fractions) to whole milliseconds.
fn parse_ms(value: &str) -> Option<u32> {
    let whole = value.trim().split('.').next().unwrap_or_default();
    whole.parse().ok().filter(|&ms| ms > 0)
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind.token(), self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        for (t, v) in self.other_lines.iter().filter(|(t, _)| *t == 'i') {
            write!(f, "{t}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for (t, v) in self.other_lines.iter().filter(|(t, _)| *t != 'i') {
            write!(f, "{t}={v}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio() -> MediaDescription {
        let mut m = MediaDescription::parse_media_line("audio 4000 RTP/AVP 0 101").unwrap();
        for a in [
            "rtpmap:0 PCMU/8000",
            "rtpmap:101 telephone-event/8000",
            "fmtp:101 0-15",
            "ptime:20",
            "maxptime:40.5",
            "sendonly",
            "rtcp:4001 IN IP4 10.0.0.1",
            "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "ssrc:1 cname:x",
            "mid:audio",
            "x-unknown:whatever",
        ] {
            m.attributes.push(Attribute::parse(a));
        }
        m
    }

    #[test]
    fn typed_access() {
        let m = audio();
        assert_eq!(m.payload_types(), vec![Pt(0), Pt(101)]);
        assert_eq!(m.rtpmap(Pt(101)).unwrap().encoding, "telephone-event");
        assert_eq!(m.fmtp(Pt(101)).unwrap().params, "0-15");
        assert_eq!((m.ptime_ms(), m.maxptime_ms()), (Some(20), Some(40)));
        assert_eq!(m.direction(), Some(Direction::SendOnly));
        assert_eq!(m.rtcp().unwrap().port, 4001);
        assert!(!m.rtcp_mux());
        assert!(m.crypto()[0].is_ok());
        assert_eq!(m.ssrcs().len(), 1);
        assert_eq!(m.mid(), Some("audio"));
        assert_eq!(m.attribute("x-unknown"), Some("whatever"));
    }

    #[test]
    fn media_line_strictness() {
        assert!(MediaDescription::parse_media_line("audio 4000 RTP/AVP").is_none());
        assert!(MediaDescription::parse_media_line("audio x RTP/AVP 0").is_none());
        assert!(MediaDescription::parse_media_line("audio 70000 RTP/AVP 0").is_none());
        assert!(MediaDescription::parse_media_line("audio").is_none());
        let m = MediaDescription::parse_media_line("video 5000/2 RTP/AVP 31").unwrap();
        assert_eq!(
            (m.kind, m.port, m.port_count),
            (MediaKind::Video, 5000, Some(2))
        );
    }
}
