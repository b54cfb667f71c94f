//! SDP (RFC 8866) parsing and RFC 3264 offer/answer for Chorus.
//!
//! [`SessionDescription::parse`] reads what real phones send and [`SessionDescription`]'s
//! `Display` writes RFC 8866 order with CRLF. Nothing here does I/O.

mod attribute;
mod bandwidth;
mod connection;
mod direction;
mod error;
mod fmtp;
mod media;
mod origin;
mod protocol;
mod rtcp;
mod rtpmap;
mod session;
mod ssrc;

pub use attribute::Attribute;
pub use bandwidth::{Bandwidth, BandwidthKind};
pub use connection::{AddressType, Connection};
pub use direction::Direction;
pub use error::SdpError;
pub use fmtp::Fmtp;
pub use media::{MediaDescription, MediaKind};
pub use origin::{Origin, SessionVersion};
pub use protocol::Protocol;
pub use rtcp::RtcpAttribute;
pub use rtpmap::Rtpmap;
pub use session::{MAX_SDP_LEN, SessionDescription, Timing};
pub use ssrc::SsrcAttribute;
