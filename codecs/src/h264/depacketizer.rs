//! [`Depacketizer`]: RTP payloads (RFC 6184 mode 1) back into access units, with a reorder
//! window, telling complete frames from broken ones.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{AccessUnit, FU_A, STAP_A, nal_type, starts_picture};

/// How a [`Depacketizer`] waits for late packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepacketizerConfig {
    /// Packets held while a missing one may still arrive (reordered or retransmitted): once a
    /// packet this many sequence numbers past a missing one arrives, the missing one is lost.
    pub window: usize,
    /// How long a packet behind a gap waits before the gap is given up as lost (applied by
    /// [`Depacketizer::handle_timeout`]).
    pub max_wait: Duration,
}

impl Default for DepacketizerConfig {
    /// 128 packets (a 720p key frame at 1.5 Mbit/s is about 50) and 100 ms (a retransmission
    /// over a LAN or a nearby server).
    fn default() -> Self {
        DepacketizerConfig {
            window: 128,
            max_wait: Duration::from_millis(100),
        }
    }
}

/// Why a frame was given up as broken; the first reason found is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Breakage {
    /// Packets of the frame were lost between two of its packets (a missing FU-A fragment,
    /// a missing NAL unit).
    Gap,
    /// The frame's first packets were lost (or the stream was joined mid-frame).
    MissingStart,
    /// The frame's last packets were lost: the next frame began without this one's marker.
    MissingEnd,
    /// An FU-A middle or end fragment came without its start fragment.
    FragmentWithoutStart,
    /// An FU-A unit was not finished by an end fragment before another unit or the marker.
    FragmentWithoutEnd,
    /// A payload of the frame was malformed and dropped.
    Malformed,
    /// A payload of the frame used a packet type mode 1 does not allow (STAP-B, MTAP, FU-B,
    /// or an undefined type).
    Unsupported,
}

/// A frame that could not be reassembled whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenFrame {
    /// The frame's RTP timestamp.
    pub timestamp: u32,
    /// Why it is broken.
    pub reason: Breakage,
}

/// What the depacketizer gives out, one frame at a time, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// A complete access unit (every packet from its first to its marker, all well formed).
    Frame(AccessUnit),
    /// A frame that is missing data.
    Broken(BrokenFrame),
}

/// Counters of a [`Depacketizer`], for the load generator's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Packets handed in.
    pub packets: u64,
    /// Packets taken apart in sequence order.
    pub processed: u64,
    /// Sequence numbers given up as lost.
    pub lost: u64,
    /// Packets that arrived again while still held.
    pub duplicates: u64,
    /// Packets that arrived after their sequence number was processed or given up.
    pub late: u64,
    /// Malformed payloads dropped (empty, truncated STAP-A, bad FU-A).
    pub malformed: u64,
    /// Payloads of types packetization mode 1 does not use, dropped.
    pub unsupported: u64,
    /// FU-A fragments dropped because their unit's start was missing.
    pub fragments_without_start: u64,
    /// Frames that ended at a new timestamp without a marker though no packet was lost.
    pub missing_markers: u64,
    /// Complete frames given out.
    pub frames: u64,
    /// Broken frames reported.
    pub broken_frames: u64,
}

/// One held packet.
#[derive(Debug, Default)]
struct Slot {
    /// Extended sequence number held, if any.
    seq: Option<u64>,
    timestamp: u32,
    marker: bool,
    arrived: Option<Instant>,
    payload: Vec<u8>,
}

/// The frame being put together.
#[derive(Debug, Default)]
struct Assembly {
    active: bool,
    au: AccessUnit,
    broken: Option<Breakage>,
    /// An FU-A unit is open (started, not ended).
    fu_open: bool,
}

impl Assembly {
    fn mark(&mut self, reason: Breakage) {
        self.broken.get_or_insert(reason);
    }
}

/// Sans-IO RTP H.264 receiver (RFC 6184 packetization mode 1): feed it packets with
/// [`Self::handle_packet`] as they arrive, in any order, then drain [`Self::poll_frame`]
/// until it is empty; call [`Self::handle_timeout`] at [`Self::poll_timeout`].
///
/// Packets are held in a window of sequence numbers and taken apart in order. A missing
/// sequence number is waited for until a packet `window` numbers past it arrives or, with
/// timeouts driven, until the packet behind it has waited `max_wait`; then it is lost, and
/// the frame it belonged to is reported broken: the frame on both sides of the gap when the
/// timestamps match ([`Breakage::Gap`]), else the unfinished frame before it
/// ([`Breakage::MissingEnd`]) and the frame after it unless that frame's first packet begins a
/// picture ([`Breakage::MissingStart`]; whole frames lost in between leave no broken frame,
/// only lost packets). A frame ends at its marker bit. Malformed payloads are counted,
/// dropped, and break their frame; nothing here panics on network input.
#[derive(Debug)]
pub struct Depacketizer {
    config: DepacketizerConfig,
    slots: Vec<Slot>,
    /// Extended sequence number to process next; None before the first packet.
    next: Option<u64>,
    /// Packets held in `slots`.
    held: usize,
    /// Packets were lost (or the stream just started) before the next one processed.
    after_gap: bool,
    assembly: Assembly,
    ready: VecDeque<Reassembled>,
    /// Access units given back for reuse.
    spare: Vec<AccessUnit>,
    stats: DepacketizerStats,
}

impl Depacketizer {
    /// A receiver with `config` (a window of at least one packet).
    pub fn new(config: DepacketizerConfig) -> Self {
        let window = config.window.max(1);
        Depacketizer {
            config: DepacketizerConfig { window, ..config },
            slots: (0..window).map(|_| Slot::default()).collect(),
            next: None,
            held: 0,
            after_gap: true,
            assembly: Assembly::default(),
            ready: VecDeque::new(),
            spare: Vec::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Gives a consumed access unit back so a later frame reuses its buffers.
    pub fn recycle(&mut self, mut au: AccessUnit) {
        if self.spare.len() < 4 {
            au.clear();
            self.spare.push(au);
        }
    }

    /// The next frame out, complete or broken, in sequence order.
    pub fn poll_frame(&mut self) -> Option<Reassembled> {
        self.ready.pop_front()
    }

    /// When [`Self::handle_timeout`] should run next: the earliest time a held packet has
    /// waited `max_wait` behind a gap.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.seq.is_some())
            .filter_map(|s| s.arrived)
            .min()
            .map(|t| t + self.config.max_wait)
    }

    /// Gives up the gaps that held packets have waited `max_wait` behind, and takes apart
    /// the packets after them.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.poll_timeout().is_some_and(|t| t <= now) {
            let Some(mut next) = self.next else { return };
            // Skip to the first held packet (within the window), counting the gap as lost.
            let mut skipped = 0;
            while self.slots[self.slot(next)].seq != Some(next) && skipped < self.slots.len() {
                next += 1;
                skipped += 1;
            }
            self.lose(skipped as u64);
            self.next = Some(next);
            self.drain();
        }
    }

    /// Takes one RTP packet: its sequence number, timestamp, marker bit and payload, arrived
    /// at `now`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        self.stats.packets += 1;
        let window = self.slots.len() as u64;
        // Extended sequence numbers start at 2^32 so earlier ones never go below zero.
        let next = *self.next.get_or_insert(u64::from(seq) | 1 << 32);
        let delta = i64::from(seq.wrapping_sub(next as u16) as i16);
        let ext = next.saturating_add_signed(delta);
        if ext < next {
            self.stats.late += 1;
            return;
        }
        if ext >= next + window {
            // Make room: everything before ext - window + 1 is processed or lost.
            let new_next = ext + 1 - window;
            let mut at = next;
            while at < new_next && at < next + window {
                if self.slots[self.slot(at)].seq == Some(at) {
                    self.next = Some(at);
                    self.drain_one();
                } else {
                    self.lose(1);
                }
                at += 1;
            }
            if new_next > at {
                self.lose(new_next - at);
            }
            self.next = Some(new_next);
        }
        let index = self.slot(ext);
        let slot = &mut self.slots[index];
        if slot.seq == Some(ext) {
            self.stats.duplicates += 1;
            return;
        }
        slot.seq = Some(ext);
        slot.timestamp = timestamp;
        slot.marker = marker;
        slot.arrived = Some(now);
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.held += 1;
        self.drain();
    }

    fn slot(&self, ext: u64) -> usize {
        (ext % self.slots.len() as u64) as usize
    }

    fn lose(&mut self, count: u64) {
        if count > 0 {
            self.stats.lost += count;
            self.after_gap = true;
        }
    }

    /// Processes held packets from `next` on while they are there.
    fn drain(&mut self) {
        while let Some(next) = self.next {
            if self.slots[self.slot(next)].seq != Some(next) {
                break;
            }
            self.drain_one();
        }
    }

    /// Processes the packet at `next` (which is held) and moves on.
    fn drain_one(&mut self) {
        let Some(next) = self.next else { return };
        let index = self.slot(next);
        let slot = &mut self.slots[index];
        slot.seq = None;
        slot.arrived = None;
        let (timestamp, marker) = (slot.timestamp, slot.marker);
        let payload = std::mem::take(&mut slot.payload);
        self.held -= 1;
        self.next = Some(next + 1);
        self.process(timestamp, marker, &payload);
        self.slots[index].payload = payload;
    }

    /// Takes apart one packet in sequence order.
    fn process(&mut self, timestamp: u32, marker: bool, payload: &[u8]) {
        self.stats.processed += 1;
        let same_frame = self.assembly.active && self.assembly.au.timestamp == timestamp;
        if std::mem::take(&mut self.after_gap) {
            if same_frame {
                self.assembly.mark(Breakage::Gap);
            } else {
                if self.assembly.active {
                    self.assembly.mark(Breakage::MissingEnd);
                    self.finish();
                }
                self.start(timestamp);
                if !begins_picture(payload) {
                    self.assembly.mark(Breakage::MissingStart);
                }
            }
        } else if !same_frame {
            if self.assembly.active {
                self.stats.missing_markers += 1;
                if self.assembly.fu_open {
                    self.assembly.mark(Breakage::FragmentWithoutEnd);
                }
                self.finish();
            }
            self.start(timestamp);
        }
        self.take_payload(payload);
        if marker {
            if self.assembly.fu_open {
                self.assembly.mark(Breakage::FragmentWithoutEnd);
            }
            self.finish();
        }
    }

    fn start(&mut self, timestamp: u32) {
        let a = &mut self.assembly;
        a.active = true;
        a.broken = None;
        a.fu_open = false;
        a.au.clear();
        a.au.timestamp = timestamp;
    }

    /// Gives out the frame being assembled.
    fn finish(&mut self) {
        let a = &mut self.assembly;
        if !a.active {
            return;
        }
        a.active = false;
        let timestamp = a.au.timestamp;
        let out = match a.broken.take() {
            None if a.au.nal_count() > 0 => {
                self.stats.frames += 1;
                let spare = self.spare.pop().unwrap_or_default();
                Reassembled::Frame(std::mem::replace(&mut a.au, spare))
            }
            reason => {
                self.stats.broken_frames += 1;
                Reassembled::Broken(BrokenFrame {
                    timestamp,
                    reason: reason.unwrap_or(Breakage::Malformed),
                })
            }
        };
        self.ready.push_back(out);
    }

    fn malformed(&mut self) {
        self.stats.malformed += 1;
        self.assembly.mark(Breakage::Malformed);
    }

    /// Adds one payload's NAL units (or fragment) to the frame.
    fn take_payload(&mut self, payload: &[u8]) {
        let Some(&header) = payload.first() else {
            self.malformed();
            return;
        };
        let kind = nal_type(header);
        match kind {
            1..=23 => {
                self.close_open_fragment();
                self.assembly.au.push_nal(payload);
            }
            STAP_A => {
                self.close_open_fragment();
                if !stap_a_is_well_formed(payload) {
                    self.malformed();
                    return;
                }
                let mut rest = &payload[1..];
                while let [hi, lo, tail @ ..] = rest {
                    let size = usize::from(u16::from_be_bytes([*hi, *lo]));
                    // INVARIANT: checked by stap_a_is_well_formed.
                    let (unit, after) = tail.split_at(size);
                    self.assembly.au.push_nal(unit);
                    rest = after;
                }
            }
            FU_A => self.take_fragment(payload),
            _ => {
                self.close_open_fragment();
                self.stats.unsupported += 1;
                self.assembly.mark(Breakage::Unsupported);
            }
        }
    }

    /// A new unit begins while an FU-A unit is still open: that unit is incomplete.
    fn close_open_fragment(&mut self) {
        if std::mem::take(&mut self.assembly.fu_open) {
            self.assembly.mark(Breakage::FragmentWithoutEnd);
        }
    }

    fn take_fragment(&mut self, payload: &[u8]) {
        let [indicator, fu_header, body @ ..] = payload else {
            self.malformed();
            return;
        };
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        // Start and end together, or a fragment of an aggregation or fragmentation type.
        if (start && end) || !(1..=23).contains(&nal_type(*fu_header)) {
            self.close_open_fragment();
            self.malformed();
            return;
        }
        if start {
            self.close_open_fragment();
            let header = (indicator & 0xE0) | nal_type(*fu_header);
            self.assembly.au.start_nal(header);
            self.assembly.au.extend_last(body);
            self.assembly.fu_open = true;
            return;
        }
        if !self.assembly.fu_open {
            self.stats.fragments_without_start += 1;
            self.assembly.mark(Breakage::FragmentWithoutStart);
            return;
        }
        // A middle or end fragment must continue the open unit's type.
        let open_type = self
            .assembly
            .au
            .nal(self.assembly.au.nal_count().wrapping_sub(1))
            .map(|n| nal_type(n[0]));
        if open_type != Some(nal_type(*fu_header)) {
            self.close_open_fragment();
            self.malformed();
            return;
        }
        self.assembly.au.extend_last(body);
        if end {
            self.assembly.fu_open = false;
        }
    }
}

/// Whether a STAP-A payload's unit sizes tile it exactly, each unit non-empty.
fn stap_a_is_well_formed(payload: &[u8]) -> bool {
    let mut rest = payload.get(1..).unwrap_or_default();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let [hi, lo, tail @ ..] = rest else {
            return false;
        };
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        if size == 0 || size > tail.len() {
            return false;
        }
        rest = &tail[size..];
    }
    true
}

/// Whether a payload's first NAL unit begins a picture (so a frame starting with it after a
/// gap is whole).
fn begins_picture(payload: &[u8]) -> bool {
    match payload {
        [h, rest @ ..] if (1..=23).contains(&nal_type(*h)) => {
            starts_picture(*h, rest.first().copied())
        }
        [h, _, _, first, rest @ ..] if nal_type(*h) == STAP_A => {
            starts_picture(*first, rest.first().copied())
        }
        [h, fu, rest @ ..] if nal_type(*h) == FU_A && fu & 0x80 != 0 => {
            starts_picture(*fu, rest.first().copied())
        }
        _ => false,
    }
}
