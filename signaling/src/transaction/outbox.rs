//! The queues the machines write their output into, drained by the layer's `poll_*`.

use std::collections::VecDeque;

use super::message::TxMessage;
use super::transaction_id::TransactionId;

/// A message to send (or send again) on behalf of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<M> {
    /// The transaction that sends it.
    pub id: TransactionId,
    /// The message; the caller sends `message.payload` to the transaction's peer.
    pub message: TxMessage<M>,
}

/// What the transaction layer tells the TU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent<M> {
    /// A response the TU must see (provisional, first final, and for INVITE every 2xx) arrived
    /// on a client transaction.
    ResponseReceived {
        /// The client transaction.
        id: TransactionId,
        /// The status code.
        status: u16,
        /// The response.
        payload: M,
    },
    /// Timer B or F (client: no final response; the TU treats it as 408), or timer H (INVITE
    /// server: the ACK never came).
    Timeout {
        /// The transaction.
        id: TransactionId,
    },
    /// The caller reported a transport failure for this transaction.
    TransportError {
        /// The transaction.
        id: TransactionId,
    },
    /// The transaction is gone; its id is no longer valid.
    Terminated {
        /// The transaction.
        id: TransactionId,
    },
}

/// Output queues shared by all machines of a layer.
#[derive(Debug)]
pub(crate) struct Outbox<M> {
    pub(crate) transmits: VecDeque<Transmit<M>>,
    pub(crate) events: VecDeque<TxEvent<M>>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Self {
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<M> Outbox<M> {
    pub(crate) fn transmit(&mut self, id: TransactionId, message: TxMessage<M>) {
        self.transmits.push_back(Transmit { id, message });
    }

    pub(crate) fn event(&mut self, event: TxEvent<M>) {
        self.events.push_back(event);
    }
}
