//! One conference's video on a core: its SFU [`Router`], which leg each producer and
//! consumer belongs to, and the router's transmit side on the core's transmit queue.

use std::time::Instant;

use super::flow::LegSlot;
use super::io::TxQueue;
use super::leg::Leg;
use super::metrics::{Counters, Metric};
use crate::sfu::{ConsumerId, ProducerId, Router, RtcpTarget, SfuTransmit};

/// Which leg each producer and consumer of a router belongs to, indexed by their ids (slab
/// indices, so the vectors stay as long as the router's slabs: no allocation per packet).
#[derive(Debug, Default)]
pub(crate) struct VideoRoutes {
    /// The publishing leg of each producer slot.
    pub producer_leg: Vec<Option<LegSlot>>,
    /// The receiving leg of each consumer slot.
    pub consumer_leg: Vec<Option<LegSlot>>,
}

impl VideoRoutes {
    /// Records that `id` belongs to `leg` (None: forgets it).
    pub fn set_producer(&mut self, id: ProducerId, leg: Option<LegSlot>) {
        set(&mut self.producer_leg, id.0, leg);
    }

    /// Records that `id` belongs to `leg` (None: forgets it).
    pub fn set_consumer(&mut self, id: ConsumerId, leg: Option<LegSlot>) {
        set(&mut self.consumer_leg, id.0, leg);
    }

    /// The leg publishing `id`.
    pub fn producer(&self, id: ProducerId) -> Option<LegSlot> {
        self.producer_leg.get(id.0 as usize).copied().flatten()
    }

    /// The leg receiving `id`.
    pub fn consumer(&self, id: ConsumerId) -> Option<LegSlot> {
        self.consumer_leg.get(id.0 as usize).copied().flatten()
    }
}

fn set(v: &mut Vec<Option<LegSlot>>, index: u32, leg: Option<LegSlot>) {
    let i = index as usize;
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    // INVARIANT: resized above to hold index i.
    v[i] = leg;
}

/// A conference's video on this core.
pub(crate) struct VideoRoom {
    /// The SFU.
    pub router: Router,
    /// Whose producers and consumers are whose.
    pub routes: VideoRoutes,
    /// The video legs in the room, in join order.
    pub members: Vec<LegSlot>,
    /// The producer last told to the router as the active speaker.
    pub speaker: Option<ProducerId>,
}

impl VideoRoom {
    /// An empty room.
    pub fn new(router: Router) -> Self {
        VideoRoom {
            router,
            routes: VideoRoutes::default(),
            members: Vec::new(),
            speaker: None,
        }
    }

    /// Runs the router's timers that are due at `now`.
    pub fn handle_timeouts(
        &mut self,
        now: Instant,
        legs: &mut [Option<Leg>],
        tx: &mut TxQueue,
        counters: &mut Counters,
    ) {
        // Each round moves every due timer past `now`; the bound guards against a timer
        // that would not move.
        for _ in 0..8 {
            match self.router.poll_timeout() {
                Some((at, _)) if at <= now => {
                    let mut sink = VideoTx {
                        tx,
                        legs,
                        routes: &self.routes,
                        counters,
                    };
                    self.router.handle_timeout(now, &mut sink);
                }
                _ => return,
            }
        }
    }
}

/// The router's transmit side: each packet is written straight into a transmit slot, then
/// SRTP-protected with the receiving leg's outbound video context and queued to its video
/// address.
pub(crate) struct VideoTx<'a> {
    /// The core's transmit queue.
    pub tx: &'a mut TxQueue,
    /// The core's legs, by slot.
    pub legs: &'a mut [Option<Leg>],
    /// Whose producers and consumers are whose.
    pub routes: &'a VideoRoutes,
    /// The core's counters.
    pub counters: &'a mut Counters,
}

impl VideoTx<'_> {
    fn send(
        &mut self,
        slot: Option<LegSlot>,
        rtcp: bool,
        fill: &dyn Fn(&mut [u8]) -> usize,
    ) -> bool {
        let Some(leg) = slot
            .and_then(|s| self.legs.get_mut(s as usize))
            .and_then(Option::as_mut)
        else {
            return false;
        };
        let Some(video) = leg.video.as_deref_mut() else {
            return false;
        };
        let (sock, dst) = if rtcp {
            (video.rtcp_sock, video.remote_rtcp)
        } else {
            (video.rtp_sock, video.config.remote_rtp)
        };
        let mut wrote = false;
        let queued = self.tx.send_with(sock, dst, |out| {
            let overhead = video.srtp_out.as_ref().map_or(0, |c| {
                if rtcp {
                    c.suite().rtcp_overhead()
                } else {
                    c.suite().rtp_overhead()
                }
            });
            let room = out.len().saturating_sub(overhead);
            let n = fill(&mut out[..room]);
            if n == 0 {
                return 0;
            }
            wrote = true;
            match video.srtp_out.as_mut() {
                Some(ctx) if rtcp => ctx.protect_rtcp(out, n).unwrap_or(0),
                Some(ctx) => ctx.protect_rtp(out, n).unwrap_or(0),
                None => n,
            }
        });
        if queued {
            leg.stats.video_out += 1;
            self.counters.inc(Metric::VideoOut);
        } else if wrote || self.tx.free_slots() == 0 {
            // Protect failed or no transmit buffer (a cancelled fill is no drop).
            leg.stats.video_dropped += 1;
            self.counters.inc(Metric::VideoDropped);
        }
        queued
    }
}

impl SfuTransmit for VideoTx<'_> {
    fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let slot = self.routes.consumer(to);
        self.send(slot, false, fill)
    }

    fn send_rtcp(&mut self, to: RtcpTarget, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
        let slot = match to {
            RtcpTarget::Producer(p) => self.routes.producer(p),
            RtcpTarget::Consumer(c) => self.routes.consumer(c),
        };
        self.send(slot, true, fill)
    }
}
