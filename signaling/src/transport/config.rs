//! What to listen on and the limits of the transport layer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::peer::Transport;
use crate::message::Limits;

/// One listener: a transport on an address (port 0 picks a free port).
#[derive(Clone, Copy, Debug)]
pub struct ListenSpec {
    /// UDP socket, TCP listener, or TLS listener (TCP plus a rustls acceptor).
    pub transport: Transport,
    /// The address to bind.
    pub addr: SocketAddr,
}

/// Configuration of [`super::Transports::bind`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Listeners, bound in this order.
    pub listen: Vec<ListenSpec>,
    /// Server configuration for TLS listeners (required when there is one).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Client configuration for TLS connections we open (the UAC calling over TLS); without
    /// it a send to a TLS peer with no connection is dropped.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Size limits of one message.
    pub limits: Limits,
    /// TCP and TLS connections open at once (inbound and outbound); more are refused.
    pub max_connections: usize,
    /// A connection without any bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Capacity of the inbound channel; a full channel drops (and counts) new frames.
    pub inbound_capacity: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: Vec::new(),
            tls: None,
            tls_client: None,
            limits: Limits::default(),
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(10 * 60),
            inbound_capacity: 8192,
        }
    }
}
