//! SIP transports: UDP, TCP and TLS listeners on tokio, connection reuse, framing and limits.
//!
//! This is the tokio glue under the sans-IO SIP layer: [`Transports::bind`] opens the
//! listeners and spawns their tasks; every datagram or stream frame arrives on one bounded
//! channel as an [`Inbound`] naming its [`Peer`]; [`Transports::send`] takes serialized
//! messages back without ever blocking the caller. Whatever cannot be delivered (a full
//! queue, a dead connection) is dropped and counted in [`TransportStats`].
//!
//! - UDP: one datagram is one message (RFC 3261 section 18.1); CRLF keepalives are ignored.
//! - TCP/TLS: a [`crate::message::StreamFramer`] per connection (RFC 3261 section 18.3),
//!   RFC 5626 CRLF CRLF pings answered with a CRLF pong, a 400/513 and close when framing is
//!   lost, an idle timeout, a connection limit. Responses go back over the connection the
//!   request came on (RFC 3261 section 18.2.2); TCP opens a connection when there is none.
//!
//! ```no_run
//! # async fn run() -> Result<(), chorus_signaling::transport::TransportError> {
//! use chorus_signaling::transport::{InboundFrame, ListenSpec, Transport, TransportConfig, Transports};
//! use chorus_signaling::message::SipMessage;
//!
//! let cfg = TransportConfig {
//!     listen: vec![ListenSpec { transport: Transport::Udp, addr: "0.0.0.0:5060".parse().unwrap() }],
//!     ..TransportConfig::default()
//! };
//! let (transports, mut inbound) = Transports::bind(cfg).await?;
//! while let Some(msg) = inbound.recv().await {
//!     if let InboundFrame::Message(req) = &msg.frame {
//!         let ok = SipMessage::response_to(req, 200, "OK");
//!         transports.send(&msg.peer, ok.to_bytes().into());
//!     }
//! }
//! # Ok(()) }
//! ```

mod activity;
mod config;
mod connection;
mod connections;
mod error;
mod listener;
mod peer;
mod stats;
mod transports;
mod udp_socket;

pub use config::{ListenSpec, TransportConfig};
pub use connections::ConnId;
pub use error::TransportError;
pub use peer::{Inbound, InboundFrame, Peer, Transport};
pub use stats::TransportStats;
pub use transports::Transports;
