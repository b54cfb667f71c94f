//! RTCP (RFC 3550, 4585, 5104) packets, compound parsing and RTP/RTCP demultiplexing.
//!
//! Parsing is zero-copy and validating: each packet type's `parse` checks the whole packet
//! against its length field up front (never reading past it), after which its accessors and
//! sub-item iterators cannot fail. Each type's `write` builds the packet into a caller-owned
//! buffer and returns its length. Nothing allocates and nothing reads a clock.
//!
//! - [`parse_rtcp_compound`] iterates the packets of a (compound or reduced-size) datagram as
//!   [`RtcpPacket`]s; [`CompoundBuilder`] appends packets into one buffer.
//! - Reports: [`SenderReport`], [`ReceiverReport`], [`ReportBlock`] (with RTT), [`NtpTime`]
//!   and [`NtpClock`].
//! - [`SourceDescription`], [`Goodbye`], [`App`].
//! - Feedback: [`Nack`], [`TransportCc`], [`Pli`], [`Fir`], [`Remb`].
//! - [`classify`] splits a multiplexed port's datagrams into STUN, DTLS, RTP and RTCP.
//!
//! ```
//! use chorus_engine::rtcp::{parse_rtcp_compound, CompoundBuilder, Nack, ReceiverReport, RtcpPacket};
//! use chorus_engine::rtp::Ssrc;
//!
//! let mut buf = [0u8; 1500];
//! let mut b = CompoundBuilder::new(&mut buf);
//! b.append(|out| ReceiverReport::write(out, Ssrc(1), &[]))?
//!     .append(|out| Nack::write(out, Ssrc(1), Ssrc(2), [10, 11, 15]))?;
//! let len = b.len();
//! for packet in parse_rtcp_compound(&buf[..len]) {
//!     if let RtcpPacket::Nack(nack) = packet? {
//!         assert_eq!(nack.lost().collect::<Vec<_>>(), [10, 11, 15]);
//!     }
//! }
//! # Ok::<(), chorus_engine::rtcp::RtcpError>(())
//! ```

mod app;
mod compound;
mod compound_builder;
mod error;
mod fir;
mod goodbye;
mod header;
mod nack;
mod ntp_clock;
pub(crate) mod ntp_time;
mod packet;
mod packet_kind;
mod pli;
mod receiver_report;
mod remb;
pub(crate) mod report_block;
mod sender_report;
mod source_description;
mod transport_cc;

pub use app::App;
pub use compound::{Compound, parse_rtcp_compound};
pub use compound_builder::CompoundBuilder;
pub use error::RtcpError;
pub use fir::{Fir, FirEntry};
pub use goodbye::{Goodbye, MAX_BYE_SOURCES};
pub use header::{
    FMT_AFB, FMT_FIR, FMT_NACK, FMT_PLI, FMT_TWCC, PT_APP, PT_BYE, PT_PSFB, PT_RR, PT_RTPFB,
    PT_SDES, PT_SR, RtcpHeader,
};
pub use nack::{Nack, NackEntry};
pub use ntp_clock::NtpClock;
pub use ntp_time::{NtpTime, compact_from_duration, compact_to_duration};
pub use packet::RtcpPacket;
pub use packet_kind::{PacketKind, classify};
pub use pli::Pli;
pub use receiver_report::ReceiverReport;
pub use remb::{MAX_REMB_SSRCS, REMB_IDENTIFIER, Remb};
pub use report_block::{CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN, ReportBlock, ReportBlocks};
pub use sender_report::{MAX_REPORT_BLOCKS, SenderInfo, SenderReport};
pub use source_description::{
    MAX_SDES_CHUNKS, SdesChunk, SdesChunks, SdesItem, SdesItems, SdesType, SourceDescription,
};
pub use transport_cc::{
    DELTA_TICK_US, REFERENCE_TIME_UNIT_US, TransportCc, TwccStatus, TwccStatuses,
};
