//! Receive-side statistics of one RTP stream (RFC 3550 Appendix A.1, A.3 and A.8).
//!
//! [`RtpStreamRecv`] validates the source (probation), extends sequence numbers, counts
//! received, lost, duplicated and reordered packets, estimates interarrival jitter, and
//! produces the [`ReportBlock`] an RR or SR carries about the stream. It is sans-IO: the
//! caller passes the arrival `Instant` with every packet and never a clock is read here.

use std::time::Instant;

use crate::rtcp::ntp_time::compact_from_duration;
use crate::rtcp::report_block::{CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN};
use crate::rtcp::{NtpTime, ReportBlock};
use crate::rtp::{SeqNo, Ssrc};

/// Sequential packets needed before a new source is valid (RFC 3550 A.1).
pub const MIN_SEQUENTIAL: u32 = 2;
/// The largest forward jump still taken as loss rather than a restart (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3_000;
/// The largest backward step still taken as reordering (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;

const SEQ_MOD: u64 = 1 << 16;
/// Packets behind the highest one whose reception the duplicate window remembers.
const WINDOW_BITS: u16 = 128;

/// What the statistics made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reception {
    /// Newer than every packet so far (with or without a gap of lost packets before it).
    InOrder(SeqNo),
    /// Older than the highest packet, within [`MAX_MISORDER`], and not seen before.
    Reordered(SeqNo),
    /// A sequence number already received.
    Duplicate(SeqNo),
    /// The source is still on probation; the packet is not counted.
    Probation,
    /// A jump of [`MAX_DROPOUT`] or more ahead (or [`MAX_MISORDER`] or more behind); the
    /// packet is not counted. If the next packet follows it, the stream restarts there.
    Jump,
    /// The packet after a jump followed it: the sender restarted, statistics start over.
    Restarted(SeqNo),
    /// Older than the first packet counted since the stream started or restarted; not
    /// counted (A.1 would count it, under-reporting loss).
    BeforeStart,
}

/// Receive statistics and source validation for one incoming RTP stream.
#[derive(Debug, Clone)]
pub struct RtpStreamRecv {
    ssrc: Ssrc,
    clock_rate: u32,
    min_sequential: u32,
    /// Whether any packet was seen (the state below is set up by the first).
    started: bool,
    probation: u32,
    /// The wire value of the highest sequence number.
    max_seq: u16,
    /// Wraps of the sequence number times 2^16 (A.1 `cycles`).
    cycles: u64,
    /// The extended sequence number of the first packet counted.
    base_ext: u64,
    /// The wire value a restart needs next, after a jump (A.1 `bad_seq`).
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Bit i set: extended sequence number `max_ext - i` was received.
    window: u128,
    /// The arrival time that is RTP time 0 for the jitter estimate.
    arrival_base: Option<Instant>,
    /// The previous packet's transit time (A.8), in RTP units.
    transit: Option<u32>,
    /// Interarrival jitter in RTP units times 16 (A.8 integer form).
    jitter_x16: u64,
    duplicates: u64,
    reordered: u64,
    jumps: u64,
    restarts: u64,
    /// The middle 32 bits of the last SR's NTP time and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl RtpStreamRecv {
    /// Statistics for the stream of `ssrc`, whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: Ssrc, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            min_sequential: MIN_SEQUENTIAL,
            started: false,
            probation: 0,
            max_seq: 0,
            cycles: 0,
            base_ext: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            window: 0,
            arrival_base: None,
            transit: None,
            jitter_x16: 0,
            duplicates: 0,
            reordered: 0,
            jumps: 0,
            restarts: 0,
            last_sr: None,
        }
    }

    /// Sets how many sequential packets validate the source; 0 or 1 validates on the first
    /// packet (for a source signalling already vouches for). Takes effect before the first
    /// packet only.
    pub fn with_min_sequential(mut self, n: u32) -> Self {
        self.min_sequential = n;
        self
    }

    /// The source these statistics are about.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The RTP clock rate in Hz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    fn max_ext(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Starts counting at wire value `seq` (A.1 `init_seq`) in the current cycle.
    fn init_seq(&mut self, seq: u16) {
        self.max_seq = seq;
        self.base_ext = self.max_ext();
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.window = 0;
    }

    /// Accounts one packet with wire sequence number `seq` and RTP timestamp `timestamp`
    /// that arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, seq: u16, timestamp: u32) -> Reception {
        let reception = self.update_seq(seq);
        match reception {
            Reception::InOrder(_) | Reception::Reordered(_) => self.update_jitter(now, timestamp),
            Reception::Restarted(_) => {
                self.transit = None;
                self.update_jitter(now, timestamp);
            }
            Reception::Duplicate(_)
            | Reception::Probation
            | Reception::Jump
            | Reception::BeforeStart => {}
        }
        reception
    }

    fn update_seq(&mut self, seq: u16) -> Reception {
        if !self.started {
            self.started = true;
            self.probation = self.min_sequential;
            self.max_seq = seq.wrapping_sub(1);
            if self.probation == 0 {
                self.probation = 1;
            }
        }
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.count_in_order();
                    return Reception::InOrder(SeqNo(self.max_ext()));
                }
            } else {
                self.probation = self.min_sequential.saturating_sub(1).max(1);
                self.max_seq = seq;
            }
            return Reception::Probation;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            return self.count_old(0);
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
            self.window = if udelta >= WINDOW_BITS {
                0
            } else {
                self.window << udelta
            };
            self.count_in_order();
            return Reception::InOrder(SeqNo(self.max_ext()));
        }
        if u64::from(udelta) <= SEQ_MOD - u64::from(MAX_MISORDER) {
            if self.bad_seq == Some(seq) {
                self.restarts += 1;
                // Unlike A.1, keep the extended numbering increasing across the restart.
                if seq < self.max_seq {
                    self.cycles += SEQ_MOD;
                }
                self.init_seq(seq);
                self.count_in_order();
                return Reception::Restarted(SeqNo(self.max_ext()));
            }
            self.jumps += 1;
            self.bad_seq = Some(seq.wrapping_add(1));
            return Reception::Jump;
        }
        // 1 <= back < MAX_MISORDER: a late or duplicated packet.
        self.count_old(0u16.wrapping_sub(udelta))
    }

    fn count_in_order(&mut self) {
        self.received += 1;
        self.window |= 1;
    }

    /// Counts a packet `back` behind the highest one.
    fn count_old(&mut self, back: u16) -> Reception {
        let max_ext = self.max_ext();
        let ext = match max_ext.checked_sub(u64::from(back)) {
            Some(ext) if ext >= self.base_ext => ext,
            _ => return Reception::BeforeStart,
        };
        // A.3 counts late and duplicated packets as received.
        self.received += 1;
        // back < MAX_MISORDER < WINDOW_BITS, so the shift is in range.
        let bit = 1u128 << back;
        if self.window & bit != 0 {
            self.duplicates += 1;
            return Reception::Duplicate(SeqNo(ext));
        }
        self.window |= bit;
        self.reordered += 1;
        Reception::Reordered(SeqNo(ext))
    }

    /// A.8: the arrival time in RTP units, the transit time, and the running jitter.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let base = *self.arrival_base.get_or_insert(now);
        let elapsed = now.saturating_duration_since(base);
        // Truncating to 32 bits wraps like the RTP timestamp does, which the transit
        // difference below tolerates.
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            // Reinterpreting the wrapped difference as signed gives the true (small) delta.
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Remembers a sender report from this source that arrived at `now` carrying `ntp`, for
    /// the LSR and DLSR of later report blocks.
    pub fn handle_sender_report(&mut self, now: Instant, ntp: NtpTime) {
        self.last_sr = Some((ntp.middle32(), now));
    }

    /// Whether the source passed probation.
    pub fn is_valid(&self) -> bool {
        self.started && self.probation == 0
    }

    /// The highest extended sequence number counted.
    pub fn highest_seq(&self) -> Option<SeqNo> {
        self.is_valid().then(|| SeqNo(self.max_ext()))
    }

    /// Packets expected since the stream started or restarted (A.3).
    pub fn expected(&self) -> u64 {
        if self.is_valid() {
            self.max_ext() - self.base_ext + 1
        } else {
            0
        }
    }

    /// Packets counted as received, late and duplicated ones included (A.3).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Expected minus received, clamped to the signed 24 bits of a report block.
    pub fn cumulative_lost(&self) -> i32 {
        clamp_lost(i128::from(self.expected()) - i128::from(self.received))
    }

    /// The interarrival jitter estimate in RTP timestamp units.
    pub fn jitter_ticks(&self) -> u32 {
        u32::try_from(self.jitter_x16 >> 4).unwrap_or(u32::MAX)
    }

    /// Duplicated packets seen.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets that arrived after a newer one (not duplicates).
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Jumps in sequence number too large to be loss or reordering.
    pub fn jumps(&self) -> u64 {
        self.jumps
    }

    /// Restarts detected after a jump.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// The report block about this stream for an RR or SR sent at `now`, and the start of a
    /// new reporting interval. `None` before the source is valid.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        if !self.is_valid() {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i128::from(expected_interval) - i128::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // All lost gives 256, which the 8-bit field cannot hold: report 255.
            u8::try_from((lost_interval << 8) / i128::from(expected_interval)).unwrap_or(u8::MAX)
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (
                lsr,
                compact_from_duration(now.saturating_duration_since(at)),
            ),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            // The wire field is the low 32 bits of the extended sequence number.
            highest_seq: self.max_ext() as u32,
            jitter_ticks: self.jitter_ticks(),
            lsr,
            dlsr,
        })
    }
}

/// Clamps a loss count to the signed 24-bit report block field.
fn clamp_lost(lost: i128) -> i32 {
    let clamped = lost.clamp(
        i128::from(CUMULATIVE_LOST_MIN),
        i128::from(CUMULATIVE_LOST_MAX),
    );
    // In range of i32 after the clamp.
    clamped as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RATE: u32 = 8_000;

    fn valid_stream(first: u16) -> (RtpStreamRecv, Instant) {
        let t0 = Instant::now();
        let mut s = RtpStreamRecv::new(Ssrc(1), RATE);
        assert_eq!(s.handle_packet(t0, first, 0), Reception::Probation);
        assert_eq!(
            s.handle_packet(t0, first.wrapping_add(1), 160),
            Reception::InOrder(SeqNo(u64::from(first.wrapping_add(1))))
        );
        (s, t0)
    }

    #[test]
    fn probation_needs_min_sequential_packets() {
        let t = Instant::now();
        let mut s = RtpStreamRecv::new(Ssrc(1), RATE);
        assert_eq!(s.report_block(t), None);
        assert_eq!(s.handle_packet(t, 100, 0), Reception::Probation);
        assert!(!s.is_valid());
        // Not sequential: probation starts over from this packet.
        assert_eq!(s.handle_packet(t, 500, 0), Reception::Probation);
        assert_eq!(s.handle_packet(t, 501, 0), Reception::InOrder(SeqNo(501)));
        assert!(s.is_valid());
        assert_eq!(s.received(), 1);
        assert_eq!(s.expected(), 1);
        let mut three = RtpStreamRecv::new(Ssrc(1), RATE).with_min_sequential(3);
        assert_eq!(three.handle_packet(t, 1, 0), Reception::Probation);
        assert_eq!(three.handle_packet(t, 2, 0), Reception::Probation);
        assert_eq!(three.handle_packet(t, 3, 0), Reception::InOrder(SeqNo(3)));
        let mut zero = RtpStreamRecv::new(Ssrc(1), RATE).with_min_sequential(0);
        assert_eq!(zero.handle_packet(t, 9, 0), Reception::InOrder(SeqNo(9)));
        assert_eq!(zero.highest_seq(), Some(SeqNo(9)));
    }

    #[test]
    fn counts_loss_through_a_wrap_and_reports_intervals() {
        let (mut s, t) = valid_stream(65_500);
        // Base is 65501. Receive up to 65535+200 with every 10th lost.
        let mut ext = 65_501u64;
        let mut lost = 0;
        while ext < 65_536 + 200 {
            ext += 1;
            if ext.is_multiple_of(10) {
                lost += 1;
                continue;
            }
            let r = s.handle_packet(t, ext as u16, 0);
            assert_eq!(r, Reception::InOrder(SeqNo(ext)));
        }
        assert_eq!(s.expected(), ext - 65_501 + 1);
        assert_eq!(s.cumulative_lost(), lost);
        let rb = s.report_block(t).unwrap();
        assert_eq!(rb.highest_seq, ext as u32);
        assert_eq!(rb.highest_seq >> 16, 1, "one cycle");
        assert_eq!(rb.cumulative_lost, lost);
        assert_eq!(lost, 23);
        // 23 of 236 expected lost: 23 * 256 / 236 = 24.9.
        assert_eq!(rb.fraction_lost, 24);
        // Next interval: 100 expected, 25 lost.
        for i in 1..=100u64 {
            if i % 4 != 1 {
                s.handle_packet(t, (ext + i) as u16, 0);
            }
        }
        let rb = s.report_block(t).unwrap();
        assert_eq!(rb.fraction_lost, 64);
        assert_eq!(rb.cumulative_lost, lost + 25);
        // Nothing new: fraction zero.
        assert_eq!(s.report_block(t).unwrap().fraction_lost, 0);
    }

    #[test]
    fn all_lost_in_an_interval_reports_255() {
        let (mut s, t) = valid_stream(0);
        s.report_block(t);
        // 1..=1 received, then 2..=101 lost, then 102 arrives: 101 expected, 1 received.
        s.handle_packet(t, 102, 0);
        let rb = s.report_block(t).unwrap();
        assert_eq!(rb.fraction_lost, 253); // 100 * 256 / 101
        // An interval where the only "packet" is a duplicate of the highest one.
        let mut s2 = RtpStreamRecv::new(Ssrc(1), RATE).with_min_sequential(0);
        s2.handle_packet(t, 5, 0);
        s2.report_block(t);
        s2.handle_packet(t, 2_000, 0); // a gap of 1994 lost
        s2.received_prior = s2.received; // force received_interval = 0
        assert_eq!(s2.report_block(t).unwrap().fraction_lost, 255);
    }

    #[test]
    fn duplicates_and_reordering_are_counted() {
        let (mut s, t) = valid_stream(10);
        for seq in 12..=20 {
            s.handle_packet(t, seq, 0);
        }
        assert_eq!(s.handle_packet(t, 20, 0), Reception::Duplicate(SeqNo(20)));
        assert_eq!(s.handle_packet(t, 15, 0), Reception::Duplicate(SeqNo(15)));
        assert_eq!(s.handle_packet(t, 23, 0), Reception::InOrder(SeqNo(23)));
        assert_eq!(s.handle_packet(t, 21, 0), Reception::Reordered(SeqNo(21)));
        assert_eq!(s.handle_packet(t, 21, 0), Reception::Duplicate(SeqNo(21)));
        assert_eq!(s.duplicates(), 3);
        assert_eq!(s.reordered(), 1);
        // 11..=23 expected (13), received 11..=21, 23 plus 3 duplicates: lost 1 - 3.
        assert_eq!(s.expected(), 13);
        assert_eq!(s.cumulative_lost(), 1 - 3);
        // Older than the first counted packet: ignored.
        assert_eq!(s.handle_packet(t, 5, 0), Reception::BeforeStart);
    }

    #[test]
    fn reordered_across_the_wrap_maps_to_previous_cycle() {
        let (mut s, t) = valid_stream(65_530);
        assert_eq!(
            s.handle_packet(t, 65_533, 0),
            Reception::InOrder(SeqNo(65_533))
        );
        assert_eq!(s.handle_packet(t, 1, 0), Reception::InOrder(SeqNo(65_537)));
        assert_eq!(
            s.handle_packet(t, 65_535, 0),
            Reception::Reordered(SeqNo(65_535))
        );
        assert_eq!(
            s.handle_packet(t, 0, 0),
            Reception::Reordered(SeqNo(65_536))
        );
        assert_eq!(
            s.handle_packet(t, 65_532, 0),
            Reception::Reordered(SeqNo(65_532))
        );
        assert_eq!(s.handle_packet(t, 2, 0), Reception::InOrder(SeqNo(65_538)));
        // 65531..=65538 expected (8): 65534 missing.
        assert_eq!(s.cumulative_lost(), 1);
    }

    #[test]
    fn big_jump_then_sequential_restarts() {
        let (mut s, t) = valid_stream(1_000);
        assert_eq!(
            s.handle_packet(t, 1_002, 0),
            Reception::InOrder(SeqNo(1_002))
        );
        assert_eq!(s.handle_packet(t, 40_000, 0), Reception::Jump);
        assert_eq!(s.handle_packet(t, 50_000, 0), Reception::Jump);
        // Packets of the old numbering still count between jumps.
        assert_eq!(s.handle_packet(t, 1_000, 0), Reception::BeforeStart);
        assert_eq!(
            s.handle_packet(t, 1_003, 0),
            Reception::InOrder(SeqNo(1_003))
        );
        // The packet after the last jump's restarts the stream (A.1 keeps bad_seq).
        assert_eq!(
            s.handle_packet(t, 50_001, 0),
            Reception::Restarted(SeqNo(50_001))
        );
        assert_eq!(s.jumps(), 2);
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.expected(), 1);
        assert_eq!(s.received(), 1);
        assert_eq!(
            s.handle_packet(t, 50_002, 0),
            Reception::InOrder(SeqNo(50_002))
        );
        // Backward restart keeps the extended numbers increasing.
        assert_eq!(s.handle_packet(t, 10, 0), Reception::Jump);
        assert_eq!(
            s.handle_packet(t, 11, 0),
            Reception::Restarted(SeqNo(65_536 + 11))
        );
        assert_eq!(
            s.handle_packet(t, 12, 0),
            Reception::InOrder(SeqNo(65_536 + 12))
        );
        assert_eq!(s.jumps(), 3);
        assert_eq!(s.restarts(), 2);
    }

    #[test]
    fn a_step_of_max_misorder_behind_is_a_jump() {
        let (mut s, t) = valid_stream(1_000);
        s.handle_packet(t, 1_200, 0);
        assert_eq!(
            s.handle_packet(t, 1_101, 0),
            Reception::Reordered(SeqNo(1_101))
        );
        assert_eq!(s.handle_packet(t, 1_100, 0), Reception::Jump);
        assert_eq!(
            s.handle_packet(t, 1_200 + 2_999, 0),
            Reception::InOrder(SeqNo(4_199))
        );
        assert_eq!(s.handle_packet(t, 4_199 + 3_000, 0), Reception::Jump);
    }

    #[test]
    fn cumulative_loss_clamps_at_24_bits() {
        assert_eq!(clamp_lost(1 << 30), CUMULATIVE_LOST_MAX);
        assert_eq!(clamp_lost(-(1 << 30)), CUMULATIVE_LOST_MIN);
        assert_eq!(clamp_lost(-5), -5);
        // Lose 2998 of every 2999 for long enough to pass 2^23 lost.
        let (mut s, t) = valid_stream(0);
        let mut seq = 1u16;
        for _ in 0..2_900 {
            seq = seq.wrapping_add(2_999);
            s.handle_packet(t, seq, 0);
        }
        assert_eq!(s.cumulative_lost(), CUMULATIVE_LOST_MAX);
        assert_eq!(
            s.report_block(t).unwrap().cumulative_lost,
            CUMULATIVE_LOST_MAX
        );
    }

    #[test]
    fn jitter_is_zero_for_constant_transit() {
        let (mut s, t0) = valid_stream(0);
        for i in 2..200u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            s.handle_packet(now, i as u16, 160 * i);
        }
        assert_eq!(s.jitter_ticks(), 0);
    }

    #[test]
    fn jitter_follows_rfc3550_a8_estimator() {
        // Arrival alternates 0 and 40 ms late: |D| is 320 ticks on every packet after the
        // first; J converges on 320. Compare with the floating estimator of section 6.4.1.
        let t0 = Instant::now();
        let mut s = RtpStreamRecv::new(Ssrc(1), RATE).with_min_sequential(0);
        let mut float_j = 0.0f64;
        let mut prev_transit: Option<f64> = None;
        for i in 0..300u32 {
            let late_ms = if i % 2 == 1 { 40 } else { 0 };
            let arrival_ms = 20 * u64::from(i) + late_ms;
            let now = t0 + Duration::from_millis(arrival_ms);
            s.handle_packet(now, i as u16, 160 * i);
            let transit = arrival_ms as f64 * 8.0 - 160.0 * f64::from(i);
            if let Some(p) = prev_transit {
                float_j += ((transit - p).abs() - float_j) / 16.0;
            }
            prev_transit = Some(transit);
            let diff = (f64::from(s.jitter_ticks()) - float_j).abs();
            // The integer form truncates when reporting (>> 4): within 2 ticks.
            assert!(diff < 2.0, "packet {i}: {} vs {float_j}", s.jitter_ticks());
        }
        assert!((315..=320).contains(&s.jitter_ticks()));
        assert_eq!(s.report_block(t0).unwrap().jitter_ticks, s.jitter_ticks());
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let t0 = Instant::now();
        let mut s = RtpStreamRecv::new(Ssrc(1), 48_000).with_min_sequential(0);
        let start = u32::MAX - 960 * 50;
        for i in 0..100u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            s.handle_packet(now, i as u16, start.wrapping_add(960 * i));
        }
        assert_eq!(s.jitter_ticks(), 0);
    }

    #[test]
    fn report_block_carries_lsr_and_dlsr() {
        let (mut s, t0) = valid_stream(0);
        let ntp = NtpTime(0x1234_5678_9abc_def0);
        s.handle_sender_report(t0, ntp);
        let rb = s.report_block(t0 + Duration::from_millis(1_500)).unwrap();
        assert_eq!(rb.lsr, 0x5678_9abc);
        assert_eq!(rb.dlsr, 0x0001_8000);
        assert_eq!(rb.ssrc, Ssrc(1));
        // The sender computing RTT from it: SR sent at ntp, block back 1.5 s + 80 ms later.
        let back = ntp + Duration::from_millis(1_580);
        let rtt = rb.rtt(back).unwrap();
        assert!(rtt.abs_diff(Duration::from_millis(80)) < Duration::from_micros(50));
    }

    #[test]
    fn matches_a_set_model_under_random_loss_reorder_and_duplication() {
        use crate::rtp::xorshift::Xorshift;
        use std::collections::HashSet;
        for seed in 1..=8u64 {
            let mut rng = Xorshift::new(seed);
            // Sent packets: extended numbers from a start near a wrap, 10% lost.
            let start = 60_000 + rng.below(5_000);
            let mut arrivals: Vec<u64> = (start..start + 20_000)
                .filter(|_| !rng.chance(10))
                .collect();
            // Local reordering within 20 positions, and duplicates of recent packets.
            for i in 0..arrivals.len() {
                if rng.chance(5) {
                    let j = (i + 1 + rng.below(20) as usize).min(arrivals.len() - 1);
                    arrivals.swap(i, j);
                }
            }
            let mut i = 30;
            while i < arrivals.len() {
                if rng.chance(3) {
                    let dup = arrivals[i - 1 - rng.below(30) as usize];
                    arrivals.insert(i, dup);
                }
                i += 1;
            }

            let t = Instant::now();
            let mut s = RtpStreamRecv::new(Ssrc(1), RATE).with_min_sequential(0);
            let base = arrivals[0];
            let mut seen = HashSet::new();
            let (mut max, mut received, mut dups, mut reordered) = (base, 0u64, 0u64, 0u64);
            for &ext in &arrivals {
                let got = s.handle_packet(t, ext as u16, 0);
                let want = if ext < base {
                    Reception::BeforeStart
                } else if !seen.insert(ext) {
                    dups += 1;
                    Reception::Duplicate(SeqNo(ext))
                } else if ext > max || received == 0 {
                    max = max.max(ext);
                    Reception::InOrder(SeqNo(ext))
                } else {
                    reordered += 1;
                    Reception::Reordered(SeqNo(ext))
                };
                if want != Reception::BeforeStart {
                    received += 1;
                }
                assert_eq!(got, want, "seed {seed} ext {ext}");
            }
            assert_eq!(s.highest_seq(), Some(SeqNo(max)));
            assert_eq!(s.expected(), max - base + 1);
            assert_eq!(s.received(), received);
            assert_eq!(s.duplicates(), dups);
            assert_eq!(s.reordered(), reordered);
            assert_eq!(
                s.cumulative_lost() as i64,
                (max - base + 1) as i64 - received as i64
            );
            assert_eq!(s.jumps(), 0);
        }
    }

    #[test]
    fn survives_random_input() {
        use crate::rtp::xorshift::Xorshift;
        let mut rng = Xorshift::new(99);
        let t0 = Instant::now();
        let mut s = RtpStreamRecv::new(Ssrc(1), 90_000);
        for i in 0..200_000u64 {
            let now = t0 + Duration::from_micros(rng.below(1_000_000_000));
            s.handle_packet(now, rng.next_u64() as u16, rng.next_u64() as u32);
            if i % 1_000 == 0 {
                s.handle_sender_report(now, NtpTime(rng.next_u64()));
                let rb = s.report_block(t0 + Duration::from_micros(rng.below(1 << 40)));
                if let Some(rb) = rb {
                    assert!(
                        (CUMULATIVE_LOST_MIN..=CUMULATIVE_LOST_MAX).contains(&rb.cumulative_lost)
                    );
                }
            }
        }
    }
}
