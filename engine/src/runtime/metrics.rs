//! Core counters. A core counts in plain integers on its own stack and publishes them to
//! shared atomics once per tick, so the packet path pays no atomic operation per packet.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// One core counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Metric {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Metric {
            /// Every metric, in index order.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The metric's name for export (snake case, no prefix).
            pub fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }
        }
    };
}

metrics! {
    /// Datagrams received by the core's sockets.
    RxPackets => "rx_packets",
    /// Datagrams the kernel accepted for sending.
    TxPackets => "tx_packets",
    /// RTP packets accepted from legs (decrypted, valid).
    RtpIn => "rtp_in",
    /// RTCP packets accepted from legs.
    RtcpIn => "rtcp_in",
    /// RTP packets forwarded to legs.
    Forwarded => "forwarded",
    /// RTP packets of mixed conference audio sent to legs.
    MixedOut => "mixed_out",
    /// Conference mixing passes run (one per conference per tick).
    Mixes => "mixes",
    /// Conferences with members on the core.
    Conferences => "conferences",
    /// DTMF key presses received as RFC 4733 events.
    DtmfDigits => "dtmf_digits",
    /// Other RFC 4733 events received (flash, tones), ignored.
    DtmfOtherEvents => "dtmf_other_events",
    /// RFC 4733 event packets sent to legs.
    DtmfEventsOut => "dtmf_events_out",
    /// Keys not sent: the leg negotiated no telephone-event.
    DtmfNotSent => "dtmf_not_sent",
    /// Video RTP packets accepted from legs and handed to the SFU.
    VideoRtpIn => "video_rtp_in",
    /// Video RTCP packets accepted from legs.
    VideoRtcpIn => "video_rtcp_in",
    /// Video RTP and RTCP packets the SFU sent to legs.
    VideoOut => "video_out",
    /// Video packets dropped: refused on receive (SRTP, malformed, not RTP), not sent (no
    /// buffer, protect failed), or from a leg in no conference.
    VideoDropped => "video_dropped",
    /// Dropped: not RTP or RTCP (STUN, DTLS or garbage on a media port).
    DropNotRtp => "drop_not_rtp",
    /// Dropped: from an address no leg matched, and no leg waiting to latch accepted it.
    DropUnknownFlow => "drop_unknown_flow",
    /// Dropped: malformed RTP or RTCP.
    DropMalformed => "drop_malformed",
    /// Dropped: SRTP/SRTCP authentication failed (forged or corrupted).
    DropAuthFailed => "drop_auth_failed",
    /// Dropped: replayed SRTP/SRTCP packet.
    DropReplayed => "drop_replayed",
    /// Dropped: other SRTP refusals.
    DropSrtpOther => "drop_srtp_other",
    /// Not sent: the destination leg has no remote address yet.
    DropNoRemote => "drop_no_remote",
    /// Not sent: no free transmit buffer.
    DropTxFull => "drop_tx_full",
    /// Not sent: the kernel refused the datagram.
    TxErrors => "tx_errors",
    /// Dropped on receive: larger than a buffer.
    RxTruncated => "rx_truncated",
    /// Receive buffers ran out (the kernel dropped or held datagrams).
    RxNoBuffers => "rx_no_buffers",
    /// Ticks run.
    Ticks => "ticks",
    /// Ticks skipped because the core was late by a whole period or more.
    TicksSkipped => "ticks_skipped",
    /// Largest tick lateness seen, in microseconds.
    TickLateMaxUs => "tick_late_max_us",
    /// Commands handled.
    Commands => "commands",
    /// Events emitted.
    Events => "events",
    /// Legs on the core now.
    Legs => "legs",
    /// Loop iterations (each one submit or one epoll_wait).
    Loops => "loops",
    /// Kernel entries made by the packet I/O backend.
    IoSyscalls => "io_syscalls",
    /// UDP GSO sends (two or more datagrams to one destination in one send).
    GsoSends => "gso_sends",
    /// Datagrams sent inside UDP GSO sends.
    GsoSegments => "gso_segments",
    /// Times GSO was unavailable or refused and datagrams went one per send instead.
    GsoFallbacks => "gso_fallbacks",
    /// CPU time of the core thread, in nanoseconds.
    CpuNs => "cpu_ns",
    /// Of which in user space (the engine's own work), in nanoseconds.
    CpuUserNs => "cpu_user_ns",
    /// Of which in the kernel (system calls, the UDP stack), in nanoseconds.
    CpuSysNs => "cpu_sys_ns",
}

/// Number of metrics.
pub const METRIC_COUNT: usize = Metric::ALL.len();

/// Plain counters owned by a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; METRIC_COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; METRIC_COUNT])
    }
}

impl Counters {
    /// Adds one.
    #[inline]
    pub fn inc(&mut self, m: Metric) {
        self.0[m as usize] += 1;
    }

    /// Adds n.
    #[inline]
    pub fn add(&mut self, m: Metric, n: u64) {
        self.0[m as usize] += n;
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&mut self, m: Metric, v: u64) {
        self.0[m as usize] = v;
    }

    /// Reads one.
    #[inline]
    pub fn get(&self, m: Metric) -> u64 {
        self.0[m as usize]
    }
}

/// The published copy of a core's counters, readable from any thread.
#[derive(Debug)]
pub struct CoreMetrics {
    values: [AtomicU64; METRIC_COUNT],
}

impl Default for CoreMetrics {
    fn default() -> Self {
        CoreMetrics {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl CoreMetrics {
    /// Core side: publish the current counters.
    pub fn publish(&self, c: &Counters) {
        for (slot, v) in self.values.iter().zip(c.0.iter()) {
            slot.store(*v, Ordering::Relaxed);
        }
    }

    /// Any thread: a copy of the last published counters.
    pub fn snapshot(&self) -> Counters {
        Counters(std::array::from_fn(|i| {
            self.values[i].load(Ordering::Relaxed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indices_dense() {
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), METRIC_COUNT);
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
    }

    #[test]
    fn publish_then_snapshot() {
        let mut c = Counters::default();
        c.inc(Metric::RtpIn);
        c.add(Metric::Forwarded, 5);
        let shared = CoreMetrics::default();
        shared.publish(&c);
        assert_eq!(shared.snapshot(), c);
    }
}
