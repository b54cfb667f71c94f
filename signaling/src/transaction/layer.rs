//! `TransactionLayer`: every client and server transaction of one SIP endpoint.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::TransactionError;
use super::client_transaction::{ClientState, ClientTransaction};
use super::config::Config;
use super::key::{ClientKey, MergeKey, ServerKey};
use super::message::{TxKind, TxMessage, TxPayload};
use super::method::Method;
use super::outbox::{Outbox, Transmit, TxEvent};
use super::server_transaction::{AckOutcome, ServerState, ServerTransaction};
use super::timer::{Timer, TimerReason};
use super::transaction_id::TransactionId;

/// What became of an incoming request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDisposition {
    /// A new server transaction; the TU must answer it through
    /// [`TransactionLayer::respond`].
    New {
        /// The new server transaction.
        id: TransactionId,
    },
    /// A CANCEL, with its own new server transaction (answer it 200, or 481 when `invite` is
    /// `None`) and the INVITE server transaction it cancels, if one exists (RFC 3261 9.2).
    Cancel {
        /// The CANCEL's server transaction.
        id: TransactionId,
        /// The INVITE server transaction with the same key except the method.
        invite: Option<TransactionId>,
    },
    /// A retransmission, absorbed; the last response (if any) is queued for re-sending.
    Retransmission {
        /// The server transaction it belongs to.
        id: TransactionId,
    },
    /// An ACK for a non-2xx final response, absorbed by its INVITE server transaction.
    AckForNon2xx {
        /// The INVITE server transaction.
        id: TransactionId,
    },
    /// An ACK the transaction layer does not absorb: the ACK for a 2xx, which belongs to the
    /// dialog layer (RFC 3261 13.3.1.4, 17.1.1.3).
    Ack2xx,
    /// A merged request (RFC 3261 8.2.2.2): same From tag, Call-ID and CSeq as an ongoing
    /// server transaction, another branch. Nothing was allocated; answer `482 Loop Detected`
    /// statelessly.
    Merged {
        /// The ongoing server transaction it duplicates.
        original: TransactionId,
    },
    /// The transaction table is full. Nothing was allocated; answer `503 Service Unavailable`
    /// with Retry-After statelessly.
    Overloaded,
}

/// A live transaction of either side.
#[derive(Debug)]
enum Transaction<M> {
    Client(ClientTransaction<M>),
    Server(ServerTransaction<M>),
}

impl<M: TxPayload> Transaction<M> {
    fn is_terminated(&self) -> bool {
        match self {
            Self::Client(c) => c.state() == ClientState::Terminated,
            Self::Server(s) => s.state() == ServerState::Terminated,
        }
    }

    fn timers(
        &mut self,
    ) -> &mut super::timer_table::TimerTable<Timer, { super::timer::TIMER_COUNT }> {
        match self {
            Self::Client(c) => &mut c.timers,
            Self::Server(s) => &mut s.timers,
        }
    }
}

/// All transactions of a SIP endpoint, sans-IO.
///
/// Inputs: [`handle_request`](Self::handle_request), [`handle_response`](Self::handle_response),
/// [`respond`](Self::respond), [`send_request`](Self::send_request),
/// [`handle_timeout`](Self::handle_timeout), [`handle_transport_error`](Self::handle_transport_error).
/// After each, drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event), then sleep until [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct TransactionLayer<M> {
    config: Config,
    next_id: u64,
    transactions: HashMap<TransactionId, Transaction<M>>,
    server_keys: HashMap<ServerKey, TransactionId>,
    client_keys: HashMap<ClientKey, TransactionId>,
    merge_keys: HashMap<MergeKey, TransactionId>,
    /// Deadlines of all armed timers; an entry is current only while the transaction's own
    /// timer table still holds the same deadline (lazy deletion).
    deadlines: BinaryHeap<Reverse<(Instant, TransactionId, Timer)>>,
    outbox: Outbox<M>,
}

impl<M: TxPayload> TransactionLayer<M> {
    /// A layer with the given timers and bound.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            next_id: 0,
            transactions: HashMap::new(),
            server_keys: HashMap::new(),
            client_keys: HashMap::new(),
            merge_keys: HashMap::new(),
            deadlines: BinaryHeap::new(),
            outbox: Outbox::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    fn allocate_id(&mut self) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        id
    }

    /// An incoming request, with whether it came over a reliable transport.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: &TxMessage<M>,
        reliable: bool,
    ) -> Result<RequestDisposition, TransactionError> {
        let Some(method) = request.method() else {
            return Err(TransactionError::NotARequest);
        };
        let is_ack = *method == Method::Ack;
        let key = ServerKey::of_request(request);
        if let Some(&id) = self.server_keys.get(&key)
            && let Some(Transaction::Server(tx)) = self.transactions.get_mut(&id)
            && tx.matches_to_tag(request)
        {
            let disposition = if is_ack {
                match tx.handle_ack(now, &self.config) {
                    AckOutcome::Absorbed => RequestDisposition::AckForNon2xx { id },
                    AckOutcome::ForTu => RequestDisposition::Ack2xx,
                }
            } else {
                tx.handle_retransmission(&mut self.outbox);
                RequestDisposition::Retransmission { id }
            };
            self.settle(id);
            return Ok(disposition);
        }
        if is_ack {
            return Ok(RequestDisposition::Ack2xx);
        }
        let merge_key = MergeKey::of(request);
        if let Some(original) = merge_key.as_ref().and_then(|k| self.merge_keys.get(k)) {
            return Ok(RequestDisposition::Merged {
                original: *original,
            });
        }
        if self.transactions.len() >= self.config.max_transactions {
            tracing::debug!(max = self.config.max_transactions, "transaction table full");
            return Ok(RequestDisposition::Overloaded);
        }
        let id = self.allocate_id();
        let tx = ServerTransaction::start(now, id, request.clone(), reliable, &self.config);
        self.server_keys.insert(key, id);
        if let Some(k) = merge_key {
            self.merge_keys.insert(k, id);
        }
        self.transactions.insert(id, Transaction::Server(tx));
        self.settle(id);
        if *method == Method::Cancel {
            let invite = self.find_invite_for_cancel(request);
            Ok(RequestDisposition::Cancel { id, invite })
        } else {
            Ok(RequestDisposition::New { id })
        }
    }

    /// The INVITE server transaction a CANCEL cancels: the one with the same key except the
    /// method (RFC 3261 9.2), for RFC 2543 peers also with the same To tag.
    pub fn find_invite_for_cancel(&self, cancel: &TxMessage<M>) -> Option<TransactionId> {
        let key = ServerKey::of_request(cancel).with_method(Method::Invite);
        let id = *self.server_keys.get(&key)?;
        match self.transactions.get(&id) {
            Some(Transaction::Server(tx)) if tx.is_invite() && tx.matches_to_tag(cancel) => {
                Some(id)
            }
            _ => None,
        }
    }

    /// An incoming response: the client transaction it matched (RFC 3261 17.1.3), or `None`
    /// for a stray response (the caller may hand a stray 2xx to the dialog layer).
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &TxMessage<M>,
    ) -> Option<TransactionId> {
        response.status()?;
        let id = *self.client_keys.get(&ClientKey::of(response))?;
        if let Some(Transaction::Client(tx)) = self.transactions.get_mut(&id) {
            tx.handle_response(now, response, &self.config, &mut self.outbox);
        }
        self.settle(id);
        Some(id)
    }

    /// The TU sends a response on server transaction `id`.
    pub fn respond(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: TxMessage<M>,
    ) -> Result<(), TransactionError> {
        match self.transactions.get_mut(&id) {
            Some(Transaction::Server(tx)) => {
                tx.respond(now, response, &self.config, &mut self.outbox)?;
            }
            Some(Transaction::Client(_)) => {
                return Err(TransactionError::NotAServerTransaction(id));
            }
            None => return Err(TransactionError::UnknownTransaction(id)),
        }
        self.settle(id);
        Ok(())
    }

    /// The TU sends a request in a new client transaction (not an ACK: the ACK for a 2xx is
    /// the dialog layer's, the ACK for a non-2xx the layer's own).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: TxMessage<M>,
        reliable: bool,
    ) -> Result<TransactionId, TransactionError> {
        match request.kind {
            TxKind::Request {
                method: Method::Ack,
            } => return Err(TransactionError::AckIsNotATransaction),
            TxKind::Request { .. } => {}
            TxKind::Response { .. } => return Err(TransactionError::NotARequest),
        }
        let key = ClientKey::of(&request);
        if self.client_keys.contains_key(&key) {
            return Err(TransactionError::DuplicateBranch(key.branch));
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(TransactionError::Overloaded(self.config.max_transactions));
        }
        let id = self.allocate_id();
        let tx =
            ClientTransaction::start(now, id, request, reliable, &self.config, &mut self.outbox);
        self.client_keys.insert(key, id);
        self.transactions.insert(id, Transaction::Client(tx));
        self.settle(id);
        Ok(id)
    }

    /// The transport could not deliver a message of transaction `id` (RFC 3261 17.1.4,
    /// 17.2.4): the TU gets `TransportError` and the transaction ends.
    pub fn handle_transport_error(&mut self, id: TransactionId) {
        match self.transactions.get_mut(&id) {
            Some(Transaction::Client(tx)) => tx.handle_transport_error(&mut self.outbox),
            Some(Transaction::Server(tx)) => tx.handle_transport_error(&mut self.outbox),
            None => return,
        }
        self.settle(id);
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id, timer))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(tx) = self.transactions.get_mut(&id) else {
                continue;
            };
            if !tx.timers().fire(timer, at) {
                continue;
            }
            match tx {
                Transaction::Client(c) => {
                    c.handle_timer(now, timer, &self.config, &mut self.outbox)
                }
                Transaction::Server(s) => {
                    s.handle_timer(now, timer, &self.config, &mut self.outbox)
                }
            }
            self.settle(id);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<M>> {
        self.outbox.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TxEvent<M>> {
        self.outbox.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, and why.
    pub fn poll_timeout(&mut self) -> Option<(Instant, TimerReason)> {
        while let Some(&Reverse((at, id, timer))) = self.deadlines.peek() {
            let current = match self.transactions.get_mut(&id) {
                Some(tx) => tx.timers().is_armed_for(timer, at),
                None => false,
            };
            if current {
                return Some((at, TimerReason { id, timer }));
            }
            self.deadlines.pop();
        }
        None
    }

    /// After any input to transaction `id`: remove it if it ended, else queue its new
    /// deadlines.
    fn settle(&mut self, id: TransactionId) {
        let Some(tx) = self.transactions.get_mut(&id) else {
            return;
        };
        if !tx.is_terminated() {
            let deadlines = &mut self.deadlines;
            tx.timers().take_changed(|index, at| {
                // INVARIANT: take_changed yields indices of the table, which has one slot per
                // Timer::ALL entry.
                deadlines.push(Reverse((at, id, Timer::ALL[index])));
            });
            return;
        }
        match self.transactions.remove(&id) {
            Some(Transaction::Client(c)) if self.client_keys.get(&c.key) == Some(&id) => {
                self.client_keys.remove(&c.key);
            }
            Some(Transaction::Server(s)) => {
                if self.server_keys.get(&s.key) == Some(&id) {
                    self.server_keys.remove(&s.key);
                }
                if let Some(k) = &s.merge_key
                    && self.merge_keys.get(k) == Some(&id)
                {
                    self.merge_keys.remove(k);
                }
            }
            Some(Transaction::Client(_)) | None => {}
        }
        self.outbox.event(TxEvent::Terminated { id });
    }
}
