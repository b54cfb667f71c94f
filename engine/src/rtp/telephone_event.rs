//! RFC 4733 named telephone events: the 4-byte payload of a `telephone-event` RTP packet.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A packet may pack several consecutive events (RFC 4733 section 2.5.1.5); the RTP
//! timestamp names the first, so only the first block is read here.

use super::error::RtpError;

/// One named event block (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (RFC 4733 section 3.2: 0-9, 10 `*`, 11 `#`, 12-15 A-D, 16 flash).
    pub event: u8,
    /// The E bit: this packet reports the end of the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units from the packet's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Bytes in one event block.
    pub const LEN: usize = 4;

    /// Reads the first event block of a `telephone-event` payload.
    pub fn parse(payload: &[u8]) -> Result<Self, RtpError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(RtpError::TelephoneEventTruncated { len: payload.len() });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Writes the block into `out`; returns the bytes written.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let have = out.len();
        let Some(dst) = out.get_mut(..Self::LEN) else {
            return Err(RtpError::BufferTooSmall {
                need: Self::LEN,
                have,
            });
        };
        let d = self.duration.to_be_bytes();
        dst.copy_from_slice(&[
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]);
        Ok(Self::LEN)
    }

    /// The DTMF key this event is, if it is one (RFC 4733 section 3.2 table 7).
    pub fn dtmf_digit(&self) -> Option<char> {
        dtmf_digit(self.event)
    }
}

/// The DTMF key of an event code: `0`-`9`, `*` (10), `#` (11), `A`-`D` (12-15); None for
/// every other code (flash, tones).
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4733_fields() {
        // An end packet of digit 1 after 2240 units at volume 10, as sipp's pcaps carry it.
        let e = TelephoneEvent::parse(&[0x01, 0x8a, 0x08, 0xc0]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 1,
                end: true,
                volume: 10,
                duration: 2240
            }
        );
        // The reserved bit is ignored; trailing blocks are left alone.
        let e = TelephoneEvent::parse(&[0x0b, 0x4a, 0x01, 0x40, 0x0c, 0, 0, 0]).unwrap();
        assert_eq!((e.event, e.end, e.volume, e.duration), (11, false, 10, 320));
        let mut out = [0u8; 4];
        assert_eq!(e.write(&mut out), Ok(4));
        assert_eq!(out, [0x0b, 0x0a, 0x01, 0x40]);
    }

    #[test]
    fn short_payloads_are_errors() {
        for len in 0..4 {
            assert_eq!(
                TelephoneEvent::parse(&[1, 2, 3][..len.min(3)]),
                Err(RtpError::TelephoneEventTruncated { len: len.min(3) })
            );
        }
        assert!(
            TelephoneEvent {
                event: 1,
                end: false,
                volume: 0,
                duration: 0
            }
            .write(&mut [0u8; 3])
            .is_err()
        );
    }

    #[test]
    fn every_event_code_maps_to_at_most_one_key() {
        let keys: String = (0..=255u8).filter_map(dtmf_digit).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(dtmf_digit(16), None, "flash is not a key");
    }
}
