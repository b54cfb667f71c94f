//! A leg's estimated listening quality (MOS) from its counters: a simplified ITU-T G.107
//! E-model, the transmission rating R turned into a mean opinion score.
//!
//! `R = R0 - Is - Id - Ie,eff + A` (G.107 section 3) with the defaults for everything we do not
//! measure: `R0 - Is = 93.2` (G.107 default values, no noise or loudness impairments), `A = 0`
//! (no advantage factor), perfect echo cancellation. What remains:
//!
//! - **Delay, Id**: the G.107 `Idd` term for a mouth-to-ear delay `d`, in the closed form of
//!   Cole and Rosenbluth ("Voice over IP performance monitoring", ACM CCR 2001):
//!   `Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)`, `H` the step function. We cannot see
//!   the network delay of a leg (no RTCP round trip is kept), so `d` is what we know is there:
//!   a 20 ms packet, a jitter buffer of twice the measured jitter, and the codec's look-ahead.
//! - **Loss, Ie,eff** (G.107 formula 7-29): `Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`, with
//!   `Ppl` the loss of the caller's stream in percent and `BurstR = 1` (random loss; we do not
//!   measure burstiness). `Ie` and `Bpl` per codec from G.113 Appendix I: G.711 `Ie = 0`,
//!   `Bpl = 4.3` without packet-loss concealment and `25.1` with it (G.711 Appendix I).
//!   The engine conceals lost G.711 packets (and so do the phones), so G.711 is rated with
//!   PLC. G.722 and Opus: G.113 gives no values on this (narrowband) scale, so they get the
//!   G.711-with-PLC values; a wideband codec is unimpaired on the narrowband scale, and both
//!   conceal losses at least as well, so their estimate errs low, not high.
//! - **MOS from R** (G.107 Annex B, formula B-4): 1 below R = 0, 4.5 above 100, else
//!   `1 + 0.035 R + R (R - 60) (100 - R) 7e-6`.
//!
//! The estimate rates one direction: what the caller sent, as it reached us.

use crate::sdp::Codec;

/// `R0 - Is` with G.107's default values.
pub const R_DEFAULT: f64 = 93.2;

/// A codec's impairments in the E-model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecModel {
    /// Equipment impairment factor `Ie` (G.113 Appendix I).
    pub ie: f64,
    /// Packet-loss robustness factor `Bpl` (G.113 Appendix I).
    pub bpl: f64,
    /// The encoder's look-ahead, milliseconds (added to the delay).
    pub lookahead_ms: f64,
}

impl CodecModel {
    /// G.711 with packet-loss concealment (G.113 Appendix I: `Ie` 0, `Bpl` 25.1).
    pub const G711_PLC: CodecModel = CodecModel {
        ie: 0.0,
        bpl: 25.1,
        lookahead_ms: 0.0,
    };
    /// G.711 without concealment (G.113 Appendix I: `Ie` 0, `Bpl` 4.3): not what a leg is
    /// rated with (see the module page), the comparison for the tests.
    #[cfg(test)]
    pub const G711: CodecModel = CodecModel {
        ie: 0.0,
        bpl: 4.3,
        lookahead_ms: 0.0,
    };

    /// The values a negotiated codec is rated with (see the module page).
    pub fn of(codec: Codec) -> CodecModel {
        match codec {
            Codec::Pcmu | Codec::Pcma => CodecModel::G711_PLC,
            // G.722's QMF filter bank adds 1.5 ms.
            Codec::G722 => CodecModel {
                lookahead_ms: 1.5,
                ..CodecModel::G711_PLC
            },
            // Opus (CELT and SILK modes alike at 20 ms frames) looks 6.5 ms ahead.
            Codec::Opus => CodecModel {
                lookahead_ms: 6.5,
                ..CodecModel::G711_PLC
            },
        }
    }
}

/// The delay impairment `Id` for a mouth-to-ear delay of `delay_ms` (see the module page).
pub fn delay_impairment(delay_ms: f64) -> f64 {
    let d = delay_ms.max(0.0);
    0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 }
}

/// The effective equipment impairment `Ie,eff` at `loss_percent` random packet loss.
pub fn loss_impairment(codec: CodecModel, loss_percent: f64) -> f64 {
    let ppl = loss_percent.clamp(0.0, 100.0);
    codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl)
}

/// The rating R for a codec, its loss and the mouth-to-ear delay.
pub fn r_factor(codec: CodecModel, loss_percent: f64, delay_ms: f64) -> f64 {
    R_DEFAULT - delay_impairment(delay_ms) - loss_impairment(codec, loss_percent)
}

/// The mean opinion score (1 to 4.5) for a rating R (G.107 Annex B).
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

/// The MOS of a leg that received `packets` RTP packets and lost `lost`, with `jitter_ms`
/// interarrival jitter; none when nothing arrived (no stream to rate).
pub fn leg_mos(codec: Codec, packets: u64, lost: u64, jitter_ms: f64) -> Option<f64> {
    leg_mos_with_delay(codec, packets, lost, jitter_ms, 0.0)
}

/// The same with `extra_delay_ms` of measured delay on the path besides (chorus-load's
/// mouth-to-ear delay through the server).
pub fn leg_mos_with_delay(
    codec: Codec,
    packets: u64,
    lost: u64,
    jitter_ms: f64,
    extra_delay_ms: f64,
) -> Option<f64> {
    if packets == 0 {
        return None;
    }
    let model = CodecModel::of(codec);
    let loss_percent = 100.0 * lost as f64 / (packets + lost) as f64;
    // A 20 ms packet, a jitter buffer of twice the jitter, the codec's look-ahead.
    let delay_ms = extra_delay_ms.max(0.0) + 20.0 + 2.0 * jitter_ms.max(0.0) + model.lookahead_ms;
    Some(mos(r_factor(model, loss_percent, delay_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rating_is_mos_4_41() {
        // G.107: R = 93.2 with all defaults, MOS 4.41.
        assert!((mos(R_DEFAULT) - 4.41).abs() < 0.005, "{}", mos(R_DEFAULT));
        assert_eq!(r_factor(CodecModel::G711, 0.0, 0.0), R_DEFAULT);
        assert_eq!(mos(-5.0), 1.0);
        assert_eq!(mos(120.0), 4.5);
        // The common reference points of the R-to-MOS curve (G.107 Figure B.1).
        assert!((mos(50.0) - 2.58).abs() < 0.01, "{}", mos(50.0));
        assert!((mos(80.0) - 4.02).abs() < 0.01, "{}", mos(80.0));
    }

    #[test]
    fn concealment_makes_loss_hurt_less() {
        let with = mos(r_factor(CodecModel::G711_PLC, 5.0, 20.0));
        let without = mos(r_factor(CodecModel::G711, 5.0, 20.0));
        assert!(without < with, "{without} < {with}");
        // G.113 Appendix I's Bpl puts 5 % random loss without PLC far below "fair".
        assert!(without < 2.5, "{without}");
        assert!(with > 3.5, "{with}");
    }

    #[test]
    fn worse_with_more_loss_and_more_delay() {
        for codec in [CodecModel::G711, CodecModel::G711_PLC] {
            let mut last = f64::INFINITY;
            for loss in 0..=40 {
                let m = mos(r_factor(codec, f64::from(loss) * 0.5, 40.0));
                assert!(m <= last, "loss {loss}: {m} > {last}");
                last = m;
            }
        }
        let mut last = f64::INFINITY;
        for delay in (0..=600).step_by(10) {
            let m = mos(r_factor(CodecModel::G711_PLC, 1.0, f64::from(delay)));
            assert!(m <= last, "delay {delay}: {m} > {last}");
            last = m;
        }
        // The knee at 177.3 ms: past it, each millisecond costs more.
        let slope = |d: f64| delay_impairment(d + 1.0) - delay_impairment(d);
        assert!(slope(250.0) > 4.0 * slope(100.0));
    }

    #[test]
    fn a_leg_is_rated_from_its_counters() {
        assert_eq!(leg_mos(Codec::Pcmu, 0, 0, 0.0), None);
        let clean = leg_mos(Codec::Pcmu, 3000, 0, 1.0).unwrap();
        assert!(clean > 4.3, "{clean}");
        let lossy = leg_mos(Codec::Pcmu, 2850, 150, 1.0).unwrap();
        assert!(lossy < clean, "{lossy}");
        let jittery = leg_mos(Codec::Pcmu, 3000, 0, 80.0).unwrap();
        assert!(jittery < clean, "{jittery}");
        // Opus is rated as G.711 with PLC plus its look-ahead: a hair lower.
        let opus = leg_mos(Codec::Opus, 3000, 0, 1.0).unwrap();
        assert!(opus <= clean && clean - opus < 0.05, "{opus}");
    }
}
