//! The table of open TCP/TLS connections: their send queues, by id and by remote address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::peer::Transport;

/// Messages a connection's writer may hold before further sends are dropped.
pub(super) const SEND_QUEUE_MESSAGES: usize = 1024;

/// A TCP or TLS connection, unique for the life of a [`super::Transports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// One open connection.
#[derive(Debug)]
struct Entry {
    transport: Transport,
    remote: SocketAddr,
    /// The writer's queue; dropping the last sender closes the connection after the queue drains.
    queue: mpsc::Sender<Bytes>,
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<ConnId, Entry>,
    /// The newest connection to each remote address, per transport.
    by_remote: HashMap<(Transport, SocketAddr), ConnId>,
    next_id: u64,
}

/// Why a queue did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Enqueue {
    /// Queued for the writer.
    Queued,
    /// The queue is full (the peer reads too slowly); dropped.
    Full,
    /// No live connection matches.
    NoConnection,
}

/// Open connections. The lock is held only for map operations, never across an await.
#[derive(Debug, Default)]
pub(super) struct Connections {
    table: Mutex<Table>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the maps consistent (every operation is a
        // single insert or remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection unless `max` are open: its id, a sender to its queue (for the
    /// reader's pongs and error responses) and the queue's receiver (for the writer).
    pub fn insert(
        &self,
        transport: Transport,
        remote: SocketAddr,
        max: usize,
    ) -> Option<(ConnId, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)> {
        let mut t = self.lock();
        if t.by_id.len() >= max {
            return None;
        }
        t.next_id += 1;
        let id = ConnId(t.next_id);
        let (tx, rx) = mpsc::channel(SEND_QUEUE_MESSAGES);
        t.by_id.insert(
            id,
            Entry {
                transport,
                remote,
                queue: tx.clone(),
            },
        );
        t.by_remote.insert((transport, remote), id);
        Some((id, tx, rx))
    }

    /// Forgets a connection; its writer closes it once the queue drains and the reader's
    /// sender is dropped.
    pub fn remove(&self, id: ConnId) {
        let mut t = self.lock();
        let Some(entry) = t.by_id.remove(&id) else {
            return;
        };
        let key = (entry.transport, entry.remote);
        if t.by_remote.get(&key) == Some(&id) {
            // Fall back to another connection to the same remote, if any.
            let other = t
                .by_id
                .iter()
                .find(|(_, e)| e.transport == entry.transport && e.remote == entry.remote)
                .map(|(other, _)| *other);
            match other {
                Some(other) => t.by_remote.insert(key, other),
                None => t.by_remote.remove(&key),
            };
        }
    }

    /// Queues `bytes` on connection `conn` if it is alive and of `transport`, else on the
    /// newest connection to `remote` of that transport.
    pub fn enqueue(
        &self,
        transport: Transport,
        remote: SocketAddr,
        conn: Option<ConnId>,
        bytes: Bytes,
    ) -> Enqueue {
        let t = self.lock();
        let by_conn = conn
            .and_then(|id| t.by_id.get(&id))
            .filter(|e| e.transport == transport && !e.queue.is_closed());
        let entry = by_conn.or_else(|| {
            t.by_remote
                .get(&(transport, remote))
                .and_then(|id| t.by_id.get(id))
                .filter(|e| !e.queue.is_closed())
        });
        let Some(entry) = entry else {
            return Enqueue::NoConnection;
        };
        match entry.queue.try_send(bytes) {
            Ok(()) => Enqueue::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Enqueue::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Enqueue::NoConnection,
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_reuse_and_removal() {
        let c = Connections::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (id1, _tx1, mut rx1) = c.insert(Transport::Tcp, a, 2).unwrap();
        let (id2, _tx2, mut rx2) = c.insert(Transport::Tcp, a, 2).unwrap();
        assert!(c.insert(Transport::Tcp, a, 2).is_none(), "over the limit");
        // By id first, else the newest to the remote.
        let q = c.enqueue(Transport::Tcp, a, Some(id1), Bytes::from_static(b"1"));
        assert_eq!(q, Enqueue::Queued);
        assert_eq!(rx1.try_recv().unwrap(), "1");
        let q = c.enqueue(Transport::Tcp, a, None, Bytes::from_static(b"2"));
        assert_eq!(q, Enqueue::Queued);
        assert_eq!(rx2.try_recv().unwrap(), "2");
        // Wrong transport: no connection.
        let q = c.enqueue(Transport::Tls, a, Some(id1), Bytes::from_static(b"3"));
        assert_eq!(q, Enqueue::NoConnection);
        // Removing the newest falls back to the other one.
        c.remove(id2);
        let q = c.enqueue(Transport::Tcp, a, Some(id2), Bytes::from_static(b"4"));
        assert_eq!(q, Enqueue::Queued);
        assert_eq!(rx1.try_recv().unwrap(), "4");
        c.remove(id1);
        assert_eq!(c.len(), 0);
        let q = c.enqueue(Transport::Tcp, a, None, Bytes::from_static(b"5"));
        assert_eq!(q, Enqueue::NoConnection);
    }
}
