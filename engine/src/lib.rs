//! chorus-engine: the per-core media runtime of Chorus.

/// The codecs the mixer decodes and encodes with.
pub use chorus_codecs as codecs;

pub mod mixer;
pub mod rtcp;
pub mod rtp;
pub mod runtime;
pub mod sfu;
pub mod srtp;
