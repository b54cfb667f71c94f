//! The UAS core: where SIP messages, transactions, dialogs, SDP, admission control and the
//! media engine meet. Sans-IO: it takes messages with the peer they came from, engine events
//! and the time, and yields messages to send and commands for the media cores.
//!
//! What it does today:
//! - OPTIONS; new INVITEs pass the access check (trunk allow-lists, digest users), session
//!   timer negotiation (422 below our Min-SE) and admission control (503 with Retry-After)
//!   before anything is allocated.
//! - An INVITE with an offer is answered (SDES SRTP, codecs by preference), its leg placed on
//!   the least-loaded core, and the 200 held until the core confirms the leg and the ring
//!   time (180) is over: a call is never answered without media (503 instead). CANCEL before
//!   that gets 487. Without an offer we offer in the 200 and the ACK brings the answer.
//! - The 200 is retransmitted until ACK; in the dialog: re-INVITE and UPDATE with or without
//!   an offer (hold/resume, new address), glare 491, INFO DTMF, BYE from either side.
//! - Session timers: we end calls the caller stops refreshing, and refresh ourselves (UPDATE,
//!   or re-INVITE when the caller has no UPDATE) when asked to.
//! - Media stopped (inactivity) or failed legs end the call with BYE and a Reason.
//! - REFER and other unknown methods get 501; methods we know but do not serve 405.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chorus_engine::runtime::{Command, CoreId, Event, LegId, LegUpdate, SrtpKey};
use chorus_engine::srtp::SrtpSuite;

use crate::access::{Access, AccessConfig, Caller, Verdict};
use crate::admission::{Admission, AdmissionConfig};
use crate::dtmf_info;
use crate::media_leg;
use crate::message::{ParseError, SipMessage};
use crate::sdp::{
    Codec, Direction, LocalSession, LocalSource, Negotiated, OfferAnswerConfig, PendingOffer,
    SessionDescription, SrtpPolicy, VideoSession, answer_offer, make_offer, process_answer,
};
use crate::session_timer::{
    Negotiation, Refresher, SessionExpires, SessionTimer, TimerPolicy, TimerReason, negotiate,
};
use crate::token::{Tokens, random_bytes};
use crate::transaction::{
    AckKey, Config as TxConfig, RequestDisposition, TransactionId, TransactionLayer, TxEvent,
    Uas2xxRetransmitter,
};

mod outgoing;
mod placement;

pub use outgoing::{Outgoing, tx_message};
pub use placement::Placement;

/// Methods a caller may send in a dialog or to the server.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";

/// What the UA needs to know about the transport a message came over.
pub trait SipPeer: Clone + std::fmt::Debug {
    /// The remote address.
    fn remote(&self) -> SocketAddr;
    /// The local (listening) address.
    fn local(&self) -> SocketAddr;
    /// "UDP", "TCP" or "TLS", as written in Via.
    fn transport(&self) -> &'static str;
    /// Reliable transport (no retransmissions).
    fn reliable(&self) -> bool;
}

impl SipPeer for crate::transport::Peer {
    fn remote(&self) -> SocketAddr {
        self.remote
    }

    fn local(&self) -> SocketAddr {
        self.local
    }

    fn transport(&self) -> &'static str {
        match self.transport {
            crate::transport::Transport::Udp => "UDP",
            crate::transport::Transport::Tcp => "TCP",
            crate::transport::Transport::Tls => "TLS",
        }
    }

    fn reliable(&self) -> bool {
        self.transport.is_stream()
    }
}

/// UA settings.
#[derive(Clone, Debug)]
pub struct UaConfig {
    /// Offer/answer (codecs, SRTP policy).
    pub offer_answer: OfferAnswerConfig,
    /// Overload limits.
    pub admission: AdmissionConfig,
    /// Address in our SDP.
    pub media_ip: IpAddr,
    /// End calls after this long without RTP or RTCP from the caller.
    pub inactivity_timeout: Option<Duration>,
    /// Server and User-Agent header value.
    pub server: String,
    /// Send each caller's media back to it (until the conferencing layer mixes calls).
    pub echo: bool,
    /// Ring (180) this long before answering; zero answers as soon as the media leg exists.
    pub answer_delay: Duration,
    /// Who may call: trunk allow-lists and digest users.
    pub access: AccessConfig,
    /// Session timers (RFC 4028).
    pub session_timer: TimerPolicy,
}

/// How long the media core may take to confirm a new leg before the call is refused with 503.
const LEG_CREATE_TIMEOUT: Duration = Duration::from_secs(2);

/// An INVITE accepted but not answered yet: the 200 waits until the media core has confirmed
/// the leg (so a call is never answered without media) and the ring time has passed.
#[derive(Debug)]
struct Answering {
    /// The INVITE server transaction.
    tx: TransactionId,
    /// The INVITE (for a final response other than the 200).
    invite: SipMessage,
    /// The 200 to send.
    response: SipMessage,
    /// Not before this.
    ring_until: Instant,
    /// The core confirmed the leg (or there is none yet: delayed offer).
    leg_ready: bool,
}

/// UA-level timers, fired in time order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UaTimer {
    /// The ring time of a call being answered is over.
    Ring(DialogKey),
    /// The media core has not confirmed a leg in time.
    LegCreate(DialogKey),
    /// The session timer may be due (checked against the dialog's timer when popped).
    Session(DialogKey),
}

/// A request of ours in a dialog, by client transaction.
#[derive(Debug)]
struct OwnRequest {
    key: DialogKey,
    /// A session refresh (UPDATE, or re-INVITE carrying our offer), not a BYE.
    refresh: bool,
    /// The ACK we sent for a re-INVITE's 2xx, re-sent for each retransmitted 2xx.
    ack: Option<SipMessage>,
    /// The request's CSeq number (the ACK's).
    cseq: u32,
}

/// What the UA wants done (besides messages and commands): the application's view of calls.
// Outputs live only between `poll_output` calls, so the size of the `Send` variant costs
// nothing worth a box per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum UaOutput<P> {
    /// Send a message to a peer.
    Send {
        /// Where.
        peer: P,
        /// What.
        message: SipMessage,
    },
    /// Give a command to a media core.
    Engine {
        /// Which core.
        core: CoreId,
        /// The command.
        command: Command,
    },
    /// A caller pressed a key (RFC 4733 event from its media leg, or SIP INFO).
    Dtmf {
        /// The call's Call-ID.
        call_id: String,
        /// The key.
        digit: dtmf_info::DtmfKey,
        /// How long it was held, when the sender said.
        duration_ms: Option<u32>,
        /// How it arrived.
        source: dtmf_info::DtmfSource,
    },
    /// A call was answered (200 sent) and its media leg exists.
    CallAnswered {
        /// Its Call-ID.
        call_id: String,
        /// Its media leg.
        leg: LegId,
        /// The core the leg is on.
        core: CoreId,
        /// The Request-URI user part (the number dialed).
        user: String,
        /// The caller's address.
        source: SocketAddr,
        /// The From URI (who the caller says it is).
        from: String,
        /// The negotiated codec and SRTP suite (none for plain RTP); `None` until the ACK
        /// brings the answer when the INVITE had no offer.
        media: Option<(Codec, Option<SrtpSuite>)>,
    },
    /// An answered call's codec or SRTP suite changed: the ACK brought the answer to our
    /// offer (the INVITE had none), or a re-INVITE or UPDATE renegotiated.
    MediaChanged {
        /// Its Call-ID.
        call_id: String,
        /// The codec and SRTP suite now in use.
        media: (Codec, Option<SrtpSuite>),
    },
    /// An answered call's leg moved to another core (`move_call`).
    CallMoved {
        /// Its Call-ID.
        call_id: String,
        /// The core it is on now.
        core: CoreId,
    },
    /// A call that was answered has ended (its leg is being removed).
    CallEnded {
        /// Its Call-ID.
        call_id: String,
        /// Why.
        reason: EndReason,
    },
}

/// Dialog identity at the UAS: Call-ID and our tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct DialogKey {
    call_id: String,
    local_tag: String,
}

#[derive(Debug)]
struct Dialog<P> {
    peer: P,
    leg: LegId,
    core: CoreId,
    local_rtp: SocketAddr,
    local_session: LocalSession,
    remote_tag: String,
    remote_target: String,
    local_uri: String,
    remote_uri: String,
    route_set: Vec<String>,
    local_cseq: u32,
    /// Our offer in the 200 to an INVITE that had none; the ACK brings the answer, and the
    /// media leg is created then.
    pending_offer: Option<PendingOffer>,
    /// The socket pair chosen for the leg.
    pair: u16,
    /// The media leg was created on the core (CreateLeg sent).
    leg_started: bool,
    /// Set until the initial INVITE is answered.
    answering: Option<Answering>,
    /// Who the caller was admitted as.
    caller: Caller,
    /// The running session timer (RFC 4028), if the caller asked for one.
    session: Option<SessionTimer>,
    /// The session interval agreed (started as a timer when we answer).
    session_se: Option<SessionExpires>,
    /// The caller listed UPDATE in Allow (we refresh with UPDATE, else re-INVITE).
    peer_allows_update: bool,
    /// Our session refresh in flight.
    refreshing: Option<TransactionId>,
    /// The leg is moving to this core and socket pair (detached, not yet attached there).
    moving: Option<(CoreId, u16)>,
    /// The leg's local address changed while a re-offer was in flight or our 2xx to an
    /// INVITE awaited its ACK: offer again after that.
    reoffer_due: bool,
    /// The 200 to the initial INVITE went out (`CallAnswered` was emitted).
    answered: bool,
    /// The codec and whether SRTP is in use, as last negotiated: our re-offers keep both
    /// (RFC 3264 8: same transport profile), so a refresh or a move changes nothing else.
    media: Option<(Codec, Option<SrtpSuite>)>,
    /// Our 2xx to an INVITE (initial or re-INVITE) has not been acknowledged yet; no
    /// re-INVITE of ours may start (RFC 3261 14.1).
    awaiting_ack: bool,
}

/// The UAS core.
pub struct UserAgent<P: SipPeer> {
    cfg: UaConfig,
    txl: TransactionLayer<Outgoing<P>>,
    retx: Uas2xxRetransmitter<Outgoing<P>>,
    admission: Admission,
    access: Access,
    /// Wall-clock seconds at `epoch` (digest nonces carry wall-clock time).
    epoch: (Instant, u64),
    placement: Placement,
    dialogs: HashMap<DialogKey, Dialog<P>>,
    by_leg: HashMap<LegId, DialogKey>,
    /// The SRTP keys each leg was given, to tell a rekeying re-offer from a repeated one.
    leg_keys: HashMap<LegId, (Option<SrtpKey>, Option<SrtpKey>)>,
    /// The video each leg's core was given (`SetVideo`), to send it again only on a change.
    leg_video: HashMap<LegId, VideoSession>,
    /// Initial INVITE transactions not answered yet (for CANCEL).
    answering_tx: HashMap<TransactionId, DialogKey>,
    timers: BinaryHeap<Reverse<(Instant, UaTimer)>>,
    own_requests: HashMap<TransactionId, OwnRequest>,
    /// Client transaction results waiting for the TU (taken out of the layer by
    /// `drain_layer`, handled with the time by `handle_tx_events`).
    tx_events: VecDeque<TxEvent<Outgoing<P>>>,
    /// Dialogs by Call-ID, for the 2xx ACK timeout (which knows only the Call-ID).
    by_call_id: HashMap<String, DialogKey>,
    next_leg: u32,
    tokens: Tokens,
    out: VecDeque<UaOutput<P>>,
}

/// The offer settings of a re-offer in a dialog whose media is `media` (codec, SRTP suite):
/// the same codec, the same transport profile (RFC 3264 8) and the same suite (whose key in
/// effect `LocalSession` offers again), so a refresh or a move of the leg changes nothing the
/// caller would have to renegotiate (a phone set to mandatory SRTP refuses an RTP/AVP offer).
fn reoffer_config(
    base: &OfferAnswerConfig,
    media: Option<(Codec, Option<SrtpSuite>)>,
) -> OfferAnswerConfig {
    let mut cfg = base.clone();
    if let Some((codec, suite)) = media {
        cfg.codecs = vec![codec];
        match suite {
            Some(suite) => {
                cfg.srtp = SrtpPolicy::Required;
                cfg.srtp_suites = vec![suite];
            }
            None => cfg.srtp = SrtpPolicy::Off,
        }
    }
    cfg
}

/// Adds the session timer headers to a 2xx (RFC 4028 9).
fn with_session(resp: SipMessage, se: Option<SessionExpires>) -> SipMessage {
    let Some(se) = se else {
        return resp;
    };
    let resp = resp
        .with_header("Session-Expires", &se.to_string())
        .with_header("Supported", "timer");
    if se.refresher == Some(Refresher::Uac) {
        resp.with_header("Require", "timer")
    } else {
        resp
    }
}

/// Calls ended by the UA and why (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// No media from the caller for the inactivity timeout.
    MediaTimeout,
    /// The media core could not create the leg.
    MediaFailed,
    /// The caller never acknowledged our 200.
    NoAck,
    /// The caller cancelled before we answered.
    Cancelled,
    /// The session was not refreshed in time (RFC 4028), or a refresh failed.
    SessionExpired,
    /// The application hung up (`hangup`).
    Local,
}

/// Why a call's leg cannot be moved now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// No established call has this Call-ID.
    #[error("no such call")]
    UnknownCall,
    /// The call is not answered yet, or its leg is already moving.
    #[error("the call is being set up or already moving")]
    Busy,
    /// The leg is on that core already.
    #[error("the leg is on that core already")]
    SameCore,
    /// The engine has no such core.
    #[error("no such core")]
    NoSuchCore,
}

impl<P: SipPeer> UserAgent<P> {
    /// Moves a call's media leg to core `to` (e.g. the core of the conference it joins):
    /// `DetachLeg` on its core, `AttachLeg` with the leg's state on `to`, then a re-INVITE
    /// offering the new local address. Media continues with the same SRTP contexts and
    /// outbound numbering; packets the caller sends to the old address meanwhile are dropped.
    pub fn move_call(&mut self, call_id: &str, to: CoreId) -> Result<(), MoveError> {
        let key = self
            .by_call_id
            .get(call_id)
            .cloned()
            .ok_or(MoveError::UnknownCall)?;
        let d = self.dialogs.get(&key).ok_or(MoveError::UnknownCall)?;
        if d.answering.is_some() || d.moving.is_some() || !d.leg_started {
            return Err(MoveError::Busy);
        }
        if d.core == to {
            return Err(MoveError::SameCore);
        }
        let (from, leg) = (d.core, d.leg);
        let (pair, _) = self.placement.place_on(to).ok_or(MoveError::NoSuchCore)?;
        if let Some(d) = self.dialogs.get_mut(&key) {
            d.moving = Some((to, pair));
        }
        tracing::info!(%leg, %from, %to, "moving media leg");
        self.engine(from, Command::DetachLeg(leg));
        Ok(())
    }

    /// Ends an answered call with BYE (the application's decision: an IVR goodbye, a
    /// moderator ending the conference). False if no such call.
    pub fn hangup(&mut self, now: Instant, call_id: &str, reason: &str) -> bool {
        let Some(key) = self.by_call_id.get(call_id).cloned() else {
            return false;
        };
        if self.dialogs.get(&key).is_none_or(|d| !d.answered) {
            return false;
        }
        let reason = format!("SIP;cause=200;text=\"{}\"", reason.replace('"', "'"));
        self.send_bye(now, &key, &reason);
        self.end_dialog(&key, EndReason::Local);
        true
    }

    /// The core a call's media leg is on.
    pub fn call_core(&self, call_id: &str) -> Option<CoreId> {
        let key = self.by_call_id.get(call_id)?;
        self.dialogs.get(key).map(|d| d.core)
    }

    /// A UA placing legs on cores whose socket pairs have these RTP addresses.
    pub fn new(cfg: UaConfig, cores: Vec<Vec<SocketAddr>>, now: Instant) -> Self {
        let mut tx_config = TxConfig::default();
        // Each admitted call leaves up to two server transactions (INVITE, BYE) alive for
        // 64*T1 after they complete (RFC 6026 timer L, RFC 3261 timer J): room for twice that
        // at the admitted rate, so admission, not the transaction bound, limits the call rate.
        let lingering = 2.0 * cfg.admission.attempts_per_sec * (64 * tx_config.t1).as_secs_f64();
        tx_config.max_transactions = tx_config.max_transactions.max(2 * lingering as usize);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UserAgent {
            access: Access::new(cfg.access.clone(), random_bytes()),
            epoch: (now, unix),
            retx: Uas2xxRetransmitter::new(tx_config.t1, tx_config.t2),
            txl: TransactionLayer::new(tx_config),
            admission: Admission::new(cfg.admission.clone(), now),
            placement: Placement::new(cores),
            cfg,
            dialogs: HashMap::new(),
            by_leg: HashMap::new(),
            leg_keys: HashMap::new(),
            leg_video: HashMap::new(),
            answering_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            own_requests: HashMap::new(),
            tx_events: VecDeque::new(),
            by_call_id: HashMap::new(),
            next_leg: 1,
            tokens: Tokens::new(),
            out: VecDeque::new(),
        }
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.dialogs.len()
    }

    /// Random-looking token for tags and branches (unique per UA; not secret).
    fn token(&mut self) -> String {
        self.tokens.next_hex()
    }

    fn send(&mut self, peer: P, message: SipMessage) {
        self.out.push_back(UaOutput::Send { peer, message });
    }

    fn engine(&mut self, core: CoreId, command: Command) {
        self.out.push_back(UaOutput::Engine { core, command });
    }

    fn base_response(&self, req: &SipMessage, status: u16, reason: &str) -> SipMessage {
        SipMessage::response_to(req, status, reason).with_header("Server", &self.cfg.server)
    }

    /// Answers a server transaction. Every response but 100 carries a To tag (RFC 3261
    /// 8.2.6.2).
    fn respond(&mut self, now: Instant, id: TransactionId, peer: P, mut resp: SipMessage) {
        if resp.status().is_some_and(|s| s > 100) && resp.to().is_some_and(|t| t.tag().is_none()) {
            let tag = self.token();
            resp = resp.with_to_tag(&tag);
        }
        let Some(tm) = tx_message(resp, peer) else {
            return;
        };
        if let Err(e) = self.txl.respond(now, id, tm) {
            tracing::debug!(error = %e, "response not sent");
        }
        self.drain_layer();
    }

    fn respond_status(
        &mut self,
        now: Instant,
        id: TransactionId,
        peer: P,
        req: &SipMessage,
        status: u16,
        reason: &str,
    ) {
        let resp = self.base_response(req, status, reason);
        self.respond(now, id, peer, resp);
    }

    fn contact(&self, peer: &P) -> String {
        format!(
            "<sip:chorus@{};transport={}>",
            peer.local(),
            peer.transport().to_ascii_lowercase()
        )
    }

    // ---- input -----------------------------------------------------------------------------

    /// A datagram or stream frame that did not parse.
    pub fn handle_invalid(&mut self, peer: P, raw: &[u8], error: &ParseError) {
        if let Some(resp) = SipMessage::error_response(raw, error) {
            let resp = resp.with_header("Server", &self.cfg.server);
            self.send(peer, resp);
        }
    }

    /// A parsed message from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: P, msg: SipMessage) {
        let is_request = msg.is_request();
        let Some(tm) = tx_message(msg.clone(), peer.clone()) else {
            if is_request && msg.top_via().is_some() {
                let missing = msg.missing_mandatory().join(", ");
                let resp =
                    self.base_response(&msg, 400, &format!("Bad Request - missing {missing}"));
                self.send(peer, resp);
            }
            return;
        };
        if !is_request {
            self.txl.handle_response(now, &tm);
            self.drain_layer();
            self.handle_tx_events(now);
            return;
        }
        match self.txl.handle_request(now, &tm, peer.reliable()) {
            Ok(RequestDisposition::New { id }) => self.on_request(now, id, peer, &msg),
            Ok(RequestDisposition::Cancel { id, invite }) => {
                self.on_cancel(now, id, invite, peer, &msg)
            }
            Ok(RequestDisposition::Ack2xx) => self.on_ack(now, &msg),
            Ok(RequestDisposition::Merged { .. }) => {
                let resp = self.base_response(&msg, 482, "Loop Detected");
                self.send(peer, resp);
            }
            Ok(RequestDisposition::Overloaded) => {
                let resp = self
                    .base_response(&msg, 503, "Service Unavailable")
                    .with_header("Retry-After", "5");
                self.send(peer, resp);
            }
            Ok(RequestDisposition::Retransmission { .. })
            | Ok(RequestDisposition::AckForNon2xx { .. }) => {}
            Err(e) => tracing::debug!(error = %e, "request not taken by the transaction layer"),
        }
        self.drain_layer();
        self.handle_tx_events(now);
    }

    fn dialog_key(msg: &SipMessage) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: msg.call_id()?.to_string(),
            local_tag: msg.to()?.tag()?.to_string(),
        })
    }

    /// CANCEL (RFC 3261 9.2): 200 to the CANCEL; an INVITE not answered yet gets 487 and its
    /// call is torn down; one already answered is unaffected. 481 when nothing matches.
    fn on_cancel(
        &mut self,
        now: Instant,
        id: TransactionId,
        invite: Option<TransactionId>,
        peer: P,
        msg: &SipMessage,
    ) {
        let Some(invite) = invite else {
            return self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist");
        };
        self.respond_status(now, id, peer, msg, 200, "OK");
        let Some(key) = self.answering_tx.remove(&invite) else {
            return;
        };
        if let Some(a) = self.dialogs.get_mut(&key).and_then(|d| d.answering.take()) {
            self.refuse_answering(now, &key, a, 487, "Request Terminated", None);
        }
        self.end_dialog(&key, EndReason::Cancelled);
    }

    fn on_request(&mut self, now: Instant, id: TransactionId, peer: P, msg: &SipMessage) {
        let missing = msg.missing_mandatory();
        if !missing.is_empty() {
            let reason = format!("Bad Request - missing {}", missing.join(", "));
            return self.respond_status(now, id, peer, msg, 400, &reason);
        }
        if !msg.uri().is_some_and(|u| u.is_sip()) {
            return self.respond_status(now, id, peer, msg, 416, "Unsupported URI Scheme");
        }
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        // RFC 3261 8.2.2.3: a Require we do not support refuses any request but ACK and CANCEL
        // (neither reaches here) with 420 (RFC 4475 bext01).
        let unsupported = msg.unsupported_options(&["timer"]);
        if !unsupported.is_empty() {
            let resp = self
                .base_response(msg, 420, "Bad Extension")
                .with_header("Unsupported", &unsupported.join(", "));
            return self.respond(now, id, peer, resp);
        }
        let in_dialog = msg.to().is_some_and(|t| t.tag().is_some());
        match method.as_str() {
            "OPTIONS" => {
                let resp = self
                    .base_response(msg, 200, "OK")
                    .with_header("Allow", ALLOW)
                    .with_header("Accept", "application/sdp")
                    .with_header("Supported", "");
                self.respond(now, id, peer, resp);
            }
            "INVITE" | "UPDATE" if in_dialog => self.on_reoffer(now, id, peer, msg),
            "INVITE" => self.on_invite(now, id, peer, msg),
            "BYE" => match Self::dialog_key(msg)
                .and_then(|k| self.dialogs.contains_key(&k).then_some(k))
            {
                Some(key) => {
                    self.respond_status(now, id, peer, msg, 200, "OK");
                    // A BYE on the early dialog (RFC 3261 15): the INVITE gets 487.
                    if let Some(a) = self.dialogs.get_mut(&key).and_then(|d| d.answering.take()) {
                        self.refuse_answering(now, &key, a, 487, "Request Terminated", None);
                    }
                    self.end_dialog(&key, EndReason::RemoteBye);
                }
                None => {
                    self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist")
                }
            },
            "INFO" if in_dialog => {
                if Self::dialog_key(msg).is_none_or(|k| !self.dialogs.contains_key(&k)) {
                    return self.respond_status(
                        now,
                        id,
                        peer,
                        msg,
                        481,
                        "Call/Transaction Does Not Exist",
                    );
                }
                if !msg.body().is_empty() {
                    match dtmf_info::parse_info(msg.content_type().unwrap_or(""), msg.body()) {
                        Ok(d) => self.out.push_back(UaOutput::Dtmf {
                            call_id: msg.call_id().unwrap_or_default().to_string(),
                            digit: d.key,
                            duration_ms: d.duration_ms,
                            source: dtmf_info::DtmfSource::SipInfo,
                        }),
                        Err(dtmf_info::DtmfInfoError::ContentType) => {
                            return self.respond_status(
                                now,
                                id,
                                peer,
                                msg,
                                415,
                                "Unsupported Media Type",
                            );
                        }
                        Err(dtmf_info::DtmfInfoError::Body) => {
                            return self.respond_status(
                                now,
                                id,
                                peer,
                                msg,
                                400,
                                "Bad Request - no DTMF key",
                            );
                        }
                    }
                }
                self.respond_status(now, id, peer, msg, 200, "OK");
            }
            "INFO" | "UPDATE" | "PRACK" => {
                self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist")
            }
            "REGISTER" | "SUBSCRIBE" | "NOTIFY" | "MESSAGE" | "PUBLISH" => {
                let resp = self
                    .base_response(msg, 405, "Method Not Allowed")
                    .with_header("Allow", ALLOW);
                self.respond(now, id, peer, resp);
            }
            _ => self.respond_status(now, id, peer, msg, 501, "Not Implemented"),
        }
    }

    /// The response refusing an INVITE for its body or its Accept, if it must be refused.
    fn refuse_invite(&self, msg: &SipMessage) -> Option<SipMessage> {
        // No body is a delayed offer (we offer in the 200); a body must be SDP.
        if !msg.body().is_empty() && msg.media_type().as_deref() != Some("application/sdp") {
            return Some(
                self.base_response(msg, 415, "Unsupported Media Type")
                    .with_header("Accept", "application/sdp"),
            );
        }
        // RFC 3261 8.2.3: a body in an encoding we do not decode (we decode none).
        if !msg.body().is_empty()
            && msg
                .headers()
                .list("Content-Encoding")
                .iter()
                .any(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return Some(
                self.base_response(msg, 415, "Unsupported Media Type")
                    .with_header("Accept-Encoding", "identity"),
            );
        }
        // Our 200 carries SDP: a caller whose Accept excludes it cannot take the answer
        // (RFC 3261 21.4.7, RFC 4475 sdp01).
        if !msg.accepts("application/sdp") {
            return Some(
                self.base_response(msg, 406, "Not Acceptable")
                    .with_header("Warning", "399 chorus \"answers carry application/sdp\""),
            );
        }
        None
    }

    fn on_invite(&mut self, now: Instant, id: TransactionId, peer: P, msg: &SipMessage) {
        if let Some(resp) = self.refuse_invite(msg) {
            return self.respond(now, id, peer, resp);
        }
        let unix = self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs();
        let caller = match self.access.check(unix, peer.remote().ip(), msg) {
            Verdict::Allowed(caller) => caller,
            Verdict::Challenge(challenges) => {
                let mut resp = self.base_response(msg, 401, "Unauthorized");
                for c in &challenges {
                    resp = resp.with_header("WWW-Authenticate", c);
                }
                return self.respond(now, id, peer, resp);
            }
            Verdict::Forbidden(reason) => {
                tracing::info!(source = %peer.remote(), reason, "call refused");
                return self.respond_status(now, id, peer, msg, 403, reason);
            }
        };
        let session_se = match self.session_for(msg) {
            Ok(se) => se,
            Err(resp) => return self.respond(now, id, peer, *resp),
        };
        if let Err(refusal) = self.admission.admit(now, peer.remote().ip()) {
            let resp = self
                .base_response(msg, refusal.status(), "Service Unavailable")
                .with_header("Retry-After", &refusal.retry_after_secs().to_string());
            return self.respond(now, id, peer, resp);
        }
        let Some((core, pair, local_rtp)) = self.placement.place() else {
            self.admission.call_ended();
            return self.respond_status(now, id, peer, msg, 503, "Service Unavailable");
        };
        let mut local_session = LocalSession::new(self.tokens.next_u64(), self.cfg.media_ip);
        let leg = LegId(self.next_leg);
        self.next_leg = self.next_leg.wrapping_add(1).max(1);
        local_session.source = Some(LocalSource::of_leg(leg));
        local_session.video_rtp = self.video_rtp(core, pair);
        // With an offer: answer it and start the leg now. Without one (delayed offer): offer
        // in the 200 and start the leg when the ACK brings the answer (RFC 3264 section 2).
        // The negotiated codec and profile, once known (an offer in the INVITE).
        let mut media = None;
        let outcome = if msg.body().is_empty() {
            make_offer(
                &mut local_session,
                local_rtp,
                &self.cfg.offer_answer,
                Direction::SendRecv,
            )
            .map(|pending| (pending.sdp().to_string(), Some(pending)))
        } else {
            match SessionDescription::parse(msg.body()) {
                Err(_) => {
                    self.admission.call_ended();
                    self.placement.release(core);
                    return self.respond_status(
                        now,
                        id,
                        peer,
                        msg,
                        400,
                        "Bad Request - malformed SDP",
                    );
                }
                Ok(offer) => answer_offer(
                    &offer,
                    &mut local_session,
                    local_rtp,
                    &self.cfg.offer_answer,
                )
                .map(|(answer, neg)| {
                    self.start_leg(core, pair, leg, &neg);
                    media = Some((neg.codec.codec, neg.srtp.as_ref().map(|k| k.suite())));
                    (answer.to_string(), None)
                }),
            }
        };
        let (sdp, pending_offer) = match outcome {
            Ok(x) => x,
            Err(e) => {
                self.admission.call_ended();
                self.placement.release(core);
                let mut resp = self.base_response(msg, e.sip_status(), "Not Acceptable Here");
                if let Some((code, text)) = e.warning() {
                    resp = resp.with_header("Warning", &format!("{code} chorus \"{text}\""));
                }
                return self.respond(now, id, peer, resp);
            }
        };
        let local_tag = self.token();
        let resp = self
            .base_response(msg, 200, "OK")
            .with_to_tag(&local_tag)
            .with_header("Contact", &self.contact(&peer))
            .with_header("Allow", ALLOW)
            .with_body("application/sdp", sdp);
        let resp = with_session(resp, session_se);
        let call_id = msg.call_id().unwrap_or("").to_string();
        let from = msg.from();
        let dialog = Dialog {
            peer: peer.clone(),
            leg,
            core,
            local_rtp,
            local_session,
            remote_tag: from
                .as_ref()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default(),
            remote_target: msg
                .contact_uri()
                .map(|u| u.to_string())
                .or_else(|| from.as_ref().map(|f| f.uri.to_string()))
                .unwrap_or_default(),
            local_uri: msg.to().map(|t| t.uri.to_string()).unwrap_or_default(),
            remote_uri: from.map(|f| f.uri.to_string()).unwrap_or_default(),
            route_set: msg
                .headers()
                .list("Record-Route")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            local_cseq: 0,
            leg_started: pending_offer.is_none(),
            pending_offer,
            pair,
            answering: None,
            caller,
            session: None,
            session_se,
            peer_allows_update: msg
                .headers()
                .list("Allow")
                .iter()
                .any(|m| m.trim().eq_ignore_ascii_case("UPDATE")),
            refreshing: None,
            moving: None,
            reoffer_due: false,
            awaiting_ack: false,
            answered: false,
            media,
        };
        let leg_started = dialog.leg_started;
        let contact = self.contact(&peer);
        let dkey = DialogKey { call_id, local_tag };
        self.by_leg.insert(leg, dkey.clone());
        self.by_call_id.insert(dkey.call_id.clone(), dkey.clone());
        self.answering_tx.insert(id, dkey.clone());
        let ring_until = now + self.cfg.answer_delay;
        self.dialogs.insert(
            dkey.clone(),
            Dialog {
                answering: Some(Answering {
                    tx: id,
                    invite: msg.clone(),
                    response: resp,
                    ring_until,
                    leg_ready: !leg_started,
                }),
                ..dialog
            },
        );
        if !self.cfg.answer_delay.is_zero() {
            let ringing = self
                .base_response(msg, 180, "Ringing")
                .with_to_tag(&dkey.local_tag)
                .with_header("Contact", &contact);
            self.respond(now, id, peer, ringing);
            self.timers
                .push(Reverse((ring_until, UaTimer::Ring(dkey.clone()))));
        }
        if leg_started {
            self.timers.push(Reverse((
                now + LEG_CREATE_TIMEOUT,
                UaTimer::LegCreate(dkey.clone()),
            )));
        }
        self.try_answer(now, &dkey);
    }

    /// The session interval for an INVITE or UPDATE (RFC 4028 9): None when the caller
    /// neither asks for nor supports timers (RTP inactivity still ends dead calls); Err is
    /// the 422 to send when its interval is below our Min-SE.
    fn session_for(&self, msg: &SipMessage) -> Result<Option<SessionExpires>, Box<SipMessage>> {
        let se = msg
            .headers()
            .get("Session-Expires")
            .and_then(SessionExpires::parse);
        let supports = msg
            .supported()
            .iter()
            .any(|t| t.eq_ignore_ascii_case("timer"));
        if se.is_none() && !supports {
            return Ok(None);
        }
        match negotiate(self.cfg.session_timer, se, msg.min_se(), supports) {
            Negotiation::Accept(se) => Ok(Some(se)),
            Negotiation::TooSmall { min_se_secs } => Err(Box::new(
                self.base_response(msg, 422, "Session Interval Too Small")
                    .with_header("Min-SE", &min_se_secs.to_string()),
            )),
        }
    }

    /// Starts or restarts a dialog's session timer after a refresh at `now`; None turns it
    /// off (a refresh without Session-Expires, RFC 4028 9).
    fn session_refreshed(&mut self, now: Instant, key: &DialogKey, se: Option<SessionExpires>) {
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        d.session_se = se;
        d.session = match (d.session.take(), se) {
            (Some(mut t), Some(se)) => {
                t.refreshed(now, se);
                Some(t)
            }
            (None, Some(se)) => Some(SessionTimer::start(now, se)),
            (_, None) => None,
        };
        let due = d.session.as_ref().and_then(SessionTimer::poll_timeout);
        if let Some((at, _)) = due {
            self.timers
                .push(Reverse((at, UaTimer::Session(key.clone()))));
        }
    }

    /// Sends the 200 of a call being answered once its leg exists and its ring time is over.
    fn try_answer(&mut self, now: Instant, key: &DialogKey) {
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        if !d
            .answering
            .as_ref()
            .is_some_and(|a| a.leg_ready && now >= a.ring_until)
        {
            return;
        }
        let Some(a) = d.answering.take() else {
            return;
        };
        let (peer, leg, core) = (d.peer.clone(), d.leg, d.core);
        let (from, media) = (d.remote_uri.clone(), d.media);
        d.awaiting_ack = true;
        d.answered = true;
        let user = (a.invite.uri())
            .and_then(|u| u.user())
            .unwrap_or_default()
            .to_string();
        self.out.push_back(UaOutput::CallAnswered {
            call_id: key.call_id.clone(),
            leg,
            core,
            user,
            source: peer.remote(),
            from,
            media,
        });
        tracing::info!(%leg, %core, caller = ?d.caller, "call answered");
        d.session = d.session_se.map(|se| SessionTimer::start(now, se));
        let due = d.session.as_ref().and_then(SessionTimer::poll_timeout);
        if let Some((at, _)) = due {
            self.timers
                .push(Reverse((at, UaTimer::Session(key.clone()))));
        }
        self.answering_tx.remove(&a.tx);
        if !peer.reliable() {
            self.retx.start(
                now,
                AckKey {
                    call_id: key.call_id.clone(),
                    cseq: a.invite.cseq().map_or(0, |c| c.seq),
                },
                Outgoing {
                    peer: peer.clone(),
                    msg: a.response.clone(),
                },
            );
        }
        self.respond(now, a.tx, peer, a.response);
    }

    /// Answers an INVITE not answered yet with a failure; the caller ends the dialog.
    fn refuse_answering(
        &mut self,
        now: Instant,
        key: &DialogKey,
        a: Answering,
        status: u16,
        reason: &str,
        retry_after: Option<u32>,
    ) {
        self.answering_tx.remove(&a.tx);
        let Some(peer) = self.dialogs.get(key).map(|d| d.peer.clone()) else {
            return;
        };
        let mut resp = self
            .base_response(&a.invite, status, reason)
            .with_to_tag(&key.local_tag);
        if let Some(secs) = retry_after {
            resp = resp.with_header("Retry-After", &secs.to_string());
        }
        self.respond(now, a.tx, peer, resp);
    }

    /// Points an existing leg at the remote address of a new answer or offer.
    /// Notes the negotiated codec and profile on the leg's dialog (for our re-offers).
    /// Once the call is answered, a change is reported (`MediaChanged`) for its record.
    fn remember_media(&mut self, leg: LegId, neg: &Negotiated) {
        let Some(key) = self.by_leg.get(&leg) else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(key) {
            let media = (neg.codec.codec, neg.srtp.as_ref().map(|k| k.suite()));
            if d.answered && d.media != Some(media) {
                self.out.push_back(UaOutput::MediaChanged {
                    call_id: key.call_id.clone(),
                    media,
                });
            }
            d.media = Some(media);
        }
    }

    fn set_remote(&mut self, core: CoreId, leg: LegId, neg: &Negotiated) {
        self.remember_media(leg, neg);
        let keys = media_leg::srtp_keys(neg);
        // Rekey only when the offer/answer changed a key: a new context restarts the
        // rollover counter and replay window, which an unchanged key must keep.
        let srtp = match self.leg_keys.get(&leg) {
            Some(old) if *old == keys => None,
            _ => Some(keys.clone()),
        };
        self.leg_keys.insert(leg, keys);
        let update = LegUpdate {
            id: leg,
            audio: Some(media_leg::audio_format(neg)),
            remote_rtp: neg.remote_rtp,
            remote_rtcp: (!neg.rtcp_mux).then_some(neg.remote_rtcp),
            srtp,
            send: neg.direction.sends(),
        };
        tracing::info!(%leg, direction = ?neg.direction, rekeyed = update.srtp.is_some(), "call re-negotiated");
        self.engine(core, Command::UpdateLeg(Box::new(update)));
        let pair = (self.by_leg.get(&leg))
            .and_then(|k| self.dialogs.get(k))
            .map(|d| d.pair);
        if let Some(pair) = pair {
            self.set_video(core, pair, leg, neg);
        }
    }

    /// Gives the leg's core its negotiated video (or takes it away), if it changed. The video
    /// listens on the socket pair after the audio's (`Placement::video_pair`), the address our
    /// SDP named.
    fn set_video(&mut self, core: CoreId, audio_pair: u16, leg: LegId, neg: &Negotiated) {
        if self.leg_video.get(&leg) == neg.video.as_ref() {
            return;
        }
        let video = match &neg.video {
            Some(v) => {
                let Some((pair, _)) = self.placement.video_pair(core, audio_pair) else {
                    return;
                };
                self.leg_video.insert(leg, v.clone());
                tracing::info!(%leg, codec = ?v.media.codec, remote = %v.remote_rtp, layers = v.media.simulcast.len().max(v.remote_sources.len()), all = v.receive_all, "video negotiated");
                Some(Box::new(media_leg::video_config(v, pair)))
            }
            None => {
                self.leg_video.remove(&leg);
                None
            }
        };
        self.engine(core, Command::SetVideo { leg, video });
    }

    /// Our video address for a leg on `core` whose audio is on `audio_pair`, when video is on.
    fn video_rtp(&self, core: CoreId, audio_pair: u16) -> Option<SocketAddr> {
        self.cfg.offer_answer.video.as_ref()?;
        self.placement
            .video_pair(core, audio_pair)
            .map(|(_, addr)| addr)
    }

    /// Creates the media leg of a negotiated call on its core.
    fn start_leg(&mut self, core: CoreId, pair: u16, leg: LegId, neg: &Negotiated) {
        self.remember_media(leg, neg);
        let mut cfg = media_leg::leg_config(leg, neg);
        self.leg_keys
            .insert(leg, (cfg.srtp_in.clone(), cfg.srtp_out.clone()));
        cfg.latch = true;
        cfg.inactivity_timeout = self.cfg.inactivity_timeout;
        cfg.idle_silence = true;
        cfg.pair = Some(pair);
        self.engine(core, Command::CreateLeg(Box::new(cfg)));
        if self.cfg.echo {
            self.engine(core, Command::Connect { from: leg, to: leg });
        }
        self.set_video(core, pair, leg, neg);
        tracing::info!(%leg, %core, remote = %neg.remote_rtp, codec = ?neg.codec.codec, srtp = neg.srtp.is_some(), "media leg started");
    }

    /// A re-INVITE or UPDATE in a dialog (RFC 3261 14.2, RFC 3311): with an offer we answer
    /// it and point the leg at the (maybe new) remote; a re-INVITE without one gets our offer
    /// in the 200 and its ACK the answer; an UPDATE without one is a session refresh.
    fn on_reoffer(&mut self, now: Instant, id: TransactionId, peer: P, msg: &SipMessage) {
        let is_invite = msg.method().is_some_and(|m| m.as_str() == "INVITE");
        let Some(key) = Self::dialog_key(msg).filter(|k| self.dialogs.contains_key(k)) else {
            return self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist");
        };
        if is_invite && let Some(resp) = self.refuse_invite(msg) {
            return self.respond(now, id, peer, resp);
        }
        if !is_invite
            && !msg.body().is_empty()
            && msg.media_type().as_deref() != Some("application/sdp")
        {
            let resp = self
                .base_response(msg, 415, "Unsupported Media Type")
                .with_header("Accept", "application/sdp");
            return self.respond(now, id, peer, resp);
        }
        let se = match self.session_for(msg) {
            Ok(se) => se,
            Err(resp) => return self.respond(now, id, peer, *resp),
        };
        let cfg = self.cfg.offer_answer.clone();
        let contact = self.contact(&peer);
        // INVARIANT: the key was checked just above.
        let dialog = self.dialogs.get_mut(&key).expect("dialog present");
        let has_offer = !msg.body().is_empty();
        if dialog.answering.is_some() && (is_invite || has_offer) {
            // The initial offer is not answered yet (RFC 3261 14.2, RFC 3311 5.2).
            let resp = self
                .base_response(msg, 500, "Server Internal Error")
                .with_header("Retry-After", "1");
            return self.respond(now, id, peer, resp);
        }
        if dialog.pending_offer.is_some() && (is_invite || has_offer) {
            // Glare: our offer is out and unanswered (RFC 3261 14.2, RFC 3311 5.2).
            return self.respond_status(now, id, peer, msg, 491, "Request Pending");
        }
        let local_rtp = dialog.local_rtp;
        let body = if !has_offer && !is_invite {
            None
        } else if !has_offer {
            let reoffer = reoffer_config(&cfg, dialog.media);
            match make_offer(
                &mut dialog.local_session,
                local_rtp,
                &reoffer,
                Direction::SendRecv,
            ) {
                Ok(pending) => {
                    let sdp = pending.sdp().to_string();
                    dialog.pending_offer = Some(pending);
                    Some(sdp)
                }
                Err(e) => {
                    let resp = self.base_response(msg, e.sip_status(), "Not Acceptable Here");
                    return self.respond(now, id, peer, resp);
                }
            }
        } else {
            let Ok(offer) = SessionDescription::parse(msg.body()) else {
                return self.respond_status(now, id, peer, msg, 400, "Bad Request - malformed SDP");
            };
            match answer_offer(&offer, &mut dialog.local_session, local_rtp, &cfg) {
                Ok((answer, neg)) => {
                    let (core, leg) = (dialog.core, dialog.leg);
                    self.set_remote(core, leg, &neg);
                    Some(answer.to_string())
                }
                Err(e) => {
                    // A refused re-offer leaves the call as it was (RFC 3261 14.2).
                    let resp = self.base_response(msg, e.sip_status(), "Not Acceptable Here");
                    return self.respond(now, id, peer, resp);
                }
            }
        };
        self.session_refreshed(now, &key, se);
        let mut resp = self
            .base_response(msg, 200, "OK")
            .with_header("Contact", &contact)
            .with_header("Allow", ALLOW);
        if let Some(sdp) = body {
            resp = resp.with_body("application/sdp", sdp);
        }
        let resp = with_session(resp, se);
        if is_invite && let Some(d) = self.dialogs.get_mut(&key) {
            d.awaiting_ack = true;
        }
        if is_invite && !peer.reliable() {
            self.retx.start(
                now,
                AckKey {
                    call_id: key.call_id.clone(),
                    cseq: msg.cseq().map_or(0, |c| c.seq),
                },
                Outgoing {
                    peer: peer.clone(),
                    msg: resp.clone(),
                },
            );
        }
        self.respond(now, id, peer, resp);
    }

    fn on_ack(&mut self, now: Instant, msg: &SipMessage) {
        let (Some(call_id), Some(cseq)) = (msg.call_id(), msg.cseq()) else {
            return;
        };
        self.retx.handle_ack(&AckKey {
            call_id: call_id.to_string(),
            cseq: cseq.seq,
        });
        let Some(key) = Self::dialog_key(msg) else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(&key) {
            d.awaiting_ack = false;
        }
        self.ack_answer(now, msg, &key);
        self.reoffer_if_due(now, &key);
    }

    /// Offers again if the leg's address changed while we could not.
    fn reoffer_if_due(&mut self, now: Instant, key: &DialogKey) {
        if let Some(d) = self.dialogs.get_mut(key)
            && std::mem::take(&mut d.reoffer_due)
        {
            self.send_reoffer(now, key, true);
        }
    }

    /// A delayed-offer call: the ACK carries the answer to the offer in our 200.
    fn ack_answer(&mut self, now: Instant, msg: &SipMessage, key: &DialogKey) {
        let key = key.clone();
        let cfg = self.cfg.offer_answer.clone();
        let Some(d) = self.dialogs.get_mut(&key) else {
            return;
        };
        let Some(pending) = d.pending_offer.take() else {
            return;
        };
        let negotiated = SessionDescription::parse(msg.body())
            .ok()
            .and_then(|answer| process_answer(&pending, &answer, &mut d.local_session, &cfg).ok());
        let (core, pair, leg, started) = (d.core, d.pair, d.leg, d.leg_started);
        d.leg_started = true;
        match negotiated {
            // A re-INVITE without an offer: the leg exists, only the remote may have moved.
            Some(neg) if started => self.set_remote(core, leg, &neg),
            Some(neg) => self.start_leg(core, pair, leg, &neg),
            None if started => {
                tracing::info!(%leg, "ACK without a usable answer to our re-offer: ending the call");
                self.send_bye(now, &key, "SIP;cause=488;text=\"no usable SDP answer\"");
                self.end_dialog(&key, EndReason::MediaFailed);
            }
            None => {
                if let Some(d) = self.dialogs.get_mut(&key) {
                    d.leg_started = false;
                }
                // Keep the offer marked pending: the leg was never started.
                if let Some(d) = self.dialogs.get_mut(&key) {
                    d.pending_offer = Some(pending);
                }
                // RFC 3261 13.2.2.4 / RFC 3264: no usable answer in the ACK ends the call.
                tracing::info!(%leg, "ACK without a usable answer to our offer: ending the call");
                self.send_bye(now, &key, "SIP;cause=488;text=\"no usable SDP answer\"");
                self.end_dialog(&key, EndReason::MediaFailed);
            }
        }
    }

    /// An event from a media core.
    pub fn handle_engine_event(&mut self, now: Instant, _core: CoreId, event: Event) {
        match event {
            Event::Inactive { id, idle } => {
                if let Some(key) = self.by_leg.get(&id).cloned() {
                    tracing::info!(leg = %id, idle_s = idle.as_secs(), "no media from the caller: ending the call");
                    self.send_bye(now, &key, "SIP;cause=408;text=\"RTP timeout\"");
                    self.end_dialog(&key, EndReason::MediaTimeout);
                }
            }
            Event::LegCreated { id, .. } => {
                if let Some(key) = self.by_leg.get(&id).cloned() {
                    if let Some(a) = self
                        .dialogs
                        .get_mut(&key)
                        .and_then(|d| d.answering.as_mut())
                    {
                        a.leg_ready = true;
                    }
                    self.try_answer(now, &key);
                }
            }
            Event::Dtmf {
                id,
                digit,
                duration_ms,
                inband,
            } => {
                let call_id = self.by_leg.get(&id).map(|k| k.call_id.clone());
                if let (Some(call_id), Some(digit)) =
                    (call_id, dtmf_info::DtmfKey::from_char(digit))
                {
                    self.out.push_back(UaOutput::Dtmf {
                        call_id,
                        digit,
                        duration_ms: Some(duration_ms),
                        source: if inband {
                            dtmf_info::DtmfSource::InBand
                        } else {
                            dtmf_info::DtmfSource::Rfc4733
                        },
                    });
                }
            }
            Event::VideoReady { id, rtp, .. } => {
                tracing::debug!(leg = %id, local = %rtp, "video ready");
            }
            Event::VideoRejected { id, reason } => {
                // The answer named a video port already: the call goes on with audio only.
                tracing::warn!(leg = %id, %reason, "video refused by the media core");
                self.leg_video.remove(&id);
            }
            Event::VideoSwitched {
                leg,
                source,
                encoding,
            } => {
                tracing::info!(%leg, %source, encoding, "video switched");
            }
            Event::LegRejected { id, reason } => {
                if let Some(key) = self.by_leg.get(&id).cloned() {
                    tracing::warn!(leg = %id, %reason, "media leg refused: ending the call");
                    self.media_failed(now, &key);
                }
            }
            Event::LegDetached { leg } => {
                let to = (self.by_leg.get(&leg.id()))
                    .and_then(|k| self.dialogs.get(k))
                    .and_then(|d| d.moving);
                // A call that ended meanwhile drops its leg here.
                if let Some((core, pair)) = to {
                    let pair = Some(pair);
                    self.engine(core, Command::AttachLeg { leg, pair });
                }
            }
            Event::LegMoved { id, core, rtp, .. } => {
                let Some(key) = self.by_leg.get(&id).cloned() else {
                    return;
                };
                let Some(d) = self.dialogs.get_mut(&key) else {
                    return;
                };
                let Some((to, pair)) = d.moving.take().filter(|(to, _)| *to == core) else {
                    return;
                };
                let from = std::mem::replace(&mut d.core, to);
                d.pair = pair;
                d.local_rtp = rtp;
                // The video stayed behind (dropped on detach): the answer to the re-offer
                // gives it to the new core, at the new core's video address.
                self.leg_video.remove(&id);
                d.local_session.video_rtp = (self.cfg.offer_answer.video.as_ref())
                    .and_then(|_| self.placement.video_pair(to, pair))
                    .map(|(_, addr)| addr);
                self.placement.release(from);
                tracing::info!(leg = %id, %from, %to, local = %rtp, "media leg moved: offering its new address");
                self.out.push_back(UaOutput::CallMoved {
                    call_id: key.call_id.clone(),
                    core: to,
                });
                self.send_reoffer(now, &key, true);
            }
            _ => {}
        }
    }

    /// A command the media core's queue refused (full): a leg that was never created fails
    /// its call; anything else is the caller's to retry.
    pub fn handle_engine_refused(&mut self, now: Instant, command: &Command) {
        if let Command::CreateLeg(cfg) = command
            && let Some(key) = self.by_leg.get(&cfg.id).cloned()
        {
            tracing::warn!(leg = %cfg.id, "media core queue full: refusing the call");
            if let Some(d) = self.dialogs.get_mut(&key) {
                d.leg_started = false;
            }
            self.media_failed(now, &key);
        }
    }

    /// The call's media leg could not be created: 503 if the INVITE is not answered yet
    /// (nothing half set up), BYE otherwise.
    fn media_failed(&mut self, now: Instant, key: &DialogKey) {
        match self.dialogs.get_mut(key).and_then(|d| d.answering.take()) {
            Some(a) => self.refuse_answering(now, key, a, 503, "Service Unavailable", Some(5)),
            None => self.send_bye(now, key, "SIP;cause=500;text=\"media unavailable\""),
        }
        self.end_dialog(key, EndReason::MediaFailed);
    }

    /// A request of ours in a dialog (RFC 3261 12.2.1.1): `cseq` None takes the next local
    /// CSeq; `extra` are whole header lines.
    fn in_dialog_request(
        &mut self,
        key: &DialogKey,
        method: &str,
        cseq: Option<u32>,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> Option<(P, SipMessage)> {
        let branch = format!("z9hG4bK{}", self.token());
        let server = self.cfg.server.clone();
        let d = self.dialogs.get_mut(key)?;
        let cseq = cseq.unwrap_or_else(|| {
            d.local_cseq += 1;
            d.local_cseq
        });
        let mut text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            d.remote_target,
            d.peer.transport(),
            d.peer.local()
        );
        for r in &d.route_set {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        let (ctype, body) = body.unwrap_or(("", ""));
        if !ctype.is_empty() {
            text.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        text.push_str(&format!(
            "From: <{}>;tag={}\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n{extra}User-Agent: {server}\r\nContent-Length: {}\r\n\r\n{body}",
            d.local_uri, key.local_tag, d.remote_uri, d.remote_tag, key.call_id, body.len()
        ));
        let peer = d.peer.clone();
        match SipMessage::parse(text.as_bytes()) {
            Ok(m) => Some((peer, m)),
            Err(e) => {
                tracing::warn!(%method, error = %e, "could not build an in-dialog request");
                None
            }
        }
    }

    /// Sends a request of ours in a dialog in a new client transaction.
    fn send_in_dialog(&mut self, now: Instant, peer: P, req: SipMessage) -> Option<TransactionId> {
        let reliable = peer.reliable();
        let tm = tx_message(req, peer)?;
        let id = match self.txl.send_request(now, tm, reliable) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(error = %e, "in-dialog request not sent");
                None
            }
        };
        self.drain_layer();
        id
    }

    /// Sends BYE in a dialog (RFC 3261 15.1.1).
    fn send_bye(&mut self, now: Instant, key: &DialogKey, reason: &str) {
        if let Some((peer, bye)) =
            self.in_dialog_request(key, "BYE", None, &format!("Reason: {reason}\r\n"), None)
        {
            self.send_in_dialog(now, peer, bye);
        }
    }

    /// Refreshes the session as its refresher (RFC 4028 7.4): UPDATE without a body when the
    /// caller allows it, otherwise a re-INVITE with our offer.
    /// A session refresh (RFC 4028): UPDATE without a body when the caller allows it, else a
    /// re-INVITE with our offer.
    fn send_refresh(&mut self, now: Instant, key: &DialogKey) {
        self.send_reoffer(now, key, false);
    }

    /// A re-INVITE with our offer, or (`media_changed` false and the caller takes UPDATE)
    /// a body-less UPDATE: for a session refresh, or because the leg's local address changed
    /// (it moved to another core). One at a time; a change during one is offered after it.
    fn send_reoffer(&mut self, now: Instant, key: &DialogKey, media_changed: bool) {
        let media = self.dialogs.get(key).and_then(|d| d.media);
        let cfg = reoffer_config(&self.cfg.offer_answer, media);
        let contact;
        let (se, use_update, offer) = {
            let Some(d) = self.dialogs.get_mut(key) else {
                return;
            };
            if d.refreshing.is_some() || d.pending_offer.is_some() || d.awaiting_ack {
                d.reoffer_due |= media_changed;
                return;
            }
            contact = format!(
                "<sip:chorus@{};transport={}>",
                d.peer.local(),
                d.peer.transport().to_ascii_lowercase()
            );
            if d.session_se.is_none() && !media_changed {
                return;
            }
            let se = d.session_se;
            let use_update = d.peer_allows_update && !media_changed;
            let offer = if use_update {
                None
            } else {
                match make_offer(&mut d.local_session, d.local_rtp, &cfg, Direction::SendRecv) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(error = %e, "no offer for a session refresh");
                        return;
                    }
                }
            };
            (se, use_update, offer)
        };
        let session = se.map_or(String::new(), |se| {
            let se = SessionExpires {
                secs: se.secs,
                refresher: Some(Refresher::Uas),
            };
            format!("Session-Expires: {se}\r\n")
        });
        let extra =
            format!("{session}Supported: timer\r\nContact: {contact}\r\nAllow: {ALLOW}\r\n");
        let sdp = offer.as_ref().map(|p| p.sdp().to_string());
        let built = if use_update {
            self.in_dialog_request(key, "UPDATE", None, &extra, None)
        } else {
            self.in_dialog_request(
                key,
                "INVITE",
                None,
                &extra,
                sdp.as_deref().map(|b| ("application/sdp", b)),
            )
        };
        let Some((peer, req)) = built else {
            return;
        };
        let cseq = req.cseq().map_or(0, |c| c.seq);
        let Some(id) = self.send_in_dialog(now, peer, req) else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(key) {
            d.refreshing = Some(id);
            d.pending_offer = offer;
        }
        self.own_requests.insert(
            id,
            OwnRequest {
                key: key.clone(),
                refresh: true,
                ack: None,
                cseq,
            },
        );
    }

    /// Results of our own requests (session refreshes; BYEs need nothing more).
    fn handle_tx_events(&mut self, now: Instant) {
        while let Some(ev) = self.tx_events.pop_front() {
            match ev {
                TxEvent::ResponseReceived {
                    id,
                    status,
                    payload,
                } if status >= 200 => self.on_own_response(now, id, status, &payload.msg),
                TxEvent::Timeout { id } | TxEvent::TransportError { id } => {
                    if let Some(own) = self.own_requests.remove(&id)
                        && own.refresh
                    {
                        self.refresh_failed(now, &own.key, 408);
                    }
                }
                TxEvent::Terminated { id } => {
                    self.own_requests.remove(&id);
                }
                _ => {}
            }
        }
    }

    fn on_own_response(&mut self, now: Instant, id: TransactionId, status: u16, msg: &SipMessage) {
        let Some(own) = self.own_requests.get(&id) else {
            return;
        };
        if !own.refresh {
            return;
        }
        let key = own.key.clone();
        if let Some(ack) = own.ack.clone() {
            // A retransmitted 2xx to our re-INVITE: the same ACK again (RFC 3261 13.2.2.4).
            if let Some(d) = self.dialogs.get(&key) {
                let peer = d.peer.clone();
                self.send(peer, ack);
            }
            return;
        }
        if !(200..300).contains(&status) {
            self.own_requests.remove(&id);
            return self.refresh_failed(now, &key, status);
        }
        let cseq = own.cseq;
        let se = msg
            .headers()
            .get("Session-Expires")
            .and_then(SessionExpires::parse);
        let cfg = self.cfg.offer_answer.clone();
        let Some(d) = self.dialogs.get_mut(&key) else {
            return;
        };
        d.refreshing = None;
        let fallback = d.session_se;
        let answered = d.pending_offer.take().map(|pending| {
            SessionDescription::parse(msg.body())
                .ok()
                .and_then(|a| process_answer(&pending, &a, &mut d.local_session, &cfg).ok())
        });
        let (core, leg) = (d.core, d.leg);
        self.session_refreshed(now, &key, se.or(fallback));
        let Some(answer) = answered else {
            return; // UPDATE: nothing to acknowledge.
        };
        if let Some((peer, ack)) = self.in_dialog_request(&key, "ACK", Some(cseq), "", None) {
            self.send(peer, ack.clone());
            if let Some(own) = self.own_requests.get_mut(&id) {
                own.ack = Some(ack);
            }
        }
        match answer {
            Some(neg) => self.set_remote(core, leg, &neg),
            None => {
                self.send_bye(now, &key, "SIP;cause=488;text=\"no usable SDP answer\"");
                return self.end_dialog(&key, EndReason::MediaFailed);
            }
        }
        self.reoffer_if_due(now, &key);
    }

    /// Our refresh was refused or went unanswered: 408 and 481 end the call (RFC 4028 10);
    /// after anything else the session carries on (and UPDATE is not tried again if the
    /// caller did not take it).
    fn refresh_failed(&mut self, now: Instant, key: &DialogKey, status: u16) {
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        d.refreshing = None;
        d.pending_offer = None;
        if status == 405 || status == 501 {
            d.peer_allows_update = false;
        }
        if status == 408 || status == 481 {
            tracing::info!(call_id = %key.call_id, status, "session refresh failed: ending the call");
            self.send_bye(now, key, "SIP;cause=408;text=\"session refresh failed\"");
            self.end_dialog(key, EndReason::SessionExpired);
        } else {
            let se = d.session_se;
            self.session_refreshed(now, key, se);
        }
    }

    fn end_dialog(&mut self, key: &DialogKey, why: EndReason) {
        let Some(d) = self.dialogs.remove(key) else {
            return;
        };
        if let Some(a) = &d.answering {
            self.answering_tx.remove(&a.tx);
        }
        self.by_leg.remove(&d.leg);
        self.leg_keys.remove(&d.leg);
        self.leg_video.remove(&d.leg);
        if self.by_call_id.get(&key.call_id) == Some(key) {
            self.by_call_id.remove(&key.call_id);
        }
        if d.leg_started {
            self.engine(d.core, Command::RemoveLeg(d.leg));
        }
        self.placement.release(d.core);
        if d.answered {
            self.out.push_back(UaOutput::CallEnded {
                call_id: key.call_id.clone(),
                reason: why,
            });
        }
        if let Some((to, _)) = d.moving {
            // Mid-move the leg is on neither core, or already on the new one.
            self.engine(to, Command::RemoveLeg(d.leg));
            self.placement.release(to);
        }
        self.admission.call_ended();
        tracing::info!(leg = %d.leg, reason = ?why, "call ended");
    }

    // ---- time and output -------------------------------------------------------------------

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.txl.poll_timeout().map(|(t, _)| t),
            self.retx.poll_timeout().map(|(t, _)| t),
            self.timers.peek().map(|Reverse((t, _))| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        self.retx.handle_timeout(now);
        while self.timers.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            self.on_timer(now, timer);
        }
        self.drain_layer();
        self.handle_tx_events(now);
    }

    fn on_timer(&mut self, now: Instant, timer: UaTimer) {
        match timer {
            UaTimer::Ring(key) => self.try_answer(now, &key),
            UaTimer::Session(key) => {
                let fired = self
                    .dialogs
                    .get_mut(&key)
                    .and_then(|d| d.session.as_mut())
                    .and_then(|t| t.handle_timeout(now));
                match fired {
                    Some(TimerReason::Expired) => {
                        tracing::info!(call_id = %key.call_id, "session not refreshed: ending the call");
                        self.send_bye(now, &key, "SIP;cause=408;text=\"session timer expired\"");
                        self.end_dialog(&key, EndReason::SessionExpired);
                    }
                    Some(TimerReason::RefreshDue) => self.send_refresh(now, &key),
                    // Moved by a refresh; its new deadline has its own entry.
                    None => {}
                }
            }
            UaTimer::LegCreate(key) => {
                let waiting = self
                    .dialogs
                    .get(&key)
                    .and_then(|d| d.answering.as_ref())
                    .is_some_and(|a| !a.leg_ready);
                if waiting {
                    tracing::warn!(call_id = %key.call_id, "media core did not confirm the leg: refusing the call");
                    self.media_failed(now, &key);
                }
            }
        }
    }

    /// Moves what the transaction layer and the 2xx retransmitter produced to the output.
    fn drain_layer(&mut self) {
        while let Some(t) = self.txl.poll_transmit() {
            let p = t.message.payload;
            self.out.push_back(UaOutput::Send {
                peer: p.peer,
                message: p.msg,
            });
        }
        while let Some(t) = self.retx.poll_transmit() {
            self.out.push_back(UaOutput::Send {
                peer: t.response.peer,
                message: t.response.msg,
            });
        }
        while let Some(ev) = self.retx.poll_event() {
            // No ACK for our 2xx within 64*T1: the caller is gone (RFC 3261 13.3.1.4).
            let crate::transaction::Uas2xxEvent::AckTimeout { key } = ev;
            if let Some(k) = self.by_call_id.get(&key.call_id).cloned() {
                tracing::info!(call_id = %key.call_id, "no ACK for our 200: ending the call");
                self.end_dialog(&k, EndReason::NoAck);
            }
        }
        while let Some(ev) = self.txl.poll_event() {
            if let TxEvent::Timeout { id } | TxEvent::TransportError { id } = &ev {
                tracing::debug!(?id, "transaction failed");
            }
            self.tx_events.push_back(ev);
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<UaOutput<P>> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_engine::runtime::{LegConfig, TelephoneEventPt};

    #[derive(Clone, Debug, PartialEq)]
    struct FakePeer(SocketAddr);

    impl SipPeer for FakePeer {
        fn remote(&self) -> SocketAddr {
            self.0
        }
        fn local(&self) -> SocketAddr {
            "127.0.0.1:5060".parse().unwrap()
        }
        fn transport(&self) -> &'static str {
            "UDP"
        }
        fn reliable(&self) -> bool {
            false
        }
    }

    const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn request(
        method: &str,
        branch: &str,
        cseq: u32,
        to_tag: Option<&str>,
        body: &str,
    ) -> SipMessage {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        let text = format!(
            "{method} sip:1000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bK{branch}\r\nFrom: <sip:alice@127.0.0.1:7000>;tag=a1\r\nTo: <sip:1000@127.0.0.1:5060>{to_tag}\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:7000>\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    fn ua(now: Instant) -> UserAgent<FakePeer> {
        ua_on(now, vec![vec!["127.0.0.1:20000".parse().unwrap()]])
    }

    fn ua_on(now: Instant, cores: Vec<Vec<SocketAddr>>) -> UserAgent<FakePeer> {
        let cfg = UaConfig {
            offer_answer: OfferAnswerConfig::default(),
            admission: AdmissionConfig::default(),
            media_ip: "127.0.0.1".parse().unwrap(),
            inactivity_timeout: Some(Duration::from_secs(60)),
            server: "chorus-test".into(),
            echo: true,
            answer_delay: Duration::ZERO,
            access: AccessConfig::default(),
            session_timer: TimerPolicy::default(),
        };
        UserAgent::new(cfg, cores, now)
    }

    fn outputs(ua: &mut UserAgent<FakePeer>) -> Vec<UaOutput<FakePeer>> {
        std::iter::from_fn(|| ua.poll_output()).collect()
    }

    /// Outputs of an INVITE with an offer once the core confirms its leg (the 200 waits for
    /// that).
    fn invite_outputs(
        ua: &mut UserAgent<FakePeer>,
        now: Instant,
        peer: &FakePeer,
        invite: SipMessage,
    ) -> Vec<UaOutput<FakePeer>> {
        ua.handle_message(now, peer.clone(), invite);
        let mut out = outputs(ua);
        if let Some(id) = created_leg(&out) {
            ua.handle_engine_event(now, CoreId(0), leg_created(id));
            out.extend(outputs(ua));
        }
        out
    }

    fn created_leg(out: &[UaOutput<FakePeer>]) -> Option<LegId> {
        out.iter().find_map(|o| match o {
            UaOutput::Engine {
                command: Command::CreateLeg(c),
                ..
            } => Some(c.id),
            _ => None,
        })
    }

    fn leg_created(id: LegId) -> Event {
        Event::LegCreated {
            id,
            core: CoreId(0),
            rtp: "127.0.0.1:20000".parse().unwrap(),
            rtcp: "127.0.0.1:20000".parse().unwrap(),
        }
    }

    fn statuses(out: &[UaOutput<FakePeer>]) -> Vec<u16> {
        out.iter()
            .filter_map(|o| match o {
                UaOutput::Send { message, .. } => message.status(),
                _ => None,
            })
            .collect()
    }

    /// The video the UA gives the engine: `SetVideo` with the answer's video on the pair
    /// after the audio's, nothing for a re-offer that changes nothing, `None` when the peer
    /// drops its video.
    #[test]
    fn video_is_given_to_the_core_and_taken_away() {
        use crate::sdp::VideoConfig;
        let t0 = Instant::now();
        let pairs = vec![
            "127.0.0.1:20000".parse().unwrap(),
            "127.0.0.1:20002".parse().unwrap(),
        ];
        let mut ua = ua_on(t0, vec![pairs]);
        ua.cfg.offer_answer.video = Some(VideoConfig::default());
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let video = format!(
            "{SDP}m=video 6002 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\na=rtcp-fb:100 nack\r\n"
        );
        let set_video =
            |out: &[UaOutput<FakePeer>]| -> Vec<Option<chorus_engine::runtime::VideoConfig>> {
                (out.iter())
                    .filter_map(|o| match o {
                        UaOutput::Engine {
                            command: Command::SetVideo { video, .. },
                            ..
                        } => Some(video.as_deref().cloned()),
                        _ => None,
                    })
                    .collect()
            };
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "v1", 1, None, &video));
        let given = set_video(&out);
        let v = given[0].as_ref().expect("video given");
        assert_eq!(given.len(), 1);
        assert_eq!((v.remote_rtp.port(), v.pair), (6002, Some(1)));
        assert!(v.producer.is_some() && v.receive.len() == 1);
        let answer = (out.iter())
            .find_map(|o| match o {
                UaOutput::Send { message, .. } if message.status() == Some(200) => {
                    Some(message.clone())
                }
                _ => None,
            })
            .unwrap();
        let sdp = SessionDescription::parse(answer.body()).unwrap();
        assert_eq!((sdp.media[0].port, sdp.media[1].port), (20000, 20002));
        let tag = answer.to().unwrap().tag().unwrap().to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "v1", 1, Some(&tag), ""));
        outputs(&mut ua);
        // The same offer again (a session refresh): nothing new for the core.
        ua.handle_message(
            t0,
            peer.clone(),
            request("UPDATE", "v2", 2, Some(&tag), &video),
        );
        assert!(set_video(&outputs(&mut ua)).is_empty());
        // The peer drops its video: taken away.
        ua.handle_message(
            t0,
            peer.clone(),
            request("UPDATE", "v3", 3, Some(&tag), SDP),
        );
        let taken: Vec<bool> = set_video(&outputs(&mut ua))
            .iter()
            .map(Option::is_none)
            .collect();
        assert_eq!(taken, [true]);
    }

    #[test]
    fn options_invite_ack_bye() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());

        ua.handle_message(t0, peer.clone(), request("OPTIONS", "o1", 1, None, ""));
        assert_eq!(statuses(&outputs(&mut ua)), vec![200]);

        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "i1", 1, None, SDP));
        let mut leg = None;
        let mut source = None;
        let mut answer = None;
        for o in &out {
            match o {
                UaOutput::Engine {
                    command: Command::CreateLeg(cfg),
                    core,
                } => {
                    assert_eq!(*core, CoreId(0));
                    assert_eq!(cfg.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
                    assert_eq!(cfg.pair, Some(0));
                    leg = Some(cfg.id);
                    source = Some(format!("{} cname:{}", cfg.local_ssrc, cfg.cname));
                }
                UaOutput::Send { message, peer: p } if message.status() == Some(200) => {
                    assert_eq!(p, &peer);
                    answer = Some(message.clone());
                }
                _ => {}
            }
        }
        let leg = leg.expect("a leg was created");
        assert!(out.iter().any(|o| matches!(o, UaOutput::Engine { command: Command::Connect { from, to }, .. } if *from == leg && *to == leg)));
        let answer = answer.expect("200 OK");
        let sdp = SessionDescription::parse(answer.body()).unwrap();
        assert_eq!(sdp.media[0].port, 20000);
        // The answer names the leg's SSRC and the CNAME its RTCP carries (RFC 5576 6.1).
        let ssrc = sdp.media[0].attributes.iter().find(|a| a.name == "ssrc");
        assert_eq!(ssrc.and_then(|a| a.value.clone()), source);
        let tag = answer.to().unwrap().tag().unwrap().to_string();
        assert_eq!(ua.calls(), 1);

        // Without an ACK the 200 is retransmitted (T1 = 500 ms).
        ua.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(statuses(&outputs(&mut ua)), vec![200]);
        ua.handle_message(
            t0 + Duration::from_millis(600),
            peer.clone(),
            request("ACK", "a1", 1, Some(&tag), ""),
        );
        ua.handle_timeout(t0 + Duration::from_secs(2));
        assert!(
            statuses(&outputs(&mut ua)).is_empty(),
            "no retransmission after ACK"
        );

        ua.handle_message(
            t0 + Duration::from_secs(3),
            peer.clone(),
            request("BYE", "b1", 2, Some(&tag), ""),
        );
        let out = outputs(&mut ua);
        assert_eq!(statuses(&out), vec![200]);
        assert!(out.iter().any(
            |o| matches!(o, UaOutput::Engine { command: Command::RemoveLeg(l), .. } if *l == leg)
        ));
        assert_eq!(ua.calls(), 0);

        // A BYE for a dialog that does not exist.
        ua.handle_message(
            t0 + Duration::from_secs(4),
            peer,
            request("BYE", "b2", 3, Some(&tag), ""),
        );
        assert_eq!(statuses(&outputs(&mut ua)), vec![481]);
    }

    #[test]
    fn refusals() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let unknown = SDP
            .replace("0 101", "98")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:98 FOO/8000");
        ua.handle_message(t0, peer.clone(), request("INVITE", "x2", 2, None, &unknown));
        assert_eq!(statuses(&outputs(&mut ua)), vec![488]);
        ua.handle_message(t0, peer.clone(), request("REGISTER", "x3", 3, None, ""));
        assert_eq!(statuses(&outputs(&mut ua)), vec![405]);
        ua.handle_message(t0, peer.clone(), request("FOO", "x4", 4, None, ""));
        assert_eq!(statuses(&outputs(&mut ua)), vec![501]);
        // RFC 4475 bext01: an unknown Require refuses any request, not only INVITE.
        let mut require = request("OPTIONS", "x5", 5, None, "");
        require.headers_mut().set("Require", "newfeature1");
        ua.handle_message(t0, peer.clone(), require);
        let out = outputs(&mut ua);
        assert_eq!(statuses(&out), vec![420]);
        assert!(
            matches!(&out[0], UaOutput::Send { message, .. } if message.headers().get("Unsupported") == Some("newfeature1"))
        );
        // RFC 4475 sdp01: a caller that does not accept SDP cannot take our answer.
        let mut accept = request("INVITE", "x6", 6, None, SDP);
        accept.headers_mut().set("Accept", "text/nobodyknowsthis");
        ua.handle_message(t0, peer.clone(), accept);
        assert_eq!(statuses(&outputs(&mut ua)), vec![406]);
        // RFC 3261 8.2.3: a compressed offer we cannot read.
        let mut gzip = request("INVITE", "x7", 7, None, SDP);
        gzip.headers_mut().set("Content-Encoding", "gzip");
        ua.handle_message(t0, peer, gzip);
        let out = outputs(&mut ua);
        assert_eq!(statuses(&out), vec![415]);
        assert!(
            matches!(&out[0], UaOutput::Send { message, .. } if message.headers().get("Accept-Encoding") == Some("identity"))
        );
        assert_eq!(ua.calls(), 0);
    }

    #[test]
    fn media_timeout_sends_bye() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "i1", 1, None, SDP));
        let leg = created_leg(&out).unwrap();
        ua.handle_engine_event(
            t0,
            CoreId(0),
            Event::Inactive {
                id: leg,
                idle: Duration::from_secs(60),
            },
        );
        let out = outputs(&mut ua);
        let bye = out
            .iter()
            .find_map(|o| match o {
                UaOutput::Send { message, .. }
                    if message.method().is_some_and(|m| m.as_str() == "BYE") =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .expect("BYE sent");
        assert_eq!(bye.uri().unwrap().to_string(), "sip:alice@127.0.0.1:7000");
        assert!(bye.headers().get("Reason").unwrap().contains("RTP timeout"));
        assert!(out.iter().any(
            |o| matches!(o, UaOutput::Engine { command: Command::RemoveLeg(l), .. } if *l == leg)
        ));
        assert_eq!(ua.calls(), 0);
    }

    #[test]
    fn missing_ack_ends_the_call() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        ua.handle_message(t0, peer, request("INVITE", "n1", 1, None, SDP));
        outputs(&mut ua);
        assert_eq!(ua.calls(), 1);
        // The 200 is retransmitted until 64*T1 (32 s), then the call is given up.
        while let Some(at) = ua.poll_timeout() {
            assert!(at <= t0 + Duration::from_secs(33), "no timer past 64*T1");
            ua.handle_timeout(at);
            if ua.calls() == 0 {
                break;
            }
        }
        assert_eq!(ua.calls(), 0);
        assert!(outputs(&mut ua).iter().any(|o| matches!(
            o,
            UaOutput::Engine {
                command: Command::RemoveLeg(_),
                ..
            }
        )));
    }

    #[test]
    fn delayed_offer_takes_the_answer_from_the_ack() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        ua.handle_message(t0, peer.clone(), request("INVITE", "d1", 1, None, ""));
        let out = outputs(&mut ua);
        assert!(
            !out.iter().any(|o| matches!(o, UaOutput::Engine { .. })),
            "no leg before the answer"
        );
        let ok = out
            .iter()
            .find_map(|o| match o {
                UaOutput::Send { message, .. } if message.status() == Some(200) => {
                    Some(message.clone())
                }
                _ => None,
            })
            .expect("200 with our offer");
        let offer = SessionDescription::parse(ok.body()).unwrap();
        assert_eq!(offer.media[0].port, 20000);
        let tag = ok.to().unwrap().tag().unwrap().to_string();
        // The caller answers with PCMU at 127.0.0.1:6000 in the ACK.
        let answer = SDP.replace("0 101", "0");
        ua.handle_message(
            t0,
            peer.clone(),
            request("ACK", "d2", 1, Some(&tag), &answer),
        );
        let out = outputs(&mut ua);
        let created = out.iter().find_map(|o| match o {
            UaOutput::Engine {
                command: Command::CreateLeg(c),
                ..
            } => Some(c.remote_rtp),
            _ => None,
        });
        assert_eq!(created, Some(Some("127.0.0.1:6000".parse().unwrap())));
        assert_eq!(ua.calls(), 1);
        // The call record learns the codec now (the 200 went out before it was known).
        assert!(
            out.iter().any(|o| matches!(o, UaOutput::MediaChanged { call_id, media: (Codec::Pcmu, None) } if call_id == "call-1")),
            "{out:?}"
        );

        // A second delayed-offer call whose ACK carries no answer is ended with BYE; no leg
        // was ever created, so none is removed.
        let mut second = request("INVITE", "d3", 1, None, "");
        second.headers_mut().set("Call-ID", "call-2");
        ua.handle_message(t0, peer.clone(), second);
        let ok = outputs(&mut ua)
            .into_iter()
            .find_map(|o| match o {
                UaOutput::Send { message, .. } if message.status() == Some(200) => Some(message),
                _ => None,
            })
            .unwrap();
        let tag = ok.to().unwrap().tag().unwrap().to_string();
        let mut ack = request("ACK", "d4", 1, Some(&tag), "");
        ack.headers_mut().set("Call-ID", "call-2");
        ua.handle_message(t0, peer, ack);
        let out = outputs(&mut ua);
        assert!(out.iter().any(|o| matches!(o, UaOutput::Send { message, .. } if message.method().is_some_and(|m| m.as_str() == "BYE"))));
        assert!(!out.iter().any(|o| matches!(o, UaOutput::Engine { .. })));
        assert_eq!(ua.calls(), 1);
    }

    fn ua_with(now: Instant, answer_delay: Duration) -> UserAgent<FakePeer> {
        let mut ua = ua(now);
        ua.cfg.answer_delay = answer_delay;
        ua
    }

    fn sent(out: &[UaOutput<FakePeer>], status: u16) -> Option<&SipMessage> {
        out.iter().find_map(|o| match o {
            UaOutput::Send { message, .. } if message.status() == Some(status) => Some(message),
            _ => None,
        })
    }

    fn removed(out: &[UaOutput<FakePeer>], leg: LegId) -> bool {
        out.iter().any(
            |o| matches!(o, UaOutput::Engine { command: Command::RemoveLeg(l), .. } if *l == leg),
        )
    }

    #[test]
    fn rings_then_answers_and_cancel_before_answer_gets_487() {
        let t0 = Instant::now();
        let mut ua = ua_with(t0, Duration::from_secs(2));
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "r1", 1, None, SDP));
        assert_eq!(
            statuses(&out),
            vec![180],
            "ringing, not answered before the ring time"
        );
        let leg = created_leg(&out).unwrap();
        ua.handle_timeout(t0 + Duration::from_secs(2));
        let out = outputs(&mut ua);
        let ok = sent(&out, 200).unwrap();
        assert!(!ok.body().is_empty());
        assert!(!removed(&out, leg));
        let tag = ok.to().unwrap().tag().unwrap().to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "r1a", 1, Some(&tag), ""));

        // A second call is cancelled while it rings.
        let mut invite = request("INVITE", "r2", 1, None, SDP);
        invite.headers_mut().set("Call-ID", "call-2");
        let out = invite_outputs(&mut ua, t0, &peer, invite);
        assert_eq!(statuses(&out), vec![180]);
        let leg2 = created_leg(&out).unwrap();
        let mut cancel = request("CANCEL", "r2", 1, None, "");
        cancel.headers_mut().set("Call-ID", "call-2");
        ua.handle_message(t0 + Duration::from_secs(1), peer.clone(), cancel);
        let out = outputs(&mut ua);
        let mut codes = statuses(&out);
        codes.sort();
        assert_eq!(codes, vec![200, 487]);
        let ended = sent(&out, 487).unwrap();
        assert_eq!(ended.cseq().unwrap().method.as_str(), "INVITE");
        assert!(removed(&out, leg2));
        assert_eq!(ua.calls(), 1);
        // The ring timer of the cancelled call finds nothing to answer.
        ua.handle_timeout(t0 + Duration::from_secs(3));
        assert!(sent(&outputs(&mut ua), 200).is_none());
        // A CANCEL for a call already answered changes nothing.
        ua.handle_message(t0, peer.clone(), request("CANCEL", "r1", 1, None, ""));
        let out = outputs(&mut ua);
        assert_eq!(statuses(&out), vec![200]);
        assert!(!removed(&out, leg));
        assert_eq!(ua.calls(), 1);
    }

    #[test]
    fn no_answer_without_media() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        // The core refuses the leg: 503, never a 200 followed by BYE.
        ua.handle_message(t0, peer.clone(), request("INVITE", "m1", 1, None, SDP));
        let leg = created_leg(&outputs(&mut ua)).unwrap();
        ua.handle_engine_event(
            t0,
            CoreId(0),
            Event::LegRejected {
                id: leg,
                reason: "no".into(),
            },
        );
        let out = outputs(&mut ua);
        let refusal = sent(&out, 503).expect("503");
        assert_eq!(refusal.headers().get("Retry-After"), Some("5"));
        assert!(statuses(&out).iter().all(|&s| s == 503));
        assert_eq!(ua.calls(), 0);

        // The core never answers.
        let mut invite = request("INVITE", "m2", 1, None, SDP);
        invite.headers_mut().set("Call-ID", "call-2");
        ua.handle_message(t0, peer.clone(), invite);
        let leg = created_leg(&outputs(&mut ua)).unwrap();
        ua.handle_timeout(t0 + LEG_CREATE_TIMEOUT);
        let out = outputs(&mut ua);
        assert!(sent(&out, 503).is_some());
        assert!(removed(&out, leg));
        assert_eq!(ua.calls(), 0);

        // The core's queue was full.
        let mut invite = request("INVITE", "m3", 1, None, SDP);
        invite.headers_mut().set("Call-ID", "call-3");
        ua.handle_message(t0, peer, invite);
        let out = outputs(&mut ua);
        let create = out
            .into_iter()
            .find_map(|o| match o {
                UaOutput::Engine { command, .. } if matches!(command, Command::CreateLeg(_)) => {
                    Some(command)
                }
                _ => None,
            })
            .unwrap();
        ua.handle_engine_refused(t0, &create);
        let out = outputs(&mut ua);
        assert!(sent(&out, 503).is_some());
        assert!(!out.iter().any(|o| matches!(
            o,
            UaOutput::Engine {
                command: Command::RemoveLeg(_),
                ..
            }
        )));
        assert_eq!(ua.calls(), 0);
    }

    #[test]
    fn reoffers_update_glare_and_refer() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "u1", 1, None, SDP));
        let tag = sent(&out, 200)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "u2", 1, Some(&tag), ""));
        outputs(&mut ua);

        // UPDATE with an offer moving the media: answered in its 200, leg re-pointed.
        let moved = SDP.replace("6000", "6100");
        ua.handle_message(
            t0,
            peer.clone(),
            request("UPDATE", "u3", 2, Some(&tag), &moved),
        );
        let out = outputs(&mut ua);
        assert!(!sent(&out, 200).unwrap().body().is_empty());
        assert!(out.iter().any(|o| matches!(o, UaOutput::Engine { command: Command::UpdateLeg(u), .. } if u.remote_rtp.port() == 6100)));
        // UPDATE without a body: a refresh, 200 without SDP.
        ua.handle_message(t0, peer.clone(), request("UPDATE", "u4", 3, Some(&tag), ""));
        assert!(sent(&outputs(&mut ua), 200).unwrap().body().is_empty());

        // re-INVITE without an offer: our offer in the 200 ...
        ua.handle_message(t0, peer.clone(), request("INVITE", "u5", 4, Some(&tag), ""));
        let out = outputs(&mut ua);
        let offer = SessionDescription::parse(sent(&out, 200).unwrap().body()).unwrap();
        assert_eq!(offer.media[0].port, 20000);
        // ... an UPDATE with an offer before the ACK is glare ...
        ua.handle_message(
            t0,
            peer.clone(),
            request("UPDATE", "u6", 5, Some(&tag), SDP),
        );
        assert_eq!(statuses(&outputs(&mut ua)), vec![491]);
        // ... and the ACK brings the answer.
        let answer = SDP.replace("6000", "6200").replace("0 101", "0");
        ua.handle_message(
            t0,
            peer.clone(),
            request("ACK", "u7", 4, Some(&tag), &answer),
        );
        let out = outputs(&mut ua);
        assert!(out.iter().any(|o| matches!(o, UaOutput::Engine { command: Command::UpdateLeg(u), .. } if u.remote_rtp.port() == 6200)));
        assert!(!out.iter().any(|o| matches!(
            o,
            UaOutput::Engine {
                command: Command::CreateLeg(_),
                ..
            }
        )));

        ua.handle_message(t0, peer, request("REFER", "u8", 6, Some(&tag), ""));
        assert_eq!(statuses(&outputs(&mut ua)), vec![501]);
        assert_eq!(ua.calls(), 1);
    }

    #[test]
    fn bye_on_the_early_dialog_ends_the_invite_with_487() {
        let t0 = Instant::now();
        let mut ua = ua_with(t0, Duration::from_secs(5));
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "e1", 1, None, SDP));
        let tag = sent(&out, 180)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        ua.handle_message(t0, peer, request("BYE", "e2", 2, Some(&tag), ""));
        let mut codes = statuses(&outputs(&mut ua));
        codes.sort();
        assert_eq!(codes, vec![200, 487]);
        assert_eq!(ua.calls(), 0);
    }

    #[test]
    fn challenges_unknown_callers_and_admits_users() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        ua.access = Access::new(
            AccessConfig {
                mode: crate::access::AuthMode::Challenge,
                realm: "chorus".into(),
                trunks: vec![],
                users: vec![("alice".into(), "secret".into())],
                algorithms: vec![],
            },
            [1; 32],
        );
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        ua.handle_message(t0, peer.clone(), request("INVITE", "c1", 1, None, SDP));
        let out = outputs(&mut ua);
        let challenge = sent(&out, 401).expect("401");
        let values: Vec<_> = challenge.headers().all("WWW-Authenticate").collect();
        assert_eq!(values.len(), 2);
        assert!(
            created_leg(&out).is_none(),
            "nothing allocated before authentication"
        );
        let ch = crate::digest::Challenge::parse(values[0]).unwrap();
        let creds = crate::digest::Credentials::answer(
            &ch,
            "alice",
            "secret",
            "INVITE",
            "sip:1000@127.0.0.1:5060",
            b"",
            "c0ffee",
            1,
        );
        let mut again = request("INVITE", "c2", 2, None, SDP);
        again
            .headers_mut()
            .push("Authorization", &creds.to_string());
        let out = invite_outputs(&mut ua, t0, &peer, again);
        assert!(sent(&out, 200).is_some());
        let mut wrong = request("INVITE", "c3", 3, None, SDP);
        wrong.headers_mut().set("Call-ID", "call-2");
        let bad = crate::digest::Credentials::answer(
            &ch,
            "alice",
            "guess",
            "INVITE",
            "sip:1000@127.0.0.1:5060",
            b"",
            "c0ffee",
            1,
        );
        wrong.headers_mut().push("Authorization", &bad.to_string());
        ua.handle_message(t0, peer, wrong);
        assert_eq!(statuses(&outputs(&mut ua)), vec![403]);
        assert_eq!(ua.calls(), 1);
    }

    fn with_headers(mut m: SipMessage, headers: &[(&str, &str)]) -> SipMessage {
        for (n, v) in headers {
            m.headers_mut().push(n, v);
        }
        m
    }

    fn sent_request(out: &[UaOutput<FakePeer>], method: &str) -> Option<SipMessage> {
        out.iter().find_map(|o| match o {
            UaOutput::Send { message, .. }
                if message.method().is_some_and(|m| m.as_str() == method) =>
            {
                Some(message.clone())
            }
            _ => None,
        })
    }

    #[test]
    fn session_timer_caller_refreshes_or_the_call_ends() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        // Too small an interval: 422 with our Min-SE, nothing allocated.
        let small = with_headers(
            request("INVITE", "s0", 1, None, SDP),
            &[("Session-Expires", "30"), ("Supported", "timer")],
        );
        ua.handle_message(t0, peer.clone(), small);
        let out = outputs(&mut ua);
        assert_eq!(sent(&out, 422).unwrap().headers().get("Min-SE"), Some("90"));
        assert!(created_leg(&out).is_none());

        let invite = with_headers(
            request("INVITE", "s1", 2, None, SDP),
            &[
                ("Session-Expires", "120"),
                ("Supported", "timer"),
                ("Require", "timer"),
            ],
        );
        let out = invite_outputs(&mut ua, t0, &peer, invite);
        let ok = sent(&out, 200).expect("Require: timer is supported");
        assert_eq!(
            ok.headers().get("Session-Expires"),
            Some("120;refresher=uac")
        );
        assert_eq!(ok.headers().get("Require"), Some("timer"));
        let tag = ok.to().unwrap().tag().unwrap().to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "s2", 2, Some(&tag), ""));
        outputs(&mut ua);
        // The caller refreshes with UPDATE at 60 s: the call lives on past 120 s.
        let update = with_headers(
            request("UPDATE", "s3", 3, Some(&tag), ""),
            &[
                ("Session-Expires", "120;refresher=uac"),
                ("Supported", "timer"),
            ],
        );
        ua.handle_message(t0 + Duration::from_secs(60), peer.clone(), update);
        let out = outputs(&mut ua);
        assert_eq!(
            sent(&out, 200).unwrap().headers().get("Session-Expires"),
            Some("120;refresher=uac")
        );
        ua.handle_timeout(t0 + Duration::from_secs(100));
        assert!(sent_request(&outputs(&mut ua), "BYE").is_none());
        assert_eq!(ua.calls(), 1);
        // Then it stops refreshing: BYE at 60 + 120 - 32 s.
        ua.handle_timeout(t0 + Duration::from_secs(60 + 120 - 32));
        let out = outputs(&mut ua);
        let bye = sent_request(&out, "BYE").expect("BYE on expiry");
        assert!(
            bye.headers()
                .get("Reason")
                .unwrap()
                .contains("session timer expired")
        );
        assert_eq!(ua.calls(), 0);
    }

    #[test]
    fn session_timer_we_refresh_with_update_or_reinvite() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        // The caller wants us to refresh and allows UPDATE.
        let invite = with_headers(
            request("INVITE", "w1", 1, None, SDP),
            &[
                ("Session-Expires", "90;refresher=uas"),
                ("Allow", "INVITE, ACK, BYE, UPDATE"),
            ],
        );
        let out = invite_outputs(&mut ua, t0, &peer, invite);
        let ok = sent(&out, 200).unwrap();
        assert_eq!(
            ok.headers().get("Session-Expires"),
            Some("90;refresher=uas")
        );
        assert!(ok.headers().get("Require").is_none());
        let tag = ok.to().unwrap().tag().unwrap().to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "w2", 1, Some(&tag), ""));
        outputs(&mut ua);
        ua.handle_timeout(t0 + Duration::from_secs(45));
        let out = outputs(&mut ua);
        let update = sent_request(&out, "UPDATE").expect("UPDATE at half the interval");
        assert_eq!(
            update.headers().get("Session-Expires"),
            Some("90;refresher=uas")
        );
        assert_eq!(
            update.uri().unwrap().to_string(),
            "sip:alice@127.0.0.1:7000"
        );
        let ok = SipMessage::response_to(&update, 200, "OK")
            .with_header("Session-Expires", "90;refresher=uas");
        ua.handle_message(t0 + Duration::from_secs(45), peer.clone(), ok);
        outputs(&mut ua);
        ua.handle_timeout(t0 + Duration::from_secs(89));
        assert!(
            sent_request(&outputs(&mut ua), "BYE").is_none(),
            "refreshed"
        );
        // The next refresh gets 481: the call is over.
        ua.handle_timeout(t0 + Duration::from_secs(90));
        let update = sent_request(&outputs(&mut ua), "UPDATE").expect("second refresh");
        ua.handle_message(
            t0 + Duration::from_secs(90),
            peer.clone(),
            SipMessage::response_to(&update, 481, "Call/Transaction Does Not Exist"),
        );
        assert!(sent_request(&outputs(&mut ua), "BYE").is_some());
        assert_eq!(ua.calls(), 0);

        // Without UPDATE in Allow we refresh with a re-INVITE carrying our offer, and ACK
        // its 200 (again for a retransmission).
        let mut invite = with_headers(
            request("INVITE", "w3", 1, None, SDP),
            &[("Session-Expires", "90;refresher=uas")],
        );
        invite.headers_mut().set("Call-ID", "call-2");
        let out = invite_outputs(&mut ua, t0, &peer, invite);
        let tag = sent(&out, 200)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        let mut ack = request("ACK", "w4", 1, Some(&tag), "");
        ack.headers_mut().set("Call-ID", "call-2");
        ua.handle_message(t0, peer.clone(), ack);
        outputs(&mut ua);
        ua.handle_timeout(t0 + Duration::from_secs(45));
        let reinvite = sent_request(&outputs(&mut ua), "INVITE").expect("re-INVITE");
        assert!(!reinvite.body().is_empty());
        let answer = SDP.replace("6000", "6300").replace("0 101", "0");
        let ok = SipMessage::response_to(&reinvite, 200, "OK")
            .with_header("Contact", "<sip:alice@127.0.0.1:7000>")
            .with_body("application/sdp", answer);
        ua.handle_message(t0 + Duration::from_secs(45), peer.clone(), ok.clone());
        let out = outputs(&mut ua);
        let ack = sent_request(&out, "ACK").expect("ACK for the 2xx");
        assert_eq!(ack.cseq().unwrap().seq, reinvite.cseq().unwrap().seq);
        assert!(out.iter().any(|o| matches!(o, UaOutput::Engine { command: Command::UpdateLeg(u), .. } if u.remote_rtp.port() == 6300)));
        ua.handle_message(t0 + Duration::from_secs(46), peer, ok);
        assert!(
            sent_request(&outputs(&mut ua), "ACK").is_some(),
            "ACK again"
        );
        assert_eq!(ua.calls(), 1);
    }

    #[test]
    fn dtmf_from_media_and_from_info_reach_the_application_alike() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "i1", 1, None, SDP));
        let (leg, tag) = out.iter().fold((None, None), |(leg, tag), o| match o {
            UaOutput::Engine {
                command: Command::CreateLeg(c),
                ..
            } => {
                // The negotiated telephone-event reaches the media core.
                assert_eq!(
                    c.telephone_events,
                    vec![TelephoneEventPt {
                        pt: chorus_engine::rtp::Pt(101),
                        clock_rate: 8000
                    }]
                );
                (Some(c.id), tag)
            }
            UaOutput::Send { message, .. } => {
                let to_tag = message.to().and_then(|t| t.tag().map(str::to_string));
                (leg, to_tag.or(tag))
            }
            _ => (leg, tag),
        });
        let (leg, tag) = (leg.unwrap(), tag.unwrap());
        let dtmf = |out: Vec<UaOutput<FakePeer>>| -> Vec<_> {
            out.into_iter()
                .filter_map(|o| match o {
                    UaOutput::Dtmf {
                        call_id,
                        digit,
                        duration_ms,
                        source,
                    } => Some((call_id, digit.as_char(), duration_ms, source)),
                    _ => None,
                })
                .collect()
        };
        let event = |digit| Event::Dtmf {
            id: leg,
            digit,
            duration_ms: 120,
            inband: false,
        };
        ua.handle_engine_event(t0, CoreId(0), event('#'));
        assert_eq!(
            dtmf(outputs(&mut ua)),
            vec![(
                "call-1".into(),
                '#',
                Some(120),
                dtmf_info::DtmfSource::Rfc4733
            )]
        );
        let info = request("INFO", "n1", 2, Some(&tag), "")
            .with_body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n");
        ua.handle_message(t0, peer.clone(), info);
        let out = outputs(&mut ua);
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(
            dtmf(out),
            vec![(
                "call-1".into(),
                '5',
                Some(160),
                dtmf_info::DtmfSource::SipInfo
            )]
        );
        // A digit from a leg no call owns (any more) is dropped.
        ua.handle_message(t0, peer, request("BYE", "b1", 3, Some(&tag), ""));
        outputs(&mut ua);
        ua.handle_engine_event(t0, CoreId(0), event('1'));
        assert!(dtmf(outputs(&mut ua)).is_empty());
    }

    #[test]
    fn hold_resume_and_rekey_reach_the_leg() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());
        let crypto = |k: &str| {
            SDP.replace("RTP/AVP 0 101", "RTP/SAVP 0 101")
                + &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n")
        };
        let (k1, k2) = (
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
            "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e",
        );
        let out = invite_outputs(
            &mut ua,
            t0,
            &peer,
            request("INVITE", "h1", 1, None, &crypto(k1)),
        );
        let tag = sent(&out, 200)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        ua.handle_message(t0, peer.clone(), request("ACK", "h2", 1, Some(&tag), ""));
        outputs(&mut ua);
        let mut cseq = 1;
        let mut reoffer = |ua: &mut UserAgent<FakePeer>, sdp: String| -> LegUpdate {
            cseq += 1;
            let branch = format!("h{cseq}x");
            ua.handle_message(
                t0,
                peer.clone(),
                request("UPDATE", &branch, cseq, Some(&tag), &sdp),
            );
            outputs(ua)
                .into_iter()
                .find_map(|o| match o {
                    UaOutput::Engine {
                        command: Command::UpdateLeg(u),
                        ..
                    } => Some(*u),
                    _ => None,
                })
                .expect("the leg is updated")
        };
        // Hold: the caller sends only; we must not send to it. Same key: no rekey.
        let hold = reoffer(&mut ua, crypto(k1) + "a=sendonly\r\n");
        assert!(!hold.send);
        assert_eq!(hold.srtp, None);
        let resume = reoffer(&mut ua, crypto(k1));
        assert!(resume.send);
        assert_eq!(resume.srtp, None);
        // A new key from the caller: the leg's inbound context is replaced, ours kept.
        let rekey = reoffer(&mut ua, crypto(k2));
        let (inbound, outbound) = rekey.srtp.expect("rekeyed");
        assert_eq!(inbound.unwrap().key, (1..17).collect::<Vec<u8>>());
        assert!(outbound.is_some());
    }

    #[test]
    fn a_call_moves_to_another_core_and_is_offered_the_new_address() {
        let t0 = Instant::now();
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut ua = ua_on(t0, vec![vec![a(20000)], vec![a(20100)]]);
        let peer = FakePeer(a(7000));
        let out = invite_outputs(&mut ua, t0, &peer, request("INVITE", "m1", 1, None, SDP));
        let leg = created_leg(&out).unwrap();
        let tag = sent(&out, 200)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        assert_eq!(ua.move_call("nope", CoreId(1)), Err(MoveError::UnknownCall));
        assert_eq!(ua.move_call("call-1", CoreId(0)), Err(MoveError::SameCore));
        assert_eq!(
            ua.move_call("call-1", CoreId(7)),
            Err(MoveError::NoSuchCore)
        );

        ua.move_call("call-1", CoreId(1)).unwrap();
        assert_eq!(ua.move_call("call-1", CoreId(1)), Err(MoveError::Busy));
        let out = outputs(&mut ua);
        assert!(matches!(
            out.as_slice(),
            [UaOutput::Engine { core: CoreId(0), command: Command::DetachLeg(l) }] if *l == leg
        ));
        let moving = chorus_engine::runtime::MovingLeg::new(&LegConfig::new(leg), t0).unwrap();
        ua.handle_engine_event(t0, CoreId(0), Event::LegDetached { leg: moving });
        let out = outputs(&mut ua);
        assert!(matches!(
            out.as_slice(),
            [UaOutput::Engine {
                core: CoreId(1),
                command: Command::AttachLeg { pair: Some(0), .. }
            }]
        ));
        let moved = Event::LegMoved {
            id: leg,
            core: CoreId(1),
            rtp: a(20100),
            rtcp: a(20100),
        };
        ua.handle_engine_event(t0, CoreId(1), moved);
        assert_eq!(ua.call_core("call-1"), Some(CoreId(1)));
        // Our 200 is not acknowledged yet: the re-INVITE waits for the ACK (RFC 3261 14.1).
        assert!(sent_request(&outputs(&mut ua), "INVITE").is_none());
        ua.handle_message(t0, peer.clone(), request("ACK", "m2", 1, Some(&tag), ""));
        let reinvite = sent_request(&outputs(&mut ua), "INVITE").expect("re-INVITE");
        let offer = String::from_utf8_lossy(reinvite.body()).to_string();
        assert!(offer.contains("m=audio 20100 "), "{offer}");
        let ok = SipMessage::response_to(&reinvite, 200, "OK")
            .with_header("Contact", "<sip:alice@127.0.0.1:7000>")
            .with_body("application/sdp", SDP.replace("0 101", "0"));
        ua.handle_message(t0, peer.clone(), ok);
        let out = outputs(&mut ua);
        assert!(sent_request(&out, "ACK").is_some());
        assert!(out.iter().any(|o| matches!(
            o,
            UaOutput::Engine { core: CoreId(1), command: Command::UpdateLeg(u) } if u.id == leg
        )));
        // Hanging up removes the leg from the core it is on now.
        ua.handle_message(t0, peer, request("BYE", "m3", 2, Some(&tag), ""));
        assert!(outputs(&mut ua).iter().any(|o| matches!(
            o,
            UaOutput::Engine { core: CoreId(1), command: Command::RemoveLeg(l) } if *l == leg
        )));
    }
}
