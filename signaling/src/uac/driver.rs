//! Carrying a [`Uac`](super::Uac)'s output over the tokio [`Transports`]: the I/O half of the
//! RFC 3261 18.1.1 rule. The UAC decides that a request goes over TCP; when the connect fails,
//! the transports report it here and the transaction id goes back to the UAC through
//! `failures`, which sends the request again over UDP.

use tokio::sync::mpsc;

use super::UacOutput;
use crate::transaction::TransactionId;
use crate::transport::{Peer, Transports};

/// Sends one output. For a request of a client transaction over TCP/TLS, a failed connect
/// queues the transaction id on `failures` (dropped if that channel is full: the transaction
/// then times out instead); feed it to [`Uac::handle_transport_error`](super::Uac::handle_transport_error).
pub fn transmit(
    transports: &Transports,
    out: UacOutput<Peer>,
    failures: &mpsc::Sender<TransactionId>,
) {
    let bytes = out.message.to_bytes().into();
    match out.transaction {
        Some(id) if out.peer.transport.is_stream() => {
            let failures = failures.clone();
            transports.send_or_else(&out.peer, bytes, move || {
                let _ = failures.try_send(id);
            });
        }
        _ => transports.send(&out.peer, bytes),
    }
}
