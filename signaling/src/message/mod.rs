//! SIP messages: parsing, access, serialization, stream framing, limits.
//!
//! The parser is Chorus's own: strict where RFC 3261 and RFC 4475 say a message is malformed
//! (so a UAS answers 400 instead of acting on a guess), liberal where they say to accept
//! (unusual whitespace, line folding, compact forms, unknown methods and schemes). Every parse
//! failure maps to the response a UAS sends ([`ParseError::status`],
//! [`SipMessage::error_response`]).
//!
//! ```
//! use chorus_signaling::message::SipMessage;
//!
//! let raw = b"OPTIONS sip:conf@example.com SIP/2.0\r\n\
//!     v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nf: <sip:a@example.com>;tag=1\r\n\
//!     t: <sip:conf@example.com>\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
//! let req = SipMessage::parse(raw).unwrap();
//! let ok = SipMessage::response_to(&req, 200, "OK").with_to_tag("x1");
//! assert!(ok.to_string().starts_with("SIP/2.0 200 OK\r\n"));
//! ```

mod cseq;
mod error;
mod header;
mod method;
mod name_addr;
mod param;
mod sip_message;
mod stream_framer;
mod uri;
mod via;

#[cfg(test)]
mod rfc4475;

pub use cseq::CSeq;
pub use error::ParseError;
pub(crate) use header::quoted_string;
pub use header::{Header, Headers, canonical_name};
pub use method::Method;
pub use name_addr::NameAddr;
pub use param::Param;
pub use sip_message::{
    MAX_DATAGRAM_REQUEST_BYTES, SessionExpires, SipMessage, needs_stream_transport,
};
pub use stream_framer::{Frame, Limits, StreamFramer};
pub use uri::{Uri, unescape};
pub use via::{BRANCH_MAGIC_COOKIE, Via};
