//! The audio mixer, sans-IO: what each incoming leg feeds the 20 ms tick (jitter buffer), how
//! loud each leg is (level), who is mixed (talker selection) and the mixes themselves.

pub mod conference;
pub mod jitter_buffer;
pub mod leg_audio;
pub mod level;
pub mod mix;
pub mod player;
pub mod probe;
pub mod recording;
pub mod span;
pub mod talkers;

pub use conference::{CLIP_RATE, Conference, MIX_RATE};
pub use leg_audio::{AudioFormat, LegAudio, LegAudioError};
pub use level::Level;
pub use mix::{MixId, Mixes};
pub use player::{ClipCache, Player, PrivateEncoder};
pub use probe::ToneProbe;
pub use recording::RecordingSink;
pub use span::MixBus;
pub use talkers::{TalkerConfig, TalkerSelector};
