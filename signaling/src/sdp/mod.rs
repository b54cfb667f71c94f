//! SDP (RFC 8866) parsing and RFC 3264 offer/answer for Chorus.
//!
//! [`SessionDescription::parse`] reads what real phones send and [`SessionDescription`]'s
//! `Display` writes RFC 8866 order with CRLF. Nothing here does I/O.

mod answer;
mod attribute;
mod bandwidth;
mod codec;
mod config;
mod connection;
mod direction;
mod error;
mod fmtp;
mod local_session;
mod media;
mod negotiated;
mod offer;
mod origin;
mod protocol;
mod rtcp;
mod rtpmap;
mod session;
mod ssrc;
#[cfg(test)]
mod testdata;

pub use answer::answer_offer;
pub use attribute::Attribute;
pub use bandwidth::{Bandwidth, BandwidthKind};
pub use codec::{Codec, TELEPHONE_EVENT, TELEPHONE_EVENT_RATES};
pub use config::{OfferAnswerConfig, SrtpPolicy};
pub use connection::{AddressType, Connection};
pub use direction::Direction;
pub use error::SdpError;
pub use fmtp::Fmtp;
pub use local_session::LocalSession;
pub use media::{MediaDescription, MediaKind};
pub use negotiated::{Negotiated, NegotiatedCodec, SrtpKeys, TelephoneEvent};
pub use offer::{
    OFFER_EVENT_PT_8000, OFFER_EVENT_PT_48000, PendingOffer, make_offer, process_answer,
};
pub use origin::{Origin, SessionVersion};
pub use protocol::Protocol;
pub use rtcp::RtcpAttribute;
pub use rtpmap::Rtpmap;
pub use session::{MAX_SDP_LEN, SessionDescription, Timing};
pub use ssrc::SsrcAttribute;
