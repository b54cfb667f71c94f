//! The thread that writes the call records: one `Directory` connection of its own, fed the
//! recorder's [`Write`]s through a bounded queue in order. The control task only ever
//! `try_send`s: a full queue drops the write, counted and logged, and never blocks SIP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::recorder::{RecordKey, Write};
use crate::directory::{Directory, DirectoryError};

/// Writes taken from the queue into one transaction (one commit, one fsync) at most.
const BATCH: usize = 256;

/// What the writer thread did, reported when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Writes applied.
    pub written: u64,
    /// Writes that failed (logged): a database error, or a record whose start was lost.
    pub failed: u64,
}

/// The writer thread's handle: submit writes, then `finish` (or drop) to let it drain its
/// queue and end.
pub struct Writer {
    queue: Option<SyncSender<Write>>,
    thread: Option<JoinHandle<WriterReport>>,
    /// Writes refused by a full queue (or a writer thread that died).
    dropped: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the thread on `directory` with room for `capacity` queued writes.
    pub fn start(directory: Directory, capacity: usize) -> std::io::Result<Writer> {
        let (queue, rx) = sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || run(directory, rx))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues a write; never blocks. A full queue drops it (counted; logged on the first and
    /// every 1000th).
    pub fn submit(&self, write: Write) {
        let Some(queue) = &self.queue else {
            return self.drop_one("the writer has finished");
        };
        match queue.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.drop_one("queue full"),
            Err(TrySendError::Disconnected(_)) => self.drop_one("the writer thread stopped"),
        }
    }

    /// Queues a write, waiting for room if the queue is full: for the records closed when
    /// the server stops, which must not be dropped (the control task is done by then).
    pub fn submit_wait(&self, write: Write) {
        let sent = self.queue.as_ref().is_some_and(|q| q.send(write).is_ok());
        if !sent {
            self.drop_one("the writer thread stopped");
        }
    }

    fn drop_one(&self, why: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(dropped = n, why, "call record write dropped");
        }
    }

    /// Writes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Closes the queue and waits until the thread has written everything queued. Blocks (on
    /// the database): call it when the server stops. Idempotent.
    pub fn finish(&mut self) -> WriterReport {
        self.queue = None;
        let Some(thread) = self.thread.take() else {
            return WriterReport::default();
        };
        let report = thread.join().unwrap_or_else(|_| {
            tracing::error!("the call record writer panicked");
            WriterReport::default()
        });
        tracing::info!(
            written = report.written,
            failed = report.failed,
            dropped = self.dropped(),
            "call records written"
        );
        report
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The thread: takes what is queued (at least one, at most `BATCH`), applies it in one
/// transaction, until the queue is closed and empty.
fn run(mut directory: Directory, rx: Receiver<Write>) -> WriterReport {
    let mut rows: HashMap<RecordKey, i64> = HashMap::new();
    let mut report = WriterReport::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(BATCH - 1));
        let n = batch.len() as u64;
        let applied = directory.batch(|d| {
            let mut failed = 0;
            for w in batch {
                if let Err(e) = apply(d, &mut rows, w) {
                    failed += 1;
                    tracing::warn!(error = %e, "call record write failed");
                }
            }
            failed
        });
        match applied {
            Ok(failed) => {
                report.failed += failed;
                report.written += n - failed;
            }
            Err(e) => {
                report.failed += n;
                tracing::error!(error = %e, writes = n, "call record batch not committed");
            }
        }
    }
    report
}

/// Why a write was not applied.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The record's start was dropped (full queue) or failed: no row to update.
    #[error("record {0:?} has no row (its start was not written)")]
    NoRow(RecordKey),
    /// The database refused it.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Applies one write; a record's row id is remembered from its start to its end.
fn apply(d: &Directory, rows: &mut HashMap<RecordKey, i64>, w: Write) -> Result<(), WriteError> {
    let row = |rows: &HashMap<RecordKey, i64>, key: RecordKey| {
        rows.get(&key).copied().ok_or(WriteError::NoRow(key))
    };
    match w {
        Write::LegStarted { key, record } => {
            rows.insert(key, d.leg_started(&record)?);
        }
        Write::LegJoined {
            key,
            conference,
            role,
        } => d.leg_joined(row(rows, key)?, &conference, role)?,
        Write::LegMedia {
            key,
            codec,
            srtp_suite,
        } => d.leg_media(row(rows, key)?, &codec, srtp_suite.as_deref())?,
        Write::LegCheckpoint { key, at, stats } => d.leg_checkpoint(row(rows, key)?, at, &stats)?,
        Write::LegEnded { key, end } => {
            let r = row(rows, key)?;
            rows.remove(&key);
            d.leg_ended(r, &end)?;
        }
        Write::ConferenceStarted {
            key,
            conference,
            at,
        } => {
            rows.insert(key, d.conference_started(&conference, at)?);
        }
        Write::ConferenceEnded { key, end } => {
            let r = row(rows, key)?;
            rows.remove(&key);
            d.conference_ended(r, &end)?;
        }
        Write::ConferenceRecording { key, path } => {
            d.conference_recording(row(rows, key)?, &path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chorus_engine::codecs::prompts::PromptSet;
    use chorus_engine::runtime::{CoreId, LegId, LegStats as MediaStats};
    use chorus_signaling::sdp::Codec;
    use chorus_signaling::ua::EndReason as CallEnd;

    use super::*;
    use crate::cdr::{Answered, CHECKPOINT_EVERY, REMOVAL_WAIT, Recorder};
    use crate::conference::{CallInfo, ConferenceInfo, ConferenceService, Output};
    use crate::directory::tests::scratch;
    use crate::directory::{CdrFilter, UnixMs};

    /// What `sip::run` does with the service's outputs that concern the records; true if the
    /// service asked the directory about a conference.
    fn route(service: &mut ConferenceService, recorder: &mut Recorder, now: Instant) -> bool {
        let mut lookup = false;
        while let Some(out) = service.poll_output() {
            lookup |= matches!(out, Output::Lookup { .. });
            recorder.observe(now, &out);
        }
        lookup
    }

    /// Two callers dial conference 4711 directly (no PIN), talk, and hang up: the conference
    /// service's events, through the recorder and the writer thread, leave two closed leg rows
    /// in the conference and one closed conference row.
    #[test]
    fn a_conference_leaves_its_records_in_the_database() {
        let data = scratch("cdr-writer");
        let t0 = Instant::now();
        let wall = UnixMs(1_700_000_000_000);
        let mut writer = Writer::start(crate::directory::Directory::open(&data).unwrap(), 64)
            .expect("writer thread");
        let mut recorder = Recorder::new(t0, wall, CHECKPOINT_EVERY, REMOVAL_WAIT);
        let mut service = ConferenceService::new(Default::default(), PromptSet::embedded());
        let room = ConferenceInfo {
            id: "4711".into(),
            ..ConferenceInfo::default()
        };
        for n in 1..=2u32 {
            let call_id = format!("call-{n}");
            let at = t0 + Duration::from_secs(u64::from(n));
            recorder.call_answered(
                at,
                Answered {
                    call_id: call_id.clone(),
                    leg: LegId(n),
                    core: CoreId(0),
                    caller: format!("sip:caller{n}@example.test"),
                    source: ([127, 0, 0, 1], 5060).into(),
                    media: Some((Codec::Opus, None)),
                },
            );
            service.call_started(
                at,
                CallInfo {
                    call_id: call_id.clone(),
                    leg: LegId(n),
                    core: CoreId(0),
                    user: "4711".into(),
                    source: [127, 0, 0, 1].into(),
                },
            );
            // The first caller's conference is looked up; the second joins the live room.
            if route(&mut service, &mut recorder, at) {
                service.lookup_result(at, &call_id, Some(room.clone()));
                route(&mut service, &mut recorder, at);
            }
        }
        assert_eq!(service.members("4711"), 2);
        for n in 1..=2u32 {
            let call_id = format!("call-{n}");
            let at = t0 + Duration::from_secs(60 + u64::from(n));
            recorder.call_ended(at, &call_id, CallEnd::RemoteBye);
            service.call_ended(&call_id);
            assert!(!route(&mut service, &mut recorder, at));
            let stats = MediaStats {
                rtp_in: 3000,
                rtp_out: 2990,
                jitter_us: 1_200,
                ..MediaStats::default()
            };
            recorder.leg_removed(LegId(n), &stats);
        }
        while let Some(w) = recorder.poll_write() {
            writer.submit(w);
        }
        let report = writer.finish();
        assert_eq!(report.failed, 0);
        assert_eq!(writer.dropped(), 0);

        let d = crate::directory::Directory::open(&data).unwrap();
        let legs = d.cdr_legs(&CdrFilter::default()).unwrap();
        assert_eq!(legs.len(), 2);
        for leg in &legs {
            assert_eq!(leg.conference.as_deref(), Some("4711"));
            assert_eq!(leg.role, "participant");
            assert_eq!(leg.codec, "opus");
            assert_eq!(leg.end_reason.as_deref(), Some("caller-hangup"));
            assert_eq!(leg.stats.packets_in, 3000);
            assert_eq!(leg.stats.jitter_ms, 1.2);
            assert!(leg.mos.is_some_and(|m| m > 4.0), "{:?}", leg.mos);
            assert_eq!(leg.duration_s(), Some(60.0));
        }
        let confs = d.cdr_conferences(&CdrFilter::default()).unwrap();
        assert_eq!(confs.len(), 1);
        let c = &confs[0];
        assert_eq!(c.conference, "4711");
        assert_eq!(c.started_at, UnixMs(wall.0 + 1_000));
        assert_eq!(c.ended_at, Some(UnixMs(wall.0 + 62_000)));
        assert_eq!(c.max_participants_seen, 2);
        assert_eq!(c.participants_total, 2);
        assert_eq!(c.end_reason.as_deref(), Some("conference-ended"));
        let _ = std::fs::remove_dir_all(data);
    }

    /// A full queue drops writes (counted) instead of blocking, and the records that lost
    /// their start fail alone.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let data = scratch("cdr-writer-full");
        let dir = crate::directory::Directory::open(&data).unwrap();
        // Hold the database so the thread stalls on its first batch while we fill the queue.
        let blocker = rusqlite::Connection::open(dir.path()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut writer = Writer::start(dir, 2).unwrap();
        let now = Instant::now();
        let mut recorder = Recorder::new(now, UnixMs(0), CHECKPOINT_EVERY, REMOVAL_WAIT);
        for n in 1..=20u32 {
            recorder.call_answered(
                now,
                Answered {
                    call_id: format!("c{n}"),
                    leg: LegId(n),
                    core: CoreId(0),
                    caller: String::new(),
                    source: ([127, 0, 0, 1], 5060).into(),
                    media: None,
                },
            );
        }
        let started = Instant::now();
        while let Some(w) = recorder.poll_write() {
            writer.submit(w);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "submit blocked");
        assert!(writer.dropped() >= 15, "{}", writer.dropped());
        blocker.execute_batch("COMMIT").unwrap();
        let report = writer.finish();
        assert_eq!(report.written + writer.dropped(), 20);
        let _ = std::fs::remove_dir_all(data);
    }
}
