//! The UAC in virtual time against a scripted far end.

use super::*;
use crate::digest::NonceIssuer;
use crate::sdp::Codec;

#[derive(Clone, Debug, PartialEq)]
struct FakePeer {
    remote: SocketAddr,
    tcp: bool,
}

impl SipPeer for FakePeer {
    fn remote(&self) -> SocketAddr {
        self.remote
    }
    fn local(&self) -> SocketAddr {
        "127.0.0.1:5060".parse().unwrap()
    }
    fn transport(&self) -> &'static str {
        if self.tcp { "TCP" } else { "UDP" }
    }
    fn reliable(&self) -> bool {
        self.tcp
    }
}

impl DialPeer for FakePeer {
    fn over_tcp(&self) -> Self {
        FakePeer {
            tcp: true,
            ..self.clone()
        }
    }
}

const TRUNK: &str = "127.0.0.1:5080";

fn trunk() -> FakePeer {
    FakePeer {
        remote: TRUNK.parse().unwrap(),
        tcp: false,
    }
}

const ANSWER: &str = "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn request(extra: Vec<(String, String)>) -> DialRequest<FakePeer> {
    DialRequest {
        target: trunk(),
        request_uri: format!("sip:+4930123@{TRUNK}"),
        from_user: "conf".into(),
        from_display: Some("Chorus Conf".into()),
        credentials: Some(DialCredentials {
            username: "trunkuser".into(),
            password: "s3cret".into(),
        }),
        media: MediaOffer {
            local_rtp: "127.0.0.1:47000".parse().unwrap(),
            offer_answer: OfferAnswerConfig::default(),
            source: None,
            video_rtp: None,
            video_sources: Vec::new(),
        },
        extra_headers: extra,
    }
}

/// The UAC, the virtual clock, and everything it sent and reported.
struct T {
    uac: Uac<FakePeer>,
    now: Instant,
    sent: Vec<UacOutput<FakePeer>>,
    events: Vec<CallEvent>,
}

impl T {
    fn new() -> T {
        T::with(UacConfig {
            ring_timeout: Duration::from_secs(60),
            ..UacConfig::default()
        })
    }

    fn with(cfg: UacConfig) -> T {
        T {
            uac: Uac::new(cfg),
            now: Instant::now(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A UAC with a 5 s ring timeout that has just sent an INVITE.
    fn ringing_soon_out() -> (T, SipMessage) {
        let mut t = T::with(UacConfig {
            ring_timeout: Duration::from_secs(5),
            ..UacConfig::default()
        });
        t.dial(request(vec![]));
        let invite = t.one("INVITE");
        (t, invite)
    }

    fn flush(&mut self) {
        while let Some(o) = self.uac.poll_output() {
            self.sent.push(o);
        }
        while let Some(e) = self.uac.poll_event() {
            self.events.push(e.kind);
        }
    }

    fn dial(&mut self, req: DialRequest<FakePeer>) -> CallHandle {
        let h = self.uac.dial(self.now, req).unwrap();
        self.flush();
        h
    }

    /// Messages sent since the last call, with their method or status.
    fn take(&mut self) -> Vec<SipMessage> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|o| o.message)
            .collect()
    }

    fn take_events(&mut self) -> Vec<CallEvent> {
        std::mem::take(&mut self.events)
    }

    fn one(&mut self, method: &str) -> SipMessage {
        let sent = self.take();
        assert_eq!(sent.len(), 1, "expected one {method}, got {sent:#?}");
        let m = sent.into_iter().next().unwrap();
        assert_eq!(m.method().map(|m| m.as_str()), Some(method), "{m}");
        m
    }

    fn feed(&mut self, msg: SipMessage) {
        assert!(self.uac.owns(&msg));
        self.uac.handle_message(self.now, trunk(), msg);
        self.flush();
    }

    /// The far end answers `req`.
    fn respond(&mut self, req: &SipMessage, status: u16, tag: Option<&str>, sdp: Option<&str>) {
        self.feed(response(req, status, tag, sdp));
    }

    /// Runs the timers for `d` of virtual time.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.uac.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.uac.handle_timeout(self.now);
            self.flush();
        }
        self.now = end;
    }
}

fn response(req: &SipMessage, status: u16, tag: Option<&str>, sdp: Option<&str>) -> SipMessage {
    let mut r = SipMessage::response_to(req, status, "Reason");
    if let Some(tag) = tag {
        r = r
            .with_to_tag(tag)
            .with_header("Contact", "<sip:far@127.0.0.1:5080>");
    }
    if let Some(sdp) = sdp {
        r = r.with_body("application/sdp", sdp.to_string());
    }
    r
}

/// A request from the far end in the call of `invite` (answered with tag `far`).
fn from_far(invite: &SipMessage, method: &str, cseq: u32, body: &str) -> SipMessage {
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    let text = format!(
        "{method} sip:conf@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKfar{method}{cseq}\r\nFrom: {};tag=far\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        invite.headers().get("To").unwrap(),
        invite.headers().get("From").unwrap(),
        invite.call_id().unwrap(),
        body.len()
    );
    SipMessage::parse(text.as_bytes()).unwrap()
}

fn status_of(events: &[CallEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            CallEvent::Trying => "Trying".into(),
            CallEvent::Ringing { status } => format!("Ringing {status}"),
            CallEvent::Early { .. } => "Early".into(),
            CallEvent::Answered { .. } => "Answered".into(),
            CallEvent::Renegotiated { .. } => "Renegotiated".into(),
            CallEvent::Failed { status, .. } => format!("Failed {status}"),
            CallEvent::Ended { by_remote, .. } => format!("Ended remote={by_remote}"),
        })
        .collect()
}

/// Dials and gets the call answered: returns the INVITE.
fn answered(t: &mut T) -> (CallHandle, SipMessage) {
    let call = t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.respond(&invite, 100, None, None);
    t.respond(&invite, 180, Some("far"), None);
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    t.one("ACK");
    t.take_events();
    (call, invite)
}

#[test]
fn invite_carries_an_offer_and_the_call_is_answered_acked_and_hung_up() {
    let mut t = T::new();
    let call = t.dial(request(vec![("X-Conference".into(), "42".into())]));
    let invite = t.one("INVITE");
    assert_eq!(
        invite.uri().unwrap().to_string(),
        format!("sip:+4930123@{TRUNK}")
    );
    let via = invite.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert!(via.has_rfc3261_branch());
    let from = invite.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Chorus Conf"));
    assert!(from.tag().is_some());
    assert!(invite.to().unwrap().tag().is_none());
    assert_eq!(invite.headers().get("X-Conference"), Some("42"));
    assert!(invite.contact_uri().is_some());
    let offer = SessionDescription::parse(invite.body()).unwrap();
    assert_eq!(offer.media[0].port, 47000);
    assert!(t.uac.owns(&invite));
    let mut other = from_far(&invite, "BYE", 1, "");
    other.headers_mut().set("Call-ID", "someone-else@uas");
    assert!(!t.uac.owns(&other), "another Call-ID belongs to the UAS");

    // Retransmitted until a provisional response (timer A), then quiet.
    t.advance(Duration::from_millis(600));
    assert_eq!(t.one("INVITE"), invite);
    t.respond(&invite, 100, None, None);
    t.advance(Duration::from_secs(10));
    assert!(t.take().is_empty(), "100 stops retransmissions");
    t.respond(&invite, 180, Some("far"), None);
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    let ack = t.one("ACK");
    let events = t.take_events();
    assert_eq!(status_of(&events), ["Trying", "Ringing 180", "Answered"]);
    let CallEvent::Answered { negotiated } = &events[2] else {
        unreachable!()
    };
    assert_eq!(negotiated.remote_rtp, "127.0.0.1:40000".parse().unwrap());
    assert_eq!(negotiated.codec.codec, Codec::Pcmu);

    // RFC 3261 13.2.2.4: to the remote target, CSeq of the INVITE, new branch, To tag.
    assert_eq!(ack.uri().unwrap().to_string(), "sip:far@127.0.0.1:5080");
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_ne!(ack.top_via().unwrap().branch(), via.branch());
    assert_eq!(ack.to().unwrap().tag(), Some("far"));
    assert_eq!(ack.call_id(), invite.call_id());
    assert!(ack.body().is_empty());

    // A retransmitted 2xx gets the same ACK again; no new event.
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    assert_eq!(t.one("ACK"), ack);
    t.advance(Duration::from_secs(40));
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    assert_eq!(
        t.one("ACK"),
        ack,
        "re-ACKed after the transaction is gone too"
    );
    assert!(t.take_events().is_empty());

    t.uac.hangup(t.now, call).unwrap();
    t.flush();
    let bye = t.one("BYE");
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(bye.uri().unwrap().to_string(), "sip:far@127.0.0.1:5080");
    assert_eq!(bye.to().unwrap().tag(), Some("far"));
    assert_eq!(status_of(&t.take_events()), ["Ended remote=false"]);
    t.respond(&bye, 200, None, None);
    assert_eq!(t.uac.live_calls(), 0);
    t.advance(Duration::from_secs(40));
    assert_eq!(t.uac.calls(), 0, "forgotten after lingering");
    assert!(!t.uac.owns(&invite));
}

#[test]
fn busy_fails_the_call_and_the_layer_acks_it() {
    let mut t = T::new();
    t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.respond(&invite, 486, Some("far"), None);
    let ack = t.one("ACK");
    // RFC 3261 17.1.1.3: the ACK for a non-2xx has the INVITE's branch.
    assert_eq!(
        ack.top_via().unwrap().branch(),
        invite.top_via().unwrap().branch()
    );
    assert_eq!(status_of(&t.take_events()), ["Failed 486"]);
    t.respond(&invite, 486, Some("far"), None);
    t.one("ACK");
    assert!(t.take_events().is_empty());
}

fn challenge_retry(algorithm: Algorithm, status: u16) {
    let mut t = T::new();
    t.dial(request(vec![]));
    let invite = t.one("INVITE");
    let issuer = NonceIssuer::new("trunk.example", [7; 32], algorithm);
    let md5 = NonceIssuer::new("trunk.example", [7; 32], Algorithm::Md5);
    let (challenge, auth) = if status == 407 {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    // Offered both; SHA-256 is preferred.
    let r = response(&invite, status, Some("far"), None)
        .with_header(challenge, &md5.challenge(1000, false).to_string())
        .with_header(challenge, &issuer.challenge(1000, false).to_string());
    t.feed(r);
    let sent = t.take();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0].method().unwrap().as_str(), "ACK");
    let retry = &sent[1];
    assert_eq!(retry.method().unwrap().as_str(), "INVITE");
    assert_eq!(retry.cseq().unwrap().seq, 2);
    assert_eq!(retry.call_id(), invite.call_id());
    assert_eq!(retry.from(), invite.from());
    assert!(retry.to().unwrap().tag().is_none());
    assert_ne!(
        retry.top_via().unwrap().branch(),
        invite.top_via().unwrap().branch()
    );
    let creds = Credentials::parse(retry.headers().get(auth).unwrap()).unwrap();
    let wanted = if algorithm == Algorithm::Md5 {
        Algorithm::Md5
    } else {
        Algorithm::Sha256
    };
    assert_eq!(creds.algorithm, wanted);
    assert_eq!(creds.nc.as_deref(), Some("00000001"));
    assert_eq!(creds.uri, format!("sip:+4930123@{TRUNK}"));
    let verifier = if wanted == Algorithm::Md5 {
        &md5
    } else {
        &issuer
    };
    verifier
        .verify(&creds, "s3cret", "INVITE", retry.body(), 1001)
        .unwrap();
    assert!(t.take_events().is_empty());

    // A second challenge: no second retry.
    let again = response(retry, status, Some("far2"), None)
        .with_header(challenge, &issuer.challenge(1002, false).to_string());
    t.feed(again);
    t.one("ACK");
    let ev = t.take_events();
    assert_eq!(status_of(&ev), [format!("Failed {status}")]);
}

#[test]
fn digest_401_is_retried_once_with_sha256() {
    challenge_retry(Algorithm::Sha256, 401);
}

#[test]
fn digest_407_is_retried_once_with_md5() {
    challenge_retry(Algorithm::Md5, 407);
}

#[test]
fn challenge_without_credentials_fails() {
    let mut t = T::new();
    let mut req = request(vec![]);
    req.credentials = None;
    t.dial(req);
    let invite = t.one("INVITE");
    let issuer = NonceIssuer::new("r", [1; 32], Algorithm::Md5);
    t.feed(
        response(&invite, 401, Some("x"), None)
            .with_header("WWW-Authenticate", &issuer.challenge(1, false).to_string()),
    );
    t.one("ACK");
    assert_eq!(status_of(&t.take_events()), ["Failed 401"]);
}

#[test]
fn hangup_before_any_provisional_waits_then_cancels() {
    let mut t = T::new();
    let call = t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.uac.hangup(t.now, call).unwrap();
    t.flush();
    assert!(
        t.take().is_empty(),
        "RFC 3261 9.1: no CANCEL before a provisional"
    );
    t.respond(&invite, 180, Some("far"), None);
    let cancel = t.one("CANCEL");
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        invite.top_via().unwrap().branch()
    );
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.cseq().unwrap().method.as_str(), "CANCEL");
    assert_eq!(cancel.uri(), invite.uri());
    assert!(cancel.to().unwrap().tag().is_none(), "To of the INVITE");
    t.respond(&cancel, 200, Some("far"), None);
    t.respond(&invite, 487, Some("far"), None);
    t.one("ACK");
    assert_eq!(status_of(&t.take_events()), ["Ringing 180", "Failed 487"]);
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_byed() {
    let mut t = T::new();
    let call = t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.respond(&invite, 180, Some("far"), None);
    t.uac.hangup(t.now, call).unwrap();
    t.flush();
    let cancel = t.one("CANCEL");
    // The far end answered before it saw the CANCEL.
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    let sent = t.take();
    let methods: Vec<_> = sent.iter().map(|m| m.method().unwrap().as_str()).collect();
    assert_eq!(methods, ["ACK", "BYE"]);
    assert_eq!(sent[1].to().unwrap().tag(), Some("far"));
    t.respond(&cancel, 481, None, None);
    t.respond(&sent[1], 200, None, None);
    let ev = t.take_events();
    assert_eq!(status_of(&ev), ["Ringing 180", "Failed 487"]);
    let CallEvent::Failed { reason, .. } = &ev[1] else {
        unreachable!()
    };
    assert!(reason.contains("crossed"), "{reason}");
    // The 200 again: same ACK, no second BYE.
    t.respond(&invite, 200, Some("far"), Some(ANSWER));
    assert_eq!(t.one("ACK"), sent[0]);
}

#[test]
fn no_response_fails_408_after_timer_b() {
    let mut t = T::new();
    t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.advance(Duration::from_secs(31));
    let resent = t.take();
    assert_eq!(resent.len(), 5, "timer A: at 0.5, 1.5, 3.5, 7.5 and 15.5 s");
    assert!(resent.iter().all(|m| *m == invite));
    assert!(t.take_events().is_empty());
    t.advance(Duration::from_secs(2));
    t.take();
    assert_eq!(status_of(&t.take_events()), ["Failed 408"]);
}

#[test]
fn ring_timeout_cancels_and_gives_up_without_487() {
    let (mut t, invite) = T::ringing_soon_out();
    t.respond(&invite, 180, Some("far"), None);
    t.take_events();
    t.advance(Duration::from_millis(5_100));
    let cancel = t.one("CANCEL");
    t.respond(&cancel, 200, None, None);
    assert!(t.take_events().is_empty());
    // No 487 ever: 64*T1 after the CANCEL the call is given up.
    t.advance(Duration::from_secs(33));
    let ev = t.take_events();
    assert_eq!(status_of(&ev), ["Failed 408"]);
    assert_eq!(t.uac.live_calls(), 0);
    t.advance(Duration::from_secs(60));
    assert_eq!(t.uac.calls(), 0);
}

#[test]
fn ring_timeout_answered_by_487() {
    let (mut t, invite) = T::ringing_soon_out();
    t.respond(&invite, 183, Some("far"), None);
    t.advance(Duration::from_millis(5_100));
    t.one("CANCEL");
    t.respond(&invite, 487, Some("far"), None);
    t.one("ACK");
    let ev = t.take_events();
    assert_eq!(status_of(&ev), ["Ringing 183", "Failed 408"]);
}

#[test]
fn unusable_sdp_answers_are_acked_then_byed() {
    for (body, words) in [
        ("this is not sdp", "malformed"),
        (
            "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 18\r\n",
            "unusable",
        ),
        ("", "without an SDP answer"),
    ] {
        let mut t = T::new();
        t.dial(request(vec![]));
        let invite = t.one("INVITE");
        t.respond(
            &invite,
            200,
            Some("far"),
            Some(body).filter(|b| !b.is_empty()),
        );
        let sent = t.take();
        let methods: Vec<_> = sent.iter().map(|m| m.method().unwrap().as_str()).collect();
        assert_eq!(methods, ["ACK", "BYE"], "{body}");
        assert!(sent[1].headers().get("Reason").is_some());
        let ev = t.take_events();
        let [
            CallEvent::Failed {
                status: 488,
                reason,
            },
        ] = ev.as_slice()
        else {
            panic!("{ev:?}")
        };
        assert!(reason.contains(words), "{reason}");
    }
}

#[test]
fn early_media_answer_is_used_when_the_200_has_none() {
    let mut t = T::new();
    t.dial(request(vec![]));
    let invite = t.one("INVITE");
    t.respond(&invite, 183, Some("far"), Some(ANSWER));
    t.respond(&invite, 200, Some("far"), None);
    t.one("ACK");
    assert_eq!(status_of(&t.take_events()), ["Early", "Answered"]);
}

#[test]
fn far_end_bye_ends_the_call() {
    let mut t = T::new();
    let (_, invite) = answered(&mut t);
    t.feed(from_far(&invite, "BYE", 5, "").with_header("Reason", "Q.850;cause=16"));
    let ok = t.take();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status(), Some(200));
    let ev = t.take_events();
    assert_eq!(status_of(&ev), ["Ended remote=true"]);
    // A retransmitted BYE is absorbed by the transaction layer and answered again.
    t.feed(from_far(&invite, "BYE", 5, ""));
    assert_eq!(t.take()[0].status(), Some(200));
    assert!(t.take_events().is_empty());
}

#[test]
fn in_dialog_requests_get_sensible_answers() {
    let mut t = T::new();
    let (call, invite) = answered(&mut t);
    for method in ["OPTIONS", "INFO"] {
        t.feed(from_far(&invite, method, 10, ""));
        assert_eq!(t.take()[0].status(), Some(200), "{method}");
    }
    // A session refresh re-INVITE with an offer: 200 with our answer, re-sent until ACK.
    t.feed(from_far(&invite, "INVITE", 11, ANSWER));
    let ok = t.take();
    assert_eq!(ok[0].status(), Some(200));
    assert!(SessionDescription::parse(ok[0].body()).is_ok());
    assert_eq!(status_of(&t.take_events()), ["Renegotiated"]);
    t.advance(Duration::from_millis(600));
    assert_eq!(t.take().len(), 1, "200 retransmitted");
    let mut ack = from_far(&invite, "ACK", 11, "");
    ack.headers_mut()
        .set("Via", &format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bKack11"));
    t.feed(ack);
    t.advance(Duration::from_secs(5));
    assert!(t.take().is_empty(), "ACK stops the retransmissions");
    // UPDATE without SDP: 200.
    t.feed(from_far(&invite, "UPDATE", 12, ""));
    assert_eq!(t.take()[0].status(), Some(200));
    // Unknown method: 501. Wrong dialog: 481.
    t.feed(from_far(&invite, "SUBSCRIBE", 13, ""));
    assert_eq!(t.take()[0].status(), Some(501));
    let mut stranger = from_far(&invite, "BYE", 14, "");
    let to = stranger
        .headers()
        .get("To")
        .unwrap()
        .replace("tag=", "tag=x");
    stranger.headers_mut().set("To", &to);
    t.feed(stranger);
    assert_eq!(t.take()[0].status(), Some(481));
    assert!(t.take_events().is_empty());
    assert_eq!(t.uac.live_calls(), 1);
    t.uac.hangup(t.now, call).unwrap();
    t.flush();
    assert_eq!(t.one("BYE").cseq().unwrap().seq, 2);
}

#[test]
fn reinvite_without_offer_gets_our_offer_and_the_ack_answers() {
    let mut t = T::new();
    let (_, invite) = answered(&mut t);
    t.feed(from_far(&invite, "INVITE", 20, ""));
    let ok = t.take();
    let offer = SessionDescription::parse(ok[0].body()).unwrap();
    assert_eq!(offer.media[0].port, 47000);
    let mut ack = from_far(&invite, "ACK", 20, ANSWER);
    ack.headers_mut()
        .set("Via", &format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bKack20"));
    t.feed(ack);
    assert_eq!(status_of(&t.take_events()), ["Renegotiated"]);
}

#[test]
fn a_2xx_from_a_second_fork_is_acked_and_byed() {
    let mut t = T::new();
    let (_, invite) = answered(&mut t);
    t.respond(&invite, 200, Some("fork2"), Some(ANSWER));
    let sent = t.take();
    let methods: Vec<_> = sent.iter().map(|m| m.method().unwrap().as_str()).collect();
    assert_eq!(methods, ["ACK", "BYE"]);
    assert!(sent.iter().all(|m| m.to().unwrap().tag() == Some("fork2")));
    assert!(t.take_events().is_empty(), "the call itself goes on");
    assert_eq!(t.uac.live_calls(), 1);
}

#[test]
fn large_requests_go_over_tcp_and_fall_back_to_udp() {
    let mut t = T::new();
    let big = "x".repeat(900);
    t.dial(request(vec![("X-Padding".into(), big)]));
    let out = std::mem::take(&mut t.sent);
    assert_eq!(out.len(), 1);
    let first = &out[0];
    assert!(
        first.peer.tcp,
        "RFC 3261 18.1.1: over 1300 bytes goes over TCP"
    );
    assert_eq!(first.peer.remote, trunk().remote);
    assert_eq!(first.message.top_via().unwrap().transport, "TCP");
    assert!(first.message.to_bytes().len() > 1300);
    // Reliable: no retransmissions.
    t.advance(Duration::from_secs(2));
    assert!(t.take().is_empty());
    // The connect failed: the same request over UDP, new branch, retransmitted.
    t.uac
        .handle_transport_error(t.now, first.transaction.unwrap());
    t.flush();
    let out = std::mem::take(&mut t.sent);
    assert_eq!(out.len(), 1);
    assert!(!out[0].peer.tcp);
    let udp = &out[0].message;
    assert_eq!(udp.top_via().unwrap().transport, "UDP");
    assert_ne!(
        udp.top_via().unwrap().branch(),
        first.message.top_via().unwrap().branch()
    );
    assert_eq!(udp.cseq(), first.message.cseq());
    t.advance(Duration::from_millis(600));
    assert_eq!(t.take().len(), 1, "timer A on UDP");
    assert!(t.take_events().is_empty());
    t.respond(udp, 200, Some("far"), Some(ANSWER));
    t.one("ACK");
    assert_eq!(status_of(&t.take_events()), ["Answered"]);
}

#[test]
fn tcp_failure_without_fallback_fails_503() {
    let mut t = T::new();
    let mut req = request(vec![]);
    req.target.tcp = true;
    t.dial(req);
    let out = std::mem::take(&mut t.sent);
    assert!(out[0].peer.tcp);
    t.uac
        .handle_transport_error(t.now, out[0].transaction.unwrap());
    t.flush();
    assert_eq!(status_of(&t.take_events()), ["Failed 503"]);
}

#[test]
fn small_requests_stay_on_udp() {
    let mut t = T::new();
    t.dial(request(vec![]));
    assert!(!t.sent[0].peer.tcp);
    assert!(t.sent[0].message.to_bytes().len() <= 1300);
}

#[test]
fn hangup_of_unknown_call_is_an_error() {
    let mut t = T::new();
    assert_eq!(
        t.uac.hangup(t.now, CallHandle(99)),
        Err(UacError::UnknownCall(CallHandle(99)))
    );
    let mut req = request(vec![]);
    req.media.offer_answer.codecs.clear();
    req.media.offer_answer.telephone_event = false;
    assert!(matches!(t.uac.dial(t.now, req), Err(UacError::Offer(_))));
    let mut req = request(vec![("Bad\r\nHeader".into(), "1".into())]);
    req.from_user = "conf".into();
    assert_eq!(t.uac.dial(t.now, req).err(), Some(UacError::InvalidRequest));
    assert_eq!(t.uac.calls(), 0);
}

#[test]
fn odd_network_input_does_not_panic() {
    let mut t = T::new();
    let (_, invite) = answered(&mut t);
    let call_id = invite.call_id().unwrap();
    for text in [
        format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n"),
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ),
        format!(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: {call_id}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        format!(
            "BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\nCall-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        format!(
            "ACK sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ),
    ] {
        let msg = SipMessage::parse(text.as_bytes()).unwrap();
        t.uac.handle_message(t.now, trunk(), msg);
        t.flush();
    }
    t.take();
    assert!(t.take_events().is_empty());
    assert_eq!(t.uac.live_calls(), 1);
}

/// 10,000 calls through one UAC: dialed, answered and hung up, every lookup by key.
#[test]
fn ten_thousand_calls() {
    let mut t = T::new();
    let mut req = request(vec![]);
    req.media.offer_answer.srtp = crate::sdp::SrtpPolicy::Off;
    let n = 10_000;
    let started = std::time::Instant::now();
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        calls.push(t.uac.dial(t.now, req.clone()).unwrap());
    }
    t.flush();
    let invites = t.take();
    assert_eq!(invites.len(), n);
    for invite in &invites {
        t.uac.handle_message(
            t.now,
            trunk(),
            response(invite, 200, Some("far"), Some(ANSWER)),
        );
    }
    t.flush();
    assert_eq!(t.take().len(), n, "one ACK each");
    assert_eq!(t.uac.live_calls(), n);
    for c in calls {
        t.uac.hangup(t.now, c).unwrap();
    }
    t.flush();
    assert_eq!(t.take().len(), n, "one BYE each");
    assert_eq!(t.uac.live_calls(), 0);
    let ended = t
        .take_events()
        .iter()
        .filter(|e| matches!(e, CallEvent::Ended { .. }))
        .count();
    assert_eq!(ended, n);
    // Unoptimized build: generous bound, it is about complexity (no scans), not speed.
    assert!(started.elapsed() < Duration::from_secs(60));
}
