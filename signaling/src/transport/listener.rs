//! The accept loop of a TCP or TLS listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::time::Duration;
use tokio_rustls::TlsAcceptor;

use super::connection;
use super::peer::{Peer, Transport};
use super::stats::bump;
use super::transports::Shared;

/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until shutdown; `tls` makes it a TLS listener.
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::debug!(%error, %local, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some((id, queue_tx, queue_rx)) =
            shared
                .connections
                .insert(transport, remote, shared.max_connections)
        else {
            bump(&shared.counters.connections_refused);
            tracing::debug!(%remote, %local, "connection refused: too many open");
            drop(stream);
            continue;
        };
        bump(&shared.counters.connections_accepted);
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            transport,
            remote,
            local,
            conn: Some(id),
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                connection::serve(shared, stream, peer, queue_tx, queue_rx).await;
                return;
            };
            let mut stop = shared.stop.clone();
            let handshake = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
                _ = stop.wait_for(|stopped| *stopped) => {
                    shared.connections.remove(id);
                    return;
                }
            };
            match handshake {
                Ok(Ok(tls_stream)) => {
                    connection::serve(shared, tls_stream, peer, queue_tx, queue_rx).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, %remote, "TLS handshake failed");
                    bump(&shared.counters.tls_handshake_failed);
                    shared.connections.remove(id);
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    bump(&shared.counters.tls_handshake_failed);
                    shared.connections.remove(id);
                }
            }
        });
    }
}
