//! The client-to-mixer audio level header extension (RFC 6464).
//!
//! One data byte: `V (1) | level (7)`, V the voice activity flag, level the audio level in
//! -dBov from 0 (loudest, overload) to 127 (silence).

use crate::rtp::RtpError;

/// An audio level element: voice activity and level in -dBov.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioLevel {
    voice: bool,
    level: u8,
}

impl AudioLevel {
    /// The quietest level the 7-bit field holds.
    pub const SILENCE: u8 = 127;

    /// An audio level of `level` -dBov (0-127) with the voice activity flag `voice`.
    pub fn new(voice: bool, level: u8) -> Result<Self, RtpError> {
        if level > Self::SILENCE {
            return Err(RtpError::AudioLevelOutOfRange(level));
        }
        Ok(Self { voice, level })
    }

    /// Parses an element's data, which must be exactly one byte (RFC 6464 section 3).
    pub fn parse(data: &[u8]) -> Result<Self, RtpError> {
        match data {
            &[b] => Ok(Self::from_byte(b)),
            _ => Err(RtpError::AudioLevelLength(data.len())),
        }
    }

    /// Decodes the data byte.
    pub const fn from_byte(b: u8) -> Self {
        Self {
            voice: b & 0x80 != 0,
            level: b & 0x7f,
        }
    }

    /// The data byte, for an [`Extension`](crate::rtp::Extension) of one byte.
    pub const fn to_byte(self) -> u8 {
        (if self.voice { 0x80 } else { 0 }) | self.level
    }

    /// Whether the sender's voice activity detector flagged speech.
    pub const fn voice(self) -> bool {
        self.voice
    }

    /// The level in -dBov: 0 is the loudest, 127 silence.
    pub const fn level(self) -> u8 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for b in 0..=u8::MAX {
            let a = AudioLevel::parse(&[b]).unwrap();
            assert_eq!(a.voice(), b >= 0x80);
            assert_eq!(a.level(), b & 0x7f);
            assert_eq!(a.to_byte(), b);
            assert_eq!(AudioLevel::new(a.voice(), a.level()), Ok(a));
        }
    }

    #[test]
    fn rejects_wrong_length_and_range() {
        assert_eq!(AudioLevel::parse(&[]), Err(RtpError::AudioLevelLength(0)));
        assert_eq!(
            AudioLevel::parse(&[1, 0]),
            Err(RtpError::AudioLevelLength(2))
        );
        assert_eq!(
            AudioLevel::new(false, 128),
            Err(RtpError::AudioLevelOutOfRange(128))
        );
    }
}
