//! The conference service state machine (see the module page).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_engine::codecs::prompts::{self, Prompt, PromptSet};
use chorus_engine::codecs::tones;
use chorus_engine::mixer::MixBus;
use chorus_engine::runtime::{Command, ConferenceId, CoreId, LegId};

/// Settings of the conference service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unknown conference IDs entered in the IVR create a room without PIN.
    pub allow_adhoc: bool,
    /// The Request-URI user of the echo test.
    pub echo_user: String,
    /// Tries at the conference ID and at the PIN before goodbye.
    pub max_attempts: u32,
    /// How long the IVR waits for digits after its prompt.
    pub digit_timeout: Duration,
    /// Wrong PINs from one source address before it is refused for `lockout_for`.
    pub lockout_failures: u32,
    /// How long a source is refused after too many wrong PINs.
    pub lockout_for: Duration,
    /// A room with this many members takes newcomers on the core their call is on and spans
    /// cores (partial mixes exchanged each tick) instead of moving them to its core.
    pub span_after: usize,
    /// Media cores (the size of a spanning conference's bus).
    pub cores: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            allow_adhoc: true,
            echo_user: "echo".into(),
            max_attempts: 3,
            span_after: 100,
            cores: 1,
            digit_timeout: Duration::from_secs(10),
            lockout_failures: 5,
            lockout_for: Duration::from_secs(600),
        }
    }
}

/// What the directory says of a conference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConferenceInfo {
    /// Its ID (digits).
    pub id: String,
    /// Callers must key a PIN.
    pub has_pin: bool,
    /// Most participants at once (None: no limit).
    pub max_participants: Option<u32>,
    /// Participants wait (not mixed, hearing the waiting prompt) until a moderator is there.
    pub wait_for_moderator: bool,
    /// Record the conference from its start.
    pub record: bool,
}

/// The directory's verdict on a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAnswer {
    /// The participant PIN.
    Participant,
    /// The moderator PIN.
    Moderator,
    /// Neither.
    Wrong,
}

/// A call the UA answered.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// Its Call-ID.
    pub call_id: String,
    /// Its media leg and the core it is on.
    pub leg: LegId,
    /// The core.
    pub core: CoreId,
    /// The Request-URI user part.
    pub user: String,
    /// Where the call came from.
    pub source: IpAddr,
}

/// What the service wants done.
#[derive(Debug)]
pub enum Output {
    /// A command to a core.
    Engine {
        /// The core.
        core: CoreId,
        /// The command.
        command: Command,
    },
    /// End a call with BYE.
    Hangup {
        /// The call.
        call_id: String,
        /// Why (`text()` for the Reason header; the call record's end reason).
        cause: HangupCause,
    },
    /// Move a call's leg to another core (`UserAgent::move_call`); `call_moved` follows.
    Move {
        /// The call.
        call_id: String,
        /// The core of its conference.
        core: CoreId,
    },
    /// Ask the directory about a conference; answer with `lookup_result`.
    Lookup {
        /// The call asking.
        call_id: String,
        /// The conference ID.
        conference: String,
    },
    /// Ask the directory whether a PIN is right; answer with `pin_result`.
    CheckPin {
        /// The call asking.
        call_id: String,
        /// The conference ID.
        conference: String,
        /// The digits keyed.
        pin: String,
    },
    /// A call entered a conference (after the IVR, or dialing it directly). A room's first
    /// `Joined` follows its `RoomOpened`.
    Joined {
        /// The call.
        call_id: String,
        /// The conference ID.
        conference: String,
        /// With the moderator PIN.
        moderator: bool,
    },
    /// A call in a conference ended. A room's last `Left` comes before its `RoomClosed`.
    Left {
        /// The call.
        call_id: String,
        /// The conference ID.
        conference: String,
    },
    /// A conference instance began: the room was created for its first caller.
    RoomOpened {
        /// The conference ID.
        conference: String,
    },
    /// A conference instance ended: its last caller left.
    RoomClosed {
        /// The conference ID.
        conference: String,
    },
    /// Start or stop recording a conference's mix (the driver owns the file and the writer;
    /// `Command::Record` hands the engine the sink).
    Record {
        /// The conference ID.
        conference: String,
        /// Its engine conference.
        id: ConferenceId,
        /// The core mixing it.
        core: CoreId,
        /// Start (true) or stop.
        on: bool,
    },
    /// Something an operator wants in the log (joins, leaves, lockouts, key commands).
    Log(String),
}

/// Why the service hangs up a call: the text of the BYE's Reason and of the log line, and
/// what the call record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    /// Too many wrong (or no) conference IDs or PINs.
    TooManyAttempts,
    /// The wrong PIN that locked the caller's address out.
    WrongPins,
    /// The caller's address is locked out (earlier wrong PINs).
    LockedOut,
    /// The conference is locked.
    Locked,
    /// The conference is at its participant limit.
    Full,
    /// A moderator ended the conference (`*9`).
    EndedByModerator,
    /// The leg could not be moved to the core mixing the conference.
    Unreachable,
}

impl HangupCause {
    /// As said in the Reason header and the log.
    pub fn text(self) -> &'static str {
        match self {
            HangupCause::TooManyAttempts => "too many attempts",
            HangupCause::WrongPins => "too many wrong PINs",
            HangupCause::LockedOut => "locked out",
            HangupCause::Locked => "conference locked",
            HangupCause::Full => "conference full",
            HangupCause::EndedByModerator => "conference ended by the moderator",
            HangupCause::Unreachable => "could not reach the conference's core",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the directory to say whether the dialed user is a conference.
    Routing,
    /// The echo test.
    Echo,
    /// Collecting the conference ID.
    EnterId,
    /// Waiting for the directory about the ID keyed.
    LookingUp,
    /// Collecting the PIN of this conference.
    EnterPin(ConferenceInfo),
    /// Waiting for the directory about the PIN.
    CheckingPin(ConferenceInfo),
    /// The leg is moving to the room's core; join when it arrives.
    Moving(ConferenceInfo, bool),
    /// In a room.
    Joined,
    /// Saying goodbye; hang up when the prompts are done.
    Leaving(HangupCause),
}

#[derive(Debug)]
struct Call {
    info: CallInfo,
    state: State,
    /// Clips to play after the current one.
    queue: VecDeque<Arc<[i16]>>,
    /// The playback in progress, by id.
    playing: Option<u32>,
    digits: String,
    attempts: u32,
    /// Bumped whenever the digit timer is re-armed or cancelled (stale heap entries).
    timer_gen: u64,
    room: Option<String>,
    moderator: bool,
    muted: bool,
    /// `*` was pressed in the conference at this time.
    star_at: Option<Instant>,
    /// The volume this caller listens at, dB.
    listen_db: i8,
    /// Waiting for a moderator: hears the hold prompt over and over, is not mixed.
    waiting: bool,
}

#[derive(Debug)]
struct Room {
    id: ConferenceId,
    core: CoreId,
    info: ConferenceInfo,
    members: Vec<String>,
    locked: bool,
    moderators: usize,
    recording: bool,
    /// The cores with members (the first is `core`); more than one: the room spans them.
    cores: Vec<CoreId>,
    /// The partial-mix bus once the room spans cores.
    bus: Option<Arc<MixBus>>,
}

/// The conference service.
pub struct ConferenceService {
    cfg: ServiceConfig,
    prompts: PromptSet,
    join_tone: Arc<[i16]>,
    leave_tone: Arc<[i16]>,
    beep: Arc<[i16]>,
    calls: HashMap<String, Call>,
    by_leg: HashMap<LegId, String>,
    rooms: HashMap<String, Room>,
    /// Wrong PINs per source: (count, refused until).
    failures: HashMap<IpAddr, (u32, Option<Instant>)>,
    timers: BinaryHeap<Reverse<(Instant, String, u64)>>,
    next_conference: u32,
    next_play: u32,
    out: VecDeque<Output>,
}

const STAR_WINDOW: Duration = Duration::from_secs(3);

impl ConferenceService {
    /// A service speaking `prompts`.
    pub fn new(cfg: ServiceConfig, prompts: PromptSet) -> Self {
        ConferenceService {
            cfg,
            prompts,
            join_tone: tones::join_tone(prompts::SAMPLE_RATE).into(),
            leave_tone: tones::leave_tone(prompts::SAMPLE_RATE).into(),
            beep: tones::beep(prompts::SAMPLE_RATE).into(),
            calls: HashMap::new(),
            by_leg: HashMap::new(),
            rooms: HashMap::new(),
            failures: HashMap::new(),
            timers: BinaryHeap::new(),
            next_conference: 1,
            next_play: 1,
            out: VecDeque::new(),
        }
    }

    /// Members of a room (by conference ID).
    pub fn members(&self, conference: &str) -> usize {
        self.rooms.get(conference).map_or(0, |r| r.members.len())
    }

    /// Next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    fn engine(&mut self, core: CoreId, command: Command) {
        self.out.push_back(Output::Engine { core, command });
    }

    // ---- calls -----------------------------------------------------------------------------

    /// A call was answered and its leg exists.
    pub fn call_started(&mut self, now: Instant, info: CallInfo) {
        let call_id = info.call_id.clone();
        let user = info.user.clone();
        self.by_leg.insert(info.leg, call_id.clone());
        let call = Call {
            info,
            state: State::Routing,
            queue: VecDeque::new(),
            playing: None,
            digits: String::new(),
            attempts: 0,
            timer_gen: 0,
            room: None,
            moderator: false,
            muted: false,
            star_at: None,
            listen_db: 0,
            waiting: false,
        };
        self.calls.insert(call_id.clone(), call);
        if user == self.cfg.echo_user {
            let Some(call) = self.calls.get_mut(&call_id) else {
                return;
            };
            call.state = State::Echo;
            let (core, leg) = (call.info.core, call.info.leg);
            self.engine(core, Command::Connect { from: leg, to: leg });
            return;
        }
        if let Some(room) = self.rooms.get(&user) {
            let info = room.info.clone();
            return self.conference_found(&call_id, info);
        }
        if is_conference_id(&user) {
            self.out.push_back(Output::Lookup {
                call_id,
                conference: user,
            });
        } else {
            self.start_ivr(now, &call_id);
        }
    }

    /// A call ended (either side); its leg is being removed by the UA.
    pub fn call_ended(&mut self, call_id: &str) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.by_leg.remove(&call.info.leg);
        let Some(room_id) = call.room else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.members.retain(|m| m != call_id);
        if call.moderator {
            room.moderators = room.moderators.saturating_sub(1);
        }
        let left = room.members.len();
        self.out.push_back(Output::Log(format!(
            "{call_id} left conference {room_id} ({left} remain)"
        )));
        self.out.push_back(Output::Left {
            call_id: call_id.to_string(),
            conference: room_id.clone(),
        });
        if left == 0 {
            if let Some(room) = self.rooms.remove(&room_id)
                && room.recording
            {
                self.out.push_back(Output::Record {
                    conference: room_id.clone(),
                    id: room.id,
                    core: room.core,
                    on: false,
                });
            }
            self.out.push_back(Output::RoomClosed {
                conference: room_id,
            });
        } else {
            let clip = self.leave_tone.clone();
            self.play_to_room(&room_id, clip);
        }
    }

    /// Plays a clip into every core's part of a room (tones, announcements).
    fn play_to_room(&mut self, room_id: &str, clip: Arc<[i16]>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let conference = room.id;
        for &core in &room.cores {
            let command = Command::PlayConference {
                conference,
                clip: clip.clone(),
            };
            self.out.push_back(Output::Engine { core, command });
        }
    }

    /// The directory's answer about a conference ID.
    pub fn lookup_result(&mut self, now: Instant, call_id: &str, found: Option<ConferenceInfo>) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let routing = call.state == State::Routing;
        let keyed = call.digits.clone();
        match found {
            Some(info) => self.conference_found(call_id, info),
            // Dialed a number that is no conference: the IVR.
            None if routing => self.start_ivr(now, call_id),
            None if self.cfg.allow_adhoc => {
                let info = ConferenceInfo {
                    id: keyed,
                    ..ConferenceInfo::default()
                };
                self.conference_found(call_id, info);
            }
            None => self.retry(call_id, Prompt::InvalidId, State::EnterId),
        }
    }

    /// The directory's answer about a PIN.
    pub fn pin_result(&mut self, now: Instant, call_id: &str, answer: PinAnswer) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let State::CheckingPin(info) = call.state.clone() else {
            return;
        };
        let source = call.info.source;
        match answer {
            PinAnswer::Wrong => {
                let count = {
                    let entry = self.failures.entry(source).or_insert((0, None));
                    entry.0 += 1;
                    if entry.0 >= self.cfg.lockout_failures {
                        entry.1 = Some(now + self.cfg.lockout_for);
                    }
                    entry.0
                };
                if count >= self.cfg.lockout_failures {
                    self.out.push_back(Output::Log(format!(
                        "{source} locked out after {count} wrong PINs"
                    )));
                    return self.leave(
                        call_id,
                        &[Prompt::TooManyAttempts, Prompt::Goodbye],
                        HangupCause::WrongPins,
                    );
                }
                self.retry(call_id, Prompt::InvalidPin, State::EnterPin(info));
            }
            PinAnswer::Participant | PinAnswer::Moderator => {
                self.failures.remove(&source);
                self.join(call_id, info, answer == PinAnswer::Moderator);
            }
        }
    }

    /// The call's leg arrived on the room's core.
    pub fn call_moved(&mut self, call_id: &str, core: CoreId) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.info.core = core;
        if let State::Moving(info, moderator) = call.state.clone() {
            self.join(call_id, info, moderator);
        }
    }

    /// The move failed (the leg stays where it is): mix it where it is if the room is there,
    /// else tell the caller and hang up.
    pub fn move_failed(&mut self, call_id: &str) {
        self.leave(call_id, &[Prompt::Goodbye], HangupCause::Unreachable);
    }

    // ---- the IVR ---------------------------------------------------------------------------

    fn start_ivr(&mut self, now: Instant, call_id: &str) {
        if self.locked_out(now, call_id) {
            return;
        }
        if let Some(call) = self.calls.get_mut(call_id) {
            call.state = State::EnterId;
            call.digits.clear();
        }
        self.play(call_id, &[Prompt::Welcome, Prompt::EnterConferenceId]);
    }

    fn locked_out(&mut self, now: Instant, call_id: &str) -> bool {
        let Some(source) = self.calls.get(call_id).map(|c| c.info.source) else {
            return true;
        };
        match self.failures.get(&source) {
            Some((_, Some(until))) if *until > now => {
                self.out
                    .push_back(Output::Log(format!("{source} refused: locked out")));
                self.leave(
                    call_id,
                    &[Prompt::TooManyAttempts, Prompt::Goodbye],
                    HangupCause::LockedOut,
                );
                true
            }
            Some((_, Some(_))) => {
                self.failures.remove(&source);
                false
            }
            _ => false,
        }
    }

    /// A wrong entry: say so and ask again, or goodbye after the last attempt.
    fn retry(&mut self, call_id: &str, said: Prompt, state: State) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.attempts += 1;
        call.digits.clear();
        if call.attempts >= self.cfg.max_attempts {
            return self.leave(
                call_id,
                &[said, Prompt::Goodbye],
                HangupCause::TooManyAttempts,
            );
        }
        let ask = if matches!(state, State::EnterPin(_)) {
            Prompt::EnterPin
        } else {
            Prompt::EnterConferenceId
        };
        call.state = state;
        self.play(call_id, &[said, ask]);
    }

    fn conference_found(&mut self, call_id: &str, info: ConferenceInfo) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.digits.clear();
        call.attempts = 0;
        if info.has_pin {
            call.state = State::EnterPin(info);
            self.play(call_id, &[Prompt::EnterPin]);
        } else {
            self.join(call_id, info, false);
        }
    }

    /// A key from the caller (RFC 4733 or INFO).
    pub fn dtmf(&mut self, now: Instant, call_id: &str, key: char) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        match call.state.clone() {
            State::EnterId | State::EnterPin(_) => {
                // Barge-in: the first key stops the prompt.
                if call.playing.is_some() || !call.queue.is_empty() {
                    call.queue.clear();
                    // Its PlayDone (not completed) will match nothing.
                    call.playing = None;
                    let (core, leg) = (call.info.core, call.info.leg);
                    self.engine(core, Command::StopPlay(leg));
                }
                let Some(call) = self.calls.get_mut(call_id) else {
                    return;
                };
                match key {
                    '#' => self.submit(call_id),
                    '*' => call.digits.clear(),
                    d if d.is_ascii_digit() && call.digits.len() < 20 => {
                        call.digits.push(d);
                        self.arm_digit_timer(now, call_id);
                    }
                    _ => {}
                }
            }
            State::Joined => self.in_call_key(now, call_id, key),
            _ => {}
        }
    }

    /// The caller finished an entry with `#` (or stopped keying).
    fn submit(&mut self, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.timer_gen += 1;
        let digits = call.digits.clone();
        match call.state.clone() {
            State::EnterId => {
                if digits.is_empty() || !is_conference_id(&digits) {
                    return self.retry(call_id, Prompt::InvalidId, State::EnterId);
                }
                if let Some(room) = self.rooms.get(&digits) {
                    let info = room.info.clone();
                    return self.conference_found(call_id, info);
                }
                call.state = State::LookingUp;
                self.out.push_back(Output::Lookup {
                    call_id: call_id.to_string(),
                    conference: digits,
                });
            }
            State::EnterPin(info) => {
                if digits.is_empty() {
                    return self.retry(call_id, Prompt::InvalidPin, State::EnterPin(info));
                }
                call.state = State::CheckingPin(info.clone());
                self.out.push_back(Output::CheckPin {
                    call_id: call_id.to_string(),
                    conference: info.id,
                    pin: digits,
                });
            }
            _ => {}
        }
    }

    fn arm_digit_timer(&mut self, now: Instant, call_id: &str) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.timer_gen += 1;
            let at = now + self.cfg.digit_timeout;
            self.timers
                .push(Reverse((at, call_id.to_string(), call.timer_gen)));
        }
    }

    /// Fires the digit timers due: keys typed without `#` are taken as the entry; no keys at
    /// all count as a wrong entry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, call_id, generation))) = self.timers.pop() else {
                break;
            };
            let current = self.calls.get(&call_id).is_some_and(|c| {
                c.timer_gen == generation && matches!(c.state, State::EnterId | State::EnterPin(_))
            });
            if current {
                self.submit(&call_id);
            }
        }
    }

    // ---- rooms ---------------------------------------------------------------------------

    fn join(&mut self, call_id: &str, info: ConferenceInfo, moderator: bool) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let core = call.info.core;
        let room = self.rooms.get(&info.id);
        if let Some(room) = room {
            if room.locked && !moderator {
                return self.leave(
                    call_id,
                    &[Prompt::ConferenceLocked, Prompt::Goodbye],
                    HangupCause::Locked,
                );
            }
            if room
                .info
                .max_participants
                .is_some_and(|max| room.members.len() as u32 >= max)
            {
                return self.leave(
                    call_id,
                    &[Prompt::ConferenceFull, Prompt::Goodbye],
                    HangupCause::Full,
                );
            }
            if room.core != core && room.members.len() < self.cfg.span_after {
                let to = room.core;
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.state = State::Moving(info, moderator);
                }
                self.out.push_back(Output::Move {
                    call_id: call_id.to_string(),
                    core: to,
                });
                return;
            }
        }
        let next = ConferenceId(self.next_conference);
        let room = self.rooms.entry(info.id.clone()).or_insert_with(|| Room {
            id: next,
            core,
            info: info.clone(),
            members: Vec::new(),
            locked: false,
            moderators: 0,
            recording: false,
            cores: vec![core],
            bus: None,
        });
        let opened = room.id == next;
        if !room.cores.contains(&core) {
            // A big room takes this caller where it is: span the room's cores.
            room.cores.push(core);
            let cores = self.cfg.cores.max(core.0 as usize + 1);
            let new_bus = room.bus.is_none();
            let bus = room
                .bus
                .get_or_insert_with(|| Arc::new(MixBus::new(cores)))
                .clone();
            let targets: Vec<CoreId> = if new_bus {
                room.cores.clone()
            } else {
                vec![core]
            };
            let conference = room.id;
            for c in targets {
                let bus = Some(bus.clone());
                self.out.push_back(Output::Engine {
                    core: c,
                    command: Command::SpanConference { conference, bus },
                });
            }
            self.out.push_back(Output::Log(format!(
                "conference {} spans cores {:?}",
                info.id, room.cores
            )));
        }
        // INVARIANT: the entry was made just above.
        let Some(room) = self.rooms.get_mut(&info.id) else {
            return;
        };
        if opened {
            self.next_conference += 1;
        }
        room.members.push(call_id.to_string());
        if moderator {
            room.moderators += 1;
        }
        let (conference, count) = (room.id, room.members.len() as u32);
        let waiting = room.info.wait_for_moderator && room.moderators == 0;
        let moderator_arrived = moderator && room.moderators == 1 && room.info.wait_for_moderator;
        let others: Vec<String> = room
            .members
            .iter()
            .filter(|m| *m != call_id)
            .cloned()
            .collect();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.state = State::Joined;
        call.room = Some(info.id.clone());
        call.moderator = moderator;
        let leg = call.info.leg;
        if opened {
            self.out.push_back(Output::RoomOpened {
                conference: info.id.clone(),
            });
        }
        self.out.push_back(Output::Joined {
            call_id: call_id.to_string(),
            conference: info.id.clone(),
            moderator,
        });
        self.out.push_back(Output::Log(format!(
            "{call_id} joined conference {} as {} ({count} in it)",
            info.id,
            if moderator {
                "moderator"
            } else {
                "participant"
            }
        )));
        self.engine(core, Command::JoinConference { leg, conference });
        if waiting {
            self.engine(
                core,
                Command::SetLegAudio {
                    leg,
                    mute: true,
                    deaf: true,
                },
            );
            if let Some(c) = self.calls.get_mut(call_id) {
                c.waiting = true;
            }
            self.play(call_id, &[Prompt::WaitingForModerator]);
        } else {
            let announcement = if count == 1 {
                vec![Prompt::FirstParticipant]
            } else {
                prompts::participant_count(count)
            };
            self.play(call_id, &announcement);
        }
        if moderator_arrived {
            for m in others {
                if let Some(c) = self.calls.get_mut(&m) {
                    let (leg, mute, core) = (c.info.leg, c.muted, c.info.core);
                    // The hold prompt stops; the caller is in the conversation.
                    let was_waiting = std::mem::take(&mut c.waiting);
                    if was_waiting {
                        c.queue.clear();
                        c.playing = None;
                        self.engine(core, Command::StopPlay(leg));
                    }
                    self.engine(
                        core,
                        Command::SetLegAudio {
                            leg,
                            mute,
                            deaf: false,
                        },
                    );
                }
            }
        }
        let clip = self.join_tone.clone();
        self.play_to_room(&info.id, clip);
        if opened && info.record {
            self.set_recording(&info.id, true);
        }
    }

    /// The driver could not start the recording `set_recording` asked for (no file): the room
    /// is not recorded, and everyone in it, who heard that it is, now hears that it stopped.
    pub fn recording_failed(&mut self, room_id: &str) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if !room.recording {
            return;
        }
        room.recording = false;
        let clip = self.prompts.get(Prompt::RecordingStopped);
        self.play_to_room(room_id, clip);
        self.out.push_back(Output::Log(format!(
            "conference {room_id}: recording failed"
        )));
    }

    /// Starts or stops recording a room and tells everyone in it.
    fn set_recording(&mut self, room_id: &str, on: bool) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.recording == on {
            return;
        }
        room.recording = on;
        let (id, core) = (room.id, room.core);
        self.out.push_back(Output::Record {
            conference: room_id.to_string(),
            id,
            core,
            on,
        });
        let prompt = if on {
            Prompt::RecordingStarted
        } else {
            Prompt::RecordingStopped
        };
        let clip = self.prompts.get(prompt);
        self.play_to_room(room_id, clip);
        self.out.push_back(Output::Log(format!(
            "conference {room_id}: recording {}",
            if on { "started" } else { "stopped" }
        )));
    }

    fn in_call_key(&mut self, now: Instant, call_id: &str, key: char) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if key == '*' {
            call.star_at = Some(now);
            return;
        }
        let armed = call
            .star_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) <= STAR_WINDOW);
        if !armed {
            return;
        }
        let (core, leg, moderator) = (call.info.core, call.info.leg, call.moderator);
        let Some(room_id) = call.room.clone() else {
            return;
        };
        match key {
            '1' => {
                let count = self.members(&room_id) as u32;
                self.play(call_id, &prompts::participant_count(count));
            }
            '6' => {
                call.muted = !call.muted;
                let mute = call.muted;
                self.engine(
                    core,
                    Command::SetLegAudio {
                        leg,
                        mute,
                        deaf: false,
                    },
                );
                self.play(
                    call_id,
                    &[if mute { Prompt::Muted } else { Prompt::Unmuted }],
                );
                self.out.push_back(Output::Log(format!(
                    "{call_id} {}",
                    if mute { "muted" } else { "unmuted" }
                )));
            }
            '7' if moderator => {
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    return;
                };
                room.locked = !room.locked;
                let locked = room.locked;
                self.play(
                    call_id,
                    &[if locked {
                        Prompt::Locked
                    } else {
                        Prompt::Unlocked
                    }],
                );
                self.out.push_back(Output::Log(format!(
                    "conference {room_id} {}",
                    if locked { "locked" } else { "unlocked" }
                )));
            }
            '8' if moderator => {
                let members: Vec<String> = self
                    .rooms
                    .get(&room_id)
                    .map(|r| r.members.clone())
                    .unwrap_or_default();
                for m in members.iter().filter(|m| *m != call_id) {
                    if let Some(c) = self.calls.get_mut(m) {
                        c.muted = true;
                        let (core, leg) = (c.info.core, c.info.leg);
                        self.engine(
                            core,
                            Command::SetLegAudio {
                                leg,
                                mute: true,
                                deaf: false,
                            },
                        );
                    }
                }
                self.out.push_back(Output::Log(format!(
                    "conference {room_id}: all muted by {call_id}"
                )));
            }
            '4' | '5' => {
                let step = if key == '4' { -3 } else { 3 };
                call.listen_db = (call.listen_db + step).clamp(-12, 12);
                let listen_db = call.listen_db;
                self.engine(
                    core,
                    Command::SetLegVolume {
                        leg,
                        listen_db,
                        talk_db: 0,
                    },
                );
                let clip = self.beep.clone();
                let id = self.next_play;
                self.next_play = self.next_play.wrapping_add(1);
                self.engine(core, Command::Play { leg, clip, id });
                self.out
                    .push_back(Output::Log(format!("{call_id} listens at {listen_db} dB")));
            }
            '0' if moderator => {
                let on = !self.rooms.get(&room_id).is_some_and(|r| r.recording);
                self.set_recording(&room_id, on);
            }
            '9' if moderator => {
                let members: Vec<String> = self
                    .rooms
                    .get(&room_id)
                    .map(|r| r.members.clone())
                    .unwrap_or_default();
                for m in members {
                    self.leave(
                        &m,
                        &[Prompt::Ended, Prompt::Goodbye],
                        HangupCause::EndedByModerator,
                    );
                }
            }
            _ => {}
        }
    }

    // ---- prompts ---------------------------------------------------------------------------

    /// Queues prompts for a call; playing starts if nothing plays.
    fn play(&mut self, call_id: &str, list: &[Prompt]) {
        let clips: Vec<Arc<[i16]>> = list.iter().map(|&p| self.prompts.get(p)).collect();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.queue.extend(clips);
        if call.playing.is_none() {
            self.play_next(call_id);
        }
    }

    fn play_next(&mut self, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(clip) = call.queue.pop_front() else {
            call.playing = None;
            return;
        };
        let id = self.next_play;
        self.next_play = self.next_play.wrapping_add(1);
        call.playing = Some(id);
        let (core, leg) = (call.info.core, call.info.leg);
        self.engine(core, Command::Play { leg, clip, id });
    }

    /// A conference's talkers changed: logged with the callers' Call-IDs.
    pub fn talkers(&mut self, conference: ConferenceId, talkers: &[LegId]) {
        let Some(room) = self
            .rooms
            .iter()
            .find(|(_, r)| r.id == conference)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        let names: Vec<&str> = talkers
            .iter()
            .filter_map(|l| self.by_leg.get(l).map(String::as_str))
            .collect();
        self.out.push_back(Output::Log(format!(
            "conference {room} talking: {}",
            if names.is_empty() {
                "nobody".to_string()
            } else {
                names.join(", ")
            }
        )));
    }

    /// A playback ended on a leg.
    pub fn play_done(&mut self, now: Instant, leg: LegId, id: u32) {
        let Some(call_id) = self.by_leg.get(&leg).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.playing != Some(id) {
            return; // an older playback, replaced or stopped
        }
        call.playing = None;
        if !call.queue.is_empty() {
            return self.play_next(&call_id);
        }
        if call.waiting && call.state == State::Joined {
            // Hold audio until the moderator comes: the waiting prompt again.
            return self.play(&call_id, &[Prompt::WaitingForModerator]);
        }
        match call.state {
            State::Leaving(cause) => self.out.push_back(Output::Hangup { call_id, cause }),
            // The question was asked: wait for keys.
            State::EnterId | State::EnterPin(_) if call.digits.is_empty() => {
                self.arm_digit_timer(now, &call_id)
            }
            _ => {}
        }
    }

    /// Says goodbye (`list`) and hangs up when it has been heard.
    fn leave(&mut self, call_id: &str, list: &[Prompt], cause: HangupCause) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.state = State::Leaving(cause);
        call.timer_gen += 1;
        call.queue.clear();
        let (core, leg) = (call.info.core, call.info.leg);
        if call.room.is_some() {
            // Out of the mix at once; the goodbye is heard alone.
            self.engine(core, Command::LeaveConference(leg));
        }
        self.out
            .push_back(Output::Log(format!("{call_id}: {}", cause.text())));
        if let Some(call) = self.calls.get_mut(call_id) {
            call.playing = None;
        }
        self.play(call_id, list);
    }
}

/// Conference IDs are 1 to 20 digits.
pub fn is_conference_id(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ConferenceService {
        ConferenceService::new(ServiceConfig::default(), PromptSet::embedded())
    }

    fn call(n: u32, user: &str, core: u16) -> CallInfo {
        CallInfo {
            call_id: format!("call-{n}"),
            leg: LegId(n),
            core: CoreId(core),
            user: user.into(),
            source: IpAddr::from([192, 0, 2, n as u8]),
        }
    }

    /// A conference in the directory with a PIN.
    fn pin_room(id: &str) -> ConferenceInfo {
        ConferenceInfo {
            id: id.into(),
            has_pin: true,
            ..ConferenceInfo::default()
        }
    }

    fn outputs(s: &mut ConferenceService) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    /// Plays every queued prompt to its end (the engine's `PlayDone`), collecting everything
    /// else the service says, and the prompts heard per leg (by clip length).
    fn hear_all(s: &mut ConferenceService, now: Instant, mut out: Vec<Output>) -> Vec<Output> {
        let mut rest = Vec::new();
        while !out.is_empty() {
            let mut next = Vec::new();
            for o in out {
                if let Output::Engine {
                    command: Command::Play { leg, id, .. },
                    ..
                } = &o
                {
                    s.play_done(now, *leg, *id);
                    next.extend(outputs(s));
                }
                rest.push(o);
            }
            out = next;
        }
        rest
    }

    fn settle(s: &mut ConferenceService, now: Instant) -> Vec<Output> {
        let out = outputs(s);
        hear_all(s, now, out)
    }

    /// The prompts played, in order, by matching clips against the prompt set.
    fn spoken(s: &ConferenceService, out: &[Output], leg: LegId) -> Vec<Prompt> {
        out.iter()
            .filter_map(|o| match o {
                Output::Engine {
                    command: Command::Play { leg: l, clip, .. },
                    ..
                } if *l == leg => Prompt::ALL
                    .iter()
                    .copied()
                    .find(|&p| Arc::ptr_eq(&s.prompts.get(p), clip)),
                _ => None,
            })
            .collect()
    }

    /// Caller `n` dials `room` and keys a PIN the directory rates `answer` (the directory is
    /// asked about the room first when it is not live); the outputs from the PIN on stay queued.
    fn join_with_pin(
        s: &mut ConferenceService,
        now: Instant,
        n: u32,
        room: &ConferenceInfo,
        answer: PinAnswer,
    ) {
        let id = format!("call-{n}");
        s.call_started(now, call(n, &room.id, 0));
        if settle(s, now)
            .iter()
            .any(|o| matches!(o, Output::Lookup { .. }))
        {
            s.lookup_result(now, &id, Some(room.clone()));
            settle(s, now);
        }
        key(s, now, &id, "1#");
        s.pin_result(now, &id, answer);
    }

    fn key(s: &mut ConferenceService, now: Instant, call: &str, keys: &str) -> Vec<Output> {
        let mut out = Vec::new();
        for k in keys.chars() {
            s.dtmf(now, call, k);
            out.extend(outputs(s));
        }
        out
    }

    #[test]
    fn the_echo_user_gets_its_media_back() {
        let mut s = svc();
        s.call_started(Instant::now(), call(1, "echo", 0));
        let out = outputs(&mut s);
        assert!(matches!(
            out.as_slice(),
            [Output::Engine {
                core: CoreId(0),
                command: Command::Connect {
                    from: LegId(1),
                    to: LegId(1)
                }
            }]
        ));
    }

    #[test]
    fn ivr_then_adhoc_room_then_a_direct_dial_joins_it() {
        let now = Instant::now();
        let mut s = svc();
        s.call_started(now, call(1, "dialin", 0));
        let out = settle(&mut s, now);
        assert_eq!(
            spoken(&s, &out, LegId(1)),
            [Prompt::Welcome, Prompt::EnterConferenceId]
        );
        let out = key(&mut s, now, "call-1", "4711#");
        assert!(
            matches!(out.as_slice(), [Output::Lookup { conference, .. }] if conference == "4711")
        );
        // The directory does not know it: an ad-hoc room.
        s.lookup_result(now, "call-1", None);
        let out = settle(&mut s, now);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::JoinConference { leg: LegId(1), .. },
                ..
            }
        )));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::PlayConference { .. },
                ..
            }
        )));
        assert_eq!(spoken(&s, &out, LegId(1)), [Prompt::FirstParticipant]);
        // A caller dialing the room's number joins without the IVR and hears the count.
        s.call_started(now, call(2, "4711", 0));
        let out = settle(&mut s, now);
        assert!(out.iter().all(|o| !matches!(o, Output::Lookup { .. })));
        assert_eq!(
            spoken(&s, &out, LegId(2)),
            [
                Prompt::ParticipantCountPre,
                Prompt::Two,
                Prompt::ParticipantCountPost
            ]
        );
        assert_eq!(s.members("4711"), 2);
        s.call_ended("call-1");
        let out = outputs(&mut s);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Engine {
                    command: Command::PlayConference { .. },
                    ..
                }
            )),
            "leave tone"
        );
        s.call_ended("call-2");
        assert_eq!(s.members("4711"), 0);
    }

    #[test]
    fn wrong_pins_are_retried_then_goodbye_and_a_source_is_locked_out() {
        let now = Instant::now();
        let mut s = svc();
        let room = pin_room("55");
        for n in 1..=2u32 {
            let mut c = call(n, "55", 0);
            c.source = IpAddr::from([198, 51, 100, 7]);
            s.call_started(now, c);
            let id = format!("call-{n}");
            outputs(&mut s);
            s.lookup_result(now, &id, Some(room.clone()));
            let out = settle(&mut s, now);
            assert_eq!(spoken(&s, &out, LegId(n)), [Prompt::EnterPin]);
            let tries = if n == 1 { 3 } else { 2 };
            let mut heard = Vec::new();
            let mut hangup = false;
            for _ in 0..tries {
                let out = key(&mut s, now, &id, "999#");
                assert!(matches!(out.as_slice(), [Output::CheckPin { pin, .. }] if pin == "999"));
                s.pin_result(now, &id, PinAnswer::Wrong);
                let out = settle(&mut s, now);
                heard.extend(spoken(&s, &out, LegId(n)));
                hangup |= out.iter().any(|o| matches!(o, Output::Hangup { .. }));
            }
            assert!(hangup, "call {n} hung up");
            if n == 1 {
                assert_eq!(
                    heard,
                    [
                        Prompt::InvalidPin,
                        Prompt::EnterPin,
                        Prompt::InvalidPin,
                        Prompt::EnterPin,
                        Prompt::InvalidPin,
                        Prompt::Goodbye
                    ]
                );
            } else {
                // Fifth wrong PIN from the address: locked out.
                assert_eq!(heard.last(), Some(&Prompt::Goodbye));
                assert!(heard.contains(&Prompt::TooManyAttempts));
            }
            s.call_ended(&id);
        }
        // A third call from there is refused before the IVR.
        let mut c = call(3, "dialin", 0);
        c.source = IpAddr::from([198, 51, 100, 7]);
        s.call_started(now, c);
        let out = settle(&mut s, now);
        assert_eq!(
            spoken(&s, &out, LegId(3)),
            [Prompt::TooManyAttempts, Prompt::Goodbye]
        );
        // After the lockout, the IVR again.
        let later = now + Duration::from_secs(601);
        s.call_started(later, {
            let mut c = call(4, "dialin", 0);
            c.source = IpAddr::from([198, 51, 100, 7]);
            c
        });
        let out = settle(&mut s, later);
        assert_eq!(
            spoken(&s, &out, LegId(4)),
            [Prompt::Welcome, Prompt::EnterConferenceId]
        );
    }

    #[test]
    fn silence_after_the_question_counts_as_a_wrong_entry() {
        let now = Instant::now();
        let mut s = svc();
        s.call_started(now, call(1, "dialin", 0));
        settle(&mut s, now);
        assert!(s.poll_timeout().is_some());
        let later = now + Duration::from_secs(11);
        s.handle_timeout(later);
        let out = settle(&mut s, later);
        assert_eq!(
            spoken(&s, &out, LegId(1)),
            [Prompt::InvalidId, Prompt::EnterConferenceId]
        );
        // Keys without # are taken when the caller stops keying.
        key(&mut s, later, "call-1", "12");
        s.handle_timeout(later + Duration::from_secs(11));
        assert!(
            matches!(outputs(&mut s).as_slice(), [Output::Lookup { conference, .. }] if conference == "12")
        );
    }

    #[test]
    fn a_key_during_a_prompt_stops_it() {
        let now = Instant::now();
        let mut s = svc();
        s.call_started(now, call(1, "dialin", 0));
        outputs(&mut s);
        let out = key(&mut s, now, "call-1", "7");
        assert!(matches!(
            out.as_slice(),
            [Output::Engine {
                command: Command::StopPlay(LegId(1)),
                ..
            }]
        ));
    }

    #[test]
    fn keys_in_the_conference_mute_count_lock_and_end() {
        let now = Instant::now();
        let mut s = svc();
        let room = pin_room("9");
        for (n, answer) in [(1u32, PinAnswer::Moderator), (2, PinAnswer::Participant)] {
            join_with_pin(&mut s, now, n, &room, answer);
            settle(&mut s, now);
        }
        let out = {
            let k = key(&mut s, now, "call-2", "*6");
            hear_all(&mut s, now, k)
        };
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::SetLegAudio {
                    leg: LegId(2),
                    mute: true,
                    deaf: false
                },
                ..
            }
        )));
        assert_eq!(spoken(&s, &out, LegId(2)), [Prompt::Muted]);
        // A * too long ago does not arm the key.
        s.dtmf(now, "call-2", '*');
        s.dtmf(now + Duration::from_secs(4), "call-2", '6');
        assert!(outputs(&mut s).is_empty());
        // Participants cannot lock; the moderator can, and then a newcomer is turned away.
        assert!(key(&mut s, now, "call-2", "*7").is_empty());
        let out = {
            let k = key(&mut s, now, "call-1", "*7");
            hear_all(&mut s, now, k)
        };
        assert_eq!(spoken(&s, &out, LegId(1)), [Prompt::Locked]);
        join_with_pin(&mut s, now, 3, &room, PinAnswer::Participant);
        let out = settle(&mut s, now);
        assert_eq!(
            spoken(&s, &out, LegId(3)),
            [Prompt::ConferenceLocked, Prompt::Goodbye]
        );
        // *9 ends it for everyone.
        let out = {
            let k = key(&mut s, now, "call-1", "*9");
            hear_all(&mut s, now, k)
        };
        let hung: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::Hangup { call_id, .. } => Some(call_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(hung, ["call-1", "call-2"]);
    }

    #[test]
    fn a_caller_on_another_core_is_moved_to_the_room() {
        let now = Instant::now();
        let mut s = svc();
        s.call_started(now, call(1, "77", 0));
        outputs(&mut s);
        s.lookup_result(
            now,
            "call-1",
            Some(ConferenceInfo {
                id: "77".into(),
                ..ConferenceInfo::default()
            }),
        );
        settle(&mut s, now);
        s.call_started(now, call(2, "77", 1));
        let out = outputs(&mut s);
        assert!(
            matches!(
                out.as_slice(),
                [Output::Move {
                    core: CoreId(0),
                    ..
                }]
            ),
            "{out:?}"
        );
        s.call_moved("call-2", CoreId(0));
        let out = outputs(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                core: CoreId(0),
                command: Command::JoinConference { leg: LegId(2), .. }
            }
        )));
    }

    /// What the call records are written from: the room opens before its first join, each
    /// call that ends in it leaves, and the room closes after its last leave.
    #[test]
    fn joins_leaves_and_room_instances_are_reported() {
        let now = Instant::now();
        let mut s = svc();
        let room = pin_room("31");
        let records = |out: &[Output]| -> Vec<String> {
            out.iter()
                .filter_map(|o| match o {
                    Output::RoomOpened { conference } => Some(format!("open {conference}")),
                    Output::RoomClosed { conference } => Some(format!("close {conference}")),
                    Output::Joined {
                        call_id,
                        conference,
                        moderator,
                    } => Some(format!("join {call_id} {conference} {moderator}")),
                    Output::Left {
                        call_id,
                        conference,
                    } => Some(format!("left {call_id} {conference}")),
                    _ => None,
                })
                .collect()
        };
        let mut seen = Vec::new();
        for (n, answer) in [(1u32, PinAnswer::Moderator), (2, PinAnswer::Participant)] {
            join_with_pin(&mut s, now, n, &room, answer);
            seen.extend(records(&settle(&mut s, now)));
        }
        s.call_ended("call-1");
        seen.extend(records(&outputs(&mut s)));
        s.call_ended("call-2");
        seen.extend(records(&outputs(&mut s)));
        // A call that never got past the IVR reports nothing.
        s.call_started(now, call(3, "dialin", 0));
        settle(&mut s, now);
        s.call_ended("call-3");
        seen.extend(records(&outputs(&mut s)));
        assert_eq!(
            seen,
            [
                "open 31",
                "join call-1 31 true",
                "join call-2 31 false",
                "left call-1 31",
                "left call-2 31",
                "close 31"
            ]
        );
    }

    #[test]
    fn moderators_record_with_star_zero_and_the_flag_records_from_the_start() {
        let now = Instant::now();
        let mut s = svc();
        let room = pin_room("31");
        join_with_pin(&mut s, now, 1, &room, PinAnswer::Moderator);
        settle(&mut s, now);
        let record = |out: &[Output]| -> Vec<bool> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Record { conference, on, .. } if conference == "31" => Some(*on),
                    _ => None,
                })
                .collect()
        };
        let out = {
            let k = key(&mut s, now, "call-1", "*0");
            hear_all(&mut s, now, k)
        };
        assert_eq!(record(&out), [true]);
        // Everyone hears that the conference is being recorded (a tone-like clip in the mix).
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::PlayConference { .. },
                ..
            }
        )));
        let out = {
            let k = key(&mut s, now, "call-1", "*0");
            hear_all(&mut s, now, k)
        };
        assert_eq!(record(&out), [false]);
        // A recording whose file cannot be made is announced as stopped, and the next *0
        // tries again (the room is not taken for recorded).
        let k = key(&mut s, now, "call-1", "*0");
        assert_eq!(record(&hear_all(&mut s, now, k)), [true]);
        s.recording_failed("31");
        let out = outputs(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::PlayConference { .. },
                ..
            }
        )));
        assert!(record(&out).is_empty(), "nothing to stop on the core");
        let k = key(&mut s, now, "call-1", "*0");
        assert_eq!(record(&hear_all(&mut s, now, k)), [true]);
        let k = key(&mut s, now, "call-1", "*0");
        assert_eq!(record(&hear_all(&mut s, now, k)), [false]);
        // With the flag, the first join starts it, and the last leave stops it.
        let flagged = ConferenceInfo {
            id: "32".into(),
            record: true,
            ..ConferenceInfo::default()
        };
        s.call_started(now, call(2, "32", 0));
        settle(&mut s, now);
        s.lookup_result(now, "call-2", Some(flagged));
        let out = settle(&mut s, now);
        assert!(out.iter().any(
            |o| matches!(o, Output::Record { conference, on: true, .. } if conference == "32")
        ));
        s.call_ended("call-2");
        let out = outputs(&mut s);
        assert!(out.iter().any(
            |o| matches!(o, Output::Record { conference, on: false, .. } if conference == "32")
        ));
    }

    #[test]
    fn volume_keys_step_the_listen_volume_and_talkers_are_logged() {
        let now = Instant::now();
        let mut s = svc();
        s.call_started(now, call(1, "dialin", 0));
        settle(&mut s, now);
        key(&mut s, now, "call-1", "88#");
        s.lookup_result(now, "call-1", None);
        settle(&mut s, now);
        let volume = |out: &[Output]| -> Vec<i8> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Engine {
                        command: Command::SetLegVolume { listen_db, .. },
                        ..
                    } => Some(*listen_db),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(volume(&key(&mut s, now, "call-1", "*4")), [-3]);
        assert_eq!(volume(&key(&mut s, now, "call-1", "*5*5*5")), [0, 3, 6]);
        for _ in 0..4 {
            key(&mut s, now, "call-1", "*5");
        }
        assert_eq!(
            volume(&key(&mut s, now, "call-1", "*5")),
            [12],
            "capped at +12 dB"
        );
        let room = ConferenceId(1);
        s.talkers(room, &[LegId(1)]);
        let out = outputs(&mut s);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Log(l) if l == "conference 88 talking: call-1")),
            "{out:?}"
        );
    }

    #[test]
    fn a_big_room_spans_cores_instead_of_moving_callers() {
        let now = Instant::now();
        let mut s = ConferenceService::new(
            ServiceConfig {
                span_after: 1,
                cores: 2,
                ..ServiceConfig::default()
            },
            PromptSet::embedded(),
        );
        let room = ConferenceInfo {
            id: "5".into(),
            ..ConferenceInfo::default()
        };
        s.call_started(now, call(1, "5", 0));
        settle(&mut s, now);
        s.lookup_result(now, "call-1", Some(room.clone()));
        settle(&mut s, now);
        // The room has one member (= span_after): a caller on core 1 joins there.
        s.call_started(now, call(2, "5", 1));
        let out = settle(&mut s, now);
        assert!(
            out.iter().all(|o| !matches!(o, Output::Move { .. })),
            "{out:?}"
        );
        let spans: Vec<CoreId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Engine {
                    core,
                    command: Command::SpanConference { bus: Some(_), .. },
                } => Some(*core),
                _ => None,
            })
            .collect();
        assert_eq!(spans, [CoreId(0), CoreId(1)]);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                core: CoreId(1),
                command: Command::JoinConference { leg: LegId(2), .. }
            }
        )));
        // The join tone reaches both cores' parts.
        let tones: Vec<CoreId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Engine {
                    core,
                    command: Command::PlayConference { .. },
                } => Some(*core),
                _ => None,
            })
            .collect();
        assert_eq!(tones, [CoreId(0), CoreId(1)]);
    }

    #[test]
    fn participants_hear_hold_audio_until_the_moderator_joins() {
        let now = Instant::now();
        let mut s = svc();
        let room = ConferenceInfo {
            wait_for_moderator: true,
            ..pin_room("61")
        };
        join_with_pin(&mut s, now, 1, &room, PinAnswer::Participant);
        // The participant is held: not mixed, and the waiting prompt plays again and again.
        let out = outputs(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::SetLegAudio {
                    leg: LegId(1),
                    mute: true,
                    deaf: true
                },
                ..
            }
        )));
        let mut plays = 0;
        let mut pending = out;
        for _ in 0..3 {
            let mut next = Vec::new();
            for o in pending {
                if let Output::Engine {
                    command: Command::Play { leg, id, clip },
                    ..
                } = o
                {
                    assert!(Arc::ptr_eq(
                        &clip,
                        &s.prompts.get(Prompt::WaitingForModerator)
                    ));
                    plays += 1;
                    s.play_done(now, leg, id);
                    next.extend(outputs(&mut s));
                }
            }
            pending = next;
        }
        assert!(plays >= 3, "{plays} plays");
        // The moderator arrives: the hold prompt stops and the participant is in.
        join_with_pin(&mut s, now, 2, &room, PinAnswer::Moderator);
        let out = outputs(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::StopPlay(LegId(1)),
                ..
            }
        )));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Engine {
                command: Command::SetLegAudio {
                    leg: LegId(1),
                    mute: false,
                    deaf: false
                },
                ..
            }
        )));
    }
}
