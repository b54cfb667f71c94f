//! Header fields: names (compact forms folded, case-insensitive), ordered storage, and the
//! lexical helpers the typed headers share (tokens, quoted strings, comma lists).

use std::fmt;

/// RFC 3261 section 7.3.3 and the IANA SIP parameters registry: compact form -> full name.
const COMPACT_FORMS: [(u8, &str); 20] = [
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Full names the layer spells canonically when it meets them in any case.
const KNOWN_NAMES: [&str; 52] = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "Path",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
];

/// The full, canonically spelled name for `name`: compact forms expanded, known names in
/// their RFC spelling, unknown names as given.
pub fn canonical_name(name: &str) -> &str {
    if let [c] = name.as_bytes() {
        let c = c.to_ascii_lowercase();
        if let Some((_, full)) = COMPACT_FORMS.iter().find(|(k, _)| *k == c) {
            return full;
        }
    }
    KNOWN_NAMES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or(name)
}

/// One header field: canonical name and value with line folding already replaced by a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: String,
    value: String,
}

impl Header {
    /// The canonical name (see [`canonical_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, trimmed, unfolded.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The header fields of a message, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field; the name is folded to its canonical form. CR and LF in the value
    /// become spaces so no caller can inject a header line.
    pub fn push(&mut self, name: &str, value: &str) {
        self.fields.push(Header {
            name: canonical_name(name).to_owned(),
            value: one_line(value),
        });
    }

    /// Replaces every field called `name` by one field with `value`, keeping the position of
    /// the first (or appending).
    pub fn set(&mut self, name: &str, value: &str) {
        let name = canonical_name(name);
        match self
            .fields
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            Some(at) => {
                self.fields[at].value = one_line(value); // INVARIANT: `at` came from position().
                let mut index = 0;
                self.fields.retain(|h| {
                    let keep = index == at || !h.name.eq_ignore_ascii_case(name);
                    index += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let name = canonical_name(name);
        let before = self.fields.len();
        self.fields.retain(|h| !h.name.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// The first field called `name` (case-insensitive, compact forms accepted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every field called `name`, each value whole, in order.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_name(name).to_owned();
        self.fields
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// How many fields are called `name`.
    pub fn count(&self, name: &str) -> usize {
        self.all(name).count()
    }

    /// The elements of a comma-separated list header (Via, Route, Contact, Allow, Require...)
    /// across all its fields, split at commas outside quotes and angle brackets, trimmed.
    /// Only meaningful for headers whose grammar is a list (not Date or WWW-Authenticate).
    pub fn list<'a>(&'a self, name: &str) -> Vec<&'a str> {
        self.all(name).flat_map(split_list).collect()
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.fields.iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

/// The value trimmed, with CR and LF replaced by spaces.
fn one_line(value: &str) -> String {
    value.trim().replace(['\r', '\n'], " ")
}

/// RFC 3261 section 25.1 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Whether `s` is a non-empty RFC 3261 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Splits a list value at top-level commas (outside quoted strings and `<...>`), trimming each
/// element. Empty elements are kept so callers can reject them.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_angle = false;
    for (i, c) in unquoted_chars(value) {
        match c {
            '<' => in_angle = true,
            '>' => in_angle = false,
            ',' if !in_angle => {
                out.push(value[start..i].trim()); // INVARIANT: start and i are char boundaries.
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out
}

/// The characters of `s` (with their byte offsets) that stand outside quoted strings; the
/// quotes themselves and everything between them, escapes included, are skipped.
fn unquoted_chars(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_quotes = false;
    let mut escaped = false;
    s.char_indices().filter(move |&(_, c)| {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            false
        } else if c == '"' {
            in_quotes = true;
            false
        } else {
            true
        }
    })
}

/// Reads a quoted string at the start of `s` (which must begin with `"`); returns the unescaped
/// contents and the rest after the closing quote, or `None` when the quotes do not balance.
pub(crate) fn quoted_string(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &body[i + 1..])), // INVARIANT: '"' is one byte.
            _ => out.push(c),
        }
    }
    None
}

/// Index of the first `needle` in `s` outside a quoted string.
pub(crate) fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    unquoted_chars(s)
        .find(|&(_, c)| c == needle)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_folded_names() {
        for (short, full) in [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("e", "Content-Encoding"),
            ("L", "Content-Length"),
            ("c", "Content-Type"),
            ("f", "From"),
            ("s", "Subject"),
            ("k", "Supported"),
            ("t", "To"),
            ("V", "Via"),
            ("u", "Allow-Events"),
            ("x", "Session-Expires"),
            ("cseq", "CSeq"),
            ("MaX-fOrWaRdS", "Max-Forwards"),
            ("X-Custom", "X-Custom"),
        ] {
            assert_eq!(canonical_name(short), full, "{short}");
        }
    }

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        let v = r#""Doe, J" <sip:a@b;x=1,2>;q=1, <sip:c@d>, sip:e@f"#;
        assert_eq!(
            split_list(v),
            vec![r#""Doe, J" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>", "sip:e@f"]
        );
        assert_eq!(split_list("a,,b"), vec!["a", "", "b"]);
    }

    #[test]
    fn headers_get_set_remove() {
        let mut h = Headers::new();
        h.push("v", "SIP/2.0/UDP a");
        h.push("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c");
        h.push("l", "0");
        assert_eq!(
            h.list("VIA"),
            vec!["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
        );
        assert_eq!(h.get("content-length"), Some("0"));
        h.set("Via", "SIP/2.0/TCP z");
        assert_eq!(h.count("via"), 1);
        assert_eq!(h.remove("l"), 1);
        h.push("Subject", "hi\r\nInjected: yes");
        assert_eq!(h.get("subject"), Some("hi  Injected: yes"));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn quoted_strings_unescape_and_detect_imbalance() {
        let (s, rest) = quoted_string(r#""J Rosenberg \\\"" <x>"#).unwrap();
        assert_eq!(s, r#"J Rosenberg \""#);
        assert_eq!(rest, " <x>");
        assert!(quoted_string(r#""Mr. J. User <sip:j@x>"#).is_none());
    }
}
