//! The SIP message: parsing one complete message, typed access, serialization, UAS responses.

use std::fmt;

use bytes::Bytes;

use super::cseq::CSeq;
use super::error::ParseError;
use super::header::{Headers, canonical_name, is_token};
use super::method::Method;
use super::name_addr::NameAddr;
use super::param::{self, parse_header_params};
use super::stream_framer::Limits;
use super::uri::Uri;
use super::via::Via;

/// RFC 3261 section 18.1.1: a request within 200 bytes of the 1500-byte path MTU, i.e. larger
/// than 1300 bytes, goes over a congestion-controlled transport.
pub const MAX_DATAGRAM_REQUEST_BYTES: usize = 1300;

/// Whether a request of `len` bytes must be sent over TCP/TLS instead of UDP
/// (RFC 3261 section 18.1.1).
pub fn needs_stream_transport(len: usize) -> bool {
    len > MAX_DATAGRAM_REQUEST_BYTES
}

/// Header fields that may appear at most once; a second one gets 400 (RFC 4475 multi01, mcl01).
const SINGLE_VALUED: [&str; 10] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Session-Expires",
    "Min-SE",
];

/// A SIP request or response (RFC 3261 section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    /// A request.
    Request {
        /// Method from the request line.
        method: Method,
        /// Request-URI.
        uri: Uri,
        /// Header fields in order (Content-Length is recomputed on output).
        headers: Headers,
        /// Message body.
        body: Bytes,
    },
    /// A response.
    Response {
        /// Status code, 100..=699.
        status: u16,
        /// Reason phrase (may be empty).
        reason: String,
        /// Header fields in order (Content-Length is recomputed on output).
        headers: Headers,
        /// Message body.
        body: Bytes,
    },
}

/// Session-Expires (RFC 4028 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    /// Session interval in seconds.
    pub delta_secs: u32,
    /// `refresher` parameter (`uac` or `uas`), if given.
    pub refresher: Option<String>,
}

impl SipMessage {
    /// Parses one complete message (a UDP datagram, or one frame cut by [`super::StreamFramer`])
    /// with the default [`Limits`]. Leading CRLFs are skipped (RFC 3261 section 7.5). Without
    /// Content-Length the body is the rest of the bytes; with it, extra bytes are ignored
    /// (RFC 3261 section 18.3) and missing ones are an error.
    pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
        Self::parse_with(bytes, &Limits::default())
    }

    /// [`SipMessage::parse`] with explicit size limits.
    pub fn parse_with(bytes: &[u8], limits: &Limits) -> Result<SipMessage, ParseError> {
        if bytes.len() > limits.max_message_bytes {
            return Err(ParseError::MessageTooLarge {
                limit: limits.max_message_bytes,
            });
        }
        let bytes = skip_leading_crlf(bytes);
        let Some(head_len) = find(bytes, b"\r\n\r\n") else {
            return Err(if bytes.len() > limits.max_header_bytes {
                ParseError::HeadersTooLarge {
                    limit: limits.max_header_bytes,
                }
            } else {
                ParseError::Incomplete
            });
        };
        if head_len > limits.max_header_bytes {
            return Err(ParseError::HeadersTooLarge {
                limit: limits.max_header_bytes,
            });
        }
        // INVARIANT: find() returned an index with four bytes after it.
        let (head, rest) = (&bytes[..head_len], &bytes[head_len + 4..]);
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let lines = unfold(head)?;
        let (start, fields) = lines.split_first().ok_or(ParseError::Incomplete)?;
        let mut headers = Headers::new();
        for line in fields {
            let colon = line.find(':').ok_or(ParseError::HeaderLine)?;
            let name = line[..colon].trim_end(); // INVARIANT: ':' is one byte.
            if !is_token(name) {
                return Err(ParseError::HeaderLine);
            }
            headers.push(name, &line[colon + 1..]);
        }
        let body = match headers.get("Content-Length") {
            Some(v) if headers.count("Content-Length") == 1 => {
                let declared = parse_content_length(v)?;
                if declared > rest.len() {
                    return Err(ParseError::BodyTruncated {
                        declared,
                        available: rest.len(),
                    });
                }
                &rest[..declared] // INVARIANT: declared <= rest.len() checked above.
            }
            _ => rest,
        };
        let msg = parse_start_line(start, headers, Bytes::copy_from_slice(body))?;
        msg.validate()?;
        Ok(msg)
    }

    /// Checks the header fields the message layer relies on, in an order that names the most
    /// important fault first (RFC 4475 scalar02 is rejected for its CSeq).
    fn validate(&self) -> Result<(), ParseError> {
        let h = self.headers();
        let bad = |name: &'static str, why: &'static str| ParseError::Header { name, why };
        for name in SINGLE_VALUED {
            if h.count(name) > 1 {
                return Err(ParseError::Duplicate(name));
            }
        }
        if h.list("Via").into_iter().any(|v| Via::parse(v).is_none()) {
            return Err(bad("Via", "malformed element"));
        }
        for name in ["From", "To"] {
            if h.get(name).is_some_and(|v| NameAddr::parse(v).is_none()) {
                return Err(ParseError::Header {
                    name: if name == "From" { "From" } else { "To" },
                    why: "not a name-addr or addr-spec",
                });
            }
        }
        if h.get("Call-ID")
            .is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace))
        {
            return Err(bad("Call-ID", "empty or contains whitespace"));
        }
        if let Some(v) = h.get("CSeq") {
            let cseq = CSeq::parse(v).ok_or(bad("CSeq", "malformed or above 2**32-1"))?;
            if let SipMessage::Request { method, .. } = self
                && *method != cseq.method
            {
                return Err(ParseError::CSeqMismatch);
            }
        }
        if h.get("Max-Forwards").is_some() && self.max_forwards().is_none() {
            return Err(bad("Max-Forwards", "not an integer in 0..=255"));
        }
        if let Some(v) = h.get("Content-Length") {
            parse_content_length(v)?;
        }
        let contacts = h.list("Contact");
        if !(contacts == ["*"] || contacts.iter().all(|c| NameAddr::parse(c).is_some())) {
            return Err(bad("Contact", "malformed element"));
        }
        for name in ["Route", "Record-Route"] {
            let ok = h
                .list(name)
                .into_iter()
                .all(|r| r.contains('<') && NameAddr::parse(r).is_some());
            if !ok {
                return Err(ParseError::Header {
                    name: if name == "Route" {
                        "Route"
                    } else {
                        "Record-Route"
                    },
                    why: "element is not a name-addr",
                });
            }
        }
        if h.get("Expires").is_some() && self.expires().is_none() {
            return Err(bad("Expires", "not delta-seconds below 2**32"));
        }
        if h.get("Date").is_some_and(|d| !is_rfc1123_gmt(d)) {
            return Err(bad("Date", "not an RFC 1123 date in GMT"));
        }
        if h.get("Session-Expires").is_some() && self.session_expires().is_none() {
            return Err(bad("Session-Expires", "malformed"));
        }
        if h.get("Min-SE").is_some() && self.min_se().is_none() {
            return Err(bad("Min-SE", "malformed"));
        }
        Ok(())
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self, SipMessage::Request { .. })
    }

    /// The request method.
    pub fn method(&self) -> Option<&Method> {
        match self {
            SipMessage::Request { method, .. } => Some(method),
            SipMessage::Response { .. } => None,
        }
    }

    /// The Request-URI.
    pub fn uri(&self) -> Option<&Uri> {
        match self {
            SipMessage::Request { uri, .. } => Some(uri),
            SipMessage::Response { .. } => None,
        }
    }

    /// The response status code.
    pub fn status(&self) -> Option<u16> {
        match self {
            SipMessage::Response { status, .. } => Some(*status),
            SipMessage::Request { .. } => None,
        }
    }

    /// The response reason phrase.
    pub fn reason(&self) -> Option<&str> {
        match self {
            SipMessage::Response { reason, .. } => Some(reason),
            SipMessage::Request { .. } => None,
        }
    }

    /// The request line or status line, without CRLF.
    pub fn start_line(&self) -> String {
        match self {
            SipMessage::Request { method, uri, .. } => format!("{method} {uri} SIP/2.0"),
            SipMessage::Response { status, reason, .. } => format!("SIP/2.0 {status} {reason}"),
        }
    }

    /// Header fields.
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request { headers, .. } | SipMessage::Response { headers, .. } => headers,
        }
    }

    /// Header fields, mutable (Content-Length is recomputed on output anyway).
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            SipMessage::Request { headers, .. } | SipMessage::Response { headers, .. } => headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            SipMessage::Request { body, .. } | SipMessage::Response { body, .. } => body,
        }
    }

    /// Replaces the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &str, new_body: impl Into<Bytes>) {
        self.headers_mut().set("Content-Type", content_type);
        match self {
            SipMessage::Request { body, .. } | SipMessage::Response { body, .. } => {
                *body = new_body.into();
            }
        }
    }

    /// All Via elements, top first.
    pub fn vias(&self) -> Vec<Via> {
        self.headers()
            .list("Via")
            .into_iter()
            .filter_map(Via::parse)
            .collect()
    }

    /// The top Via, where a response goes (RFC 3261 section 18.2.2).
    pub fn top_via(&self) -> Option<Via> {
        self.headers()
            .list("Via")
            .first()
            .and_then(|v| Via::parse(v))
    }

    /// From.
    pub fn from(&self) -> Option<NameAddr> {
        self.headers().get("From").and_then(NameAddr::parse)
    }

    /// To.
    pub fn to(&self) -> Option<NameAddr> {
        self.headers().get("To").and_then(NameAddr::parse)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.headers().get("Call-ID")
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.headers().get("CSeq").and_then(CSeq::parse)
    }

    /// Max-Forwards, when present and in 0..=255.
    pub fn max_forwards(&self) -> Option<u8> {
        self.headers()
            .get("Max-Forwards")
            .and_then(delta_u32)
            .and_then(|n| u8::try_from(n).ok())
    }

    /// The Content-Length header value (output always uses the body length).
    pub fn content_length(&self) -> Option<usize> {
        self.headers()
            .get("Content-Length")
            .and_then(|v| parse_content_length(v).ok())
    }

    /// The whole Content-Type value.
    pub fn content_type(&self) -> Option<&str> {
        self.headers().get("Content-Type")
    }

    /// The media type of the body, `type/subtype` lowercased without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.content_type().map(media_type_of)
    }

    /// Contact elements (empty for `Contact: *`).
    pub fn contacts(&self) -> Vec<NameAddr> {
        self.headers()
            .list("Contact")
            .into_iter()
            .filter_map(NameAddr::parse)
            .collect()
    }

    /// The first Contact URI (the remote target of a dialog).
    pub fn contact_uri(&self) -> Option<Uri> {
        self.contacts().into_iter().next().map(|c| c.uri)
    }

    /// Option tags in Require.
    pub fn require(&self) -> Vec<&str> {
        self.option_tags("Require")
    }

    /// Option tags in Supported.
    pub fn supported(&self) -> Vec<&str> {
        self.option_tags("Supported")
    }

    /// Option tags in Proxy-Require (a UAS ignores them, RFC 3261 section 8.2.2.3).
    pub fn proxy_require(&self) -> Vec<&str> {
        self.option_tags("Proxy-Require")
    }

    fn option_tags(&self, name: &str) -> Vec<&str> {
        self.headers()
            .list(name)
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// Require tags not in `supported`: a UAS answers 420 Bad Extension listing them in
    /// Unsupported (RFC 3261 section 8.2.2.3, RFC 4475 bext01).
    pub fn unsupported_options(&self, supported: &[&str]) -> Vec<String> {
        self.require()
            .into_iter()
            .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .map(str::to_owned)
            .collect()
    }

    /// Expires in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.headers().get("Expires").and_then(delta_u32)
    }

    /// Session-Expires (RFC 4028).
    pub fn session_expires(&self) -> Option<SessionExpires> {
        let v = self.headers().get("Session-Expires")?;
        let (delta, params) = v.split_at(v.find(';').unwrap_or(v.len()));
        let params = parse_header_params(params)?;
        Some(SessionExpires {
            delta_secs: delta_u32(delta.trim())?,
            refresher: param::value(&params, "refresher").map(str::to_owned),
        })
    }

    /// Min-SE in seconds (RFC 4028).
    pub fn min_se(&self) -> Option<u32> {
        let v = self.headers().get("Min-SE")?;
        let (delta, params) = v.split_at(v.find(';').unwrap_or(v.len()));
        parse_header_params(params)?;
        delta_u32(delta.trim())
    }

    /// Whether the request's Accept allows `media_type`; without Accept only
    /// `application/sdp` is implied (RFC 3261 section 20.1; RFC 4475 sdp01 gets 406 otherwise).
    pub fn accepts(&self, media_type: &str) -> bool {
        let accept = self.headers().list("Accept");
        if self.headers().count("Accept") == 0 {
            return media_type.eq_ignore_ascii_case("application/sdp");
        }
        let (ty, _) = media_type.split_once('/').unwrap_or((media_type, ""));
        accept.into_iter().map(media_type_of).any(|a| {
            a == "*/*"
                || a.eq_ignore_ascii_case(media_type)
                || a.strip_suffix("/*")
                    .is_some_and(|t| t.eq_ignore_ascii_case(ty))
        })
    }

    /// Mandatory request headers (RFC 3261 section 8.1.1) that are missing: To, From, Call-ID,
    /// CSeq, Via. Max-Forwards is left out so RFC 2543 requests (RFC 4475 inv2543) still work.
    /// Non-empty means 400 (RFC 4475 insuf).
    pub fn missing_mandatory(&self) -> Vec<&'static str> {
        ["To", "From", "Call-ID", "CSeq", "Via"]
            .into_iter()
            .filter(|n| self.headers().get(n).is_none())
            .collect()
    }

    /// A UAS response to `request` (RFC 3261 section 8.2.6.2): every Via in order, From, To,
    /// Call-ID, CSeq, and Timestamp for 100 (section 8.2.6.1). Add a To tag with
    /// [`SipMessage::with_to_tag`].
    pub fn response_to(request: &SipMessage, status: u16, reason: &str) -> SipMessage {
        let mut headers = Headers::new();
        for h in request.headers().iter() {
            let copy = match h.name() {
                "Via" | "From" | "To" | "Call-ID" | "CSeq" => true,
                "Timestamp" => status == 100,
                _ => false,
            };
            if copy {
                headers.push(h.name(), h.value());
            }
        }
        SipMessage::Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Bytes::new(),
        }
    }

    /// Adds `;tag=<tag>` to To unless it already has a tag.
    pub fn with_to_tag(mut self, tag: &str) -> SipMessage {
        if let Some(to) = self.headers().get("To")
            && NameAddr::parse(to).is_some_and(|n| n.tag().is_none())
        {
            let value = format!("{to};tag={tag}");
            self.headers_mut().set("To", &value);
        }
        self
    }

    /// Appends a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> SipMessage {
        self.headers_mut().push(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn with_body(mut self, content_type: &str, body: impl Into<Bytes>) -> SipMessage {
        self.set_body(content_type, body);
        self
    }

    /// The response a UAS sends for `raw` that failed with `error`, built from whatever Via,
    /// From, To, Call-ID and CSeq can still be read. `None` when `raw` is a response (those
    /// are dropped) or has no Via to send the answer to.
    pub fn error_response(raw: &[u8], error: &ParseError) -> Option<SipMessage> {
        let raw = skip_leading_crlf(raw);
        let head = match find(raw, b"\r\n\r\n") {
            Some(n) => &raw[..n], // INVARIANT: n <= raw.len().
            None => raw,
        };
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let start = lines.next()?;
        let first = start.split(' ').next()?;
        if first
            .as_bytes()
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
            || !is_token(first)
        {
            return None;
        }
        let mut unfolded: Vec<String> = Vec::new();
        for line in lines {
            match unfolded.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => unfolded.push(line.to_owned()),
            }
        }
        let (status, reason) = error.status();
        let mut headers = Headers::new();
        let mut seen = Vec::new();
        for line in &unfolded {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = canonical_name(name.trim());
            let value = value.trim();
            if value.contains(['\r', '\n']) || value.is_empty() {
                continue;
            }
            let wanted = match name {
                "Via" => true,
                "From" | "To" | "Call-ID" | "CSeq" => !seen.contains(&name),
                _ => false,
            };
            if wanted {
                seen.push(name);
                headers.push(name, value);
            }
        }
        headers.get("Via")?;
        Some(SipMessage::Response {
            status,
            reason,
            headers,
            body: Bytes::new(),
        })
    }

    /// The message on the wire: CRLF line ends, Content-Length from the body, last header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.start_line();
        out.push_str("\r\n");
        for h in self
            .headers()
            .iter()
            .filter(|h| h.name() != "Content-Length")
        {
            out.push_str(&format!("{h}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body().len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(self.body());
        bytes
    }
}

impl fmt::Display for SipMessage {
    /// The wire form; a non-UTF-8 body is shown lossily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

fn parse_start_line(line: &str, headers: Headers, body: Bytes) -> Result<SipMessage, ParseError> {
    // INVARIANT: the length is checked before slicing four bytes.
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        check_version(version)?;
        let code = parts.next().unwrap_or_default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StatusCode);
        }
        let reason = parts.next().unwrap_or_default();
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        return Ok(SipMessage::Response {
            status,
            reason: reason.to_owned(),
            headers,
            body,
        });
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(ParseError::StartLine(
            "not three fields separated by single spaces",
        ));
    };
    let method = Method::parse(method).ok_or(ParseError::StartLine("method is not a token"))?;
    check_version(version)?;
    let uri = Uri::parse(uri).ok_or(ParseError::RequestUri("not an absolute URI"))?;
    if uri.headers().is_some() {
        return Err(ParseError::RequestUri(
            "headers are not allowed in a Request-URI",
        ));
    }
    Ok(SipMessage::Request {
        method,
        uri,
        headers,
        body,
    })
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let numbers = v.get(4..).and_then(|n| n.split_once('.'));
    // INVARIANT: the length is checked before slicing four bytes.
    let well_formed = v.len() > 4
        && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && numbers.is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if well_formed {
        Err(ParseError::VersionNotSupported(v.to_owned()))
    } else {
        Err(ParseError::StartLine("malformed SIP version"))
    }
}

/// Splits the header section into the start line and header lines, joining continuation lines
/// (RFC 3261 section 7.3.1: folding LWS becomes one space).
fn unfold(head: &str) -> Result<Vec<String>, ParseError> {
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.contains(['\r', '\n']) {
            return Err(ParseError::HeaderLine);
        }
        if line.starts_with([' ', '\t']) {
            let folds_header = lines.len() > 1;
            match lines.last_mut() {
                Some(last) if folds_header => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => return Err(ParseError::StartLine("starts with whitespace or is folded")),
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    Ok(lines)
}

fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    let bad = ParseError::Header {
        name: "Content-Length",
        why: "not a non-negative integer",
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    v.parse().map_err(|_| bad)
}

/// `delta-seconds` below 2**32.
fn delta_u32(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn media_type_of(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `wkday "," SP 2DIGIT SP month SP 4DIGIT SP HH:MM:SS SP "GMT"` (RFC 3261 section 20.17).
fn is_rfc1123_gmt(v: &str) -> bool {
    const WKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = v.split(' ').collect();
    let [wkday, day, month, year, time, zone] = parts[..] else {
        return false;
    };
    let time_ok = {
        let t: Vec<&str> = time.split(':').collect();
        t.len() == 3 && t.iter().all(|p| digits(p, 2))
    };
    wkday.strip_suffix(',').is_some_and(|w| WKDAYS.contains(&w))
        && digits(day, 2)
        && MONTHS.contains(&month)
        && digits(year, 4)
        && time_ok
        && zone == "GMT"
}

fn skip_leading_crlf(mut b: &[u8]) -> &[u8] {
    while let Some(rest) = b.strip_prefix(b"\r\n") {
        b = rest;
    }
    b
}

/// Index of the first `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:conf@chorus.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport\r\n\
Via: SIP/2.0/TCP proxy.example;branch=z9hG4bKb;received=192.0.2.9\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
t: <sip:conf@chorus.example>\r\n\
i: call-1@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
Timestamp: 54\r\n\
m: <sip:alice@192.0.2.1:5060;transport=udp>;expires=60\r\n\
Supported: timer, 100rel\r\n\
Require: timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
Expires: 120\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\r\n";

    #[test]
    fn typed_accessors() {
        let m = SipMessage::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.uri().unwrap().user(), Some("conf"));
        let via = m.top_via().unwrap();
        assert_eq!(
            (via.transport.as_str(), via.host.as_str(), via.port),
            ("UDP", "192.0.2.1", Some(5060))
        );
        assert_eq!(via.rport(), Some(None));
        assert_eq!(m.vias()[1].received(), Some("192.0.2.9"));
        assert_eq!(m.from().unwrap().display_name.as_deref(), Some("Alice"));
        assert_eq!(m.from().unwrap().tag(), Some("a1"));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.call_id(), Some("call-1@192.0.2.1"));
        assert_eq!(m.cseq().unwrap().seq, 7);
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body().as_ref(), b"v=0\r");
        assert_eq!(m.media_type().as_deref(), Some("application/sdp"));
        assert_eq!(m.contact_uri().unwrap().port(), Some(5060));
        assert_eq!(m.supported(), vec!["timer", "100rel"]);
        assert_eq!(m.require(), vec!["timer"]);
        assert!(m.unsupported_options(&["timer"]).is_empty());
        assert_eq!(m.expires(), Some(120));
        let se = m.session_expires().unwrap();
        assert_eq!(
            (se.delta_secs, se.refresher.as_deref()),
            (1800, Some("uac"))
        );
        assert_eq!(m.min_se(), Some(90));
        assert!(m.missing_mandatory().is_empty());
        assert!(m.accepts("application/sdp"));
    }

    #[test]
    fn response_copies_dialog_headers_and_round_trips() {
        let req = SipMessage::parse(INVITE).unwrap();
        let resp = SipMessage::response_to(&req, 200, "OK")
            .with_to_tag("srv1")
            .with_header("Contact", "<sip:conf@192.0.2.50>")
            .with_body("application/sdp", &b"v=0\r\n"[..]);
        let wire = resp.to_bytes();
        let back = SipMessage::parse(&wire).unwrap();
        assert_eq!(back.status(), Some(200));
        assert_eq!(back.vias().len(), 2);
        assert_eq!(back.vias()[0].branch(), Some("z9hG4bKa"));
        assert_eq!(back.to().unwrap().tag(), Some("srv1"));
        assert_eq!(back.cseq(), req.cseq());
        assert_eq!(back.call_id(), req.call_id());
        assert_eq!(back.content_length(), Some(5));
        assert!(back.headers().get("Timestamp").is_none());
        let trying = SipMessage::response_to(&req, 100, "Trying").with_to_tag("x");
        assert_eq!(trying.headers().get("Timestamp"), Some("54"));
        // A To that already has a tag keeps it.
        let again = back.clone().with_to_tag("other");
        assert_eq!(again.to().unwrap().tag(), Some("srv1"));
        assert!(
            String::from_utf8(wire)
                .unwrap()
                .ends_with("Content-Length: 5\r\n\r\nv=0\r\n")
        );
    }

    #[test]
    fn error_response_from_garbage() {
        let raw = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 99999999999 INVITE\r\ni: c1\r\n\r\n";
        let err = SipMessage::parse(raw).unwrap_err();
        assert!(matches!(err, ParseError::Header { name: "CSeq", .. }));
        let resp = SipMessage::error_response(raw, &err).unwrap();
        assert_eq!(resp.status(), Some(400));
        assert!(resp.reason().unwrap().contains("CSeq"));
        assert_eq!(resp.call_id(), Some("c1"));
        assert!(SipMessage::error_response(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", &err).is_none());
        assert!(SipMessage::error_response(b"\x00\x01", &err).is_none());
    }

    #[test]
    fn udp_size_rule() {
        assert!(!needs_stream_transport(1300));
        assert!(needs_stream_transport(1301));
    }

    #[test]
    fn dates() {
        assert!(is_rfc1123_gmt("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!is_rfc1123_gmt("Fri, 01 Jan 2010 16:00:00 EST"));
    }
}
