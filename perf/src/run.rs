//! One load run: place the callers at the ramp rate, give each answered call a media leg on
//! the generator's engine (SRTP, its talker signal, its keys), hold, hang up, collect.
//!
//! How a caller's call is set up is a [`CallSetup`]: SIP (`sip.rs`, the default) or Janus
//! AudioBridge's HTTP API (`janus.rs`). Everything after the answer (the leg, its signal,
//! the checks, the report) is the same for both. One tokio task drives the setup and the
//! engine's commands; a thread forwards the engine's events (as `chorus serve` does).
//! Callers share the generator's few media sockets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chorus_engine::runtime::{
    Command, CoreId, Engine, EngineConfig, Event, IoKind, LegId, LegUpdate, Metric, SilenceSend,
    SrtpKey,
};
use chorus_signaling::media_leg;
use chorus_signaling::sdp::Negotiated;
use tokio::sync::mpsc;

use crate::audio::{self, Hearing};
use crate::janus::Janus;
use crate::plot::Series;
use crate::proc_cpu::ProcCpu;
use crate::report::{CallRecord, Report};
use crate::sip::{self, SipSetup};
use crate::video::{self, CallerPlan, LinkConfig, VideoLeg, VideoReport, VideoSide};
use crate::{DialArg, RunArgs, SilenceArg, TargetArg};
use chorus_engine::codecs::h264::Clip;

/// From a caller's last key to when it is surely in its conference: the server's prompt for
/// the next key or its join announcement, and the join.
const SETTLE: Duration = Duration::from_secs(4);

/// A key sequence, or the end of the hold, due for a caller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Keys(String),
    Hangup,
    /// Hang up early and dial again as a new caller in the same place (churn).
    Redial,
}

#[derive(Debug)]
struct Caller {
    record: CallRecord,
    core: CoreId,
    pair: u16,
    leg: LegId,
    dialed: Option<Instant>,
    answered: Option<Instant>,
    /// The leg exists on the engine (RemoveLeg owed).
    leg_up: bool,
    /// Hung up or ended; waiting for the leg's final counters.
    finished: bool,
    /// Final counters arrived (or there was no leg).
    done: bool,
    /// The talker signal this caller plays, if a talker.
    signal: Option<Arc<[i16]>>,
    /// The SRTP keys the leg has, to tell a rekeying re-offer from one that keeps them.
    keys: (Option<SrtpKey>, Option<SrtpKey>),
    /// Its place in its conference, and the index of the conference's first caller.
    slot: usize,
    first: usize,
    /// From when it should hear (and be heard by) the others: its keys are in and the server
    /// has had time to join it.
    settled: Option<Instant>,
    /// When it hung up or was hung up on.
    ended: Option<Instant>,
    /// When each burst of its talker signal went out (talkers).
    bursts: Vec<Instant>,
    /// How long it holds once answered.
    hold: Duration,
    /// Its video socket, from dialing until its video starts (`--video`).
    video_socket: Option<std::net::UdpSocket>,
    /// It hangs up this far into its hold and a new caller takes its place (`--churn`).
    churn_after: Option<Duration>,
}

impl Caller {
    /// Caller `record.index` in slot `slot` of the conference whose first caller is `first`,
    /// its leg on `core` and socket pair `pair`, holding for `hold`; silent and not churning
    /// until told otherwise.
    fn new(
        record: CallRecord,
        core: CoreId,
        pair: u16,
        slot: usize,
        first: usize,
        hold: Duration,
    ) -> Caller {
        Caller {
            leg: LegId(record.index + 1),
            record,
            core,
            pair,
            dialed: None,
            answered: None,
            leg_up: false,
            finished: false,
            done: false,
            signal: None,
            keys: (None, None),
            slot,
            first,
            settled: None,
            ended: None,
            bursts: Vec::new(),
            hold,
            churn_after: None,
            video_socket: None,
        }
    }

    /// A new caller at index `index` taking `self`'s place in its conference for `hold` (a
    /// churning caller's successor: never a talker, no churn of its own).
    fn successor(&self, index: u32, hold: Duration) -> Caller {
        let record = CallRecord {
            index,
            conference: self.record.conference,
            talker: false,
            hearing: (self.record.hearing.as_ref()).map(|h| Hearing::new(h.heard.len())),
            ..CallRecord::default()
        };
        Caller::new(record, self.core, self.pair, self.slot, self.first, hold)
    }
}

/// What a caller's setup reports to the driver.
#[derive(Debug)]
pub enum SetupEvent {
    /// The call is up with this media (the leg's remote address, codec, keys).
    Answered(Box<Negotiated>),
    /// The server changed the call's media (a re-INVITE moving it to another core).
    Renegotiated(Box<Negotiated>),
    /// The call was never established: a status (SIP's, or Janus's error code; 0 when
    /// there is none) and why.
    Failed {
        /// The final status.
        status: u16,
        /// Why, for people.
        reason: String,
    },
    /// The server ended the established call.
    Ended {
        /// Why, for people.
        reason: String,
    },
}

/// One caller to place.
#[derive(Debug, Clone, Copy)]
pub struct Dial {
    /// The caller's number (`load{user}`).
    pub user: u32,
    /// Its conference's ID.
    pub conference: u64,
    /// Its leg's local RTP address on the generator.
    pub local_rtp: SocketAddr,
    /// Its leg (whose SSRC and CNAME an SDP offer announces).
    pub leg: LegId,
    /// Its video socket's address (`--video`): the offer carries an m=video there.
    pub video_rtp: Option<SocketAddr>,
}

/// How callers reach the server under test. Callers are named by their index in the
/// driver's list. The driver calls `dial` and `hangup`, then `flush`, drains `poll_event`,
/// calls `handle_timeout` when `poll_timeout` (or any other wake-up) is due, and awaits
/// `recv`, which takes one input, alongside the engine's events.
pub trait CallSetup {
    /// Starts setting up a call for `caller`; `Err` (why) when it cannot even start.
    fn dial(&mut self, now: Instant, caller: usize, dial: Dial) -> Result<(), String>;
    /// Hangs up `caller`'s call (or gives up setting it up).
    fn hangup(&mut self, now: Instant, caller: usize);
    /// Sends what `dial`, `hangup` and the inputs produced.
    fn flush(&mut self);
    /// The next thing that happened to a caller's call.
    fn poll_event(&mut self) -> Option<(usize, SetupEvent)>;
    /// When `handle_timeout` is next due, if ever.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Timers that are due.
    fn handle_timeout(&mut self, now: Instant);
    /// Waits for one input (a message, a response) and takes it; `Err` when the setup can
    /// no longer work (its socket closed).
    async fn recv(&mut self) -> Result<()>;
    /// After the run: lets the last hang-ups finish and cleans up on the server.
    async fn linger(&mut self);
}

/// Runs the load and returns what it measured; `Err` for what stops a run from starting
/// (an unreachable server, ports, sockets).
pub fn run(args: &RunArgs) -> Result<Report> {
    match args.target {
        TargetArg::Sip => sip::preflight(args)?,
        TargetArg::Janus => crate::janus::preflight(args)?,
    }
    let engine = Engine::start(EngineConfig {
        cores: args.cores,
        io: IoKind::Uring,
        media_ip: args.bind,
        media_ports: args.media_ports,
        pin_cores: false,
        ..EngineConfig::default()
    })
    .context("starting the generator's media cores (--media-ports, --cores)")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let video = if args.video {
        let config = video::clip_config();
        let clip = Clip::encode(&config).context("encoding the video clip")?;
        eprintln!(
            "video clip: {} s, {} layers, {} kB, encoded once in {:.1} s",
            config.seconds,
            clip.layers().len(),
            clip.bytes() / 1_000,
            clip.elapsed().as_secs_f64()
        );
        Some(VideoSide::new(Arc::new(clip), args.video_ports)?)
    } else {
        None
    };
    let (events_tx, events_rx) = mpsc::channel(65_536);
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let bridge = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                engine.wait_events(Duration::from_millis(50));
                while let Some(ev) = engine.poll_event() {
                    if events_tx.blocking_send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        let report = runtime.block_on(async {
            match args.target {
                TargetArg::Sip => {
                    let setup = SipSetup::bind(args).await?;
                    drive(args, &engine, events_rx, setup, video).await
                }
                TargetArg::Janus => {
                    let setup = Janus::connect(args).await?;
                    drive(args, &engine, events_rx, setup, None).await
                }
            }
        });
        stop.store(true, Ordering::Relaxed);
        let _ = bridge.join();
        report
    })?;
    engine.shutdown();
    Ok(report)
}

async fn drive<S: CallSetup>(
    args: &RunArgs,
    engine: &Engine,
    mut events: mpsc::Receiver<(CoreId, Event)>,
    mut setup: S,
    mut video: Option<VideoSide>,
) -> Result<Report> {
    let cores = engine.core_count().max(1);
    let talkers = args.talkers as usize;
    // Every tone's signal; each conference's talkers take theirs in turn (`tone_of`), and a
    // checked caller's probe watches all of them (another conference's tone is a leak).
    let signals: Vec<Arc<[i16]>> = (0..audio::TONES_HZ.len())
        .map(audio::talker_signal)
        .collect();
    let tones = audio::TONES_HZ.to_vec();

    let mut callers: Vec<Caller> = (0..args.users)
        .map(|i| {
            let conference = args.conference_base + u64::from(i / args.conference_size);
            let slot = i % args.conference_size;
            let core = CoreId((i as usize % cores) as u16);
            let pairs = engine.media_addrs(core).len().max(1);
            let record = CallRecord {
                index: i,
                conference,
                talker: slot < args.talkers,
                // `audio_checks` callers in each hundred, spread over the conferences.
                hearing: (i % 100 < u32::from(args.audio_checks)).then(|| Hearing::new(talkers)),
                ..CallRecord::default()
            };
            let pair = ((i as usize / cores) % pairs) as u16;
            let first = (i - slot) as usize;
            let mut c = Caller::new(record, core, pair, slot as usize, first, args.duration);
            let room = u64::from(i / args.conference_size);
            c.signal = (slot < args.talkers)
                .then(|| signals[audio::tone_of(room, talkers, slot as usize)].clone());
            // Silent callers only (a talker's bursts are what the others are checked against),
            // `churn` in each hundred, each at its own point of the middle half of the hold.
            c.churn_after = (slot >= args.talkers && i % 100 < u32::from(args.churn)).then(|| {
                args.duration
                    .mul_f64(0.25 + 0.5 * f64::from(i * 37 % 100) / 100.0)
            });
            c
        })
        .collect();
    let mut due: BinaryHeap<Reverse<(Instant, usize, Due)>> = BinaryHeap::new();
    // Video callers answered without video.
    let mut no_video_answer = Vec::new();

    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.ramp);
    let ramp_time = interval * args.users;
    // Calls never answered by then are given up (the UAC's own timers fail them earlier).
    let deadline = start + ramp_time + args.duration + Duration::from_secs(45);
    // Past it, every call still open is hung up once (it is then out of the wake-ups).
    let mut deadline_passed = false;
    let mut placed = 0usize;
    // Callers that hung up early and were replaced (`--churn`).
    let mut churned = 0usize;
    let mut next_progress = start + Duration::from_secs(1);
    let mut last_packets = (0u64, 0u64);
    let mut last_video_frames = 0u64;
    // The run over time, a sample a second: calls up, the RTP short of 50 packets a second
    // per call up, the delays measured, the server's CPU.
    let mut series = Series::default();
    let mut delays: Vec<f32> = Vec::new();
    let mut server_cpu = server_cpu(args);
    if let Some(cpu) = server_cpu.as_mut() {
        cpu.sample(start);
    }
    // Our own, so a saturated generator is not taken for a slow server.
    let mut own_cpu = ProcCpu::new(std::process::id()).ok();
    if let Some(cpu) = own_cpu.as_mut() {
        cpu.sample(start);
    }
    let mut generator_cpu = Vec::new();

    loop {
        let now = Instant::now();
        // Place the calls that are due.
        // The first `users` at the ramp rate; churned callers' successors at once.
        let due_at = |placed: usize| {
            let ramped = (placed as u32).min(args.users);
            start + interval * ramped
        };
        while placed < callers.len() && due_at(placed) <= now {
            let c = &mut callers[placed];
            if let Some(side) = video.as_mut() {
                match side.bind(args.bind) {
                    Ok(s) => c.video_socket = Some(s),
                    Err(e) => {
                        c.record.failed = Some((0, format!("no video socket: {e:#}")));
                        c.done = true;
                        placed += 1;
                        continue;
                    }
                }
            }
            let dial = Dial {
                user: c.record.index,
                conference: c.record.conference,
                local_rtp: engine.media_addrs(c.core)[usize::from(c.pair)],
                leg: c.leg,
                video_rtp: c.video_socket.as_ref().and_then(|s| s.local_addr().ok()),
            };
            match setup.dial(now, placed, dial) {
                Ok(()) => c.dialed = Some(now),
                Err(e) => {
                    c.record.failed = Some((0, format!("not dialed: {e}")));
                    c.done = true;
                }
            }
            placed += 1;
        }
        // Keys and hang-ups that are due.
        while let Some(Reverse((at, _, _))) = due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, i, what))) = due.pop() else {
                break;
            };
            let next_index = callers.len() as u32;
            let c = &mut callers[i];
            if c.finished {
                continue;
            }
            match what {
                Due::Keys(keys) => {
                    let _ = engine.send(c.core, Command::SendDtmf { leg: c.leg, keys });
                }
                Due::Hangup => {
                    setup.hangup(now, i);
                    finish(engine, c, now);
                    stop_video(&mut video, i);
                }
                Due::Redial => {
                    setup.hangup(now, i);
                    finish(engine, c, now);
                    stop_video(&mut video, i);
                    let rest = c.answered.map_or(Duration::ZERO, |a| {
                        c.hold.saturating_sub(now.saturating_duration_since(a))
                    });
                    let next = c.successor(next_index, rest);
                    callers.push(next);
                    churned += 1;
                }
            }
        }
        if !deadline_passed && now >= deadline {
            deadline_passed = true;
            for (i, c) in callers.iter_mut().enumerate().filter(|(_, c)| !c.finished) {
                setup.hangup(now, i);
                if c.answered.is_none() && c.record.failed.is_none() {
                    c.record.failed = Some((408, "no answer before the run ended".into()));
                }
                finish(engine, c, now);
                stop_video(&mut video, i);
            }
        }
        setup.flush();
        while let Some((i, event)) = setup.poll_event() {
            let c = &mut callers[i];
            match event {
                SetupEvent::Answered(negotiated) => {
                    let at = Instant::now();
                    c.answered = Some(at);
                    c.record.setup_ms = c
                        .dialed
                        .map(|d| at.saturating_duration_since(d).as_secs_f64() * 1000.0);
                    if let (Some(side), Some(socket)) = (video.as_mut(), c.video_socket.take()) {
                        match &negotiated.video {
                            Some(v) => {
                                let plan = video_plan(args, c.slot, i, at);
                                let leg = VideoLeg::from_session(v);
                                let conference = c.record.conference;
                                if let Err(e) = side.start(i, conference, socket, leg, plan) {
                                    eprintln!("chorus-load: caller {i}: video not started: {e:#}");
                                    no_video_answer.push(i);
                                }
                            }
                            None => no_video_answer.push(i),
                        }
                    }
                    let mut cfg = media_leg::leg_config(c.leg, &negotiated);
                    c.keys = (cfg.srtp_in.clone(), cfg.srtp_out.clone());
                    cfg.latch = true;
                    cfg.pair = Some(c.pair);
                    cfg.inactivity_timeout = None;
                    (cfg.idle_silence, cfg.silence) = match args.silence {
                        SilenceArg::Continuous => (true, SilenceSend::Audio),
                        SilenceArg::Cn => (true, SilenceSend::ComfortNoise),
                        SilenceArg::Dtx => (true, SilenceSend::Dtx),
                        SilenceArg::None => (false, SilenceSend::Audio),
                    };
                    if c.record.hearing.is_some() && talkers > 0 {
                        cfg.tone_probe = Some(tones.clone());
                    }
                    if engine
                        .send(c.core, Command::CreateLeg(Box::new(cfg)))
                        .is_ok()
                    {
                        c.leg_up = true;
                    }
                    if let Some(signal) = &c.signal {
                        let play = Command::Play {
                            leg: c.leg,
                            clip: signal.clone(),
                            id: c.record.index,
                        };
                        let _ = engine.send(c.core, play);
                    }
                    let pin = args.pin.as_ref().map(|p| format!("{p}#"));
                    // The last key goes in at this offset; the join and its announcement
                    // follow within SETTLE.
                    let last_key_ms = match (args.dial, &pin) {
                        (DialArg::Ivr, Some(_)) => 2_500,
                        (DialArg::Ivr, None) => 300,
                        (DialArg::Direct, Some(_)) => 1_000,
                        (DialArg::Direct, None) => 0,
                    };
                    c.settled = Some(at + Duration::from_millis(last_key_ms) + SETTLE);
                    match args.dial {
                        DialArg::Ivr => {
                            let id = format!("{}#", c.record.conference);
                            due.push(Reverse((at + Duration::from_millis(300), i, Due::Keys(id))));
                            if let Some(pin) = pin {
                                due.push(Reverse((
                                    at + Duration::from_millis(2_500),
                                    i,
                                    Due::Keys(pin),
                                )));
                            }
                        }
                        DialArg::Direct => {
                            if let Some(pin) = pin {
                                due.push(Reverse((
                                    at + Duration::from_millis(1_000),
                                    i,
                                    Due::Keys(pin),
                                )));
                            }
                        }
                    }
                    due.push(Reverse((at + c.hold, i, Due::Hangup)));
                    if let Some(after) = c.churn_after {
                        due.push(Reverse((at + after, i, Due::Redial)));
                    }
                }
                // The server moved the call (a leg moved to its conference's core) or changed
                // its media: point the leg at the new address, rekey only if keys changed.
                SetupEvent::Renegotiated(negotiated) => {
                    if let (Some(side), Some(v)) = (video.as_mut(), &negotiated.video) {
                        side.update(i, VideoLeg::from_session(v));
                    }
                    let keys = media_leg::srtp_keys(&negotiated);
                    let srtp = (keys != c.keys).then(|| keys.clone());
                    c.keys = keys;
                    let update = LegUpdate {
                        id: c.leg,
                        remote_rtp: negotiated.remote_rtp,
                        remote_rtcp: (!negotiated.rtcp_mux).then_some(negotiated.remote_rtcp),
                        srtp,
                        send: negotiated.direction.sends(),
                        audio: Some(media_leg::audio_format(&negotiated)),
                    };
                    let _ = engine.send(c.core, Command::UpdateLeg(Box::new(update)));
                }
                SetupEvent::Failed { status, reason } => {
                    c.record.failed = Some((status, reason));
                    c.finished = true;
                    c.done = true;
                }
                SetupEvent::Ended { reason } if !c.finished => {
                    c.record.ended_by_server = Some(reason);
                    finish(engine, c, Instant::now());
                    stop_video(&mut video, i);
                }
                SetupEvent::Ended { .. } => {}
            }
        }
        if placed == callers.len() && callers.iter().all(|c| c.done) {
            break;
        }
        if now >= next_progress {
            let span = now.saturating_duration_since(next_progress - Duration::from_secs(1));
            next_progress += Duration::from_secs(1);
            let (rx, tx) = packets(engine);
            let up = callers
                .iter()
                .filter(|c| c.answered.is_some() && !c.finished)
                .count();
            let failed = callers.iter().filter(|c| c.record.failed.is_some()).count();
            // Calls answered in the last second may not have their first packet yet.
            let settled_up = (callers.iter())
                .filter(|c| !c.finished)
                .filter(|c| {
                    c.answered
                        .is_some_and(|a| now.duration_since(a) >= Duration::from_secs(1))
                })
                .count();
            let joined = (callers.iter())
                .filter(|c| c.answered.is_some() && !c.finished)
                .filter(|c| {
                    c.settled
                        .is_some_and(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
                })
                .count();
            let got = (rx - last_packets.0) as f64;
            let want = settled_up as f64 * 50.0 * span.as_secs_f64().max(0.001);
            let short = if settled_up == 0 {
                0.0
            } else {
                (100.0 * (1.0 - got / want)).max(0.0)
            };
            delays.sort_by(f32::total_cmp);
            let delay = delays.get(delays.len() / 2).map(|&d| f64::from(d));
            let cpu = server_cpu.as_mut().and_then(|c| c.sample(now));
            series.t_s.push(now.duration_since(start).as_secs_f64());
            series.calls_up.push(up as f64);
            series.loss_pct.push(short);
            series.delay_ms.push(delay);
            series.server_cpu_pct.push(cpu);
            series
                .steady
                .push(placed == callers.len() && up > 0 && joined == up);
            generator_cpu.push(own_cpu.as_mut().and_then(|c| c.sample(now)));
            if args.progress {
                let ms = delay.map_or("-".into(), |d| format!("{d:.0} ms"));
                let cpu = cpu.map_or("-".into(), |c| format!("{c:.0}%"));
                // Loss so far: what the packets fell short of 50/s per call up, this second and
                // over the steady seconds until now (RFC 3550 loss comes with the final counters).
                let so_far = series
                    .steady_short_pct()
                    .map_or("-".to_string(), |s| format!("{s:.2}%"));
                let video_line = video.as_ref().map_or(String::new(), |v| {
                    let (frames, broken) = v.progress();
                    let per_s = frames - last_video_frames;
                    last_video_frames = frames;
                    format!(", video frames/s {per_s} ({broken} broken so far)")
                });
                eprintln!(
                    "[{:>4.0}s] calls up {up}, placed {placed}, failed {failed}, packets/s in {} out {}, short of 50/s {short:.1}% (steady so far {so_far}), delay {ms}, server CPU {cpu}{video_line}",
                    now.duration_since(start).as_secs_f64(),
                    rx - last_packets.0,
                    tx - last_packets.1,
                );
            }
            delays.clear();
            last_packets = (rx, tx);
        }

        let next_call = (placed < callers.len()).then(|| due_at(placed));
        let wake = [
            next_call,
            setup.poll_timeout(),
            due.peek().map(|Reverse((at, _, _))| *at),
            Some(next_progress),
            (!deadline_passed).then_some(deadline),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(100));
        tokio::select! {
            input = setup.recv() => input?,
            Some((_, event)) = events.recv() => {
                on_event(engine, &mut callers, event, &mut delays, args, &mut video);
                while let Ok((_, event)) = events.try_recv() {
                    on_event(engine, &mut callers, event, &mut delays, args, &mut video);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                setup.handle_timeout(Instant::now());
            }
        }
    }
    setup.linger().await;
    // What each checked caller should have heard: its talkers' bursts while both were settled.
    for i in 0..callers.len() {
        let (first, settled, ended) = (callers[i].first, callers[i].settled, callers[i].ended);
        let Some(hearing) = callers[i].record.hearing.take() else {
            continue;
        };
        let mut hearing = hearing;
        for (k, want) in hearing.expected.iter_mut().enumerate() {
            let Some(t) = callers.get(first + k) else {
                continue;
            };
            if first + k == i || t.record.failed.is_some() {
                continue;
            }
            if let (Some(a), Some(b), Some(x), Some(y)) = (settled, t.settled, ended, t.ended) {
                *want = audio::expected_bursts(&t.bursts, a.max(b), x.min(y));
            }
        }
        callers[i].record.hearing = Some(hearing);
    }
    let (rx, tx) = packets(engine);
    let media_out = (0..engine.core_count())
        .map(|c| {
            let k = engine.counters(CoreId(c as u16));
            k.get(Metric::MixedOut) + k.get(Metric::DtmfEventsOut)
        })
        .sum();
    let drops = [
        Metric::DropUnknownFlow,
        Metric::DropAuthFailed,
        Metric::DropReplayed,
        Metric::DropMalformed,
        Metric::DropNotRtp,
        Metric::DropTxFull,
    ]
    .into_iter()
    .map(|m| {
        let n = (0..engine.core_count())
            .map(|c| engine.counters(CoreId(c as u16)).get(m))
            .sum();
        (m.name(), n)
    })
    .collect();
    let video = match video {
        Some(side) => {
            let results = side.finish().await;
            Some(VideoReport {
                expected: callers.iter().filter(|c| c.answered.is_some()).count(),
                callers: (results.into_iter())
                    .map(|(i, v)| (i, callers.get(i).map_or(0, |c| c.record.conference), v))
                    .collect(),
                no_video_answer,
            })
        }
        None => None,
    };
    Ok(Report {
        video,
        drops,
        calls: callers.into_iter().map(|c| c.record).collect(),
        wall_s: start.elapsed().as_secs_f64(),
        rx_packets: rx,
        tx_packets: tx,
        media_out,
        churned,
        codec: Some(sip::codec(args)),
        series,
        generator_cpu,
        generator_cores: engine.core_count(),
    })
}

/// Caller `index`'s video ends with its call.
fn stop_video(video: &mut Option<VideoSide>, index: usize) {
    if let Some(v) = video.as_mut() {
        v.stop(index);
    }
}

/// What caller `index` (in `slot` of its conference, answered at `answered`) does with
/// video: publish if among the first `--video-publishers`, a lossy path if among the first
/// `--video-lossy`, a bandwidth limit (from `--video-limit-after` on) if among the last
/// `--video-limited`.
fn video_plan(args: &RunArgs, slot: usize, index: usize, answered: Instant) -> CallerPlan {
    let size = args.conference_size as usize;
    let publish = slot < args.video_publishers.map_or(size, |n| n as usize);
    let lossy = slot < args.video_lossy.map_or(size, |n| n as usize);
    let limited = slot >= size.saturating_sub(args.video_limited.map_or(size, |n| n as usize));
    CallerPlan {
        publish,
        link: LinkConfig {
            loss: if lossy { args.video_loss / 100.0 } else { 0.0 },
            bandwidth_bps: (args.video_bandwidth)
                .filter(|_| limited)
                .map(|kbps| u64::from(kbps) * 1_000),
            burst: Duration::from_millis(500),
            limit_from: Some(answered + args.video_limit_after),
            seed: 0x5eed ^ index as u64,
        },
    }
}

/// The call is over for us: remove its leg (its counters come back in `LegRemoved`).
fn finish(engine: &Engine, c: &mut Caller, now: Instant) {
    if c.finished {
        return;
    }
    c.finished = true;
    c.ended = Some(now);
    c.record.held_s = c
        .answered
        .map_or(0.0, |a| now.saturating_duration_since(a).as_secs_f64());
    // Its final counters come back in LegRemoved; with no leg, or no room in the core's
    // queue for the removal, there are none to wait for (the run would never end).
    let removing = c.leg_up && engine.send(c.core, Command::RemoveLeg(c.leg)).is_ok();
    if !removing {
        c.done = true;
    }
}

fn on_event(
    engine: &Engine,
    callers: &mut [Caller],
    event: Event,
    delays: &mut Vec<f32>,
    args: &RunArgs,
    video: &mut Option<VideoSide>,
) {
    let index = |id: LegId| (id.0 as usize).checked_sub(1);
    match event {
        Event::PlayStarted { leg, at, .. } => {
            if let Some(i) = index(leg).filter(|&i| i < callers.len()) {
                callers[i].bursts.push(at);
                // A talk burst: the speaker's video should follow (speaker layout), from when
                // this talker has the floor: its burst's start, or the end of the bursts of
                // its conference's other talkers that are still going.
                if let Some(v) = video.as_mut() {
                    let (first, conference) = (callers[i].first, callers[i].record.conference);
                    let size = args.conference_size as usize;
                    let floor = (first..first + size)
                        .filter(|&j| j != i)
                        .filter_map(|j| callers.get(j))
                        .filter(|t| t.record.talker && !t.finished)
                        .filter_map(|t| t.bursts.last().map(|&b| b + audio::BURST))
                        .fold(at, Instant::max);
                    v.speaker(conference, i, floor);
                }
            }
        }
        Event::ToneOnset { leg, tone, at } => {
            let Some(i) = index(leg).filter(|&i| i < callers.len()) else {
                return;
            };
            let (own, first, settled) = {
                let c = &callers[i];
                (c.record.talker.then_some(c.slot), c.first, c.settled)
            };
            let room = first as u64 / u64::from(args.conference_size.max(1));
            let talkers = args.talkers as usize;
            let Some(slot) = audio::slot_of(room, talkers, usize::from(tone)) else {
                // No talker of its conference plays that tone: another conference's audio.
                if let Some(h) = callers[i].record.hearing.as_mut()
                    && settled.is_some_and(|s| at >= s)
                {
                    h.foreign += 1;
                }
                return;
            };
            let talker = first + slot;
            let Some(t) = callers.get(talker) else {
                return;
            };
            let settled = settled.max(t.settled).unwrap_or(at);
            let bursts = std::mem::take(&mut callers[talker].bursts);
            if let Some(hearing) = callers[i].record.hearing.as_mut()
                && let Some(d) = audio::book_onset(hearing, own, slot, at, &bursts, settled)
            {
                delays.push(d.as_secs_f32() * 1000.0);
            }
            callers[talker].bursts = bursts;
        }
        Event::LegRemoved { id, stats } => {
            if let Some(c) = index(id).and_then(|i| callers.get_mut(i)) {
                c.record.stats = Some(stats);
                c.done = true;
            }
        }
        // Talkers loop their signal.
        Event::PlayDone {
            leg,
            completed: true,
            ..
        } => {
            if let Some(c) = index(leg).and_then(|i| callers.get(i))
                && !c.finished
                && let Some(signal) = &c.signal
            {
                let play = Command::Play {
                    leg,
                    clip: signal.clone(),
                    id: c.record.index,
                };
                let _ = engine.send(c.core, play);
            }
        }
        Event::LegRejected { id, reason } => {
            if let Some(c) = index(id).and_then(|i| callers.get_mut(i)) {
                c.leg_up = false;
                c.record
                    .failed
                    .get_or_insert((0, format!("media leg refused: {reason}")));
            }
        }
        _ => {}
    }
}

/// The server's CPU meter: its `--server-pid`, or the process holding the server's UDP port
/// on this machine; None (with a note) when neither is found.
fn server_cpu(args: &RunArgs) -> Option<ProcCpu> {
    let found = match args.target {
        TargetArg::Sip => {
            let port = args.server.port();
            let pid = crate::proc_cpu::find_pid_listening(port);
            (pid, format!("UDP port {port}"))
        }
        TargetArg::Janus => {
            let port = crate::janus::JanusUrl::parse(&args.janus_url).map_or(0, |u| u.addr.port());
            let pid = crate::proc_cpu::find_pid_listening_tcp(port);
            (pid, format!("TCP port {port}"))
        }
    };
    let Some(pid) = args.server_pid.or(found.0) else {
        eprintln!(
            "note: no server process found on {} (--server-pid); no server CPU figures",
            found.1
        );
        return None;
    };
    ProcCpu::new(pid)
        .map_err(|e| eprintln!("note: {e}; no server CPU figures"))
        .ok()
}

fn packets(engine: &Engine) -> (u64, u64) {
    (0..engine.core_count()).fold((0, 0), |(rx, tx), c| {
        let k = engine.counters(CoreId(c as u16));
        (rx + k.get(Metric::RxPackets), tx + k.get(Metric::TxPackets))
    })
}
