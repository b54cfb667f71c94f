//! One TCP or TLS connection: a reader task framing the stream and a writer task draining
//! the connection's send queue.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::activity::Activity;
use super::peer::{InboundFrame, Peer};
use super::stats::bump;
use super::transports::Shared;
use crate::message::{Frame, ParseError, SipMessage, StreamFramer};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// A write that takes longer than this (the peer stopped reading) closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the peer closed its side or framing was lost, how long the connection stays open for
/// the answers to its last requests (and, after lost framing, keeps discarding what arrives).
const LINGER: Duration = Duration::from_secs(2);

/// The RFC 5626 section 4.4.1 pong.
const PONG: &[u8] = b"\r\n";

/// Why the reader stopped.
#[derive(Debug)]
enum Close {
    /// The peer closed.
    Eof,
    /// The socket failed.
    Error(std::io::Error),
    /// No bytes for the idle timeout.
    Idle,
    /// Framing lost; the error response (if any) is queued.
    Framing(ParseError),
    /// The writer failed.
    WriterGone,
    /// The transports are shutting down.
    Shutdown,
}

/// Serves an established connection until it closes, then removes it from the table.
/// `queue_tx`/`queue_rx` are the connection's send queue from [`super::connections::Connections::insert`].
pub(super) async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: Peer,
    queue_tx: mpsc::Sender<Bytes>,
    queue_rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let activity = Arc::new(Activity::new());
    let (writer_alive, writer_gone) = oneshot::channel::<()>();
    tokio::spawn(write_loop(
        shared.clone(),
        wr,
        queue_rx,
        activity.clone(),
        writer_alive,
    ));
    read_loop(shared, rd, peer, queue_tx, activity, writer_gone).await;
}

async fn write_loop<W: AsyncWrite>(
    shared: Arc<Shared>,
    mut wr: tokio::io::WriteHalf<W>,
    mut queue: mpsc::Receiver<Bytes>,
    activity: Arc<Activity>,
    _alive: oneshot::Sender<()>,
) {
    while let Some(bytes) = queue.recv().await {
        let write = async {
            wr.write_all(&bytes).await?;
            wr.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                activity.touch();
                bump(&shared.counters.sent);
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "SIP connection write failed");
                bump(&shared.counters.dropped_send);
                return;
            }
            Err(_) => {
                tracing::debug!("SIP connection write timed out");
                bump(&shared.counters.dropped_send);
                return;
            }
        }
    }
    // Every sender is gone: the reader closed the connection. Say so (FIN, TLS close_notify).
    let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
}

async fn read_loop<R: AsyncRead>(
    shared: Arc<Shared>,
    mut rd: tokio::io::ReadHalf<R>,
    peer: Peer,
    queue: mpsc::Sender<Bytes>,
    activity: Arc<Activity>,
    mut writer_gone: oneshot::Receiver<()>,
) {
    let mut framer = StreamFramer::new(shared.limits);
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut stop = shared.stop.clone();
    let close = loop {
        let deadline = activity.last() + shared.idle_timeout;
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) => break Close::Eof,
                Ok(n) => {
                    activity.touch();
                    // INVARIANT: n <= buf.len() (AsyncRead contract).
                    framer.push(&buf[..n]);
                    if let Some(error) = drain(&shared, &mut framer, &peer, &queue) {
                        break Close::Framing(error);
                    }
                }
                Err(error) => break Close::Error(error),
            },
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + shared.idle_timeout <= Instant::now() {
                    break Close::Idle;
                }
            }
            _ = &mut writer_gone => break Close::WriterGone,
            _ = stop.wait_for(|stopped| *stopped) => break Close::Shutdown,
        }
    };
    tracing::debug!(?peer, ?close, "SIP connection closing");
    match &close {
        Close::Framing(error) => {
            bump(&shared.counters.framing_errors);
            if let Some(resp) = SipMessage::error_response(framer.buffered(), error)
                && queue.try_send(Bytes::from(resp.to_bytes())).is_err()
            {
                bump(&shared.counters.dropped_send);
            }
        }
        // The stream ended inside a message whose header section arrived: its Content-Length
        // promised more body than came (RFC 3261 18.3), which a datagram would answer 400.
        Close::Eof => {
            if let Err(error @ ParseError::BodyTruncated { .. }) =
                SipMessage::parse_with(framer.buffered(), &shared.limits)
                && let Some(resp) = SipMessage::error_response(framer.buffered(), &error)
                && queue.try_send(Bytes::from(resp.to_bytes())).is_err()
            {
                bump(&shared.counters.dropped_send);
            }
        }
        Close::Idle => bump(&shared.counters.idle_closed),
        Close::Error(error) => tracing::debug!(%error, ?peer, "SIP connection read failed"),
        Close::WriterGone | Close::Shutdown => {}
    }
    // After the peer closed its side or framing was lost, the connection stays in the table for
    // a while, so answers to the requests it sent last still go out on it (a half-closed peer
    // can still read; RFC 3261 18.2.2). After lost framing, what still arrives is read and
    // discarded, so that closing with unread bytes does not reset the connection before the
    // peer has read the error response.
    if matches!(close, Close::Eof | Close::Framing(_)) {
        let discard = async {
            if matches!(close, Close::Framing(_)) {
                while let Ok(n) = rd.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = tokio::time::sleep(LINGER) => {}
            () = discard => {}
            _ = &mut writer_gone => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    }
    if let Some(id) = peer.conn {
        shared.connections.remove(id);
    }
    // The last sender: the writer drains the queue, then shuts the stream down.
    drop(queue);
}

/// Hands every complete frame on; the framing error if framing was lost.
fn drain(
    shared: &Shared,
    framer: &mut StreamFramer,
    peer: &Peer,
    queue: &mpsc::Sender<Bytes>,
) -> Option<ParseError> {
    while let Some(frame) = framer.poll() {
        match frame {
            Ok(Frame::Message(msg)) => shared.deliver(*peer, InboundFrame::Message(msg)),
            Ok(Frame::Invalid { raw, error }) => {
                shared.deliver(*peer, InboundFrame::Invalid { raw, error });
            }
            Ok(Frame::Ping) => {
                bump(&shared.counters.keepalives);
                if queue.try_send(Bytes::from_static(PONG)).is_err() {
                    bump(&shared.counters.dropped_send);
                }
            }
            Ok(Frame::Pong) => bump(&shared.counters.keepalives),
            Err(error) => return Some(error),
        }
    }
    None
}
