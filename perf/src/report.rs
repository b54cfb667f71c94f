//! What a run measured, per call and overall: the final table, the JSON report and the
//! pass/fail verdict.

use std::collections::BTreeMap;

use chorus_engine::runtime::LegStats;
use chorus_signaling::emodel;
use chorus_signaling::sdp::Codec;

use crate::audio::Hearing;
use crate::plot::Series;

/// One simulated caller's outcome.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    /// The caller's index.
    pub index: u32,
    /// Its conference ID.
    pub conference: u64,
    /// It sent a talker signal.
    pub talker: bool,
    /// INVITE to 200, in milliseconds, when answered.
    pub setup_ms: Option<f64>,
    /// Why it was never established (final status, reason).
    pub failed: Option<(u16, String)>,
    /// The server hung up (BYE from the server) before the end of the hold.
    pub ended_by_server: Option<String>,
    /// How long it was held, seconds.
    pub held_s: f64,
    /// Its media leg's final counters (received RTP, loss, jitter, SRTP failures).
    pub stats: Option<LegStats>,
    /// What it heard of its conference's talkers, when its audio was checked.
    pub hearing: Option<Hearing>,
}

/// A whole run.
#[derive(Debug, Default)]
pub struct Report {
    /// Every caller.
    pub calls: Vec<CallRecord>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Packets the generator's cores received and sent.
    pub rx_packets: u64,
    /// See `rx_packets`.
    pub tx_packets: u64,
    /// RTP packets the generator's legs sent (talker signals, keys).
    pub media_out: u64,
    /// Packets the generator's cores dropped, by reason (unknown flow, SRTP, malformed).
    pub drops: Vec<(&'static str, u64)>,
    /// Callers that hung up early and were replaced by a new call (`--churn`).
    pub churned: usize,
    /// The codec the calls used (for the MOS estimate).
    pub codec: Option<Codec>,
    /// The run over time, a sample a second.
    pub series: Series,
    /// The generator's own CPU at each sample of `series`, percent of one core.
    pub generator_cpu: Vec<Option<f64>>,
    /// The generator's media cores (`--cores`).
    pub generator_cores: usize,
    /// The video side's results (`--video`).
    pub video: Option<crate::video::VideoReport>,
}

/// The nearest-rank `p`th percentile of `sorted`.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Packets a listener should get while held: the server sends one 20 ms frame per tick.
const PACKETS_PER_S: f64 = 50.0;

impl Report {
    /// Calls answered.
    pub fn established(&self) -> usize {
        self.calls.iter().filter(|c| c.setup_ms.is_some()).count()
    }

    /// Failed calls by final status.
    pub fn failed_by_status(&self) -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for (status, _) in self.calls.iter().filter_map(|c| c.failed.as_ref()) {
            *m.entry(*status).or_default() += 1;
        }
        m
    }

    fn setup_sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.calls.iter().filter_map(|c| c.setup_ms).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// RTP received, lost (RFC 3550), and the loss in percent of expected.
    pub fn loss(&self) -> (u64, i64, f64) {
        let (mut got, mut lost) = (0u64, 0i64);
        for s in self.calls.iter().filter_map(|c| c.stats.as_ref()) {
            got += s.rtp_in;
            lost += s.lost.max(0);
        }
        let pct = if got == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / (got as f64 + lost as f64)
        };
        (got, lost, pct)
    }

    /// What the callers got short of 50 packets a second in the steady state (every caller
    /// placed, every call up in its conference for a second: no IVR, no joins), percent.
    /// Unlike RFC 3550 loss this sees a server that falls behind and skips ticks: its
    /// sequence numbers carry on, so nothing is "lost", but fewer packets arrive than time
    /// has passed.
    pub fn steady_short_pct(&self) -> Option<f64> {
        self.series.steady_short_pct()
    }

    /// Jitter of the server's streams, ms: median and maximum over the calls.
    pub fn jitter_ms(&self) -> (f64, f64) {
        let mut v: Vec<f64> = (self.calls.iter().filter_map(|c| c.stats.as_ref()))
            .map(|s| s.jitter_us as f64 / 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        (
            percentile(&v, 50.0).unwrap_or(0.0),
            v.last().copied().unwrap_or(0.0),
        )
    }

    /// Established calls that received less than 80% of the audio they should have.
    pub fn silent_calls(&self) -> Vec<u32> {
        (self.calls.iter())
            .filter(|c| c.setup_ms.is_some() && c.held_s >= 1.0)
            .filter(|c| {
                let got = c.stats.as_ref().map_or(0, |s| s.rtp_in) as f64;
                got < 0.8 * c.held_s * PACKETS_PER_S
            })
            .map(|c| c.index)
            .collect()
    }

    /// Callers whose audio was checked.
    pub fn checked(&self) -> usize {
        (self.calls.iter())
            .filter(|c| c.setup_ms.is_some() && c.hearing.is_some())
            .count()
    }

    /// Every mouth-to-ear delay measured, ms, sorted.
    pub fn delays_sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = (self.calls.iter().filter_map(|c| c.hearing.as_ref()))
            .flat_map(|h| h.delays_ms.iter().map(|&d| f64::from(d)))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Checked callers that missed a talker they should have heard, heard themselves or heard
    /// another conference, one line each.
    pub fn wrong_audio(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.calls.iter().filter(|c| c.setup_ms.is_some()) {
            let Some(h) = &c.hearing else {
                continue;
            };
            if h.hears_itself() {
                out.push(format!(
                    "caller {} heard itself {} times",
                    c.index, h.self_heard
                ));
            }
            if h.hears_other_conferences() {
                out.push(format!(
                    "caller {} heard another conference's talkers {} times",
                    c.index, h.foreign
                ));
            }
            for k in h.missing() {
                out.push(format!(
                    "caller {} heard {} of {} bursts of talker {k}",
                    c.index, h.heard[k], h.expected[k]
                ));
            }
        }
        out
    }

    /// Each established call's MOS (ITU-T G.107 E-model, `chorus_signaling::emodel`): the loss
    /// of what it received, and a mouth-to-ear delay of its median measured delay through the
    /// server plus a 20 ms packet at the talker, a jitter buffer of twice the jitter at the
    /// listener and the codec's look-ahead (without a measured delay: those alone).
    pub fn mos(&self) -> Vec<f64> {
        let codec = self.codec.unwrap_or(Codec::Pcmu);
        let mut v: Vec<f64> = (self.calls.iter())
            .filter_map(|c| {
                let s = c.stats.as_ref()?;
                let through = (c.hearing.as_ref()).and_then(Hearing::median_delay_ms);
                let jitter_ms = s.jitter_us as f64 / 1000.0;
                let lost = s.lost.max(0) as u64;
                emodel::leg_mos_with_delay(codec, s.rtp_in, lost, jitter_ms, through.unwrap_or(0.0))
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Server CPU, percent of a core: the median over the samples taken with every call up.
    pub fn server_cpu_pct(&self) -> Option<f64> {
        self.median_all_up(&self.series.server_cpu_pct)
    }

    /// The generator's CPU, percent of a core, the same way.
    pub fn generator_cpu_pct(&self) -> Option<f64> {
        self.median_all_up(&self.generator_cpu)
    }

    /// The generator was busy enough (over 90% of its cores) that its own lateness may be in
    /// the delay and loss figures.
    pub fn generator_saturated(&self) -> bool {
        let cores = self.generator_cores.max(1) as f64;
        self.generator_cpu_pct().is_some_and(|c| c > 90.0 * cores)
    }

    /// The median of `samples` (one per `series` sample) over those taken with every call up.
    fn median_all_up(&self, samples: &[Option<f64>]) -> Option<f64> {
        let mut v: Vec<f64> = self.all_up(samples).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    }

    /// `samples` (one per `series` sample) taken with every call up, in time order.
    fn all_up<'a>(&'a self, samples: &'a [Option<f64>]) -> impl Iterator<Item = f64> + 'a {
        let peak = self.series.calls_up.iter().copied().fold(0.0, f64::max);
        (self.series.calls_up.iter().zip(samples))
            .filter(move |&(&up, _)| up > 0.0 && up >= peak)
            .filter_map(|(_, &s)| s)
    }

    /// SRTP packets that failed authentication or were replays, over all calls.
    pub fn srtp_failures(&self) -> u64 {
        (self.calls.iter().filter_map(|c| c.stats.as_ref()))
            .map(|s| s.auth_failed + s.replayed)
            .sum()
    }

    /// Pass or the first reason to fail.
    pub fn verdict(&self, max_loss_pct: f64) -> Result<(), String> {
        let n = self.calls.len();
        let up = self.established();
        if up == 0 {
            let why = self
                .calls
                .iter()
                .find_map(|c| c.failed.as_ref())
                .map_or("no answer".to_string(), |(s, r)| format!("{s} {r}"));
            return Err(format!("no call was answered (first failure: {why})"));
        }
        if up < n {
            return Err(format!(
                "{} of {n} calls failed: {:?}",
                n - up,
                self.failed_by_status()
            ));
        }
        if let Some(c) = self.calls.iter().find(|c| c.ended_by_server.is_some()) {
            return Err(format!(
                "the server hung up caller {}: {}",
                c.index,
                c.ended_by_server.as_deref().unwrap_or_default()
            ));
        }
        let (_, _, loss) = self.loss();
        if loss > max_loss_pct {
            return Err(format!("RTP loss {loss:.3}% is above {max_loss_pct}%"));
        }
        let silent = self.silent_calls();
        if !silent.is_empty() {
            return Err(format!(
                "{} callers heard (almost) nothing: {silent:?}",
                silent.len()
            ));
        }
        let wrong = self.wrong_audio();
        if !wrong.is_empty() {
            let some: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "{} checked callers heard the wrong talkers: {}",
                wrong.len(),
                some.join("; ")
            ));
        }
        // A packet or two may arrive from a leg's old address while the server moves the call
        // to another core (re-INVITE); more than that is a broken SRTP path.
        let srtp = self.srtp_failures();
        let (got, _, _) = self.loss();
        if srtp as f64 > 0.001 * got as f64 + 2.0 * self.calls.len() as f64 {
            return Err(format!(
                "{srtp} SRTP packets failed authentication or were replays"
            ));
        }
        if let Some(video) = &self.video {
            video.verdict()?;
        }
        Ok(())
    }

    /// The final table, on stdout.
    pub fn print_table(&self) {
        let setup = self.setup_sorted();
        let (got, lost, loss) = self.loss();
        let (jitter_p50, jitter_max) = self.jitter_ms();
        println!("calls attempted       {}", self.calls.len());
        println!("calls established     {}", self.established());
        if self.churned > 0 {
            println!(
                "calls churned         {} (hung up early, dialed again)",
                self.churned
            );
        }
        for (status, n) in self.failed_by_status() {
            println!("calls failed {status}      {n}");
        }
        let ms = |p| percentile(&setup, p).map_or("-".into(), |v: f64| format!("{v:.1} ms"));
        println!("setup p50 / p99       {} / {}", ms(50.0), ms(99.0));
        println!("RTP received / lost   {got} / {lost} ({loss:.3}%)");
        if let Some(short) = self.steady_short_pct() {
            println!(
                "short of 50/s, steady {short:.3}% (packets never sent count here, not in loss)"
            );
        }
        println!("jitter p50 / max      {jitter_p50:.2} / {jitter_max:.2} ms");
        println!("SRTP failures         {}", self.srtp_failures());
        println!("silent callers        {}", self.silent_calls().len());
        let delays = self.delays_sorted();
        let d = |p| percentile(&delays, p).map_or("-".into(), |v: f64| format!("{v:.0}"));
        println!(
            "audio checked         {} callers, {} wrong",
            self.checked(),
            self.wrong_audio().len()
        );
        println!(
            "delay p50 / p95 / p99 {} / {} / {} ms (through the server)",
            d(50.0),
            d(95.0),
            d(99.0)
        );
        let mos = self.mos();
        let m = |p| percentile(&mos, p).map_or("-".into(), |v: f64| format!("{v:.2}"));
        println!("MOS p50 / min         {} / {}", m(50.0), m(0.0));
        if let Some(cpu) = self.server_cpu_pct() {
            let legs = self.established().max(1) as f64;
            println!(
                "server CPU            {cpu:.1}% of a core, {:.3}% per leg",
                cpu / legs
            );
        }
        if let Some(cpu) = self.generator_cpu_pct() {
            println!(
                "generator CPU         {cpu:.1}% of a core ({} cores){}",
                self.generator_cores,
                if self.generator_saturated() {
                    ": saturated, its own lateness is in the delay and loss figures"
                } else {
                    ""
                }
            );
        }
        println!(
            "packets in / out      {} / {} in {:.1} s",
            self.rx_packets, self.tx_packets, self.wall_s
        );
        for (name, n) in self.drops.iter().filter(|(_, n)| *n > 0) {
            println!("dropped {name:<14}{n}");
        }
        if let Some(video) = &self.video {
            video.print_table();
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        let setup = self.setup_sorted();
        let (got, lost, loss) = self.loss();
        let (jitter_p50, jitter_max) = self.jitter_ms();
        let (delays, mos) = (self.delays_sorted(), self.mos());
        let failed: serde_json::Map<String, serde_json::Value> = self
            .failed_by_status()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let calls: Vec<serde_json::Value> = (self.calls.iter())
            .map(|c| {
                serde_json::json!({
                    "index": c.index,
                    "conference": c.conference,
                    "talker": c.talker,
                    "setup_ms": c.setup_ms,
                    "failed": c.failed.as_ref().map(|(s, r)| serde_json::json!({"status": s, "reason": r})),
                    "ended_by_server": c.ended_by_server,
                    "held_s": c.held_s,
                    "rtp_in": c.stats.as_ref().map(|s| s.rtp_in),
                    "rtp_out": c.stats.as_ref().map(|s| s.rtp_out),
                    "lost": c.stats.as_ref().map(|s| s.lost),
                    "jitter_ms": c.stats.as_ref().map(|s| s.jitter_us as f64 / 1000.0),
                    "hearing": c.hearing.as_ref().map(|h| serde_json::json!({
                        "heard": h.heard,
                        "expected": h.expected,
                        "self_heard": h.self_heard,
                        "unmatched": h.unmatched,
                        "foreign": h.foreign,
                        "median_delay_ms": h.median_delay_ms(),
                    })),
                })
            })
            .collect();
        let v = serde_json::json!({
            "attempted": self.calls.len(),
            "established": self.established(),
            "churned": self.churned,
            "failed": failed,
            "setup_ms": { "p50": percentile(&setup, 50.0), "p99": percentile(&setup, 99.0) },
            "rtp": {
                "received": got,
                "lost": lost,
                "loss_pct": loss,
                "steady_short_pct": self.steady_short_pct(),
            },
            "jitter_ms": { "p50": jitter_p50, "max": jitter_max },
            "srtp_failures": self.srtp_failures(),
            "silent_callers": self.silent_calls(),
            "audio": {
                "checked": self.checked(),
                "wrong": self.wrong_audio(),
                "delay_ms": {
                    "p50": percentile(&delays, 50.0),
                    "p95": percentile(&delays, 95.0),
                    "p99": percentile(&delays, 99.0),
                },
            },
            "mos": { "p50": percentile(&mos, 50.0), "min": mos.first() },
            "server_cpu_pct": self.server_cpu_pct(),
            "generator_cpu_pct": self.generator_cpu_pct(),
            "generator_saturated": self.generator_saturated(),
            "series": {
                "t_s": self.series.t_s,
                "calls_up": self.series.calls_up,
                "loss_pct": self.series.loss_pct,
                "delay_ms": self.series.delay_ms,
                "server_cpu_pct": self.series.server_cpu_pct,
                "steady": self.series.steady,
            },
            "packets": { "in": self.rx_packets, "out": self.tx_packets, "media_out": self.media_out },
            "dropped": self.drops.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
            "wall_s": self.wall_s,
            "calls": calls,
            "video": self.video.as_ref().map(crate::video::VideoReport::to_json),
        });
        // INVARIANT: a json! value always serializes.
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(index: u32, setup: Option<f64>, rtp_in: u64, lost: i64) -> CallRecord {
        CallRecord {
            index,
            setup_ms: setup,
            held_s: 2.0,
            stats: Some(LegStats {
                rtp_in,
                lost,
                ..LegStats::default()
            }),
            ..CallRecord::default()
        }
    }

    #[test]
    fn steady_shortfall_is_the_mean_over_the_steady_seconds() {
        let mut r = Report::default();
        assert_eq!(r.steady_short_pct(), None);
        r.series.loss_pct = vec![50.0, 30.0, 2.0, 4.0, 0.0, 60.0];
        r.series.steady = vec![false, false, true, true, true, false];
        assert_eq!(r.steady_short_pct(), Some(2.0));
    }

    #[test]
    fn verdicts_name_the_first_problem() {
        let ok = Report {
            calls: vec![call(0, Some(10.0), 100, 0), call(1, Some(30.0), 100, 0)],
            ..Report::default()
        };
        assert_eq!(ok.verdict(0.1), Ok(()));
        let lossy = Report {
            calls: vec![call(0, Some(10.0), 90, 10)],
            ..Report::default()
        };
        assert!(lossy.verdict(0.1).unwrap_err().contains("10.000%"));
        let silent = Report {
            calls: vec![call(0, Some(10.0), 3, 0)],
            ..Report::default()
        };
        assert!(
            silent
                .verdict(0.1)
                .unwrap_err()
                .contains("heard (almost) nothing")
        );
        let mut failed = call(1, None, 0, 0);
        failed.failed = Some((503, "Service Unavailable".into()));
        let none = Report {
            calls: vec![failed.clone()],
            ..Report::default()
        };
        assert!(
            none.verdict(0.1)
                .unwrap_err()
                .contains("503 Service Unavailable")
        );
        let some = Report {
            calls: vec![call(0, Some(1.0), 100, 0), failed],
            ..Report::default()
        };
        assert!(
            some.verdict(0.1)
                .unwrap_err()
                .contains("1 of 2 calls failed")
        );
        assert!(ok.to_json().contains("\"established\": 2"));
        // A packet or two failing SRTP (a call moved between the server's cores) passes;
        // many do not.
        let mut moved = call(0, Some(1.0), 100, 0);
        if let Some(s) = moved.stats.as_mut() {
            s.auth_failed = 2;
        }
        let one = Report {
            calls: vec![moved.clone()],
            ..Report::default()
        };
        assert_eq!(one.verdict(0.1), Ok(()));
        if let Some(s) = moved.stats.as_mut() {
            s.auth_failed = 50;
        }
        let broken = Report {
            calls: vec![moved],
            ..Report::default()
        };
        assert!(broken.verdict(0.1).unwrap_err().contains("50 SRTP packets"));
        // A caller that missed a talker, or heard itself, fails the run.
        let mut deaf = call(0, Some(1.0), 100, 0);
        deaf.hearing = Some(Hearing {
            heard: vec![0, 9, 2],
            expected: vec![0, 10, 10],
            ..Hearing::default()
        });
        let mut echo = call(1, Some(1.0), 100, 0);
        echo.hearing = Some(Hearing {
            self_heard: 2,
            ..Hearing::new(3)
        });
        let mut leak = call(2, Some(1.0), 100, 0);
        leak.hearing = Some(Hearing {
            foreign: 7,
            ..Hearing::new(3)
        });
        let wrong = Report {
            calls: vec![deaf, echo, leak],
            ..Report::default()
        };
        let why = wrong.verdict(0.1).unwrap_err();
        assert!(
            why.starts_with("3 checked callers heard the wrong talkers: ")
                && why.contains("caller 0 heard 2 of 10 bursts of talker 2"),
            "{why}"
        );
        assert_eq!(wrong.wrong_audio()[1], "caller 1 heard itself 2 times");
        assert_eq!(
            wrong.wrong_audio()[2],
            "caller 2 heard another conference's talkers 7 times"
        );
    }
}
