//! RFC 4733 key presses sent to a leg, sans-IO: one event packet per tick while a key is
//! down (the first with the marker bit), the end packet three times (RFC 4733 2.5.1.4), then
//! a pause before the next key. Every packet of one press carries the press's start
//! timestamp; the duration grows.

use std::collections::VecDeque;

use crate::rtp::TelephoneEvent;

/// How long a key is held, and the pause after it (ITU-T Q.24 asks for at least 40 ms of
/// each; phone networks commonly use 100 ms tones).
pub const KEY_MS: u32 = 100;
/// The pause after a key.
pub const GAP_MS: u32 = 60;
/// RFC 4733 volume: -10 dBm0, written as 10.
const VOLUME: u8 = 10;

/// The RFC 4733 event code of a key, or None.
pub fn event_code(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Press {
    event: u8,
    /// Ticks sent so far.
    ticks: u32,
    /// End packets sent so far.
    ends: u8,
    /// The RTP timestamp the press started at.
    start_ts: u32,
}

/// One packet to send: its payload, whether it carries the marker bit, its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte RFC 4733 payload.
    pub payload: [u8; 4],
    /// First packet of a press.
    pub marker: bool,
    /// The press's start timestamp.
    pub timestamp: u32,
    /// The press is over after this packet (its last end packet): the audio clock should be
    /// at least `timestamp + duration` from now on.
    pub done_at: Option<u32>,
}

/// Keys queued for a leg and the press in progress.
#[derive(Debug, Default)]
pub struct DtmfSender {
    queue: VecDeque<u8>,
    press: Option<Press>,
    /// Ticks of pause left before the next key.
    gap_ticks: u32,
}

impl DtmfSender {
    /// Queues keys (`0`-`9`, `*`, `#`, `A`-`D`; others are skipped); returns how many.
    pub fn queue(&mut self, keys: &str) -> usize {
        let before = self.queue.len();
        self.queue.extend(keys.chars().filter_map(event_code));
        self.queue.len() - before
    }

    /// Whether nothing is queued or playing.
    pub fn is_idle(&self) -> bool {
        self.press.is_none() && self.queue.is_empty()
    }

    /// One tick of `tick_ms` on a `clock_rate` clock: the packet to send now, if any.
    /// `audio_ts` is the leg's current outbound timestamp (where a new press starts).
    pub fn tick(&mut self, tick_ms: u32, clock_rate: u32, audio_ts: u32) -> Option<EventPacket> {
        if self.press.is_none() {
            if self.gap_ticks > 0 {
                self.gap_ticks -= 1;
                return None;
            }
            let event = self.queue.pop_front()?;
            self.press = Some(Press {
                event,
                ticks: 0,
                ends: 0,
                start_ts: audio_ts,
            });
        }
        // INVARIANT: set just above when it was None.
        let p = self.press.as_mut()?;
        let key_ticks = KEY_MS.div_ceil(tick_ms.max(1)).max(1);
        let marker = p.ticks == 0 && p.ends == 0;
        let ending = p.ticks + 1 >= key_ticks;
        if p.ticks < key_ticks {
            p.ticks += 1;
        }
        let duration = (p.ticks * tick_ms * clock_rate / 1000).min(u32::from(u16::MAX));
        let event = TelephoneEvent {
            event: p.event,
            end: ending,
            volume: VOLUME,
            duration: duration as u16,
        };
        let mut payload = [0u8; 4];
        // INVARIANT: the buffer is TelephoneEvent::LEN bytes.
        let _ = event.write(&mut payload);
        let timestamp = p.start_ts;
        let mut done_at = None;
        if ending {
            p.ends += 1;
            if p.ends >= 3 {
                done_at = Some(p.start_ts.wrapping_add(duration));
                self.press = None;
                self.gap_ticks = GAP_MS.div_ceil(tick_ms.max(1));
            }
        }
        Some(EventPacket {
            payload,
            marker,
            timestamp,
            done_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_is_marked_then_grows_then_ends_three_times() {
        let mut s = DtmfSender::default();
        assert_eq!(s.queue("1x#"), 2);
        let mut packets = Vec::new();
        for _ in 0..40 {
            packets.push(s.tick(20, 8000, 1_000));
        }
        let sent: Vec<EventPacket> = packets.iter().flatten().copied().collect();
        // Key 1: 5 ticks of 20 ms (the 5th with E), two more end packets; 3 ticks of gap; #.
        let first: Vec<TelephoneEvent> = sent[..7]
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert!(sent[0].marker && !sent[1].marker);
        assert!(first.iter().all(|e| e.event == 1));
        assert_eq!(
            first.iter().map(|e| e.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(first.iter().filter(|e| e.end).count(), 3);
        assert_eq!(sent[6].done_at, Some(1_800));
        assert!(packets[7..10].iter().all(Option::is_none), "the gap");
        let pound = TelephoneEvent::parse(&sent[7].payload).unwrap();
        assert_eq!(pound.event, 11);
        assert!(sent[7].marker);
        assert_eq!(sent.len(), 14);
        assert!(s.is_idle());
    }
}
