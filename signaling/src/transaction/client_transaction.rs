//! The client transaction state machines (RFC 3261 17.1.1 INVITE with RFC 6026's Accepted
//! state, 17.1.2 non-INVITE).

use std::time::{Duration, Instant};

use super::config::Config;
use super::key::ClientKey;
use super::message::{TxKind, TxMessage, TxPayload};
use super::method::Method;
use super::outbox::{Outbox, TxEvent};
use super::timer::{TIMER_COUNT, Timer};
use super::timer_table::TimerTable;
use super::transaction_id::TransactionId;

/// The state of a client transaction (RFC 3261 Figures 5 and 6, RFC 6026 Figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE: request sent, nothing heard.
    Calling,
    /// Non-INVITE: request sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final (INVITE: non-2xx) response arrived; absorbing its retransmissions.
    Completed,
    /// INVITE (RFC 6026): a 2xx arrived; further 2xx go to the TU.
    Accepted,
    /// Done; the layer removes the transaction.
    Terminated,
}

/// One client transaction.
#[derive(Debug)]
pub(crate) struct ClientTransaction<M> {
    id: TransactionId,
    pub(crate) key: ClientKey,
    request: TxMessage<M>,
    /// The ACK sent for a non-2xx final response, re-sent on each retransmission of it.
    ack: Option<TxMessage<M>>,
    state: ClientState,
    reliable: bool,
    /// Current retransmission interval of timer A or E.
    interval: Duration,
    pub(crate) timers: TimerTable<Timer, TIMER_COUNT>,
}

impl<M: TxPayload> ClientTransaction<M> {
    /// Creates the transaction and sends the request.
    pub(crate) fn start(
        now: Instant,
        id: TransactionId,
        request: TxMessage<M>,
        reliable: bool,
        config: &Config,
        outbox: &mut Outbox<M>,
    ) -> Self {
        let invite = request.method() == Some(&Method::Invite);
        let mut timers = TimerTable::default();
        let (state, retransmit, timeout) = if invite {
            (ClientState::Calling, Timer::A, Timer::B)
        } else {
            (ClientState::Trying, Timer::E, Timer::F)
        };
        if !reliable {
            timers.set(retransmit, now + config.t1);
        }
        timers.set(timeout, now + config.timeout());
        outbox.transmit(id, request.clone());
        Self {
            id,
            key: ClientKey::of(&request),
            request,
            ack: None,
            state,
            reliable,
            interval: config.t1,
            timers,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> ClientState {
        self.state
    }

    fn is_invite(&self) -> bool {
        self.request.method() == Some(&Method::Invite)
    }

    fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.timers.stop_all();
    }

    /// Enters Completed, waiting `linger` for response retransmissions (none when reliable).
    fn complete(&mut self, now: Instant, timer: Timer, linger: Duration) {
        self.timers.stop_all();
        if self.reliable {
            self.terminate();
        } else {
            self.state = ClientState::Completed;
            self.timers.set(timer, now + linger);
        }
    }

    /// A response matched this transaction.
    pub(crate) fn handle_response(
        &mut self,
        now: Instant,
        response: &TxMessage<M>,
        config: &Config,
        outbox: &mut Outbox<M>,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        if !(100..=699).contains(&status) {
            tracing::debug!(status, "client transaction: invalid status dropped");
            return;
        }
        let to_tu = TxEvent::ResponseReceived {
            id: self.id,
            status,
            payload: response.payload.clone(),
        };
        if self.is_invite() {
            match (self.state, status) {
                (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                    self.state = ClientState::Proceeding;
                    // Timer B guards Calling only; the TU bounds Proceeding (CANCEL, timer C).
                    self.timers.stop(Timer::A);
                    self.timers.stop(Timer::B);
                    outbox.event(to_tu);
                }
                (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                    self.timers.stop_all();
                    self.state = ClientState::Accepted;
                    self.timers.set(Timer::M, now + config.timeout());
                    outbox.event(to_tu);
                }
                (ClientState::Calling | ClientState::Proceeding, _) => {
                    let ack = self.build_ack(response);
                    outbox.transmit(self.id, ack.clone());
                    self.ack = Some(ack);
                    outbox.event(to_tu);
                    self.complete(now, Timer::D, config.timer_d);
                }
                (ClientState::Completed, 300..=699) => {
                    if let Some(ack) = &self.ack {
                        outbox.transmit(self.id, ack.clone());
                    }
                }
                (ClientState::Accepted, 200..=299) => outbox.event(to_tu),
                _ => {}
            }
        } else {
            match (self.state, status) {
                (ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                    self.state = ClientState::Proceeding;
                    outbox.event(to_tu);
                }
                (ClientState::Trying | ClientState::Proceeding, _) => {
                    outbox.event(to_tu);
                    self.complete(now, Timer::K, config.t4);
                }
                _ => {}
            }
        }
    }

    fn build_ack(&self, response: &TxMessage<M>) -> TxMessage<M> {
        TxMessage {
            kind: TxKind::Request {
                method: Method::Ack,
            },
            branch: self.request.branch.clone(),
            sent_by: self.request.sent_by.clone(),
            cseq_method: Method::Ack,
            cseq: self.request.cseq,
            call_id: self.request.call_id.clone(),
            from_tag: self.request.from_tag.clone(),
            to_tag: response.to_tag.clone(),
            request_uri: self.request.request_uri.clone(),
            top_via: self.request.top_via.clone(),
            payload: M::ack_for_non2xx(&self.request, response),
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
            (Timer::A, ClientState::Calling) => {
                outbox.transmit(self.id, self.request.clone());
                self.interval *= 2;
                self.timers.set(Timer::A, now + self.interval);
            }
            (Timer::E, ClientState::Trying) => {
                outbox.transmit(self.id, self.request.clone());
                self.interval = (self.interval * 2).min(config.t2);
                self.timers.set(Timer::E, now + self.interval);
            }
            (Timer::E, ClientState::Proceeding) => {
                outbox.transmit(self.id, self.request.clone());
                self.interval = config.t2;
                self.timers.set(Timer::E, now + self.interval);
            }
            (Timer::B, ClientState::Calling)
            | (Timer::F, ClientState::Trying | ClientState::Proceeding) => {
                outbox.event(TxEvent::Timeout { id: self.id });
                self.terminate();
            }
            (Timer::D | Timer::K, ClientState::Completed) | (Timer::M, ClientState::Accepted) => {
                self.terminate();
            }
            _ => {}
        }
    }

    /// The transport failed; the TU is told and the transaction ends (RFC 3261 17.1.4).
    pub(crate) fn handle_transport_error(&mut self, outbox: &mut Outbox<M>) {
        outbox.event(TxEvent::TransportError { id: self.id });
        self.terminate();
    }
}
