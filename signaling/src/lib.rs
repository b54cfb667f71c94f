//! chorus-signaling: the control side's SIP layer.
//!
//! Sans-IO except for [`transport`]: every state machine takes `now` and yields what to send;
//! the transports are the tokio edge, and the binary's control task ties them to the UA.
//!
//! - [`message`]: SIP messages (RFC 3261 syntax, compact forms, RFC 4475 robustness), stream
//!   framing and size limits.
//! - [`sdp`]: SDP parsing and RFC 3264 offer/answer for Chorus's audio (and SDES SRTP).
//! - [`transaction`]: RFC 3261 client and server transactions with timers A-M (RFC 6026),
//!   and the 2xx retransmitter of a UAS.
//! - [`admission`]: overload control for new calls (503 with Retry-After).
//! - [`dtmf_info`]: DTMF in SIP INFO bodies (application/dtmf-relay, application/dtmf).
//! - [`digest`]: digest authentication (RFC 8760: MD5, SHA-256) with stateless nonces.
//! - [`session_timer`]: RFC 4028 session timers (negotiation, refresh and expiry).
//! - [`transport`]: SIP over UDP, TCP and TLS (tokio), with connection reuse and limits.
//! - [`uac`]: the UAC core for outgoing calls (dial-out, load generation): INVITE with an
//!   offer, digest retry, CANCEL, ACK and BYE, in-dialog requests from the far end (sans-IO).
//! - [`ua`]: the UAS core tying messages, transactions, dialogs, SDP, admission and the
//!   media engine together (sans-IO).
//! - [`tls`]: the certificate and key for SIP over TLS (configured, or self-signed on first
//!   start).

pub mod access;
pub mod admission;
pub mod digest;
pub mod dtmf_info;
pub mod emodel;
pub mod media_leg;
pub mod message;
pub mod sdp;
pub mod session_timer;
pub mod tls;
pub mod token;
pub mod transaction;
pub mod transport;
pub mod ua;
pub mod uac;
