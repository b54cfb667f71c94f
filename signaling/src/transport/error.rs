//! The one error type of the transport layer: configuration and binding.

use std::net::SocketAddr;

use thiserror::Error;

use super::peer::Transport;

/// Why the transports could not start.
#[derive(Debug, Error)]
pub enum TransportError {
    /// A listener could not be bound (address in use, no permission, no such address).
    #[error("{transport}:{addr} could not be bound")]
    Bind {
        /// The listener's transport.
        transport: Transport,
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A TLS listener was asked for without a TLS server configuration.
    #[error("tls:{addr}: no TLS certificate configured")]
    NoTlsConfig {
        /// The listener's address.
        addr: SocketAddr,
    },
}
