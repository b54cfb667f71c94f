//! The video section of a run's report: the table lines, the JSON and the verdict.

use serde_json::{Value, json};

use super::CallerVideo;
use super::stats::{VideoSummary, percentile};

/// Every video caller's results.
#[derive(Debug, Clone, Default)]
pub struct VideoReport {
    /// (caller index, its conference, its results), in caller order.
    pub callers: Vec<(usize, u64, CallerVideo)>,
    /// Callers that were meant to have video (answered with video or not).
    pub expected: usize,
    /// Video callers whose answer had no video (the server refused or ignored m=video).
    pub no_video_answer: Vec<usize>,
}

impl VideoReport {
    fn summary(&self) -> VideoSummary {
        VideoSummary::of(self.callers.iter().map(|(_, _, c)| &c.subscriber))
    }

    /// Subscribers that got no complete frame though another caller of their conference
    /// published.
    pub fn blind(&self) -> Vec<usize> {
        let others_publish = |i: usize, conf: u64| {
            (self.callers.iter()).any(|(j, c, v)| *j != i && *c == conf && v.publisher.is_some())
        };
        (self.callers.iter())
            .filter(|(i, conf, c)| c.subscriber.frames() == 0 && others_publish(*i, *conf))
            .map(|(i, _, _)| *i)
            .collect()
    }

    /// Pass, or the first reason to fail: a call without video, a subscriber that got no
    /// video, a frame broken after recovery on a path within its limit, SRTP failures.
    pub fn verdict(&self) -> Result<(), String> {
        if !self.no_video_answer.is_empty() {
            return Err(format!(
                "{} video callers were answered without video: {:?}",
                self.no_video_answer.len(),
                self.no_video_answer
            ));
        }
        if self.callers.is_empty() && self.expected > 0 {
            return Err("no video caller was answered".into());
        }
        let blind = self.blind();
        if !blind.is_empty() {
            return Err(format!(
                "{} video subscribers got no video: {blind:?}",
                blind.len()
            ));
        }
        let broken: Vec<String> = (self.callers.iter())
            .filter(|(_, _, c)| c.subscriber.broken() > 0)
            .map(|(i, _, c)| format!("caller {i}: {}", c.subscriber.broken()))
            .collect();
        if !broken.is_empty() {
            return Err(format!(
                "video frames broken after retransmission: {}",
                broken.join(", ")
            ));
        }
        let srtp: u64 = self.callers.iter().map(|(_, _, c)| c.srtp_failures).sum();
        if srtp > 2 * self.callers.len() as u64 {
            return Err(format!("{srtp} video SRTP packets failed authentication"));
        }
        Ok(())
    }

    /// The table lines.
    pub fn print_table(&self) {
        let s = self.summary();
        let t = &s.totals;
        let publishers = self
            .callers
            .iter()
            .filter(|(_, _, c)| c.publisher.is_some())
            .count();
        println!(
            "video callers         {} ({publishers} publishing)",
            self.callers.len()
        );
        for (height, l) in &s.layers {
            let ms = |p| percentile(&l.delays_ms, p).map_or("-".into(), |v| format!("{v:.1}"));
            println!(
                "video {height:>4}p frames   {} complete, {} broken, {} broken over the link limit, delay p50 / p99 {} / {} ms",
                l.frames,
                l.broken,
                l.broken_over_limit,
                ms(50.0),
                ms(99.0)
            );
        }
        let sw = |p| percentile(&s.switch_ms, p).map_or("-".into(), |v| format!("{v:.0}"));
        println!(
            "video switches        {} ({} timed: p50 / p99 {} / {} ms)",
            t.switches,
            s.switch_ms.len(),
            sw(50.0),
            sw(99.0)
        );
        if !s.speaker_switch_ms.is_empty() || t.source_changes > 0 {
            let sp =
                |p| percentile(&s.speaker_switch_ms, p).map_or("-".into(), |v| format!("{v:.0}"));
            println!(
                "video speaker changes {} ({} timed from having the floor: p50 / p99 {} / {} ms)",
                t.source_changes,
                s.speaker_switch_ms.len(),
                sp(50.0),
                sp(99.0)
            );
        }
        println!(
            "video repair          NACKs {} ({} packets asked), RTX received {}, PLIs {}, REMBs {}",
            t.nacks_sent, t.nacked, t.rtx_received, t.plis_sent, t.rembs_sent
        );
        println!(
            "video link drops      {} random, {} over the bandwidth limit",
            t.dropped_loss, t.dropped_link
        );
    }

    /// The JSON section.
    pub fn to_json(&self) -> Value {
        let s = self.summary();
        let t = &s.totals;
        let layers: serde_json::Map<String, Value> = (s.layers.iter())
            .map(|(h, l)| {
                (
                    h.to_string(),
                    json!({
                        "frames": l.frames,
                        "broken": l.broken,
                        "broken_over_limit": l.broken_over_limit,
                        "delay_ms": {
                            "p50": percentile(&l.delays_ms, 50.0),
                            "p99": percentile(&l.delays_ms, 99.0),
                        },
                    }),
                )
            })
            .collect();
        let (mut sent, mut resent, mut key_requests, mut key_jumps) = (0, 0, 0, 0);
        for p in self
            .callers
            .iter()
            .filter_map(|(_, _, c)| c.publisher.as_ref())
        {
            sent += p.packets;
            resent += p.retransmitted;
            key_requests += p.key_requests;
            key_jumps += p.key_jumps;
        }
        let subscribers: Vec<Value> = (self.callers.iter())
            .map(|(i, conf, c)| {
                let sub = &c.subscriber;
                json!({
                    "caller": i,
                    "conference": conf,
                    "publishes": c.publisher.is_some(),
                    "loss_pct": c.loss_pct,
                    "limit_kbps": c.limit_bps.map(|b| b / 1_000),
                    "frames": sub.frames(),
                    "broken": sub.broken(),
                    "final_height": sub.final_height(),
                    "streams": sub.streams.iter().map(|st| json!({
                        "ssrc": st.ssrc,
                        "height": st.height,
                        "frames_by_height": st.frames_by_height.iter()
                            .map(|(h, n)| (h.to_string(), Value::from(*n)))
                            .collect::<serde_json::Map<_, _>>(),
                    })).collect::<Vec<_>>(),
                    "switch_ms": sub.switch_ms,
                    "speaker_switch_ms": sub.speaker_switch_ms,
                    "source_changes": sub.source_changes,
                    "nacked": sub.nacked,
                    "rtx_received": sub.rtx_received,
                    "rtx_unmatched": sub.rtx_unmatched,
                    "plis_sent": sub.plis_sent,
                    "dropped_loss": sub.dropped_loss,
                    "dropped_link": sub.dropped_link,
                    "broken_at_start": sub.broken_at_start,
                    "srtp_failures": c.srtp_failures,
                })
            })
            .collect();
        json!({
            "callers": self.callers.len(),
            "no_video_answer": self.no_video_answer,
            "layers": layers,
            "switch_ms": {
                "p50": percentile(&s.switch_ms, 50.0),
                "p99": percentile(&s.switch_ms, 99.0),
                "count": s.switch_ms.len(),
            },
            "switches": t.switches,
            "speaker_switch_ms": {
                "p50": percentile(&s.speaker_switch_ms, 50.0),
                "p99": percentile(&s.speaker_switch_ms, 99.0),
                "count": s.speaker_switch_ms.len(),
            },
            "source_changes": t.source_changes,
            "nacks_sent": t.nacks_sent,
            "nacked": t.nacked,
            "rtx_received": t.rtx_received,
            "rtx_unmatched": t.rtx_unmatched,
            "plis_sent": t.plis_sent,
            "rembs_sent": t.rembs_sent,
            "dropped_loss": t.dropped_loss,
            "dropped_link": t.dropped_link,
            "broken_at_start": t.broken_at_start,
            "frames_waiting_key": t.frames_waiting_key,
            "bad_packets": t.bad_packets,
            "broken_reasons": t.broken_reasons,
            "publishers": {
                "packets": sent,
                "retransmitted": resent,
                "key_requests": key_requests,
                "key_jumps": key_jumps,
            },
            "subscribers": subscribers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::stats::LayerStats;
    use crate::video::{PublisherCounters, SubscriberStats};

    fn caller(frames: u64, broken: u64, over_limit: u64, publishes: bool) -> CallerVideo {
        let mut sub = SubscriberStats::default();
        sub.layers.insert(
            720,
            LayerStats {
                frames,
                broken,
                broken_over_limit: over_limit,
                delays_ms: vec![1.0, 2.0, 30.0],
            },
        );
        CallerVideo {
            publisher: publishes.then(PublisherCounters::default),
            subscriber: sub,
            ..CallerVideo::default()
        }
    }

    fn room(callers: Vec<CallerVideo>) -> VideoReport {
        VideoReport {
            expected: callers.len(),
            callers: callers
                .into_iter()
                .enumerate()
                .map(|(i, c)| (i, 7_000, c))
                .collect(),
            no_video_answer: Vec::new(),
        }
    }

    #[test]
    fn verdict_fails_broken_frames_and_blind_subscribers_only() {
        let ok = room(vec![caller(100, 0, 3, true), caller(90, 0, 0, true)]);
        assert_eq!(
            ok.verdict(),
            Ok(()),
            "over-limit breakage is reported, not failed"
        );
        let broken = room(vec![caller(100, 1, 0, true), caller(90, 0, 0, true)]);
        assert!(broken.verdict().unwrap_err().contains("caller 0: 1"));
        let blind = room(vec![caller(100, 0, 0, true), caller(0, 0, 0, true)]);
        assert!(blind.verdict().unwrap_err().contains("got no video: [1]"));
        // The only publisher has nobody to watch: no frames is right.
        let alone = room(vec![caller(0, 0, 0, true), caller(90, 0, 0, false)]);
        assert_eq!(alone.verdict(), Ok(()));
        let mut refused = room(vec![caller(100, 0, 0, true)]);
        refused.no_video_answer.push(3);
        assert!(
            refused
                .verdict()
                .unwrap_err()
                .contains("without video: [3]")
        );
        let json = ok.to_json();
        assert_eq!(json["layers"]["720"]["frames"], 190);
        assert_eq!(json["layers"]["720"]["broken_over_limit"], 3);
        assert_eq!(json["layers"]["720"]["delay_ms"]["p50"], 2.0);
        assert_eq!(json["subscribers"][1]["frames"], 90);
    }
}
