//! RTP (RFC 3550) packets, header extensions and receive statistics.
//!
//! Everything here is a zero-copy view over a caller's buffer or a writer into one; nothing
//! allocates per packet and nothing reads a clock.
//!
//! - [`RtpPacket::parse`] validates a packet (version, CSRCs, extension block, padding) and
//!   gives field accessors; [`RtpPacketMut`] rewrites SSRC, sequence number, timestamp,
//!   payload type and marker in place for forwarding.
//! - [`RtpHeader::write`] builds a header with RFC 8285 extensions into a caller buffer;
//!   [`write_padding`] pads a finished packet.
//! - [`ExtensionIter`] walks one-byte and two-byte extension elements; [`AudioLevel`] reads
//!   and writes the RFC 6464 element.
//! - [`TelephoneEvent`] reads and writes RFC 4733 named-event payloads (DTMF).
//! - [`SeqNoUnwrapper`] and [`TimestampUnwrapper`] extend wire values to 64 bits.
//! - [`RtpStreamRecv`] keeps the RFC 3550 Appendix A receive statistics of one stream and
//!   produces its RTCP report block.
//!
//! ```
//! use chorus_engine::rtp::{Extension, ExtensionForm, Pt, RtpHeader, RtpPacket, Ssrc};
//!
//! let mut buf = [0u8; 1500];
//! let level = [0x85];
//! let exts = [Extension { id: 1, data: &level }];
//! let header = RtpHeader {
//!     pt: Pt(111),
//!     seq: 7,
//!     timestamp: 960,
//!     ssrc: Ssrc(0x1234),
//!     extensions: &exts,
//!     extension_form: ExtensionForm::OneByte,
//!     ..Default::default()
//! };
//! let header_len = header.write(&mut buf).unwrap();
//! buf[header_len..header_len + 3].copy_from_slice(b"abc");
//! let packet = RtpPacket::parse(&buf[..header_len + 3]).unwrap();
//! assert_eq!(packet.seq(), 7);
//! assert_eq!(packet.extension(1), Some(&[0x85][..]));
//! assert_eq!(packet.payload(), b"abc");
//! ```

mod audio_level;
pub(crate) mod cursor;
mod error;
mod extension;
mod header;
mod packet;
mod pt;
mod seq_no;
mod ssrc;
mod stream_recv;
mod telephone_event;
mod unwrapper;
#[cfg(test)]
pub(crate) mod xorshift;

pub use audio_level::AudioLevel;
pub use error::RtpError;
pub use extension::{Extension, ExtensionForm, ExtensionIter, ONE_BYTE_PROFILE, TWO_BYTE_PROFILE};
pub use header::{RtpHeader, write_padding};
pub use packet::{FIXED_HEADER_LEN, RtpPacket, RtpPacketMut};
pub use pt::Pt;
pub use seq_no::SeqNo;
pub use ssrc::Ssrc;
pub use stream_recv::{MAX_DROPOUT, MAX_MISORDER, MIN_SEQUENTIAL, Reception, RtpStreamRecv};
pub use telephone_event::{TelephoneEvent, dtmf_digit};
pub use unwrapper::{SeqNoUnwrapper, TimestampUnwrapper};
