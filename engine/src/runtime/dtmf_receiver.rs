//! Key presses from a leg's RFC 4733 `telephone-event` packets: one report per event, however
//! many packets carry it.
//!
//! A sender announces one event in many packets that share the event's RTP timestamp: a start,
//! duration updates (about every 50 ms), then the end (E bit) sent three times; start packets
//! may be retransmitted too (RFC 4733 sections 2.5.1.2-2.5.1.4). The receiver identifies an
//! event by (timestamp, event code) and reports it once:
//!
//! - on its first end packet;
//! - when a different event starts before its end arrived (end packets lost);
//! - when nothing was heard of it for [`END_TIMEOUT`] (end packets lost, nothing after).
//!
//! Events already reported are remembered (the last [`RECENT`] of them), so the end
//! retransmissions and late, reordered or duplicated packets of a finished event are ignored.
//! An event longer than the 16-bit duration field continues in segments with new timestamps
//! (RFC 4733 section 2.5.1.3); a segment that continues the open event extends it.
//!
//! Sans-IO: `handle_packet` and `handle_timeout` take `now`; `poll_report` drains the reports,
//! `poll_timeout` says when the open event would time out. Nothing allocates.

use std::time::{Duration, Instant};

use crate::rtp::{RtpError, TelephoneEvent};

/// An event with no packet for this long is over: about ten lost updates at the usual 50 ms.
pub const END_TIMEOUT: Duration = Duration::from_millis(500);
/// Finished events remembered to recognise their late and retransmitted packets.
const RECENT: usize = 8;
/// The largest duration of one segment (RFC 4733 section 2.5.1.3).
const SEGMENT_MAX: u16 = 0xffff;

/// One finished event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfReport {
    /// The RFC 4733 event code (a key for 0-15).
    pub event: u8,
    /// How long it lasted, in milliseconds.
    pub duration_ms: u32,
}

/// The event being received.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Timestamp of the current segment.
    timestamp: u32,
    event: u8,
    clock_rate: u32,
    /// Duration of the segments before the current one, in timestamp units.
    earlier: u64,
    /// Longest duration seen in the current segment.
    duration: u16,
    last_heard: Instant,
}

/// The RFC 4733 receiver of one leg.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    open: Option<Open>,
    /// (timestamp, event) of finished events and segments, oldest overwritten first.
    recent: [Option<(u32, u8)>; RECENT],
    recent_next: usize,
    /// Reports not yet polled (a packet can finish one event and be a whole other one).
    reports: [Option<DtmfReport>; 2],
    /// Packets of events already reported, ignored.
    pub late_packets: u64,
}

impl DtmfReceiver {
    /// A receiver with nothing heard yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an event is in progress (a timeout is pending).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Takes one `telephone-event` packet: its RTP timestamp, the clock rate negotiated for
    /// its payload type, and its payload. A payload too short for an event block is an error
    /// and changes nothing.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        clock_rate: u32,
        payload: &[u8],
    ) -> Result<(), RtpError> {
        let ev = TelephoneEvent::parse(payload)?;
        if self.recent.contains(&Some((timestamp, ev.event))) {
            self.late_packets += 1;
            return Ok(());
        }
        match self.open.as_mut() {
            Some(o) if o.timestamp == timestamp && o.event == ev.event => {
                o.duration = o.duration.max(ev.duration);
                o.last_heard = now;
            }
            // The next segment of a long event: it starts where the previous one ends.
            Some(o)
                if o.event == ev.event
                    && o.duration == SEGMENT_MAX
                    && timestamp == o.timestamp.wrapping_add(u32::from(SEGMENT_MAX)) =>
            {
                let done = (o.timestamp, o.event);
                o.earlier += u64::from(o.duration);
                o.timestamp = timestamp;
                o.duration = ev.duration;
                o.last_heard = now;
                self.remember(done);
            }
            _ => {
                // A new event: the open one (if any) lost its end packets.
                self.finish();
                self.open = Some(Open {
                    timestamp,
                    event: ev.event,
                    clock_rate: clock_rate.max(1),
                    earlier: 0,
                    duration: ev.duration,
                    last_heard: now,
                });
            }
        }
        if ev.end {
            self.finish();
        }
        Ok(())
    }

    /// When the open event times out, if one is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.open.map(|o| o.last_heard + END_TIMEOUT)
    }

    /// Ends the open event if it has been silent for [`END_TIMEOUT`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| now >= at) {
            self.finish();
        }
    }

    /// The next finished event, oldest first.
    pub fn poll_report(&mut self) -> Option<DtmfReport> {
        let first = self.reports[0].take();
        self.reports[0] = self.reports[1].take();
        first
    }

    fn finish(&mut self) {
        let Some(o) = self.open.take() else {
            return;
        };
        self.remember((o.timestamp, o.event));
        let units = o.earlier + u64::from(o.duration);
        let report = DtmfReport {
            event: o.event,
            duration_ms: u32::try_from(units * 1000 / u64::from(o.clock_rate)).unwrap_or(u32::MAX),
        };
        // Unpolled reports: at most one per packet is left over, so two slots suffice; a
        // caller that never polls loses the oldest.
        if self.reports[0].is_none() {
            self.reports[0] = Some(report);
        } else {
            if self.reports[1].is_some() {
                self.reports[0] = self.reports[1];
            }
            self.reports[1] = Some(report);
        }
    }

    fn remember(&mut self, id: (u32, u8)) {
        self.recent[self.recent_next % RECENT] = Some(id);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A telephone-event payload.
    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let mut b = [0u8; 4];
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .write(&mut b)
        .unwrap();
        b
    }

    /// A sender's packets for one key press at 8 kHz: start, updates every 50 ms, three ends.
    fn press(event: u8, ms: u16) -> Vec<[u8; 4]> {
        let mut p: Vec<_> = (0..ms / 50).map(|i| ev(event, false, i * 400)).collect();
        p.extend([ev(event, true, ms * 8); 3]);
        p
    }

    fn drain(r: &mut DtmfReceiver) -> Vec<(u8, u32)> {
        std::iter::from_fn(|| r.poll_report())
            .map(|d| (d.event, d.duration_ms))
            .collect()
    }

    #[test]
    fn a_clean_key_press_is_one_report() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        for (i, p) in press(5, 200).iter().enumerate() {
            r.handle_packet(t0 + 50 * MS * i as u32, 8000, 8000, p)
                .unwrap();
        }
        assert_eq!(drain(&mut r), vec![(5, 200)]);
        assert!(!r.is_open());
        assert_eq!(r.late_packets, 2, "the two end retransmissions");
    }

    #[test]
    fn lost_end_packets_report_on_the_next_event_or_the_timeout() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        // Digit 1 without its ends, then digit 2 starts: 1 is over.
        for p in &press(1, 100)[..2] {
            r.handle_packet(t0, 1000, 8000, p).unwrap();
        }
        assert_eq!(drain(&mut r), vec![]);
        r.handle_packet(t0 + 200 * MS, 3000, 8000, &ev(2, false, 0))
            .unwrap();
        assert_eq!(drain(&mut r), vec![(1, 50)]);
        // Digit 2 loses its ends and nothing follows: the timeout ends it, once.
        r.handle_packet(t0 + 250 * MS, 3000, 8000, &ev(2, false, 800))
            .unwrap();
        let at = r.poll_timeout().unwrap();
        assert_eq!(at, t0 + 250 * MS + END_TIMEOUT);
        r.handle_timeout(at - MS);
        assert_eq!(drain(&mut r), vec![]);
        r.handle_timeout(at);
        assert_eq!(drain(&mut r), vec![(2, 100)]);
        r.handle_timeout(at + END_TIMEOUT);
        assert_eq!(r.poll_timeout(), None);
        // An end packet of 2 arriving after all: already reported.
        r.handle_packet(at + MS, 3000, 8000, &ev(2, true, 960))
            .unwrap();
        assert_eq!(drain(&mut r), vec![]);
    }

    #[test]
    fn duplicated_and_reordered_packets_do_not_repeat_a_digit() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        let a = press(3, 150);
        let b = press(4, 100);
        // Every packet twice; 3's last update overtaken by its first end; one of 3's end
        // packets arrives after 4 started.
        let order = [
            (10u32, a[0]),
            (10, a[0]),
            (10, a[1]),
            (10, a[3]),
            (10, a[2]),
            (10, a[2]),
            (10, a[4]),
            (2000, b[0]),
            (10, a[5]),
            (2000, b[1]),
            (2000, b[1]),
            (2000, b[2]),
            (2000, b[3]),
            (2000, b[4]),
        ];
        for (i, (ts, p)) in order.iter().enumerate() {
            r.handle_packet(t0 + 10 * MS * i as u32, *ts, 8000, p)
                .unwrap();
        }
        assert_eq!(drain(&mut r), vec![(3, 150), (4, 100)]);
    }

    #[test]
    fn the_same_digit_twice_is_two_presses() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        for (n, ts) in [(0u32, 8000u32), (1, 16_000)] {
            for p in press(7, 100) {
                r.handle_packet(t0 + n * 1000 * MS, ts, 8000, &p).unwrap();
            }
        }
        assert_eq!(drain(&mut r), vec![(7, 100), (7, 100)]);
        // The same press with its end lost, twice in a row: the second start ends the first.
        r.handle_packet(t0, 30_000, 8000, &ev(7, false, 0)).unwrap();
        r.handle_packet(t0, 31_000, 8000, &ev(7, false, 0)).unwrap();
        r.handle_packet(t0, 31_000, 8000, &ev(7, true, 400))
            .unwrap();
        assert_eq!(drain(&mut r), vec![(7, 0), (7, 50)]);
    }

    #[test]
    fn a_long_press_reports_its_whole_duration_across_segments() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        // 48 kHz: the 16-bit duration overflows after 1.365 s. 3 s of '#', updates every
        // 50 ms (2400 units), in segments of 0xffff units.
        let (start, total) = (0xffff_f000u32, 3 * 48_000u64);
        let mut seg_start = 0u64;
        let mut at = 0u64;
        while at < total {
            at = (at + 2400).min(total);
            if at - seg_start > u64::from(SEGMENT_MAX) {
                // The old segment ends at its maximum (no E bit); the next one starts there.
                let ts = start.wrapping_add(seg_start as u32);
                r.handle_packet(t0, ts, 48_000, &ev(11, false, SEGMENT_MAX))
                    .unwrap();
                seg_start += u64::from(SEGMENT_MAX);
            }
            let ts = start.wrapping_add(seg_start as u32);
            let end = at == total;
            let p = ev(11, end, (at - seg_start) as u16);
            r.handle_packet(t0 + Duration::from_micros(at * 1000 / 48), ts, 48_000, &p)
                .unwrap();
            assert_eq!(r.is_open(), !end);
        }
        assert_eq!(drain(&mut r), vec![(11, 3000)]);
    }

    #[test]
    fn malformed_payloads_change_nothing() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        r.handle_packet(t0, 5, 8000, &ev(9, false, 0)).unwrap();
        assert!(r.handle_packet(t0, 5, 8000, &[9, 0x80]).is_err());
        assert!(r.handle_packet(t0, 6, 8000, &[]).is_err());
        r.handle_packet(t0, 5, 8000, &ev(9, true, 800)).unwrap();
        assert_eq!(drain(&mut r), vec![(9, 100)]);
    }

    #[test]
    fn unpolled_reports_keep_the_newest_two() {
        let (mut r, t0) = (DtmfReceiver::new(), Instant::now());
        for (i, d) in (0..4u8).enumerate() {
            r.handle_packet(t0, i as u32 * 1000, 8000, &ev(d, true, 80))
                .unwrap();
        }
        assert_eq!(drain(&mut r), vec![(2, 10), (3, 10)]);
    }
}
