//! The server transaction state machines (RFC 3261 17.2.1 INVITE with RFC 6026's Accepted
//! state, 17.2.2 non-INVITE).

use std::time::{Duration, Instant};

use super::TransactionError;
use super::config::Config;
use super::key::{MergeKey, Rfc2543Key, ServerKey};
use super::message::{TxKind, TxMessage, TxPayload};
use super::method::Method;
use super::outbox::{Outbox, TxEvent};
use super::timer::{TIMER_COUNT, Timer};
use super::timer_table::TimerTable;
use super::transaction_id::TransactionId;

/// The state of a server transaction (RFC 3261 Figures 7 and 8, RFC 6026 Figure 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE: request received, the TU has not responded.
    Trying,
    /// INVITE: request received; non-INVITE: a provisional response was sent.
    Proceeding,
    /// A final (INVITE: non-2xx) response was sent.
    Completed,
    /// INVITE: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// INVITE (RFC 6026): a 2xx was sent; retransmitted INVITEs are absorbed.
    Accepted,
    /// Done; the layer removes the transaction.
    Terminated,
}

/// How the layer should report an ACK that matched a server transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Absorbed by the transaction (ACK for a non-2xx, or stray).
    Absorbed,
    /// An ACK for a 2xx (RFC 6026 Accepted state); the TU gets it.
    ForTu,
}

/// One server transaction.
#[derive(Debug)]
pub(crate) struct ServerTransaction<M> {
    id: TransactionId,
    pub(crate) key: ServerKey,
    pub(crate) merge_key: Option<MergeKey>,
    request: TxMessage<M>,
    last_response: Option<TxMessage<M>>,
    state: ServerState,
    reliable: bool,
    /// Current interval of timer G.
    interval: Duration,
    pub(crate) timers: TimerTable<Timer, TIMER_COUNT>,
}

impl<M: TxPayload> ServerTransaction<M> {
    /// Creates the transaction for a new request (the TU is told by the layer).
    pub(crate) fn start(
        now: Instant,
        id: TransactionId,
        request: TxMessage<M>,
        reliable: bool,
        config: &Config,
    ) -> Self {
        let invite = request.method() == Some(&Method::Invite);
        let mut timers = TimerTable::default();
        let state = if invite {
            timers.set(Timer::Trying100, now + config.trying_delay);
            ServerState::Proceeding
        } else {
            ServerState::Trying
        };
        Self {
            id,
            key: ServerKey::of_request(&request),
            merge_key: MergeKey::of(&request),
            request,
            last_response: None,
            state,
            reliable,
            interval: config.t1,
            timers,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> ServerState {
        self.state
    }

    /// Whether this is an INVITE server transaction.
    pub(crate) fn is_invite(&self) -> bool {
        self.request.method() == Some(&Method::Invite)
    }

    /// For RFC 2543 keys, whether `incoming` (already equal on the rest of the key) matches on
    /// the To tag too. RFC 3261 keys always match.
    pub(crate) fn matches_to_tag(&self, incoming: &TxMessage<M>) -> bool {
        if !self.key.is_rfc2543() {
            return true;
        }
        let is_ack = incoming.method() == Some(&Method::Ack);
        let response_to_tag = self
            .last_response
            .as_ref()
            .and_then(|r| r.to_tag.as_deref());
        Rfc2543Key::to_tag_matches(
            is_ack,
            incoming.to_tag.as_deref(),
            self.request.to_tag.as_deref(),
            response_to_tag,
        )
    }

    fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.timers.stop_all();
    }

    fn resend_last_response(&self, outbox: &mut Outbox<M>) {
        if let Some(response) = &self.last_response {
            outbox.transmit(self.id, response.clone());
        }
    }

    /// A retransmission of the request arrived (not an ACK).
    pub(crate) fn handle_retransmission(&mut self, outbox: &mut Outbox<M>) {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.resend_last_response(outbox),
            // Trying: nothing sent yet. Confirmed/Accepted: absorbed (RFC 6026 7.1).
            _ => {}
        }
    }

    /// An ACK matched this (INVITE) transaction.
    pub(crate) fn handle_ack(&mut self, now: Instant, config: &Config) -> AckOutcome {
        match self.state {
            ServerState::Completed => {
                self.timers.stop_all();
                if self.reliable {
                    self.terminate();
                } else {
                    self.state = ServerState::Confirmed;
                    self.timers.set(Timer::I, now + config.t4);
                }
                AckOutcome::Absorbed
            }
            ServerState::Accepted => AckOutcome::ForTu,
            _ => AckOutcome::Absorbed,
        }
    }

    /// The TU sends `response` through this transaction.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        response: TxMessage<M>,
        config: &Config,
        outbox: &mut Outbox<M>,
    ) -> Result<(), TransactionError> {
        let status = match response.kind {
            TxKind::Response { status } if (100..=699).contains(&status) => status,
            TxKind::Response { status } => return Err(TransactionError::InvalidStatus(status)),
            TxKind::Request { .. } => return Err(TransactionError::NotAResponse),
        };
        let wrong_state = TransactionError::WrongState {
            id: self.id,
            status,
        };
        if self.is_invite() {
            match (self.state, status) {
                (ServerState::Proceeding, 100..=199) => {
                    self.timers.stop(Timer::Trying100);
                }
                (ServerState::Proceeding, 200..=299) => {
                    self.timers.stop_all();
                    self.state = ServerState::Accepted;
                    self.timers.set(Timer::L, now + config.timeout());
                }
                (ServerState::Proceeding, _) => {
                    self.timers.stop_all();
                    self.state = ServerState::Completed;
                    if !self.reliable {
                        self.interval = config.t1;
                        self.timers.set(Timer::G, now + config.t1);
                    }
                    self.timers.set(Timer::H, now + config.timeout());
                }
                // RFC 6026 7.1: 2xx retransmissions from the TU pass through Accepted.
                (ServerState::Accepted, 200..=299) => {
                    outbox.transmit(self.id, response);
                    return Ok(());
                }
                _ => return Err(wrong_state),
            }
        } else {
            match (self.state, status) {
                (ServerState::Trying | ServerState::Proceeding, 100..=199) => {
                    self.state = ServerState::Proceeding;
                }
                (ServerState::Trying | ServerState::Proceeding, _) => {
                    if self.reliable {
                        self.terminate();
                    } else {
                        self.state = ServerState::Completed;
                        self.timers.set(Timer::J, now + config.timeout());
                    }
                }
                _ => return Err(wrong_state),
            }
        }
        outbox.transmit(self.id, response.clone());
        self.last_response = Some(response);
        Ok(())
    }

    fn build_trying(&self) -> TxMessage<M> {
        TxMessage {
            kind: TxKind::Response { status: 100 },
            branch: self.request.branch.clone(),
            sent_by: self.request.sent_by.clone(),
            cseq_method: self.request.cseq_method.clone(),
            cseq: self.request.cseq,
            call_id: self.request.call_id.clone(),
            from_tag: self.request.from_tag.clone(),
            to_tag: self.request.to_tag.clone(),
            request_uri: String::new(),
            top_via: self.request.top_via.clone(),
            payload: M::trying_for(&self.request),
        }
    }

    /// `timer` fired (the layer checked it was armed and disarmed it).
    pub(crate) fn handle_timer(
        &mut self,
        now: Instant,
        timer: Timer,
        config: &Config,
        outbox: &mut Outbox<M>,
    ) {
        match (timer, self.state) {
            (Timer::Trying100, ServerState::Proceeding) if self.last_response.is_none() => {
                let trying = self.build_trying();
                outbox.transmit(self.id, trying.clone());
                self.last_response = Some(trying);
            }
            (Timer::G, ServerState::Completed) => {
                self.resend_last_response(outbox);
                self.interval = (self.interval * 2).min(config.t2);
                self.timers.set(Timer::G, now + self.interval);
            }
            (Timer::H, ServerState::Completed) => {
                outbox.event(TxEvent::Timeout { id: self.id });
                self.terminate();
            }
            (Timer::I, ServerState::Confirmed)
            | (Timer::J, ServerState::Completed)
            | (Timer::L, ServerState::Accepted) => self.terminate(),
            _ => {}
        }
    }

    /// The transport failed; the TU is told and the transaction ends (RFC 3261 17.2.4).
    pub(crate) fn handle_transport_error(&mut self, outbox: &mut Outbox<M>) {
        outbox.event(TxEvent::TransportError { id: self.id });
        self.terminate();
    }
}
