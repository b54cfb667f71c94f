//! The video callers on sockets: one UDP socket per caller (the server tells video legs
//! apart by their remote address), SRTP with the negotiated keys, RTP and RTCP muxed; each
//! caller is a task on the video side's own runtime thread, apart from the audio engine.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chorus_engine::codecs::h264::Clip;
use chorus_engine::rtcp::{NtpClock, NtpTime, PacketKind as Wire, classify};
use chorus_engine::rtp::{Pt, Ssrc};
use chorus_engine::runtime::SrtpKey;
use chorus_engine::srtp::SrtpContext;
use chorus_engine::srtp::sdes::CryptoAttribute;
use chorus_signaling::sdp::{Extension, VideoSession};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::{
    LinkConfig, PacketKind, Publisher, PublisherConfig, PublisherCounters, Subscriber,
    SubscriberConfig, SubscriberStats,
};

/// One caller's negotiated video, as the signaling hands it over.
#[derive(Debug, Clone)]
pub struct VideoLeg {
    /// Where the server takes our RTP (and RTCP, muxed).
    pub remote_rtp: SocketAddr,
    /// Where RTCP goes without rtcp-mux.
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share the port.
    pub rtcp_mux: bool,
    /// (to unprotect what the server sends, to protect what we send); None: plain RTP.
    pub srtp: Option<(SrtpKey, SrtpKey)>,
    /// H.264's payload type.
    pub pt: Pt,
    /// RTX's payload type, when negotiated.
    pub rtx_pt: Option<Pt>,
    /// Generic NACK, PLI, REMB negotiated (we ask for key frames with PLI only).
    pub nack: bool,
    /// See `nack`.
    pub pli: bool,
    /// See `nack`.
    pub remb: bool,
    /// The `rtp-stream-id` extension's id.
    pub rid_ext: Option<u8>,
    /// abs-send-time's id.
    pub abs_send_time_ext: Option<u8>,
    /// The RIDs we send, lowest layer first (the clip's layer order).
    pub rids: Vec<String>,
    /// (RTX SSRC, media SSRC) pairs of the server's streams, if it announced them.
    pub rtx_ssrcs: Vec<(u32, u32)>,
}

impl VideoLeg {
    /// The leg the signaling agreed: its addresses, keys, formats, feedback and extensions;
    /// we send the clip's layers as RIDs `l0`, `l1`, ... (our offer's `a=rid` lines).
    pub fn from_session(v: &VideoSession) -> VideoLeg {
        let key = |c: &CryptoAttribute| SrtpKey {
            suite: c.suite,
            key: c.key_material.key().to_vec(),
            salt: c.key_material.salt().to_vec(),
        };
        let m = &v.media;
        VideoLeg {
            remote_rtp: v.remote_rtp,
            remote_rtcp: v.remote_rtcp,
            rtcp_mux: v.rtcp_mux,
            srtp: v.srtp.as_ref().map(|k| (key(&k.remote), key(&k.local))),
            pt: m.pt,
            rtx_pt: m.rtx_pt,
            nack: m.feedback.nack,
            pli: m.feedback.pli,
            remb: m.feedback.remb,
            rid_ext: m.extensions.id(Extension::Rid),
            abs_send_time_ext: m.extensions.id(Extension::AbsSendTime),
            rids: (0..super::LAYER_HEIGHTS.len()).map(super::rid).collect(),
            rtx_ssrcs: (v.remote_sources.iter())
                .filter_map(|s| Some((s.rtx?, s.ssrc)))
                .collect(),
        }
    }
}

/// What to do on a caller's path.
#[derive(Debug, Clone, Copy)]
pub struct CallerPlan {
    /// It publishes the clip.
    pub publish: bool,
    /// Its simulated path.
    pub link: LinkConfig,
}

/// One caller's video at the end.
#[derive(Debug, Clone, Default)]
pub struct CallerVideo {
    /// Its publisher's counters, if it published.
    pub publisher: Option<PublisherCounters>,
    /// What it received.
    pub subscriber: SubscriberStats,
    /// Its path's random loss, percent.
    pub loss_pct: f64,
    /// Its path's bandwidth limit, bits per second.
    pub limit_bps: Option<u64>,
    /// Packets that failed SRTP.
    pub srtp_failures: u64,
    /// Sends that failed (socket full or gone).
    pub send_errors: u64,
}

/// The video side of the generator: a runtime thread and a task per video caller.
pub struct VideoSide {
    runtime: tokio::runtime::Runtime,
    clip: Arc<Clip>,
    epoch: Instant,
    ntp: NtpClock,
    tasks: HashMap<usize, Running>,
    done: Vec<(usize, tokio::task::JoinHandle<CallerVideo>)>,
    /// The ports video sockets take (`--video-ports`), and the next one to try.
    ports: (u16, u16),
    next_port: u16,
    /// Complete and broken frames all subscribers reported so far (updated by the tasks
    /// about once a second, for the progress line).
    progress: Arc<Progress>,
}

/// Running totals the tasks keep for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Complete frames.
    pub frames: AtomicU64,
    /// Frames broken within the path's limit.
    pub broken: AtomicU64,
}

/// What the driver tells a running caller.
#[derive(Debug)]
enum Control {
    /// The call was renegotiated.
    Leg(Box<VideoLeg>),
    /// A publisher of its conference started talking.
    Speaker(u32, Instant),
}

struct Running {
    conference: u64,
    stop: oneshot::Sender<()>,
    update: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<CallerVideo>,
}

impl VideoSide {
    /// A video side looping `clip`, its sockets on `ports` (inclusive).
    pub fn new(clip: Arc<Clip>, ports: (u16, u16)) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chorus-load-video")
            .enable_all()
            .build()
            .context("starting the video thread")?;
        let epoch = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(VideoSide {
            runtime,
            clip,
            epoch,
            ntp: NtpClock::new(epoch, NtpTime::from_unix(unix)),
            tasks: HashMap::new(),
            done: Vec::new(),
            ports,
            next_port: ports.0,
            progress: Arc::default(),
        })
    }

    /// A socket for a caller's video on `ip`, the next free port of the range, to offer
    /// before the call.
    pub fn bind(&mut self, ip: std::net::IpAddr) -> Result<StdUdpSocket> {
        let (lo, hi) = self.ports;
        for _ in lo..=hi {
            let port = self.next_port;
            self.next_port = if port >= hi { lo } else { port + 1 };
            if let Ok(s) = StdUdpSocket::bind((ip, port)) {
                s.set_nonblocking(true)?;
                return Ok(s);
            }
        }
        anyhow::bail!("no free port in --video-ports {lo}-{hi}")
    }

    /// Starts caller `index`'s video (in `conference`) on `socket` toward `leg`.
    pub fn start(
        &mut self,
        index: usize,
        conference: u64,
        socket: StdUdpSocket,
        leg: VideoLeg,
        plan: CallerPlan,
    ) -> Result<()> {
        let now = Instant::now();
        let ssrcs = super::publisher_ssrcs(index);
        let publisher = if plan.publish {
            let config = PublisherConfig {
                ssrcs: ssrcs.iter().map(|s| s.0).collect(),
                rids: leg.rids.clone(),
                pt: leg.pt,
                // Our offer announced the RTX SSRCs (FID groups).
                rtx: leg
                    .rtx_pt
                    .map(|pt| (pt, ssrcs.iter().map(|s| s.1).collect())),
                rid_ext: leg.rid_ext,
                abs_send_time_ext: leg.abs_send_time_ext,
                cname: format!("load{index}@chorus-load"),
                seed: index as u64,
                source: Some(index as u32),
            };
            Some(
                Publisher::new(now, self.epoch, self.ntp, self.clip.clone(), config)
                    .map_err(anyhow::Error::msg)?,
            )
        } else {
            None
        };
        let subscriber = Subscriber::new(
            now,
            self.epoch,
            SubscriberConfig {
                ssrc: super::subscriber_ssrc(index),
                pt: leg.pt,
                rtx_pt: leg.rtx_pt,
                rtx_ssrcs: (leg.rtx_ssrcs.iter())
                    .map(|&(r, m)| (Ssrc(r), Ssrc(m)))
                    .collect(),
                abs_send_time_ext: leg.abs_send_time_ext,
                nack: leg.nack,
                pli: leg.pli,
                remb: leg.remb,
                unlimited_bps: 10_000_000,
                link: plan.link,
            },
        );
        let srtp = match &leg.srtp {
            Some((remote, local)) => Some((
                SrtpContext::new(remote.suite, &remote.key, &remote.salt)
                    .context("SRTP keys of the server")?,
                SrtpContext::new(local.suite, &local.key, &local.salt).context("our SRTP keys")?,
            )),
            None => None,
        };
        let (stop, stopped) = oneshot::channel();
        let (update, updates) = mpsc::unbounded_channel();
        let _guard = self.runtime.enter();
        let socket = UdpSocket::from_std(socket).context("video socket")?;
        let result = CallerVideo {
            loss_pct: plan.link.loss * 100.0,
            limit_bps: plan.link.bandwidth_bps,
            ..CallerVideo::default()
        };
        let task = self.runtime.spawn(caller(CallerTask {
            socket,
            leg,
            publisher,
            subscriber,
            srtp,
            stopped,
            updates,
            result,
            progress: self.progress.clone(),
        }));
        let running = Running {
            conference,
            stop,
            update,
            task,
        };
        if let Some(old) = self.tasks.insert(index, running) {
            let _ = old.stop.send(());
            self.done.push((index, old.task));
        }
        Ok(())
    }

    /// (complete, broken) frames received so far, all callers (about a second behind).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.progress.frames.load(Ordering::Relaxed),
            self.progress.broken.load(Ordering::Relaxed),
        )
    }

    /// Points caller `index`'s video at a renegotiated leg (a re-INVITE moved the call):
    /// new addresses, and new SRTP contexts if the keys changed.
    pub fn update(&mut self, index: usize, leg: VideoLeg) {
        if let Some(r) = self.tasks.get(&index) {
            let _ = r.update.send(Control::Leg(Box::new(leg)));
        }
    }

    /// Caller `index` of `conference` started a talk burst at `at`: its conference's other
    /// callers time how long until its video is on their streams.
    pub fn speaker(&mut self, conference: u64, index: usize, at: Instant) {
        for (&i, r) in &self.tasks {
            if i != index && r.conference == conference {
                let _ = r.update.send(Control::Speaker(index as u32, at));
            }
        }
    }

    /// Stops caller `index`'s video (its call ended).
    pub fn stop(&mut self, index: usize) {
        if let Some(r) = self.tasks.remove(&index) {
            let _ = r.stop.send(());
            self.done.push((index, r.task));
        }
    }

    /// Stops everything and collects each caller's results (a caller whose video was
    /// restarted by a re-offer is summed over its tasks).
    pub async fn finish(mut self) -> Vec<(usize, CallerVideo)> {
        let ids: Vec<usize> = self.tasks.keys().copied().collect();
        for i in ids {
            self.stop(i);
        }
        let mut out: Vec<(usize, CallerVideo)> = Vec::new();
        for (i, task) in std::mem::take(&mut self.done) {
            if let Ok(v) = task.await {
                out.push((i, v));
            }
        }
        out.sort_by_key(|(i, _)| *i);
        self.runtime.shutdown_background();
        out
    }
}

/// Room after a packet for SRTP's tag and index.
const SRTP_ROOM: usize = 32;

/// One caller's video task: its socket, leg, machines and SRTP contexts.
struct CallerTask {
    socket: UdpSocket,
    leg: VideoLeg,
    publisher: Option<Publisher>,
    subscriber: Subscriber,
    srtp: Option<(SrtpContext, SrtpContext)>,
    stopped: oneshot::Receiver<()>,
    updates: mpsc::UnboundedReceiver<Control>,
    result: CallerVideo,
    progress: Arc<Progress>,
}

async fn caller(task: CallerTask) -> CallerVideo {
    let CallerTask {
        socket,
        leg,
        mut publisher,
        mut subscriber,
        mut srtp,
        mut stopped,
        mut updates,
        mut result,
        progress,
    } = task;
    // What this task has added to `progress`, and when it next adds.
    let (mut told, mut tell_at) = ((0u64, 0u64), Instant::now());
    let mut leg = leg;
    let mut tx = vec![0u8; 1_500 + SRTP_ROOM];
    let mut rx = vec![0u8; 2_048];
    loop {
        let now = Instant::now();
        if now >= tell_at {
            let now = (subscriber.frames(), subscriber.broken());
            progress.frames.fetch_add(now.0 - told.0, Ordering::Relaxed);
            progress.broken.fetch_add(now.1 - told.1, Ordering::Relaxed);
            told = now;
            tell_at += Duration::from_secs(1);
        }
        let rtcp_to = if leg.rtcp_mux {
            leg.remote_rtp
        } else {
            leg.remote_rtcp
        };
        if let Some(p) = publisher.as_mut() {
            if p.poll_timeout().0 <= now {
                p.handle_timeout(now);
            }
            // INVARIANT: `tx` is 1,500 bytes plus SRTP_ROOM.
            while let Some((n, kind)) = p.poll_transmit(now, &mut tx[..1_500]) {
                let to = match kind {
                    PacketKind::Rtp => leg.remote_rtp,
                    PacketKind::Rtcp => rtcp_to,
                };
                send(&socket, &mut srtp, &mut tx, n, kind, to, &mut result).await;
            }
        }
        if subscriber.poll_timeout().0 <= now {
            subscriber.handle_timeout(now);
        }
        // INVARIANT: as above.
        while let Some(n) = subscriber.poll_transmit(now, &mut tx[..1_500]) {
            send(
                &socket,
                &mut srtp,
                &mut tx,
                n,
                PacketKind::Rtcp,
                rtcp_to,
                &mut result,
            )
            .await;
        }
        let subscriber_due = subscriber.poll_timeout().0;
        let wake = (publisher.as_ref())
            .map_or(subscriber_due, |p| p.poll_timeout().0.min(subscriber_due))
            .max(now + Duration::from_micros(500));
        tokio::select! {
            _ = &mut stopped => break,
            Some(control) = updates.recv() => match control {
                Control::Speaker(source, at) => subscriber.handle_speaker(at, source),
                Control::Leg(new) => {
                    let new = *new;
                    if new.srtp.as_ref().map(|(r, l)| (&r.key, &r.salt, &l.key, &l.salt))
                        != leg.srtp.as_ref().map(|(r, l)| (&r.key, &r.salt, &l.key, &l.salt))
                    {
                        srtp = new.srtp.as_ref().and_then(|(remote, local)| {
                            Some((
                                SrtpContext::new(remote.suite, &remote.key, &remote.salt).ok()?,
                                SrtpContext::new(local.suite, &local.key, &local.salt).ok()?,
                            ))
                        });
                    }
                    leg = new;
                }
            },
            got = socket.recv_from(&mut rx) => {
                let Ok((n, _from)) = got else { continue };
                let now = Instant::now();
                // INVARIANT: `recv_from` returns at most `rx.len()` bytes.
                receive(now, &mut rx[..n], &mut srtp, &mut publisher, &mut subscriber, &mut result);
                // Take what else is waiting before the timers.
                while let Ok((n, _)) = socket.try_recv_from(&mut rx) {
                    // INVARIANT: `recv_from` returns at most `rx.len()` bytes.
                    receive(now, &mut rx[..n], &mut srtp, &mut publisher, &mut subscriber, &mut result);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
    }
    result.publisher = publisher.map(|p| p.counters());
    result.subscriber = subscriber.stats();
    result
}

async fn send(
    socket: &UdpSocket,
    srtp: &mut Option<(SrtpContext, SrtpContext)>,
    buf: &mut [u8],
    len: usize,
    kind: PacketKind,
    to: SocketAddr,
    result: &mut CallerVideo,
) {
    let len = match (srtp.as_mut(), kind) {
        (None, _) => Ok(len),
        (Some((_, local)), PacketKind::Rtp) => local.protect_rtp(buf, len),
        (Some((_, local)), PacketKind::Rtcp) => local.protect_rtcp(buf, len),
    };
    let Ok(len) = len else {
        result.send_errors += 1;
        return;
    };
    // INVARIANT: `len` is the caller's (<= 1,500) or what SRTP protected in place, within `buf`.
    if socket.send_to(&buf[..len], to).await.is_err() {
        result.send_errors += 1;
    }
}

fn receive(
    now: Instant,
    buf: &mut [u8],
    srtp: &mut Option<(SrtpContext, SrtpContext)>,
    publisher: &mut Option<Publisher>,
    subscriber: &mut Subscriber,
    result: &mut CallerVideo,
) {
    match classify(buf) {
        Wire::Rtp => {
            let len = match srtp.as_mut() {
                Some((remote, _)) => remote.unprotect_rtp(buf),
                None => Ok(buf.len()),
            };
            match len {
                Ok(len) => subscriber.handle_rtp(now, buf, len),
                Err(_) => result.srtp_failures += 1,
            }
        }
        Wire::Rtcp => {
            let len = match srtp.as_mut() {
                Some((remote, _)) => remote.unprotect_rtcp(buf),
                None => Ok(buf.len()),
            };
            match len {
                Ok(len) => {
                    if let Some(p) = publisher.as_mut() {
                        // INVARIANT: `unprotect_rtcp` returns a length within the buffer it was given.
                        p.handle_rtcp(now, &buf[..len]);
                    }
                }
                Err(_) => result.srtp_failures += 1,
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_engine::rtp::RtpPacket;
    use chorus_engine::srtp::SrtpSuite;
    use chorus_engine::srtp::sdes::KeyMaterial;

    fn key() -> SrtpKey {
        let m = KeyMaterial::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        SrtpKey {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            key: m.key().to_vec(),
            salt: m.salt().to_vec(),
        }
    }

    /// A caller's video against a stand-in server socket: what it sends is SRTP with the
    /// RID of each layer, and the 180p stream sent back (as a server would forward it,
    /// under another SSRC) comes out as complete 180p frames.
    #[test]
    fn a_caller_publishes_srtp_simulcast_and_receives_what_is_forwarded() {
        let server = StdUdpSocket::bind("127.0.0.1:63600").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let (theirs, ours) = (key(), key());
        let mut side = VideoSide::new(super::super::tests::clip(), (63601, 63610)).unwrap();
        let socket = side.bind("127.0.0.1".parse().unwrap()).unwrap();
        let caller_addr = socket.local_addr().unwrap();
        let leg = VideoLeg {
            remote_rtp: server.local_addr().unwrap(),
            remote_rtcp: server.local_addr().unwrap(),
            rtcp_mux: true,
            srtp: Some((theirs.clone(), ours.clone())),
            pt: Pt(102),
            rtx_pt: Some(Pt(103)),
            nack: true,
            pli: true,
            remb: true,
            rid_ext: Some(4),
            abs_send_time_ext: Some(3),
            rids: (0..3).map(super::super::rid).collect(),
            rtx_ssrcs: Vec::new(),
        };
        let plan = CallerPlan {
            publish: true,
            link: LinkConfig {
                loss: 0.0,
                bandwidth_bps: None,
                burst: Duration::from_millis(500),
                limit_from: None,
                seed: 1,
            },
        };
        side.start(0, 7_000, socket, leg, plan).unwrap();
        let mut unprotect = SrtpContext::new(ours.suite, &ours.key, &ours.salt).unwrap();
        let mut protect = SrtpContext::new(theirs.suite, &theirs.key, &theirs.salt).unwrap();
        let mut rids = std::collections::BTreeSet::new();
        let (mut rtp, mut rtcp) = (0, 0);
        let mut buf = [0u8; 2_048];
        let end = Instant::now() + Duration::from_millis(2_500);
        while Instant::now() < end {
            let Ok((n, from)) = server.recv_from(&mut buf) else {
                continue;
            };
            assert_eq!(from, caller_addr);
            match classify(&buf[..n]) {
                Wire::Rtp => {
                    let len = unprotect.unprotect_rtp(&mut buf[..n]).unwrap();
                    let p = RtpPacket::parse(&buf[..len]).unwrap();
                    rids.insert(p.extension(4).unwrap().to_vec());
                    rtp += 1;
                    if p.extension(4) == Some(b"l0") {
                        // Forward the 180p layer back as the server's stream 0xabc.
                        buf[8..12].copy_from_slice(&0xabc_u32.to_be_bytes());
                        let n = protect.protect_rtp(&mut buf, len).unwrap();
                        server.send_to(&buf[..n], from).unwrap();
                    }
                }
                Wire::Rtcp => {
                    unprotect.unprotect_rtcp(&mut buf[..n]).unwrap();
                    rtcp += 1;
                }
                _ => panic!("neither RTP nor RTCP"),
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = runtime.block_on(side.finish());
        let (index, v) = &results[0];
        assert_eq!(*index, 0);
        assert_eq!(rids.len(), 3, "{rids:?}");
        assert!(rtp > 100 && rtcp > 0, "{rtp} {rtcp}");
        assert_eq!(v.srtp_failures, 0);
        let sub = &v.subscriber;
        assert!(sub.layers[&180].frames > 20, "{sub:?}");
        assert_eq!(sub.broken(), 0);
        assert_eq!(sub.streams.len(), 1);
        assert_eq!(sub.streams[0].ssrc, 0xabc);
        assert!(v.publisher.unwrap().packets >= rtp);
    }
}
