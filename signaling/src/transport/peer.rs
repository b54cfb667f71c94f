//! Who is on the other end: the transport, the addresses and the connection of a message.

use std::fmt;
use std::net::SocketAddr;

use super::connections::ConnId;
use crate::message::{ParseError, SipMessage};

/// A SIP transport protocol (RFC 3261 section 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// SIP over UDP: one message per datagram.
    Udp,
    /// SIP over TCP: a byte stream framed by Content-Length.
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 section 26.2).
    Tls,
}

impl Transport {
    /// Whether messages travel on a connection (TCP, TLS) rather than datagrams.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        })
    }
}

/// Where a message came from / goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport it travels on.
    pub transport: Transport,
    /// The other end's address.
    pub remote: SocketAddr,
    /// Our address: the listener's (or, for a connection Chorus opened, the socket's).
    pub local: SocketAddr,
    /// The TCP/TLS connection; `None` for UDP.
    pub conn: Option<ConnId>,
}

/// What arrived from a peer.
#[derive(Debug)]
pub enum InboundFrame {
    /// A valid message.
    Message(SipMessage),
    /// A message that failed to parse (framing intact); the UA core decides the reply
    /// ([`SipMessage::error_response`]).
    Invalid {
        /// The message bytes.
        raw: Vec<u8>,
        /// Why it failed.
        error: ParseError,
    },
}

/// A frame and the peer it came from.
#[derive(Debug)]
pub struct Inbound {
    /// Where it came from (send the answer to this peer).
    pub peer: Peer,
    /// What came.
    pub frame: InboundFrame,
}
