//! The SIP front door: binds the transports, runs the UAS and UAC cores on the control thread,
//! and carries their decisions to the sockets and the media cores.
//!
//! One tokio task waits on inbound SIP frames, the UA's and UAC's next timers, media-core
//! events, dial-out commands and shutdown; every input goes through the sans-IO `UserAgent`
//! or, for messages of our outgoing calls (`Uac::owns`, a Call-ID lookup), the sans-IO `Uac`,
//! and their outputs are sent (never awaited: transports queue and count). Media-core events
//! reach the task through [`forward_engine_events`], a thread that blocks on the engine's
//! event doorbell. Outgoing calls are placed through a [`Dialer`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::cdr::{Answered, Recorder, Writer};
use crate::conference::{CallInfo, ConferenceInfo, ConferenceService, Output, PinAnswer};
use crate::directory;
use crate::recording::Recording;

use chorus_engine::runtime::{Command, CoreId, Engine, Event, QueueFull};
use chorus_signaling::transport::{InboundFrame, Peer, Transports};
use chorus_signaling::ua::{UaOutput, UserAgent};
use chorus_signaling::uac::{CallHandle, DialRequest, Uac, UacError, UacEvent, driver};
use tokio::sync::{mpsc, oneshot};

/// What the dial-out control asks of the SIP task.
#[derive(Debug)]
pub enum DialCommand {
    /// Place a call; its handle (or why not) comes back on `reply`.
    Dial {
        /// The call.
        request: Box<DialRequest<Peer>>,
        /// Where the handle goes.
        reply: oneshot::Sender<Result<CallHandle, UacError>>,
    },
    /// Hang up a call (CANCEL or BYE).
    Hangup(CallHandle),
}

/// Places and ends outgoing calls through the running SIP task. The operator-facing "dial"
/// control (conferencing issue) holds one; call progress arrives on the event receiver
/// returned by [`dial_out`]. A request's `target.local` should be one of the UDP listen
/// addresses (`Transports::local_addrs`).
#[derive(Clone, Debug)]
pub struct Dialer {
    commands: mpsc::Sender<DialCommand>,
}

// The dial control that calls these arrives with the conferencing issue.
#[allow(dead_code)]
impl Dialer {
    /// Places a call.
    pub async fn dial(&self, request: DialRequest<Peer>) -> Result<CallHandle> {
        let (reply, handle) = oneshot::channel();
        let request = Box::new(request);
        self.commands
            .send(DialCommand::Dial { request, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the SIP task stopped"))?;
        Ok(handle.await??)
    }

    /// Hangs up a call.
    pub async fn hangup(&self, call: CallHandle) -> Result<()> {
        self.commands
            .send(DialCommand::Hangup(call))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP task stopped"))
    }
}

/// The SIP task's end of dial-out: the UAC, its commands, and where its events go.
pub struct DialOut {
    uac: Uac<Peer>,
    commands: mpsc::Receiver<DialCommand>,
    events: mpsc::Sender<UacEvent>,
}

/// A dialer, the SIP task's end of it (give it to [`run`]), and the receiver of call events
/// (events are dropped, and logged, when it is full or gone).
pub fn dial_out(uac: Uac<Peer>, capacity: usize) -> (Dialer, DialOut, mpsc::Receiver<UacEvent>) {
    let (commands_tx, commands) = mpsc::channel(capacity);
    let (events, events_rx) = mpsc::channel(capacity);
    (
        Dialer {
            commands: commands_tx,
        },
        DialOut {
            uac,
            commands,
            events,
        },
        events_rx,
    )
}

/// How long a clean stop waits for the final counters of calls that just ended.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How soon commands refused by a full core queue are tried again.
const RETRY_INTERVAL: Duration = Duration::from_millis(5);

/// How long a new leg waits for room in its core's queue before its call is refused with
/// 503: a core that is briefly behind (a burst of joins, a late tick) should not cost a
/// caller the call, while one that stays full is overloaded and sheds new calls.
const NEW_LEG_PATIENCE: Duration = Duration::from_secs(2);

/// Commands a full core queue handed back, per core in order, each with when it was first
/// refused. Order matters only within a core (a leg moving between cores goes by events), so
/// a core that stays full holds up its own commands, not the others'.
#[derive(Default)]
struct Backlog(HashMap<CoreId, VecDeque<(Command, Instant)>>);

impl Backlog {
    /// Nothing waits for any core.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Commands wait for `core` (a new one must queue behind them).
    fn waits(&self, core: CoreId) -> bool {
        self.0.contains_key(&core)
    }

    fn push(&mut self, core: CoreId, command: Command, since: Instant) {
        self.0.entry(core).or_default().push_back((command, since));
    }

    /// Retries each core's commands in order until its queue is full again. A new leg that
    /// has waited longer than [`NEW_LEG_PATIENCE`] fails its call instead (what follows it for
    /// the same leg then finds no leg on the core, which the core counts and ignores).
    fn drain(&mut self, engine: &Engine, ua: &mut UserAgent<Peer>, now: Instant) {
        self.0.retain(|&core, queue| {
            while let Some((command, since)) = queue.pop_front() {
                if let Err(e) = engine.send(core, command) {
                    if matches!(e.command, Command::CreateLeg(_))
                        && now.saturating_duration_since(since) > NEW_LEG_PATIENCE
                    {
                        ua.handle_engine_refused(now, &e.command);
                        continue;
                    }
                    queue.push_front((e.command, since));
                    break;
                }
            }
            !queue.is_empty()
        });
    }
}

/// Forwards the cores' events to the control task until `stop` is set (run it on its own
/// thread). Wakes on the engine's eventfd, so events arrive without polling delay.
pub fn forward_engine_events(
    engine: &Engine,
    to: mpsc::Sender<(CoreId, Event)>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        engine.wait_events(Duration::from_millis(100));
        while let Some(ev) = engine.poll_event() {
            if to.blocking_send(ev).is_err() {
                return;
            }
        }
    }
}

/// The conference service, where its directory lives, and the call records.
pub struct Conferencing {
    /// The service (sans-IO).
    pub service: ConferenceService,
    /// The data directory holding the conference database.
    pub data_dir: PathBuf,
    /// The call records' control side (sans-IO).
    pub recorder: Recorder,
    /// The thread writing the records; [`run`] closes every open record and drains it before
    /// returning.
    pub records: Writer,
}

/// A directory answer, computed off the control thread.
enum DirectoryAnswer {
    Lookup(String, Option<ConferenceInfo>),
    Pin(String, PinAnswer),
}

/// Answers a directory question of the service on a blocking thread (SQLite and argon2 must
/// not stall SIP); the answer comes back on `to`. A database error is logged and treated as
/// "no such conference" or a wrong PIN, so the caller hears the IVR's answer, not silence.
fn ask_directory(data_dir: &Path, question: Output, to: &mpsc::Sender<DirectoryAnswer>) {
    let (dir, to) = (data_dir.to_path_buf(), to.clone());
    tokio::task::spawn_blocking(move || {
        let answer = match question {
            Output::Lookup {
                call_id,
                conference,
            } => {
                let found = conference
                    .parse::<directory::ConferenceId>()
                    .ok()
                    .map(|id| directory::Directory::open(&dir).and_then(|d| d.get(&id)));
                let info = match found {
                    Some(Ok(Some(c))) => Some(ConferenceInfo {
                        id: c.id.to_string(),
                        has_pin: c.has_pin || c.has_moderator_pin,
                        max_participants: c.max_participants,
                        wait_for_moderator: c.flags.wait_for_moderator,
                        record: c.flags.record,
                    }),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "conference directory lookup failed");
                        None
                    }
                    _ => None,
                };
                DirectoryAnswer::Lookup(call_id, info)
            }
            Output::CheckPin {
                call_id,
                conference,
                pin,
            } => {
                let checked = conference
                    .parse::<directory::ConferenceId>()
                    .map_err(|e| e.to_string())
                    .and_then(|id| {
                        directory::Directory::open(&dir)
                            .and_then(|d| d.check_pin(&id, &pin))
                            .map_err(|e| e.to_string())
                    });
                let answer = match checked {
                    Ok(directory::PinCheck::Ok { moderator: true }) => PinAnswer::Moderator,
                    Ok(directory::PinCheck::Ok { moderator: false })
                    | Ok(directory::PinCheck::NoPin) => PinAnswer::Participant,
                    Ok(_) => PinAnswer::Wrong,
                    Err(e) => {
                        tracing::warn!(error = %e, "PIN check failed");
                        PinAnswer::Wrong
                    }
                };
                DirectoryAnswer::Pin(call_id, answer)
            }
            _ => return,
        };
        let _ = to.blocking_send(answer);
    });
}

/// Sends a command to a core, or queues it behind the backlog when the core's queue is full
/// or older commands still wait (order is kept).
fn to_core(engine: &Engine, retry: &mut Backlog, core: CoreId, command: Command) {
    let sent = if !retry.waits(core) {
        engine.send(core, command)
    } else {
        Err(QueueFull { core, command })
    };
    if let Err(e) = sent {
        retry.push(e.core, e.command, Instant::now());
    }
}

/// Runs the SIP layer until `shutdown` resolves; returns what it resolved with.
#[allow(clippy::too_many_arguments)]
pub async fn run<S>(
    engine: &Engine,
    transports: Transports,
    mut inbound: tokio::sync::mpsc::Receiver<chorus_signaling::transport::Inbound>,
    mut ua: UserAgent<chorus_signaling::transport::Peer>,
    mut events: mpsc::Receiver<(CoreId, Event)>,
    dial: DialOut,
    conferencing: Conferencing,
    shutdown: impl std::future::Future<Output = S>,
) -> Result<S> {
    tokio::pin!(shutdown);
    let Conferencing {
        mut service,
        data_dir,
        mut recorder,
        mut records,
    } = conferencing;
    let (answers_tx, mut answers) = mpsc::channel::<DirectoryAnswer>(1024);
    // Recordings in progress, by conference ID.
    let mut recordings: HashMap<String, Recording> = HashMap::new();
    let DialOut {
        mut uac,
        commands: mut dial_commands,
        events: uac_events,
    } = dial;
    // TCP connects that failed for requests the UAC moved off UDP (RFC 3261 18.1.1).
    let (failures_tx, mut failures) = mpsc::channel(256);
    // Commands a full core queue handed back: retried every few milliseconds, in order, so
    // a removal is never lost (a new leg waits a bounded time, then fails its call).
    let mut retry = Backlog::default();
    loop {
        retry.drain(engine, &mut ua, Instant::now());
        let soon = (!retry.is_empty()).then(|| Instant::now() + RETRY_INTERVAL);
        let deadline = [
            ua.poll_timeout(),
            uac.poll_timeout(),
            service.poll_timeout(),
            recorder.poll_timeout(),
            soon,
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = &mut shutdown => {
                // Calls that just ended wait for their legs' final counters: give the cores
                // a moment to report them before the records close.
                let grace = tokio::time::sleep(SHUTDOWN_GRACE);
                tokio::pin!(grace);
                while recorder.awaiting_counters() {
                    tokio::select! {
                        _ = &mut grace => break,
                        event = events.recv() => match event {
                            Some((_, Event::LegRemoved { id, stats })) => recorder.leg_removed(id, &stats),
                            Some(_) => {}
                            None => break,
                        },
                    }
                }
                close_records(&mut recorder, &mut records);
                for (_, r) in recordings.drain() {
                    r.finish();
                }
                return Ok(s);
            }
            frame = inbound.recv() => {
                let Some(frame) = frame else {
                    close_records(&mut recorder, &mut records);
                    anyhow::bail!("the SIP transports stopped");
                };
                let now = Instant::now();
                match frame.frame {
                    InboundFrame::Message(msg) if uac.owns(&msg) => {
                        uac.handle_message(now, frame.peer, msg)
                    }
                    InboundFrame::Message(msg) => ua.handle_message(now, frame.peer, msg),
                    InboundFrame::Invalid { raw, error } => ua.handle_invalid(frame.peer, &raw, &error),
                }
            }
            _ = sleep => {
                let now = Instant::now();
                ua.handle_timeout(now);
                uac.handle_timeout(now);
                service.handle_timeout(now);
                recorder.handle_timeout(now);
            }
            Some((core, event)) = events.recv() => {
                match &event {
                    Event::LegRemoved { id, stats } => {
                        tracing::info!(leg = %id, rtp_in = stats.rtp_in, rtp_out = stats.rtp_out, lost = stats.lost, dtmf_digits = stats.dtmf_digits, video_rtp_in = stats.video_rtp_in, video_out = stats.video_out, video_dropped = stats.video_dropped, "media leg removed");
                        recorder.leg_removed(*id, stats);
                    }
                    Event::LegStats { id, stats } => recorder.leg_stats(Instant::now(), *id, stats),
                    Event::PlayDone { leg, id, .. } => service.play_done(Instant::now(), *leg, *id),
                    Event::Talkers { conference, talkers } => service.talkers(*conference, talkers),
                    _ => {}
                }
                ua.handle_engine_event(Instant::now(), core, event);
            }
            Some(answer) = answers.recv() => match answer {
                DirectoryAnswer::Lookup(call_id, info) => service.lookup_result(Instant::now(), &call_id, info),
                DirectoryAnswer::Pin(call_id, pin) => service.pin_result(Instant::now(), &call_id, pin),
            },
            Some(command) = dial_commands.recv() => match command {
                DialCommand::Dial { request, reply } => {
                    let _ = reply.send(uac.dial(Instant::now(), *request));
                }
                DialCommand::Hangup(call) => {
                    if let Err(e) = uac.hangup(Instant::now(), call) {
                        tracing::debug!(error = %e, "hangup of an unknown call");
                    }
                }
            },
            Some(id) = failures.recv() => uac.handle_transport_error(Instant::now(), id),
        }
        while let Some(out) = uac.poll_output() {
            driver::transmit(&transports, out, &failures_tx);
        }
        while let Some(event) = uac.poll_event() {
            tracing::info!(call = %event.call, event = ?event.kind, "dial-out");
            if uac_events.try_send(event).is_err() {
                tracing::debug!("dial-out event dropped: no room or no listener");
            }
        }
        // The UA and the conference service feed each other (a hang-up ends a call, an
        // answered call starts the IVR): drain both until neither has anything.
        loop {
            let mut busy = false;
            // One UA output at a time, then everything the service made of it: an answered
            // echo call's Connect reaches the core before the 200 that follows it in the
            // UA's queue goes out (the caller's first packet must not beat it).
            if let Some(out) = ua.poll_output() {
                busy = true;
                let now = Instant::now();
                match out {
                    UaOutput::Send { peer, message } => {
                        transports.send(&peer, message.to_bytes().into());
                    }
                    UaOutput::Engine { core, command } => {
                        to_core(engine, &mut retry, core, command)
                    }
                    UaOutput::Dtmf {
                        call_id,
                        digit,
                        duration_ms,
                        source,
                    } => {
                        tracing::info!(%call_id, digit = %digit.as_char(), duration_ms, source = source.as_str(), "DTMF");
                        service.dtmf(now, &call_id, digit.as_char());
                    }
                    UaOutput::CallAnswered {
                        call_id,
                        leg,
                        core,
                        user,
                        source,
                        from,
                        media,
                    } => {
                        recorder.call_answered(
                            now,
                            Answered {
                                call_id: call_id.clone(),
                                leg,
                                core,
                                caller: from,
                                source,
                                media,
                            },
                        );
                        service.call_started(
                            now,
                            CallInfo {
                                call_id,
                                leg,
                                core,
                                user,
                                source: source.ip(),
                            },
                        );
                    }
                    UaOutput::MediaChanged {
                        call_id,
                        media: (codec, suite),
                    } => recorder.call_media(&call_id, codec, suite),
                    UaOutput::CallMoved { call_id, core } => {
                        recorder.call_moved(&call_id, core);
                        service.call_moved(&call_id, core);
                    }
                    UaOutput::CallEnded { call_id, reason } => {
                        recorder.call_ended(now, &call_id, reason);
                        service.call_ended(&call_id);
                    }
                }
            }
            while let Some(out) = service.poll_output() {
                busy = true;
                recorder.observe(Instant::now(), &out);
                match out {
                    Output::Engine { core, command } => to_core(engine, &mut retry, core, command),
                    Output::Hangup { call_id, cause } => {
                        ua.hangup(Instant::now(), &call_id, cause.text());
                    }
                    // Records only (`Recorder::observe` above).
                    Output::Joined { .. }
                    | Output::Left { .. }
                    | Output::RoomOpened { .. }
                    | Output::RoomClosed { .. } => {}
                    Output::Record {
                        conference,
                        id,
                        core,
                        on,
                    } => match on
                        .then(|| Recording::start(&data_dir, &conference, engine.mix_rate()))
                        .transpose()
                    {
                        Ok(started) => {
                            if let Some(r) = &started {
                                tracing::info!(%conference, file = %r.path.display(), "recording");
                                recorder.recording(&conference, &r.path);
                            }
                            let sink = started.as_ref().map(|r| r.sink.clone());
                            let record = Command::Record {
                                conference: id,
                                sink,
                            };
                            to_core(engine, &mut retry, core, record);
                            // A new recording replaces the old one; a stop ends it.
                            let old = match started {
                                Some(r) => recordings.insert(conference, r),
                                None => recordings.remove(&conference),
                            };
                            if let Some(old) = old {
                                old.stop();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%conference, error = %e, "cannot record");
                            service.recording_failed(&conference);
                        }
                    },
                    Output::Move { call_id, core } => {
                        if let Err(e) = ua.move_call(&call_id, core) {
                            tracing::warn!(%call_id, error = %e, "cannot move the call to its conference's core");
                            service.move_failed(&call_id);
                        }
                    }
                    Output::Log(line) => tracing::info!("{line}"),
                    q @ (Output::Lookup { .. } | Output::CheckPin { .. }) => {
                        ask_directory(&data_dir, q, &answers_tx)
                    }
                }
            }
            if !busy {
                break;
            }
        }
        // Checkpoint queries go to a core only when nothing waits for it (a lost query costs
        // one checkpoint); record writes go to the writer thread, never waited on.
        while let Some((core, leg)) = recorder.poll_query() {
            if !retry.waits(core) {
                let _ = engine.send(core, Command::QueryLeg(leg));
            }
        }
        while let Some(write) = recorder.poll_write() {
            records.submit(write);
        }
    }
}

/// The server stops: closes every open call record and waits until the writer thread has
/// written everything (blocking, once, at the end).
fn close_records(recorder: &mut Recorder, records: &mut Writer) {
    let (legs, conferences) = recorder.open();
    recorder.shutdown(Instant::now());
    while let Some(write) = recorder.poll_write() {
        records.submit_wait(write);
    }
    let counters = recorder.counters();
    tracing::info!(
        legs,
        conferences,
        closed_without_counters = counters.without_counters,
        bad_conference_ids = counters.bad_conference_ids,
        "closing open call records"
    );
    records.finish();
}
