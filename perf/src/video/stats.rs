//! What the subscribers measured, per layer and summed over a run.

use std::collections::BTreeMap;

/// Frames of one layer (one picture height) at one subscriber, or summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerStats {
    /// Complete frames shown (after a key frame, none broken since).
    pub frames: u64,
    /// Frames still broken after retransmissions (the path was within its limit).
    pub broken: u64,
    /// Frames broken while the simulated link was dropping packets over its bandwidth limit
    /// (no retransmission can repair a path over capacity; reported apart).
    pub broken_over_limit: u64,
    /// Frame delay samples, ms: from the abs-send-time of a frame's first packet at the
    /// publisher to the frame complete at the subscriber.
    pub delays_ms: Vec<f32>,
}

impl LayerStats {
    /// Adds `other`'s counts and samples.
    pub fn add(&mut self, other: &LayerStats) {
        self.frames += other.frames;
        self.broken += other.broken;
        self.broken_over_limit += other.broken_over_limit;
        self.delays_ms.extend_from_slice(&other.delays_ms);
    }
}

/// One received stream (one SSRC from the server) at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Its SSRC.
    pub ssrc: u32,
    /// The layer (height) of its last key frame.
    pub height: Option<u16>,
    /// Complete frames by height.
    pub frames_by_height: BTreeMap<u16, u64>,
}

/// One subscriber's measurements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriberStats {
    /// Per layer (height).
    pub layers: BTreeMap<u16, LayerStats>,
    /// Switch times, ms: from a change of the bandwidth it announces to the first complete
    /// key frame of another layer.
    pub switch_ms: Vec<f32>,
    /// Layer changes seen (with or without a wanted change before them).
    pub switches: u64,
    /// Speaker switch times, ms: from a talker starting a burst to the first complete key
    /// frame of its video on a stream that showed someone else (speaker layout).
    pub speaker_switch_ms: Vec<f32>,
    /// Times a stream's source (the publisher named in its key frames) changed.
    pub source_changes: u64,
    /// Its streams.
    pub streams: Vec<StreamSummary>,
    /// RTP packets that reached it (after the simulated link).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the simulated link dropped at random.
    pub dropped_loss: u64,
    /// Packets the simulated link dropped over its bandwidth limit.
    pub dropped_link: u64,
    /// NACK packets sent.
    pub nacks_sent: u64,
    /// Sequence numbers asked for.
    pub nacked: u64,
    /// RTX packets received and unwrapped.
    pub rtx_received: u64,
    /// RTX packets whose stream could not be told.
    pub rtx_unmatched: u64,
    /// PLIs sent.
    pub plis_sent: u64,
    /// REMBs sent.
    pub rembs_sent: u64,
    /// Broken frames before a stream's first key frame (joining mid-frame).
    pub broken_at_start: u64,
    /// Complete frames dropped while waiting for a key frame after a broken one.
    pub frames_waiting_key: u64,
    /// Broken frames by the depacketizer's reason (`Gap`, `MissingEnd`, ...), all kinds.
    pub broken_reasons: BTreeMap<String, u64>,
    /// Malformed or unexpected packets (bad RTP, wrong payload type, too many streams).
    pub bad_packets: u64,
}

impl SubscriberStats {
    /// Complete frames, all layers.
    pub fn frames(&self) -> u64 {
        self.layers.values().map(|l| l.frames).sum()
    }

    /// Broken frames within the link's limit, all layers.
    pub fn broken(&self) -> u64 {
        self.layers.values().map(|l| l.broken).sum()
    }

    /// The tallest layer any of its streams ended on.
    pub fn final_height(&self) -> Option<u16> {
        self.streams.iter().filter_map(|s| s.height).max()
    }
}

/// The video of a run, summed over subscribers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoSummary {
    /// Per layer, all subscribers.
    pub layers: BTreeMap<u16, LayerStats>,
    /// Switch times, all subscribers.
    pub switch_ms: Vec<f32>,
    /// Speaker switch times, all subscribers.
    pub speaker_switch_ms: Vec<f32>,
    /// All counters summed (layers and samples left empty).
    pub totals: SubscriberStats,
}

impl VideoSummary {
    /// Sums `subscribers`.
    pub fn of<'a>(subscribers: impl IntoIterator<Item = &'a SubscriberStats>) -> Self {
        let mut s = VideoSummary::default();
        for sub in subscribers {
            for (h, l) in &sub.layers {
                s.layers.entry(*h).or_default().add(l);
            }
            s.switch_ms.extend_from_slice(&sub.switch_ms);
            s.speaker_switch_ms
                .extend_from_slice(&sub.speaker_switch_ms);
            s.totals.source_changes += sub.source_changes;
            let t = &mut s.totals;
            t.switches += sub.switches;
            t.packets += sub.packets;
            t.bytes += sub.bytes;
            t.dropped_loss += sub.dropped_loss;
            t.dropped_link += sub.dropped_link;
            t.nacks_sent += sub.nacks_sent;
            t.nacked += sub.nacked;
            t.rtx_received += sub.rtx_received;
            t.rtx_unmatched += sub.rtx_unmatched;
            t.plis_sent += sub.plis_sent;
            t.rembs_sent += sub.rembs_sent;
            t.broken_at_start += sub.broken_at_start;
            t.frames_waiting_key += sub.frames_waiting_key;
            t.bad_packets += sub.bad_packets;
            for (why, n) in &sub.broken_reasons {
                *t.broken_reasons.entry(why.clone()).or_default() += n;
            }
        }
        s
    }
}

/// The `p`th percentile (nearest rank) of `samples`.
pub fn percentile(samples: &[f32], p: f64) -> Option<f32> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f32::total_cmp);
    crate::report::percentile(&v, p)
}
