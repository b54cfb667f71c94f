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
    /// For TLS connections we open.
    tls_client: Option<Arc<rustls::ClientConfig>>,
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
            tls_client: cfg.tls_client.clone(),
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
        self.send_or_else(peer, bytes, || {});
    }

    /// Sends like [`send`](Self::send), and calls `on_connect_failure` (from a task) when the
    /// message is dropped because no TCP connection to `peer.remote` could be opened: the
    /// connect failed or timed out, the connection limit was reached, or there is no TLS
    /// connection. A UAC uses it to retry over UDP a request it moved to TCP (RFC 3261
    /// 18.1.1). Other drops are only counted, as with `send`.
    pub fn send_or_else(
        &self,
        peer: &Peer,
        bytes: Bytes,
        on_connect_failure: impl FnOnce() + Send + 'static,
    ) {
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
                    Enqueue::NoConnection
                        if peer.transport == Transport::Tcp || shared.tls_client.is_some() =>
                    {
                        self.connect(peer.transport, peer.remote, bytes, on_connect_failure);
                    }
                    Enqueue::NoConnection => {
                        tracing::debug!(?peer, "no TLS connection to send on");
                        bump(&shared.counters.dropped_send);
                        on_connect_failure();
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

    /// Opens a TCP connection (or TLS over one, verified as the client configuration says,
    /// the server named by its IP address) to `remote` in a task and sends `bytes` on it. The
    /// connection is registered at once, so sends made while it connects queue behind `bytes`.
    fn connect(
        &self,
        transport: Transport,
        remote: SocketAddr,
        bytes: Bytes,
        on_failure: impl FnOnce() + Send + 'static,
    ) {
        let shared = self.owner.shared.clone();
        let Some((id, queue_tx, queue_rx)) =
            shared
                .connections
                .insert(transport, remote, shared.max_connections)
        else {
            tracing::debug!(%remote, "no connection opened: too many open");
            bump(&shared.counters.connections_refused);
            bump(&shared.counters.dropped_send);
            on_failure();
            return;
        };
        bump(&shared.counters.connections_outbound);
        // INVARIANT: a fresh queue has room for one message.
        let _ = queue_tx.try_send(bytes);
        let runtime = shared.runtime.clone();
        runtime.spawn(async move {
            let mut stop = shared.stop.clone();
            let client = shared.tls_client.clone();
            let opened = tokio::select! {
                r = open(transport, remote, client) => r,
                _ = stop.wait_for(|stopped| *stopped) => {
                    shared.connections.remove(id);
                    return;
                }
            };
            let local = match &opened {
                Ok(Opened::Tcp(s)) => s.local_addr(),
                Ok(Opened::Tls(s)) => s.get_ref().0.local_addr(),
                Err(_) => Ok(remote),
            };
            let peer = Peer {
                transport,
                remote,
                local: local.unwrap_or(remote),
                conn: Some(id),
            };
            match opened {
                Ok(Opened::Tcp(s)) => connection::serve(shared, s, peer, queue_tx, queue_rx).await,
                Ok(Opened::Tls(s)) => connection::serve(shared, s, peer, queue_tx, queue_rx).await,
                Err(why) => {
                    tracing::debug!(%remote, why, "connection not opened");
                    shared.connections.remove(id);
                    drop_queued(&shared, queue_rx);
                    on_failure();
                }
            }
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

/// A connection we opened.
enum Opened {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to `remote` and, for TLS with a client configuration, shakes hands (the server
/// named by its IP address), each step within `CONNECT_TIMEOUT`; Err says which step failed.
async fn open(
    transport: Transport,
    remote: SocketAddr,
    client: Option<Arc<rustls::ClientConfig>>,
) -> Result<Opened, String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("TCP connect failed: {error}")),
        Err(_) => return Err("TCP connect timed out".into()),
    };
    let _ = stream.set_nodelay(true);
    let (Transport::Tls, Some(client)) = (transport, client) else {
        return Ok(Opened::Tcp(stream));
    };
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = rustls::pki_types::ServerName::IpAddress(remote.ip().into());
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(Opened::Tls(Box::new(tls))),
        Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

/// Counts the messages left in the queue of a connection that never came up.
fn drop_queued(shared: &Shared, mut queue: mpsc::Receiver<Bytes>) {
    queue.close();
    while queue.try_recv().is_ok() {
        bump(&shared.counters.dropped_send);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::{Duration, timeout};

    use super::*;
    use crate::message::{ParseError, SipMessage};
    use crate::transport::ListenSpec;

    const WAIT: Duration = Duration::from_secs(5);

    fn options(via_transport: &str, call_id: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:conf@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/{via_transport} 127.0.0.1:5099;branch=z9hG4bK{call_id}\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:conf@example.com>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn listen(transport: Transport) -> ListenSpec {
        ListenSpec {
            transport,
            addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    async fn bind_one(
        transport: Transport,
        tune: impl FnOnce(&mut TransportConfig),
    ) -> (Transports, mpsc::Receiver<Inbound>, SocketAddr) {
        let mut cfg = TransportConfig {
            listen: vec![listen(transport)],
            ..TransportConfig::default()
        };
        tune(&mut cfg);
        let (t, rx) = Transports::bind(cfg).await.unwrap();
        let addr = t.local_addrs()[0].1;
        (t, rx, addr)
    }

    async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
        timeout(WAIT, rx.recv())
            .await
            .expect("inbound in time")
            .expect("channel open")
    }

    fn message(inbound: &Inbound) -> &SipMessage {
        match &inbound.frame {
            InboundFrame::Message(m) => m,
            InboundFrame::Invalid { error, .. } => panic!("invalid: {error}"),
        }
    }

    /// Waits until `cond` holds on the stats.
    async fn until(t: &Transports, what: &str, cond: impl Fn(&TransportStats) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(&t.stats()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {:?}",
                t.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reads one SIP message (header section plus Content-Length body) from a stream.
    async fn read_message<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> SipMessage {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = timeout(WAIT, s.read(&mut byte)).await.unwrap().unwrap();
            assert_eq!(n, 1, "closed before a message: {buf:?}");
            buf.push(byte[0]);
            if buf.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let msg = SipMessage::parse(&buf).unwrap();
        let mut body = vec![0u8; msg.content_length().unwrap_or(0)];
        s.read_exact(&mut body).await.unwrap();
        buf.extend_from_slice(&body);
        SipMessage::parse(&buf).unwrap()
    }

    async fn read_to_end<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
        let mut rest = Vec::new();
        timeout(WAIT, s.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        rest
    }

    #[tokio::test]
    async fn udp_request_response_and_invalid() {
        let (t, mut rx, addr) = bind_one(Transport::Udp, |_| {}).await;
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        client.send_to(b"\r\n\r\n", addr).unwrap();
        client.send_to(&options("UDP", "u1"), addr).unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(
            inbound.peer,
            Peer {
                transport: Transport::Udp,
                remote: client.local_addr().unwrap(),
                local: addr,
                conn: None,
            }
        );
        let req = message(&inbound);
        assert_eq!(req.call_id(), Some("u1"));
        let ok = SipMessage::response_to(req, 200, "OK");
        t.send(&inbound.peer, ok.to_bytes().into());
        let mut buf = [0u8; 2048];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(SipMessage::parse(&buf[..n]).unwrap().status(), Some(200));

        let bad = String::from_utf8(options("UDP", "u2"))
            .unwrap()
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        client.send_to(bad.as_bytes(), addr).unwrap();
        let inbound = next(&mut rx).await;
        match inbound.frame {
            InboundFrame::Invalid { raw, error } => {
                assert_eq!(error, ParseError::CSeqMismatch);
                assert_eq!(raw, bad.as_bytes());
            }
            InboundFrame::Message(_) => panic!("a CSeq mismatch is invalid"),
        }
        let s = t.stats();
        assert_eq!((s.received, s.invalid, s.keepalives, s.sent), (2, 1, 1, 1));
    }

    #[tokio::test]
    async fn tcp_framing_reuse_and_ping() {
        let (t, mut rx, addr) = bind_one(Transport::Tcp, |_| {}).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        // Two messages in one write.
        let mut two = options("TCP", "t1");
        two.extend_from_slice(&options("TCP", "t2"));
        client.write_all(&two).await.unwrap();
        // One message across three writes.
        let third = options("TCP", "t3");
        for part in [&third[..10], &third[10..100], &third[100..]] {
            client.write_all(part).await.unwrap();
            client.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next(&mut rx).await);
        }
        let ids: Vec<_> = got.iter().map(|i| message(i).call_id().unwrap()).collect();
        assert_eq!(ids, ["t1", "t2", "t3"]);
        let peer = got[0].peer;
        assert_eq!(peer.transport, Transport::Tcp);
        assert_eq!(peer.remote, client.local_addr().unwrap());
        assert_eq!(peer.local, addr);
        assert!(peer.conn.is_some());
        assert!(got.iter().all(|i| i.peer == peer));

        // The response goes back on the same connection.
        let ok = SipMessage::response_to(message(&got[2]), 200, "OK");
        t.send(&peer, ok.to_bytes().into());
        let resp = read_message(&mut client).await;
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.call_id(), Some("t3"));

        // RFC 5626 ping, pong.
        client.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        timeout(WAIT, client.read_exact(&mut pong))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&pong, b"\r\n");
        assert_eq!(t.stats().connections_open, 1);
        drop(client);
        until(&t, "closed", |s| s.connections_open == 0).await;
    }

    #[tokio::test]
    async fn tcp_lost_framing_is_answered_then_closed() {
        let (t, mut rx, addr) = bind_one(Transport::Tcp, |_| {}).await;

        // No Content-Length: 400, close.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let no_length = String::from_utf8(options("TCP", "n1"))
            .unwrap()
            .replace("Content-Length: 0\r\n", "");
        client.write_all(no_length.as_bytes()).await.unwrap();
        let resp = read_message(&mut client).await;
        assert_eq!(resp.status(), Some(400));
        assert_eq!(resp.call_id(), Some("n1"));
        assert!(read_to_end(&mut client).await.is_empty(), "then closed");

        // 70 KiB: 513, close.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let body = vec![b'x'; 70 * 1024];
        let big = String::from_utf8(options("TCP", "b1")).unwrap().replace(
            "Content-Length: 0\r\n",
            &format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                body.len()
            ),
        );
        client.write_all(big.as_bytes()).await.unwrap();
        client.write_all(&body).await.unwrap();
        let resp = read_message(&mut client).await;
        assert_eq!(resp.status(), Some(513));
        assert!(read_to_end(&mut client).await.is_empty(), "then closed");

        until(&t, "both closed", |s| {
            s.framing_errors == 2 && s.connections_open == 0
        })
        .await;
        assert!(rx.try_recv().is_err(), "nothing delivered");
    }

    #[tokio::test]
    async fn tcp_half_closed_peer_still_gets_answers() {
        let (t, mut rx, addr) = bind_one(Transport::Tcp, |_| {}).await;

        // A request, then the end of the stream: the answer still goes out on the connection.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&options("TCP", "h1")).await.unwrap();
        client.shutdown().await.unwrap();
        let inbound = next(&mut rx).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = SipMessage::response_to(message(&inbound), 200, "OK");
        t.send(&inbound.peer, reply.to_bytes().into());
        assert_eq!(read_message(&mut client).await.status(), Some(200));
        assert!(read_to_end(&mut client).await.is_empty(), "then closed");

        // The stream ends inside a body shorter than its Content-Length: 400 (RFC 4475 clerr).
        let mut client = TcpStream::connect(addr).await.unwrap();
        let short = String::from_utf8(options("TCP", "h2")).unwrap().replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Type: text/plain\r\nContent-Length: 99\r\n\r\nonly this",
        );
        client.write_all(short.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let resp = read_message(&mut client).await;
        assert_eq!(resp.status(), Some(400));
        assert_eq!(resp.call_id(), Some("h2"));
        assert!(read_to_end(&mut client).await.is_empty(), "then closed");

        // A request, then bytes that lose framing (no Content-Length): the 400 for the second
        // and the answer to the first both arrive before the connection closes.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&options("TCP", "h3")).await.unwrap();
        client
            .write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKj\r\nCall-ID: h4\r\n\r\n")
            .await
            .unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(message(&inbound).call_id(), Some("h3"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = SipMessage::response_to(message(&inbound), 200, "OK");
        t.send(&inbound.peer, reply.to_bytes().into());
        let lost = read_message(&mut client).await;
        assert_eq!((lost.status(), lost.call_id()), (Some(400), Some("h4")));
        let answer = read_message(&mut client).await;
        assert_eq!((answer.status(), answer.call_id()), (Some(200), Some("h3")));
        assert!(read_to_end(&mut client).await.is_empty(), "then closed");

        until(&t, "all closed", |s| s.connections_open == 0).await;
        assert!(
            rx.try_recv().is_err(),
            "the short message was not delivered"
        );
    }

    #[tokio::test]
    async fn tcp_invalid_message_keeps_the_connection() {
        let (_t, mut rx, addr) = bind_one(Transport::Tcp, |_| {}).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let bad = String::from_utf8(options("TCP", "i1"))
            .unwrap()
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        client.write_all(bad.as_bytes()).await.unwrap();
        client.write_all(&options("TCP", "i2")).await.unwrap();
        let first = next(&mut rx).await;
        assert!(matches!(
            first.frame,
            InboundFrame::Invalid {
                error: ParseError::CSeqMismatch,
                ..
            }
        ));
        let second = next(&mut rx).await;
        assert_eq!(message(&second).call_id(), Some("i2"));
        assert_eq!(first.peer, second.peer);
    }

    #[tokio::test]
    async fn full_inbound_channel_drops_and_counts() {
        let (t, mut rx, addr) = bind_one(Transport::Udp, |c| c.inbound_capacity = 1).await;
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for id in ["f1", "f2", "f3"] {
            client.send_to(&options("UDP", id), addr).unwrap();
        }
        until(&t, "three received", |s| s.received == 3).await;
        assert_eq!(t.stats().dropped_inbound_full, 2);
        assert_eq!(message(&next(&mut rx).await).call_id(), Some("f1"));
    }

    #[tokio::test]
    async fn tls_options_200() {
        let dir = tempfile::tempdir().unwrap();
        let material =
            crate::tls::load_or_generate(dir.path(), None, &["localhost".to_owned()]).unwrap();
        let server = crate::tls::server_config(&material).unwrap();
        let (t, mut rx, addr) = bind_one(Transport::Tls, |c| c.tls = Some(server)).await;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(material.chain[0].clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();

        tls.write_all(&options("TLS", "s1")).await.unwrap();
        tls.flush().await.unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(inbound.peer.transport, Transport::Tls);
        assert_eq!(inbound.peer.local, addr);
        let ok = SipMessage::response_to(message(&inbound), 200, "OK");
        t.send(&inbound.peer, ok.to_bytes().into());
        let resp = read_message(&mut tls).await;
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.call_id(), Some("s1"));
    }

    #[tokio::test]
    async fn tls_connections_we_open_verify_the_server_and_carry_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let material = crate::tls::load_or_generate(dir.path(), None, &names).unwrap();
        let server = crate::tls::server_config(&material).unwrap();
        let (_s, mut server_rx, server_addr) =
            bind_one(Transport::Tls, |c| c.tls = Some(server)).await;
        // The client trusts the server's certificate file (what chorus-load's --tls-ca reads).
        let trusted = crate::tls::client_config(&material.cert_path).unwrap();
        let (client, mut client_rx, local) =
            bind_one(Transport::Tcp, |c| c.tls_client = Some(trusted)).await;
        let to_server = Peer {
            transport: Transport::Tls,
            remote: server_addr,
            local,
            conn: None,
        };
        client.send(&to_server, options("TLS", "c1").into());
        let inbound = next(&mut server_rx).await;
        assert_eq!(inbound.peer.transport, Transport::Tls);
        let ok = SipMessage::response_to(message(&inbound), 200, "OK");
        _s.send(&inbound.peer, ok.to_bytes().into());
        let answer = next(&mut client_rx).await;
        assert_eq!(answer.peer.transport, Transport::Tls);
        assert_eq!(message(&answer).status(), Some(200));

        // A server whose certificate we do not trust: nothing is sent, the failure is reported.
        let other = tempfile::tempdir().unwrap();
        let other = crate::tls::load_or_generate(other.path(), None, &names).unwrap();
        let untrusting = crate::tls::client_config(&other.cert_path).unwrap();
        let (stranger, _rx, _) =
            bind_one(Transport::Tcp, |c| c.tls_client = Some(untrusting)).await;
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        stranger.send_or_else(&to_server, options("TLS", "c2").into(), move || {
            let _ = failed_tx.send(());
        });
        let reported = timeout(WAIT, failed_rx).await;
        assert!(
            matches!(reported, Ok(Ok(()))),
            "the failed handshake is reported"
        );
    }

    #[tokio::test]
    async fn tls_listener_needs_a_certificate() {
        let cfg = TransportConfig {
            listen: vec![listen(Transport::Tls)],
            ..TransportConfig::default()
        };
        let err = Transports::bind(cfg).await.unwrap_err();
        assert!(matches!(err, TransportError::NoTlsConfig { .. }), "{err}");
    }

    #[tokio::test]
    async fn bind_errors_name_the_address() {
        let (_t, _rx, addr) = bind_one(Transport::Tcp, |_| {}).await;
        let cfg = TransportConfig {
            listen: vec![ListenSpec {
                transport: Transport::Tcp,
                addr,
            }],
            ..TransportConfig::default()
        };
        let err = Transports::bind(cfg).await.unwrap_err();
        assert_eq!(err.to_string(), format!("tcp:{addr} could not be bound"));
        // What the OS said is the error's source, printed once by error reporters.
        let source = std::error::Error::source(&err)
            .expect("the OS error")
            .to_string();
        assert!(source.contains("in use"), "{source}");
    }

    #[tokio::test]
    async fn connection_limit_refuses_the_fourth() {
        let (t, _rx, addr) = bind_one(Transport::Tcp, |c| c.max_connections = 3).await;
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(TcpStream::connect(addr).await.unwrap());
        }
        until(&t, "three open", |s| s.connections_open == 3).await;
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = timeout(WAIT, fourth.read(&mut byte)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        let s = t.stats();
        assert_eq!((s.connections_open, s.connections_refused), (3, 1));
        drop(open);
        until(&t, "all closed", |s| s.connections_open == 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_close_cycles_leave_no_connection() {
        let (t, _rx, addr) = bind_one(Transport::Tcp, |_| {}).await;
        for _ in 0..500 {
            let c = TcpStream::connect(addr).await.unwrap();
            drop(c);
        }
        until(&t, "all 500 accepted", |s| s.connections_accepted == 500).await;
        until(&t, "all closed", |s| s.connections_open == 0).await;
    }

    #[tokio::test]
    async fn idle_connections_are_closed() {
        let (t, _rx, addr) = bind_one(Transport::Tcp, |c| {
            c.idle_timeout = Duration::from_millis(100);
        })
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert!(read_to_end(&mut client).await.is_empty());
        until(&t, "idle closed", |s| {
            s.idle_closed == 1 && s.connections_open == 0
        })
        .await;
    }

    #[tokio::test]
    async fn tcp_send_without_connection_connects() {
        let (t, mut rx, _addr) = bind_one(Transport::Tcp, |_| {}).await;
        let remote = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = Peer {
            transport: Transport::Tcp,
            remote: remote.local_addr().unwrap(),
            local: t.local_addrs()[0].1,
            conn: None,
        };
        let req = options("TCP", "o1");
        t.send(&peer, Bytes::from(req.clone()));
        // A second send reuses the connection being opened.
        t.send(&peer, Bytes::from(options("TCP", "o2")));
        let (mut conn, _) = timeout(WAIT, remote.accept()).await.unwrap().unwrap();
        assert_eq!(read_message(&mut conn).await.call_id(), Some("o1"));
        assert_eq!(read_message(&mut conn).await.call_id(), Some("o2"));
        assert_eq!(t.stats().connections_outbound, 1);

        // What the far end sends back arrives as inbound on that connection.
        let ok = SipMessage::response_to(&SipMessage::parse(&req).unwrap(), 200, "OK");
        conn.write_all(&ok.to_bytes()).await.unwrap();
        let inbound = next(&mut rx).await;
        assert_eq!(message(&inbound).status(), Some(200));
        assert_eq!(inbound.peer.remote, peer.remote);
        assert!(inbound.peer.conn.is_some());
    }

    #[tokio::test]
    async fn tls_without_connection_drops() {
        let (t, _rx, addr) = bind_one(Transport::Udp, |_| {}).await;
        let peer = Peer {
            transport: Transport::Tls,
            remote: addr,
            local: addr,
            conn: None,
        };
        t.send(&peer, Bytes::from_static(b"x"));
        assert_eq!(t.stats().dropped_send, 1);
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_tasks() {
        let (t, mut rx, addr) = bind_one(Transport::Tcp, |_| {}).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        until(&t, "open", |s| s.connections_open == 1).await;
        let clone = t.clone();
        drop(t);
        // A clone keeps everything running.
        assert_eq!(clone.stats().connections_open, 1);
        drop(clone);
        assert!(
            read_to_end(&mut client).await.is_empty(),
            "connection closed"
        );
        let ended = timeout(WAIT, rx.recv()).await.expect("channel ends");
        assert!(ended.is_none());
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }

    /// A failed outbound TCP connect calls the `send_or_else` fallback (the UAC's RFC 3261
    /// 18.1.1 retry over UDP); a connect that works does not.
    #[tokio::test]
    async fn send_or_else_reports_a_failed_connect() {
        let (t, _rx, local) = bind_one(Transport::Udp, |_| {}).await;
        // A port with nobody listening: bind, note, close.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (tx, mut failed) = mpsc::channel(1);
        let peer = Peer {
            transport: Transport::Tcp,
            remote: closed,
            local,
            conn: None,
        };
        t.send_or_else(&peer, Bytes::from(options("TCP", "f1")), move || {
            let _ = tx.try_send(());
        });
        timeout(WAIT, failed.recv())
            .await
            .expect("failure reported in time")
            .expect("reported");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, mut failed) = mpsc::channel(1);
        let peer = Peer {
            remote: listener.local_addr().unwrap(),
            ..peer
        };
        t.send_or_else(&peer, Bytes::from(options("TCP", "f2")), move || {
            let _ = tx.try_send(());
        });
        let (mut s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        assert_eq!(read_message(&mut s).await.call_id(), Some("f2"));
        assert!(failed.try_recv().is_err(), "no failure reported");
    }
}
