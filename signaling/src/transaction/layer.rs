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
use super::timer::{TIMER_COUNT, Timer, TimerReason};
use super::timer_table::TimerTable;
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

    fn timers(&mut self) -> &mut TimerTable<Timer, TIMER_COUNT> {
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

    /// The state of client transaction `id`, if it is live.
    pub fn client_state(&self, id: TransactionId) -> Option<ClientState> {
        match self.transactions.get(&id)? {
            Transaction::Client(c) => Some(c.state()),
            Transaction::Server(_) => None,
        }
    }

    /// The state of server transaction `id`, if it is live.
    pub fn server_state(&self, id: TransactionId) -> Option<ServerState> {
        match self.transactions.get(&id)? {
            Transaction::Server(s) => Some(s.state()),
            Transaction::Client(_) => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Wire(String);

    impl TxPayload for Wire {
        fn ack_for_non2xx(_request: &TxMessage<Self>, response: &TxMessage<Self>) -> Self {
            Wire(format!("ACK for {}", response.status().unwrap_or(0)))
        }
        fn trying_for(_request: &TxMessage<Self>) -> Self {
            Wire("100 Trying".into())
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn req(method: Method, branch: &str, call_id: &str, cseq: u32) -> TxMessage<Wire> {
        TxMessage {
            kind: TxKind::Request {
                method: method.clone(),
            },
            branch: branch.into(),
            sent_by: "192.0.2.1:5060".into(),
            cseq_method: method.clone(),
            cseq,
            call_id: call_id.into(),
            from_tag: "from1".into(),
            to_tag: None,
            request_uri: "sip:conf@chorus.example".into(),
            top_via: format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
            payload: Wire(format!("{method} {call_id}")),
        }
    }

    fn resp(request: &TxMessage<Wire>, status: u16) -> TxMessage<Wire> {
        TxMessage {
            kind: TxKind::Response { status },
            request_uri: String::new(),
            to_tag: Some("to1".into()),
            payload: Wire(format!("{status} {}", request.call_id)),
            ..request.clone()
        }
    }

    /// The ACK for a non-2xx (same branch as the INVITE, To tag of the response).
    fn ack(invite: &TxMessage<Wire>) -> TxMessage<Wire> {
        TxMessage {
            kind: TxKind::Request {
                method: Method::Ack,
            },
            cseq_method: Method::Ack,
            to_tag: Some("to1".into()),
            payload: Wire("ACK".into()),
            ..invite.clone()
        }
    }

    fn layer() -> TransactionLayer<Wire> {
        TransactionLayer::new(Config::default())
    }

    fn drain(layer: &mut TransactionLayer<Wire>) -> (Vec<Transmit<Wire>>, Vec<TxEvent<Wire>>) {
        let transmits = std::iter::from_fn(|| layer.poll_transmit()).collect();
        let events = std::iter::from_fn(|| layer.poll_event()).collect();
        (transmits, events)
    }

    /// Runs the timers up to `end`; returns (time since `t0`, payload) of each transmit and
    /// (time since `t0`, event) of each event.
    #[allow(clippy::type_complexity)]
    fn run_until(
        layer: &mut TransactionLayer<Wire>,
        t0: Instant,
        end: Instant,
    ) -> (Vec<(Duration, Wire)>, Vec<(Duration, TxEvent<Wire>)>) {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some((at, _)) = layer.poll_timeout() {
            if at > end {
                break;
            }
            layer.handle_timeout(at);
            let (t, e) = drain(layer);
            sent.extend(t.into_iter().map(|t| (at - t0, t.message.payload)));
            events.extend(e.into_iter().map(|e| (at - t0, e)));
        }
        (sent, events)
    }

    fn times(sent: &[(Duration, Wire)]) -> Vec<u128> {
        sent.iter().map(|(d, _)| d.as_millis()).collect()
    }

    #[test]
    fn invite_client_udp_timer_a_schedule_until_b() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = l
            .send_request(t0, req(Method::Invite, "z9hG4bK1", "c1", 1), false)
            .unwrap();
        assert_eq!(drain(&mut l).0.len(), 1);
        let (sent, events) = run_until(&mut l, t0, t0 + Duration::from_secs(40));
        // Intervals 500 ms, 1 s, 2 s, 4 s, 8 s, 16 s; the 32 s one is cut by timer B.
        assert_eq!(times(&sent), [500, 1_500, 3_500, 7_500, 15_500, 31_500]);
        assert_eq!(
            events,
            [
                (ms(32_000), TxEvent::Timeout { id }),
                (ms(32_000), TxEvent::Terminated { id })
            ]
        );
        assert!(l.is_empty());
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn invite_client_tcp_never_retransmits() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = l
            .send_request(t0, req(Method::Invite, "z9hG4bK1", "c1", 1), true)
            .unwrap();
        drain(&mut l);
        let (sent, events) = run_until(&mut l, t0, t0 + Duration::from_secs(40));
        assert!(sent.is_empty());
        assert_eq!(events[0], (ms(32_000), TxEvent::Timeout { id }));
        assert!(l.is_empty());
    }

    #[test]
    fn non_invite_client_udp_timer_e_schedule_until_f() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = l
            .send_request(t0, req(Method::Options, "z9hG4bK1", "c1", 1), false)
            .unwrap();
        drain(&mut l);
        let (sent, events) = run_until(&mut l, t0, t0 + Duration::from_secs(40));
        assert_eq!(
            times(&sent),
            [
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        assert_eq!(events[0], (ms(32_000), TxEvent::Timeout { id }));
        assert!(l.is_empty());
    }

    #[test]
    fn non_invite_client_proceeding_retransmits_every_t2() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Bye, "z9hG4bK1", "c1", 2);
        let id = l.send_request(t0, r.clone(), false).unwrap();
        drain(&mut l);
        assert_eq!(l.handle_response(t0 + ms(100), &resp(&r, 100)), Some(id));
        let (_, events) = drain(&mut l);
        assert!(matches!(
            events[..],
            [TxEvent::ResponseReceived { status: 100, .. }]
        ));
        let (sent, _) = run_until(&mut l, t0, t0 + ms(10_000));
        assert_eq!(times(&sent), [500, 4_500, 8_500]);
    }

    #[test]
    fn non_invite_client_tcp_never_retransmits_and_k_is_zero() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        let id = l.send_request(t0, r.clone(), true).unwrap();
        drain(&mut l);
        let (sent, _) = run_until(&mut l, t0, t0 + ms(5_000));
        assert!(sent.is_empty());
        l.handle_response(t0 + ms(5_000), &resp(&r, 200));
        let (_, events) = drain(&mut l);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], TxEvent::Terminated { id });
        assert!(l.is_empty());
    }

    #[test]
    fn non_invite_client_absorbs_final_retransmissions_until_k() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        let id = l.send_request(t0, r.clone(), false).unwrap();
        drain(&mut l);
        l.handle_response(t0 + ms(10), &resp(&r, 200));
        assert_eq!(drain(&mut l).1.len(), 1);
        l.handle_response(t0 + ms(20), &resp(&r, 200));
        assert_eq!(drain(&mut l), (vec![], vec![]));
        let (sent, events) = run_until(&mut l, t0, t0 + ms(6_000));
        assert!(sent.is_empty());
        assert_eq!(events, [(ms(5_010), TxEvent::Terminated { id })]);
    }

    #[test]
    fn invite_client_acks_non2xx_and_resends_ack_on_retransmission() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let id = l.send_request(t0, invite.clone(), false).unwrap();
        drain(&mut l);
        l.handle_response(t0 + ms(100), &resp(&invite, 180));
        let (sent, events) = drain(&mut l);
        assert!(sent.is_empty());
        assert!(matches!(
            events[..],
            [TxEvent::ResponseReceived { status: 180, .. }]
        ));
        // Proceeding: no more INVITE retransmissions.
        assert!(run_until(&mut l, t0, t0 + ms(2_000)).0.is_empty());
        l.handle_response(t0 + ms(2_000), &resp(&invite, 486));
        let (sent, events) = drain(&mut l);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].message.method(), Some(&Method::Ack));
        assert_eq!(sent[0].message.branch, "z9hG4bK1");
        assert_eq!(sent[0].message.to_tag.as_deref(), Some("to1"));
        assert_eq!(sent[0].message.payload, Wire("ACK for 486".into()));
        assert!(matches!(
            events[..],
            [TxEvent::ResponseReceived { status: 486, .. }]
        ));
        // A retransmitted 486 is answered with the same ACK and not shown to the TU.
        l.handle_response(t0 + ms(2_500), &resp(&invite, 486));
        let (sent, events) = drain(&mut l);
        assert_eq!(sent.len(), 1);
        assert!(events.is_empty());
        let (_, events) = run_until(&mut l, t0, t0 + ms(40_000));
        assert_eq!(events, [(ms(34_000), TxEvent::Terminated { id })]);
        assert!(l.is_empty());
    }

    #[test]
    fn invite_client_tcp_terminates_on_non2xx() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let id = l.send_request(t0, invite.clone(), true).unwrap();
        drain(&mut l);
        l.handle_response(t0 + ms(10), &resp(&invite, 503));
        let (sent, events) = drain(&mut l);
        assert_eq!(sent.len(), 1);
        assert_eq!(events.last(), Some(&TxEvent::Terminated { id }));
        assert!(l.is_empty());
    }

    #[test]
    fn invite_client_accepted_passes_every_2xx_until_m() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let id = l.send_request(t0, invite.clone(), false).unwrap();
        drain(&mut l);
        l.handle_response(t0 + ms(10), &resp(&invite, 200));
        let (sent, events) = drain(&mut l);
        assert!(sent.is_empty(), "the ACK for a 2xx is the dialog layer's");
        assert_eq!(events.len(), 1);
        l.handle_response(t0 + ms(510), &resp(&invite, 200));
        assert_eq!(drain(&mut l).1.len(), 1);
        l.handle_response(t0 + ms(520), &resp(&invite, 486));
        assert_eq!(drain(&mut l), (vec![], vec![]));
        let (sent, events) = run_until(&mut l, t0, t0 + ms(40_000));
        assert!(sent.is_empty());
        assert_eq!(events, [(ms(32_010), TxEvent::Terminated { id })]);
    }

    #[test]
    fn invite_server_sends_100_after_200ms_and_resends_it() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let id = match l.handle_request(t0, &invite, false).unwrap() {
            RequestDisposition::New { id } => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            l.poll_timeout().map(|(at, r)| (at - t0, r.timer)),
            Some((ms(200), Timer::Trying100))
        );
        // A retransmission before any response: absorbed, nothing to re-send.
        assert_eq!(
            l.handle_request(t0 + ms(100), &invite, false).unwrap(),
            RequestDisposition::Retransmission { id }
        );
        assert_eq!(drain(&mut l), (vec![], vec![]));
        let (sent, _) = run_until(&mut l, t0, t0 + ms(300));
        assert_eq!(sent, [(ms(200), Wire("100 Trying".into()))]);
        l.handle_request(t0 + ms(500), &invite, false).unwrap();
        let (sent, _) = drain(&mut l);
        assert_eq!(sent[0].message.status(), Some(100));
    }

    #[test]
    fn invite_server_tu_response_suppresses_100() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, false).unwrap() else {
            panic!("not new");
        };
        l.respond(t0 + ms(50), id, resp(&invite, 180)).unwrap();
        assert_eq!(drain(&mut l).0.len(), 1);
        assert!(run_until(&mut l, t0, t0 + ms(1_000)).0.is_empty());
    }

    #[test]
    fn invite_server_udp_timer_g_schedule_until_h() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, false).unwrap() else {
            panic!("not new");
        };
        l.respond(t0 + ms(100), id, resp(&invite, 486)).unwrap();
        drain(&mut l);
        let (sent, events) = run_until(&mut l, t0, t0 + ms(60_000));
        assert_eq!(
            times(&sent),
            [
                600, 1_600, 3_600, 7_600, 11_600, 15_600, 19_600, 23_600, 27_600, 31_600
            ]
        );
        assert_eq!(
            events,
            [
                (ms(32_100), TxEvent::Timeout { id }),
                (ms(32_100), TxEvent::Terminated { id })
            ]
        );
        assert!(l.is_empty());
    }

    #[test]
    fn invite_server_absorbs_ack_and_resends_final_on_retransmission() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, false).unwrap() else {
            panic!("not new");
        };
        l.respond(t0, id, resp(&invite, 603)).unwrap();
        drain(&mut l);
        assert_eq!(
            l.handle_request(t0 + ms(100), &invite, false).unwrap(),
            RequestDisposition::Retransmission { id }
        );
        let (sent, _) = drain(&mut l);
        assert_eq!(sent[0].message.status(), Some(603));
        assert_eq!(
            l.handle_request(t0 + ms(200), &ack(&invite), false)
                .unwrap(),
            RequestDisposition::AckForNon2xx { id }
        );
        assert_eq!(
            l.handle_request(t0 + ms(300), &ack(&invite), false)
                .unwrap(),
            RequestDisposition::AckForNon2xx { id }
        );
        // Confirmed: INVITE retransmissions absorbed silently; no more G.
        l.handle_request(t0 + ms(400), &invite, false).unwrap();
        let (sent, events) = run_until(&mut l, t0, t0 + ms(60_000));
        assert!(sent.is_empty());
        assert_eq!(events, [(ms(5_200), TxEvent::Terminated { id })]);
        assert!(l.is_empty());
    }

    #[test]
    fn invite_server_tcp_no_g_and_i_is_zero() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, true).unwrap() else {
            panic!("not new");
        };
        l.respond(t0, id, resp(&invite, 486)).unwrap();
        drain(&mut l);
        assert_eq!(
            l.poll_timeout().map(|(at, r)| (at - t0, r.timer)),
            Some((ms(32_000), Timer::H))
        );
        l.handle_request(t0 + ms(10), &ack(&invite), true).unwrap();
        assert_eq!(drain(&mut l).1, [TxEvent::Terminated { id }]);
        assert!(l.is_empty());
    }

    #[test]
    fn invite_server_accepted_absorbs_invites_and_passes_2xx_ack() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, false).unwrap() else {
            panic!("not new");
        };
        l.respond(t0, id, resp(&invite, 200)).unwrap();
        assert_eq!(drain(&mut l).0.len(), 1);
        assert_eq!(l.server_state(id), Some(ServerState::Accepted));
        assert_eq!(l.client_state(id), None);
        assert_eq!(
            l.handle_request(t0 + ms(10), &invite, false).unwrap(),
            RequestDisposition::Retransmission { id }
        );
        assert_eq!(
            drain(&mut l),
            (vec![], vec![]),
            "RFC 6026: absorbed, not re-sent"
        );
        // The TU's own 2xx retransmission passes through.
        l.respond(t0 + ms(500), id, resp(&invite, 200)).unwrap();
        assert_eq!(drain(&mut l).0.len(), 1);
        assert!(l.respond(t0 + ms(500), id, resp(&invite, 486)).is_err());
        let mut ack2xx = ack(&invite);
        ack2xx.branch = "z9hG4bKack".into();
        assert_eq!(
            l.handle_request(t0 + ms(600), &ack2xx, false).unwrap(),
            RequestDisposition::Ack2xx
        );
        let (sent, events) = run_until(&mut l, t0, t0 + ms(60_000));
        assert!(sent.is_empty());
        assert_eq!(events, [(ms(32_000), TxEvent::Terminated { id })]);
    }

    #[test]
    fn non_invite_server_resends_last_response_and_waits_j() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &r, false).unwrap() else {
            panic!("not new");
        };
        l.handle_request(t0 + ms(10), &r, false).unwrap();
        assert_eq!(
            drain(&mut l),
            (vec![], vec![]),
            "Trying: nothing to re-send"
        );
        l.respond(t0 + ms(20), id, resp(&r, 183)).unwrap();
        l.handle_request(t0 + ms(30), &r, false).unwrap();
        let (sent, _) = drain(&mut l);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].message.status(), Some(183));
        l.respond(t0 + ms(40), id, resp(&r, 200)).unwrap();
        l.handle_request(t0 + ms(50), &r, false).unwrap();
        let (sent, _) = drain(&mut l);
        assert_eq!(sent[1].message.status(), Some(200));
        assert_eq!(
            l.respond(t0 + ms(60), id, resp(&r, 500)),
            Err(TransactionError::WrongState { id, status: 500 })
        );
        let (sent, events) = run_until(&mut l, t0, t0 + ms(60_000));
        assert!(sent.is_empty());
        assert_eq!(events, [(ms(32_040), TxEvent::Terminated { id })]);
    }

    #[test]
    fn non_invite_server_tcp_j_is_zero() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &r, true).unwrap() else {
            panic!("not new");
        };
        l.respond(t0, id, resp(&r, 200)).unwrap();
        assert_eq!(drain(&mut l).1, [TxEvent::Terminated { id }]);
        assert!(l.is_empty());
    }

    #[test]
    fn cancel_gets_its_own_transaction_and_finds_its_invite() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id: invite_id } =
            l.handle_request(t0, &invite, false).unwrap()
        else {
            panic!("not new");
        };
        let mut cancel = req(Method::Cancel, "z9hG4bK1", "c1", 1);
        cancel.cseq_method = Method::Cancel;
        let RequestDisposition::Cancel { id, invite } =
            l.handle_request(t0 + ms(10), &cancel, false).unwrap()
        else {
            panic!("not cancel");
        };
        assert_ne!(id, invite_id);
        assert_eq!(invite, Some(invite_id));
        assert_eq!(l.find_invite_for_cancel(&cancel), Some(invite_id));
        assert_eq!(
            l.handle_request(t0 + ms(20), &cancel, false).unwrap(),
            RequestDisposition::Retransmission { id }
        );
        // A CANCEL from another sent-by cancels nothing.
        let mut other = req(Method::Cancel, "z9hG4bK1", "c2", 1);
        other.sent_by = "192.0.2.99:5060".into();
        assert!(matches!(
            l.handle_request(t0, &other, false).unwrap(),
            RequestDisposition::Cancel { invite: None, .. }
        ));
    }

    #[test]
    fn merged_request_is_detected_and_not_allocated() {
        let t0 = Instant::now();
        let mut l = layer();
        let first = req(Method::Invite, "z9hG4bK1", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &first, false).unwrap() else {
            panic!("not new");
        };
        let forked = req(Method::Invite, "z9hG4bK2", "c1", 1);
        assert_eq!(
            l.handle_request(t0 + ms(5), &forked, false).unwrap(),
            RequestDisposition::Merged { original: id }
        );
        assert_eq!(l.len(), 1);
        // With a To tag it is in-dialog and never a merge.
        let mut in_dialog = req(Method::Invite, "z9hG4bK3", "c1", 1);
        in_dialog.to_tag = Some("t".into());
        assert!(matches!(
            l.handle_request(t0, &in_dialog, false).unwrap(),
            RequestDisposition::New { .. }
        ));
        // Once the original is gone, the same request is new.
        l.respond(t0, id, resp(&first, 200)).unwrap();
        run_until(&mut l, t0, t0 + ms(40_000));
        assert!(matches!(
            l.handle_request(t0 + ms(40_000), &forked, false).unwrap(),
            RequestDisposition::New { .. }
        ));
    }

    #[test]
    fn rfc2543_requests_match_on_the_old_fields() {
        let t0 = Instant::now();
        let mut l = layer();
        let invite = req(Method::Invite, "0a1b", "c1", 1);
        let RequestDisposition::New { id } = l.handle_request(t0, &invite, false).unwrap() else {
            panic!("not new");
        };
        assert_eq!(
            l.handle_request(t0, &invite, false).unwrap(),
            RequestDisposition::Retransmission { id }
        );
        l.respond(t0, id, resp(&invite, 486)).unwrap();
        // An ACK with a To tag other than the response's is not this transaction's.
        let mut wrong = ack(&invite);
        wrong.to_tag = Some("other".into());
        assert_eq!(
            l.handle_request(t0, &wrong, false).unwrap(),
            RequestDisposition::Ack2xx
        );
        assert_eq!(
            l.handle_request(t0, &ack(&invite), false).unwrap(),
            RequestDisposition::AckForNon2xx { id }
        );
        // Another CSeq is another transaction.
        let next = req(Method::Invite, "0a1b", "c1", 2);
        assert!(matches!(
            l.handle_request(t0, &next, false).unwrap(),
            RequestDisposition::New { .. }
        ));
        // A CANCEL finds its INVITE by the same fields.
        let mut cancel = req(Method::Cancel, "0a1b", "c1", 2);
        cancel.cseq_method = Method::Cancel;
        assert!(l.find_invite_for_cancel(&cancel).is_some());
    }

    #[test]
    fn overload_bound_refuses_without_allocating() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::<Wire>::new(Config {
            max_transactions: 2,
            ..Config::default()
        });
        for (i, branch) in ["z9hG4bK1", "z9hG4bK2"].iter().enumerate() {
            let r = req(Method::Options, branch, &format!("c{i}"), 1);
            assert!(matches!(
                l.handle_request(t0, &r, false).unwrap(),
                RequestDisposition::New { .. }
            ));
        }
        let r = req(Method::Options, "z9hG4bK3", "c3", 1);
        assert_eq!(
            l.handle_request(t0, &r, false).unwrap(),
            RequestDisposition::Overloaded
        );
        assert_eq!(
            l.send_request(t0, r, false),
            Err(TransactionError::Overloaded(2))
        );
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn misuse_is_an_error() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        assert_eq!(
            l.handle_request(t0, &resp(&r, 200), false),
            Err(TransactionError::NotARequest)
        );
        assert_eq!(
            l.send_request(t0, ack(&r), false),
            Err(TransactionError::AckIsNotATransaction)
        );
        let id = l.send_request(t0, r.clone(), false).unwrap();
        assert_eq!(
            l.send_request(t0, r.clone(), false),
            Err(TransactionError::DuplicateBranch("z9hG4bK1".into()))
        );
        assert_eq!(
            l.respond(t0, id, resp(&r, 200)),
            Err(TransactionError::NotAServerTransaction(id))
        );
        assert_eq!(
            l.respond(t0, TransactionId(99), resp(&r, 200)),
            Err(TransactionError::UnknownTransaction(TransactionId(99)))
        );
        let RequestDisposition::New { id } = l.handle_request(t0, &r, false).unwrap() else {
            panic!("not new");
        };
        assert_eq!(
            l.respond(t0, id, resp(&r, 700)),
            Err(TransactionError::InvalidStatus(700))
        );
        assert_eq!(
            l.respond(t0, id, r.clone()),
            Err(TransactionError::NotAResponse)
        );
    }

    #[test]
    fn transport_error_ends_the_transaction() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = l
            .send_request(t0, req(Method::Invite, "z9hG4bK1", "c1", 1), false)
            .unwrap();
        drain(&mut l);
        l.handle_transport_error(id);
        assert_eq!(
            drain(&mut l).1,
            [TxEvent::TransportError { id }, TxEvent::Terminated { id }]
        );
        assert!(l.is_empty());
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn stray_response_matches_nothing() {
        let t0 = Instant::now();
        let mut l = layer();
        let r = req(Method::Options, "z9hG4bK1", "c1", 1);
        assert_eq!(l.handle_response(t0, &resp(&r, 200)), None);
    }

    /// Drains everything, counting `Terminated` events.
    fn drain_terminated(l: &mut TransactionLayer<Wire>) -> usize {
        while l.poll_transmit().is_some() {}
        std::iter::from_fn(|| l.poll_event())
            .filter(|e| matches!(e, TxEvent::Terminated { .. }))
            .count()
    }

    fn advance(l: &mut TransactionLayer<Wire>, now: Instant) -> usize {
        let mut terminated = 0;
        while let Some((at, _)) = l.poll_timeout() {
            if at > now {
                break;
            }
            l.handle_timeout(at);
            terminated += drain_terminated(l);
        }
        terminated
    }

    #[test]
    fn hundred_thousand_transactions_through_every_path_leave_nothing() {
        let t0 = Instant::now();
        let mut l = layer();
        let mut created = 0usize;
        let mut terminated = 0usize;
        for i in 0..100_000u32 {
            let now = t0 + ms(u64::from(i));
            terminated += advance(&mut l, now);
            let reliable = (i / 10) % 2 == 1;
            let branch = format!("z9hG4bK{i}");
            let call_id = format!("c{i}");
            let invite = req(Method::Invite, &branch, &call_id, 1);
            let options = req(Method::Options, &branch, &call_id, 1);
            let new_id = |d: RequestDisposition| match d {
                RequestDisposition::New { id } => id,
                other => panic!("{other:?}"),
            };
            match i % 10 {
                // Client INVITE: no answer, timer B.
                0 => {
                    l.send_request(now, invite, reliable).unwrap();
                    created += 1;
                }
                // Client INVITE: 180 then 486, ACK, timer D.
                1 => {
                    l.send_request(now, invite.clone(), reliable).unwrap();
                    l.handle_response(now, &resp(&invite, 180)).unwrap();
                    l.handle_response(now, &resp(&invite, 486)).unwrap();
                    created += 1;
                }
                // Client INVITE: 200, Accepted, timer M.
                2 => {
                    l.send_request(now, invite.clone(), reliable).unwrap();
                    l.handle_response(now, &resp(&invite, 200)).unwrap();
                    created += 1;
                }
                // Client OPTIONS: 200, timer K.
                3 => {
                    l.send_request(now, options.clone(), reliable).unwrap();
                    l.handle_response(now, &resp(&options, 200)).unwrap();
                    created += 1;
                }
                // Client OPTIONS: no answer, timer F.
                4 => {
                    l.send_request(now, options, reliable).unwrap();
                    created += 1;
                }
                // Server INVITE: 486, ACK, timer I.
                5 => {
                    let id = new_id(l.handle_request(now, &invite, reliable).unwrap());
                    l.respond(now, id, resp(&invite, 486)).unwrap();
                    l.handle_request(now, &ack(&invite), reliable).unwrap();
                    created += 1;
                }
                // Server INVITE: 486, ACK never comes, timer H.
                6 => {
                    let id = new_id(l.handle_request(now, &invite, reliable).unwrap());
                    l.respond(now, id, resp(&invite, 486)).unwrap();
                    created += 1;
                }
                // Server INVITE: 100 automatically, then 200, timer L.
                7 => {
                    let id = new_id(l.handle_request(now, &invite, reliable).unwrap());
                    terminated += advance(&mut l, now + ms(300));
                    l.respond(now + ms(300), id, resp(&invite, 200)).unwrap();
                    created += 1;
                }
                // Server INVITE cancelled: CANCEL 200, INVITE 487, ACK.
                8 => {
                    let id = new_id(l.handle_request(now, &invite, reliable).unwrap());
                    let mut cancel = req(Method::Cancel, &branch, &call_id, 1);
                    cancel.cseq_method = Method::Cancel;
                    let RequestDisposition::Cancel {
                        id: cancel_id,
                        invite: Some(invite_id),
                    } = l.handle_request(now, &cancel, reliable).unwrap()
                    else {
                        panic!("cancel not associated");
                    };
                    assert_eq!(invite_id, id);
                    l.respond(now, cancel_id, resp(&cancel, 200)).unwrap();
                    l.respond(now, id, resp(&invite, 487)).unwrap();
                    l.handle_request(now, &ack(&invite), reliable).unwrap();
                    created += 2;
                }
                // Server OPTIONS 200 (timer J) and a client INVITE failing in transport.
                _ => {
                    let id = new_id(l.handle_request(now, &options, reliable).unwrap());
                    l.respond(now, id, resp(&options, 200)).unwrap();
                    let mut other = invite.clone();
                    other.branch = format!("z9hG4bKx{i}");
                    let id = l.send_request(now, other, reliable).unwrap();
                    l.handle_transport_error(id);
                    created += 2;
                }
            }
            terminated += drain_terminated(&mut l);
        }
        terminated += advance(&mut l, t0 + Duration::from_secs(1_000));
        assert_eq!(terminated, created);
        assert!(l.is_empty());
        assert_eq!(l.poll_timeout(), None);
        assert!(l.deadlines.is_empty());
        assert!(l.server_keys.is_empty());
        assert!(l.client_keys.is_empty());
        assert!(l.merge_keys.is_empty());
    }

    /// A client layer and a server layer (with its TU and a 2xx retransmitter) wired through
    /// a lossy, jittery network in virtual time.
    mod lossy_network {
        use super::*;
        use crate::transaction::{AckKey, Uas2xxEvent, Uas2xxRetransmitter};
        use std::collections::HashMap;

        /// xorshift64*: deterministic, seeded.
        struct Rng(u64);

        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
        }

        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Side {
            Client,
            Server,
        }

        struct Net {
            rng: Rng,
            loss_percent: u64,
            in_flight: Vec<(Instant, Side, TxMessage<Wire>)>,
        }

        impl Net {
            fn send(&mut self, now: Instant, to: Side, msg: TxMessage<Wire>) {
                if self.rng.below(100) < self.loss_percent {
                    return;
                }
                let delay = ms(10 + self.rng.below(90));
                self.in_flight.push((now + delay, to, msg));
            }
            fn next_at(&self) -> Option<Instant> {
                self.in_flight.iter().map(|p| p.0).min()
            }
            fn pop_due(&mut self, now: Instant) -> Option<(Side, TxMessage<Wire>)> {
                let (i, _) = self
                    .in_flight
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.0 <= now)
                    .min_by_key(|(_, p)| p.0)?;
                let (_, side, msg) = self.in_flight.swap_remove(i);
                Some((side, msg))
            }
        }

        enum Action {
            Provisional(TransactionId, TxMessage<Wire>),
            Final(TransactionId, TxMessage<Wire>, u16),
        }

        #[derive(Default, Debug)]
        struct Outcome {
            /// Finals seen by the client TU, per request index.
            finals: HashMap<usize, Vec<u16>>,
            client_timeouts: Vec<usize>,
            client_terminated: usize,
            /// Times the server TU saw each request as new, and the final it chose.
            server_new: HashMap<usize, usize>,
            server_final: HashMap<usize, u16>,
            server_timeouts: usize,
            ack_timeouts: usize,
        }

        fn index_of(call_id: &str) -> usize {
            // INVARIANT: the simulation names calls "s<index>".
            call_id[1..].parse().expect("call id")
        }

        fn simulate(seed: u64, loss_percent: u64, requests: usize) -> Outcome {
            let t0 = Instant::now();
            let mut rng = Rng(seed);
            let mut net = Net {
                rng: Rng(seed ^ 0x9e37_79b9_7f4a_7c15),
                loss_percent,
                in_flight: Vec::new(),
            };
            let mut client = layer();
            let mut server = layer();
            let mut retransmitter = Uas2xxRetransmitter::new(ms(500), ms(4_000));
            let mut starts: Vec<(Instant, TxMessage<Wire>)> = (0..requests)
                .map(|i| {
                    let method = match rng.below(4) {
                        0 | 1 => Method::Invite,
                        2 => Method::Options,
                        _ => Method::Bye,
                    };
                    let at = t0 + ms(rng.below(20_000));
                    (
                        at,
                        req(method, &format!("z9hG4bKs{i}"), &format!("s{i}"), 1),
                    )
                })
                .collect();
            starts.sort_by_key(|s| std::cmp::Reverse(s.0));
            let mut client_requests: HashMap<TransactionId, TxMessage<Wire>> = HashMap::new();
            let mut actions: Vec<(Instant, Action)> = Vec::new();
            let mut out = Outcome::default();
            let mut now = t0;
            loop {
                let next = [
                    starts.last().map(|s| s.0),
                    net.next_at(),
                    client.poll_timeout().map(|t| t.0),
                    server.poll_timeout().map(|t| t.0),
                    retransmitter.poll_timeout().map(|t| t.0),
                    actions.iter().map(|a| a.0).min(),
                ]
                .into_iter()
                .flatten()
                .min();
                let Some(next) = next else { break };
                now = now.max(next);

                while starts.last().is_some_and(|s| s.0 <= now) {
                    // INVARIANT: just checked non-empty.
                    let (_, request) = starts.pop().expect("start");
                    let id = client.send_request(now, request.clone(), false).unwrap();
                    client_requests.insert(id, request);
                }
                while let Some((side, msg)) = net.pop_due(now) {
                    match side {
                        Side::Client => {
                            client.handle_response(now, &msg);
                        }
                        Side::Server => match server.handle_request(now, &msg, false).unwrap() {
                            RequestDisposition::New { id } => {
                                let index = index_of(&msg.call_id);
                                *out.server_new.entry(index).or_default() += 1;
                                let invite = msg.method() == Some(&Method::Invite);
                                let mut at = now + ms(rng.below(400));
                                if invite && rng.below(2) == 0 {
                                    actions.push((at, Action::Provisional(id, msg.clone())));
                                    at += ms(rng.below(1_000));
                                }
                                let status = if invite {
                                    [200, 486, 603][rng.below(3) as usize]
                                } else {
                                    [200, 404][rng.below(2) as usize]
                                };
                                out.server_final.insert(index, status);
                                actions.push((at, Action::Final(id, msg, status)));
                            }
                            RequestDisposition::Ack2xx => {
                                retransmitter.handle_ack(&AckKey {
                                    call_id: msg.call_id.clone(),
                                    cseq: msg.cseq,
                                });
                            }
                            RequestDisposition::Retransmission { .. }
                            | RequestDisposition::AckForNon2xx { .. } => {}
                            other => panic!("unexpected {other:?}"),
                        },
                    }
                }
                client.handle_timeout(now);
                server.handle_timeout(now);
                retransmitter.handle_timeout(now);
                let due: Vec<Action> = {
                    let (due, later) = actions.drain(..).partition(|a| a.0 <= now);
                    actions = later;
                    due.into_iter().map(|a: (Instant, Action)| a.1).collect()
                };
                for action in due {
                    match action {
                        Action::Provisional(id, request) => {
                            server.respond(now, id, resp(&request, 180)).unwrap();
                        }
                        Action::Final(id, request, status) => {
                            let response = resp(&request, status);
                            server.respond(now, id, response.clone()).unwrap();
                            if request.method() == Some(&Method::Invite) && status < 300 {
                                let key = AckKey {
                                    call_id: request.call_id.clone(),
                                    cseq: request.cseq,
                                };
                                retransmitter.start(now, key, response);
                            }
                        }
                    }
                }

                while let Some(t) = client.poll_transmit() {
                    net.send(now, Side::Server, t.message);
                }
                while let Some(t) = server.poll_transmit() {
                    net.send(now, Side::Client, t.message);
                }
                while let Some(t) = retransmitter.poll_transmit() {
                    net.send(now, Side::Client, t.response);
                }
                while let Some(event) = client.poll_event() {
                    match event {
                        TxEvent::ResponseReceived { id, status, .. } if status >= 200 => {
                            let request = &client_requests[&id];
                            out.finals
                                .entry(index_of(&request.call_id))
                                .or_default()
                                .push(status);
                            if request.method() == Some(&Method::Invite) && status < 300 {
                                // The dialog layer's ACK for the 2xx: a new branch.
                                let mut ack2xx = ack(request);
                                ack2xx.branch = format!("z9hG4bKack{}", id.0);
                                net.send(now, Side::Server, ack2xx);
                            }
                        }
                        TxEvent::Timeout { id } => {
                            out.client_timeouts
                                .push(index_of(&client_requests[&id].call_id));
                        }
                        TxEvent::Terminated { .. } => out.client_terminated += 1,
                        _ => {}
                    }
                }
                while let Some(event) = server.poll_event() {
                    if let TxEvent::Timeout { .. } = event {
                        out.server_timeouts += 1;
                    }
                }
                while let Some(Uas2xxEvent::AckTimeout { .. }) = retransmitter.poll_event() {
                    out.ack_timeouts += 1;
                }
            }
            assert!(client.is_empty(), "client transactions left");
            assert!(server.is_empty(), "server transactions left");
            assert!(retransmitter.is_empty(), "2xx retransmissions left");
            assert_eq!(out.client_terminated, requests);
            out
        }

        /// Every request's outcome at the client TU: a single final response (for INVITE 2xx
        /// its retransmissions repeat the same status), equal to the server TU's choice, or a
        /// timeout, never both.
        fn check_consistent(out: &Outcome, requests: usize) {
            for index in 0..requests {
                match out.finals.get(&index) {
                    Some(finals) => {
                        assert!(!out.client_timeouts.contains(&index));
                        assert_eq!(out.server_new.get(&index), Some(&1), "request {index}");
                        let first = finals[0];
                        assert_eq!(Some(&first), out.server_final.get(&index));
                        if first >= 300 {
                            assert_eq!(finals.len(), 1, "request {index}: {finals:?}");
                        } else {
                            assert!(finals.iter().all(|&s| s == first), "{finals:?}");
                        }
                    }
                    None => assert!(out.client_timeouts.contains(&index), "request {index}"),
                }
            }
        }

        #[test]
        fn ten_percent_loss_every_request_gets_exactly_one_final() {
            for seed in [1, 0xc0ffee, 0x5eed_1234] {
                let requests = 300;
                let out = simulate(seed, 10, requests);
                check_consistent(&out, requests);
                assert!(out.client_timeouts.is_empty(), "seed {seed}: {out:?}");
                assert_eq!(out.server_timeouts, 0);
                assert_eq!(out.ack_timeouts, 0);
                for index in 0..requests {
                    assert!(out.finals.contains_key(&index));
                }
            }
        }

        #[test]
        fn heavy_loss_still_terminates_everything_consistently() {
            for seed in [7, 8] {
                let requests = 200;
                let out = simulate(seed, 40, requests);
                check_consistent(&out, requests);
            }
        }
    }
}
