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
    /// Times the sender's numbering jumped back (a restarted stream) and the depacketizer
    /// started over from the new numbers.
    pub resyncs: u64,
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
    /// The frame's first packet came right after lost packets.
    after_gap: bool,
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
/// Packets are taken apart in sequence order: one that arrives in order straight away (no
/// copy), one that arrives early is copied into a window of held packets. A missing
/// sequence number is waited for until a packet `window` numbers past it arrives or, with
/// timeouts driven, until the packet behind it has waited `max_wait`; then it is lost, and
/// the frame it belonged to is reported broken: the frame on both sides of the gap when the
/// timestamps match ([`Breakage::Gap`]), else the unfinished frame before it
/// ([`Breakage::MissingEnd`]) and the frame after it unless that frame's first packet begins a
/// picture ([`Breakage::MissingStart`]; whole frames lost in between leave no broken frame,
/// only lost packets). A picture begins with an SEI, SPS, PPS or delimiter, or a slice whose
/// `first_mb_in_slice` is 0; a key frame after a gap must also carry its SPS and PPS, which
/// may have been lost in front of it. A frame ends at its marker bit. The first packet
/// received sets where the stream starts: packets numbered before it are late, except that
/// two consecutive packets far behind the window (a sender that restarted its numbering)
/// start it over ([`DepacketizerStats::resyncs`]). Malformed
/// payloads are counted, dropped, and break their frame; nothing here panics on network input.
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
    /// The sequence number that, arriving next far behind the window, means the sender
    /// restarted its numbering (RFC 3550 Appendix A.1's two sequential packets).
    restart_seq: Option<u16>,
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
            restart_seq: None,
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
        let mut next = *self.next.get_or_insert(u64::from(seq) | 1 << 32);
        let delta = i64::from(seq.wrapping_sub(next as u16) as i16);
        let mut ext = next.saturating_add_signed(delta);
        if ext < next {
            // Far behind the window twice in a row with consecutive numbers: the sender
            // restarted its numbering. Start over from this packet.
            if next - ext > window && self.restart_seq == Some(seq) {
                self.restart();
                ext = u64::from(seq) | 1 << 32;
                next = ext;
                self.next = Some(ext);
            } else {
                if next - ext > window {
                    self.restart_seq = Some(seq.wrapping_add(1));
                }
                self.stats.late += 1;
                return;
            }
        }
        self.restart_seq = None;
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
        if Some(ext) == self.next {
            // In order: taken apart straight from the caller's buffer, no copy.
            self.next = Some(ext + 1);
            self.process(timestamp, marker, payload);
            self.drain();
            return;
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

    /// Drops what is held and ends the frame being assembled, for a restarted stream.
    fn restart(&mut self) {
        self.stats.resyncs += 1;
        for slot in &mut self.slots {
            slot.seq = None;
            slot.arrived = None;
        }
        self.held = 0;
        if self.assembly.active {
            self.assembly.mark(Breakage::MissingEnd);
            self.finish();
        }
        self.after_gap = true;
        self.restart_seq = None;
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
                self.assembly.after_gap = true;
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
        a.after_gap = false;
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
        // After a gap, a key frame that begins with its IDR slice may have lost the SPS and
        // PPS sent in front of it (this encoder and most send them with every key frame).
        if a.after_gap && a.au.is_key() && !a.au.has_parameter_sets() {
            a.mark(Breakage::MissingStart);
        }
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
            self.malformed();
            self.assembly.fu_open = false;
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

#[cfg(test)]
mod tests {
    use super::super::{Packetizer, Payload};
    use super::*;

    /// A synthetic access unit: SPS + PPS + IDR slice for a key frame, else one slice, the
    /// slice `size` bytes with `first_mb_in_slice` 0.
    fn access_unit(timestamp: u32, key: bool, size: usize) -> AccessUnit {
        let mut au = AccessUnit::default();
        au.timestamp = timestamp;
        if key {
            au.push_nal(&[0x67, 0x42, 0xC0, 0x1F, 0x8C, 0x8D]);
            au.push_nal(&[0x68, 0xCE, 0x3C, 0x80]);
        }
        let mut slice = vec![if key { 0x65 } else { 0x41 }, 0x88];
        slice.extend((0..size.saturating_sub(2)).map(|i| (i as u32 * 31 + timestamp) as u8));
        au.push_nal(&slice);
        au
    }

    /// A packet as sent: sequence number, timestamp, payload.
    struct Sent {
        seq: u16,
        timestamp: u32,
        payload: Payload,
    }

    /// `frames` frames (every 10th a key frame, sizes varying) packetized at 100 bytes,
    /// numbered from `first_seq`.
    fn stream(frames: u32, first_seq: u16) -> (Vec<AccessUnit>, Vec<Sent>) {
        let p = Packetizer::new(100).unwrap();
        let mut aus = Vec::new();
        let mut sent = Vec::new();
        let mut seq = first_seq;
        for f in 0..frames {
            let au = access_unit(f * 3_000, f % 10 == 0, 50 + (f as usize * 97) % 700);
            let mut payloads = Vec::new();
            p.packetize(&au, &mut payloads).unwrap();
            for payload in payloads {
                sent.push(Sent {
                    seq,
                    timestamp: au.timestamp,
                    payload,
                });
                seq = seq.wrapping_add(1);
            }
            aus.push(au);
        }
        (aus, sent)
    }

    fn feed<'a>(d: &mut Depacketizer, now: Instant, packets: impl IntoIterator<Item = &'a Sent>) {
        for s in packets {
            d.handle_packet(now, s.seq, s.timestamp, s.payload.marker, &s.payload.data);
        }
    }

    fn drain(d: &mut Depacketizer) -> Vec<Reassembled> {
        std::iter::from_fn(|| d.poll_frame()).collect()
    }

    fn frame(au: &AccessUnit) -> Reassembled {
        Reassembled::Frame(au.clone())
    }

    fn broken(timestamp: u32, reason: Breakage) -> Reassembled {
        Reassembled::Broken(BrokenFrame { timestamp, reason })
    }

    #[test]
    fn stap_a_and_fu_a_parse_back_exactly() {
        let (aus, sent) = stream(3, 1_000);
        // Frame 0: STAP-A of SPS + PPS, then the IDR slice in FU-A fragments.
        assert_eq!(nal_type(sent[0].payload.data[0]), STAP_A);
        assert_eq!(nal_type(sent[1].payload.data[0]), FU_A);
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        feed(&mut d, Instant::now(), &sent);
        assert_eq!(drain(&mut d), aus.iter().map(frame).collect::<Vec<_>>());
        let stats = d.stats();
        assert_eq!((stats.frames, stats.broken_frames, stats.lost), (3, 0, 0));
    }

    #[test]
    fn reordering_within_the_window_is_harmless() {
        let (aus, mut sent) = stream(20, 65_500);
        // Reverse every run of 7 packets, across the sequence number wrap.
        // The first packet received sets where the stream starts: it goes first.
        for run in sent[1..].chunks_mut(7) {
            run.reverse();
        }
        let mut d = Depacketizer::new(DepacketizerConfig {
            window: 8,
            ..DepacketizerConfig::default()
        });
        feed(&mut d, Instant::now(), &sent);
        assert_eq!(drain(&mut d), aus.iter().map(frame).collect::<Vec<_>>());
        assert_eq!(d.stats().lost, 0);
    }

    #[test]
    fn a_lost_fragment_breaks_its_frame_only() {
        let (aus, mut sent) = stream(3, 7);
        // Frame 2 is a 244-byte delta slice: three FU-A fragments. Lose the middle one.
        let fragments: Vec<usize> = (0..sent.len())
            .filter(|&i| sent[i].timestamp == 6_000 && nal_type(sent[i].payload.data[0]) == FU_A)
            .collect();
        assert!(fragments.len() >= 3, "{fragments:?}");
        sent.remove(fragments[1]);
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        feed(&mut d, now, &sent);
        // The gap waits for the retransmission until max_wait.
        assert_eq!(drain(&mut d), [frame(&aus[0]), frame(&aus[1])]);
        let deadline = d.poll_timeout().unwrap();
        assert_eq!(deadline, now + Duration::from_millis(100));
        d.handle_timeout(deadline - Duration::from_millis(1));
        assert!(d.poll_frame().is_none());
        d.handle_timeout(deadline);
        assert_eq!(drain(&mut d), [broken(6_000, Breakage::Gap)]);
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.stats().lost, 1);
    }

    #[test]
    fn a_retransmission_inside_the_window_mends_the_frame() {
        let (aus, mut sent) = stream(4, 300);
        let lost = sent.remove(3);
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        feed(&mut d, now, &sent[..6]);
        let before = drain(&mut d);
        feed(&mut d, now, [&lost]);
        feed(&mut d, now, &sent[6..]);
        let mut all = before;
        all.extend(drain(&mut d));
        assert_eq!(all, aus.iter().map(frame).collect::<Vec<_>>());
        // The same packet again, now too late, is counted.
        feed(&mut d, now, [&lost]);
        assert_eq!(d.stats().late, 1);
    }

    #[test]
    fn lost_starts_ends_and_whole_frames_are_told_apart() {
        let (aus, sent) = stream(6, 40_000);
        let of = |ts: u32| -> Vec<usize> {
            (0..sent.len())
                .filter(|&i| sent[i].timestamp == ts)
                .collect()
        };
        let mut drop = vec![];
        drop.push(*of(3_000).first().unwrap()); // frame 1 loses its start
        drop.push(*of(6_000).last().unwrap()); // frame 2 loses its end (the marker)
        drop.extend(of(12_000)); // frame 4 is lost whole
        let kept: Vec<&Sent> = (0..sent.len())
            .filter(|i| !drop.contains(i))
            .map(|i| &sent[i])
            .collect();
        let mut d = Depacketizer::new(DepacketizerConfig {
            window: 4,
            ..DepacketizerConfig::default()
        });
        feed(&mut d, Instant::now(), kept);
        let now = Instant::now() + Duration::from_secs(1);
        d.handle_timeout(now);
        assert_eq!(
            drain(&mut d),
            [
                frame(&aus[0]),
                broken(3_000, Breakage::MissingStart),
                broken(6_000, Breakage::MissingEnd),
                frame(&aus[3]),
                frame(&aus[5]),
            ]
        );
        assert_eq!(d.stats().lost, drop.len() as u64);
    }

    #[test]
    fn a_sender_restarting_its_numbering_is_followed() {
        let (aus, sent) = stream(5, 1_000);
        // The same frames again, numbered from 20,000 below: far behind the window.
        let (_, again) = stream(5, 1_000u16.wrapping_sub(20_000));
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        feed(&mut d, now, &sent);
        assert_eq!(drain(&mut d), aus.iter().map(frame).collect::<Vec<_>>());
        // One stray old packet is late and changes nothing; the restart's first packet is
        // late too, the second starts over.
        feed(&mut d, now, [&sent[0]]);
        assert_eq!(d.stats().late, 1);
        feed(&mut d, now, &again);
        let out = drain(&mut d);
        assert_eq!(d.stats().resyncs, 1);
        assert_eq!(d.stats().late, 2);
        // Frame 0 was one packet, the one lost to the restart; the rest come out whole.
        assert_eq!(out, aus[1..].iter().map(frame).collect::<Vec<_>>());
    }

    #[test]
    fn joining_mid_frame_reports_the_partial_frame() {
        let (aus, sent) = stream(3, 9);
        // Frame 0 is one STAP-A, frame 1 two FU-A fragments; join at frame 1's second.
        assert_eq!(sent[2].timestamp, 3_000);
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        feed(&mut d, Instant::now(), &sent[2..]);
        assert_eq!(
            drain(&mut d),
            [broken(3_000, Breakage::MissingStart), frame(&aus[2])]
        );
        assert_eq!(d.stats().fragments_without_start, 1);
    }

    #[test]
    fn malformed_payloads_are_counted_and_break_their_frame() {
        let cases: [(&[u8], Breakage); 10] = [
            (&[], Breakage::Malformed),
            // STAP-A: no units, a truncated size, a size past the end, a zero size.
            (&[0x78], Breakage::Malformed),
            (&[0x78, 0x00], Breakage::Malformed),
            (&[0x78, 0x00, 0x05, 0x67, 0x42], Breakage::Malformed),
            (&[0x78, 0x00, 0x00, 0x00, 0x01, 0x67], Breakage::Malformed),
            // FU-A: too short, start and end together, carrying an aggregation type.
            (&[0x7C], Breakage::Malformed),
            (&[0x7C, 0xC5, 0x00], Breakage::Malformed),
            (&[0x7C, 0x98, 0x00], Breakage::Malformed),
            // FU-A end without its start.
            (&[0x7C, 0x45, 0x01, 0x02], Breakage::FragmentWithoutStart),
            // STAP-B is not mode 1.
            (&[0x19, 0x00, 0x01, 0x00, 0x01, 0x67], Breakage::Unsupported),
        ];
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        let good = access_unit(0, false, 40);
        for (i, (payload, reason)) in cases.iter().enumerate() {
            let ts = 1_000 * (i as u32 + 1);
            let seq = 2 * i as u16;
            // A whole slice, then the bad payload with the marker, in the same frame.
            d.handle_packet(now, seq, ts, false, good.nal(0).unwrap());
            d.handle_packet(now, seq + 1, ts, true, payload);
            assert_eq!(drain(&mut d), [broken(ts, *reason)], "case {i}");
        }
        let stats = d.stats();
        assert_eq!(stats.malformed, 8);
        assert_eq!(stats.fragments_without_start, 1);
        assert_eq!(stats.unsupported, 1);
        assert_eq!(stats.lost, 0);
    }

    #[test]
    fn an_unfinished_fragment_breaks_the_frame() {
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        // FU-A start, then the marker on a single NAL unit: the unit never ended.
        d.handle_packet(now, 1, 90, false, &[0x7C, 0x85, 0x88, 0x01]);
        d.handle_packet(now, 2, 90, true, &[0x41, 0x88]);
        // A middle fragment of another type than the open unit.
        d.handle_packet(now, 3, 180, false, &[0x7C, 0x85, 0x88, 0x01]);
        d.handle_packet(now, 4, 180, true, &[0x7C, 0x41, 0x02]);
        assert_eq!(
            drain(&mut d),
            [
                broken(90, Breakage::FragmentWithoutEnd),
                broken(180, Breakage::Malformed)
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let now = Instant::now();
        let mut d = Depacketizer::new(DepacketizerConfig {
            window: 16,
            ..DepacketizerConfig::default()
        });
        for _ in 0..20_000 {
            let r = next();
            let len = (r % 12) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = payload.first_mut() {
                // Mostly the interesting types.
                *first = (*first & 0xE0) | [1, 5, 24, 28, 25, 29, 0, 7][(r >> 8) as usize % 8];
            }
            let seq = (r >> 16) as u16 % 64;
            let ts = (r >> 32) as u32 % 4 * 3_000;
            d.handle_packet(now, seq, ts, r >> 60 == 0, &payload);
            while d.poll_frame().is_some() {}
        }
        d.handle_timeout(now + Duration::from_secs(1));
        let stats = d.stats();
        assert_eq!(stats.packets, 20_000);
        assert!(stats.malformed > 0 && stats.late + stats.duplicates > 0);
    }

    #[test]
    fn random_loss_and_reordering_never_pass_a_damaged_frame() {
        for seed in 1..=20u64 {
            loss_and_reordering(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
    }

    fn loss_and_reordering(mut seed: u64) {
        let (aus, sent) = stream(300, 65_000);
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // 3 % loss, then runs of 1 to 6 packets reversed: no packet moves more than 5 places,
        // well inside the window. The first packet received sets where the stream starts: it
        // stays first.
        let mut order: Vec<&Sent> = sent.iter().filter(|_| rand(100) >= 3).collect();
        let mut i = 1;
        while i < order.len() {
            let end = (i + 1 + rand(6) as usize).min(order.len());
            order[i..end].reverse();
            i = end;
        }
        let mut d = Depacketizer::new(DepacketizerConfig {
            window: 16,
            ..DepacketizerConfig::default()
        });
        feed(&mut d, Instant::now(), order.iter().copied());
        d.handle_timeout(Instant::now() + Duration::from_secs(1));
        let out = drain(&mut d);
        let received: std::collections::HashSet<u16> = order.iter().map(|s| s.seq).collect();
        let whole = |ts: u32| {
            sent.iter()
                .filter(|s| s.timestamp == ts)
                .all(|s| received.contains(&s.seq))
        };
        let mut complete = 0;
        for r in &out {
            match r {
                Reassembled::Frame(au) => {
                    let original = aus.iter().find(|a| a.timestamp == au.timestamp).unwrap();
                    assert_eq!(au, original);
                    complete += 1;
                }
                Reassembled::Broken(b) => assert!(!whole(b.timestamp), "{b:?}"),
            }
        }
        // Every frame that arrived whole came out whole (the last one included).
        let expected = aus.iter().filter(|a| whole(a.timestamp)).count();
        assert_eq!(complete, expected);
        assert!(d.stats().lost > 0);
    }
}
