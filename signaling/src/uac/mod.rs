//! The UAC core: outgoing calls (dial-out through a trunk, and the load generator's callers).
//! Sans-IO like the UAS in [`crate::ua`]: it takes messages with the peer they came from and
//! the time, and yields messages to send and events for the application.
//!
//! Run loop: [`Uac::dial`], [`Uac::hangup`], [`Uac::handle_message`] (for messages
//! [`Uac::owns`]), [`Uac::handle_timeout`] and [`Uac::handle_transport_error`]; after each,
//! drain [`Uac::poll_output`] (send them) and [`Uac::poll_event`], then sleep until
//! [`Uac::poll_timeout`].
//!
//! What a call does (RFC 3261 sections 8, 9, 12, 13, 22; RFC 3264):
//! - INVITE with our SDP offer ([`crate::sdp::make_offer`]); 100 stops retransmissions (the
//!   transaction layer); 18x with a To tag makes an early dialog, with SDP an early answer.
//! - 2xx: the SDP answer is processed, ACK sent in a new transaction built per 13.2.2.4 and
//!   re-sent for every retransmitted 2xx; an unusable answer is ACKed, then the call is ended
//!   with BYE and reported `Failed` (488). A 2xx from a second fork is ACKed and BYEd.
//! - 3xx-6xx: `Failed` (the transaction layer ACKs them). 401/407: exactly one retry with
//!   `Authorization`/`Proxy-Authorization` ([`crate::digest`], SHA-256 preferred over MD5,
//!   qop=auth), new CSeq, same Call-ID and From tag; a second challenge fails the call.
//! - [`Uac::hangup`] before the final response sends CANCEL once a provisional response has
//!   arrived (9.1), and the 487 fails the call; a 200 crossing the CANCEL is ACKed and BYEd.
//!   After answer it sends BYE. No final response 64*T1 after CANCEL gives up.
//! - Timer B (no response) and a ring timeout (no final response; CANCEL) fail the call 408.
//! - In-dialog requests from the far end: BYE (200, `Ended`), re-INVITE and UPDATE (answered
//!   with our SDP; `Renegotiated` when media changed), OPTIONS and INFO (200), CANCEL of a
//!   re-INVITE (200, already answered), others 501.
//! - RFC 3261 18.1.1: a request for a UDP target larger than 1300 bytes goes over TCP to the
//!   same address (Via TCP); if the driver reports that the TCP connect failed
//!   ([`Uac::handle_transport_error`]), it is sent again over UDP, and the call stays on UDP.
//!
//! Every per-message operation is a hash-map lookup (by Call-ID, by transaction id); timers
//! are a heap with lazy deletion. Nothing scans all calls.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::digest::{Algorithm, Challenge, Credentials};
use crate::message::{SipMessage, needs_stream_transport};
use crate::sdp::{
    Direction, LocalSession, LocalSource, Negotiated, OfferAnswerConfig, SessionDescription,
    VideoSource, answer_offer, make_offer, process_answer,
};
use crate::token::{Tokens, random_hex};
use crate::transaction::{
    AckKey, Config as TxConfig, RequestDisposition, TransactionId, TransactionLayer, TxEvent,
    Uas2xxEvent, Uas2xxRetransmitter,
};
use crate::ua::{Outgoing, SipPeer, tx_message};

mod call;
pub mod driver;
mod request;

use call::{Call, CallTimer, Phase};
use request::{RequestParts, cancel_for, name_addr};

/// Methods we accept in our calls' dialogs.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";

/// A peer the UAC can dial: besides what the UA reads from a peer, it can name the same remote
/// over TCP (RFC 3261 18.1.1).
pub trait DialPeer: SipPeer {
    /// The same remote address over TCP, from the same local address.
    fn over_tcp(&self) -> Self;
}

impl DialPeer for crate::transport::Peer {
    fn over_tcp(&self) -> Self {
        crate::transport::Peer {
            transport: crate::transport::Transport::Tcp,
            conn: None,
            ..*self
        }
    }
}

/// Digest credentials for a trunk that challenges us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// What our SDP offer is made of.
#[derive(Clone, Debug)]
pub struct MediaOffer {
    /// Our RTP address (the media leg's socket) for `c=`/`m=`.
    pub local_rtp: SocketAddr,
    /// Codecs, SRTP policy and suites, ptime, telephone-event.
    pub offer_answer: OfferAnswerConfig,
    /// The source the call's media leg sends as, announced as `a=ssrc` (None: not announced).
    pub source: Option<LocalSource>,
    /// Our video address: with `offer_answer.video`, the offer carries an m=video there
    /// (`LocalSession::video_rtp`). None: audio only.
    pub video_rtp: Option<SocketAddr>,
    /// The video streams we send, lowest simulcast layer first, announced with their RTX
    /// (`LocalSession::video_sources`); empty: none announced.
    pub video_sources: Vec<VideoSource>,
}

/// One outgoing call to place.
#[derive(Clone, Debug)]
pub struct DialRequest<P> {
    /// Where to send the INVITE: the trunk's address and transport (and our local address).
    pub target: P,
    /// The Request-URI (and To), e.g. `sip:+4930123@trunk.example`.
    pub request_uri: String,
    /// The user part of our From URI (its host is our local address).
    pub from_user: String,
    /// Our From display name.
    pub from_display: Option<String>,
    /// Credentials for a 401/407 challenge.
    pub credentials: Option<DialCredentials>,
    /// Our SDP offer.
    pub media: MediaOffer,
    /// Extra headers for the INVITE (name, value).
    pub extra_headers: Vec<(String, String)>,
}

/// Settings of the UAC.
#[derive(Clone, Debug)]
pub struct UacConfig {
    /// User-Agent header value.
    pub user_agent: String,
    /// Without a final response this long after dialing, the call is cancelled (RFC 3261
    /// timer C's role for a UA) and fails 408.
    pub ring_timeout: Duration,
    /// Transaction timers.
    pub transaction: TxConfig,
}

impl Default for UacConfig {
    fn default() -> Self {
        UacConfig {
            user_agent: format!("chorus/{}", env!("CARGO_PKG_VERSION")),
            ring_timeout: Duration::from_secs(180),
            transaction: TxConfig::default(),
        }
    }
}

/// Names one call of a [`Uac`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

impl std::fmt::Display for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call#{}", self.0)
    }
}

/// What happened to a call. Every call ends with exactly one `Failed` (never answered) or
/// `Ended` (after `Answered`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// 100 Trying: the far end has the INVITE.
    Trying,
    /// A provisional response without SDP (180 Ringing, 183...).
    Ringing {
        /// Its status.
        status: u16,
    },
    /// A provisional response with an SDP answer: early media.
    Early {
        /// What the early answer settled.
        negotiated: Box<Negotiated>,
    },
    /// 2xx with a usable answer, ACKed: the call is up.
    Answered {
        /// What the answer settled: codec, remote address, SRTP keys.
        negotiated: Box<Negotiated>,
    },
    /// The far end changed the media with a re-INVITE or UPDATE.
    Renegotiated {
        /// The new state.
        negotiated: Box<Negotiated>,
    },
    /// The call was never established.
    Failed {
        /// The final status (408 for timeouts, 503 for transport failure, 487 when we
        /// cancelled, 488 for an unusable SDP answer).
        status: u16,
        /// Why, for people.
        reason: String,
    },
    /// The established call ended.
    Ended {
        /// The far end sent BYE.
        by_remote: bool,
        /// Why, for people.
        reason: String,
    },
}

/// An event of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UacEvent {
    /// The call.
    pub call: CallHandle,
    /// What happened.
    pub kind: CallEvent,
}

/// A message to send.
#[derive(Clone, Debug)]
pub struct UacOutput<P> {
    /// Where.
    pub peer: P,
    /// What.
    pub message: SipMessage,
    /// The client transaction it belongs to: if it goes over TCP and the connect fails, give
    /// this to [`Uac::handle_transport_error`].
    pub transaction: Option<TransactionId>,
}

/// Misuse of the UAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UacError {
    /// No live call has this handle.
    #[error("no call {0}")]
    UnknownCall(CallHandle),
    /// The offer could not be built (no codec configured, no SRTP key).
    #[error("cannot build the SDP offer: {0}")]
    Offer(#[from] crate::sdp::SdpError),
    /// The dial request does not make a valid INVITE (bad URI, header or name).
    #[error("the dial request does not make a valid INVITE")]
    InvalidRequest,
    /// The transaction layer is full.
    #[error("too many transactions in progress")]
    Overloaded,
}

/// What a client transaction is to its call.
#[derive(Debug)]
enum Purpose {
    Invite,
    Cancel,
    Bye,
}

#[derive(Debug)]
struct TxRole {
    call: CallHandle,
    purpose: Purpose,
    /// For a request sent over TCP by RFC 3261 18.1.1: the same request for UDP (own branch).
    fallback: Option<SipMessage>,
}

/// The UAC core.
pub struct Uac<P: DialPeer> {
    cfg: UacConfig,
    txl: TransactionLayer<Outgoing<P>>,
    retx: Uas2xxRetransmitter<Outgoing<P>>,
    calls: HashMap<CallHandle, Call<P>>,
    by_call_id: HashMap<String, CallHandle>,
    by_tx: HashMap<TransactionId, TxRole>,
    /// Call timers; an entry is current only while the call's `timer` holds its instant.
    timers: BinaryHeap<Reverse<(Instant, CallHandle)>>,
    next_call: u64,
    /// Calls not in `Phase::Done`.
    live: usize,
    tokens: Tokens,
    out: VecDeque<UacOutput<P>>,
    events: VecDeque<UacEvent>,
}

impl<P: DialPeer> Uac<P> {
    /// A UAC with no calls.
    pub fn new(cfg: UacConfig) -> Self {
        let t = cfg.transaction.clone();
        Uac {
            retx: Uas2xxRetransmitter::new(t.t1, t.t2),
            txl: TransactionLayer::new(t),
            cfg,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            by_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            next_call: 1,
            live: 0,
            tokens: Tokens::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Calls known (in progress, up, or lingering after their end).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls not yet failed or ended.
    pub fn live_calls(&self) -> usize {
        self.live
    }

    /// Whether `msg` belongs to one of our calls (its Call-ID is ours): route it here, not to
    /// the UAS. O(1).
    pub fn owns(&self, msg: &SipMessage) -> bool {
        msg.call_id()
            .is_some_and(|id| self.by_call_id.contains_key(id))
    }

    /// The Call-ID of a call.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(&call).map(|c| c.call_id.as_str())
    }

    /// Random-looking token for tags, branches and Call-IDs (unique per UAC; not secret).
    fn token(&mut self) -> String {
        self.tokens.next_hex()
    }

    fn event(&mut self, call: CallHandle, kind: CallEvent) {
        self.events.push_back(UacEvent { call, kind });
    }

    fn set_timer(&mut self, handle: CallHandle, at: Instant, what: CallTimer) {
        if let Some(c) = self.calls.get_mut(&handle) {
            c.timer = Some((at, what));
            self.timers.push(Reverse((at, handle)));
        }
    }

    // ---- application input -----------------------------------------------------------------

    /// Places a call: sends the INVITE with our offer. Progress arrives as events.
    pub fn dial(&mut self, now: Instant, req: DialRequest<P>) -> Result<CallHandle, UacError> {
        let handle = CallHandle(self.next_call);
        self.next_call += 1;
        let local_tag = self.token();
        let call_id = format!("{}@chorus", self.token());
        let mut session = LocalSession::new(self.tokens.next_u64(), req.media.local_rtp.ip());
        session.source = req.media.source.clone();
        session.video_rtp = req.media.video_rtp;
        session.video_sources = req.media.video_sources.clone();
        let pending = make_offer(
            &mut session,
            req.media.local_rtp,
            &req.media.offer_answer,
            Direction::SendRecv,
        )?;
        let local = req.target.local();
        let from_uri = format!("sip:{}@{}", req.from_user, local);
        let contact = format!(
            "<sip:{}@{};transport={}>",
            req.from_user,
            local,
            req.target.transport().to_ascii_lowercase()
        );
        let call = Call {
            invite_peer: req.target.clone(),
            peer: req.target,
            phase: Phase::Calling,
            call_id: call_id.clone(),
            from: name_addr(req.from_display.as_deref(), &from_uri, Some(&local_tag)),
            local_tag,
            remote_tag: None,
            to_uri: req.request_uri.clone(),
            remote_target: String::new(),
            request_uri: req.request_uri,
            route_set: Vec::new(),
            cseq: 1,
            contact,
            credentials: req.credentials,
            extra_headers: req.extra_headers,
            invite: None,
            invite_tx: None,
            ack: None,
            auth_retried: false,
            cancel: None,
            cancel_sent: false,
            udp_only: false,
            session,
            offer_answer: req.media.offer_answer,
            local_rtp: req.media.local_rtp,
            pending,
            early: None,
            reoffer: None,
            timer: None,
            trying_reported: false,
        };
        self.calls.insert(handle, call);
        self.by_call_id.insert(call_id, handle);
        self.live += 1;
        if let Err(e) = self.send_invite(now, handle, None) {
            self.forget(handle);
            return Err(e);
        }
        self.set_timer(handle, now + self.cfg.ring_timeout, CallTimer::Ring);
        self.drain(now);
        Ok(handle)
    }

    /// Hangs up: CANCEL before the answer (once a provisional response came, RFC 3261 9.1),
    /// BYE after it. A call already over is left alone.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) -> Result<(), UacError> {
        let c = self.calls.get(&call).ok_or(UacError::UnknownCall(call))?;
        match c.phase {
            Phase::Calling | Phase::Proceeding => {
                self.cancel(now, call, 487, "cancelled by us".to_string())
            }
            Phase::Confirmed => {
                self.send_bye(now, call, "SIP;cause=200;text=\"hung up\"");
                self.finish(
                    now,
                    call,
                    CallEvent::Ended {
                        by_remote: false,
                        reason: "hung up by us".into(),
                    },
                );
            }
            Phase::Done => {}
        }
        self.drain(now);
        Ok(())
    }

    /// Cancels an unanswered call; `Failed` will carry `status` and `reason`.
    fn cancel(&mut self, now: Instant, handle: CallHandle, status: u16, reason: String) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.cancel.is_none() {
            c.cancel = Some((status, reason));
        }
        if c.phase == Phase::Proceeding && !c.cancel_sent {
            self.send_cancel(now, handle);
        }
        // In Calling the CANCEL waits for a provisional response; timer B still guards.
    }

    fn send_cancel(&mut self, now: Instant, handle: CallHandle) {
        let ua = self.cfg.user_agent.clone();
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        c.cancel_sent = true;
        let Some(cancel) = c.invite.as_ref().and_then(|i| cancel_for(i, &ua)) else {
            return;
        };
        let peer = c.invite_peer.clone();
        let reliable = peer.reliable();
        if let Some(tm) = tx_message(cancel, peer) {
            match self.txl.send_request(now, tm, reliable) {
                Ok(id) => {
                    self.by_tx.insert(
                        id,
                        TxRole {
                            call: handle,
                            purpose: Purpose::Cancel,
                            fallback: None,
                        },
                    );
                }
                Err(e) => tracing::debug!(error = %e, "CANCEL not sent"),
            }
        }
        let guard = now + self.cfg.transaction.timeout();
        self.set_timer(handle, guard, CallTimer::CancelGuard);
    }

    // ---- sending requests ------------------------------------------------------------------

    /// Sends a request of `handle` in a new client transaction, over TCP when RFC 3261 18.1.1
    /// asks for it. `make(call, transport, branch)` writes it.
    fn send_request(
        &mut self,
        now: Instant,
        handle: CallHandle,
        purpose: Purpose,
        make: impl Fn(&Call<P>, &str, &str) -> Option<SipMessage>,
    ) -> Result<(TransactionId, SipMessage, P), UacError> {
        let (branch, spare) = (
            format!("z9hG4bK{}", self.token()),
            format!("z9hG4bK{}", self.token()),
        );
        let c = self
            .calls
            .get_mut(&handle)
            .ok_or(UacError::UnknownCall(handle))?;
        let first = make(c, c.peer.transport(), &branch).ok_or(UacError::InvalidRequest)?;
        let upgrade = c.peer.transport() == "UDP"
            && !c.udp_only
            && needs_stream_transport(first.to_bytes().len());
        let (peer, msg, fallback) = if upgrade {
            let tcp = make(c, "TCP", &branch).ok_or(UacError::InvalidRequest)?;
            (c.peer.over_tcp(), tcp, make(c, "UDP", &spare))
        } else {
            (c.peer.clone(), first, None)
        };
        let reliable = peer.reliable();
        let tm = tx_message(msg.clone(), peer.clone()).ok_or(UacError::InvalidRequest)?;
        let id = self
            .txl
            .send_request(now, tm, reliable)
            .map_err(|_| UacError::Overloaded)?;
        self.by_tx.insert(
            id,
            TxRole {
                call: handle,
                purpose,
                fallback,
            },
        );
        Ok((id, msg, peer))
    }

    /// The INVITE (again, with `authorization` after a challenge).
    fn send_invite(
        &mut self,
        now: Instant,
        handle: CallHandle,
        authorization: Option<(&str, String)>,
    ) -> Result<(), UacError> {
        let ua = self.cfg.user_agent.clone();
        let (id, msg, peer) = self.send_request(now, handle, Purpose::Invite, |c, t, b| {
            let sdp = c.pending.sdp().to_string();
            let mut headers: Vec<(&str, &str)> = vec![("Contact", &c.contact), ("Allow", ALLOW)];
            if let Some((name, value)) = &authorization {
                headers.push((name, value));
            }
            headers.extend(
                c.extra_headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str())),
            );
            RequestParts {
                method: "INVITE",
                uri: &c.request_uri,
                transport: t,
                sent_by: c.peer.local(),
                branch: b,
                routes: &[],
                from: &c.from,
                to: &c.to(),
                call_id: &c.call_id,
                cseq: c.cseq,
                cseq_method: "INVITE",
                headers: &headers,
                body: Some(("application/sdp", &sdp)),
                user_agent: &ua,
            }
            .build()
        })?;
        if let Some(c) = self.calls.get_mut(&handle) {
            c.invite = Some(msg);
            c.invite_peer = peer;
            c.invite_tx = Some(id);
        }
        Ok(())
    }

    /// BYE in the call's dialog (RFC 3261 15.1.1).
    fn send_bye(&mut self, now: Instant, handle: CallHandle, reason: &str) {
        let ua = self.cfg.user_agent.clone();
        if let Some(c) = self.calls.get_mut(&handle) {
            c.cseq += 1;
        }
        let sent = self.send_request(now, handle, Purpose::Bye, |c, t, b| {
            RequestParts {
                method: "BYE",
                uri: c.target(),
                transport: t,
                sent_by: c.peer.local(),
                branch: b,
                routes: &c.route_set,
                from: &c.from,
                to: &c.to(),
                call_id: &c.call_id,
                cseq: c.cseq,
                cseq_method: "BYE",
                headers: &[("Reason", reason)],
                body: None,
                user_agent: &ua,
            }
            .build()
        });
        if let Err(e) = sent {
            tracing::debug!(error = %e, "BYE not sent");
        }
    }

    /// The ACK for a 2xx (RFC 3261 13.2.2.4): a request of its own, CSeq number of the INVITE,
    /// the INVITE's credentials, the route set; sent straight to the peer (no transaction).
    fn ack_for(c: &Call<P>, branch: &str, user_agent: &str) -> Option<SipMessage> {
        let invite = c.invite.as_ref()?;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for name in ["Authorization", "Proxy-Authorization"] {
            if let Some(v) = invite.headers().get(name) {
                headers.push((name, v));
            }
        }
        RequestParts {
            method: "ACK",
            uri: c.target(),
            transport: c.peer.transport(),
            sent_by: c.peer.local(),
            branch,
            routes: &c.route_set,
            from: &c.from,
            to: &c.to(),
            call_id: &c.call_id,
            cseq: invite.cseq()?.seq,
            cseq_method: "ACK",
            headers: &headers,
            body: None,
            user_agent,
        }
        .build()
    }

    /// Ends a call: the event, then the call lingers for retransmissions.
    fn finish(&mut self, now: Instant, handle: CallHandle, kind: CallEvent) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.phase == Phase::Done {
            return;
        }
        c.phase = Phase::Done;
        self.live -= 1;
        tracing::debug!(%handle, ?kind, "call over");
        self.event(handle, kind);
        let linger = now + self.cfg.transaction.timeout();
        self.set_timer(handle, linger, CallTimer::Linger);
    }

    fn forget(&mut self, handle: CallHandle) {
        if let Some(c) = self.calls.remove(&handle) {
            self.by_call_id.remove(&c.call_id);
            if c.phase != Phase::Done {
                self.live -= 1;
            }
        }
    }

    // ---- network input ---------------------------------------------------------------------

    /// A message from `peer` that [`owns`](Self::owns) said is ours.
    pub fn handle_message(&mut self, now: Instant, peer: P, msg: SipMessage) {
        let Some(&handle) = msg.call_id().and_then(|id| self.by_call_id.get(id)) else {
            return;
        };
        let is_request = msg.is_request();
        let Some(tm) = tx_message(msg.clone(), peer.clone()) else {
            return;
        };
        if is_request {
            match self.txl.handle_request(now, &tm, peer.reliable()) {
                Ok(RequestDisposition::New { id }) => self.on_request(now, handle, id, peer, &msg),
                Ok(RequestDisposition::Cancel { id, invite }) => {
                    // Our answers to re-INVITEs are immediate: the CANCEL finds it answered.
                    let (status, reason) = match invite {
                        Some(_) => (200, "OK"),
                        None => (481, "Call/Transaction Does Not Exist"),
                    };
                    self.respond(now, id, peer, &msg, status, reason, None);
                }
                Ok(RequestDisposition::Ack2xx) => self.on_ack(now, handle, &msg),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "request not taken"),
            }
        } else if self.txl.handle_response(now, &tm).is_none()
            && msg.status().is_some_and(|s| (200..300).contains(&s))
            && msg
                .cseq()
                .is_some_and(|c| c.method == crate::message::Method::Invite)
        {
            // A 2xx after the INVITE transaction ended (RFC 6026 timer M passed, or over TCP).
            self.on_invite_2xx(now, handle, &msg);
        }
        self.drain(now);
    }

    /// The driver could not deliver transaction `id`'s request (a TCP connect failed).
    pub fn handle_transport_error(&mut self, now: Instant, id: TransactionId) {
        self.txl.handle_transport_error(id);
        self.drain(now);
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        self.retx.handle_timeout(now);
        while let Some(&Reverse((at, handle))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.calls.get_mut(&handle) else {
                continue;
            };
            let Some((_, what)) = c.timer.filter(|(when, _)| *when == at) else {
                continue;
            };
            c.timer = None;
            let early = c.is_early();
            match what {
                CallTimer::Ring if early => {
                    self.cancel(now, handle, 408, "no answer within the ring timeout".into())
                }
                CallTimer::Ring => {}
                CallTimer::CancelGuard => {
                    let (tx, cancel) = (c.invite_tx.take(), c.cancel.clone());
                    if let Some(tx) = tx {
                        // Frees the INVITE transaction stuck in Proceeding.
                        self.by_tx.remove(&tx);
                        self.txl.handle_transport_error(tx);
                    }
                    let (status, reason) = cancel.unwrap_or((487, String::new()));
                    self.finish(
                        now,
                        handle,
                        CallEvent::Failed {
                            status,
                            reason: format!("{reason} (no final response after CANCEL)"),
                        },
                    );
                }
                CallTimer::Linger => self.forget(handle),
            }
        }
        self.drain(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, handle))) = self.timers.peek() {
            let current = self
                .calls
                .get(&handle)
                .is_some_and(|c| c.timer.is_some_and(|(t, _)| t == at));
            if current {
                break;
            }
            self.timers.pop();
        }
        [
            self.txl.poll_timeout().map(|(t, _)| t),
            self.retx.poll_timeout().map(|(t, _)| t),
            self.timers.peek().map(|Reverse((t, _))| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next message to send.
    pub fn poll_output(&mut self) -> Option<UacOutput<P>> {
        self.out.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<UacEvent> {
        self.events.pop_front()
    }

    /// Moves the transaction layer's output to ours and acts on its events, until both rest.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(t) = self.txl.poll_transmit() {
                busy = true;
                self.out.push_back(UacOutput {
                    peer: t.message.payload.peer,
                    message: t.message.payload.msg,
                    transaction: Some(t.id),
                });
            }
            while let Some(t) = self.retx.poll_transmit() {
                busy = true;
                self.out.push_back(UacOutput {
                    peer: t.response.peer,
                    message: t.response.msg,
                    transaction: None,
                });
            }
            while let Some(Uas2xxEvent::AckTimeout { key }) = self.retx.poll_event() {
                busy = true;
                if let Some(&handle) = self.by_call_id.get(&key.call_id) {
                    self.send_bye(now, handle, "SIP;cause=408;text=\"no ACK\"");
                    self.finish(
                        now,
                        handle,
                        CallEvent::Ended {
                            by_remote: false,
                            reason: "no ACK for our 200 to the re-INVITE".into(),
                        },
                    );
                }
            }
            while let Some(ev) = self.txl.poll_event() {
                busy = true;
                self.on_tx_event(now, ev);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_tx_event(&mut self, now: Instant, ev: TxEvent<Outgoing<P>>) {
        match ev {
            TxEvent::ResponseReceived {
                id,
                status,
                payload,
            } => {
                let Some(role) = self.by_tx.get(&id) else {
                    return;
                };
                let (handle, is_invite) = (role.call, matches!(role.purpose, Purpose::Invite));
                if is_invite {
                    self.on_invite_response(now, handle, id, status, &payload.msg);
                }
            }
            TxEvent::Timeout { id } => {
                let Some(role) = self.by_tx.remove(&id) else {
                    return;
                };
                if let Purpose::Invite = role.purpose
                    && self.calls.get(&role.call).is_some_and(|c| c.is_early())
                {
                    self.finish(
                        now,
                        role.call,
                        CallEvent::Failed {
                            status: 408,
                            reason: "no response to the INVITE (timer B)".into(),
                        },
                    );
                }
            }
            TxEvent::TransportError { id } => {
                let Some(role) = self.by_tx.remove(&id) else {
                    return;
                };
                self.on_transport_error(now, role);
            }
            TxEvent::Terminated { id } => {
                self.by_tx.remove(&id);
            }
        }
    }

    /// A request could not be delivered: over UDP again if it had been moved to TCP, else the
    /// call fails (RFC 3261 8.1.3.1: as a 503).
    fn on_transport_error(&mut self, now: Instant, role: TxRole) {
        let handle = role.call;
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if let Some(udp) = role.fallback {
            tracing::info!(%handle, "TCP connect failed: sending the request over UDP");
            c.udp_only = true;
            let peer = c.peer.clone();
            let is_invite = matches!(role.purpose, Purpose::Invite);
            let Some(tm) = tx_message(udp.clone(), peer.clone()) else {
                return;
            };
            match self.txl.send_request(now, tm, false) {
                Ok(id) => {
                    if is_invite {
                        c.invite = Some(udp);
                        c.invite_peer = peer;
                        c.invite_tx = Some(id);
                    }
                    self.by_tx.insert(
                        id,
                        TxRole {
                            call: handle,
                            purpose: role.purpose,
                            fallback: None,
                        },
                    );
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "UDP fallback not sent"),
            }
        }
        if matches!(role.purpose, Purpose::Invite) && c.is_early() {
            self.finish(
                now,
                handle,
                CallEvent::Failed {
                    status: 503,
                    reason: "transport error: the INVITE could not be delivered".into(),
                },
            );
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        handle: CallHandle,
        tx: TransactionId,
        status: u16,
        msg: &SipMessage,
    ) {
        // Only the current INVITE counts (not one replaced by a digest retry).
        if self.calls.get(&handle).and_then(|c| c.invite_tx) != Some(tx) {
            return;
        }
        match status {
            100 => {
                if let Some(c) = self.calls.get_mut(&handle)
                    && !c.trying_reported
                {
                    c.trying_reported = true;
                    self.event(handle, CallEvent::Trying);
                }
                self.on_provisional(now, handle);
            }
            101..=199 => self.on_18x(now, handle, status, msg),
            200..=299 => self.on_invite_2xx(now, handle, msg),
            401 | 407 => self.on_challenge(now, handle, status, msg),
            _ => self.on_failure(now, handle, status, msg),
        }
    }

    /// Any provisional response: the call is Proceeding, and a pending CANCEL may go.
    fn on_provisional(&mut self, now: Instant, handle: CallHandle) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if c.phase == Phase::Calling {
            c.phase = Phase::Proceeding;
        }
        if c.phase == Phase::Proceeding && c.cancel.is_some() && !c.cancel_sent {
            self.send_cancel(now, handle);
        }
    }

    fn on_18x(&mut self, now: Instant, handle: CallHandle, status: u16, msg: &SipMessage) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if !c.is_early() {
            return;
        }
        // An early dialog (RFC 3261 12.1.2); the first fork to answer keeps it.
        if let Some(tag) = msg.to().and_then(|t| t.tag().map(str::to_string))
            && c.remote_tag.is_none()
        {
            c.remote_tag = Some(tag);
            if let Some(target) = msg.contact_uri() {
                c.remote_target = target.to_string();
            }
        }
        let early = if msg.body().is_empty() {
            None
        } else {
            SessionDescription::parse(msg.body()).ok().and_then(|sdp| {
                process_answer(&c.pending, &sdp, &mut c.session, &c.offer_answer).ok()
            })
        };
        let kind = match early {
            Some(neg) => {
                c.early = Some(neg.clone());
                CallEvent::Early {
                    negotiated: Box::new(neg),
                }
            }
            None => CallEvent::Ringing { status },
        };
        self.event(handle, kind);
        self.on_provisional(now, handle);
    }

    fn on_invite_2xx(&mut self, now: Instant, handle: CallHandle, msg: &SipMessage) {
        let branch = format!("z9hG4bK{}", self.token());
        let to_tag = msg
            .to()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if !c.is_early() {
            if c.ack.is_some() && c.remote_tag.as_deref() == Some(to_tag.as_str()) {
                // A retransmitted 2xx: our ACK was lost (RFC 3261 13.2.2.4).
                let (peer, ack) = (c.peer.clone(), c.ack.clone());
                if let Some(ack) = ack {
                    self.out.push_back(UacOutput {
                        peer,
                        message: ack,
                        transaction: None,
                    });
                }
            } else {
                self.ack_and_bye_fork(now, handle, msg);
            }
            return;
        }
        // The first 2xx establishes the dialog, whatever early dialog came before.
        c.remote_tag = Some(to_tag);
        if let Some(target) = msg.contact_uri() {
            c.remote_target = target.to_string();
        }
        c.route_set = route_set(msg);
        c.phase = Phase::Confirmed;
        c.timer = None;
        if let Some(ack) = Self::ack_for(c, &branch, &self.cfg.user_agent) {
            c.ack = Some(ack.clone());
            self.out.push_back(UacOutput {
                peer: c.peer.clone(),
                message: ack,
                transaction: None,
            });
        }
        if let Some((_, reason)) = c.cancel.clone() {
            // The 200 crossed our CANCEL: the call is up, so end it with BYE.
            self.send_bye(now, handle, "SIP;cause=487;text=\"cancelled\"");
            return self.finish(
                now,
                handle,
                CallEvent::Failed {
                    status: 487,
                    reason: format!("{reason}; the 200 crossed the CANCEL, ended with BYE"),
                },
            );
        }
        let answer = if msg.body().is_empty() {
            c.early
                .clone()
                .ok_or_else(|| "200 OK without an SDP answer".to_string())
        } else {
            SessionDescription::parse(msg.body())
                .map_err(|e| format!("malformed SDP answer: {e}"))
                .and_then(|sdp| {
                    process_answer(&c.pending, &sdp, &mut c.session, &c.offer_answer)
                        .map_err(|e| format!("unusable SDP answer: {e}"))
                })
        };
        match answer {
            Ok(neg) => self.event(
                handle,
                CallEvent::Answered {
                    negotiated: Box::new(neg),
                },
            ),
            Err(reason) => {
                tracing::info!(%handle, %reason, "answered with unusable SDP: ending the call");
                self.send_bye(now, handle, "SIP;cause=488;text=\"unusable SDP answer\"");
                self.finish(
                    now,
                    handle,
                    CallEvent::Failed {
                        status: 488,
                        reason,
                    },
                );
            }
        }
    }

    /// A 2xx from another fork (another To tag) than the call's dialog: ACK it and end that
    /// dialog with BYE (RFC 3261 13.2.2.4).
    fn ack_and_bye_fork(&mut self, now: Instant, handle: CallHandle, msg: &SipMessage) {
        let ua = self.cfg.user_agent.clone();
        let (b1, b2) = (
            format!("z9hG4bK{}", self.token()),
            format!("z9hG4bK{}", self.token()),
        );
        let Some(c) = self.calls.get(&handle) else {
            return;
        };
        let (Some(to), Some(cseq)) = (msg.headers().get("To"), msg.cseq()) else {
            return;
        };
        let target = msg
            .contact_uri()
            .map(|u| u.to_string())
            .unwrap_or_else(|| c.request_uri.clone());
        let routes = route_set(msg);
        let parts = |method: &'static str, branch: &str, seq: u32| {
            RequestParts {
                method,
                uri: &target,
                transport: c.peer.transport(),
                sent_by: c.peer.local(),
                branch,
                routes: &routes,
                from: &c.from,
                to,
                call_id: &c.call_id,
                cseq: seq,
                cseq_method: method,
                headers: &[],
                body: None,
                user_agent: &ua,
            }
            .build()
        };
        let ack = parts("ACK", &b1, cseq.seq);
        let bye = parts("BYE", &b2, cseq.seq + 1);
        let peer = c.peer.clone();
        if let Some(ack) = ack {
            self.out.push_back(UacOutput {
                peer: peer.clone(),
                message: ack,
                transaction: None,
            });
        }
        if let Some(tm) = bye.and_then(|b| tx_message(b, peer.clone()))
            && let Err(e) = self.txl.send_request(now, tm, peer.reliable())
        {
            tracing::debug!(error = %e, "BYE to a second fork not sent");
        }
    }

    fn on_challenge(&mut self, now: Instant, handle: CallHandle, status: u16, msg: &SipMessage) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        if !c.is_early() {
            return;
        }
        let header = if status == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let challenge = msg
            .headers()
            .all(header)
            .filter_map(|v| Challenge::parse(v).ok())
            .max_by_key(|ch| match ch.algorithm {
                Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
                Algorithm::Md5 | Algorithm::Md5Sess => 1,
            });
        let (Some(creds), Some(challenge), false, None) =
            (&c.credentials, challenge, c.auth_retried, &c.cancel)
        else {
            let reason = if c.auth_retried {
                "authentication rejected (challenged again after our credentials)".to_string()
            } else if c.credentials.is_none() {
                "authentication required and no credentials configured".to_string()
            } else {
                msg.reason().unwrap_or("Unauthorized").to_string()
            };
            return self.finish(now, handle, CallEvent::Failed { status, reason });
        };
        c.auth_retried = true;
        c.cseq += 1;
        // The cnonce protects against chosen-plaintext attacks (RFC 7616 5.12): random.
        let cnonce = random_hex::<8>();
        let body = c.pending.sdp().to_string();
        let answer = Credentials::answer(
            &challenge,
            &creds.username,
            &creds.password,
            "INVITE",
            &c.request_uri,
            body.as_bytes(),
            &cnonce,
            1,
        );
        let name = if status == 407 {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        // The early dialog of the challenge is gone: the retry starts afresh.
        c.remote_tag = None;
        c.phase = Phase::Calling;
        if let Err(e) = self.send_invite(now, handle, Some((name, answer.to_string()))) {
            self.finish(
                now,
                handle,
                CallEvent::Failed {
                    status: 503,
                    reason: format!("could not send the authenticated INVITE: {e}"),
                },
            );
        }
    }

    fn on_failure(&mut self, now: Instant, handle: CallHandle, status: u16, msg: &SipMessage) {
        let Some(c) = self.calls.get(&handle) else {
            return;
        };
        if !c.is_early() {
            return;
        }
        let (status, reason) = match (&c.cancel, status) {
            (Some((s, r)), 487) => (*s, r.clone()),
            _ => (status, msg.reason().unwrap_or("").to_string()),
        };
        self.finish(now, handle, CallEvent::Failed { status, reason });
    }

    // ---- requests from the far end ---------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        id: TransactionId,
        peer: P,
        req: &SipMessage,
        status: u16,
        reason: &str,
        extra: Option<SipMessage>,
    ) {
        let resp = extra.unwrap_or_else(|| {
            SipMessage::response_to(req, status, reason).with_header("Server", &self.cfg.user_agent)
        });
        if let Some(tm) = tx_message(resp, peer)
            && let Err(e) = self.txl.respond(now, id, tm)
        {
            tracing::debug!(error = %e, "response not sent");
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        handle: CallHandle,
        id: TransactionId,
        peer: P,
        msg: &SipMessage,
    ) {
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let Some(c) = self.calls.get(&handle) else {
            return;
        };
        let to_tag = msg.to().and_then(|t| t.tag().map(str::to_string));
        let from_tag = msg.from().and_then(|t| t.tag().map(str::to_string));
        let ours = to_tag.as_deref() == Some(c.local_tag.as_str())
            && (c.remote_tag.is_none() || from_tag == c.remote_tag);
        let up = c.phase == Phase::Confirmed;
        let done = c.phase == Phase::Done;
        match method.as_str() {
            "BYE" if ours && up => {
                self.respond(now, id, peer, msg, 200, "OK", None);
                let reason = msg.headers().get("Reason").map_or_else(
                    || "BYE from the far end".to_string(),
                    |r| format!("BYE: {r}"),
                );
                self.finish(
                    now,
                    handle,
                    CallEvent::Ended {
                        by_remote: true,
                        reason,
                    },
                );
            }
            // Our own BYE crossed theirs: the dialog is gone either way.
            "BYE" if ours && done => self.respond(now, id, peer, msg, 200, "OK", None),
            "OPTIONS" | "INFO" if ours && up => {
                let resp = SipMessage::response_to(msg, 200, "OK")
                    .with_header("Server", &self.cfg.user_agent)
                    .with_header("Allow", ALLOW);
                self.respond(now, id, peer, msg, 200, "OK", Some(resp));
            }
            "INVITE" | "UPDATE" if ours && up => {
                self.on_refresh(now, handle, id, peer, msg, &method)
            }
            _ if !ours || !up => {
                let reason = "Call/Transaction Does Not Exist";
                self.respond(now, id, peer, msg, 481, reason, None)
            }
            _ => self.respond(now, id, peer, msg, 501, "Not Implemented", None),
        }
    }

    /// A re-INVITE or UPDATE (session refresh, hold, new address): answer an offer with our
    /// SDP; a re-INVITE without one gets our offer, answered in the ACK.
    fn on_refresh(
        &mut self,
        now: Instant,
        handle: CallHandle,
        id: TransactionId,
        peer: P,
        msg: &SipMessage,
        method: &str,
    ) {
        let ua = self.cfg.user_agent.clone();
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        let outcome = if msg.body().is_empty() {
            if method == "UPDATE" {
                Ok(None)
            } else {
                make_offer(
                    &mut c.session,
                    c.local_rtp,
                    &c.offer_answer,
                    Direction::SendRecv,
                )
                .map(|p| {
                    let sdp = p.sdp().to_string();
                    c.reoffer = Some(p);
                    Some((sdp, None))
                })
            }
        } else {
            match SessionDescription::parse(msg.body()) {
                Err(_) => {
                    return self.respond(
                        now,
                        id,
                        peer,
                        msg,
                        400,
                        "Bad Request - malformed SDP",
                        None,
                    );
                }
                Ok(offer) => answer_offer(&offer, &mut c.session, c.local_rtp, &c.offer_answer)
                    .map(|(answer, neg)| Some((answer.to_string(), Some(neg)))),
            }
        };
        let (body, negotiated) = match outcome {
            Ok(Some((sdp, neg))) => (Some(sdp), neg),
            Ok(None) => (None, None),
            Err(e) => {
                // A refused offer leaves the call as it was (RFC 3261 14.2).
                return self.respond(
                    now,
                    id,
                    peer,
                    msg,
                    e.sip_status(),
                    "Not Acceptable Here",
                    None,
                );
            }
        };
        let mut resp = SipMessage::response_to(msg, 200, "OK")
            .with_header("Server", &ua)
            .with_header("Contact", &c.contact)
            .with_header("Allow", ALLOW);
        if let Some(sdp) = body {
            resp = resp.with_body("application/sdp", sdp);
        }
        if method == "INVITE" && !peer.reliable() {
            self.retx.start(
                now,
                AckKey {
                    call_id: c.call_id.clone(),
                    cseq: msg.cseq().map_or(0, |s| s.seq),
                },
                Outgoing {
                    peer: peer.clone(),
                    msg: resp.clone(),
                },
            );
        }
        self.respond(now, id, peer, msg, 200, "OK", Some(resp));
        if let Some(neg) = negotiated {
            self.event(
                handle,
                CallEvent::Renegotiated {
                    negotiated: Box::new(neg),
                },
            );
        }
    }

    fn on_ack(&mut self, _now: Instant, handle: CallHandle, msg: &SipMessage) {
        let Some(c) = self.calls.get_mut(&handle) else {
            return;
        };
        self.retx.handle_ack(&AckKey {
            call_id: c.call_id.clone(),
            cseq: msg.cseq().map_or(0, |s| s.seq),
        });
        let Some(offer) = c.reoffer.take() else {
            return;
        };
        let neg = SessionDescription::parse(msg.body())
            .ok()
            .and_then(|a| process_answer(&offer, &a, &mut c.session, &c.offer_answer).ok());
        if let Some(neg) = neg {
            self.event(
                handle,
                CallEvent::Renegotiated {
                    negotiated: Box::new(neg),
                },
            );
        }
    }
}

/// The route set of a dialog from the Record-Route of its 2xx, reversed (RFC 3261 12.1.2).
fn route_set(response: &SipMessage) -> Vec<String> {
    let mut routes: Vec<String> = response
        .headers()
        .list("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    routes.reverse();
    routes
}

#[cfg(test)]
mod tests;
