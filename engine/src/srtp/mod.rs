//! SRTP and SRTCP (RFC 3711, RFC 7714).
//!
//! An [`SrtpContext`] holds one direction of one leg: the session keys
//! derived from one master key and the per-SSRC state (rollover counter,
//! replay window, SRTCP index) of every SSRC seen in that direction. It
//! protects and unprotects in place in the caller's buffer and allocates
//! nothing per packet.
//!
//! Suites: `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`,
//! `AEAD_AES_128_GCM`, `AEAD_AES_256_GCM`. Not supported: MKI, a nonzero key
//! derivation rate, NULL cipher or authentication, AES-192/256-CM.
//!
//! ```
//! use chorus_engine::srtp::{SrtpContext, SrtpSuite};
//!
//! let key = [0x11; 16];
//! let salt = [0x22; 14];
//! let suite = SrtpSuite::AesCm128HmacSha1_80;
//! let mut outbound = SrtpContext::new(suite, &key, &salt)?;
//! let mut inbound = SrtpContext::new(suite, &key, &salt)?;
//!
//! let mut buf = [0u8; 1500];
//! let rtp = [0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xcd];
//! buf[..rtp.len()].copy_from_slice(&rtp);
//! let srtp_len = outbound.protect_rtp(&mut buf, rtp.len())?;
//! assert_eq!(srtp_len, rtp.len() + suite.rtp_overhead());
//!
//! let rtp_len = inbound.unprotect_rtp(&mut buf[..srtp_len])?;
//! assert_eq!(buf[..rtp_len], rtp);
//! # Ok::<(), chorus_engine::srtp::SrtpError>(())
//! ```

mod aes_cm;
mod cm_session;
mod context;
mod error;
mod gcm_session;
mod kdf;
mod replay_window;
mod rollover;
mod rtcp_header;
mod rtp_header;
pub mod sdes;
mod stream_table;
mod suite;

/// Test vectors are written as hex with spaces and line breaks, as the RFCs print them.
#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

pub use context::{GCM_TRIAL_MAX_PACKET_LEN, MAX_SRTCP_PACKETS, MAX_SRTP_PACKETS, SrtpContext};
pub use error::SrtpError;
pub use replay_window::REPLAY_WINDOW_PACKETS;
pub use stream_table::MAX_SSRCS;
pub use suite::SrtpSuite;
