//! SDP (RFC 8866) parsing and RFC 3264 offer/answer for Chorus.
//!
//! - [`SessionDescription::parse`] reads what real phones send (bare LF, trailing spaces,
//!   unknown lines and attributes kept) and refuses only malformed `v o c b t m` lines; its
//!   `Display` writes RFC 8866 order with CRLF. [`MediaDescription`] gives typed access to
//!   rtpmap, fmtp, ptime, direction, rtcp-mux, rtcp, crypto, ssrc, mid and bandwidth.
//! - [`answer_offer`]: we are the answerer (UAS). Yields the answer and a [`Negotiated`] for
//!   the leg, or an [`SdpError`] whose [`SdpError::sip_status`] is 488 with a Warning.
//! - [`make_offer`] and [`process_answer`]: we are the offerer (dial-out, re-INVITE, hold).
//! - [`LocalSession`] is our `o=` line and its version, and the SRTP key in effect, for one
//!   dialog; [`OfferAnswerConfig`] holds codec preference and [`SrtpPolicy`].
//!
//! Nothing here does I/O or reads a clock; SRTP keys come from the engine's SDES module
//! (system CSPRNG).
//!
//! ```
//! use chorus_signaling::sdp::{
//!     Codec, Direction, LocalSession, OfferAnswerConfig, SessionDescription, answer_offer,
//! };
//!
//! let offer: SessionDescription = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n\
//!     c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\n\
//!     a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
//!     .parse()?;
//! let mut session = LocalSession::new(42, "192.0.2.1".parse()?);
//! let config = OfferAnswerConfig::default();
//! let (answer, leg) = answer_offer(&offer, &mut session, "192.0.2.1:30000".parse()?, &config)?;
//! assert_eq!(leg.codec.codec, Codec::Pcmu);
//! assert_eq!(leg.direction, Direction::RecvOnly); // the caller put us on hold
//! assert!(answer.to_string().contains("a=recvonly\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
mod video;

pub use answer::answer_offer;
pub use attribute::Attribute;
pub use bandwidth::{Bandwidth, BandwidthKind};
pub use codec::{Codec, TELEPHONE_EVENT, TELEPHONE_EVENT_RATES};
pub use config::{OfferAnswerConfig, SrtpPolicy};
pub use connection::{AddressType, Connection};
pub use direction::Direction;
pub use error::SdpError;
pub use fmtp::Fmtp;
pub use local_session::{LocalSession, LocalSource, VideoSource};
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
pub use video::{
    Extension, Extensions, Feedback, H264Profile, LAYOUT_ATTRIBUTE, NegotiatedVideo,
    ProfileLevelId, Rid, Simulcast, SimulcastId, VIDEO_CLOCK_RATE, VideoCodec, VideoConfig,
    VideoSession, accept_video_answer, answer_video, offer_video,
};
