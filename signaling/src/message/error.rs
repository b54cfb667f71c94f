//! The one error type of the message layer, and the SIP response each error calls for.

use thiserror::Error;

/// Why bytes could not be taken as a SIP message.
///
/// Every variant knows the status a UAS answers with when the bytes were a request
/// ([`ParseError::status`]); [`super::SipMessage::error_response`] builds that response from the
/// raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No empty line ends the header section (the message is truncated or not SIP).
    #[error("header section not terminated by an empty line")]
    Incomplete,
    /// The header section is not UTF-8 text.
    #[error("header section is not UTF-8")]
    NotUtf8,
    /// The request line or status line does not follow RFC 3261 section 7.1 / 7.2.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP version is well formed but not SIP/2.0 (RFC 4475 badvers: answer 505).
    #[error("SIP version {0} not supported")]
    VersionNotSupported(String),
    /// The status code is not three digits (RFC 4475 bigcode).
    #[error("status code is not three digits")]
    StatusCode,
    /// The Request-URI does not parse, or carries escaped headers (RFC 4475 escruri).
    #[error("invalid Request-URI: {0}")]
    RequestUri(&'static str),
    /// A header line has no colon or its name is not a token.
    #[error("malformed header line")]
    HeaderLine,
    /// A header field the message layer checks has a value that breaks its grammar or range.
    #[error("invalid {name} header: {why}")]
    Header {
        /// Canonical header name.
        name: &'static str,
        /// What is wrong with the value.
        why: &'static str,
    },
    /// A header field that may appear once appears more than once (RFC 4475 multi01, mcl01).
    #[error("multiple {0} header fields")]
    Duplicate(&'static str),
    /// The CSeq method differs from the request method (RFC 4475 mismatch01, mismatch02).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// Content-Length promises more bytes than arrived (RFC 4475 clerr).
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    BodyTruncated {
        /// The Content-Length value.
        declared: usize,
        /// Bytes after the header section.
        available: usize,
    },
    /// A message on a stream transport has no Content-Length (RFC 3261 section 18.3).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    /// The header section exceeds the configured limit.
    #[error("header section larger than {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The whole message exceeds the configured limit.
    #[error("message larger than {limit} bytes")]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl ParseError {
    /// Status code and reason phrase a UAS answers with when the failed message was a request.
    ///
    /// The reason phrase names the problem, as RFC 3261 section 21 allows.
    pub fn status(&self) -> (u16, String) {
        match self {
            Self::VersionNotSupported(_) => (505, "Version Not Supported".to_owned()),
            Self::HeadersTooLarge { .. } | Self::MessageTooLarge { .. } => {
                (513, "Message Too Large".to_owned())
            }
            Self::Incomplete => (400, "Bad Request - Incomplete Message".to_owned()),
            Self::NotUtf8 => (400, "Bad Request - Header Section Not UTF-8".to_owned()),
            Self::StartLine(_) => (400, "Bad Request - Malformed Request Line".to_owned()),
            Self::StatusCode => (400, "Bad Request - Malformed Status Code".to_owned()),
            Self::RequestUri(_) => (400, "Bad Request - Invalid Request-URI".to_owned()),
            Self::HeaderLine => (400, "Bad Request - Malformed Header Line".to_owned()),
            Self::Header { name, .. } => (400, format!("Bad Request - Invalid {name}")),
            Self::Duplicate(name) => (400, format!("Bad Request - Multiple {name}")),
            Self::CSeqMismatch => (400, "Bad Request - CSeq Method Mismatch".to_owned()),
            Self::BodyTruncated { .. } => {
                (400, "Bad Request - Content-Length Too Large".to_owned())
            }
            Self::MissingContentLength => (400, "Bad Request - Missing Content-Length".to_owned()),
        }
    }

    /// Whether a stream transport has lost framing and must close the connection after
    /// answering (RFC 3261 section 18.3).
    pub fn closes_stream(&self) -> bool {
        matches!(
            self,
            Self::MissingContentLength
                | Self::HeadersTooLarge { .. }
                | Self::MessageTooLarge { .. }
                | Self::Incomplete
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc3261_and_rfc4475() {
        assert_eq!(
            ParseError::VersionNotSupported("SIP/7.0".into()).status().0,
            505
        );
        assert_eq!(ParseError::MessageTooLarge { limit: 1 }.status().0, 513);
        let (code, reason) = ParseError::Duplicate("Content-Length").status();
        assert_eq!(code, 400);
        assert!(reason.contains("Content-Length"));
        assert!(ParseError::MissingContentLength.closes_stream());
        assert!(!ParseError::CSeqMismatch.closes_stream());
    }
}
