//! The UAC with real peers: `Uac` drives outgoing calls over real sockets (the signaling
//! transports on tokio) to sipp as a UAS (answering; challenging with 401 and checking the
//! digest with `verifyauth`; busy) and to a running `chorus serve`, whose answer's media
//! address is used: RTP sent there comes back (the server echoes calls).
//!
//! Needs `sipp` (Debian package sip-tester), which `scripts/test` installs. Media ports used:
//! 47000-47199.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chorus_signaling::sdp::{OfferAnswerConfig, SrtpPolicy};
use chorus_signaling::transaction::TransactionId;
use chorus_signaling::transport::{
    Inbound, InboundFrame, ListenSpec, Peer, Transport, TransportConfig, Transports,
};
use chorus_signaling::uac::{
    CallEvent, CallHandle, DialCredentials, DialRequest, MediaOffer, Uac, UacConfig, driver,
};
use common::sip::{Server, sipp_report};
use tokio::sync::mpsc;

/// A `Uac` on its own UDP SIP socket, driven the way the server's control task drives it.
struct Driver {
    transports: Transports,
    inbound: mpsc::Receiver<Inbound>,
    failures_tx: mpsc::Sender<TransactionId>,
    failures: mpsc::Receiver<TransactionId>,
    uac: Uac<Peer>,
    local: SocketAddr,
}

impl Driver {
    async fn start() -> Driver {
        let cfg = TransportConfig {
            listen: vec![ListenSpec {
                transport: Transport::Udp,
                addr: "127.0.0.1:0".parse().unwrap(),
            }],
            ..TransportConfig::default()
        };
        let (transports, inbound) = Transports::bind(cfg).await.expect("SIP socket");
        let local = transports.local_addrs()[0].1;
        let (failures_tx, failures) = mpsc::channel(64);
        Driver {
            transports,
            inbound,
            failures_tx,
            failures,
            uac: Uac::new(UacConfig::default()),
            local,
        }
    }

    fn request(&self, to: SocketAddr, user: &str, media: SocketAddr) -> DialRequest<Peer> {
        DialRequest {
            target: Peer {
                transport: Transport::Udp,
                remote: to,
                local: self.local,
                conn: None,
            },
            request_uri: format!("sip:{user}@{to}"),
            from_user: "chorus".into(),
            from_display: Some("Chorus dial-out".into()),
            credentials: None,
            media: MediaOffer {
                local_rtp: media,
                offer_answer: OfferAnswerConfig::default(),
                source: None,
                video_rtp: None,
                video_sources: Vec::new(),
            },
            extra_headers: Vec::new(),
        }
    }

    fn flush(&mut self) {
        while let Some(out) = self.uac.poll_output() {
            driver::transmit(&self.transports, out, &self.failures_tx);
        }
    }

    fn dial(&mut self, req: DialRequest<Peer>) -> CallHandle {
        let call = self.uac.dial(Instant::now(), req).expect("dial");
        self.flush();
        call
    }

    fn hangup(&mut self, call: CallHandle) {
        self.uac.hangup(Instant::now(), call).expect("hangup");
        self.flush();
    }

    /// Runs the UAC until `call` is answered (returning its events) or fails (a panic).
    async fn answered(&mut self, call: CallHandle) -> Vec<CallEvent> {
        let events = self
            .until(call, LIMIT, |e| {
                matches!(e, CallEvent::Answered { .. } | CallEvent::Failed { .. })
            })
            .await;
        assert!(
            matches!(events.last(), Some(CallEvent::Answered { .. })),
            "not answered: {events:?}"
        );
        events
    }

    /// Keeps the UAC running for `time` (responses to our last requests, retransmissions).
    async fn settle(&mut self, call: CallHandle, time: Duration) {
        let _ = tokio::time::timeout(time, self.until(call, LIMIT, |_| false)).await;
    }

    /// Runs the UAC until an event of `call` satisfies `done` (returning all events of the
    /// call so far, that one last), or panics after `limit`.
    async fn until(
        &mut self,
        call: CallHandle,
        limit: Duration,
        mut done: impl FnMut(&CallEvent) -> bool,
    ) -> Vec<CallEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            while let Some(ev) = self.uac.poll_event() {
                if ev.call != call {
                    continue;
                }
                let last = done(&ev.kind);
                seen.push(ev.kind);
                if last {
                    return seen;
                }
            }
            let timer = self
                .uac
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                frame = self.inbound.recv() => {
                    let frame = frame.expect("transports running");
                    if let InboundFrame::Message(msg) = frame.frame
                        && self.uac.owns(&msg)
                    {
                        self.uac.handle_message(Instant::now(), frame.peer, msg);
                    }
                }
                Some(id) = self.failures.recv() => {
                    self.uac.handle_transport_error(Instant::now(), id);
                }
                _ = tokio::time::sleep_until(timer) => {
                    assert!(tokio::time::Instant::now() < deadline, "timed out; events so far: {seen:?}");
                    self.uac.handle_timeout(Instant::now());
                }
            }
            self.flush();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sipp as a UAS on a free port: the built-in `uas` scenario or a file under tests/sipp/.
struct Sipp {
    child: Child,
    port: u16,
    errors: PathBuf,
}

impl Sipp {
    fn start(scenario: &str, media_port: u16) -> Sipp {
        let port = free_udp_port();
        let errors = std::env::temp_dir().join(format!(
            "chorus-uac-sipp-{}-{port}-errors.log",
            std::process::id()
        ));
        let mut cmd = Command::new("sipp");
        if scenario.ends_with(".xml") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/sipp")
                .join(scenario);
            cmd.arg("-sf").arg(path);
        } else {
            cmd.args(["-sn", scenario]);
        }
        let child = cmd
            .args(["-i", "127.0.0.1", "-mp"])
            .arg(media_port.to_string())
            .arg("-p")
            .arg(port.to_string())
            .args(["-m", "1", "-timeout", "30s", "-nostdin", "-trace_err"])
            .arg("-error_file")
            .arg(&errors)
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp runs (apt-get install sip-tester)");
        // sipp needs a moment to bind its socket.
        std::thread::sleep(Duration::from_millis(300));
        Sipp {
            child,
            port,
            errors,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits for sipp to finish its one call and checks it succeeded.
    fn finish(self) {
        let out = self.child.wait_with_output().expect("sipp exits");
        let errors = std::fs::read_to_string(&self.errors).unwrap_or_default();
        let _ = std::fs::remove_file(&self.errors);
        assert!(
            out.status.success(),
            "sipp reported a failed call: {}",
            sipp_report(&out, &errors)
        );
    }
}

fn kinds(events: &[CallEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            CallEvent::Trying => "Trying",
            CallEvent::Ringing { .. } => "Ringing",
            CallEvent::Early { .. } => "Early",
            CallEvent::Answered { .. } => "Answered",
            CallEvent::Renegotiated { .. } => "Renegotiated",
            CallEvent::Failed { .. } => "Failed",
            CallEvent::Ended { .. } => "Ended",
        })
        .collect()
}

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn sipp_uas_answers_and_our_bye_ends_the_call() {
    let sipp = Sipp::start("uas", 47010);
    runtime().block_on(async {
        let mut d = Driver::start().await;
        let req = d.request(sipp.addr(), "service", "127.0.0.1:47000".parse().unwrap());
        let call = d.dial(req);
        let events = d.answered(call).await;
        let Some(CallEvent::Answered { negotiated }) = events.last() else {
            unreachable!()
        };
        assert_eq!(negotiated.remote_rtp.ip().to_string(), "127.0.0.1");
        assert!(kinds(&events).contains(&"Ringing"), "{events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        d.hangup(call);
        // Let the BYE's 200 arrive.
        d.settle(call, Duration::from_secs(1)).await;
        assert_eq!(d.uac.live_calls(), 0);
    });
    sipp.finish();
}

#[test]
fn sipp_401_challenge_is_answered_and_verified() {
    let sipp = Sipp::start("uas_auth.xml", 47020);
    runtime().block_on(async {
        let mut d = Driver::start().await;
        let mut req = d.request(sipp.addr(), "trunk", "127.0.0.1:47002".parse().unwrap());
        req.credentials = Some(DialCredentials {
            username: "trunkuser".into(),
            password: "s3cret".into(),
        });
        let call = d.dial(req);
        // Failed 403 here means sipp's verifyauth rejected our credentials.
        d.answered(call).await;
        d.hangup(call);
        d.settle(call, Duration::from_secs(1)).await;
    });
    sipp.finish();
}

#[test]
fn sipp_busy_fails_the_call_486() {
    let sipp = Sipp::start("uas_busy.xml", 47030);
    runtime().block_on(async {
        let mut d = Driver::start().await;
        let req = d.request(sipp.addr(), "busy", "127.0.0.1:47004".parse().unwrap());
        let call = d.dial(req);
        let events = d
            .until(call, LIMIT, |e| matches!(e, CallEvent::Failed { .. }))
            .await;
        assert_eq!(kinds(&events), ["Trying", "Failed"]);
        let Some(CallEvent::Failed { status, .. }) = events.last() else {
            unreachable!()
        };
        assert_eq!(*status, 486);
        // The layer's ACK reaches sipp (its scenario waits for it); give it time to go.
        d.settle(call, Duration::from_millis(300)).await;
    });
    sipp.finish();
}

/// Dial-out into our own UAS: the server answers with SDP, RTP sent to the answer's address
/// comes back (the server echoes each call), and our BYE ends the call.
#[test]
fn chorus_serve_answers_and_its_media_address_works() {
    let server = Server::start("uac", "47100-47199");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    runtime().block_on(async {
        let mut d = Driver::start().await;
        let to = SocketAddr::from(([127, 0, 0, 1], server.sip_port));
        let mut req = d.request(to, "echo", rtp.local_addr().unwrap());
        // Plain RTP, so this test can check the echo without an SRTP stack of its own.
        req.media.offer_answer.srtp = SrtpPolicy::Off;
        let call = d.dial(req);
        let events = d.answered(call).await;
        let Some(CallEvent::Answered { negotiated }) = events.last() else {
            unreachable!()
        };
        assert!(negotiated.srtp.is_none());
        let media = negotiated.remote_rtp;
        assert!(
            (47100..=47199).contains(&media.port()),
            "media address {media} from the server's range"
        );

        // RTP in the negotiated codec to the answer's address; the echo comes back.
        let pt = negotiated.codec.payload_type.0;
        let mut echoed = None;
        let mut buf = [0u8; 2048];
        for seq in 0..50u16 {
            let mut pkt = vec![0x80, pt];
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            pkt.extend(std::iter::repeat_n(0xd5, 160));
            rtp.send_to(&pkt, media).unwrap();
            if let Ok((n, from)) = rtp.recv_from(&mut buf) {
                echoed = Some((n, from, buf[1] & 0x7f));
                break;
            }
        }
        let (n, from, echoed_pt) = echoed.expect("RTP echoed from the answer's media address");
        assert_eq!(from, media);
        assert_eq!(n, 172);
        assert_eq!(echoed_pt, pt);

        d.hangup(call);
        d.settle(call, Duration::from_secs(1)).await;
        assert_eq!(d.uac.live_calls(), 0);
    });
    drop(server);
}
