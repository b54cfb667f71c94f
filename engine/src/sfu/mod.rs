//! The selective forwarding unit's core, sans-IO: video forwarded between legs without
//! decoding, with simulcast layer switching, retransmissions and feedback.
//!
//! # Model (mediasoup's vocabulary)
//!
//! - A [`Router`] per conference owns everything below in slabs, named by small copyable
//!   ids ([`ProducerId`], [`ConsumerId`]).
//! - A *producer* is one incoming video track ([`ProducerConfig`]): a codec ([`VideoCodec`]:
//!   H.264 or VP8), its payload type, and one or more simulcast encodings
//!   ([`EncodingConfig`]: SSRC or RID, RTX stream, height, expected bitrate). Per encoding
//!   the router keeps a [`PacketStore`] (the last packets, for retransmission, allocated
//!   once), a [`NackGenerator`] (asks the publisher for what the SFU lost), a
//!   [`KeyFrameRequester`] (one PLI or FIR per interval however many receivers ask), and
//!   RFC 3550 receive statistics for the receiver reports.
//! - A *consumer* is one receiver's copy of one producer ([`ConsumerConfig`], source
//!   [`ConsumerSource::Producer`]), or of whoever speaks ([`ConsumerSource::ActiveSpeaker`],
//!   for SIP video endpoints that take one stream). It has its own SSRC and payload type
//!   and rewrites sequence numbers, timestamps and VP8 picture ID/TL0PICIDX, so switching
//!   encoding or source is seamless to the receiver: sequence numbers continue by one,
//!   timestamps advance by the wall-clock time between the packets, picture IDs continue.
//!   It forwards a *current* encoding and switches to its *target* only at a key frame of the
//!   target ([`h264::H264Payload::starts_key_frame`], [`vp8::Vp8Descriptor`]'s `key_frame`),
//!   requesting one when the target changes. Packets of the new encoding that overtook its
//!   key frame, and late packets of the old one, are still put in their places. Its
//!   [`NackResponder`] answers the receiver's NACKs from a send history (which source packet
//!   each outgoing sequence number carried) and the producer's store, over RTX
//!   ([`rtx`], RFC 4588) when negotiated, with per-consumer caps and a rate limit.
//! - Layer choice: the tallest active encoding not above the receiver's wanted height
//!   ([`Router::set_max_height`]) whose bitrate (measured, else configured) fits the
//!   receiver's bandwidth estimate ([`Router::set_bandwidth`], or REMB arriving in
//!   [`Router::handle_consumer_rtcp`], shared equally among the consumers it names).
//!   Hysteresis: down when below the current bitrate less 10%, up only with 15% to spare held
//!   for 1.5 s. An encoding silent for 1.5 s is not chosen (a publisher that stopped).
//! - Last-N ([`RouterConfig::last_n`]): only the N most recent speakers' producers are
//!   forwarded; [`Router::handle_active_speaker`] (fed from the mixer's talkers) moves a
//!   producer to the front; a consumer resuming waits for a key frame (requested).
//!
//! # The interface the runtime drives
//!
//! Inputs are `handle_*(&mut self, now, ...)`, outputs go through the driver's
//! [`SfuTransmit`] (each packet is written straight into a buffer the driver hands over: a
//! transmit slot, then SRTP-protected and queued) and [`Router::poll_event`]; time is
//! [`Router::poll_timeout`] / [`Router::handle_timeout`]. No clock is read and nothing is
//! allocated per packet (stores, histories and NACK lists are allocated when producers and
//! consumers are added; the event queue is bounded).
//!
//! - `handle_rtp(now, producer, plain_packet, tx)`: after SRTP unprotect, for an RTP packet
//!   of a publisher's leg (media or its RTX); forwards to the consumers.
//! - `handle_producer_rtcp(now, producer, compound)`: a publisher's RTCP (its SRs feed our
//!   RRs' LSR/DLSR).
//! - `handle_consumer_rtcp(now, compound, tx)`: a receiver's RTCP: NACK (answered), PLI/FIR
//!   (aggregated toward the producer), REMB (bandwidth); routed by media SSRC.
//! - `handle_timeout(now, tx)`: NACKs and PLI/FIR toward publishers, layer re-evaluation,
//!   SRs to receivers (regenerated per consumer from its own counts and timeline) and RRs to
//!   publishers.
//!
//! Bad input (malformed RTP/RTCP, unknown or colliding SSRCs, wrong payload types,
//! malformed payloads, duplicates, NACK storms, PLI floods) is dropped and counted
//! ([`RouterCounters`], [`ConsumerCounters`], [`NackCounters`]); it never stalls other
//! consumers or grows memory.
//!
//! ```
//! use std::time::Instant;
//! use chorus_engine::rtcp::{NtpClock, NtpTime};
//! use chorus_engine::rtp::{Pt, Ssrc};
//! use chorus_engine::sfu::*;
//!
//! struct Tx(Vec<(ConsumerId, Vec<u8>)>);
//! impl SfuTransmit for Tx {
//!     fn send_rtp(&mut self, to: ConsumerId, fill: &dyn Fn(&mut [u8]) -> usize) -> bool {
//!         let mut slot = vec![0; 1_500];
//!         let n = fill(&mut slot);
//!         slot.truncate(n);
//!         self.0.push((to, slot));
//!         n > 0
//!     }
//!     fn send_rtcp(&mut self, _: RtcpTarget, _: &dyn Fn(&mut [u8]) -> usize) -> bool {
//!         true
//!     }
//! }
//!
//! let now = Instant::now();
//! let mut router = Router::new(now, RouterConfig::new(NtpClock::new(now, NtpTime(0))));
//! let encoding = |ssrc, height, bps| EncodingConfig {
//!     ssrc: Some(Ssrc(ssrc)), rid: None, rtx: None, height, max_bitrate_bps: bps,
//! };
//! let camera = router.add_producer(now, ProducerConfig {
//!     codec: VideoCodec::H264,
//!     pt: Pt(96),
//!     clock_rate: 90_000,
//!     encodings: vec![encoding(1, 180, 150_000), encoding(2, 720, 1_500_000)],
//!     key_frame_method: KeyFrameMethod::Pli,
//!     nack: true,
//!     rid_ext_id: None,
//!     extensions: Default::default(),
//! })?;
//! let viewer = router.add_consumer(now, ConsumerConfig {
//!     source: ConsumerSource::Producer(camera),
//!     ssrc: Ssrc(0xbeef),
//!     pt: Pt(102),
//!     rtx: None,
//!     max_height: 720,
//!     nack_limits: NackLimits::default(),
//!     extensions: Default::default(),
//! })?;
//! let mut tx = Tx(Vec::new());
//! // An IDR slice (single NAL unit) of the 720p encoding: the consumer starts there.
//! let packet = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
//! router.handle_rtp(now, camera, &packet, &mut tx);
//! assert_eq!(tx.0[0].0, viewer);
//! assert_eq!(&tx.0[0].1[8..12], &0xbeef_u32.to_be_bytes());
//! while let Some((at, _why)) = router.poll_timeout() {
//!     if at > now { break; }
//!     router.handle_timeout(now, &mut tx);
//! }
//! # Ok::<(), SfuError>(())
//! ```

mod consumer;
pub mod h264;
mod key_frame_requester;
mod nack_generator;
mod nack_responder;
mod packet_store;
mod producer;
mod router;
pub mod rtx;
mod send_history;
mod token_bucket;
pub mod vp8;

pub use consumer::{ConsumerConfig, ConsumerCounters, ConsumerSource};
pub use key_frame_requester::{
    KeyFrameCounters, KeyFrameMethod, KeyFrameRequest, KeyFrameRequester,
};
pub use nack_generator::{Arrival, NackGenerator, NackGeneratorConfig, NackGeneratorCounters};
pub use nack_responder::{NackCounters, NackLimits, NackResponder};
pub use packet_store::PacketStore;
pub use producer::{BufferSizes, EncodingConfig, ExtensionIds, ProducerConfig, VideoCodec};
pub use router::{
    ConsumerId, ConsumerLayers, ProducerId, Router, RouterConfig, RouterCounters, RtcpTarget,
    SfuError, SfuEvent, SfuTimer, SfuTransmit,
};
pub use rtx::RtxConfig;
pub use send_history::{HistoryEntry, SendHistory, SentPacket};
pub use token_bucket::TokenBucket;

#[cfg(test)]
mod simulation;
