//! An adaptive jitter buffer for one incoming audio stream.
//!
//! The packet path calls [`JitterBuffer::push`] (or [`JitterBuffer::push_comfort_noise`] for an
//! RFC 3389 CN packet) with each packet's arrival `Instant`; the mixer calls
//! [`JitterBuffer::tick`] once per tick and then [`JitterBuffer::pop`] until it returns `None`.
//! Sans-IO: every time is an argument, nothing reads a clock.
//!
//! # The pieces of a tick
//!
//! A tick asks for `frame_ms` of media. The pieces `pop` hands out cover it, each with its
//! length in samples of the RTP clock:
//!
//! - [`Playout::Frame`]: a packet to decode. Its `samples` is the stream's packet duration
//!   (a 30 ms packet in a 20 ms tick covers a tick and a half; the next tick then asks for less,
//!   and every third tick asks for nothing). With 10 ms packets a 20 ms tick gets two frames.
//! - [`Playout::Lost`]: a gap to conceal (decoder PLC).
//! - [`Playout::Silence`]: the sender is silent (DTX, silence suppression, an RFC 3389 CN
//!   packet, whose payload comes along): play nothing or comfort noise, do not conceal.
//! - [`Playout::Empty`]: nothing started yet (buffering).
//!
//! The intended mixer loop decodes into a PCM FIFO and takes exactly one frame out per tick:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use chorus_engine::mixer::jitter_buffer::{JitterBuffer, JitterConfig, Playout};
//!
//! let mut jb = JitterBuffer::new(JitterConfig::new(8_000, 20)).unwrap();
//! let t0 = Instant::now();
//! let mut fifo: Vec<i16> = Vec::with_capacity(8_000);
//! for tick in 0..10u32 {
//!     let now = t0 + Duration::from_millis(u64::from(tick) * 20);
//!     jb.push(now, tick as u16, tick * 160, tick == 0, &[0xff; 160]);
//!     jb.tick(now);
//!     while let Some(piece) = jb.pop() {
//!         match piece {
//!             Playout::Frame { payload, .. } => fifo.extend(payload.iter().map(|_| 0i16)),
//!             Playout::Lost { samples } => fifo.extend((0..samples).map(|_| 0i16)), // conceal
//!             Playout::Silence { samples, .. } | Playout::Empty { samples } => {
//!                 fifo.extend((0..samples).map(|_| 0i16))
//!             }
//!         }
//!     }
//!     let take = fifo.len().min(160);
//!     fifo.drain(..take); // mix these 160 samples
//! }
//! assert!(jb.stats().talkspurts == 1);
//! ```
//!
//! # Time
//!
//! Arrival instants are turned into RTP clock units since the first instant seen. A packet's
//! *transit* is its arrival in those units minus its (extended) timestamp; the smallest
//! transit in the window stands for the network's fixed delay, and a packet's *lateness* is
//! its transit minus that minimum. Playout runs on a media clock `due`: each tick advances it
//! by one frame, so a talkspurt plays at a constant offset from the sender's clock. The
//! *playout delay* is how long after its earliest possible arrival a packet plays:
//! `now - min_transit - due`.
//!
//! # Delay estimate (the numbers)
//!
//! - The last 256 transit times (5 s of 20 ms packets) sit in a ring. Every 16 accepted packets
//!   the ring is copied into a scratch array of the same size (owned, no allocation) and the
//!   95th percentile of lateness is selected (`select_nth_unstable`, linear).
//! - `target = clamp(p95 lateness + frame_ms, min_delay_ms, max_delay_ms)`; before 16 packets,
//!   `initial_delay_ms`. Defaults: 20 ..= 200 ms, initial 40 ms. The extra frame covers the
//!   tick grid: a packet that arrives just after a tick waits for the next one.
//!
//! # Adaptation
//!
//! - **Talkspurt start** (the first packet, or the first after silence): the packet waits
//!   until its playout delay reaches `target`, then plays; the tick it plays in fixes the
//!   talkspurt's offset. This is where the delay follows the estimate both ways. If several
//!   packets are already overdue (a burst after a network freeze), the older ones are dropped
//!   as late so the burst is not played out as a long delay.
//! - **Growing mid-talkspurt** (stretch): when this tick's packet is missing and the playout
//!   delay is below `target`, the tick gets `Lost` (one frame of concealment) without
//!   consuming media time, so the delay grows by a frame and the packet, if it is only late,
//!   still plays. Counted in `stretched_frames` (and `lost_frames`).
//! - **Shrinking mid-talkspurt** (drop): when the playout delay exceeds
//!   `target + max(40 ms, 2 frames, target / 2)`, one due packet is dropped, at most one every 10
//!   ticks (200 ms at 20 ms). Counted in `shrink_drops`. Skipped mixer ticks show up here.
//!   While the caller reports the stream quiet (`set_quiet`: the decoded level has been low
//!   for a few ticks), more than one frame above target is enough: a stream that never pauses
//!   (silent frames instead of CN or DTX) would otherwise keep its start delay forever, and
//!   a frame of silence dropped is not heard.
//!
//! # Loss or silence
//!
//! When the media due has no packet: if packets before it are missing (a gap in sequence
//! numbers), or nothing later has arrived, the tick gets `Lost`, for at most
//! `silence_after_ms` (default 60 ms) in a row. After that, and at once when a CN packet is
//! played, a timestamp gap arrives without any sequence gap (DTX: the sender sent nothing), or
//! the next packet carries the marker bit, the stream is *silent*: `Silence` until a packet
//! starts the next talkspurt. So a sender that stops without CN gets at most 60 ms of
//! concealment (at the moment it stops, that is indistinguishable from loss), never seconds
//! of it, and the resumed talkspurt starts at `target` delay, without a burst.
//!
//! # Packets
//!
//! - Sequence numbers and timestamps are extended by [`SeqNoUnwrapper`] and
//!   [`TimestampUnwrapper`] (started in cycle 1, so a packet from before the first one still
//!   maps below it).
//! - Reordering: a packet slots in by sequence number while its media time has not played.
//!   Late: a packet whose media time was played or skipped is dropped (`late`), never
//!   replayed. Duplicates of buffered or recently played packets (64) are counted and
//!   ignored.
//! - Jumps: a packet more than 100 behind or 3,000 ahead in sequence, or whose transit differs
//!   from the minimum by more than 1 s (a sender restarting its clock, a new SSRC behind a
//!   gateway), is held (`Jump`). If the next packet follows it (1..=8 sequence numbers, 0..=1 s
//!   of timestamp later) the stream is *rebased*: later packets are renumbered so the new
//!   timeline continues where the buffered audio ends (or at the on-time position, whichever is
//!   later), and playout goes on without a flush, burst or stall (`Resynced`). Otherwise the
//!   held packet was a stray and is forgotten.
//! - Memory: a ring of `capacity_packets` slots (default 64) indexed by sequence number, one
//!   more slot for a held jump, and one payload arena of `(capacity + 1) * stride` bytes. The
//!   stride grows to the largest payload seen (powers of two from 64 bytes, capped at
//!   `max_payload_bytes`, default 1,500), so it is reallocated at most six times over a
//!   stream's life and never in steady state. A packet more than `capacity` ahead of the
//!   playout point evicts the oldest packets (`Overflow`); larger payloads are refused
//!   (`TooLarge`).
//! - CN (RFC 3389): the caller classifies by payload type and calls
//!   [`JitterBuffer::push_comfort_noise`]. A CN packet occupies its sequence number like
//!   audio; when its media time comes the stream turns silent and `Silence` carries its
//!   payload (noise level and spectrum, first 64 bytes) until the next talkspurt.

use std::time::Instant;

use crate::rtp::{MAX_DROPOUT, MAX_MISORDER, SeqNo, SeqNoUnwrapper, TimestampUnwrapper};

/// Transit-time samples the delay estimate looks at (5 s of 20 ms packets).
const WINDOW: usize = 256;
/// Accepted packets between two recomputations of the delay estimate.
const ESTIMATE_EVERY: u32 = 16;
/// Transit samples needed before the estimate replaces the initial delay.
const MIN_SAMPLES: usize = 16;
/// The percentile of lateness the target delay covers.
const PERCENTILE: usize = 95;
/// A transit time this far from the minimum is a jump in the sender's timeline, not jitter.
const RESYNC_MS: u32 = 1_000;
/// How many sequence numbers past a held jump the next packet may be to confirm it.
const CONFIRM_SEQ: u16 = 8;
/// Ticks between two frames dropped to shrink an over-long delay.
const SHRINK_EVERY_TICKS: u32 = 10;
/// The least excess of delay over target that makes a talkspurt drop a frame.
const SHRINK_SLACK_MS: u32 = 40;
/// The longest packet duration believed from a timestamp step between consecutive packets.
const MAX_PTIME_MS: u32 = 120;
/// Bytes of an RFC 3389 comfort-noise payload kept.
const CN_MAX_BYTES: usize = 64;
/// The smallest payload stride.
const MIN_STRIDE: usize = 64;
/// Sequence numbers behind the playout point whose playout the duplicate check remembers.
const PLAYED_BITS: u64 = 64;
/// The extended sequence number the first wire value maps to is in this cycle.
const FIRST_SEQ_CYCLE: u64 = 1;
/// Timestamps start in the second 32-bit cycle, for the same reason.
const FIRST_TS_BASE: u64 = 1 << 32;

/// Settings of one jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream in Hz (8,000 for G.711, 48,000 for Opus).
    pub clock_rate: u32,
    /// The mixer tick in ms (20 or 10): how much media each tick asks for.
    pub frame_ms: u32,
    /// The smallest target playout delay, ms.
    pub min_delay_ms: u32,
    /// The largest target playout delay, ms.
    pub max_delay_ms: u32,
    /// The target before the estimate has enough packets, ms.
    pub initial_delay_ms: u32,
    /// Packet slots; bounds memory and how far ahead of playout a packet may be.
    pub capacity_packets: u16,
    /// Payloads longer than this are refused (`TooLarge`).
    pub max_payload_bytes: u16,
    /// The longest run of concealment before an unexplained gap is taken as silence, ms.
    pub silence_after_ms: u32,
}

impl JitterConfig {
    /// Defaults for a stream at `clock_rate` Hz mixed every `frame_ms` ms: delay 20 ..= 200 ms
    /// starting at 40 ms, 64 slots, payloads up to 1,500 bytes, silence after 60 ms.
    pub fn new(clock_rate: u32, frame_ms: u32) -> Self {
        Self {
            clock_rate,
            frame_ms,
            min_delay_ms: 20,
            max_delay_ms: 200,
            initial_delay_ms: 40,
            capacity_packets: 64,
            max_payload_bytes: 1_500,
            silence_after_ms: 60,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    /// The clock rate (1..=384,000 Hz) and tick (1..=100 ms) give no whole number of samples.
    #[error("a {frame_ms} ms frame at {clock_rate} Hz is not a whole number of samples")]
    Frame {
        /// The configured clock rate.
        clock_rate: u32,
        /// The configured tick.
        frame_ms: u32,
    },
    /// The delays are not ordered `min <= initial <= max <= 2000` ms.
    #[error("delays must satisfy min {min_ms} <= initial {initial_ms} <= max {max_ms} <= 2000 ms")]
    Delays {
        /// The configured minimum.
        min_ms: u32,
        /// The configured initial delay.
        initial_ms: u32,
        /// The configured maximum.
        max_ms: u32,
    },
    /// The capacity is outside 2..=4,096 packets.
    #[error("capacity of {0} packets is outside 2..=4096")]
    Capacity(u16),
    /// The largest payload is zero bytes.
    #[error("the largest payload must be at least one byte")]
    MaxPayload,
}

/// What became of one pushed packet (for counters; all are also counted in [`JitterStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Accepted,
    /// Stored; it was more than `capacity` ahead, so the oldest packets were evicted.
    Overflow,
    /// Already buffered or recently played: ignored.
    Duplicate,
    /// Its media time has already been played or skipped: dropped.
    TooLate,
    /// Longer than `max_payload_bytes`: dropped.
    TooLarge,
    /// A jump in sequence number or timestamp: held until the next packet confirms it.
    Jump,
    /// It confirmed a held jump: the stream was rebased and both packets stored.
    Resynced,
}

/// One piece of the media a tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// A packet to decode.
    Frame {
        /// The payload, valid until the next call on the buffer.
        payload: &'a [u8],
        /// Its RTP timestamp as received.
        timestamp: u32,
        /// The media it covers, in samples of the RTP clock (the stream's packet duration).
        samples: u32,
    },
    /// Media that should have been there: conceal this many samples.
    Lost {
        /// Samples to conceal.
        samples: u32,
    },
    /// The sender is silent: play silence or comfort noise, not concealment.
    Silence {
        /// Samples of silence.
        samples: u32,
        /// The last RFC 3389 CN payload, when a CN packet announced the silence.
        comfort_noise: Option<&'a [u8]>,
    },
    /// Nothing to play yet: the stream has not started.
    Empty {
        /// Samples of nothing.
        samples: u32,
    },
}

/// Counters and the current delays of one buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// The playout delay the buffer aims at, ms.
    pub target_delay_ms: u32,
    /// The playout delay of the current talkspurt at the last tick, ms.
    pub playout_delay_ms: u32,
    /// Media buffered ahead of the playout point, ms.
    pub buffered_ms: u32,
    /// Packets buffered.
    pub buffered_packets: u32,
    /// The 95th percentile of lateness over the window, ms.
    pub jitter_ms: u32,
    /// Packets stored (`Accepted`, `Overflow`, and both of a `Resynced` pair).
    pub accepted: u64,
    /// Packets dropped because their media time had played.
    pub late: u64,
    /// Duplicates ignored.
    pub duplicate: u64,
    /// Packets evicted by a packet too far ahead.
    pub overflow: u64,
    /// Payloads refused as too large.
    pub too_large: u64,
    /// Packets held as jumps.
    pub jumps: u64,
    /// Rebases onto a new timeline.
    pub resyncs: u64,
    /// `Lost` pieces handed out.
    pub lost_frames: u64,
    /// Samples of concealment handed out.
    pub concealed_samples: u64,
    /// `Lost` pieces that grew the delay instead of skipping media.
    pub stretched_frames: u64,
    /// Packets dropped to shrink the delay.
    pub shrink_drops: u64,
    /// `Silence` pieces handed out.
    pub silence_frames: u64,
    /// Talkspurts started.
    pub talkspurts: u64,
}

/// One buffered packet's metadata; its payload is in the arena at `index * stride`.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    ts: u64,
    wire_ts: u32,
    len: u16,
    used: bool,
    marker: bool,
    cn: bool,
}

/// A packet as pushed.
#[derive(Debug, Clone, Copy)]
struct Incoming {
    seq: u16,
    ts: u32,
    marker: bool,
    cn: bool,
}

/// A jump held until the next packet confirms it; its payload is in the last slot.
#[derive(Debug, Clone, Copy)]
struct Held {
    packet: Incoming,
    len: u16,
    arrival: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing played yet.
    Buffering,
    /// A talkspurt is playing.
    Playing,
    /// The sender is silent; `cn` when a CN packet said so.
    Silent { cn: bool },
}

/// What the rest of the current tick hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickState {
    Done,
    Empty,
    Silence,
    Stretch,
    Media,
}

/// An adaptive jitter buffer for one incoming audio stream. See the module page.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Samples per tick.
    frame: u64,
    cap: u64,
    /// `cap` ring slots, then the slot of a held jump.
    slots: Vec<Slot>,
    payloads: Vec<u8>,
    stride: usize,
    started: bool,
    seq_unwrap: SeqNoUnwrapper,
    ts_unwrap: TimestampUnwrapper,
    /// Added to unwrapped values after a rebase.
    seq_shift: i64,
    ts_shift: i64,
    highest_seq: u64,
    /// Timestamp of the packet with the highest sequence number.
    highest_ts: u64,
    /// The sequence number the next played packet may have; lower ones are late.
    next_seq: u64,
    consumed_any: bool,
    /// Bit i: sequence number `next_seq - 1 - i` was played.
    played_mask: u64,
    held: Option<Held>,
    epoch: Option<Instant>,
    transits: Box<[i64; WINDOW]>,
    scratch: Box<[i64; WINDOW]>,
    transit_count: usize,
    transit_pos: usize,
    since_estimate: u32,
    /// The smallest transit in the window (`i64::MAX` before the first packet).
    min_transit: i64,
    spread: u64,
    target: u64,
    /// The stream's packet duration in samples.
    ptime: u64,
    ptime_candidate: u64,
    ptime_confirmed: bool,
    mode: Mode,
    tick_state: TickState,
    /// Media time of the next sample to hand out.
    cursor: u64,
    /// Media time the current tick is covered up to.
    due: u64,
    /// Samples concealed in a row.
    stall: u64,
    ticks_since_shrink: u32,
    /// The stream has been quiet for a while (`set_quiet`): a frame may be dropped to bring
    /// the delay down to target, where nobody hears it.
    quiet: bool,
    delay: i64,
    cn: [u8; CN_MAX_BYTES],
    cn_len: usize,
    stats: JitterStats,
}

/// Converts, saturating: values here stay far below 2^63.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl JitterBuffer {
    /// A buffer for one stream; `Err` for an inconsistent configuration.
    pub fn new(cfg: JitterConfig) -> Result<Self, JitterError> {
        let samples = u64::from(cfg.clock_rate) * u64::from(cfg.frame_ms);
        if !(1..=384_000).contains(&cfg.clock_rate)
            || !(1..=100).contains(&cfg.frame_ms)
            || samples % 1_000 != 0
        {
            return Err(JitterError::Frame {
                clock_rate: cfg.clock_rate,
                frame_ms: cfg.frame_ms,
            });
        }
        if !(cfg.min_delay_ms <= cfg.initial_delay_ms
            && cfg.initial_delay_ms <= cfg.max_delay_ms
            && cfg.max_delay_ms <= 2_000)
        {
            return Err(JitterError::Delays {
                min_ms: cfg.min_delay_ms,
                initial_ms: cfg.initial_delay_ms,
                max_ms: cfg.max_delay_ms,
            });
        }
        if !(2..=4_096).contains(&cfg.capacity_packets) {
            return Err(JitterError::Capacity(cfg.capacity_packets));
        }
        if cfg.max_payload_bytes == 0 {
            return Err(JitterError::MaxPayload);
        }
        let cap = u64::from(cfg.capacity_packets);
        let frame = samples / 1_000;
        let mut jb = Self {
            cfg,
            frame,
            cap,
            slots: vec![Slot::default(); usize::from(cfg.capacity_packets) + 1],
            payloads: Vec::new(),
            stride: 0,
            started: false,
            seq_unwrap: SeqNoUnwrapper::new(),
            ts_unwrap: TimestampUnwrapper::new(),
            seq_shift: 0,
            ts_shift: 0,
            highest_seq: 0,
            highest_ts: 0,
            next_seq: 0,
            consumed_any: false,
            played_mask: 0,
            held: None,
            epoch: None,
            transits: Box::new([0; WINDOW]),
            scratch: Box::new([0; WINDOW]),
            transit_count: 0,
            transit_pos: 0,
            since_estimate: 0,
            min_transit: i64::MAX,
            spread: 0,
            target: 0,
            ptime: frame,
            ptime_candidate: 0,
            ptime_confirmed: false,
            mode: Mode::Buffering,
            tick_state: TickState::Done,
            cursor: 0,
            due: 0,
            stall: 0,
            ticks_since_shrink: 0,
            quiet: false,
            delay: 0,
            cn: [0; CN_MAX_BYTES],
            cn_len: 0,
            stats: JitterStats::default(),
        };
        jb.target = jb.samples(cfg.initial_delay_ms);
        Ok(jb)
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Samples of the RTP clock per tick.
    pub fn frame_samples(&self) -> u32 {
        u32::try_from(self.frame).unwrap_or(u32::MAX)
    }

    /// Bytes this buffer holds on the heap.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.payloads.capacity()
            + 2 * WINDOW * std::mem::size_of::<i64>()
    }

    fn samples(&self, ms: u32) -> u64 {
        u64::from(ms) * u64::from(self.cfg.clock_rate) / 1_000
    }

    fn ms(&self, samples: u64) -> u32 {
        u32::try_from(samples.saturating_mul(1_000) / u64::from(self.cfg.clock_rate))
            .unwrap_or(u32::MAX)
    }

    /// `now` in RTP clock units since the first instant this buffer saw.
    fn media_now(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        i64::try_from(nanos * u128::from(self.cfg.clock_rate) / 1_000_000_000).unwrap_or(i64::MAX)
    }

    /// Stores an audio packet that arrived at `now`.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        let packet = Incoming {
            seq,
            ts: timestamp,
            marker,
            cn: false,
        };
        self.push_packet(now, packet, payload)
    }

    /// Stores an RFC 3389 comfort-noise packet that arrived at `now`: when its media time
    /// comes, the stream is silent (no concealment) and `Silence` carries this payload.
    pub fn push_comfort_noise(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
    ) -> PushOutcome {
        let packet = Incoming {
            seq,
            ts: timestamp,
            marker: false,
            cn: true,
        };
        self.push_packet(now, packet, payload)
    }

    /// Forgets the stream (a new source that signalling announced): buffered packets are
    /// dropped, the delay estimate and the counters are kept.
    pub fn reset(&mut self) {
        for slot in &mut self.slots {
            slot.used = false;
        }
        self.started = false;
        self.held = None;
        self.consumed_any = false;
        self.played_mask = 0;
        self.transit_count = 0;
        self.transit_pos = 0;
        self.since_estimate = 0;
        self.min_transit = i64::MAX;
        self.mode = Mode::Buffering;
        self.tick_state = TickState::Done;
        self.stall = 0;
    }

    fn push_packet(&mut self, now: Instant, packet: Incoming, payload: &[u8]) -> PushOutcome {
        if payload.len() > usize::from(self.cfg.max_payload_bytes) {
            self.stats.too_large += 1;
            return PushOutcome::TooLarge;
        }
        let arrival = self.media_now(now);
        if !self.started {
            self.start_stream(packet);
        }
        let (seq, ts) = self.extend_peek(packet);
        let transit = arrival.saturating_sub(signed(ts));
        if !(self.seq_fits(seq) && self.transit_fits(transit)) {
            if let Some(held) = self
                .held
                .filter(|h| confirms(h.packet, packet, self.cfg.clock_rate))
            {
                self.held = None;
                self.rebase(held);
                let (seq, ts) = self.extend_peek(held.packet);
                let transit = held.arrival.saturating_sub(signed(ts));
                if let Ok((idx, _)) = self.place(held.packet, seq, ts, transit) {
                    let len = usize::from(held.len);
                    let from = self.held_index() * self.stride;
                    self.payloads
                        .copy_within(from..from + len, idx * self.stride);
                    self.slots[idx].len = held.len;
                }
                self.stats.resyncs += 1;
                let (seq, ts) = self.extend_peek(packet);
                let transit = arrival.saturating_sub(signed(ts));
                self.store(packet, seq, ts, transit, payload);
                return PushOutcome::Resynced;
            }
            self.ensure_stride(payload.len());
            let at = self.held_index() * self.stride;
            // INVARIANT: ensure_stride made every slot, the held one included, hold the payload.
            self.payloads[at..at + payload.len()].copy_from_slice(payload);
            self.held = Some(Held {
                packet,
                // INVARIANT: len <= max_payload_bytes, a u16 (checked above).
                len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
                arrival,
            });
            self.stats.jumps += 1;
            return PushOutcome::Jump;
        }
        self.held = None;
        self.store(packet, seq, ts, transit, payload)
    }

    fn held_index(&self) -> usize {
        self.slots.len() - 1
    }

    fn start_stream(&mut self, packet: Incoming) {
        self.seq_unwrap =
            SeqNoUnwrapper::starting_at(SeqNo::from_parts(FIRST_SEQ_CYCLE, packet.seq));
        self.ts_unwrap = TimestampUnwrapper::starting_at(FIRST_TS_BASE | u64::from(packet.ts));
        self.seq_shift = 0;
        self.ts_shift = 0;
        let (seq, ts) = self.extend_peek(packet);
        self.highest_seq = seq;
        self.highest_ts = ts;
        self.next_seq = seq;
        self.started = true;
    }

    /// The extended (and rebased) sequence number and timestamp of a packet.
    fn extend_peek(&self, packet: Incoming) -> (u64, u64) {
        let seq = self.seq_unwrap.peek(packet.seq).0;
        let ts = self.ts_unwrap.peek(packet.ts);
        (
            seq.saturating_add_signed(self.seq_shift),
            ts.saturating_add_signed(self.ts_shift),
        )
    }

    fn seq_fits(&self, seq: u64) -> bool {
        seq.saturating_add(u64::from(MAX_MISORDER)) >= self.highest_seq
            && seq <= self.highest_seq.saturating_add(u64::from(MAX_DROPOUT))
    }

    fn transit_fits(&self, transit: i64) -> bool {
        self.min_transit == i64::MAX
            || transit.abs_diff(self.min_transit) <= self.samples(RESYNC_MS)
    }

    /// Renumbers the stream so that the held packet continues it.
    fn rebase(&mut self, held: Held) {
        let (old_seq, old_ts) = self.extend_peek(held.packet);
        let transit = held.arrival.saturating_sub(signed(old_ts));
        let seq = if self.seq_fits(old_seq) {
            old_seq
        } else {
            self.highest_seq.saturating_add(1)
        };
        let ts = if self.transit_fits(transit) {
            old_ts
        } else {
            let continuity = self.highest_ts.saturating_add(self.ptime);
            let on_time = if self.min_transit == i64::MAX {
                continuity
            } else {
                u64::try_from(held.arrival.saturating_sub(self.min_transit)).unwrap_or(0)
            };
            continuity.max(on_time)
        };
        let base_seq = SeqNo::from_parts(FIRST_SEQ_CYCLE, held.packet.seq);
        let base_ts = FIRST_TS_BASE | u64::from(held.packet.ts);
        self.seq_unwrap = SeqNoUnwrapper::starting_at(base_seq);
        self.ts_unwrap = TimestampUnwrapper::starting_at(base_ts);
        self.seq_shift = signed(seq).saturating_sub(signed(base_seq.0));
        self.ts_shift = signed(ts).saturating_sub(signed(base_ts));
    }

    fn store(
        &mut self,
        packet: Incoming,
        seq: u64,
        ts: u64,
        transit: i64,
        payload: &[u8],
    ) -> PushOutcome {
        match self.place(packet, seq, ts, transit) {
            Ok((idx, outcome)) => {
                self.ensure_stride(payload.len());
                let at = idx * self.stride;
                // INVARIANT: idx < slots.len() and the stride now holds the payload.
                self.payloads[at..at + payload.len()].copy_from_slice(payload);
                // INVARIANT: len <= max_payload_bytes, a u16 (checked by push_packet).
                self.slots[idx].len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
                outcome
            }
            Err(outcome) => outcome,
        }
    }

    /// Finds the slot for a packet and records its metadata; the caller copies the payload.
    fn place(
        &mut self,
        packet: Incoming,
        seq: u64,
        ts: u64,
        transit: i64,
    ) -> Result<(usize, PushOutcome), PushOutcome> {
        self.seq_unwrap.extend(packet.seq);
        self.ts_unwrap.extend(packet.ts);
        if seq < self.next_seq {
            let behind = self.next_seq - seq;
            if self.mode == Mode::Buffering
                && !self.consumed_any
                && self.highest_seq - seq < self.cap
            {
                // Reordered before anything played: the stream starts earlier.
                self.next_seq = seq;
            } else if behind <= PLAYED_BITS && self.played_mask & (1 << (behind - 1)) != 0 {
                self.stats.duplicate += 1;
                return Err(PushOutcome::Duplicate);
            } else {
                self.stats.late += 1;
                return Err(PushOutcome::TooLate);
            }
        }
        if self.mode != Mode::Buffering && ts.saturating_add(self.ptime) <= self.cursor {
            self.stats.late += 1;
            return Err(PushOutcome::TooLate);
        }
        let mut outcome = PushOutcome::Accepted;
        if seq >= self.next_seq.saturating_add(self.cap) {
            let new_next = seq.saturating_add(1) - self.cap;
            for s in self.next_seq..new_next.min(self.next_seq.saturating_add(self.cap)) {
                let i = (s % self.cap) as usize;
                if self.slots[i].used && self.slots[i].seq == s {
                    self.slots[i].used = false;
                    self.stats.overflow += 1;
                }
            }
            self.advance_next(new_next, false);
            outcome = PushOutcome::Overflow;
        }
        // INVARIANT: the residue is below cap, and slots has cap + 1 entries.
        let idx = (seq % self.cap) as usize;
        let slot = &mut self.slots[idx];
        if slot.used && slot.seq == seq {
            self.stats.duplicate += 1;
            return Err(PushOutcome::Duplicate);
        }
        // A used slot with another number cannot occur: used slots hold next_seq..next_seq+cap.
        *slot = Slot {
            seq,
            ts,
            wire_ts: packet.ts,
            len: 0,
            used: true,
            marker: packet.marker,
            cn: packet.cn,
        };
        if seq > self.highest_seq {
            if seq == self.highest_seq.saturating_add(1) && ts > self.highest_ts {
                self.learn_ptime(ts - self.highest_ts);
            }
            self.highest_seq = seq;
            self.highest_ts = ts;
        }
        self.record_transit(transit);
        self.stats.accepted += 1;
        Ok((idx, outcome))
    }

    /// Takes the timestamp step between consecutive packets as the packet duration once it
    /// was seen twice in a row (the first step is believed until then).
    fn learn_ptime(&mut self, step: u64) {
        if step > self.samples(MAX_PTIME_MS) {
            return;
        }
        if step == self.ptime_candidate {
            self.ptime = step;
            self.ptime_confirmed = true;
        } else if !self.ptime_confirmed {
            self.ptime = step;
        }
        self.ptime_candidate = step;
    }

    /// Grows the payload stride to hold `len` bytes, keeping the stored payloads.
    fn ensure_stride(&mut self, len: usize) {
        if len <= self.stride {
            return;
        }
        let max = usize::from(self.cfg.max_payload_bytes);
        let stride = len.next_power_of_two().max(MIN_STRIDE).min(max).max(len);
        let mut payloads = vec![0u8; self.slots.len() * stride];
        if self.stride > 0 {
            for (old, new) in self
                .payloads
                .chunks_exact(self.stride)
                .zip(payloads.chunks_exact_mut(stride))
            {
                new[..self.stride].copy_from_slice(old);
            }
        }
        self.payloads = payloads;
        self.stride = stride;
    }

    fn record_transit(&mut self, transit: i64) {
        // INVARIANT: transit_pos is kept below WINDOW, the ring's length.
        self.transits[self.transit_pos] = transit;
        self.transit_pos = (self.transit_pos + 1) % WINDOW;
        self.transit_count = (self.transit_count + 1).min(WINDOW);
        self.min_transit = self.min_transit.min(transit);
        self.since_estimate += 1;
        if self.since_estimate >= ESTIMATE_EVERY {
            self.estimate();
        }
    }

    /// Recomputes the minimum transit, the 95th percentile of lateness and the target.
    fn estimate(&mut self) {
        self.since_estimate = 0;
        let n = self.transit_count;
        // INVARIANT: transit_count <= WINDOW, both arrays' length.
        let window = &mut self.scratch[..n];
        window.copy_from_slice(&self.transits[..n]);
        let Some(&min) = window.iter().min() else {
            return;
        };
        self.min_transit = min;
        if n < MIN_SAMPLES {
            return;
        }
        let (_, &mut p, _) = window.select_nth_unstable((n - 1) * PERCENTILE / 100);
        self.spread = u64::try_from(p.saturating_sub(min)).unwrap_or(0);
        let lo = self.samples(self.cfg.min_delay_ms);
        let hi = self.samples(self.cfg.max_delay_ms);
        self.target = (self.spread + self.frame).clamp(lo, hi);
    }

    /// The buffered packet with the lowest sequence number at or after `next_seq`.
    fn head(&self) -> Option<usize> {
        self.after(self.next_seq)
    }

    /// The buffered packet with the lowest sequence number at or after `from`.
    fn after(&self, from: u64) -> Option<usize> {
        let end = self
            .highest_seq
            .saturating_add(1)
            .min(self.next_seq.saturating_add(self.cap));
        (from..end)
            .map(|s| ((s % self.cap) as usize, s))
            .find(|&(i, s)| self.slots[i].used && self.slots[i].seq == s)
            .map(|(i, _)| i)
    }

    fn advance_next(&mut self, new_next: u64, played: bool) {
        let step = new_next.saturating_sub(self.next_seq);
        if step == 0 {
            return;
        }
        self.played_mask = if step >= PLAYED_BITS {
            0
        } else {
            self.played_mask << step
        };
        if played {
            self.played_mask |= 1;
        }
        self.next_seq = new_next;
    }

    /// Removes a packet from the ring, moving the playout point past it.
    fn consume(&mut self, idx: usize, played: bool) -> Slot {
        // INVARIANT: callers pass an index from head/after, below cap.
        let slot = self.slots[idx];
        self.slots[idx].used = false;
        self.consumed_any = true;
        self.advance_next(slot.seq.saturating_add(1), played);
        slot
    }

    fn keep_cn(&mut self, slot: Slot, idx: usize) {
        let len = usize::from(slot.len).min(CN_MAX_BYTES);
        let at = idx * self.stride;
        // INVARIANT: len <= CN_MAX_BYTES and <= the slot's stored length.
        self.cn[..len].copy_from_slice(&self.payloads[at..at + len]);
        self.cn_len = len;
    }

    fn comfort_noise(&self) -> Option<&[u8]> {
        match self.mode {
            Mode::Silent { cn: true } => Some(&self.cn[..self.cn_len]),
            _ => None,
        }
    }

    /// Tells the buffer whether what it played lately was quiet (the caller measures the
    /// decoded level). While quiet, a delay more than a frame above target is shrunk by
    /// dropping a due frame (at most one every `SHRINK_EVERY_TICKS` ticks), so a stream that
    /// never pauses (continuous silence frames, no CN, no DTX) still reaches its target, and
    /// what is dropped is silence.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Starts a tick at `now`: decides what this tick plays. Then call [`Self::pop`] until it
    /// returns `None`.
    pub fn tick(&mut self, now: Instant) {
        let now_media = self.media_now(now);
        self.tick_state = TickState::Done;
        match self.mode {
            Mode::Playing => self.tick_playing(now_media),
            Mode::Buffering | Mode::Silent { .. } => self.tick_waiting(now_media),
        }
    }

    /// How long after its earliest possible arrival media time `ts` plays at `now_media`.
    fn waited(&self, now_media: i64, ts: u64) -> i64 {
        now_media
            .saturating_sub(self.min_transit)
            .saturating_sub(signed(ts))
    }

    fn tick_waiting(&mut self, now_media: i64) {
        // Silent: `cursor` stays where the last talkspurt's media ended; a packet before it
        // belongs to that talkspurt and is late, anything after it starts the next one, however
        // long the silence was (nothing was played in between, so nothing can be late for it).
        let target = signed(self.target);
        while let Some(h) = self.head() {
            let slot = self.slots[h];
            if self.mode != Mode::Buffering && slot.ts.saturating_add(self.ptime) <= self.cursor {
                self.consume(h, false);
                self.stats.late += 1;
                continue;
            }
            if self.waited(now_media, slot.ts) < target {
                break;
            }
            // The next packet was due a tick ago already: this one is overdue (a burst after a
            // network freeze), skip it rather than start the talkspurt with a long delay.
            let later = self
                .after(slot.seq.saturating_add(1))
                .map(|i| self.slots[i].ts);
            if later.is_some_and(|ts| self.waited(now_media, ts) >= target + signed(self.frame)) {
                self.consume(h, false);
                self.stats.late += 1;
                continue;
            }
            if slot.cn {
                self.keep_cn(slot, h);
                self.consume(h, true);
                self.mode = Mode::Silent { cn: true };
                continue;
            }
            self.mode = Mode::Playing;
            self.cursor = slot.ts;
            self.due = slot.ts;
            self.stall = 0;
            self.ticks_since_shrink = 0;
            self.stats.talkspurts += 1;
            self.tick_playing(now_media);
            return;
        }
        self.tick_state = if self.mode == Mode::Buffering {
            TickState::Empty
        } else {
            TickState::Silence
        };
    }

    fn tick_playing(&mut self, now_media: i64) {
        // The rest of a tick the caller did not drain is skipped.
        self.cursor = self.cursor.max(self.due);
        let target = signed(self.target);
        let frame = signed(self.frame);
        self.delay = self.waited(now_media, self.due);
        self.ticks_since_shrink = self.ticks_since_shrink.saturating_add(1);
        let slack = (2 * frame)
            .max(target / 2)
            .max(signed(self.samples(SHRINK_SLACK_MS)));
        let over = self.delay > target + slack || (self.quiet && self.delay > target + frame);
        if over
            && self.ticks_since_shrink >= SHRINK_EVERY_TICKS
            && let Some(h) = self.head()
            && self.slots[h].ts <= self.cursor
            && !self.slots[h].cn
        {
            let slot = self.consume(h, true);
            let end = slot.ts.saturating_add(self.ptime).max(self.cursor);
            self.due += end - self.cursor;
            self.cursor = end;
            self.stats.shrink_drops += 1;
            self.ticks_since_shrink = 0;
        }
        let needs_media = self.cursor < self.due + self.frame;
        let missing = match self.head() {
            None => true,
            Some(h) => self.slots[h].ts > self.cursor && self.slots[h].seq != self.next_seq,
        };
        if needs_media
            && missing
            && self.delay < target
            && self.stall < self.samples(self.cfg.silence_after_ms)
        {
            self.stall += self.frame;
            self.stats.stretched_frames += 1;
            self.tick_state = TickState::Stretch;
            return;
        }
        self.due += self.frame;
        self.tick_state = TickState::Media;
    }

    /// The next piece of this tick's media, `None` once the tick is covered.
    pub fn pop(&mut self) -> Option<Playout<'_>> {
        let samples = self.frame_samples();
        match std::mem::replace(&mut self.tick_state, TickState::Done) {
            TickState::Done => None,
            TickState::Empty => Some(Playout::Empty { samples }),
            TickState::Silence => {
                self.stats.silence_frames += 1;
                Some(Playout::Silence {
                    samples,
                    comfort_noise: self.comfort_noise(),
                })
            }
            TickState::Stretch => {
                self.stats.lost_frames += 1;
                self.stats.concealed_samples += self.frame;
                Some(Playout::Lost { samples })
            }
            TickState::Media => {
                self.tick_state = TickState::Media;
                self.media_piece()
            }
        }
    }

    fn media_piece(&mut self) -> Option<Playout<'_>> {
        loop {
            if self.cursor >= self.due {
                self.tick_state = TickState::Done;
                return None;
            }
            let Some(h) = self.head() else {
                return Some(self.conceal_or_silence(self.due));
            };
            let slot = self.slots[h];
            if slot.ts.saturating_add(self.ptime) <= self.cursor {
                // Its media time went by (concealed) while it was on its way.
                self.consume(h, false);
                self.stats.late += 1;
                continue;
            }
            if slot.ts <= self.cursor {
                self.consume(h, true);
                if slot.cn {
                    self.keep_cn(slot, h);
                    return Some(self.fall_silent(true));
                }
                self.stall = 0;
                self.cursor = self.cursor.max(slot.ts.saturating_add(self.ptime));
                let at = h * self.stride;
                // INVARIANT: the slot's payload was stored at its index with this length.
                return Some(Playout::Frame {
                    payload: &self.payloads[at..at + usize::from(slot.len)],
                    timestamp: slot.wire_ts,
                    samples: u32::try_from(self.ptime).unwrap_or(u32::MAX),
                });
            }
            let until = slot.ts.min(self.due);
            if slot.seq != self.next_seq {
                return Some(self.conceal_or_silence(until));
            }
            // Nothing is missing: the sender sent nothing for this media time.
            // The branches above leave slot.ts > cursor.
            if slot.marker || slot.ts - self.cursor >= self.samples(self.cfg.silence_after_ms) {
                return Some(self.fall_silent(false));
            }
            let samples = until - self.cursor;
            self.cursor = until;
            self.stats.silence_frames += 1;
            return Some(Playout::Silence {
                samples: u32::try_from(samples).unwrap_or(u32::MAX),
                comfort_noise: None,
            });
        }
    }

    /// Conceals up to `until`, or turns silent once `silence_after_ms` was concealed in a row.
    /// Callers guarantee `cursor < until <= due`.
    fn conceal_or_silence(&mut self, until: u64) -> Playout<'static> {
        if self.stall >= self.samples(self.cfg.silence_after_ms) {
            let samples = self.due - self.cursor;
            self.cursor = self.due;
            self.mode = Mode::Silent { cn: false };
            self.tick_state = TickState::Done;
            self.stats.silence_frames += 1;
            return Playout::Silence {
                samples: u32::try_from(samples).unwrap_or(u32::MAX),
                comfort_noise: None,
            };
        }
        let samples = until - self.cursor;
        self.cursor = until;
        self.stall += samples;
        self.stats.lost_frames += 1;
        self.stats.concealed_samples += samples;
        Playout::Lost {
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
        }
    }

    /// Ends the talkspurt: the rest of this tick is silence. Callers guarantee `cursor < due`.
    fn fall_silent(&mut self, cn: bool) -> Playout<'_> {
        let samples = self.due - self.cursor;
        self.cursor = self.due;
        self.mode = Mode::Silent { cn };
        self.tick_state = TickState::Done;
        self.stats.silence_frames += 1;
        Playout::Silence {
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
            comfort_noise: self.comfort_noise(),
        }
    }

    /// Counters and current delays.
    pub fn stats(&self) -> JitterStats {
        let mut stats = self.stats;
        stats.target_delay_ms = self.ms(self.target);
        stats.jitter_ms = self.ms(self.spread);
        stats.playout_delay_ms = if self.mode == Mode::Playing {
            self.ms(u64::try_from(self.delay).unwrap_or(0))
        } else {
            0
        };
        let ring = &self.slots[..self.slots.len() - 1];
        stats.buffered_packets = ring.iter().filter(|s| s.used).count() as u32;
        stats.buffered_ms = match self.head() {
            Some(h) => {
                let from = if self.mode == Mode::Playing {
                    self.cursor.max(self.slots[h].ts)
                } else {
                    self.slots[h].ts
                };
                self.ms((self.highest_ts + self.ptime).saturating_sub(from))
            }
            None => 0,
        };
        stats
    }
}

/// Whether `next` follows a held jump `held` closely enough to confirm it.
fn confirms(held: Incoming, next: Incoming, clock_rate: u32) -> bool {
    let seq_step = next.seq.wrapping_sub(held.seq);
    let ts_step = next.ts.wrapping_sub(held.ts);
    (1..=CONFIRM_SEQ).contains(&seq_step) && ts_step <= clock_rate
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rtp::xorshift::Xorshift;

    const RATE: u32 = 8_000;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Piece {
        Frame { id: u64, samples: u32 },
        Lost(u32),
        Silence { samples: u32, cn: bool },
        Empty(u32),
    }

    #[derive(Debug, Clone, Copy)]
    struct Pkt {
        at_us: u64,
        seq: u16,
        ts: u32,
        marker: bool,
        cn: bool,
        id: u64,
    }

    /// `n` packets of `ptime_ms` at 8 kHz, the first sent at `start_ms`, each arriving 5 ms
    /// after it was sent; ids count up from `first_id`.
    fn talkspurt(
        first_id: u64,
        n: u64,
        seq0: u16,
        ts0: u32,
        ptime_ms: u32,
        start_ms: u64,
    ) -> Vec<Pkt> {
        let step = RATE / 1_000 * ptime_ms;
        (0..n)
            .map(|i| Pkt {
                at_us: (start_ms + i * u64::from(ptime_ms)) * 1_000 + 5_000,
                seq: seq0.wrapping_add(i as u16),
                ts: ts0.wrapping_add(step.wrapping_mul(i as u32)),
                marker: i == 0,
                cn: false,
                id: first_id + i,
            })
            .collect()
    }

    /// Virtual time: packets are pushed at their arrival instants, ticks run every frame.
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        pkts: Vec<Pkt>,
        next: usize,
        tick: u64,
        log: Vec<Vec<Piece>>,
        outcomes: Vec<(u64, PushOutcome)>,
    }

    impl Sim {
        fn new(cfg: JitterConfig, mut pkts: Vec<Pkt>) -> Self {
            pkts.sort_by_key(|p| p.at_us);
            Self {
                jb: JitterBuffer::new(cfg).unwrap(),
                t0: Instant::now(),
                pkts,
                next: 0,
                tick: 0,
                log: Vec::new(),
                outcomes: Vec::new(),
            }
        }

        fn at(&self, us: u64) -> Instant {
            self.t0 + Duration::from_micros(us)
        }

        fn frame_us(&self) -> u64 {
            u64::from(self.jb.config().frame_ms) * 1_000
        }

        fn run_to(&mut self, tick_end: u64) {
            let mut buf = [0u8; 160];
            while self.tick < tick_end {
                let t = self.tick * self.frame_us();
                while let Some(p) = self.pkts.get(self.next).copied().filter(|p| p.at_us <= t) {
                    buf[..8].copy_from_slice(&p.id.to_le_bytes());
                    let now = self.at(p.at_us);
                    let outcome = if p.cn {
                        self.jb.push_comfort_noise(now, p.seq, p.ts, &buf[..8])
                    } else {
                        self.jb.push(now, p.seq, p.ts, p.marker, &buf)
                    };
                    self.outcomes.push((p.id, outcome));
                    self.next += 1;
                }
                self.jb.tick(self.at(t));
                let mut pieces = Vec::new();
                while let Some(piece) = self.jb.pop() {
                    pieces.push(match piece {
                        Playout::Frame {
                            payload, samples, ..
                        } => Piece::Frame {
                            id: u64::from_le_bytes(payload[..8].try_into().unwrap()),
                            samples,
                        },
                        Playout::Lost { samples } => Piece::Lost(samples),
                        Playout::Silence {
                            samples,
                            comfort_noise,
                        } => Piece::Silence {
                            samples,
                            cn: comfort_noise.is_some(),
                        },
                        Playout::Empty { samples } => Piece::Empty(samples),
                    });
                }
                self.log.push(pieces);
                self.tick += 1;
            }
        }

        fn frames(&self) -> Vec<u64> {
            self.log
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    Piece::Frame { id, .. } => Some(*id),
                    _ => None,
                })
                .collect()
        }

        /// The tick each id played in.
        fn tick_of(&self, id: u64) -> Option<u64> {
            self.log
                .iter()
                .position(|t| {
                    t.iter()
                        .any(|p| matches!(p, Piece::Frame { id: i, .. } if *i == id))
                })
                .map(|i| i as u64)
        }

        /// `Lost` pieces up to the last frame (after it, the stream ends: at most 60 ms more).
        fn lost(&self) -> usize {
            let last = self
                .log
                .iter()
                .rposition(|t| t.iter().any(|p| matches!(p, Piece::Frame { .. })))
                .unwrap_or(0);
            self.log[..=last]
                .iter()
                .flatten()
                .filter(|p| matches!(p, Piece::Lost(_)))
                .count()
        }

        fn arrival_us(&self, id: u64) -> u64 {
            self.pkts.iter().find(|p| p.id == id).unwrap().at_us
        }
    }

    fn cfg() -> JitterConfig {
        JitterConfig::new(RATE, 20)
    }

    fn ids(range: std::ops::Range<u64>) -> Vec<u64> {
        range.collect()
    }

    #[test]
    fn in_order_stream_plays_every_frame_once_in_order() {
        let mut sim = Sim::new(cfg(), talkspurt(0, 500, 1_000, 90_000, 20, 0));
        sim.run_to(540);
        assert_eq!(sim.frames(), ids(0..500));
        assert_eq!(sim.lost(), 0);
        let first = sim.tick_of(0).unwrap();
        let last = sim.tick_of(499).unwrap();
        for t in first..=last {
            assert_eq!(
                sim.log[t as usize].len(),
                1,
                "tick {t}: {:?}",
                sim.log[t as usize]
            );
        }
        assert!(
            sim.log[..first as usize]
                .iter()
                .flatten()
                .all(|p| matches!(p, Piece::Empty(160)))
        );
        // Jitter-free: the target falls to its floor, 20 ms; the talkspurt kept its start delay.
        let s = sim.jb.stats();
        assert_eq!(s.target_delay_ms, 20);
        assert_eq!(
            (s.late, s.duplicate, sim.lost(), s.talkspurts),
            (0, 0, 0, 1)
        );
    }

    #[test]
    fn a_quiet_continuous_stream_comes_down_to_its_target() {
        // One talkspurt that never pauses, started at the initial 40 ms.
        let mut sim = Sim::new(cfg(), talkspurt(0, 500, 1_000, 90_000, 20, 0));
        sim.run_to(100);
        let loud = sim.jb.stats();
        assert!(loud.playout_delay_ms >= 40, "{loud:?}");
        assert_eq!(loud.shrink_drops, 0, "never while not quiet");
        sim.jb.set_quiet(true);
        sim.run_to(200);
        let s = sim.jb.stats();
        // A frame dropped brings it within a frame of the 20 ms target, and no further.
        assert_eq!(s.shrink_drops, 1, "{s:?}");
        assert!(s.playout_delay_ms <= s.target_delay_ms + 20, "{s:?}");
        assert_eq!(sim.lost(), 0);
    }

    #[test]
    fn reordering_within_40ms_plays_in_order_without_loss() {
        let mut rng = Xorshift::new(0x5eed_0001);
        let mut pkts = talkspurt(0, 3_000, 7, 0, 20, 0);
        let mut moved = 0;
        for p in &mut pkts {
            if rng.chance(10) {
                p.at_us += 1 + rng.below(40_000);
                moved += 1;
            }
        }
        assert!(moved > 250);
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(3_050);
        assert_eq!(sim.frames(), ids(0..3_000));
        let s = sim.jb.stats();
        assert_eq!((s.late, sim.lost()), (0, 0), "{s:?}");
    }

    #[test]
    fn duplicates_are_counted_and_ignored() {
        let mut rng = Xorshift::new(3);
        let mut pkts = talkspurt(0, 400, 100, 0, 20, 0);
        let copies: Vec<Pkt> = pkts
            .iter()
            .map(|p| Pkt {
                at_us: p.at_us + 1 + rng.below(100_000),
                ..*p
            })
            .collect();
        pkts.extend(copies);
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(450);
        assert_eq!(sim.frames(), ids(0..400));
        let s = sim.jb.stats();
        assert_eq!(s.duplicate, 400, "{s:?}");
        assert_eq!((s.late, sim.lost()), (0, 0));
    }

    fn jittered(rng: &mut Xorshift, pkts: &mut [Pkt], max_us: u64) {
        for p in pkts {
            p.at_us += rng.below(max_us + 1);
        }
    }

    #[test]
    fn delay_target_converges_to_cover_uniform_jitter() {
        let mut rng = Xorshift::new(0x0bad_cafe);
        let mut pkts = talkspurt(0, 3_000, 60_000, 4_000_000_000, 20, 0);
        jittered(&mut rng, &mut pkts, 60_000);
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(3_000);
        let s = sim.jb.stats();
        assert!(s.playout_delay_ms >= 60, "{s:?}");
        sim.run_to(3_100);
        let frames = sim.frames();
        assert!(
            frames.windows(2).all(|w| w[0] < w[1]),
            "played out of order"
        );
        let s = sim.jb.stats();
        // p95 of U(0, 60 ms) is 57 ms, plus a frame.
        assert!((70..=85).contains(&s.target_delay_ms), "{s:?}");
        assert!(s.late < 30, "late {} of 3000: {s:?}", s.late);
        assert!(frames.len() > 2_970, "{} played: {s:?}", frames.len());
        assert!(s.lost_frames < 30, "{s:?}");
    }

    #[test]
    fn target_shrinks_at_talkspurt_starts_when_jitter_drops() {
        let mut rng = Xorshift::new(11);
        let mut pkts = talkspurt(0, 1_500, 0, 0, 20, 0);
        jittered(&mut rng, &mut pkts, 60_000);
        // Then 20 talkspurts of 1 s with 500 ms of DTX between, jitter 0..4 ms.
        let mut calm = Vec::new();
        for k in 0..20u64 {
            let start_ms = 30_000 + k * 1_500;
            let seq = 1_500 + (k * 50) as u16;
            let ts = (start_ms * 8) as u32;
            calm.extend(talkspurt(1_500 + k * 50, 50, seq, ts, 20, start_ms));
        }
        jittered(&mut rng, &mut calm, 4_000);
        pkts.extend(calm);
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(1_500);
        let noisy = sim.jb.stats();
        assert!(noisy.target_delay_ms >= 70, "{noisy:?}");
        sim.run_to(3_050);
        let calm = sim.jb.stats();
        assert!(calm.target_delay_ms <= 30, "{calm:?}");
        assert!(calm.talkspurts >= 20, "{calm:?}");
        // The last talkspurt played at the small target.
        let id = 1_500 + 19 * 50;
        let waited_us = sim.tick_of(id).unwrap() * 20_000 - sim.arrival_us(id);
        assert!(waited_us <= 50_000, "first frame waited {waited_us} us");
        assert_eq!(
            sim.frames().len() as u64,
            2_500 - calm.late - calm.shrink_drops
        );
    }

    #[test]
    fn dtx_gap_is_silence_and_the_resumed_talkspurt_plays_without_burst() {
        // 2 s of speech, the sender stops for 5 s (Opus DTX: sequence numbers continue), resumes.
        let mut pkts = talkspurt(0, 100, 500, 1_000, 20, 0);
        pkts.extend(talkspurt(100, 100, 600, 1_000 + 7_000 * 8, 20, 7_000));
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(470);
        assert_eq!(sim.frames(), ids(0..200));
        let end = sim.tick_of(99).unwrap() as usize;
        let resume = sim.tick_of(100).unwrap() as usize;
        let gap: Vec<Piece> = sim.log[end + 1..resume].iter().flatten().copied().collect();
        // The first 60 ms cannot be told from loss; the rest of the 5 s is silence.
        let lost = gap
            .iter()
            .take_while(|p| matches!(p, Piece::Lost(_)))
            .count();
        assert!(lost <= 3, "{lost} frames concealed");
        assert!(
            gap[lost..]
                .iter()
                .all(|p| matches!(p, Piece::Silence { cn: false, .. }))
        );
        assert!(gap.len() > 240);
        for t in resume..=sim.tick_of(199).unwrap() as usize {
            assert!(
                matches!(sim.log[t][..], [Piece::Frame { .. }]),
                "tick {t}: {:?}",
                sim.log[t]
            );
        }
        let s = sim.jb.stats();
        let waited_us = resume as u64 * 20_000 - sim.arrival_us(100);
        assert!(
            waited_us <= u64::from(s.target_delay_ms + 20) * 1_000,
            "{waited_us} {s:?}"
        );
        assert_eq!(s.talkspurts, 2);
    }

    #[test]
    fn comfort_noise_announces_silence_without_concealment() {
        let mut pkts = talkspurt(0, 100, 500, 1_000, 20, 0);
        let cn = Pkt {
            at_us: 2_005_000,
            seq: 600,
            ts: 1_000 + 100 * 160,
            marker: false,
            cn: true,
            id: 1_000,
        };
        pkts.push(cn);
        pkts.push(Pkt {
            at_us: 4_005_000,
            seq: 601,
            ts: 1_000 + 500 * 160,
            id: 1_001,
            ..cn
        });
        pkts.extend(talkspurt(100, 100, 602, 1_000 + 7_000 * 8, 20, 7_000));
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(470);
        assert_eq!(sim.frames(), ids(0..200));
        assert_eq!(sim.lost(), 0);
        let end = sim.tick_of(99).unwrap() as usize;
        let resume = sim.tick_of(100).unwrap() as usize;
        let gap: Vec<Piece> = sim.log[end + 1..resume].iter().flatten().copied().collect();
        assert!(
            gap.iter()
                .all(|p| matches!(p, Piece::Silence { cn: true, .. })),
            "{gap:?}"
        );
    }

    #[test]
    fn one_lost_packet_mid_talkspurt_is_one_lost_frame() {
        let mut pkts = talkspurt(0, 200, 65_500, 0, 20, 0);
        pkts.retain(|p| p.id != 50);
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(230);
        let expected: Vec<u64> = (0..200).filter(|&i| i != 50).collect();
        assert_eq!(sim.frames(), expected);
        assert_eq!(sim.lost(), 1);
        let t = sim.tick_of(49).unwrap() as usize;
        assert_eq!(sim.log[t + 1], [Piece::Lost(160)]);
    }

    #[test]
    fn late_packet_is_dropped_and_never_replayed() {
        let mut pkts = talkspurt(0, 200, 0, 0, 20, 0);
        pkts[50].at_us += 300_000;
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(230);
        assert!(!sim.frames().contains(&50));
        assert_eq!(sim.frames().len(), 199);
        assert!(sim.outcomes.contains(&(50, PushOutcome::TooLate)));
        assert_eq!((sim.lost(), sim.jb.stats().late), (1, 1));
    }

    #[test]
    fn sequence_and_timestamp_wraps_are_seamless() {
        let run = |seq0: u16, ts0: u32| {
            let mut sim = Sim::new(cfg(), talkspurt(0, 120, seq0, ts0, 20, 0));
            sim.run_to(140);
            assert_eq!(sim.frames(), ids(0..120), "seq0 {seq0} ts0 {ts0}");
            assert_eq!(sim.lost(), 0, "seq0 {seq0} ts0 {ts0}");
        };
        // Every start whose stream crosses the sequence wrap, with a timestamp crossing too.
        for k in 0..120u32 {
            run(65_535u16.wrapping_sub(k as u16), u32::MAX - k * 160);
            run(65_535u16.wrapping_sub(k as u16), 1_000);
        }
        // Timestamp starts that do not fall on a frame boundary of the wrap.
        for x in (0..=20_000u32).step_by(137) {
            run(4_000, 0u32.wrapping_sub(x));
        }
    }

    #[test]
    fn timestamp_jump_resyncs_without_loss_or_burst() {
        let mut pkts = talkspurt(0, 300, 10, 50_000, 20, 0);
        for p in &mut pkts[100..] {
            p.ts = p.ts.wrapping_add(1_000_000);
        }
        let mut sim = Sim::new(cfg(), pkts);
        sim.run_to(330);
        assert_eq!(sim.frames(), ids(0..300));
        assert_eq!(sim.lost(), 0);
        assert_eq!(sim.jb.stats().resyncs, 1);
        assert!(sim.outcomes.contains(&(100, PushOutcome::Jump)));
        assert!(sim.outcomes.contains(&(101, PushOutcome::Resynced)));
        let t = sim.tick_of(99).unwrap();
        assert_eq!(sim.tick_of(100), Some(t + 1));
    }

    #[test]
    fn new_source_numbering_resyncs_within_a_few_frames() {
        for (seq_jump, ts_jump) in [
            (30_000u16, 2_000_000_000u32),
            (0, u32::MAX - 50_000),
            (40_000, 0),
        ] {
            let mut pkts = talkspurt(0, 100, 10, 50_000, 20, 0);
            // A second sender (a gateway switching sources) after 300 ms of nothing.
            pkts.extend(talkspurt(
                100,
                100,
                110u16.wrapping_add(seq_jump),
                50_000u32.wrapping_add(16_000 * 8).wrapping_add(ts_jump),
                20,
                2_300,
            ));
            let mut sim = Sim::new(cfg(), pkts);
            sim.run_to(240);
            let frames = sim.frames();
            assert_eq!(frames, ids(0..200), "jump {seq_jump} {ts_jump}");
            let waited_us = sim.tick_of(100).unwrap() * 20_000 - sim.arrival_us(100);
            assert!(waited_us <= 80_000, "{waited_us} us");
            for id in 101..200 {
                assert_eq!(sim.tick_of(id), Some(sim.tick_of(100).unwrap() + id - 100));
            }
        }
    }

    #[test]
    fn thirty_ms_packets_fill_twenty_ms_ticks_exactly() {
        let mut sim = Sim::new(cfg(), talkspurt(0, 300, 9, 0, 30, 0));
        sim.run_to(480);
        assert_eq!(sim.frames(), ids(0..300));
        assert_eq!(sim.lost(), 0);
        // A mixer FIFO: decode what pop hands out, take 160 samples per tick.
        let mut fifo = 0u32;
        let mut started = false;
        let mut underruns = 0;
        for (t, pieces) in sim.log.iter().enumerate() {
            for p in pieces {
                if let Piece::Frame { samples, .. } = p {
                    assert_eq!(*samples, 240);
                    fifo += samples;
                    started = true;
                }
            }
            if started && t < sim.tick_of(299).unwrap() as usize {
                if fifo < 160 {
                    underruns += 1;
                }
                assert!(fifo <= 160 + 240);
            }
            fifo = fifo.saturating_sub(160);
        }
        assert_eq!(underruns, 0);
    }

    #[test]
    fn ten_ms_packets_play_two_per_tick() {
        let mut sim = Sim::new(cfg(), talkspurt(0, 400, 9, 0, 10, 0));
        sim.run_to(240);
        assert_eq!(sim.frames(), ids(0..400));
        let first = sim.tick_of(0).unwrap_or_else(|| {
            sim.log
                .iter()
                .position(|t| t.iter().any(|p| matches!(p, Piece::Frame { id: 0, .. })))
                .unwrap() as u64
        }) as usize;
        for pieces in &sim.log[first..first + 190] {
            assert!(
                matches!(
                    pieces[..],
                    [
                        Piece::Frame { samples: 80, .. },
                        Piece::Frame { samples: 80, .. }
                    ]
                ),
                "{pieces:?}"
            );
        }
        assert_eq!(sim.lost(), 0);
    }

    #[test]
    fn ten_ms_tick_plays_twenty_ms_packets_every_other_tick() {
        let mut sim = Sim::new(JitterConfig::new(RATE, 10), talkspurt(0, 200, 9, 0, 20, 0));
        sim.run_to(460);
        assert_eq!(sim.frames(), ids(0..200));
        assert_eq!(sim.lost(), 0);
    }

    #[test]
    fn overflow_evicts_the_oldest_and_memory_stays_bounded() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let t0 = Instant::now();
        let mut overflow = 0;
        for i in 0..100u16 {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            if jb.push(now, i, u32::from(i) * 160, false, &[1; 160]) == PushOutcome::Overflow {
                overflow += 1;
            }
        }
        assert_eq!(overflow, 36);
        let s = jb.stats();
        assert_eq!((s.buffered_packets, s.overflow), (64, 36));
    }

    #[test]
    fn steady_state_does_not_reallocate() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let t0 = Instant::now();
        jb.push(t0, 0, 0, true, &[0; 160]);
        let (ptr, cap) = (jb.payloads.as_ptr(), jb.payloads.capacity());
        for i in 1..2_000u16 {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            jb.push(now, i, u32::from(i) * 160, false, &[i as u8; 160]);
            jb.tick(now);
            while jb.pop().is_some() {}
        }
        assert_eq!((jb.payloads.as_ptr(), jb.payloads.capacity()), (ptr, cap));
        assert_eq!(jb.stride, 256);
    }

    #[test]
    fn random_flood_never_panics_and_stays_bounded() {
        let mut rng = Xorshift::new(0xf100d);
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let t0 = Instant::now();
        let mut payload = [0u8; 1_700];
        let mut t_us = 0;
        let mut next_tick = 0;
        let bound = 65 * std::mem::size_of::<Slot>() + 65 * 1_500 + 2 * WINDOW * 8;
        let mut near = (0u16, 0u32);
        for i in 0..10_000 {
            t_us += rng.below(5_000);
            let (seq, ts) = if rng.chance(50) {
                (rng.next_u64() as u16, rng.next_u64() as u32)
            } else {
                // Plausible neighbours, so the flood also reaches the ordinary paths.
                near = (
                    near.0.wrapping_add(rng.below(5) as u16),
                    near.1.wrapping_add(rng.below(400) as u32),
                );
                near
            };
            let len = rng.below(1_700) as usize;
            rng.fill(&mut payload[..len]);
            let now = t0 + Duration::from_micros(t_us);
            if rng.chance(5) {
                jb.push_comfort_noise(now, seq, ts, &payload[..len]);
            } else {
                jb.push(now, seq, ts, rng.chance(10), &payload[..len]);
            }
            while next_tick <= t_us {
                jb.tick(t0 + Duration::from_micros(next_tick));
                let mut n = 0;
                while let Some(piece) = jb.pop() {
                    n += 1;
                    assert!(n < 100, "a tick never ends at packet {i}: {piece:?}");
                }
                next_tick += 20_000;
            }
            let s = jb.stats();
            assert!(s.buffered_packets <= 64);
            assert!(
                jb.memory_bytes() <= bound,
                "{} > {bound}",
                jb.memory_bytes()
            );
        }
        // And a clean stream afterwards plays.
        let start = t_us / 1_000 + 100;
        let mut sim = Sim {
            jb,
            t0,
            pkts: talkspurt(0, 200, 12_345, 777, 20, start),
            next: 0,
            tick: next_tick / 20_000,
            log: Vec::new(),
            outcomes: Vec::new(),
        };
        sim.run_to(sim.tick + 250);
        // Leftovers of the flood carry random bytes where the id would be.
        let frames: Vec<u64> = sim.frames().into_iter().filter(|&id| id < 200).collect();
        assert!(frames.len() >= 190, "{frames:?}");
        assert!(frames.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn configuration_is_checked() {
        assert!(JitterBuffer::new(cfg()).is_ok());
        assert!(JitterBuffer::new(JitterConfig::new(48_000, 10)).is_ok());
        assert!(matches!(
            JitterBuffer::new(JitterConfig::new(0, 20)),
            Err(JitterError::Frame { .. })
        ));
        assert!(matches!(
            JitterBuffer::new(JitterConfig::new(11_025, 1)),
            Err(JitterError::Frame { .. })
        ));
        let bad = JitterConfig {
            min_delay_ms: 60,
            ..cfg()
        };
        assert!(matches!(
            JitterBuffer::new(bad),
            Err(JitterError::Delays { .. })
        ));
        let bad = JitterConfig {
            capacity_packets: 1,
            ..cfg()
        };
        assert_eq!(
            JitterBuffer::new(bad).unwrap_err(),
            JitterError::Capacity(1)
        );
        let bad = JitterConfig {
            max_payload_bytes: 0,
            ..cfg()
        };
        assert_eq!(JitterBuffer::new(bad).unwrap_err(), JitterError::MaxPayload);
        let mut jb = JitterBuffer::new(JitterConfig {
            max_payload_bytes: 100,
            ..cfg()
        })
        .unwrap();
        assert_eq!(
            jb.push(Instant::now(), 1, 1, true, &[0; 101]),
            PushOutcome::TooLarge
        );
        assert_eq!(jb.stats().too_large, 1);
    }
}
