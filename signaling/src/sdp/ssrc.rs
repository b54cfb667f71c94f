//! `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).

use chorus_engine::rtp::Ssrc;

use super::error::SdpError;

/// One source-level attribute, e.g. `a=ssrc:12345 cname:user@host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SsrcAttribute {
    /// The source.
    pub ssrc: Ssrc,
    /// The source attribute's name (`cname`, `msid`, ...), empty when only the SSRC is given.
    pub name: String,
    /// Its value, if any.
    pub value: Option<String>,
}

impl SsrcAttribute {
    /// Parses the value after `a=ssrc:`.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let value = value.trim();
        let (ssrc, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let ssrc = Ssrc(ssrc.parse().map_err(|_| SdpError::BadAttribute("ssrc"))?);
        let rest = rest.trim();
        let (name, value) = match rest.split_once(':') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (rest, None),
        };
        Ok(SsrcAttribute {
            ssrc,
            name: name.to_owned(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cname() {
        let s = SsrcAttribute::parse("3735928559 cname:alice@example.com").unwrap();
        assert_eq!(s.ssrc, Ssrc(0xdead_beef));
        assert_eq!(s.name, "cname");
        assert_eq!(s.value.as_deref(), Some("alice@example.com"));
        assert!(SsrcAttribute::parse("x cname:a").is_err());
        assert_eq!(SsrcAttribute::parse("1").unwrap().name, "");
    }
}
