//! H.264 video for the load generator: encode synthetic content once, packetize it for RTP
//! (RFC 6184, packetization mode 1), reassemble and check what subscribers receive.
//!
//! - [`Scene`] draws synthetic moving content into a [`Picture`] (I420): a drifting gradient,
//!   a bouncing block and a frame-counter pattern, the same scene at any size.
//! - [`Encoder`] wraps OpenH264 (built from source by the `openh264` crate): constrained
//!   baseline, one slice per picture, rate-controlled to a target bitrate, key frames (IDR with
//!   SPS and PPS) on request only. It turns a picture into an [`AccessUnit`].
//! - [`Packetizer`] splits an access unit into RTP payloads no larger than a given size:
//!   single NAL unit packets, STAP-A for small NAL units (SPS + PPS), FU-A for large ones; the
//!   marker bit on the last. RTP headers are the caller's.
//! - [`Depacketizer`] is the receiving side, sans-IO: fed RTP packets (sequence number,
//!   timestamp, marker, payload) with gaps and reordering inside a window, it yields complete
//!   access units and reports broken ones (a lost fragment, a gap inside a frame, a frame
//!   without its start or end). Malformed payloads are counted and dropped, never a panic.
//! - [`SequenceParameterSet`] reads the picture size and profile-level-id from an SPS, so a
//!   subscriber tells which simulcast layer it receives without decoding.
//! - [`Decoder`] wraps OpenH264's decoder to confirm that a reassembled access unit decodes.
//! - [`Clip`] is N seconds of the scene encoded once at several sizes (simulcast), key frames
//!   aligned across sizes, stored as packetized payloads so a generator loops it forever
//!   without encoding at run time.
//!
//! ```
//! use chorus_codecs::h264::{
//!     AccessUnit, Depacketizer, DepacketizerConfig, Encoder, EncoderConfig, Packetizer,
//!     Picture, Reassembled, Scene,
//! };
//! use std::time::Instant;
//! let config = EncoderConfig { width: 320, height: 180, fps: 15, bitrate_bps: 150_000 };
//! let mut encoder = Encoder::new(config).unwrap();
//! let mut picture = Picture::new(320, 180).unwrap();
//! Scene::default().render(0, 15, &mut picture);
//! let mut au = AccessUnit::default();
//! encoder.encode(&picture, true, &mut au).unwrap();
//! assert!(au.is_key());
//! let mut payloads = Vec::new();
//! Packetizer::new(1_200).unwrap().packetize(&au, &mut payloads).unwrap();
//! let mut receiver = Depacketizer::new(DepacketizerConfig::default());
//! let now = Instant::now();
//! for (i, p) in payloads.iter().enumerate() {
//!     receiver.handle_packet(now, 100 + i as u16, 3_000, p.marker, &p.data);
//! }
//! let Some(Reassembled::Frame(frame)) = receiver.poll_frame() else { panic!() };
//! assert_eq!(frame.nal_count(), au.nal_count());
//! ```

mod access_unit;
mod clip;
mod decoder;
mod depacketizer;
mod encoder;
mod packetizer;
mod picture;
mod scene;
mod sps;

pub use access_unit::AccessUnit;
pub use clip::{Clip, ClipConfig, ClipFrame, ClipLayer, LayerSpec};
pub use decoder::Decoder;
pub use depacketizer::{
    Breakage, BrokenFrame, Depacketizer, DepacketizerConfig, DepacketizerStats, Reassembled,
};
pub use encoder::{Encoder, EncoderConfig};
pub use packetizer::{Packetizer, Payload};
pub use picture::Picture;
pub use scene::Scene;
pub use sps::SequenceParameterSet;

/// The RTP clock of H.264 video (RFC 6184 section 8.2.1), in Hz.
pub const RTP_CLOCK_RATE: u32 = 90_000;

pub use crate::h264_nal::{
    FU_A, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SLICE, NAL_SPS, STAP_A, nal_type,
};

/// Whether a NAL unit whose header is `header` and whose next byte is `next` begins a new
/// picture: an SEI, SPS, PPS or access unit delimiter (which precede a picture's slices), or
/// a slice with `first_mb_in_slice` 0 (its Exp-Golomb code is the single bit 1, H.264
/// section 7.3.3). `next` is None when the NAL unit has no second byte.
pub fn starts_picture(header: u8, next: Option<u8>) -> bool {
    match nal_type(header) {
        NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD => true,
        NAL_SLICE | NAL_IDR => next.is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

/// Why an H.264 part could not be built or run as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// Width or height is zero, odd, or beyond what the encoder takes (3840x2160).
    #[error("picture size {width}x{height}: both must be even, 16..=3840 by 16..=2160")]
    Size {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// The frame rate is zero, above 60, or does not divide the 90 kHz RTP clock.
    #[error("frame rate {0} fps: must be 1..=60 and divide 90,000")]
    FrameRate(u32),
    /// The target bitrate is outside 10 kbit/s to 50 Mbit/s.
    #[error("bitrate {0} bit/s is outside 10,000..=50,000,000")]
    Bitrate(u32),
    /// The largest RTP payload asked for is too small for an FU-A fragment or too large for
    /// a STAP-A length field.
    #[error("payload size {0} bytes is outside 3..=65,535")]
    PayloadSize(usize),
    /// A NAL unit's type is 0 or 24..=31, which RFC 6184 reserves for its packet types: such
    /// a unit cannot be sent as a single NAL unit packet.
    #[error("NAL unit type {0} cannot be packetized")]
    NalType(u8),
    /// An access unit with no NAL unit was handed to the packetizer.
    #[error("access unit holds no NAL unit")]
    EmptyAccessUnit,
    /// A picture handed to the encoder is not the encoder's size.
    #[error("picture is {got_width}x{got_height}, the encoder takes {width}x{height}")]
    PictureSize {
        /// The encoder's width.
        width: u32,
        /// The encoder's height.
        height: u32,
        /// The picture's width.
        got_width: u32,
        /// The picture's height.
        got_height: u32,
    },
    /// The encoder produced no NAL unit for a picture (it skipped the frame).
    #[error("encoder skipped frame {0}")]
    Skipped(u64),
    /// A clip's layout is unusable (no layers, zero length, length not a whole number of
    /// key-frame intervals).
    #[error("clip: {0}")]
    Clip(&'static str),
    /// OpenH264 reported an error.
    #[error("openh264: {0}")]
    Library(String),
}
