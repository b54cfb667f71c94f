//! The selective forwarding unit's core (sans-IO): see the module docs written with the
//! router.

pub mod h264;
mod nack_generator;
mod nack_responder;
mod packet_store;
pub mod rtx;
mod send_history;
mod token_bucket;
pub mod vp8;

pub use nack_generator::{Arrival, NackGenerator, NackGeneratorConfig, NackGeneratorCounters};
pub use nack_responder::{NackCounters, NackLimits, NackResponder};
pub use packet_store::PacketStore;
pub use rtx::RtxConfig;
pub use send_history::{HistoryEntry, SendHistory, SentPacket};
pub use token_bucket::TokenBucket;
mod key_frame_requester;
pub use key_frame_requester::{
    KeyFrameCounters, KeyFrameMethod, KeyFrameRequest, KeyFrameRequester,
};
