//! The transports handle: binding the listeners, sending, counters and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::Duration;
use tokio_rustls::TlsAcceptor;

use super::config::TransportConfig;
use super::connection;
use super::connections::{Connections, Enqueue};
use super::error::TransportError;
use super::listener;
use super::peer::{Inbound, InboundFrame, Peer, Transport};
use super::stats::{Counters, TransportStats, bump};
use super::udp_socket;
use crate::message::Limits;

/// An outbound TCP connect that takes longer than this is abandoned (its messages dropped).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the handle and every task.
#[derive(Debug)]
pub(super) struct Shared {
    pub limits: Limits,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub inbound: mpsc::Sender<Inbound>,
    pub counters: Counters,
    pub connections: Connections,
    /// UDP sockets by local address, in listen order.
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    local_addrs: Vec<(Transport, SocketAddr)>,
    /// Becomes `true` (or its sender is dropped) when the tasks must stop.
    pub stop: watch::Receiver<bool>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Hands a received frame to the UA core, dropping it when the channel is full.
    pub fn deliver(&self, peer: Peer, frame: InboundFrame) {
        bump(&self.counters.received);
        if let InboundFrame::Invalid { error, .. } = &frame {
            bump(&self.counters.invalid);
            tracing::debug!(?peer, %error, "invalid SIP message");
        }
        if self.inbound.try_send(Inbound { peer, frame }).is_err() {
            bump(&self.counters.dropped_inbound_full);
        }
    }

    fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The owner's side: dropping the last handle stops the tasks.
#[derive(Debug)]
struct Owner {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The SIP transports: a cloneable handle to the listeners and connections.
#[derive(Clone, Debug)]
pub struct Transports {
    owner: Arc<Owner>,
}

enum Bound {
    Udp(Arc<UdpSocket>),
    Stream(TcpListener, Option<TlsAcceptor>),
}

impl Transports {
    /// Binds every listener (UDP socket; TCP listener; TLS listener = TCP + rustls acceptor),
    /// spawns the tasks on the current tokio runtime, and returns the handle and the receiver
    /// of inbound frames. Errors name the address that failed.
    pub async fn bind(
        cfg: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<Inbound>), TransportError> {
        let mut bound = Vec::with_capacity(cfg.listen.len());
        let mut local_addrs = Vec::with_capacity(cfg.listen.len());
        for spec in &cfg.listen {
            let bind_err = |source| TransportError::Bind {
                transport: spec.transport,
                addr: spec.addr,
                source,
            };
            let (b, local) = match spec.transport {
                Transport::Udp => {
                    let socket = UdpSocket::bind(spec.addr).await.map_err(bind_err)?;
                    let local = socket.local_addr().map_err(bind_err)?;
                    (Bound::Udp(Arc::new(socket)), local)
                }
                Transport::Tcp | Transport::Tls => {
                    let acceptor = match spec.transport {
                        Transport::Tls => {
                            let tls = cfg
                                .tls
                                .clone()
                                .ok_or(TransportError::NoTlsConfig { addr: spec.addr })?;
                            Some(TlsAcceptor::from(tls))
                        }
                        _ => None,
                    };
                    let listener = TcpListener::bind(spec.addr).await.map_err(bind_err)?;
                    let local = listener.local_addr().map_err(bind_err)?;
                    (Bound::Stream(listener, acceptor), local)
                }
            };
            bound.push(b);
            local_addrs.push((spec.transport, local));
        }
        let (inbound, inbound_rx) = mpsc::channel(cfg.inbound_capacity.max(1));
        let (stop_tx, stop_rx) = watch::channel(false);
        let udp = bound
            .iter()
            .zip(&local_addrs)
            .filter_map(|(b, (_, local))| match b {
                Bound::Udp(socket) => Some((*local, socket.clone())),
                Bound::Stream(..) => None,
            })
            .collect();
        let shared = Arc::new(Shared {
            limits: cfg.limits,
            max_connections: cfg.max_connections,
            idle_timeout: cfg.idle_timeout,
            inbound,
            counters: Counters::default(),
            connections: Connections::default(),
            udp,
            local_addrs: local_addrs.clone(),
            stop: stop_rx,
            runtime: tokio::runtime::Handle::current(),
        });
        for (b, (_, local)) in bound.into_iter().zip(local_addrs) {
            match b {
                Bound::Udp(socket) => {
                    tokio::spawn(udp_socket::recv_loop(shared.clone(), socket, local));
                }
                Bound::Stream(listener, tls) => {
                    tokio::spawn(listener::accept_loop(shared.clone(), listener, local, tls));
                }
            }
        }
        let owner = Owner {
            shared,
            stop: stop_tx,
        };
        Ok((
            Transports {
                owner: Arc::new(owner),
            },
            inbound_rx,
        ))
    }

    /// Actual bound addresses (port 0 resolved), in the order of the configuration.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.owner.shared.local_addrs.clone()
    }

    /// Sends a serialized message; never blocks.
    ///
    /// UDP goes out of the socket bound to `peer.local` (else the first UDP socket); a full
    /// socket buffer drops the message. TCP/TLS use `peer.conn` if it is alive, else the
    /// newest live connection to `peer.remote` (RFC 3261 section 18.2.2); without one, TCP
    /// opens a connection in a task and TLS drops the message (no TLS client yet). A full
    /// per-connection queue drops the message. Every drop is counted in `dropped_send`.
    pub fn send(&self, peer: &Peer, bytes: Bytes) {
        let shared = &self.owner.shared;
        if shared.is_stopped() {
            bump(&shared.counters.dropped_send);
            return;
        }
        match peer.transport {
            Transport::Udp => self.send_datagram(peer, &bytes),
            Transport::Tcp | Transport::Tls => {
                let queued = shared.connections.enqueue(
                    peer.transport,
                    peer.remote,
                    peer.conn,
                    bytes.clone(),
                );
                match queued {
                    Enqueue::Queued => {}
                    Enqueue::Full => {
                        tracing::debug!(?peer, "connection send queue full");
                        bump(&shared.counters.dropped_send);
                    }
                    Enqueue::NoConnection if peer.transport == Transport::Tcp => {
                        self.connect(peer.remote, bytes);
                    }
                    Enqueue::NoConnection => {
                        tracing::debug!(?peer, "no TLS connection to send on");
                        bump(&shared.counters.dropped_send);
                    }
                }
            }
        }
    }

    fn send_datagram(&self, peer: &Peer, bytes: &[u8]) {
        let shared = &self.owner.shared;
        let socket = shared
            .udp
            .iter()
            .find(|(local, _)| *local == peer.local)
            .or_else(|| shared.udp.first());
        let Some((_, socket)) = socket else {
            tracing::debug!(?peer, "no UDP socket to send from");
            bump(&shared.counters.dropped_send);
            return;
        };
        match socket.try_send_to(bytes, peer.remote) {
            Ok(_) => bump(&shared.counters.sent),
            Err(error) => {
                tracing::debug!(%error, ?peer, "UDP send dropped");
                bump(&shared.counters.dropped_send);
            }
        }
    }

    /// Opens a TCP connection to `remote` in a task and sends `bytes` on it. The connection
    /// is registered at once, so sends made while it connects queue behind `bytes`.
    fn connect(&self, remote: SocketAddr, bytes: Bytes) {
        let shared = self.owner.shared.clone();
        let Some((id, queue_tx, queue_rx)) =
            shared
                .connections
                .insert(Transport::Tcp, remote, shared.max_connections)
        else {
            tracing::debug!(%remote, "no connection opened: too many open");
            bump(&shared.counters.connections_refused);
            bump(&shared.counters.dropped_send);
            return;
        };
        bump(&shared.counters.connections_outbound);
        // INVARIANT: a fresh queue has room for one message.
        let _ = queue_tx.try_send(bytes);
        let runtime = shared.runtime.clone();
        runtime.spawn(async move {
            let mut stop = shared.stop.clone();
            let connected = tokio::select! {
                r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)) => r,
                _ = stop.wait_for(|stopped| *stopped) => {
                    shared.connections.remove(id);
                    return;
                }
            };
            let stream = match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %remote, "TCP connect failed");
                    shared.connections.remove(id);
                    drop_queued(&shared, queue_rx);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TCP connect timed out");
                    shared.connections.remove(id);
                    drop_queued(&shared, queue_rx);
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(remote);
            let peer = Peer {
                transport: Transport::Tcp,
                remote,
                local,
                conn: Some(id),
            };
            connection::serve(shared, stream, peer, queue_tx, queue_rx).await;
        });
    }

    /// Counters now.
    pub fn stats(&self) -> TransportStats {
        let shared = &self.owner.shared;
        shared.counters.snapshot(shared.connections.len())
    }

    /// Stops every task (as dropping the last handle does): listeners stop accepting,
    /// connections close, and the inbound channel ends once the tasks are gone.
    pub fn shutdown(&self) {
        self.owner.stop.send_replace(true);
    }
}

/// Counts the messages left in the queue of a connection that never came up.
fn drop_queued(shared: &Shared, mut queue: mpsc::Receiver<Bytes>) {
    queue.close();
    while queue.try_recv().is_ok() {
        bump(&shared.counters.dropped_send);
    }
}
