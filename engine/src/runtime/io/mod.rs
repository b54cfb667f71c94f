//! Packet I/O backends: the one place where the engine meets the kernel.
//!
//! A media core drives one [`PacketIo`]: it registers its UDP sockets, then loops
//! `wait(deadline)` -> `drain(handler)`. Received packets are handed to the handler in the
//! backend's own buffers (decrypt in place), together with the [`TxQueue`] into which the
//! handler writes the packets to send. Queued sends go out at the next `wait`, so one loop
//! iteration costs one submit (io_uring) or a few batched syscalls (recvmmsg/sendmmsg/epoll).
//!
//! Two backends exist: [`uring::UringIo`] (default) and [`syscalls::SyscallIo`] (fallback and
//! baseline). A third (AF_XDP) fits the same trait.
//!
//! Only this module and its children use `unsafe`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

pub mod sys;
pub mod syscalls;
pub mod uring;

/// Size of one packet buffer, receive or transmit. Larger datagrams are truncated and dropped.
pub const BUF_SIZE: usize = 2048;

/// Which packet I/O backend a core uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoKind {
    /// io_uring: multishot receive with a provided-buffer ring, batched sends, ring timeouts.
    Uring,
    /// recvmmsg/sendmmsg with epoll and a timerfd.
    Syscalls,
}

impl IoKind {
    /// The name used on the command line and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            IoKind::Uring => "uring",
            IoKind::Syscalls => "syscalls",
        }
    }
}

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for IoKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uring" | "io_uring" => Ok(IoKind::Uring),
            "syscalls" => Ok(IoKind::Syscalls),
            other => Err(format!(
                "unknown I/O backend {other:?} (expected uring or syscalls)"
            )),
        }
    }
}

/// Index of a socket registered with a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId(pub u16);

/// Where a received packet came from.
#[derive(Clone, Copy, Debug)]
pub struct RxMeta {
    /// The socket it arrived on.
    pub sock: SockId,
    /// The sender.
    pub src: SocketAddr,
}

/// What woke a `wait`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readiness {
    /// The core's command eventfd fired.
    pub woken: bool,
    /// The deadline passed.
    pub timed_out: bool,
}

/// Counters kept by a backend (plain integers: only the owning core touches them).
#[derive(Clone, Copy, Debug, Default)]
pub struct IoCounters {
    /// Datagrams received.
    pub rx_packets: u64,
    /// Datagrams handed to the kernel for sending and completed.
    pub tx_packets: u64,
    /// Sends the kernel refused (for example ENOBUFS, EAGAIN, unreachable).
    pub tx_errors: u64,
    /// Received datagrams dropped because they did not fit a buffer.
    pub rx_truncated: u64,
    /// Times receive buffers ran out (io_uring: the provided-buffer ring was empty).
    pub rx_no_buffers: u64,
    /// Submit calls (io_uring) or send/receive syscalls (syscalls backend).
    pub syscalls: u64,
    /// UDP GSO sends: super-datagrams of two or more segments the kernel accepted.
    pub gso_sends: u64,
    /// Datagrams that went out inside those super-datagrams.
    pub gso_segments: u64,
    /// Times the kernel refused a GSO send (EIO, EINVAL, EOPNOTSUPP): its datagrams were sent
    /// one by one and GSO was turned off for the backend; also 1 when the probe at start
    /// found no UDP_SEGMENT support.
    pub gso_fallbacks: u64,
}

/// A packet I/O backend owned by one media core.
pub trait PacketIo {
    /// Which backend this is.
    fn kind(&self) -> IoKind;
    /// Registers a bound UDP socket; the backend sets it non-blocking and starts receiving.
    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SockId>;
    /// Sends what the transmit queue holds, then waits until packets arrive, the wake fd
    /// fires, or `deadline` passes (returns at once if packets are already waiting).
    fn wait(&mut self, deadline: Instant) -> io::Result<Readiness>;
    /// Hands every received packet to `handler`, then recycles the buffers.
    fn drain(&mut self, handler: &mut dyn FnMut(RxMeta, &mut [u8], &mut TxQueue));
    /// The transmit queue, for packets not triggered by a receive (the media tick).
    fn tx(&mut self) -> &mut TxQueue;
    /// Counters so far.
    fn counters(&self) -> IoCounters;
}

/// One queued datagram.
#[derive(Clone, Copy, Debug)]
pub struct TxEntry {
    /// Slot in the queue's buffer arena.
    pub slot: u32,
    /// Socket to send from.
    pub sock: SockId,
    /// Destination.
    pub dst: SocketAddr,
    /// Datagram length.
    pub len: u16,
}

/// Transmit buffers and the datagrams waiting to be sent.
///
/// A fixed arena of `BUF_SIZE` slots allocated once; a slot is taken by [`TxQueue::send_with`]
/// and given back by the backend when the kernel is done with it (io_uring: at the send's
/// completion), so nothing allocates per packet.
pub struct TxQueue {
    arena: Box<[u8]>,
    free: Vec<u32>,
    queued: Vec<TxEntry>,
    /// Datagrams dropped because every slot was in use.
    pub full_drops: u64,
}

impl TxQueue {
    /// A queue with `slots` transmit buffers.
    pub fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, u32::MAX as usize);
        TxQueue {
            arena: vec![0u8; slots * BUF_SIZE].into_boxed_slice(),
            free: (0..slots as u32).rev().collect(),
            queued: Vec::with_capacity(slots),
            full_drops: 0,
        }
    }

    /// Queues one datagram: `write` fills the buffer and returns the length (0 cancels).
    /// Returns false when no slot is free (counted in `full_drops`) or the write cancelled.
    pub fn send_with(
        &mut self,
        sock: SockId,
        dst: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> usize,
    ) -> bool {
        let Some(slot) = self.free.pop() else {
            self.full_drops += 1;
            return false;
        };
        let len = write(self.slot_mut(slot)).min(BUF_SIZE);
        if len == 0 {
            self.free.push(slot);
            return false;
        }
        self.queued.push(TxEntry {
            slot,
            sock,
            dst,
            // INVARIANT: len <= BUF_SIZE = 2048 fits u16.
            len: len as u16,
        });
        true
    }

    /// Convenience: queues a copy of `data`.
    pub fn send_copy(&mut self, sock: SockId, dst: SocketAddr, data: &[u8]) -> bool {
        self.send_with(sock, dst, |buf| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    /// Number of datagrams waiting to be submitted.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Slots not in use.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    fn slot_range(slot: u32) -> std::ops::Range<usize> {
        let start = slot as usize * BUF_SIZE;
        start..start + BUF_SIZE
    }

    fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        // INVARIANT: slots come from `free`, which only holds indices below the arena's slot count.
        &mut self.arena[Self::slot_range(slot)]
    }

    #[cfg(test)]
    pub(crate) fn slot(&self, slot: u32) -> &[u8] {
        // INVARIANT: as in slot_mut.
        &self.arena[Self::slot_range(slot)]
    }

    pub(crate) fn slot_ptr(&mut self, slot: u32) -> *mut u8 {
        self.slot_mut(slot).as_mut_ptr()
    }

    pub(crate) fn take_queued(&mut self, out: &mut Vec<TxEntry>) {
        out.clear();
        std::mem::swap(out, &mut self.queued);
    }

    pub(crate) fn release(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// Creates the backend of the requested kind; with `Uring`, falls back to `Syscalls` when
/// io_uring is unavailable (for example blocked by a container's seccomp profile), returning
/// the reason for the fallback alongside.
pub fn open_backend(
    kind: IoKind,
    wake_fd: std::os::fd::RawFd,
    sizes: IoSizes,
    gso: bool,
) -> io::Result<(Box<dyn PacketIo + Send>, Option<io::Error>)> {
    match kind {
        IoKind::Syscalls => Ok((
            Box::new(syscalls::SyscallIo::new(wake_fd, sizes, gso)?),
            None,
        )),
        IoKind::Uring => match uring::UringIo::new(wake_fd, sizes, gso) {
            Ok(io) => Ok((Box::new(io), None)),
            Err(e) if uring_unavailable(&e) => Ok((
                Box::new(syscalls::SyscallIo::new(wake_fd, sizes, gso)?),
                Some(e),
            )),
            Err(e) => Err(e),
        },
    }
}

/// Whether an error from setting up io_uring means "not available here" (fall back) rather
/// than a real failure (report it).
pub fn uring_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EINVAL)
    ) || e.kind() == io::ErrorKind::Unsupported
}

/// Segments in one UDP GSO send at most (the kernel's UDP_MAX_SEGMENTS on older kernels).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes in one UDP GSO send at most (the largest UDP payload over IPv4).
pub const GSO_MAX_BYTES: usize = 65_507;
/// Largest datagram put in a GSO send: the UDP payload of a 1,500-byte IPv6 packet. The
/// kernel refuses a GSO send whose segments exceed the route's MTU (where a plain send would
/// be fragmented), and a refusal turns GSO off for the core, so larger datagrams go alone.
pub const GSO_MAX_SEGMENT: u16 = 1_452;

/// One send: `count` queued datagrams from `start` in the planned order, from one socket to
/// one destination. With `count >= 2` they go out as one UDP GSO super-datagram whose
/// segments are `seg_len` bytes each, the last possibly shorter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxBatch {
    /// Index of the first datagram in the planned entries.
    pub start: u32,
    /// Datagrams in the send.
    pub count: u16,
    /// Length of every datagram but the last (the GSO segment size).
    pub seg_len: u16,
}

const NO_ENTRY: u32 = u32::MAX;

/// Groups one loop iteration's queued datagrams into sends (sans-IO, shared by the backends).
///
/// Without GSO every datagram is its own send, in queue order. With GSO the datagrams are
/// grouped by (socket, destination) in order of each destination's first datagram; within a
/// destination the queue order is kept, and consecutive datagrams of equal length (the last
/// of a run may be shorter) become one send of up to [`GSO_MAX_SEGMENTS`] segments and
/// [`GSO_MAX_BYTES`] bytes. A video frame forwarded to a receiver (several equal-size FU-A
/// packets) thus leaves in one system call; the audio tick, one datagram per destination,
/// plans exactly as without GSO. Its tables keep their capacity, so planning allocates only
/// while the core warms up.
#[derive(Default)]
pub struct TxPlanner {
    groups: std::collections::HashMap<(SockId, SocketAddr), u32, crate::runtime::flow::FastBuild>,
    /// Per group: first and last entry (indices into the queue order).
    ends: Vec<(u32, u32)>,
    /// Per entry: the next entry of its group.
    next: Vec<u32>,
    ordered: Vec<TxEntry>,
    batches: Vec<TxBatch>,
}

impl TxPlanner {
    /// One send per datagram, in queue order.
    fn singles(&mut self, entries: &[TxEntry]) -> &[TxBatch] {
        self.batches
            .extend((0..entries.len() as u32).map(|start| TxBatch {
                start,
                count: 1,
                // INVARIANT: start < entries.len().
                seg_len: entries[start as usize].len,
            }));
        &self.batches
    }

    /// Plans the sends of `entries`, reordering them (per-destination order kept) when `gso`
    /// is on. The batches index into `entries` as it is left.
    pub fn plan(&mut self, entries: &mut Vec<TxEntry>, gso: bool) -> &[TxBatch] {
        self.batches.clear();
        if !gso || entries.len() < 2 {
            return self.singles(entries);
        }
        self.groups.clear();
        self.ends.clear();
        self.next.clear();
        self.next.resize(entries.len(), NO_ENTRY);
        for (i, e) in entries.iter().enumerate() {
            let i = i as u32;
            let n = self.ends.len() as u32;
            let g = *self.groups.entry((e.sock, e.dst)).or_insert(n);
            if g == n {
                self.ends.push((i, i));
            } else {
                // INVARIANT: g indexes `ends` (it was pushed when the group was made) and
                // its last entry is an index below i.
                let last = self.ends[g as usize].1;
                self.next[last as usize] = i;
                self.ends[g as usize].1 = i;
            }
        }
        if self.ends.len() == entries.len() {
            // Every datagram has its own destination: nothing to batch or reorder.
            return self.singles(entries);
        }
        self.ordered.clear();
        for g in 0..self.ends.len() {
            // INVARIANT: g < ends.len().
            let mut i = self.ends[g].0;
            let mut open: Option<(TxBatch, usize)> = None;
            while i != NO_ENTRY {
                // INVARIANT: i is an entry index (from `ends` or `next`).
                let e = entries[i as usize];
                let pos = self.ordered.len() as u32;
                self.ordered.push(e);
                open = match open {
                    Some((mut b, bytes))
                        if usize::from(b.count) < GSO_MAX_SEGMENTS
                            && b.seg_len <= GSO_MAX_SEGMENT
                            && e.len <= b.seg_len
                            && bytes + usize::from(e.len) <= GSO_MAX_BYTES =>
                    {
                        b.count += 1;
                        if e.len < b.seg_len {
                            // A shorter datagram ends the send.
                            self.batches.push(b);
                            None
                        } else {
                            Some((b, bytes + usize::from(e.len)))
                        }
                    }
                    other => {
                        if let Some((b, _)) = other {
                            self.batches.push(b);
                        }
                        let b = TxBatch {
                            start: pos,
                            count: 1,
                            seg_len: e.len,
                        };
                        Some((b, usize::from(e.len)))
                    }
                };
                // INVARIANT: i < next.len() = entries.len().
                i = self.next[i as usize];
            }
            if let Some((b, _)) = open {
                self.batches.push(b);
            }
        }
        std::mem::swap(entries, &mut self.ordered);
        &self.batches
    }
}

/// Buffer counts of a backend.
#[derive(Clone, Copy, Debug)]
pub struct IoSizes {
    /// Receive buffers (io_uring: provided-buffer ring entries; a power of two).
    pub rx_buffers: u16,
    /// Transmit slots.
    pub tx_slots: u32,
}

impl Default for IoSizes {
    fn default() -> Self {
        IoSizes {
            rx_buffers: 1024,
            tx_slots: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_queue_recycles_slots_and_counts_full() {
        let mut q = TxQueue::new(2);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(q.send_copy(SockId(0), dst, b"a"));
        assert!(q.send_copy(SockId(0), dst, b"bb"));
        assert!(!q.send_copy(SockId(0), dst, b"c"));
        assert_eq!(q.full_drops, 1);
        let mut out = Vec::new();
        q.take_queued(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(&q.slot(out[1].slot)[..2], b"bb");
        for e in &out {
            q.release(e.slot);
        }
        assert_eq!(q.free_slots(), 2);
        // A cancelled write gives its slot back.
        assert!(!q.send_with(SockId(0), dst, |_| 0));
        assert_eq!(q.free_slots(), 2);
    }

    #[test]
    fn fallback_decision() {
        assert!(uring_unavailable(&io::Error::from_raw_os_error(
            libc::EPERM
        )));
        assert!(uring_unavailable(&io::Error::from_raw_os_error(
            libc::ENOSYS
        )));
        assert!(!uring_unavailable(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
    }

    fn entry(slot: u32, sock: u16, port: u16, len: u16) -> TxEntry {
        TxEntry {
            slot,
            sock: SockId(sock),
            dst: SocketAddr::from(([127, 0, 0, 1], port)),
            len,
        }
    }

    /// (first slot, count, segment length) of each planned send.
    fn plan(entries: &mut Vec<TxEntry>, gso: bool) -> Vec<(u32, u16, u16)> {
        let mut p = TxPlanner::default();
        let batches = p.plan(entries, gso).to_vec();
        (batches.iter())
            .map(|b| (entries[b.start as usize].slot, b.count, b.seg_len))
            .collect()
    }

    #[test]
    fn planner_batches_a_frame_per_receiver_and_keeps_each_receivers_order() {
        // Three packets of a frame fanned out to receivers A and B as the router queues
        // them (A, B, A, B, ...); the frame's last packet is shorter; then one RTCP to A.
        let (a, b) = (40_000, 40_002);
        let mut q = vec![
            entry(0, 0, a, 1_216),
            entry(1, 0, b, 1_216),
            entry(2, 0, a, 1_216),
            entry(3, 0, b, 1_216),
            entry(4, 0, a, 700),
            entry(5, 0, b, 700),
            entry(6, 0, a, 80),
        ];
        let sends = plan(&mut q, true);
        assert_eq!(sends, vec![(0, 3, 1_216), (6, 1, 80), (1, 3, 1_216)]);
        let slots: Vec<u32> = q.iter().map(|e| e.slot).collect();
        assert_eq!(slots, vec![0, 2, 4, 6, 1, 3, 5], "per-receiver order kept");
        // Without GSO: queue order, one datagram per send.
        let mut q2: Vec<TxEntry> = (0..4).map(|i| entry(i, 0, a, 1_216)).collect();
        assert_eq!(plan(&mut q2, false).len(), 4);
    }

    #[test]
    fn planner_splits_on_size_socket_and_kernel_limits() {
        let d = 40_000;
        // A larger datagram after smaller ones starts a new send; a shorter one ends it.
        let mut q = vec![
            entry(0, 0, d, 500),
            entry(1, 0, d, 1_200),
            entry(2, 0, d, 1_200),
            entry(3, 0, d, 900),
            entry(4, 0, d, 900),
            entry(5, 1, d, 1_200), // Same destination, other socket: its own group.
        ];
        assert_eq!(
            plan(&mut q, true),
            vec![(0, 1, 500), (1, 3, 1_200), (4, 1, 900), (5, 1, 1_200)]
        );
        // Byte limit: 65,507 / 1,200 = 54 segments per send.
        let mut q: Vec<TxEntry> = (0..60).map(|i| entry(i, 0, d, 1_200)).collect();
        assert_eq!(plan(&mut q, true), vec![(0, 54, 1_200), (54, 6, 1_200)]);
        // Datagrams over 1,452 bytes go alone (a GSO send must fit the route's MTU).
        let mut q: Vec<TxEntry> = (0..3).map(|i| entry(i, 0, d, 1_500)).collect();
        assert_eq!(
            plan(&mut q, true),
            vec![(0, 1, 1_500), (1, 1, 1_500), (2, 1, 1_500)]
        );
        // Segment limit: 64 per send.
        let mut q: Vec<TxEntry> = (0..130).map(|i| entry(i, 0, d, 100)).collect();
        assert_eq!(
            plan(&mut q, true),
            vec![(0, 64, 100), (64, 64, 100), (128, 2, 100)]
        );
        // The audio tick: one datagram per destination plans as without GSO, in order.
        let mut q: Vec<TxEntry> = (0..50)
            .map(|i| entry(i, 0, 41_000 + i as u16, 172))
            .collect();
        let sends = plan(&mut q, true);
        assert_eq!(sends.len(), 50);
        assert!(
            sends
                .iter()
                .enumerate()
                .all(|(i, s)| *s == (i as u32, 1, 172))
        );
    }

    /// Queues, through a real backend, datagrams to two receivers on 127.0.0.1: a frame of
    /// equal-size packets to each (interleaved as the router queues them), a short tail, a
    /// run longer than one GSO send, and odd sizes. Each receiver must get exactly its
    /// datagrams, intact and in order. Returns the backend's counters.
    fn send_through(kind: IoKind, gso: bool, no_check: bool, ports: (u16, u16, u16)) -> IoCounters {
        use std::os::fd::AsRawFd;
        use std::time::Duration;
        let wake = sys::EventFd::new(false).unwrap();
        let sizes = IoSizes {
            rx_buffers: 64,
            tx_slots: 512,
        };
        let mut io: Box<dyn PacketIo> = match kind {
            IoKind::Uring => Box::new(uring::UringIo::new(wake.as_raw_fd(), sizes, gso).unwrap()),
            IoKind::Syscalls => {
                Box::new(syscalls::SyscallIo::new(wake.as_raw_fd(), sizes, gso).unwrap())
            }
        };
        let from = UdpSocket::bind(("127.0.0.1", ports.0)).unwrap();
        if no_check {
            // SO_NO_CHECK (asm-generic/socket.h; not in the libc crate for glibc): UDP
            // without checksums, with which the kernel refuses GSO sends (EINVAL).
            const SO_NO_CHECK: libc::c_int = 11;
            let one: libc::c_int = 1;
            // SAFETY: option value is a live c_int of the given size, on a socket we own.
            let r = unsafe {
                libc::setsockopt(
                    from.as_raw_fd(),
                    libc::SOL_SOCKET,
                    SO_NO_CHECK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "SO_NO_CHECK");
        }
        let sock = io.add_socket(from).unwrap();
        let rx: Vec<UdpSocket> = [ports.1, ports.2]
            .iter()
            .map(|&p| {
                let s = UdpSocket::bind(("127.0.0.1", p)).unwrap();
                sys::set_socket_buffers(s.as_raw_fd(), 4 << 20).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                s
            })
            .collect();
        let dsts: Vec<SocketAddr> = rx.iter().map(|s| s.local_addr().unwrap()).collect();
        // (receiver, length) in queue order.
        let mut plan: Vec<(usize, usize)> = Vec::new();
        for _ in 0..4 {
            plan.extend([(0, 1_216), (1, 1_216)]);
        }
        plan.extend([(0, 640), (1, 1_216), (0, 1_216), (1, 33)]);
        plan.extend((0..70).map(|_| (1, 1_000)));
        plan.extend([(0, 1), (0, 1_400), (0, 1_400)]);
        let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
        for (n, &(r, len)) in plan.iter().enumerate() {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + n * 13) as u8).collect();
            assert!(io.tx().send_copy(sock, dsts[r], &body));
            expected[r].push(body);
        }
        // The next wait sends what is queued; a few more reap the completions.
        for _ in 0..5 {
            io.wait(Instant::now() + Duration::from_millis(5)).unwrap();
            io.drain(&mut |_, _, _| {});
        }
        let mut buf = vec![0u8; 2048];
        for (r, want) in expected.iter().enumerate() {
            for (k, body) in want.iter().enumerate() {
                let n = rx[r].recv(&mut buf).unwrap_or_else(|e| {
                    panic!("{kind} gso={gso}: receiver {r} datagram {k} missing: {e}")
                });
                assert_eq!(
                    &buf[..n],
                    &body[..],
                    "{kind} gso={gso}: receiver {r} datagram {k}"
                );
            }
            rx[r].set_nonblocking(true).unwrap();
            assert!(rx[r].recv(&mut buf).is_err(), "receiver {r}: nothing extra");
        }
        let c = io.counters();
        assert_eq!((c.tx_packets, c.tx_errors), (plan.len() as u64, 0));
        assert_eq!(io.tx().free_slots(), 512, "every slot back");
        c
    }

    #[test]
    fn gso_sends_runs_to_one_receiver_intact_and_in_order_on_both_backends() {
        for (i, kind) in [IoKind::Syscalls, IoKind::Uring].into_iter().enumerate() {
            let base = 33_100 + 10 * i as u16;
            let on = send_through(kind, true, false, (base, base + 1, base + 2));
            assert!(sys::udp_gso_supported(), "kernel 4.18+ takes UDP_SEGMENT");
            // Receiver 0: 4 x 1,216 + 640; then 1,216 + 1 (larger than the tail before it, so
            // a new send); then 2 x 1,400. Receiver 1: 5 x 1,216 + 33; then 70 x 1,000 as 64
            // + 6. Every datagram goes in a GSO send.
            assert_eq!(on.gso_sends, 6, "{kind}");
            assert_eq!(on.gso_segments, 85, "{kind}");
            assert_eq!(on.gso_fallbacks, 0, "{kind}");
            let off = send_through(kind, false, false, (base + 3, base + 4, base + 5));
            assert_eq!((off.gso_sends, off.gso_segments), (0, 0), "{kind}");
        }
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn gso_refused_by_the_kernel_falls_back_to_one_datagram_per_send() {
        for (i, kind) in [IoKind::Syscalls, IoKind::Uring].into_iter().enumerate() {
            let base = 33_130 + 10 * i as u16;
            // Every datagram still arrives, intact and in order (send_through checks), though
            // each of the 6 planned GSO sends was refused and sent again one by one.
            let c = send_through(kind, true, true, (base, base + 1, base + 2));
            assert_eq!(
                (c.gso_sends, c.gso_segments, c.gso_fallbacks),
                (0, 0, 6),
                "{kind}"
            );
        }
    }

    #[test]
    fn io_kind_parses() {
        assert_eq!("uring".parse::<IoKind>().unwrap(), IoKind::Uring);
        assert_eq!("syscalls".parse::<IoKind>().unwrap(), IoKind::Syscalls);
        assert!("epoll".parse::<IoKind>().is_err());
    }
}
