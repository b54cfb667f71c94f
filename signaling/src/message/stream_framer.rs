//! Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 section 18.3) and RFC 5626
//! CRLF keepalives, within size limits.

use super::error::ParseError;
use super::sip_message::{SipMessage, find};

/// Size limits for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (header section plus body), in bytes.
    pub max_message_bytes: usize,
    /// Largest header section (start line and headers, without the empty line), in bytes.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What the framer found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete, valid message.
    Message(SipMessage),
    /// A complete message that failed to parse; framing is intact, so answer it
    /// ([`SipMessage::error_response`]) and keep the connection.
    Invalid {
        /// The message bytes.
        raw: Vec<u8>,
        /// Why it failed.
        error: ParseError,
    },
    /// RFC 5626 section 4.4.1 ping (CRLF CRLF): answer with a single CRLF pong.
    Ping,
    /// A single CRLF (an RFC 5626 pong, or stray keepalive): nothing to answer.
    Pong,
}

/// Buffers stream bytes and yields frames. Sans-IO: the transport pushes what it read and
/// drains [`StreamFramer::poll`] until `None`.
///
/// An `Err` from `poll` means framing is lost (no or bad Content-Length, or a limit exceeded):
/// answer if possible from [`StreamFramer::buffered`] (400 or 513), then close the connection.
/// A lone CRLF at the end of the buffer is held back until the next byte shows whether it is a
/// pong or the first half of a ping.
#[derive(Debug, Clone, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    failed: bool,
    /// Bytes of `buf` known to hold no header terminator (so a trickled stream is scanned
    /// once, not once per read).
    scanned: usize,
    /// The length of the message at the front of `buf`, once its header is complete.
    pending_total: Option<usize>,
    /// Bytes examined for header terminators so far (tests check the scan stays linear).
    #[cfg(test)]
    examined: usize,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: Vec::new(),
            limits,
            failed: false,
            scanned: 0,
            pending_total: None,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Appends bytes read from the connection (ignored once framing failed).
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes received and not yet framed (after a failure: the offending bytes).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Whether framing failed and the connection must be closed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The next frame, `None` when more bytes are needed (or after a failure was reported).
    pub fn poll(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.failed {
            return None;
        }
        if let Some(total) = self.pending_total {
            return self.take_message(total);
        }
        if self.buf.starts_with(b"\r\n\r\n") {
            self.consume(4);
            return Some(Ok(Frame::Ping));
        }
        // INVARIANT: buf[2] is read only when len > 2.
        if self.buf.starts_with(b"\r\n") && self.buf.len() > 2 && self.buf[2] != b'\r' {
            self.consume(2);
            return Some(Ok(Frame::Pong));
        }
        if self.buf.is_empty() || self.buf.starts_with(b"\r") && self.buf.len() < 4 {
            return None;
        }
        let window = self.buf.len().min(self.limits.max_header_bytes + 4);
        // Resume where the last scan stopped, backing up 3 bytes for a terminator split
        // across reads. INVARIANT: from <= scanned <= window <= buf.len().
        let from = self.scanned.saturating_sub(3).min(window);
        let found = find(&self.buf[from..window], b"\r\n\r\n").map(|i| from + i);
        self.scanned = window;
        #[cfg(test)]
        {
            self.examined += window - from;
        }
        let Some(head_len) = found else {
            if self.buf.len() > self.limits.max_header_bytes + 3 {
                return Some(self.fail(ParseError::HeadersTooLarge {
                    limit: self.limits.max_header_bytes,
                }));
            }
            return None;
        };
        if head_len > self.limits.max_header_bytes {
            return Some(self.fail(ParseError::HeadersTooLarge {
                limit: self.limits.max_header_bytes,
            }));
        }
        // INVARIANT: head_len < window <= buf.len().
        let body_len = match content_length(&self.buf[..head_len]) {
            Ok(n) => n,
            Err(e) => return Some(self.fail(e)),
        };
        let total = match (head_len + 4).checked_add(body_len) {
            Some(t) if t <= self.limits.max_message_bytes => t,
            _ => {
                return Some(self.fail(ParseError::MessageTooLarge {
                    limit: self.limits.max_message_bytes,
                }));
            }
        };
        self.pending_total = Some(total);
        self.take_message(total)
    }

    /// The message of `total` bytes at the front of the buffer, once all of it is here.
    fn take_message(&mut self, total: usize) -> Option<Result<Frame, ParseError>> {
        if self.buf.len() < total {
            return None;
        }
        let raw: Vec<u8> = self.buf[..total].to_vec();
        self.consume(total);
        Some(Ok(match SipMessage::parse_with(&raw, &self.limits) {
            Ok(msg) => Frame::Message(msg),
            Err(error) => Frame::Invalid { raw, error },
        }))
    }

    /// Drops `n` bytes from the front; the next message starts unscanned.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.scanned = 0;
        self.pending_total = None;
    }

    fn fail(&mut self, error: ParseError) -> Result<Frame, ParseError> {
        tracing::debug!(%error, buffered = self.buf.len(), "SIP stream framing lost");
        self.failed = true;
        Err(error)
    }
}

/// The Content-Length of a header section, read leniently enough to frame any message
/// (folded lines are skipped, `l` and any case accepted).
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<&str> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let value = value.trim();
        match found {
            Some(prev) if prev != value => return Err(ParseError::Duplicate("Content-Length")),
            _ => found = Some(value),
        }
    }
    let value = found.ok_or(ParseError::MissingContentLength)?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Header {
            name: "Content-Length",
            why: "not a non-negative integer",
        });
    }
    // Too many digits for usize is too large for any limit.
    Ok(value.parse().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:c@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:c@x>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nl: 3\r\n\r\nabc";

    #[test]
    fn a_trickled_message_is_scanned_once() {
        // OPTIONS without its last 11 bytes ("l: 3\r\n\r\nabc").
        let mut msg = OPTIONS[..OPTIONS.len() - 11].to_vec();
        while msg.len() < 15_000 {
            msg.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let body = vec![b'x'; 40_000];
        msg.extend_from_slice(format!("l: {}\r\n\r\n", body.len()).as_bytes());
        msg.extend_from_slice(&body);
        let mut f = StreamFramer::default();
        let mut frames = 0;
        for chunk in msg.chunks(7) {
            f.push(chunk);
            while let Some(frame) = f.poll() {
                assert!(matches!(frame, Ok(Frame::Message(_))));
                frames += 1;
            }
        }
        assert_eq!(frames, 1);
        // Each header byte is looked at about once (plus 3 bytes of overlap per read), not
        // once per read; the body is not scanned at all.
        assert!(f.examined < 15_000 + 3 * 15_000 / 7 + 64, "{}", f.examined);
    }

    fn drain(f: &mut StreamFramer) -> Vec<Result<Frame, ParseError>> {
        std::iter::from_fn(|| f.poll()).collect()
    }

    #[test]
    fn byte_by_byte_with_keepalives() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut f = StreamFramer::default();
        let mut frames = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            frames.extend(drain(&mut f));
        }
        let kinds: Vec<&str> = frames
            .iter()
            .map(|fr| match fr {
                Ok(Frame::Ping) => "ping",
                Ok(Frame::Pong) => "pong",
                Ok(Frame::Message(m)) if m.body().as_ref() == b"abc" => "msg",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["ping", "msg", "msg", "pong", "msg"]);
        assert!(f.buffered().is_empty());
    }

    #[test]
    fn missing_content_length_is_fatal() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:c@x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        assert_eq!(f.poll(), Some(Err(ParseError::MissingContentLength)));
        assert!(f.is_failed());
        assert_eq!(f.poll(), None);
        let resp = SipMessage::error_response(f.buffered(), &ParseError::MissingContentLength);
        assert_eq!(resp.unwrap().status(), Some(400));
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_message_bytes: 200,
            max_header_bytes: 100,
        };
        let mut f = StreamFramer::new(limits);
        f.push(&[b'a'; 104]);
        assert_eq!(
            f.poll(),
            Some(Err(ParseError::HeadersTooLarge { limit: 100 }))
        );
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:c@x SIP/2.0\r\nl: 500\r\n\r\n");
        let err = f.poll().unwrap().unwrap_err();
        assert_eq!(err, ParseError::MessageTooLarge { limit: 200 });
        assert_eq!(err.status().0, 513);
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:c@x SIP/2.0\r\nl: 99999999999999999999999999\r\n\r\n");
        assert!(matches!(
            f.poll(),
            Some(Err(ParseError::MessageTooLarge { .. }))
        ));
    }

    #[test]
    fn invalid_message_keeps_connection() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:c@x SIP/2.0\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n");
        f.push(OPTIONS);
        let frames = drain(&mut f);
        assert!(matches!(
            frames[0],
            Ok(Frame::Invalid {
                error: ParseError::CSeqMismatch,
                ..
            })
        ));
        assert!(matches!(frames[1], Ok(Frame::Message(_))));
    }
}
