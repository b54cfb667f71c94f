//! `a=fmtp:<pt> <parameters>` (RFC 8866 section 6.15).

use std::fmt;

use chorus_engine::rtp::Pt;

use super::error::SdpError;
use super::rtpmap::parse_pt;

/// Format parameters of one payload type, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fmtp {
    /// The payload type they apply to.
    pub payload_type: Pt,
    /// The parameter string, e.g. `minptime=10;useinbandfec=1` or `0-16`.
    pub params: String,
}

impl Fmtp {
    /// Parses the value after `a=fmtp:`.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let value = value.trim();
        let (pt, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let payload_type = parse_pt(pt).ok_or(SdpError::BadAttribute("fmtp"))?;
        Ok(Fmtp {
            payload_type,
            params: params.trim().to_owned(),
        })
    }

    /// The value of one `key=value` parameter (`;`-separated), key case-insensitive.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.payload_type, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params() {
        let f = Fmtp::parse("111 minptime=10; useinbandfec=1").unwrap();
        assert_eq!(f.payload_type, Pt(111));
        assert_eq!(f.param("useinbandfec"), Some("1"));
        assert_eq!(f.param("stereo"), None);
        assert_eq!(Fmtp::parse("101 0-16").unwrap().to_string(), "101 0-16");
        assert!(Fmtp::parse("x 0-16").is_err());
    }
}
