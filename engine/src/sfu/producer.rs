//! A producer: one incoming video track and its simulcast encodings.

use std::time::{Duration, Instant};

use crate::rtp::{Pt, RtpStreamRecv, SeqNoUnwrapper, Ssrc};
use crate::sfu::{
    KeyFrameMethod, KeyFrameRequester, NackGenerator, NackGeneratorConfig, PacketStore, RtxConfig,
};

/// The video codecs whose payloads the SFU understands well enough to switch layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 (RFC 6184), packetization-mode 1.
    H264,
    /// VP8 (RFC 7741).
    Vp8,
}

impl VideoCodec {
    /// Its index in per-codec tables.
    pub(crate) fn index(self) -> usize {
        match self {
            VideoCodec::H264 => 0,
            VideoCodec::Vp8 => 1,
        }
    }
}

/// One simulcast encoding as signaled (`a=rid`, `a=simulcast`, `a=ssrc-group:SIM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingConfig {
    /// The encoding's SSRC if signaled; None to learn it from the RID header extension.
    pub ssrc: Option<Ssrc>,
    /// The RID (`a=rid:<rid> send`), matched against the RFC 8852 `rtp-stream-id` element.
    pub rid: Option<String>,
    /// Its RTX stream, if negotiated.
    pub rtx: Option<RtxConfig>,
    /// The picture height it carries (for the receivers' wanted size).
    pub height: u16,
    /// The bitrate it is expected to need, used until it is measured.
    pub max_bitrate_bps: u32,
}

/// The RTP header extension ids a leg negotiated that the SFU carries across legs. Ids are
/// per session (RFC 8285), so a forwarded packet's are renumbered to the receiver's; the
/// elements that describe the publisher's own transport or stream (mid, rid, transport-wide
/// sequence numbers, and any the SFU does not know) are turned into padding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionIds {
    /// abs-send-time: the publisher's send time, for the receiver's delay-based estimate (and
    /// the load generator's frame delay).
    pub abs_send_time: Option<u8>,
}

impl ExtensionIds {
    /// The receiver's id (`to`) for element `id` of a packet from a publisher with `self`.
    pub fn map_to(self, to: ExtensionIds, id: u8) -> Option<u8> {
        if Some(id) == self.abs_send_time {
            to.abs_send_time
        } else {
            None
        }
    }
}

/// A producer's configuration: the codec, its payload type on the publisher's leg, the
/// encodings from lowest to highest, and what the publisher takes as feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// The codec.
    pub codec: VideoCodec,
    /// The payload type the publisher sends it with.
    pub pt: Pt,
    /// The RTP clock rate (90,000 for video).
    pub clock_rate: u32,
    /// Simulcast encodings, lowest first (one for a publisher without simulcast).
    pub encodings: Vec<EncodingConfig>,
    /// PLI or FIR toward the publisher.
    pub key_frame_method: KeyFrameMethod,
    /// The publisher takes generic NACKs (`a=rtcp-fb:* nack`).
    pub nack: bool,
    /// The RFC 8852 `rtp-stream-id` extension id, when RIDs identify the encodings.
    pub rid_ext_id: Option<u8>,
    /// The extension ids forwarded packets are renumbered from.
    pub extensions: ExtensionIds,
}

/// Bytes received over a sliding window, as bits per second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BitrateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    bps: Option<u32>,
}

/// The window of the bitrate measurement.
const BITRATE_WINDOW: Duration = Duration::from_millis(1_000);

impl BitrateMeter {
    fn new() -> Self {
        Self {
            window_start: None,
            bytes: 0,
            bps: None,
        }
    }

    fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= BITRATE_WINDOW {
            let bits = self.bytes.saturating_mul(8).saturating_mul(1_000);
            let ms = u64::try_from(elapsed.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            self.bps = Some(u32::try_from(bits / ms).unwrap_or(u32::MAX));
            self.window_start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }
}

/// One encoding's receive state.
#[derive(Debug)]
pub(crate) struct Encoding {
    pub config: EncodingConfig,
    /// The SSRC in use (signaled or learned from the RID).
    pub ssrc: Option<Ssrc>,
    pub unwrapper: SeqNoUnwrapper,
    pub store: PacketStore,
    pub nack: NackGenerator,
    pub key_frames: KeyFrameRequester,
    pub recv: Option<RtpStreamRecv>,
    pub bitrate: BitrateMeter,
    pub last_packet: Option<Instant>,
    /// A key frame of this encoding has been seen since it (re)started.
    pub key_frame_seen: bool,
}

/// How long an encoding may stay silent before consumers stop choosing it.
pub(crate) const ENCODING_TIMEOUT: Duration = Duration::from_millis(1_500);

impl Encoding {
    /// Whether the encoding sent anything recently.
    pub fn is_active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < ENCODING_TIMEOUT)
    }

    /// Bits per second it takes: measured, else its configured maximum.
    pub fn bitrate_bps(&self) -> u32 {
        self.bitrate.bps.unwrap_or(self.config.max_bitrate_bps)
    }

    pub fn account(&mut self, now: Instant, bytes: usize) {
        self.bitrate.add(now, bytes);
        self.last_packet = Some(now);
    }
}

/// Sizes of the per-encoding buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizes {
    /// Packets held for retransmission per encoding.
    pub store_packets: usize,
    /// The largest packet held (longer ones are forwarded but not held).
    pub max_packet_len: usize,
    /// Packets a consumer's send history remembers.
    pub history_packets: usize,
    /// The upstream NACK generator's settings.
    pub nack: NackGeneratorConfig,
    /// At most one key-frame request per encoding per this interval.
    pub key_frame_interval: Duration,
}

impl Default for BufferSizes {
    fn default() -> Self {
        Self {
            store_packets: 512,
            max_packet_len: 1_500,
            history_packets: 1_024,
            nack: NackGeneratorConfig::default(),
            key_frame_interval: Duration::from_millis(500),
        }
    }
}

/// A producer in a router.
#[derive(Debug)]
pub(crate) struct Producer {
    pub config: ProducerConfig,
    pub encodings: Vec<Encoding>,
}

impl Producer {
    pub fn new(now: Instant, config: ProducerConfig, sizes: &BufferSizes) -> Self {
        let encodings = config
            .encodings
            .iter()
            .map(|e| Encoding {
                config: e.clone(),
                ssrc: e.ssrc,
                unwrapper: SeqNoUnwrapper::new(),
                store: PacketStore::new(sizes.store_packets, sizes.max_packet_len),
                nack: NackGenerator::new(sizes.nack),
                key_frames: KeyFrameRequester::new(
                    now,
                    config.key_frame_method,
                    sizes.key_frame_interval,
                ),
                recv: e
                    .ssrc
                    .map(|s| RtpStreamRecv::new(s, config.clock_rate).with_min_sequential(1)),
                bitrate: BitrateMeter::new(),
                last_packet: None,
                key_frame_seen: false,
            })
            .collect();
        Self { config, encodings }
    }

    /// The encoding a packet of `ssrc` belongs to, and whether it is its RTX stream.
    pub fn encoding_of(&self, ssrc: Ssrc) -> Option<(usize, bool)> {
        self.encodings.iter().enumerate().find_map(|(i, e)| {
            if e.ssrc == Some(ssrc) {
                Some((i, false))
            } else if e.config.rtx.is_some_and(|r| r.ssrc == ssrc) {
                Some((i, true))
            } else {
                None
            }
        })
    }

    /// The encoding whose RID is `rid` and whose SSRC is not known yet.
    pub fn unbound_encoding_with_rid(&self, rid: &[u8]) -> Option<usize> {
        self.encodings.iter().position(|e| {
            e.ssrc.is_none() && e.config.rid.as_deref().map(str::as_bytes) == Some(rid)
        })
    }

    /// The one encoding of a publisher that announced neither SSRC nor RID (a SIP video
    /// endpoint without `a=ssrc`), not bound yet, for a packet of the media payload type
    /// `pt` (an RTX packet cannot name it).
    pub fn unannounced_encoding(&self, pt: Pt) -> Option<usize> {
        match self.encodings.as_slice() {
            [e] if e.ssrc.is_none() && e.config.rid.is_none() && pt == self.config.pt => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_is_measured_per_window() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::new();
        for ms in 0..=2_000u64 {
            // 125 bytes a millisecond: 1 Mbit/s.
            m.add(t0 + Duration::from_millis(ms), 125);
        }
        assert_eq!(m.bps, Some(1_000_000));
    }
}
