//! The control side of the call records, sans-IO: turns call and conference events into the
//! ordered database writes of [`Write`] (for the writer thread) and leg-counter queries (for
//! the cores).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus_engine::runtime::{CoreId, LegId, LegStats as MediaStats};
use chorus_engine::srtp::SrtpSuite;
use chorus_signaling::sdp::Codec;
use chorus_signaling::ua::EndReason as CallEnd;

use super::emodel;
use crate::conference::HangupCause;
use crate::directory::{
    ConferenceEnd, ConferenceId, EndReason, LegEnd, LegRecord, LegStats, Role, UnixMs,
};

/// Names a record across the writes that make it (the writer maps it to the row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey(pub u64);

/// One database write, in the order the writer must apply them.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `Directory::leg_started`.
    LegStarted {
        /// The record.
        key: RecordKey,
        /// The row.
        record: LegRecord,
    },
    /// `Directory::leg_joined`.
    LegJoined {
        /// The leg's record.
        key: RecordKey,
        /// The conference.
        conference: ConferenceId,
        /// Participant or moderator.
        role: Role,
    },
    /// `Directory::leg_media`.
    LegMedia {
        /// The leg's record.
        key: RecordKey,
        /// The codec's encoding name.
        codec: String,
        /// The SRTP suite's SDES name, if any.
        srtp_suite: Option<String>,
    },
    /// `Directory::leg_checkpoint`.
    LegCheckpoint {
        /// The leg's record.
        key: RecordKey,
        /// When the counters were read.
        at: UnixMs,
        /// The counters.
        stats: LegStats,
    },
    /// `Directory::leg_ended`.
    LegEnded {
        /// The leg's record.
        key: RecordKey,
        /// How it ended.
        end: LegEnd,
    },
    /// `Directory::conference_started`.
    ConferenceStarted {
        /// The instance's record.
        key: RecordKey,
        /// The conference.
        conference: ConferenceId,
        /// Its first caller joined.
        at: UnixMs,
    },
    /// `Directory::conference_ended`.
    ConferenceEnded {
        /// The instance's record.
        key: RecordKey,
        /// How it ended.
        end: ConferenceEnd,
    },
    /// `Directory::conference_recording`.
    ConferenceRecording {
        /// The instance's record.
        key: RecordKey,
        /// The recording's file.
        path: std::path::PathBuf,
    },
}

/// An answered call, as the UA reports it.
#[derive(Debug, Clone)]
pub struct Answered {
    /// Its Call-ID.
    pub call_id: String,
    /// Its media leg.
    pub leg: LegId,
    /// The core the leg is on.
    pub core: CoreId,
    /// The From URI.
    pub caller: String,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The negotiated codec and SRTP suite, if known at the answer.
    pub media: Option<(Codec, Option<SrtpSuite>)>,
}

/// How often open legs' counters are saved.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// How long an ended call's record waits for its leg's final counters.
pub const REMOVAL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct OpenLeg {
    key: RecordKey,
    leg: LegId,
    core: CoreId,
    codec: Option<Codec>,
    /// The latest counters the core reported (checkpoint answers).
    stats: Option<MediaStats>,
    /// The final counters, if the leg was removed before the call was reported ended.
    removed: Option<MediaStats>,
    /// Why the service hung up, if it did.
    cause: Option<HangupCause>,
}

/// A call reported ended, waiting for its leg's `LegRemoved`.
#[derive(Debug)]
struct Ending {
    key: RecordKey,
    codec: Option<Codec>,
    left_at: UnixMs,
    reason: EndReason,
    stats: Option<MediaStats>,
    deadline: Instant,
}

#[derive(Debug)]
struct OpenRoom {
    key: RecordKey,
    /// The calls in it now.
    present: HashSet<String>,
    peak: u32,
    total: u32,
}

/// What a recorder has seen go wrong (events it could not place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderCounters {
    /// Legs closed without final counters (no `LegRemoved` in time).
    pub without_counters: u64,
    /// Conference IDs that are no valid directory ID (not recorded).
    pub bad_conference_ids: u64,
}

/// The control side of the call records (see the module page). Inputs: the UA's and the
/// conference service's events, the cores' leg counters, `handle_timeout`, `shutdown`;
/// outputs: `poll_write` (to the writer, in order) and `poll_query` (`QueryLeg` to a core).
pub struct Recorder {
    /// The same moment as an `Instant` and as wall-clock time: `now` arguments become
    /// record times without reading a clock.
    epoch: (Instant, UnixMs),
    checkpoint_every: Duration,
    removal_wait: Duration,
    next_checkpoint: Instant,
    next_key: u64,
    legs: HashMap<String, OpenLeg>,
    by_leg: HashMap<LegId, String>,
    ending: HashMap<LegId, Ending>,
    /// Deadlines of `ending`, in order (all are `now + removal_wait`); stale entries skipped.
    deadlines: VecDeque<(Instant, LegId)>,
    rooms: HashMap<String, OpenRoom>,
    writes: VecDeque<Write>,
    queries: VecDeque<(CoreId, LegId)>,
    counters: RecorderCounters,
}

/// The directory's counters from a core's.
fn leg_stats(s: &MediaStats) -> LegStats {
    LegStats {
        packets_in: s.rtp_in,
        packets_out: s.rtp_out,
        lost: s.lost.max(0) as u64,
        jitter_ms: s.jitter_us as f64 / 1000.0,
    }
}

/// The record's end reason for how the UA says a call ended (and why the service hung up).
fn end_reason(end: CallEnd, cause: Option<HangupCause>) -> EndReason {
    match end {
        CallEnd::RemoteBye | CallEnd::Cancelled => EndReason::CallerHangup,
        CallEnd::MediaTimeout => EndReason::RtpTimeout,
        CallEnd::SessionExpired => EndReason::SessionTimeout,
        CallEnd::MediaFailed => EndReason::Failed,
        CallEnd::NoAck => EndReason::NoAck,
        CallEnd::Local => match cause {
            Some(
                HangupCause::TooManyAttempts | HangupCause::WrongPins | HangupCause::LockedOut,
            ) => EndReason::IvrGaveUp,
            Some(HangupCause::Locked | HangupCause::Full) => EndReason::Refused,
            Some(HangupCause::EndedByModerator) => EndReason::ConferenceEnded,
            Some(HangupCause::Unreachable) => EndReason::Failed,
            None => EndReason::ServerHangup,
        },
    }
}

impl Recorder {
    /// A recorder whose clock reads `wall` at `now`, saving counters every
    /// `checkpoint_every` and waiting `removal_wait` for a leg's final counters.
    pub fn new(
        now: Instant,
        wall: UnixMs,
        checkpoint_every: Duration,
        removal_wait: Duration,
    ) -> Recorder {
        Recorder {
            epoch: (now, wall),
            checkpoint_every,
            removal_wait,
            next_checkpoint: now + checkpoint_every,
            next_key: 1,
            legs: HashMap::new(),
            by_leg: HashMap::new(),
            ending: HashMap::new(),
            deadlines: VecDeque::new(),
            rooms: HashMap::new(),
            writes: VecDeque::new(),
            queries: VecDeque::new(),
            counters: RecorderCounters::default(),
        }
    }

    /// What went wrong so far.
    pub fn counters(&self) -> RecorderCounters {
        self.counters
    }

    /// Calls ended whose legs' final counters have not come yet.
    pub fn awaiting_counters(&self) -> bool {
        !self.ending.is_empty()
    }

    /// Records open now (legs up or waiting for counters, conference instances).
    pub fn open(&self) -> (usize, usize) {
        (self.legs.len() + self.ending.len(), self.rooms.len())
    }

    fn wall(&self, now: Instant) -> UnixMs {
        let since = now.saturating_duration_since(self.epoch.0).as_millis();
        UnixMs(
            self.epoch
                .1
                .0
                .saturating_add(i64::try_from(since).unwrap_or(i64::MAX)),
        )
    }

    fn key(&mut self) -> RecordKey {
        let k = RecordKey(self.next_key);
        self.next_key += 1;
        k
    }

    fn conference_id(&mut self, conference: &str) -> Option<ConferenceId> {
        match conference.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                self.counters.bad_conference_ids += 1;
                tracing::warn!(conference, error = %e, "conference not recorded");
                None
            }
        }
    }

    /// Next write for the writer.
    pub fn poll_write(&mut self) -> Option<Write> {
        self.writes.pop_front()
    }

    /// Next leg whose counters to ask its core for (`Command::QueryLeg`; the answer goes to
    /// [`Recorder::leg_stats`]).
    pub fn poll_query(&mut self) -> Option<(CoreId, LegId)> {
        self.queries.pop_front()
    }

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let removal = self.deadlines.front().map(|(at, _)| *at);
        Some(removal.map_or(self.next_checkpoint, |r| r.min(self.next_checkpoint)))
    }

    // ---- calls ---------------------------------------------------------------------------

    /// A call was answered: its record opens.
    pub fn call_answered(&mut self, now: Instant, call: Answered) {
        let key = self.key();
        let (codec, suite) = match call.media {
            Some((codec, suite)) => (Some(codec), suite),
            None => (None, None),
        };
        self.writes.push_back(Write::LegStarted {
            key,
            record: LegRecord {
                leg_id: call.leg.0,
                call_id: call.call_id.clone(),
                caller: call.caller,
                source: call.source,
                conference: None,
                role: Role::Participant,
                joined_at: self.wall(now),
                // A delayed offer: the codec is chosen by the ACK's answer, after the 200
                // (`call_media` then fills it in).
                codec: codec.map_or("unknown", Codec::encoding).to_string(),
                srtp_suite: suite.map(|s| s.sdes_name().to_string()),
            },
        });
        self.by_leg.insert(call.leg, call.call_id.clone());
        self.legs.insert(
            call.call_id,
            OpenLeg {
                key,
                leg: call.leg,
                core: call.core,
                codec,
                stats: None,
                removed: None,
                cause: None,
            },
        );
    }

    /// The call's leg is on another core now (checkpoint queries go there).
    pub fn call_moved(&mut self, call_id: &str, core: CoreId) {
        if let Some(l) = self.legs.get_mut(call_id) {
            l.core = core;
        }
    }

    /// The call's codec or SRTP suite changed (or became known, with a delayed offer): its
    /// record says so, and its MOS is estimated for that codec.
    pub fn call_media(&mut self, call_id: &str, codec: Codec, suite: Option<SrtpSuite>) {
        let Some(l) = self.legs.get_mut(call_id) else {
            return;
        };
        l.codec = Some(codec);
        self.writes.push_back(Write::LegMedia {
            key: l.key,
            codec: codec.encoding().to_string(),
            srtp_suite: suite.map(|s| s.sdes_name().to_string()),
        });
    }

    /// The conference service hangs up the call, for this reason.
    pub fn hangup(&mut self, call_id: &str, cause: HangupCause) {
        if let Some(l) = self.legs.get_mut(call_id) {
            l.cause = Some(cause);
        }
    }

    /// The call ended; its record closes when its leg's final counters arrive (or after
    /// `removal_wait` without them).
    pub fn call_ended(&mut self, now: Instant, call_id: &str, end: CallEnd) {
        let Some(l) = self.legs.remove(call_id) else {
            return;
        };
        if self.by_leg.get(&l.leg).is_some_and(|c| c == call_id) {
            self.by_leg.remove(&l.leg);
        }
        let reason = end_reason(end, l.cause);
        let left_at = self.wall(now);
        if let Some(last) = l.removed {
            return self.close_leg(l.key, l.codec, left_at, reason, Some(last), true);
        }
        let deadline = now + self.removal_wait;
        self.deadlines.push_back((deadline, l.leg));
        let ending = Ending {
            key: l.key,
            codec: l.codec,
            left_at,
            reason,
            stats: l.stats,
            deadline,
        };
        // A leg id is reused only after 2^32 calls; one still waiting then closes now.
        if let Some(old) = self.ending.insert(l.leg, ending) {
            self.close_ending(old, false);
        }
    }

    /// A core removed a leg and reported its final counters.
    pub fn leg_removed(&mut self, leg: LegId, stats: &MediaStats) {
        if let Some(e) = self.ending.remove(&leg) {
            let (key, codec, left_at, reason) = (e.key, e.codec, e.left_at, e.reason);
            return self.close_leg(key, codec, left_at, reason, Some(*stats), true);
        }
        // Before the call's end was reported: keep them for it.
        if let Some(l) = self.by_leg.get(&leg).and_then(|c| self.legs.get_mut(c)) {
            l.removed = Some(*stats);
        }
    }

    /// A core's answer to a checkpoint query: the counters are saved now.
    pub fn leg_stats(&mut self, now: Instant, leg: LegId, stats: &MediaStats) {
        let at = self.wall(now);
        let Some(l) = self.by_leg.get(&leg).and_then(|c| self.legs.get_mut(c)) else {
            return;
        };
        l.stats = Some(*stats);
        let key = l.key;
        self.writes.push_back(Write::LegCheckpoint {
            key,
            at,
            stats: leg_stats(stats),
        });
    }

    fn close_ending(&mut self, e: Ending, complete: bool) {
        self.close_leg(e.key, e.codec, e.left_at, e.reason, e.stats, complete);
    }

    /// Writes a leg's end. `complete`: `stats` are the final counters (a MOS is estimated
    /// from them); else the last known, if any, and no MOS.
    fn close_leg(
        &mut self,
        key: RecordKey,
        codec: Option<Codec>,
        left_at: UnixMs,
        reason: EndReason,
        stats: Option<MediaStats>,
        complete: bool,
    ) {
        let stats = stats.as_ref().map(leg_stats).unwrap_or_default();
        let mos = match (complete, codec) {
            (true, Some(codec)) => {
                emodel::leg_mos(codec, stats.packets_in, stats.lost, stats.jitter_ms)
                    .map(|m| (m * 100.0).round() / 100.0)
            }
            _ => None,
        };
        if !complete {
            self.counters.without_counters += 1;
        }
        self.writes.push_back(Write::LegEnded {
            key,
            end: LegEnd {
                left_at,
                stats,
                mos,
                reason,
            },
        });
    }

    // ---- conferences -------------------------------------------------------------------------

    /// A conference instance began (its room was created).
    pub fn room_opened(&mut self, now: Instant, conference: &str) {
        let Some(id) = self.conference_id(conference) else {
            return;
        };
        let key = self.key();
        let at = self.wall(now);
        self.writes.push_back(Write::ConferenceStarted {
            key,
            conference: id,
            at,
        });
        let room = OpenRoom {
            key,
            present: HashSet::new(),
            peak: 0,
            total: 0,
        };
        if let Some(old) = self.rooms.insert(conference.to_string(), room) {
            // Never closed: the service opens a room only when it has none.
            self.close_room(now, old, EndReason::ConferenceEnded);
        }
    }

    /// Notes what a conference-service output means for the records (hang-up causes, joins,
    /// leaves, room instances); other outputs mean nothing here. The one place that maps
    /// service outputs to records, for the control task and the tests alike.
    pub fn observe(&mut self, now: Instant, out: &crate::conference::Output) {
        use crate::conference::Output;
        match out {
            Output::Hangup { call_id, cause } => self.hangup(call_id, *cause),
            Output::Joined {
                call_id,
                conference,
                moderator,
            } => self.joined(call_id, conference, *moderator),
            Output::Left {
                call_id,
                conference,
            } => self.left(call_id, conference),
            Output::RoomOpened { conference } => self.room_opened(now, conference),
            Output::RoomClosed { conference } => self.room_closed(now, conference),
            _ => {}
        }
    }

    /// The conference instance is being recorded to `path`.
    pub fn recording(&mut self, conference: &str, path: &std::path::Path) {
        if let Some(room) = self.rooms.get(conference) {
            let key = room.key;
            self.writes.push_back(Write::ConferenceRecording {
                key,
                path: path.to_path_buf(),
            });
        }
    }

    /// A call entered a conference.
    pub fn joined(&mut self, call_id: &str, conference: &str, moderator: bool) {
        if let Some(room) = self.rooms.get_mut(conference)
            && room.present.insert(call_id.to_string())
        {
            room.total += 1;
            room.peak = room.peak.max(room.present.len() as u32);
        }
        let Some(key) = self.legs.get(call_id).map(|l| l.key) else {
            return;
        };
        let Some(id) = self.conference_id(conference) else {
            return;
        };
        let role = if moderator {
            Role::Moderator
        } else {
            Role::Participant
        };
        self.writes.push_back(Write::LegJoined {
            key,
            conference: id,
            role,
        });
    }

    /// A call in a conference ended.
    pub fn left(&mut self, call_id: &str, conference: &str) {
        if let Some(room) = self.rooms.get_mut(conference) {
            room.present.remove(call_id);
        }
    }

    /// A conference instance ended (its last caller left).
    pub fn room_closed(&mut self, now: Instant, conference: &str) {
        if let Some(room) = self.rooms.remove(conference) {
            self.close_room(now, room, EndReason::ConferenceEnded);
        }
    }

    fn close_room(&mut self, now: Instant, room: OpenRoom, reason: EndReason) {
        let ended_at = self.wall(now);
        self.writes.push_back(Write::ConferenceEnded {
            key: room.key,
            end: ConferenceEnd {
                ended_at,
                max_participants_seen: room.peak,
                participants_total: room.total,
                reason,
            },
        });
    }

    // ---- time ----------------------------------------------------------------------------------

    /// Closes the records whose final counters did not come in time, and asks the cores for
    /// every open leg's counters when a checkpoint is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, leg)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            if self.ending.get(&leg).is_some_and(|e| e.deadline == at)
                && let Some(e) = self.ending.remove(&leg)
            {
                tracing::debug!(%leg, "no final counters from the core; record closed without");
                self.close_ending(e, false);
            }
        }
        if now >= self.next_checkpoint {
            self.next_checkpoint = now + self.checkpoint_every;
            let legs: Vec<(CoreId, LegId)> = self.legs.values().map(|l| (l.core, l.leg)).collect();
            self.queries.extend(legs);
        }
    }

    /// The server stops: every open record is closed now, legs with their last known counters
    /// (calls still up end as `shutdown`; ended ones keep their reason), conferences as
    /// `shutdown`.
    pub fn shutdown(&mut self, now: Instant) {
        let left_at = self.wall(now);
        let mut ending: Vec<Ending> = self.ending.drain().map(|(_, e)| e).collect();
        ending.sort_by_key(|e| e.key.0);
        for e in ending {
            self.close_ending(e, false);
        }
        self.deadlines.clear();
        let mut legs: Vec<OpenLeg> = self.legs.drain().map(|(_, l)| l).collect();
        legs.sort_by_key(|l| l.key.0);
        self.by_leg.clear();
        for l in legs {
            let (stats, complete) = match l.removed {
                Some(s) => (Some(s), true),
                None => (l.stats, false),
            };
            self.close_leg(
                l.key,
                l.codec,
                left_at,
                EndReason::Shutdown,
                stats,
                complete,
            );
        }
        let mut rooms: Vec<OpenRoom> = self.rooms.drain().map(|(_, r)| r).collect();
        rooms.sort_by_key(|r| r.key.0);
        for r in rooms {
            self.close_room(now, r, EndReason::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMs = UnixMs(1_700_000_000_000);

    fn recorder(now: Instant) -> Recorder {
        Recorder::new(now, T0, CHECKPOINT_EVERY, REMOVAL_WAIT)
    }

    fn answered(n: u32) -> Answered {
        Answered {
            call_id: format!("call-{n}"),
            leg: LegId(n),
            core: CoreId(0),
            caller: format!("sip:user{n}@example.test"),
            source: SocketAddr::from(([192, 0, 2, 1], 5060)),
            media: Some((Codec::Pcmu, Some(SrtpSuite::AesCm128HmacSha1_80))),
        }
    }

    fn writes(r: &mut Recorder) -> Vec<Write> {
        std::iter::from_fn(|| r.poll_write()).collect()
    }

    fn media(rtp_in: u64, lost: i64, jitter_us: u64) -> MediaStats {
        MediaStats {
            rtp_in,
            rtp_out: rtp_in,
            lost,
            jitter_us,
            ..MediaStats::default()
        }
    }

    #[test]
    fn a_leg_opens_at_the_answer_and_closes_with_its_final_counters() {
        let now = Instant::now();
        let mut r = recorder(now);
        r.call_answered(now, answered(1));
        let w = writes(&mut r);
        let [Write::LegStarted { key, record }] = w.as_slice() else {
            panic!("{w:?}");
        };
        assert_eq!(record.caller, "sip:user1@example.test");
        assert_eq!(record.codec, "PCMU");
        assert_eq!(
            record.srtp_suite.as_deref(),
            Some("AES_CM_128_HMAC_SHA1_80")
        );
        assert_eq!(record.joined_at, T0);
        assert_eq!(record.conference, None);
        let key = *key;
        // The call ends; the record waits for the leg's counters.
        let end = now + Duration::from_secs(62);
        r.call_ended(end, "call-1", CallEnd::RemoteBye);
        assert!(writes(&mut r).is_empty());
        assert_eq!(r.open(), (1, 0));
        r.leg_removed(LegId(1), &media(3000, 30, 2_500));
        let w = writes(&mut r);
        let [Write::LegEnded { key: k, end: e }] = w.as_slice() else {
            panic!("{w:?}");
        };
        assert_eq!(*k, key);
        assert_eq!(e.left_at, UnixMs(T0.0 + 62_000));
        assert_eq!(e.reason, EndReason::CallerHangup);
        assert_eq!(e.stats.packets_in, 3000);
        assert_eq!(e.stats.lost, 30);
        assert_eq!(e.stats.jitter_ms, 2.5);
        let mos = e.mos.unwrap();
        assert!((3.5..4.41).contains(&mos), "{mos}");
        assert_eq!(r.open(), (0, 0));
    }

    #[test]
    fn a_delayed_offer_records_the_codec_the_ack_brought_and_rates_it() {
        let now = Instant::now();
        let mut r = recorder(now);
        r.call_answered(
            now,
            Answered {
                media: None,
                ..answered(1)
            },
        );
        let w = writes(&mut r);
        assert!(
            matches!(w.as_slice(), [Write::LegStarted { record, .. }] if record.codec == "unknown")
        );
        r.call_media("call-1", Codec::Pcma, None);
        let w = writes(&mut r);
        assert!(
            matches!(w.as_slice(), [Write::LegMedia { codec, srtp_suite: None, .. }] if codec == "PCMA"),
            "{w:?}"
        );
        r.call_ended(now + Duration::from_secs(10), "call-1", CallEnd::RemoteBye);
        r.leg_removed(LegId(1), &media(500, 0, 1_000));
        let w = writes(&mut r);
        let [Write::LegEnded { end, .. }] = w.as_slice() else {
            panic!("{w:?}");
        };
        assert!(end.mos.is_some(), "a MOS once the codec is known");
    }

    #[test]
    fn counters_that_never_come_close_the_record_without_them() {
        let now = Instant::now();
        let mut r = recorder(now);
        r.call_answered(now, answered(1));
        // A checkpoint on the way: the core is asked, and its answer is saved.
        let cp = now + CHECKPOINT_EVERY;
        assert_eq!(r.poll_timeout(), Some(cp));
        r.handle_timeout(cp);
        assert_eq!(r.poll_query(), Some((CoreId(0), LegId(1))));
        assert_eq!(r.poll_query(), None);
        writes(&mut r);
        r.leg_stats(cp, LegId(1), &media(1500, 0, 1000));
        let w = writes(&mut r);
        assert!(
            matches!(w.as_slice(), [Write::LegCheckpoint { at, stats, .. }]
                if *at == UnixMs(T0.0 + 30_000) && stats.packets_in == 1500),
            "{w:?}"
        );
        let end = cp + Duration::from_secs(1);
        r.call_ended(end, "call-1", CallEnd::MediaTimeout);
        assert_eq!(r.poll_timeout(), Some(end + REMOVAL_WAIT));
        r.handle_timeout(end + REMOVAL_WAIT - Duration::from_millis(1));
        assert!(writes(&mut r).is_empty());
        r.handle_timeout(end + REMOVAL_WAIT);
        let w = writes(&mut r);
        let [Write::LegEnded { end: e, .. }] = w.as_slice() else {
            panic!("{w:?}");
        };
        // Ended when the call did, with the last counters known, no MOS.
        assert_eq!(e.left_at, UnixMs(T0.0 + 31_000));
        assert_eq!(e.reason, EndReason::RtpTimeout);
        assert_eq!(e.stats.packets_in, 1500);
        assert_eq!(e.mos, None);
        assert_eq!(r.counters().without_counters, 1);
        // A late LegRemoved finds nothing to close.
        r.leg_removed(LegId(1), &media(1600, 0, 0));
        assert!(writes(&mut r).is_empty());
    }

    #[test]
    fn end_reasons_say_who_hung_up_and_why() {
        let now = Instant::now();
        let cases = [
            (CallEnd::RemoteBye, None, EndReason::CallerHangup),
            (CallEnd::Local, None, EndReason::ServerHangup),
            (
                CallEnd::Local,
                Some(HangupCause::TooManyAttempts),
                EndReason::IvrGaveUp,
            ),
            (CallEnd::Local, Some(HangupCause::Full), EndReason::Refused),
            (
                CallEnd::Local,
                Some(HangupCause::EndedByModerator),
                EndReason::ConferenceEnded,
            ),
            (CallEnd::SessionExpired, None, EndReason::SessionTimeout),
            (CallEnd::MediaFailed, None, EndReason::Failed),
            (CallEnd::NoAck, None, EndReason::NoAck),
        ];
        for (n, (end, cause, want)) in cases.into_iter().enumerate() {
            let mut r = recorder(now);
            let n = n as u32 + 1;
            r.call_answered(now, answered(n));
            if let Some(c) = cause {
                r.hangup(&format!("call-{n}"), c);
            }
            r.call_ended(now, &format!("call-{n}"), end);
            r.leg_removed(LegId(n), &media(0, 0, 0));
            let w = writes(&mut r);
            let Some(Write::LegEnded { end: e, .. }) = w.last() else {
                panic!("{w:?}");
            };
            assert_eq!(e.reason, want, "{end:?} {cause:?}");
            // No packets: no stream to rate.
            assert_eq!(e.mos, None);
        }
    }

    #[test]
    fn conference_instances_count_their_participants() {
        let now = Instant::now();
        let mut r = recorder(now);
        for n in 1..=3 {
            r.call_answered(now, answered(n));
        }
        writes(&mut r);
        r.room_opened(now, "4711");
        r.joined("call-1", "4711", true);
        r.joined("call-2", "4711", false);
        r.left("call-1", "4711");
        r.joined("call-3", "4711", false);
        let w = writes(&mut r);
        assert!(matches!(
            w.as_slice(),
            [
                Write::ConferenceStarted { at, .. },
                Write::LegJoined {
                    role: Role::Moderator,
                    ..
                },
                Write::LegJoined {
                    role: Role::Participant,
                    ..
                },
                Write::LegJoined { .. },
            ] if *at == T0
        ));
        r.left("call-2", "4711");
        r.left("call-3", "4711");
        r.room_closed(now + Duration::from_secs(600), "4711");
        let w = writes(&mut r);
        let [Write::ConferenceEnded { end, .. }] = w.as_slice() else {
            panic!("{w:?}");
        };
        assert_eq!(end.max_participants_seen, 2);
        assert_eq!(end.participants_total, 3);
        assert_eq!(end.ended_at, UnixMs(T0.0 + 600_000));
        assert_eq!(end.reason, EndReason::ConferenceEnded);
    }

    #[test]
    fn shutdown_closes_everything_open() {
        let now = Instant::now();
        let mut r = recorder(now);
        for n in 1..=3 {
            r.call_answered(now, answered(n));
        }
        r.room_opened(now, "9");
        r.joined("call-1", "9", false);
        // Call 3 ended and waits for its counters.
        r.call_ended(now, "call-3", CallEnd::RemoteBye);
        writes(&mut r);
        let later = now + Duration::from_secs(10);
        r.shutdown(later);
        let w = writes(&mut r);
        let reasons: Vec<EndReason> = w
            .iter()
            .map(|w| match w {
                Write::LegEnded { end, .. } => end.reason,
                Write::ConferenceEnded { end, .. } => end.reason,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            reasons,
            [
                EndReason::CallerHangup,
                EndReason::Shutdown,
                EndReason::Shutdown,
                EndReason::Shutdown
            ]
        );
        assert_eq!(r.open(), (0, 0));
        assert!(matches!(
            w.last(),
            Some(Write::ConferenceEnded { end, .. }) if end.participants_total == 1
        ));
    }
}
