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
) -> io::Result<(Box<dyn PacketIo + Send>, Option<io::Error>)> {
    match kind {
        IoKind::Syscalls => Ok((Box::new(syscalls::SyscallIo::new(wake_fd, sizes)?), None)),
        IoKind::Uring => match uring::UringIo::new(wake_fd, sizes) {
            Ok(io) => Ok((Box::new(io), None)),
            Err(e) if uring_unavailable(&e) => {
                Ok((Box::new(syscalls::SyscallIo::new(wake_fd, sizes)?), Some(e)))
            }
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

    #[test]
    fn io_kind_parses() {
        assert_eq!("uring".parse::<IoKind>().unwrap(), IoKind::Uring);
        assert_eq!("syscalls".parse::<IoKind>().unwrap(), IoKind::Syscalls);
        assert!("epoll".parse::<IoKind>().is_err());
    }
}
