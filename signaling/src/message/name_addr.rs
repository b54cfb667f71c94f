//! `name-addr` / `addr-spec` values with header parameters: From, To, Contact, Route,
//! Record-Route (RFC 3261 section 20.10 and 25.1).

use super::header::{find_unquoted, is_token, quoted_string};
use super::param::{self, Param, parse_header_params};
use super::uri::Uri;

/// A display name, URI and header parameters, e.g. `"Bob" <sip:bob@b.example>;tag=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped; `None` when absent or empty.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (tag, expires, q...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Parses one element (no top-level commas). `None` when it breaks the grammar: unbalanced
    /// quotes, an unquoted display name that is not tokens, whitespace inside `<...>`, or a bare
    /// URI containing `?` or `,` (those need angle brackets, RFC 3261 section 20).
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        let (display_name, uri, rest) = if s.starts_with('"') {
            let (name, rest) = quoted_string(s)?;
            let (uri, rest) = bracketed(rest.trim_start())?;
            (Some(name), uri, rest)
        } else if let Some(lt) = find_unquoted(s, '<') {
            let name = s[..lt].trim(); // INVARIANT: '<' is one byte.
            if !name.split_whitespace().all(is_token) {
                return None;
            }
            let (uri, rest) = bracketed(&s[lt..])?;
            (Some(name.to_owned()), uri, rest)
        } else {
            let end = s.find(';').unwrap_or(s.len());
            let uri = s[..end].trim(); // INVARIANT: ';' is one byte.
            if uri.contains(['?', ',']) {
                return None;
            }
            (None, Uri::parse(uri)?, &s[end..])
        };
        Some(NameAddr {
            display_name: display_name.filter(|n| !n.is_empty()),
            uri,
            params: parse_header_params(rest)?,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        param::value(&self.params, "tag")
    }

    /// A header parameter: `Some(None)` when present without value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param::find(&self.params, name).map(|p| p.value.as_deref())
    }
}

/// Reads `<uri>` at the start of `s`; returns the URI and the text after `>`.
fn bracketed(s: &str) -> Option<(Uri, &str)> {
    let inner = s.strip_prefix('<')?;
    let close = inner.find('>')?;
    let uri = Uri::parse(&inner[..close])?; // INVARIANT: '>' is one byte, found above.
    Some((uri, &inner[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_name_addr() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.param("unknownparam"), Some(None));
        assert!(n.uri.params().is_empty());
    }

    #[test]
    fn rfc4475_bad_forms_are_refused() {
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_none());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_none());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_none());
    }
}
