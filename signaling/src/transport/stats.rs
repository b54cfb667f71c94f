//! Counters of the transport layer: what was received, sent, dropped and refused.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the transport counters ([`super::Transports::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// SIP messages received (valid or not) on every transport.
    pub received: u64,
    /// Messages (and pongs) written to a socket.
    pub sent: u64,
    /// Received frames dropped because the inbound channel was full.
    pub dropped_inbound_full: u64,
    /// Messages to send that were dropped (full queue, no connection, socket error).
    pub dropped_send: u64,
    /// Received messages that did not parse (delivered as [`super::InboundFrame::Invalid`]).
    pub invalid: u64,
    /// CRLF keepalives received (UDP CRLF datagrams, stream pings and pongs).
    pub keepalives: u64,
    /// TCP/TLS connections open now.
    pub connections_open: u64,
    /// TCP/TLS connections accepted by listeners.
    pub connections_accepted: u64,
    /// TCP connections opened to send.
    pub connections_outbound: u64,
    /// Connections closed at once (or, to send, not opened) because `max_connections` were
    /// open.
    pub connections_refused: u64,
    /// Connections closed because framing was lost (no Content-Length, too large, ...).
    pub framing_errors: u64,
    /// Connections closed for idleness.
    pub idle_closed: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failed: u64,
}

/// The live counters, bumped from every task.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped_inbound_full: AtomicU64,
    pub dropped_send: AtomicU64,
    pub invalid: AtomicU64,
    pub keepalives: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_outbound: AtomicU64,
    pub connections_refused: AtomicU64,
    pub framing_errors: AtomicU64,
    pub idle_closed: AtomicU64,
    pub tls_handshake_failed: AtomicU64,
}

/// Adds one to a counter.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// The counters now, with the number of open connections.
    pub fn snapshot(&self, connections_open: usize) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            received: get(&self.received),
            sent: get(&self.sent),
            dropped_inbound_full: get(&self.dropped_inbound_full),
            dropped_send: get(&self.dropped_send),
            invalid: get(&self.invalid),
            keepalives: get(&self.keepalives),
            connections_open: connections_open as u64,
            connections_accepted: get(&self.connections_accepted),
            connections_outbound: get(&self.connections_outbound),
            connections_refused: get(&self.connections_refused),
            framing_errors: get(&self.framing_errors),
            idle_closed: get(&self.idle_closed),
            tls_handshake_failed: get(&self.tls_handshake_failed),
        }
    }
}
