//! The receive loop of a UDP socket: one datagram, one message (RFC 3261 section 18.1).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::peer::{InboundFrame, Peer, Transport};
use super::stats::bump;
use super::transports::Shared;
use crate::message::SipMessage;

/// The largest UDP payload.
const DATAGRAM_BYTES: usize = 65_535;

/// Receives datagrams until shutdown and hands each on as a message or an invalid frame.
pub(super) async fn recv_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; DATAGRAM_BYTES];
    let mut stop = shared.stop.clone();
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (n, remote) = match received {
            Ok(r) => r,
            // ICMP port unreachable from an earlier send shows up here on some systems.
            Err(error) => {
                tracing::debug!(%error, %local, "UDP receive failed");
                continue;
            }
        };
        // INVARIANT: n <= buf.len() (recv_from contract).
        let datagram = &buf[..n];
        if datagram.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            bump(&shared.counters.keepalives);
            continue;
        }
        let peer = Peer {
            transport: Transport::Udp,
            remote,
            local,
            conn: None,
        };
        let frame = match SipMessage::parse_with(datagram, &shared.limits) {
            Ok(msg) => InboundFrame::Message(msg),
            Err(error) => InboundFrame::Invalid {
                raw: datagram.to_vec(),
                error,
            },
        };
        shared.deliver(peer, frame);
    }
}
