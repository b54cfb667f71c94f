//! The UAS core: where SIP messages, transactions, dialogs, SDP, admission control and the
//! media engine meet. Sans-IO: it takes messages with the peer they came from, engine events
//! and the time, and yields messages to send and commands for the media cores.
//!
//! What it does today: answers OPTIONS; accepts INVITEs with an SDP offer (admission control,
//! offer/answer with SDES, a media leg placed on the least-loaded core, media echoed back to
//! the caller until the conferencing layer takes the leg), retransmits the 2xx until ACK,
//! handles re-INVITE (new remote address or hold), BYE from either side, CANCEL, INFO with
//! DTMF, and ends calls whose media stopped (BYE with a Reason). Other methods get 405 or 501.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chorus_engine::runtime::{Command, CoreId, Event, LegConfig, LegId, SrtpKey};

use crate::admission::{Admission, AdmissionConfig};
use crate::dtmf_info;
use crate::message::{ParseError, SipMessage};
use crate::sdp::{
    Direction, LocalSession, Negotiated, OfferAnswerConfig, PendingOffer, SessionDescription,
    answer_offer, make_offer, process_answer,
};
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
}

/// What the UA wants done.
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
}

/// Dialog identity at the UAS: Call-ID and our tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
}

/// The UAS core.
pub struct UserAgent<P: SipPeer> {
    cfg: UaConfig,
    txl: TransactionLayer<Outgoing<P>>,
    retx: Uas2xxRetransmitter<Outgoing<P>>,
    admission: Admission,
    placement: Placement,
    dialogs: HashMap<DialogKey, Dialog<P>>,
    by_leg: HashMap<LegId, DialogKey>,
    /// Dialogs by Call-ID, for the 2xx ACK timeout (which knows only the Call-ID).
    by_call_id: HashMap<String, DialogKey>,
    next_leg: u32,
    seed: u64,
    counter: u64,
    out: VecDeque<UaOutput<P>>,
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
}

impl<P: SipPeer> UserAgent<P> {
    /// A UA placing legs on cores whose socket pairs have these RTP addresses.
    pub fn new(cfg: UaConfig, cores: Vec<Vec<SocketAddr>>, now: Instant) -> Self {
        let mut tx_config = TxConfig::default();
        // Each admitted call leaves up to two server transactions (INVITE, BYE) alive for
        // 64*T1 after they complete (RFC 6026 timer L, RFC 3261 timer J): room for twice that
        // at the admitted rate, so admission, not the transaction bound, limits the call rate.
        let lingering = 2.0 * cfg.admission.attempts_per_sec * (64 * tx_config.t1).as_secs_f64();
        tx_config.max_transactions = tx_config.max_transactions.max(2 * lingering as usize);
        UserAgent {
            retx: Uas2xxRetransmitter::new(tx_config.t1, tx_config.t2),
            txl: TransactionLayer::new(tx_config),
            admission: Admission::new(cfg.admission.clone(), now),
            placement: Placement::new(cores),
            cfg,
            dialogs: HashMap::new(),
            by_leg: HashMap::new(),
            by_call_id: HashMap::new(),
            next_leg: 1,
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            counter: 0,
            out: VecDeque::new(),
        }
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.dialogs.len()
    }

    /// Random-looking token for tags and branches (unique per UA; not secret).
    fn token(&mut self) -> String {
        self.counter += 1;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.seed);
        h.write_u64(self.counter);
        format!("{:016x}", h.finish())
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

    /// Answers a server transaction.
    fn respond(&mut self, now: Instant, id: TransactionId, peer: P, resp: SipMessage) {
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
            return;
        }
        match self.txl.handle_request(now, &tm, peer.reliable()) {
            Ok(RequestDisposition::New { id }) => self.on_request(now, id, peer, &msg),
            Ok(RequestDisposition::Cancel { id, invite }) => {
                // Every INVITE is answered at once, so a CANCEL finds it answered: 200 to the
                // CANCEL, no effect on the call (RFC 3261 9.2); 481 when nothing matches.
                let status = if invite.is_some() { 200 } else { 481 };
                let reason = if invite.is_some() {
                    "OK"
                } else {
                    "Call/Transaction Does Not Exist"
                };
                self.respond_status(now, id, peer, &msg, status, reason);
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
    }

    fn dialog_key(msg: &SipMessage) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: msg.call_id()?.to_string(),
            local_tag: msg.to()?.tag()?.to_string(),
        })
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
        let unsupported = msg.unsupported_options(&[]);
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
            "INVITE" if in_dialog => self.on_reinvite(now, id, peer, msg),
            "INVITE" => self.on_invite(now, id, peer, msg),
            "BYE" => match Self::dialog_key(msg)
                .and_then(|k| self.dialogs.contains_key(&k).then_some(k))
            {
                Some(key) => {
                    self.respond_status(now, id, peer, msg, 200, "OK");
                    self.end_dialog(&key, EndReason::RemoteBye);
                }
                None => {
                    self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist")
                }
            },
            "INFO" | "UPDATE" if in_dialog => {
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
                if method == "INFO" && !msg.body().is_empty() {
                    match dtmf_info::parse_info(msg.content_type().unwrap_or(""), msg.body()) {
                        Ok(d) => {
                            tracing::info!(call_id = msg.call_id(), key = %d.key.as_char(), "DTMF via INFO")
                        }
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
            "REGISTER" | "SUBSCRIBE" | "NOTIFY" | "REFER" | "MESSAGE" | "PUBLISH" => {
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
        let mut local_session = LocalSession::new(self.counter ^ self.seed, self.cfg.media_ip);
        let leg = LegId(self.next_leg);
        self.next_leg = self.next_leg.wrapping_add(1).max(1);
        // With an offer: answer it and start the leg now. Without one (delayed offer): offer
        // in the 200 and start the leg when the ACK brings the answer (RFC 3264 section 2).
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
        let call_id = msg.call_id().unwrap_or("").to_string();
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        if !peer.reliable() {
            self.retx.start(
                now,
                AckKey {
                    call_id: call_id.clone(),
                    cseq,
                },
                Outgoing {
                    peer: peer.clone(),
                    msg: resp.clone(),
                },
            );
        }
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
            pending_offer,
            pair,
        };
        let dkey = DialogKey { call_id, local_tag };
        self.by_leg.insert(leg, dkey.clone());
        self.by_call_id.insert(dkey.call_id.clone(), dkey.clone());
        self.dialogs.insert(dkey, dialog);
        tracing::info!(%leg, %core, "call answered");
        self.respond(now, id, peer, resp);
    }

    /// Creates the media leg of a negotiated call on its core.
    fn start_leg(&mut self, core: CoreId, pair: u16, leg: LegId, neg: &Negotiated) {
        let key = |c: &chorus_engine::srtp::sdes::CryptoAttribute| SrtpKey {
            suite: c.suite,
            key: c.key_material.key().to_vec(),
            salt: c.key_material.salt().to_vec(),
        };
        let mut cfg = LegConfig::new(leg);
        cfg.remote_rtp = Some(neg.remote_rtp);
        cfg.remote_rtcp = (!neg.rtcp_mux).then_some(neg.remote_rtcp);
        cfg.rtcp_mux = neg.rtcp_mux;
        cfg.srtp_in = neg.srtp.as_ref().map(|s| key(&s.remote));
        cfg.srtp_out = neg.srtp.as_ref().map(|s| key(&s.local));
        cfg.remote_ssrc = neg.remote_ssrc.map(|s| s.0);
        cfg.latch = true;
        cfg.inactivity_timeout = self.cfg.inactivity_timeout;
        cfg.clock_rate = neg.codec.clock_rate;
        cfg.pair = Some(pair);
        self.engine(core, Command::CreateLeg(Box::new(cfg)));
        if self.cfg.echo {
            self.engine(core, Command::Connect { from: leg, to: leg });
        }
        tracing::info!(%leg, %core, remote = %neg.remote_rtp, codec = ?neg.codec.codec, srtp = neg.srtp.is_some(), "media leg started");
    }

    fn on_reinvite(&mut self, now: Instant, id: TransactionId, peer: P, msg: &SipMessage) {
        let Some(key) = Self::dialog_key(msg).filter(|k| self.dialogs.contains_key(k)) else {
            return self.respond_status(now, id, peer, msg, 481, "Call/Transaction Does Not Exist");
        };
        if let Some(resp) = self.refuse_invite(msg) {
            return self.respond(now, id, peer, resp);
        }
        if msg.body().is_empty() {
            let resp = self
                .base_response(msg, 488, "Not Acceptable Here")
                .with_header(
                    "Warning",
                    "399 chorus \"re-INVITE without an SDP offer is not supported yet\"",
                );
            return self.respond(now, id, peer, resp);
        }
        let Ok(offer) = SessionDescription::parse(msg.body()) else {
            return self.respond_status(now, id, peer, msg, 400, "Bad Request - malformed SDP");
        };
        let cfg = self.cfg.offer_answer.clone();
        let contact = self.contact(&peer);
        // INVARIANT: the key was checked just above.
        let dialog = self.dialogs.get_mut(&key).expect("dialog present");
        let local_rtp = dialog.local_rtp;
        match answer_offer(&offer, &mut dialog.local_session, local_rtp, &cfg) {
            Ok((answer, neg)) => {
                let (core, leg) = (dialog.core, dialog.leg);
                self.engine(
                    core,
                    Command::SetRemote {
                        id: leg,
                        rtp: neg.remote_rtp,
                        rtcp: (!neg.rtcp_mux).then_some(neg.remote_rtcp),
                    },
                );
                tracing::info!(%leg, direction = ?neg.direction, "call re-negotiated");
                let resp = self
                    .base_response(msg, 200, "OK")
                    .with_header("Contact", &contact)
                    .with_header("Allow", ALLOW)
                    .with_body("application/sdp", answer.to_string());
                if !peer.reliable() {
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
            Err(e) => {
                // A refused re-offer leaves the call as it was (RFC 3261 14.2).
                let resp = self.base_response(msg, e.sip_status(), "Not Acceptable Here");
                self.respond(now, id, peer, resp);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, msg: &SipMessage) {
        let (Some(call_id), Some(cseq)) = (msg.call_id(), msg.cseq()) else {
            return;
        };
        self.retx.handle_ack(&AckKey {
            call_id: call_id.to_string(),
            cseq: cseq.seq,
        });
        // A delayed-offer call: the ACK carries the answer to the offer in our 200.
        let Some(key) = Self::dialog_key(msg) else {
            return;
        };
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
        let (core, pair, leg) = (d.core, d.pair, d.leg);
        match negotiated {
            Some(neg) => self.start_leg(core, pair, leg, &neg),
            None => {
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
            Event::LegRejected { id, reason } => {
                if let Some(key) = self.by_leg.get(&id).cloned() {
                    tracing::warn!(leg = %id, %reason, "media leg refused: ending the call");
                    self.send_bye(now, &key, "SIP;cause=500;text=\"media unavailable\"");
                    self.end_dialog(&key, EndReason::MediaFailed);
                }
            }
            _ => {}
        }
    }

    /// Sends BYE in a dialog (RFC 3261 15.1.1).
    fn send_bye(&mut self, now: Instant, key: &DialogKey, reason: &str) {
        let branch = format!("z9hG4bK{}", self.token());
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        d.local_cseq += 1;
        let mut text = format!(
            "BYE {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            d.remote_target,
            d.peer.transport(),
            d.peer.local()
        );
        for r in &d.route_set {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str(&format!(
            "From: <{}>;tag={}\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nReason: {reason}\r\nUser-Agent: {}\r\nContent-Length: 0\r\n\r\n",
            d.local_uri, key.local_tag, d.remote_uri, d.remote_tag, key.call_id, d.local_cseq, self.cfg.server
        ));
        let peer = d.peer.clone();
        let Ok(bye) = SipMessage::parse(text.as_bytes()) else {
            tracing::warn!("could not build BYE");
            return;
        };
        let reliable = peer.reliable();
        if let Some(tm) = tx_message(bye, peer)
            && let Err(e) = self.txl.send_request(now, tm, reliable)
        {
            tracing::debug!(error = %e, "BYE not sent");
        }
        self.drain_layer();
    }

    fn end_dialog(&mut self, key: &DialogKey, why: EndReason) {
        let Some(d) = self.dialogs.remove(key) else {
            return;
        };
        self.by_leg.remove(&d.leg);
        if self.by_call_id.get(&key.call_id) == Some(key) {
            self.by_call_id.remove(&key.call_id);
        }
        if d.pending_offer.is_none() {
            self.engine(d.core, Command::RemoveLeg(d.leg));
        }
        self.placement.release(d.core);
        self.admission.call_ended();
        tracing::info!(leg = %d.leg, reason = ?why, "call ended");
    }

    // ---- time and output -------------------------------------------------------------------

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let a = self.txl.poll_timeout().map(|(t, _)| t);
        let b = self.retx.poll_timeout().map(|(t, _)| t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        self.retx.handle_timeout(now);
        self.drain_layer();
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
            if let TxEvent::Timeout { id } | TxEvent::TransportError { id } = ev {
                tracing::debug!(?id, "transaction failed");
            }
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
        let cfg = UaConfig {
            offer_answer: OfferAnswerConfig::default(),
            admission: AdmissionConfig::default(),
            media_ip: "127.0.0.1".parse().unwrap(),
            inactivity_timeout: Some(Duration::from_secs(60)),
            server: "chorus-test".into(),
            echo: true,
        };
        UserAgent::new(cfg, vec![vec!["127.0.0.1:20000".parse().unwrap()]], now)
    }

    fn outputs(ua: &mut UserAgent<FakePeer>) -> Vec<UaOutput<FakePeer>> {
        std::iter::from_fn(|| ua.poll_output()).collect()
    }

    fn statuses(out: &[UaOutput<FakePeer>]) -> Vec<u16> {
        out.iter()
            .filter_map(|o| match o {
                UaOutput::Send { message, .. } => message.status(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn options_invite_ack_bye() {
        let t0 = Instant::now();
        let mut ua = ua(t0);
        let peer = FakePeer("127.0.0.1:7000".parse().unwrap());

        ua.handle_message(t0, peer.clone(), request("OPTIONS", "o1", 1, None, ""));
        assert_eq!(statuses(&outputs(&mut ua)), vec![200]);

        ua.handle_message(t0, peer.clone(), request("INVITE", "i1", 1, None, SDP));
        let out = outputs(&mut ua);
        let mut leg = None;
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
        ua.handle_message(t0, peer.clone(), request("INVITE", "i1", 1, None, SDP));
        let out = outputs(&mut ua);
        let leg = out
            .iter()
            .find_map(|o| match o {
                UaOutput::Engine {
                    command: Command::CreateLeg(c),
                    ..
                } => Some(c.id),
                _ => None,
            })
            .unwrap();
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
}
