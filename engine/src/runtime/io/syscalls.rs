//! The batched-syscalls backend: epoll over the core's sockets, its wake eventfd and a timerfd
//! for the tick; recvmmsg to receive in batches, sendmmsg to send in batches.
//!
//! This is the fallback where io_uring is blocked, and the baseline io_uring must beat.

use std::io;
use std::mem::zeroed;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::sys::{self, MonoClock, RawAddr, TimerFd};
use super::{
    BUF_SIZE, IoCounters, IoKind, IoSizes, PacketIo, Readiness, RxMeta, SockId, TxEntry, TxQueue,
};

/// Datagrams per recvmmsg/sendmmsg call.
const BATCH: usize = 64;
const TOKEN_WAKE: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;

struct RxDone {
    sock: SockId,
    buf: u32,
    len: u32,
    src: std::net::SocketAddr,
}

/// recvmmsg/sendmmsg + epoll backend.
pub struct SyscallIo {
    epoll: OwnedFd,
    wake_fd: RawFd,
    timer: TimerFd,
    clock: MonoClock,
    armed: Option<Instant>,
    socks: Vec<UdpSocket>,
    rx_arena: Box<[u8]>,
    rx_count: usize,
    /// Next free receive buffer; buffers below it hold packets not yet drained.
    rx_next: usize,
    rx_addrs: Box<[RawAddr]>,
    rx_done: Vec<RxDone>,
    txq: TxQueue,
    tx_entries: Vec<TxEntry>,
    tx_addrs: Box<[RawAddr]>,
    events: Vec<libc::epoll_event>,
    counters: IoCounters,
}

// SAFETY: SyscallIo holds no raw pointers across calls; mmsghdr arrays are built on the stack
// inside each call. All fds it holds are owned or outlive it (the wake fd belongs to the core's
// mailbox, which outlives the core thread).
unsafe impl Send for SyscallIo {}

impl SyscallIo {
    /// A backend whose `wait` also returns when `wake_fd` becomes readable.
    pub fn new(wake_fd: RawFd, sizes: IoSizes) -> io::Result<Self> {
        // SAFETY: no pointer arguments; non-negative return is a new fd we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: ep was just created.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let timer = TimerFd::new()?;
        let rx_count = usize::from(sizes.rx_buffers).max(BATCH);
        let io = SyscallIo {
            epoll,
            wake_fd,
            timer,
            clock: MonoClock::new(),
            armed: None,
            socks: Vec::new(),
            rx_arena: vec![0u8; rx_count * BUF_SIZE].into_boxed_slice(),
            rx_count,
            rx_next: 0,
            rx_addrs: vec![RawAddr::zeroed(); rx_count].into_boxed_slice(),
            rx_done: Vec::with_capacity(rx_count),
            txq: TxQueue::new(sizes.tx_slots as usize),
            tx_entries: Vec::with_capacity(sizes.tx_slots as usize),
            tx_addrs: vec![RawAddr::zeroed(); BATCH].into_boxed_slice(),
            events: Vec::with_capacity(64),
            counters: IoCounters::default(),
        };
        io.epoll_add(wake_fd, TOKEN_WAKE)?;
        io.epoll_add(io.timer.as_raw_fd(), TOKEN_TIMER)?;
        Ok(io)
    }

    fn epoll_add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd, fd and event pointer.
        let r =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends every queued datagram with sendmmsg, one call per run of the same socket.
    fn flush(&mut self) {
        self.txq.take_queued(&mut self.tx_entries);
        let mut i = 0;
        while i < self.tx_entries.len() {
            let sock = self.tx_entries[i].sock;
            let mut end = i;
            while end < self.tx_entries.len()
                && end - i < BATCH
                && self.tx_entries[end].sock == sock
            {
                end += 1;
            }
            self.send_run(i, end);
            i = end;
        }
        for e in &self.tx_entries {
            self.txq.release(e.slot);
        }
        self.tx_entries.clear();
    }

    fn send_run(&mut self, start: usize, end: usize) {
        let n = end - start;
        // SAFETY: iovec and mmsghdr are plain data; zeroed is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for k in 0..n {
            let e = self.tx_entries[start + k];
            let namelen = self.tx_addrs[k].set(e.dst);
            iovs[k] = libc::iovec {
                iov_base: self.txq.slot_ptr(e.slot).cast(),
                iov_len: usize::from(e.len),
            };
            msgs[k].msg_hdr.msg_name = self.tx_addrs[k].as_mut_ptr();
            msgs[k].msg_hdr.msg_namelen = namelen;
            msgs[k].msg_hdr.msg_iov = &mut iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        let Some(sock) = self.socks.get(usize::from(self.tx_entries[start].sock.0)) else {
            self.counters.tx_errors += n as u64;
            return;
        };
        let fd = sock.as_raw_fd();
        let mut sent = 0;
        while sent < n {
            self.counters.syscalls += 1;
            // SAFETY: msgs[sent..n] point at live iovecs, slot buffers and addresses that stay
            // untouched for the duration of this synchronous call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[sent..].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `sent` failed; drop it (counted) and go on with the rest.
                self.counters.tx_errors += 1;
                sent += 1;
            } else {
                self.counters.tx_packets += r as u64;
                sent += r as usize;
            }
        }
    }

    /// Receives what one socket has, up to the free receive buffers.
    fn recv_from(&mut self, sock_idx: usize) {
        let Some(sock) = self.socks.get(sock_idx) else {
            return;
        };
        let fd = sock.as_raw_fd();
        loop {
            let base = self.rx_next;
            let n = (self.rx_count - base).min(BATCH);
            if n == 0 {
                self.counters.rx_no_buffers += 1;
                return;
            }
            // SAFETY: plain data; zeroed is valid.
            let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for k in 0..n {
                let buf = base + k;
                iovs[k] = libc::iovec {
                    // INVARIANT: buf < rx_count, so the range lies inside rx_arena.
                    iov_base: self.rx_arena[buf * BUF_SIZE..].as_mut_ptr().cast(),
                    iov_len: BUF_SIZE,
                };
                msgs[k].msg_hdr.msg_name = self.rx_addrs[buf].as_mut_ptr();
                msgs[k].msg_hdr.msg_namelen = RawAddr::CAPACITY;
                msgs[k].msg_hdr.msg_iov = &mut iovs[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            self.counters.syscalls += 1;
            // SAFETY: msgs point at n live iovecs over disjoint receive buffers and addresses.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r <= 0 {
                return;
            }
            let got = r as usize;
            self.rx_next += got;
            for (k, msg) in msgs.iter().enumerate().take(got) {
                let buf = base + k;
                if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    self.counters.rx_truncated += 1;
                    continue;
                }
                let Some(src) = self.rx_addrs[buf].get() else {
                    continue;
                };
                self.counters.rx_packets += 1;
                self.rx_done.push(RxDone {
                    sock: SockId(sock_idx as u16),
                    buf: buf as u32,
                    len: msg.msg_len,
                    src,
                });
            }
            if got < n {
                return;
            }
        }
    }
}

impl PacketIo for SyscallIo {
    fn kind(&self) -> IoKind {
        IoKind::Syscalls
    }

    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SockId> {
        socket.set_nonblocking(true)?;
        let idx = self.socks.len();
        let id = u16::try_from(idx).map_err(|_| io::Error::other("too many sockets"))?;
        self.epoll_add(socket.as_raw_fd(), idx as u64)?;
        self.socks.push(socket);
        Ok(SockId(id))
    }

    fn wait(&mut self, deadline: Instant) -> io::Result<Readiness> {
        self.flush();
        let mut ready = Readiness::default();
        if self.rx_next > 0 {
            return Ok(ready);
        }
        if self.armed != Some(deadline) {
            self.timer.arm_at(self.clock.to_timespec(deadline))?;
            self.armed = Some(deadline);
        }
        self.events.clear();
        let cap = self.events.capacity();
        self.counters.syscalls += 1;
        // SAFETY: events has `cap` writable entries; the kernel writes at most that many.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                cap as libc::c_int,
                -1,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(ready);
            }
            return Err(e);
        }
        // SAFETY: the kernel initialised the first n entries.
        unsafe { self.events.set_len(n as usize) };
        for i in 0..self.events.len() {
            let token = self.events[i].u64;
            match token {
                TOKEN_WAKE => {
                    // Epoll said the (blocking) eventfd is readable, so this read returns.
                    sys::read_counter(self.wake_fd);
                    ready.woken = true;
                }
                TOKEN_TIMER => {
                    self.timer.drain();
                    self.armed = None;
                    ready.timed_out = true;
                }
                idx => self.recv_from(idx as usize),
            }
        }
        Ok(ready)
    }

    fn drain(&mut self, handler: &mut dyn FnMut(RxMeta, &mut [u8], &mut TxQueue)) {
        let SyscallIo {
            rx_arena,
            rx_done,
            txq,
            ..
        } = self;
        for d in rx_done.iter() {
            let start = d.buf as usize * BUF_SIZE;
            // INVARIANT: buf < rx_count and len <= BUF_SIZE (truncated datagrams were skipped).
            let pkt = &mut rx_arena[start..start + d.len as usize];
            handler(
                RxMeta {
                    sock: d.sock,
                    src: d.src,
                },
                pkt,
                txq,
            );
        }
        rx_done.clear();
        self.rx_next = 0;
    }

    fn tx(&mut self) -> &mut TxQueue {
        &mut self.txq
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}
