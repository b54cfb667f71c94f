//! URIs: SIP/SIPS URIs broken into parts (RFC 3261 section 19.1), any other scheme kept opaque
//! so the application can answer 416 Unsupported URI Scheme.

use std::fmt;

use super::param::{self, Param, parse_uri_params};

/// A URI as received. SIP and SIPS URIs expose user, host, port, parameters and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: String,
    scheme: String,
    sip: Option<SipParts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SipParts {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<Param>,
    headers: Option<String>,
}

impl Uri {
    /// Parses an absolute URI without surrounding whitespace or angle brackets.
    pub fn parse(s: &str) -> Option<Uri> {
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (scheme, rest) = s.split_once(':')?;
        let mut chars = scheme.chars();
        if !chars.next()?.is_ascii_alphabetic()
            || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            || rest.is_empty()
            || rest.contains(['<', '>', '"'])
        {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let sip = if scheme == "sip" || scheme == "sips" {
            Some(SipParts::parse(rest)?)
        } else {
            None
        };
        Some(Uri {
            raw: s.to_owned(),
            scheme,
            sip,
        })
    }

    /// The scheme, lowercased.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether this is a `sip:` or `sips:` URI (anything else gets 416 from a SIP UAS).
    pub fn is_sip(&self) -> bool {
        self.sip.is_some()
    }

    /// The user part, still %-escaped.
    pub fn user(&self) -> Option<&str> {
        self.sip.as_ref()?.user.as_deref()
    }

    /// The password part of the userinfo, still %-escaped.
    pub fn password(&self) -> Option<&str> {
        self.sip.as_ref()?.password.as_deref()
    }

    /// The host (IPv6 references keep their brackets).
    pub fn host(&self) -> Option<&str> {
        self.sip.as_ref().map(|s| s.host.as_str())
    }

    /// The explicit port.
    pub fn port(&self) -> Option<u16> {
        self.sip.as_ref()?.port
    }

    /// URI parameters (`;lr`, `;transport=tcp`...).
    pub fn params(&self) -> &[Param] {
        self.sip.as_ref().map_or(&[], |s| s.params.as_slice())
    }

    /// A URI parameter by name: `Some(None)` when present without value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param::find(self.params(), name).map(|p| p.value.as_deref())
    }

    /// The escaped headers after `?`, as received.
    pub fn headers(&self) -> Option<&str> {
        self.sip.as_ref()?.headers.as_deref()
    }

    /// The user part with `%XX` escapes decoded (bytes: it may hold NUL, RFC 4475 escnull).
    /// RFC 3261 section 19.1.4 compares users after decoding (RFC 4475 esc01).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user().map(unescape)
    }

    /// The URI text as received.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl SipParts {
    fn parse(rest: &str) -> Option<SipParts> {
        let (userinfo, after) = match rest.find('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]), // INVARIANT: '@' is one byte.
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, password) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw.to_owned())),
                    None => (u, None),
                };
                if user.is_empty() || !escapes_valid(user) {
                    return None;
                }
                (Some(user.to_owned()), password)
            }
            None => (None, None),
        };
        let (before_headers, headers) = match after.split_once('?') {
            Some((b, h)) if !h.is_empty() => (b, Some(h.to_owned())),
            Some(_) => return None,
            None => (after, None),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, parse_uri_params(p)?),
            None => (before_headers, Vec::new()),
        };
        let (host, port) = split_hostport(hostport)?;
        Some(SipParts {
            user,
            password,
            host: host.to_owned(),
            port,
            params,
            headers,
        })
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as is.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // INVARIANT: two hex digits make at most 0xff.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Whether every `%` starts a two-hex-digit escape.
fn escapes_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Splits `host[:port]` (RFC 3261 `hostport`), checking host characters.
pub(crate) fn split_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let (host, rest) = s.split_at(close + 1); // INVARIANT: ']' is one byte, found above.
        // INVARIANT: host is `[` ... `]` with the `]` at index `close`.
        if !host[1..close]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        match rest {
            "" => (host, None),
            r => (host, Some(r.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return None;
        }
        (host, port)
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:cal%6Cer@host5.example.net:5070;%6C%72;n%61me=v%61lue%25%34%31")
            .unwrap();
        assert_eq!(u.user(), Some("cal%6Cer"));
        assert_eq!(u.host(), Some("host5.example.net"));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.param("%6c%72"), Some(None));
        let u = Uri::parse("sips:[2001:db8::1]:5061;transport=tls?Subject=hi").unwrap();
        assert_eq!(u.host(), Some("[2001:db8::1]"));
        assert_eq!(u.headers(), Some("Subject=hi"));
    }

    #[test]
    fn unescaping() {
        assert_eq!(unescape("%75se%72"), b"user");
        assert_eq!(unescape("null-%00-null"), b"null-\0-null");
        assert_eq!(unescape("100%"), b"100%");
        assert_eq!(unescape("%Z%45"), b"%ZE");
    }

    #[test]
    fn other_schemes_stay_opaque_and_junk_is_refused() {
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert!(!u.is_sip());
        assert_eq!(u.scheme(), "soap.beep");
        for bad in [
            "<sip:a@b>",
            "sip:a@b ",
            "sip:",
            "sip:a@",
            "nocolon",
            "sip:a@b:x",
            "sip:%zz@b",
        ] {
            assert!(Uri::parse(bad).is_none(), "{bad}");
        }
    }
}
