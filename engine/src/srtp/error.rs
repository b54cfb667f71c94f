//! The one error type of the SRTP module.

/// Why a packet was not protected or unprotected, or a context not built.
///
/// Fieldless and `Copy`, so the caller can turn it into a drop counter with
/// [`SrtpError::counter_name`] without allocating.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpError {
    /// The packet is too short, is not RTP/RTCP version 2, or its header
    /// (CSRCs, extension) runs past its end.
    #[error("malformed RTP/RTCP packet")]
    Malformed,
    /// The authentication tag (HMAC-SHA1 or GCM tag) does not verify.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was already received (or, when protecting, already
    /// sent) inside the replay window.
    #[error("replayed SRTP packet")]
    Replayed,
    /// The packet index is older than the replay window reaches.
    #[error("SRTP packet older than the replay window")]
    TooOld,
    /// A packet for a new SSRC arrived but the context already tracks its
    /// maximum number of SSRCs.
    #[error("too many SSRCs in one SRTP context")]
    TooManySsrcs,
    /// The master key has protected as many packets as it may (2^48 SRTP,
    /// 2^31 SRTCP, or the SDES lifetime); the session must be rekeyed.
    #[error("SRTP master key lifetime exhausted")]
    KeyLifetimeExhausted,
    /// The caller's buffer has no room for the tag (and SRTCP index), or
    /// `len` is larger than the buffer.
    #[error("buffer too small for the SRTP trailer")]
    BufferTooSmall,
    /// The master key length does not match the suite.
    #[error("master key length does not match the SRTP suite")]
    BadKeyLength,
    /// The master salt length does not match the suite.
    #[error("master salt length does not match the SRTP suite")]
    BadSaltLength,
}

impl SrtpError {
    /// Every variant, for building a counter table indexed by the error.
    pub const ALL: [SrtpError; 9] = [
        SrtpError::Malformed,
        SrtpError::AuthFailed,
        SrtpError::Replayed,
        SrtpError::TooOld,
        SrtpError::TooManySsrcs,
        SrtpError::KeyLifetimeExhausted,
        SrtpError::BufferTooSmall,
        SrtpError::BadKeyLength,
        SrtpError::BadSaltLength,
    ];

    /// Position of the variant in [`SrtpError::ALL`], for a counter array
    /// indexed by error.
    pub const fn counter_index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for a drop counter (`srtp_auth_failed`, ...).
    pub fn counter_name(self) -> &'static str {
        match self {
            SrtpError::Malformed => "srtp_malformed",
            SrtpError::AuthFailed => "srtp_auth_failed",
            SrtpError::Replayed => "srtp_replayed",
            SrtpError::TooOld => "srtp_too_old",
            SrtpError::TooManySsrcs => "srtp_too_many_ssrcs",
            SrtpError::KeyLifetimeExhausted => "srtp_key_lifetime_exhausted",
            SrtpError::BufferTooSmall => "srtp_buffer_too_small",
            SrtpError::BadKeyLength => "srtp_bad_key_length",
            SrtpError::BadSaltLength => "srtp_bad_salt_length",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_distinct_and_prefixed() {
        for (i, a) in SrtpError::ALL.iter().enumerate() {
            assert_eq!(a.counter_index(), i);
            assert!(a.counter_name().starts_with("srtp_"));
            for b in &SrtpError::ALL[i + 1..] {
                assert_ne!(a.counter_name(), b.counter_name());
            }
        }
    }
}
