//! The UAS core's retransmission of 2xx responses to INVITE until the ACK arrives (RFC 3261
//! 13.3.1.4), as a sans-IO machine for the dialog layer.
//!
//! With RFC 6026 the INVITE server transaction leaves 2xx retransmission to the TU. The dialog
//! layer calls [`Uas2xxRetransmitter::start`] when it sends a 2xx, feeds every ACK for a 2xx
//! ([`RequestDisposition::Ack2xx`](super::RequestDisposition::Ack2xx)) to
//! [`Uas2xxRetransmitter::handle_ack`], and sends what `poll_transmit` yields (directly, or
//! through [`TransactionLayer::respond`](super::TransactionLayer::respond) while the server
//! transaction is in Accepted). After 64*T1 without ACK it reports
//! [`Uas2xxEvent::AckTimeout`]; the dialog layer then ends the dialog with BYE.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::timer_table::{TimerSlot, TimerTable};

/// Identifies the INVITE a 2xx answered, and so the ACK that stops it: Call-ID and CSeq
/// number (the ACK for a 2xx carries the INVITE's CSeq number).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckKey {
    /// The Call-ID.
    pub call_id: String,
    /// The INVITE's CSeq number.
    pub cseq: u32,
}

/// The two timers of one 2xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Uas2xxTimer {
    /// Send the 2xx again (interval T1, doubling, capped at T2).
    Retransmit,
    /// 64*T1 without ACK.
    GiveUp,
}

impl TimerSlot for Uas2xxTimer {
    fn index(self) -> usize {
        self as usize
    }
}

/// A 2xx to send again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uas2xxTransmit<M> {
    /// The INVITE it answers.
    pub key: AckKey,
    /// The 2xx response.
    pub response: M,
}

/// What the retransmitter tells the dialog layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// No ACK within 64*T1 (RFC 3261 13.3.1.4): confirm then terminate the dialog with BYE.
    AckTimeout {
        /// The INVITE whose 2xx was never acknowledged.
        key: AckKey,
    },
}

#[derive(Debug)]
struct Pending<M> {
    response: M,
    interval: Duration,
    timers: TimerTable<Uas2xxTimer, 2>,
}

/// Retransmits 2xx responses to INVITE until their ACK arrives or 64*T1 passes.
#[derive(Debug)]
pub struct Uas2xxRetransmitter<M> {
    t1: Duration,
    t2: Duration,
    pending: HashMap<AckKey, Pending<M>>,
    /// Lazily deleted: an entry is current only while the pending 2xx's table holds it.
    deadlines: BinaryHeap<Reverse<(Instant, AckKey, Uas2xxTimer)>>,
    transmits: VecDeque<Uas2xxTransmit<M>>,
    events: VecDeque<Uas2xxEvent>,
}

impl<M: Clone> Uas2xxRetransmitter<M> {
    /// A retransmitter with the endpoint's T1 and T2.
    pub fn new(t1: Duration, t2: Duration) -> Self {
        Self {
            t1,
            t2,
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Number of 2xx responses still waiting for their ACK.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no 2xx is waiting for its ACK.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The dialog layer has just sent `response` (a 2xx to the INVITE `key`); retransmit it
    /// until the ACK. Starting again for the same key replaces the response and restarts.
    pub fn start(&mut self, now: Instant, key: AckKey, response: M) {
        let mut timers = TimerTable::default();
        timers.set(Uas2xxTimer::Retransmit, now + self.t1);
        timers.set(Uas2xxTimer::GiveUp, now + self.t1 * 64);
        let mut pending = Pending {
            response,
            interval: self.t1,
            timers,
        };
        self.push_changed(&key, &mut pending);
        self.pending.insert(key, pending);
    }

    fn push_changed(&mut self, key: &AckKey, pending: &mut Pending<M>) {
        let deadlines = &mut self.deadlines;
        pending.timers.take_changed(|index, at| {
            let timer = if index == Uas2xxTimer::Retransmit.index() {
                Uas2xxTimer::Retransmit
            } else {
                Uas2xxTimer::GiveUp
            };
            deadlines.push(Reverse((at, key.clone(), timer)));
        });
    }

    /// An ACK for a 2xx arrived; true if it stopped a retransmission.
    pub fn handle_ack(&mut self, key: &AckKey) -> bool {
        self.pending.remove(key).is_some()
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key, timer))) = self.deadlines.pop() else {
                break;
            };
            let Some(mut pending) = self.pending.remove(&key) else {
                continue;
            };
            if !pending.timers.fire(timer, at) {
                self.pending.insert(key, pending);
                continue;
            }
            match timer {
                Uas2xxTimer::Retransmit => {
                    self.transmits.push_back(Uas2xxTransmit {
                        key: key.clone(),
                        response: pending.response.clone(),
                    });
                    pending.interval = (pending.interval * 2).min(self.t2);
                    pending
                        .timers
                        .set(Uas2xxTimer::Retransmit, now + pending.interval);
                    self.push_changed(&key, &mut pending);
                    self.pending.insert(key, pending);
                }
                Uas2xxTimer::GiveUp => {
                    self.events.push_back(Uas2xxEvent::AckTimeout { key });
                }
            }
        }
    }

    /// The next 2xx to send again.
    pub fn poll_transmit(&mut self) -> Option<Uas2xxTransmit<M>> {
        self.transmits.pop_front()
    }

    /// The next event for the dialog layer.
    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, and why.
    pub fn poll_timeout(&mut self) -> Option<(Instant, Uas2xxTimer)> {
        while let Some(Reverse((at, key, timer))) = self.deadlines.peek() {
            let current = self
                .pending
                .get(key)
                .is_some_and(|p| p.timers.is_armed_for(*timer, *at));
            if current {
                return Some((*at, *timer));
            }
            self.deadlines.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AckKey {
        AckKey {
            call_id: "c".into(),
            cseq: 1,
        }
    }

    fn run_until(r: &mut Uas2xxRetransmitter<u8>, t0: Instant, end: Instant) -> Vec<Duration> {
        let mut sent = Vec::new();
        while let Some((at, _)) = r.poll_timeout() {
            if at > end {
                break;
            }
            r.handle_timeout(at);
            while r.poll_transmit().is_some() {
                sent.push(at - t0);
            }
        }
        sent
    }

    #[test]
    fn schedule_doubles_to_t2_until_64_t1() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(Duration::from_millis(500), Duration::from_secs(4));
        r.start(t0, key(), 7u8);
        let sent = run_until(&mut r, t0, t0 + Duration::from_secs(60));
        let ms: Vec<u128> = sent.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        assert_eq!(r.poll_event(), Some(Uas2xxEvent::AckTimeout { key: key() }));
        assert!(r.is_empty());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn ack_stops_retransmission() {
        let t0 = Instant::now();
        let mut r = Uas2xxRetransmitter::new(Duration::from_millis(500), Duration::from_secs(4));
        r.start(t0, key(), 7u8);
        let sent = run_until(&mut r, t0, t0 + Duration::from_secs(2));
        assert_eq!(sent.len(), 2);
        assert!(r.handle_ack(&key()));
        assert!(!r.handle_ack(&key()));
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.poll_event(), None);
    }
}
