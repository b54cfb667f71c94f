//! `;name[=value]` parameters of header fields and URIs.

use super::header::{find_unquoted, is_token, quoted_string};

/// One parameter. Names compare case-insensitively; values are kept as received (a quoted
/// value keeps its quotes, an escaped URI parameter keeps its `%XX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Value after `=`, if any.
    pub value: Option<String>,
}

/// Finds a parameter by name (case-insensitive).
pub fn find<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The value of a parameter, `None` when absent or valueless.
pub fn value<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    find(params, name).and_then(|p| p.value.as_deref())
}

/// Parses header parameters: zero or more `SWS ; SWS name [SWS = SWS value]`, values being
/// tokens, hosts or quoted strings. `None` on an empty name or a malformed value.
pub(crate) fn parse_header_params(mut s: &str) -> Option<Vec<Param>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Some(out);
        }
        s = s.strip_prefix(';')?;
        let end = find_unquoted(s, ';').unwrap_or(s.len());
        let (item, rest) = s.split_at(end);
        s = rest;
        let (name, value) = match find_unquoted(item, '=') {
            Some(eq) => (&item[..eq], Some(item[eq + 1..].trim())), // INVARIANT: '=' is one byte.
            None => (item, None),
        };
        let name = name.trim();
        if !is_token(name) {
            return None;
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                matches!(quoted_string(v), Some((_, rest)) if rest.is_empty())
            } else {
                !v.is_empty()
                    && !v.contains(char::is_whitespace)
                    && !v.contains(['"', '<', '>', ','])
            };
            if !ok {
                return None;
            }
        }
        out.push(Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
    }
}

/// Parses URI parameters (the text after the first `;` of a SIP URI, without whitespace):
/// `name[=value]` separated by `;`, none empty.
pub(crate) fn parse_uri_params(s: &str) -> Option<Vec<Param>> {
    s.split(';')
        .map(|item| {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (item, None),
            };
            (!name.is_empty()).then(|| Param {
                name: name.to_owned(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params_with_whitespace_and_quotes() {
        let p = parse_header_params(" ;   tag    = 1918181833n ; lr;x=\"a;b\"").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(value(&p, "TAG"), Some("1918181833n"));
        assert!(find(&p, "lr").unwrap().value.is_none());
        assert_eq!(value(&p, "x"), Some("\"a;b\""));
        assert!(parse_header_params(";;").is_none());
        assert!(parse_header_params(";a=").is_none());
        assert!(parse_header_params("junk").is_none());
    }

    #[test]
    fn uri_params() {
        let p = parse_uri_params("%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(p[0].name, "%6C%72");
        assert_eq!(value(&p, "n%61me"), Some("v%61lue%25%34%31"));
        assert!(parse_uri_params("a;;b").is_none());
    }
}
