//! Callers set up over SIP (the default target): the signaling crate's sans-IO UAC carried
//! over its tokio transports. An INVITE with an SDP offer of one codec per caller, ACK, BYE;
//! a re-INVITE that moves the call is passed on as `SetupEvent::Renegotiated`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chorus_engine::srtp::SrtpSuite;
use chorus_signaling::sdp::{
    Codec, Extension, Feedback, LocalSource, OfferAnswerConfig, Rid, SrtpPolicy, VideoCodec,
    VideoConfig, VideoSource,
};
use chorus_signaling::transaction::TransactionId;
use chorus_signaling::transport::{
    Inbound, InboundFrame, ListenSpec, Peer, Transport, TransportConfig, Transports,
};
use chorus_signaling::uac::{
    CallEvent, CallHandle, DialRequest, MediaOffer, Uac, UacConfig, driver,
};
use tokio::sync::mpsc;

use crate::run::{CallSetup, Dial, SetupEvent};
use crate::{CodecArg, DialArg, RunArgs, SrtpArg, TransportArg, VideoLayoutArg};

/// The codec every caller offers.
pub fn codec(args: &RunArgs) -> Codec {
    match args.codec {
        CodecArg::Pcmu => Codec::Pcmu,
        CodecArg::Pcma => Codec::Pcma,
        CodecArg::G722 => Codec::G722,
        CodecArg::Opus => Codec::Opus,
    }
}

fn offer_config(args: &RunArgs) -> OfferAnswerConfig {
    let mut cfg = OfferAnswerConfig {
        codecs: vec![codec(args)],
        ..OfferAnswerConfig::default()
    };
    match args.srtp {
        SrtpArg::None => cfg.srtp = SrtpPolicy::Off,
        SrtpArg::AesCm80 => {
            cfg.srtp = SrtpPolicy::Required;
            cfg.srtp_suites = vec![SrtpSuite::AesCm128HmacSha1_80];
        }
        SrtpArg::AesGcm128 => {
            cfg.srtp = SrtpPolicy::Required;
            cfg.srtp_suites = vec![SrtpSuite::AeadAes128Gcm];
        }
    }
    cfg.video = args.video.then(|| video_offer(args));
    cfg
}

/// With `--video`: H.264 only (what the clip is), simulcast sent as the clip's layers (RIDs
/// `l0`, `l1`, ... lowest first), RTX, NACK/PLI/FIR/REMB, abs-send-time (frame delay) and the
/// RID element, and one stream per other publisher unless `--video-layout speaker`.
fn video_offer(args: &RunArgs) -> VideoConfig {
    VideoConfig {
        codecs: vec![VideoCodec::H264],
        feedback: Feedback {
            transport_cc: false,
            ..Feedback::ALL
        },
        extensions: vec![Extension::AbsSendTime, Extension::Rid],
        rtx: true,
        simulcast: true,
        max_receive_bps: Some(8_000_000),
        send_simulcast: crate::video::LAYER_HEIGHTS
            .iter()
            .enumerate()
            .map(|(i, &h)| Rid::sending(&crate::video::rid(i), h))
            .collect(),
        receive_all: args.video_layout == VideoLayoutArg::All,
        ..VideoConfig::default()
    }
}

/// Asks the server for OPTIONS before anything else, so an unreachable server is one clear
/// line instead of a run of timed-out calls.
pub fn preflight(args: &RunArgs) -> Result<()> {
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "the server at {} does not answer ({why}); is `chorus serve` running there?",
            args.server
        )
    };
    match args.transport {
        TransportArg::Udp => {
            let sock = std::net::UdpSocket::bind((args.bind, 0))
                .context("binding a socket for the OPTIONS check")?;
            let local = sock.local_addr()?;
            sock.set_read_timeout(Some(Duration::from_millis(500)))?;
            let options = format!(
                "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKload{port}\r\n\
                 From: <sip:load@{local}>;tag=load\r\nTo: <sip:{server}>\r\nCall-ID: preflight-{port}@{local}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                server = args.server,
                port = local.port(),
            );
            let mut buf = [0u8; 2048];
            for _ in 0..4 {
                sock.send_to(options.as_bytes(), args.server)
                    .map_err(|e| unreachable(e.to_string()))?;
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 ") => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(unreachable("connection refused".into()));
                    }
                    Err(_) => {}
                }
            }
            Err(unreachable("no answer to OPTIONS in 2 s".into()))
        }
        TransportArg::Tcp | TransportArg::Tls => {
            std::net::TcpStream::connect_timeout(&args.server, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| unreachable(e.to_string()))
        }
    }
}

/// Callers as SIP UAs: the UAC, the transports it speaks over, and which call is which caller.
pub struct SipSetup {
    uac: Uac<Peer>,
    transports: Transports,
    inbound: mpsc::Receiver<Inbound>,
    failures_tx: mpsc::Sender<TransactionId>,
    failures: mpsc::Receiver<TransactionId>,
    transport: Transport,
    server: SocketAddr,
    local: SocketAddr,
    offer: OfferAnswerConfig,
    dial: DialArg,
    ivr_number: String,
    by_handle: HashMap<CallHandle, usize>,
    handles: HashMap<usize, CallHandle>,
}

impl SipSetup {
    /// Binds the generator's SIP socket (and, for TLS, reads the CA to trust).
    pub async fn bind(args: &RunArgs) -> Result<SipSetup> {
        let transport = match args.transport {
            TransportArg::Udp => Transport::Udp,
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Tls => Transport::Tls,
        };
        let tls_client = match (&args.tls_ca, args.transport) {
            (Some(ca), TransportArg::Tls) => {
                Some(chorus_signaling::tls::client_config(ca).context("reading --tls-ca")?)
            }
            _ => None,
        };
        // Over TLS every call goes out on connections we open; the listener (plain TCP) only
        // gives the Via an address.
        let listen = match transport {
            Transport::Tls => Transport::Tcp,
            t => t,
        };
        let (transports, inbound) = Transports::bind(TransportConfig {
            listen: vec![ListenSpec {
                transport: listen,
                addr: (args.bind, 0).into(),
            }],
            tls_client,
            ..TransportConfig::default()
        })
        .await
        .context("binding the generator's SIP socket")?;
        let local = transports.local_addrs()[0].1;
        let uac: Uac<Peer> = Uac::new(UacConfig {
            user_agent: format!("chorus-load/{}", env!("CARGO_PKG_VERSION")),
            ring_timeout: Duration::from_secs(30),
            ..UacConfig::default()
        });
        let (failures_tx, failures) = mpsc::channel(1024);
        Ok(SipSetup {
            uac,
            transports,
            inbound,
            failures_tx,
            failures,
            transport,
            server: args.server,
            local,
            offer: offer_config(args),
            dial: args.dial,
            ivr_number: args.ivr_number.clone(),
            by_handle: HashMap::new(),
            handles: HashMap::new(),
        })
    }
}

impl CallSetup for SipSetup {
    fn dial(&mut self, now: Instant, caller: usize, dial: Dial) -> Result<(), String> {
        let user = match self.dial {
            DialArg::Ivr => self.ivr_number.clone(),
            DialArg::Direct => dial.conference.to_string(),
        };
        let request = DialRequest {
            target: Peer {
                transport: self.transport,
                remote: self.server,
                local: self.local,
                conn: None,
            },
            request_uri: format!("sip:{user}@{}", self.server),
            from_user: format!("load{}", dial.user),
            from_display: None,
            credentials: None,
            media: MediaOffer {
                local_rtp: dial.local_rtp,
                offer_answer: self.offer.clone(),
                source: Some(LocalSource::of_leg(dial.leg)),
                video_rtp: dial.video_rtp,
                video_sources: dial
                    .video_rtp
                    .map(|_| {
                        (crate::video::publisher_ssrcs(dial.user as usize).into_iter())
                            .map(|(ssrc, rtx)| VideoSource {
                                ssrc: ssrc.0,
                                rtx: Some(rtx.0),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            extra_headers: Vec::new(),
        };
        let h = self.uac.dial(now, request).map_err(|e| e.to_string())?;
        self.by_handle.insert(h, caller);
        self.handles.insert(caller, h);
        Ok(())
    }

    fn hangup(&mut self, now: Instant, caller: usize) {
        if let Some(&h) = self.handles.get(&caller) {
            let _ = self.uac.hangup(now, h);
        }
    }

    fn flush(&mut self) {
        while let Some(out) = self.uac.poll_output() {
            driver::transmit(&self.transports, out, &self.failures_tx);
        }
    }

    fn poll_event(&mut self) -> Option<(usize, SetupEvent)> {
        while let Some(ev) = self.uac.poll_event() {
            let Some(&i) = self.by_handle.get(&ev.call) else {
                continue;
            };
            let event = match ev.kind {
                CallEvent::Answered { negotiated } => SetupEvent::Answered(negotiated),
                CallEvent::Renegotiated { negotiated } => SetupEvent::Renegotiated(negotiated),
                CallEvent::Failed { status, reason } => SetupEvent::Failed { status, reason },
                CallEvent::Ended {
                    by_remote: true,
                    reason,
                } => SetupEvent::Ended { reason },
                _ => continue,
            };
            return Some((i, event));
        }
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.uac.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.uac.handle_timeout(now);
    }

    async fn recv(&mut self) -> Result<()> {
        tokio::select! {
            frame = self.inbound.recv() => {
                let Some(frame) = frame else {
                    anyhow::bail!("the generator's SIP socket closed");
                };
                if let InboundFrame::Message(msg) = frame.frame {
                    self.uac.handle_message(Instant::now(), frame.peer, msg);
                }
            }
            Some(id) = self.failures.recv() => {
                self.uac.handle_transport_error(Instant::now(), id);
            }
        }
        Ok(())
    }

    /// The last BYEs and their answers.
    async fn linger(&mut self) {
        let linger = Instant::now() + Duration::from_millis(300);
        while Instant::now() < linger {
            self.flush();
            tokio::select! {
                Some(frame) = self.inbound.recv() => {
                    if let InboundFrame::Message(msg) = frame.frame {
                        self.uac.handle_message(Instant::now(), frame.peer, msg);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    self.uac.handle_timeout(Instant::now());
                }
            }
        }
    }
}
