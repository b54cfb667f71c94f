//! Call detail records: one `cdr_legs` row per leg, one `cdr_conferences` row per conference
//! instance (from its first caller to its end). A row is written when the leg or conference
//! starts and completed when it ends, so a crash leaves it open, never missing; the next
//! start closes such rows as `interrupted` ([`Directory::close_interrupted`]).

use std::net::SocketAddr;
use std::path::Path;

use rusqlite::{Row, params};
use serde_json::json;

use super::{ConferenceId, Directory, DirectoryError, UnixMs};

/// A caller's role in a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary participant.
    Participant,
    /// Joined with the moderator PIN.
    Moderator,
}

impl Role {
    /// As stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
}

/// Why a leg or a conference ended. Stored as the kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE (or CANCEL).
    CallerHangup,
    /// The server hung up (a moderator's kick aside).
    ServerHangup,
    /// No RTP or RTCP from the caller for `rtp_timeout_s`.
    RtpTimeout,
    /// The caller stopped refreshing its session timer.
    SessionTimeout,
    /// The caller never acknowledged the 200 that answered it.
    NoAck,
    /// The IVR gave up: too many wrong IDs or PINs, or no digits.
    IvrGaveUp,
    /// A moderator removed the caller.
    // No key removes one caller yet (the conferencing issue's operator control will).
    #[allow(dead_code)]
    Kicked,
    /// A moderator ended the conference, or its last caller left.
    ConferenceEnded,
    /// The conference was at its participant limit or locked.
    Refused,
    /// The server was stopped.
    Shutdown,
    /// The server stopped without closing the record (crash, kill, power cut).
    Interrupted,
    /// Anything else that went wrong (the leg could not be set up, a core refused it).
    Failed,
}

impl EndReason {
    /// As stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHangup => "caller-hangup",
            EndReason::ServerHangup => "server-hangup",
            EndReason::RtpTimeout => "rtp-timeout",
            EndReason::SessionTimeout => "session-timeout",
            EndReason::NoAck => "no-ack",
            EndReason::IvrGaveUp => "ivr-gave-up",
            EndReason::Kicked => "kicked",
            EndReason::ConferenceEnded => "conference-ended",
            EndReason::Refused => "refused",
            EndReason::Shutdown => "shutdown",
            EndReason::Interrupted => "interrupted",
            EndReason::Failed => "failed",
        }
    }
}

/// A leg as it starts (at the INVITE's answer; in the IVR or straight into a conference).
#[derive(Debug, Clone, PartialEq)]
pub struct LegRecord {
    /// The engine's leg id (reused after the leg ends; the row id is the record's key).
    pub leg_id: u32,
    /// The SIP Call-ID.
    pub call_id: String,
    /// The From URI.
    pub caller: String,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The conference, if known already (a Request-URI naming it); else see
    /// [`Directory::leg_joined`].
    pub conference: Option<ConferenceId>,
    /// Participant or moderator.
    pub role: Role,
    /// When the leg started.
    pub joined_at: UnixMs,
    /// The negotiated audio codec (`PCMU`, `opus`...).
    pub codec: String,
    /// The SRTP suite, if the call is encrypted.
    pub srtp_suite: Option<String>,
}

/// A leg's media counters so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegStats {
    /// RTP packets received from the caller.
    pub packets_in: u64,
    /// RTP packets sent to the caller.
    pub packets_out: u64,
    /// Packets from the caller lost (RFC 3550 cumulative loss).
    pub lost: u64,
    /// Interarrival jitter of the caller's stream, milliseconds.
    pub jitter_ms: f64,
}

/// A leg as it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegEnd {
    /// When the leg ended.
    pub left_at: UnixMs,
    /// Final counters.
    pub stats: LegStats,
    /// Estimated mean opinion score (1-5), if computed.
    pub mos: Option<f64>,
    /// Why it ended.
    pub reason: EndReason,
}

/// A conference instance as it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConferenceEnd {
    /// When it ended.
    pub ended_at: UnixMs,
    /// Most participants at once.
    pub max_participants_seen: u32,
    /// Participants who joined, in all.
    pub participants_total: u32,
    /// Why it ended.
    pub reason: EndReason,
}

/// What [`Directory::close_interrupted`] closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interrupted {
    /// Leg records closed.
    pub legs: usize,
    /// Conference records closed.
    pub conferences: usize,
}

/// Which records to read: newest first, at most `limit`, of one conference if given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CdrFilter {
    /// Only this conference's records.
    pub conference: Option<ConferenceId>,
    /// At most this many (newest first); none for all.
    pub limit: Option<u32>,
}

/// A `cdr_legs` row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrLeg {
    /// The record's row id.
    pub id: i64,
    /// The engine's leg id.
    pub leg_id: u32,
    /// SIP Call-ID.
    pub call_id: String,
    /// From URI.
    pub caller: String,
    /// Source address of the INVITE.
    pub source: String,
    /// Conference joined; none if the caller never got past the IVR.
    pub conference: Option<String>,
    /// `participant` or `moderator`.
    pub role: String,
    /// Start.
    pub joined_at: UnixMs,
    /// End; none while the leg is up.
    pub left_at: Option<UnixMs>,
    /// Audio codec.
    pub codec: String,
    /// SRTP suite, if encrypted.
    pub srtp_suite: Option<String>,
    /// Counters (final once closed; last checkpoint while open).
    pub stats: LegStats,
    /// MOS estimate.
    pub mos: Option<f64>,
    /// Why it ended; none while open.
    pub end_reason: Option<String>,
}

impl CdrLeg {
    /// One JSON object, as `chorus cdr --json` prints a line. Times are RFC 3339 UTC
    /// strings, absent values `null`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "leg_id": self.leg_id,
            "call_id": self.call_id,
            "caller": self.caller,
            "source": self.source,
            "conference": self.conference,
            "role": self.role,
            "joined_at": self.joined_at.to_string(),
            "left_at": self.left_at.map(|t| t.to_string()),
            "duration_s": self.duration_s(),
            "codec": self.codec,
            "srtp": self.srtp_suite,
            "packets_in": self.stats.packets_in,
            "packets_out": self.stats.packets_out,
            "lost": self.stats.lost,
            "jitter_ms": self.stats.jitter_ms,
            "mos": self.mos,
            "end_reason": self.end_reason,
        })
    }

    /// Seconds from join to leave (to a millisecond), once closed.
    pub fn duration_s(&self) -> Option<f64> {
        self.left_at
            .map(|l| (l.0.saturating_sub(self.joined_at.0)) as f64 / 1000.0)
    }
}

/// A `cdr_conferences` row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrConference {
    /// The record's row id.
    pub id: i64,
    /// The conference.
    pub conference: String,
    /// Its first caller joined.
    pub started_at: UnixMs,
    /// It ended; none while running.
    pub ended_at: Option<UnixMs>,
    /// Most participants at once.
    pub max_participants_seen: u32,
    /// Participants in all.
    pub participants_total: u32,
    /// The recording, if one was made.
    pub recording_path: Option<String>,
    /// Why it ended; none while running.
    pub end_reason: Option<String>,
}

impl CdrConference {
    /// One JSON object (see [`CdrLeg::to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "conference": self.conference,
            "started_at": self.started_at.to_string(),
            "ended_at": self.ended_at.map(|t| t.to_string()),
            "max_participants_seen": self.max_participants_seen,
            "participants_total": self.participants_total,
            "recording": self.recording_path,
            "end_reason": self.end_reason,
        })
    }
}

/// u64 counters into SQLite's i64, saturating (a count past 2^63 is not a real call).
fn sql_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Directory {
    /// Opens a leg record; returns its row id, the key of the later calls.
    pub fn leg_started(&self, leg: &LegRecord) -> Result<i64, DirectoryError> {
        self.conn.execute(
            "INSERT INTO cdr_legs (leg_id, call_id, caller, source, conference_id, role,
                 joined_at, codec, srtp_suite)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                leg.leg_id,
                leg.call_id,
                leg.caller,
                leg.source.to_string(),
                leg.conference.as_ref().map(ConferenceId::as_str),
                leg.role.as_str(),
                leg.joined_at.0,
                leg.codec,
                leg.srtp_suite,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records an open leg's codec and SRTP suite as renegotiated (or as first agreed, when
    /// the caller's answer came in the ACK).
    pub fn leg_media(
        &self,
        record: i64,
        codec: &str,
        srtp_suite: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_legs SET codec = ?2, srtp_suite = ?3 WHERE id = ?1 AND left_at IS NULL",
            params![record, codec, srtp_suite],
        )?;
        one_open(n, record)
    }

    /// Records that an open leg entered a conference (after the IVR) with this role.
    pub fn leg_joined(
        &self,
        record: i64,
        conference: &ConferenceId,
        role: Role,
    ) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_legs SET conference_id = ?2, role = ?3 WHERE id = ?1 AND left_at IS NULL",
            params![record, conference.as_str(), role.as_str()],
        )?;
        one_open(n, record)
    }

    /// Saves an open leg's counters and the time they were read, so a crash loses at most
    /// what happened since: the interrupted record ends at `at`.
    pub fn leg_checkpoint(
        &self,
        record: i64,
        at: UnixMs,
        stats: &LegStats,
    ) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_legs SET last_seen_at = ?2, packets_in = ?3, packets_out = ?4, lost = ?5,
                 jitter_ms = ?6
             WHERE id = ?1 AND left_at IS NULL",
            params![
                record,
                at.0,
                sql_count(stats.packets_in),
                sql_count(stats.packets_out),
                sql_count(stats.lost),
                stats.jitter_ms,
            ],
        )?;
        one_open(n, record)
    }

    /// Closes a leg record. Fails with `UnknownRecord` if it is not open.
    pub fn leg_ended(&self, record: i64, end: &LegEnd) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_legs SET left_at = ?2, last_seen_at = ?2, packets_in = ?3,
                 packets_out = ?4, lost = ?5, jitter_ms = ?6, mos = ?7, end_reason = ?8
             WHERE id = ?1 AND left_at IS NULL",
            params![
                record,
                end.left_at.0,
                sql_count(end.stats.packets_in),
                sql_count(end.stats.packets_out),
                sql_count(end.stats.lost),
                end.stats.jitter_ms,
                end.mos,
                end.reason.as_str(),
            ],
        )?;
        one_open(n, record)
    }

    /// Opens a conference instance record; returns its row id.
    pub fn conference_started(
        &self,
        conference: &ConferenceId,
        at: UnixMs,
    ) -> Result<i64, DirectoryError> {
        self.conn.execute(
            "INSERT INTO cdr_conferences (conference_id, started_at) VALUES (?1, ?2)",
            params![conference.as_str(), at.0],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records where an open conference's recording is being written (as soon as it starts,
    /// so the path survives a crash).
    pub fn conference_recording(&self, record: i64, path: &Path) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_conferences SET recording_path = ?2 WHERE id = ?1 AND ended_at IS NULL",
            params![record, path.to_string_lossy()],
        )?;
        one_open(n, record)
    }

    /// Closes a conference instance record.
    pub fn conference_ended(&self, record: i64, end: &ConferenceEnd) -> Result<(), DirectoryError> {
        let n = self.conn.execute(
            "UPDATE cdr_conferences SET ended_at = ?2, max_participants_seen = ?3,
                 participants_total = ?4, end_reason = ?5
             WHERE id = ?1 AND ended_at IS NULL",
            params![
                record,
                end.ended_at.0,
                end.max_participants_seen,
                end.participants_total,
                end.reason.as_str(),
            ],
        )?;
        one_open(n, record)
    }

    /// Closes every record still open, which at the server's start means a crash left them:
    /// end reason `interrupted`. A leg ends at its last checkpoint, else when it joined; a
    /// conference at the last moment any of its legs was known to be up, else when it started;
    /// neither later than `now`. Conferences also get the participant counts their leg records
    /// show. Call it before the server writes any record, only from the process holding the
    /// data directory's lock (another server's open records are not interrupted).
    pub fn close_interrupted(&mut self, now: UnixMs) -> Result<Interrupted, DirectoryError> {
        let tx = self.conn.transaction()?;
        let legs = tx.execute(
            "UPDATE cdr_legs SET left_at = min(coalesce(last_seen_at, joined_at), ?1),
                 end_reason = ?2
             WHERE left_at IS NULL",
            params![now.0, EndReason::Interrupted.as_str()],
        )?;
        // The legs of a conference instance: its ID, up at or after its start.
        let conferences = tx.execute(
            "UPDATE cdr_conferences AS c SET
                 ended_at = min(?1, max(c.started_at, coalesce(
                     (SELECT max(l.left_at) FROM cdr_legs AS l
                      WHERE l.conference_id = c.conference_id AND l.left_at >= c.started_at),
                     c.started_at))),
                 participants_total = max(c.participants_total, (
                     SELECT count(*) FROM cdr_legs AS l
                     WHERE l.conference_id = c.conference_id AND l.left_at >= c.started_at)),
                 end_reason = ?2
             WHERE c.ended_at IS NULL",
            params![now.0, EndReason::Interrupted.as_str()],
        )?;
        tx.commit()?;
        Ok(Interrupted { legs, conferences })
    }

    /// Leg records, newest first.
    pub fn cdr_legs(&self, filter: &CdrFilter) -> Result<Vec<CdrLeg>, DirectoryError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, leg_id, call_id, caller, source, conference_id, role, joined_at, left_at,
                 codec, srtp_suite, packets_in, packets_out, lost, jitter_ms, mos, end_reason
             FROM cdr_legs
             WHERE ?1 IS NULL OR conference_id = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                filter.conference.as_ref().map(ConferenceId::as_str),
                filter.limit.map_or(-1, i64::from),
            ],
            leg_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Conference instance records, newest first.
    pub fn cdr_conferences(
        &self,
        filter: &CdrFilter,
    ) -> Result<Vec<CdrConference>, DirectoryError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, conference_id, started_at, ended_at, max_participants_seen,
                 participants_total, recording_path, end_reason
             FROM cdr_conferences
             WHERE ?1 IS NULL OR conference_id = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                filter.conference.as_ref().map(ConferenceId::as_str),
                filter.limit.map_or(-1, i64::from),
            ],
            |r| {
                Ok(CdrConference {
                    id: r.get(0)?,
                    conference: r.get(1)?,
                    started_at: UnixMs(r.get(2)?),
                    ended_at: r.get::<_, Option<i64>>(3)?.map(UnixMs),
                    max_participants_seen: r.get(4)?,
                    participants_total: r.get(5)?,
                    recording_path: r.get(6)?,
                    end_reason: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn one_open(changed: usize, record: i64) -> Result<(), DirectoryError> {
    if changed == 0 {
        Err(DirectoryError::UnknownRecord(record))
    } else {
        Ok(())
    }
}

/// Negative counts (a row edited by hand) read as 0.
fn count(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
}

fn leg_from_row(r: &Row<'_>) -> rusqlite::Result<CdrLeg> {
    Ok(CdrLeg {
        id: r.get(0)?,
        leg_id: r.get(1)?,
        call_id: r.get(2)?,
        caller: r.get(3)?,
        source: r.get(4)?,
        conference: r.get(5)?,
        role: r.get(6)?,
        joined_at: UnixMs(r.get(7)?),
        left_at: r.get::<_, Option<i64>>(8)?.map(UnixMs),
        codec: r.get(9)?,
        srtp_suite: r.get(10)?,
        stats: LegStats {
            packets_in: count(r, 11)?,
            packets_out: count(r, 12)?,
            lost: count(r, 13)?,
            jitter_ms: r.get(14)?,
        },
        mos: r.get(15)?,
        end_reason: r.get(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::scratch;
    use super::*;

    fn leg(n: u32, conference: Option<&str>, joined_at: i64) -> LegRecord {
        LegRecord {
            leg_id: n,
            call_id: format!("call-{n}@example.test"),
            caller: format!("sip:caller{n}@example.test"),
            source: format!("127.0.0.1:{}", 5000 + n).parse().unwrap(),
            conference: conference.map(|c| c.parse().unwrap()),
            role: Role::Participant,
            joined_at: UnixMs(joined_at),
            codec: "PCMU".into(),
            srtp_suite: None,
        }
    }

    #[test]
    fn a_leg_from_start_to_end() {
        let data = scratch("cdr-leg");
        let d = Directory::open(&data).unwrap();
        let room: ConferenceId = "4711".parse().unwrap();
        let mut l = leg(7, None, 1_000);
        l.srtp_suite = Some("AEAD_AES_128_GCM".into());
        let r = d.leg_started(&l).unwrap();
        d.leg_joined(r, &room, Role::Moderator).unwrap();
        // A re-INVITE moved the call to G.722 with AES-CM.
        d.leg_media(r, "G722", Some("AES_CM_128_HMAC_SHA1_80"))
            .unwrap();
        let stats = LegStats {
            packets_in: 500,
            packets_out: 480,
            lost: 3,
            jitter_ms: 4.5,
        };
        d.leg_checkpoint(r, UnixMs(11_000), &stats).unwrap();
        let open = &d.cdr_legs(&CdrFilter::default()).unwrap()[0];
        assert_eq!(open.left_at, None);
        assert_eq!(open.stats, stats);
        assert_eq!(open.duration_s(), None);

        let end = LegEnd {
            left_at: UnixMs(61_500),
            stats: LegStats {
                packets_in: 3000,
                ..stats
            },
            mos: Some(4.2),
            reason: EndReason::CallerHangup,
        };
        d.leg_ended(r, &end).unwrap();
        // Closed once: a second end is an error, not a silent overwrite.
        assert!(matches!(
            d.leg_ended(r, &end),
            Err(DirectoryError::UnknownRecord(_))
        ));
        let rows = d.cdr_legs(&CdrFilter::default()).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.conference.as_deref(), Some("4711"));
        assert_eq!(row.role, "moderator");
        assert_eq!(row.codec, "G722");
        assert_eq!(row.srtp_suite.as_deref(), Some("AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(row.left_at, Some(UnixMs(61_500)));
        assert_eq!(row.stats.packets_in, 3000);
        assert_eq!(row.mos, Some(4.2));
        assert_eq!(row.end_reason.as_deref(), Some("caller-hangup"));
        assert_eq!(row.source, "127.0.0.1:5007");
        assert_eq!(row.duration_s(), Some(60.5));
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn interrupted_records_are_closed_at_their_last_known_time() {
        let data = scratch("cdr-interrupted");
        let d = Directory::open(&data).unwrap();
        let room: ConferenceId = "300".parse().unwrap();
        let c = d.conference_started(&room, UnixMs(10_000)).unwrap();
        d.conference_recording(c, Path::new("/data/rec/300.wav"))
            .unwrap();
        // A leg that checkpointed, one that never did, one in the IVR, one closed cleanly.
        let a = d.leg_started(&leg(1, Some("300"), 10_000)).unwrap();
        d.leg_checkpoint(a, UnixMs(70_000), &LegStats::default())
            .unwrap();
        let b = d.leg_started(&leg(2, Some("300"), 20_000)).unwrap();
        let ivr = d.leg_started(&leg(3, None, 30_000)).unwrap();
        let done = d.leg_started(&leg(4, Some("300"), 15_000)).unwrap();
        let end = LegEnd {
            left_at: UnixMs(40_000),
            stats: LegStats::default(),
            mos: None,
            reason: EndReason::CallerHangup,
        };
        d.leg_ended(done, &end).unwrap();
        drop(d);

        // The next start.
        let mut d = Directory::open(&data).unwrap();
        let closed = d.close_interrupted(UnixMs(1_000_000)).unwrap();
        assert_eq!(
            closed,
            Interrupted {
                legs: 3,
                conferences: 1
            }
        );
        let rows = d.cdr_legs(&CdrFilter::default()).unwrap();
        let by_id = |id: i64| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(by_id(a).left_at, Some(UnixMs(70_000)));
        assert_eq!(by_id(b).left_at, Some(UnixMs(20_000)));
        assert_eq!(by_id(ivr).left_at, Some(UnixMs(30_000)));
        for r in [a, b, ivr] {
            assert_eq!(by_id(r).end_reason.as_deref(), Some("interrupted"));
        }
        assert_eq!(by_id(done).end_reason.as_deref(), Some("caller-hangup"));
        let confs = d.cdr_conferences(&CdrFilter::default()).unwrap();
        assert_eq!(confs.len(), 1);
        assert_eq!(confs[0].ended_at, Some(UnixMs(70_000)));
        assert_eq!(confs[0].participants_total, 3);
        assert_eq!(confs[0].end_reason.as_deref(), Some("interrupted"));
        assert_eq!(
            confs[0].recording_path.as_deref(),
            Some("/data/rec/300.wav")
        );
        // Nothing left open: a second call closes nothing.
        assert_eq!(
            d.close_interrupted(UnixMs(2_000_000)).unwrap(),
            Interrupted::default()
        );
        // `now` caps a checkpoint from a clock that ran ahead.
        let e = d.leg_started(&leg(5, None, 5_000_000)).unwrap();
        d.close_interrupted(UnixMs(3_000_000)).unwrap();
        let rows = d.cdr_legs(&CdrFilter::default()).unwrap();
        assert_eq!(
            rows.iter().find(|r| r.id == e).unwrap().left_at,
            Some(UnixMs(3_000_000))
        );
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn conference_record_and_filters() {
        let data = scratch("cdr-filter");
        let d = Directory::open(&data).unwrap();
        let room: ConferenceId = "9".parse().unwrap();
        let c = d.conference_started(&room, UnixMs(0)).unwrap();
        for n in 0..5 {
            let conf = if n % 2 == 0 { Some("9") } else { Some("8") };
            d.leg_started(&leg(n, conf, i64::from(n) * 1000)).unwrap();
        }
        d.conference_ended(
            c,
            &ConferenceEnd {
                ended_at: UnixMs(9_000),
                max_participants_seen: 3,
                participants_total: 3,
                reason: EndReason::ConferenceEnded,
            },
        )
        .unwrap();
        let nine = CdrFilter {
            conference: Some(room.clone()),
            limit: None,
        };
        let legs = d.cdr_legs(&nine).unwrap();
        let ids: Vec<u32> = legs.iter().map(|l| l.leg_id).collect();
        assert_eq!(ids, [4, 2, 0], "newest first, conference 9 only");
        let two = d
            .cdr_legs(&CdrFilter {
                conference: None,
                limit: Some(2),
            })
            .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].leg_id, 4);
        let confs = d.cdr_conferences(&nine).unwrap();
        assert_eq!(confs[0].ended_at, Some(UnixMs(9_000)));
        assert_eq!(confs[0].max_participants_seen, 3);
        assert_eq!(confs[0].end_reason.as_deref(), Some("conference-ended"));
        assert!(
            d.cdr_conferences(&CdrFilter {
                conference: Some("1".parse().unwrap()),
                limit: None
            })
            .unwrap()
            .is_empty()
        );
        let _ = std::fs::remove_dir_all(data);
    }

    #[test]
    fn json_shape() {
        let row = CdrLeg {
            id: 12,
            leg_id: 3,
            call_id: "abc@host".into(),
            caller: "sip:alice@example.test".into(),
            source: "192.0.2.1:5060".into(),
            conference: Some("4711".into()),
            role: "participant".into(),
            joined_at: UnixMs(1_700_000_000_000),
            left_at: Some(UnixMs(1_700_000_090_500)),
            codec: "opus".into(),
            srtp_suite: None,
            stats: LegStats {
                packets_in: 4500,
                packets_out: 4490,
                lost: 2,
                jitter_ms: 1.5,
            },
            mos: Some(4.3),
            end_reason: Some("caller-hangup".into()),
        };
        let v = row.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "id",
            "leg_id",
            "call_id",
            "caller",
            "source",
            "conference",
            "role",
            "joined_at",
            "left_at",
            "duration_s",
            "codec",
            "srtp",
            "packets_in",
            "packets_out",
            "lost",
            "jitter_ms",
            "mos",
            "end_reason",
        ];
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(v["joined_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["left_at"], "2023-11-14T22:14:50.500Z");
        assert_eq!(v["duration_s"], 90.5);
        assert_eq!(v["srtp"], serde_json::Value::Null);
        assert_eq!(v["packets_in"], 4500);
        assert_eq!(v["mos"], 4.3);
        // One line: what `--json` prints per record.
        assert!(!v.to_string().contains('\n'));

        let open = CdrLeg {
            left_at: None,
            end_reason: None,
            ..row
        };
        let v = open.to_json();
        assert_eq!(v["left_at"], serde_json::Value::Null);
        assert_eq!(v["duration_s"], serde_json::Value::Null);
        assert_eq!(v["end_reason"], serde_json::Value::Null);

        let c = CdrConference {
            id: 1,
            conference: "4711".into(),
            started_at: UnixMs(0),
            ended_at: None,
            max_participants_seen: 2,
            participants_total: 5,
            recording_path: None,
            end_reason: None,
        };
        let v = c.to_json();
        assert_eq!(v["started_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["participants_total"], 5);
        assert_eq!(v["recording"], serde_json::Value::Null);
    }
}
