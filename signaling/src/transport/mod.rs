//! SIP transports: UDP, TCP and TLS listeners on tokio, connection reuse, framing and limits.
