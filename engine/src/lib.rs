//! chorus-engine: the per-core media runtime of Chorus.

pub mod mixer;
pub mod rtcp;
pub mod rtp;
pub mod runtime;
pub mod srtp;
