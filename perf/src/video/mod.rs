//! The generator's video side (`chorus-load run --video`): every video caller publishes a
//! pre-encoded simulcast H.264 [`Clip`](chorus_engine::codecs::h264::Clip) and subscribes to
//! what the server forwards, each on its own UDP socket with SRTP, separate from the audio
//! engine.
//!
//! The protocol parts are sans-IO state machines (STYLE.md): a [`Publisher`] loops the clip
//! at its frame rate with one SSRC (and RID) per layer, answers NACKs from a bounded send
//! history (over RTX when negotiated), jumps to the next key frame on PLI/FIR and sends SRs;
//! a [`Subscriber`] passes what arrives through a simulated [`Link`] (seeded loss, a
//! token-bucket bandwidth limit), reassembles frames per stream, NACKs gaps, asks for a key
//! frame when a frame is broken past recovery, sends REMB with its bandwidth, and measures
//! per layer (height from the SPS) frames, broken frames, frame delay (abs-send-time) and
//! switch time. `socket.rs` drives them on sockets; `stats.rs` sums them for the report.

mod link;
mod publisher;
mod report;
mod socket;
mod stats;
mod subscriber;

pub use link::{Link, LinkConfig};
pub use publisher::{Publisher, PublisherConfig, PublisherCounters};
pub use report::VideoReport;
pub use socket::{CallerPlan, CallerVideo, VideoLeg, VideoSide};
pub use stats::SubscriberStats;
pub use subscriber::{Subscriber, SubscriberConfig};

use std::time::{Duration, Instant};

use chorus_engine::codecs::h264::ClipConfig;
use chorus_engine::rtp::Ssrc;

/// The clip every publisher loops: 4 s at 30 fps, a key frame every 2 s, 320x180 at 150
/// kbit/s, 640x360 at 500 kbit/s, 1280x720 at 1.5 Mbit/s.
pub fn clip_config() -> ClipConfig {
    ClipConfig::simulcast(4)
}

/// The heights of [`clip_config`]'s layers, lowest first (what the SDP announces).
pub const LAYER_HEIGHTS: [u32; 3] = [180, 360, 720];

/// The RID of layer `layer` (lowest 0).
pub fn rid(layer: usize) -> String {
    format!("l{layer}")
}

/// Caller `index`'s publisher SSRCs, (media, RTX) per layer lowest first; its subscriber
/// sends feedback as [`subscriber_ssrc`].
pub fn publisher_ssrcs(index: usize) -> Vec<(Ssrc, Ssrc)> {
    let base = 0x4c00_0000u32.wrapping_add((index as u32).wrapping_mul(8));
    (0..LAYER_HEIGHTS.len() as u32)
        .map(|l| (Ssrc(base + l), Ssrc(base + 4 + l)))
        .collect()
}

/// Caller `index`'s feedback SSRC.
pub fn subscriber_ssrc(index: usize) -> Ssrc {
    Ssrc(0x4c00_0000u32.wrapping_add((index as u32).wrapping_mul(8)) + 7)
}

/// What a transmit is, so the driver protects it with the right SRTP function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP packet (media or RTX).
    Rtp,
    /// A compound RTCP packet.
    Rtcp,
}

/// abs-send-time (webrtc.org `abs-send-time` extension): 24 bits, 6.18 fixed-point seconds
/// since `epoch`, wrapping every 64 s. The generator is one process, so a publisher and a
/// subscriber sharing `epoch` compare their clocks directly.
pub fn abs_send_time(epoch: Instant, now: Instant) -> u32 {
    let d = now.saturating_duration_since(epoch);
    // 2^18 units per second; keep 24 bits.
    let units = (d.as_nanos() << 18) / 1_000_000_000;
    (units & 0x00ff_ffff) as u32
}

/// The time from an abs-send-time stamp `sent` to `now`, modulo the 64 s wrap.
pub fn abs_send_age(epoch: Instant, sent: u32, now: Instant) -> Duration {
    let units = abs_send_time(epoch, now).wrapping_sub(sent) & 0x00ff_ffff;
    Duration::from_nanos((u64::from(units) * 1_000_000_000) >> 18)
}

/// The UUID of the SEI (user data unregistered, H.264 section D.1.6) a publisher adds to
/// each key frame to say who it is: the server forwards it untouched, so a subscriber of
/// the active speaker sees whose video a key frame starts without decoding it. No zero
/// bytes, so no emulation prevention is needed.
pub const SOURCE_SEI_UUID: [u8; 16] = *b"chorus-load-src!";

/// The SEI NAL unit naming publisher `source`: header, payload type 5, size, the UUID,
/// the source as 8 hex digits (no zero bytes), RBSP stop bit.
pub fn source_sei(source: u32) -> [u8; 28] {
    let mut nal = [0u8; 28];
    nal[0] = 0x06;
    nal[1] = 5;
    nal[2] = 24;
    nal[3..19].copy_from_slice(&SOURCE_SEI_UUID);
    let hex = format!("{source:08x}");
    nal[19..27].copy_from_slice(hex.as_bytes());
    nal[27] = 0x80;
    nal
}

/// The publisher named by an SEI NAL unit written by [`source_sei`], if it is one.
pub fn parse_source_sei(nal: &[u8]) -> Option<u32> {
    let [0x06, 5, 24, rest @ ..] = nal else {
        return None;
    };
    let (uuid, rest) = rest.split_at_checked(16)?;
    if uuid != SOURCE_SEI_UUID {
        return None;
    }
    let hex = std::str::from_utf8(rest.get(..8)?).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

/// A small seeded generator (xorshift64*) for the simulated loss: reproducible runs, no
/// dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
