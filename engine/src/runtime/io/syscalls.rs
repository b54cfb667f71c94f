//! The batched-syscalls backend: epoll over the core's sockets, its wake eventfd and a timerfd
//! for the tick; recvmmsg to receive in batches, sendmmsg to send in batches.
//!
//! This is the fallback where io_uring is blocked, and the baseline io_uring must beat.
//!
//! With UDP GSO on, the queued datagrams are planned by [`TxPlanner`]: a run of equal-size
//! datagrams from one socket to one destination becomes one message of several iovecs with a
//! `UDP_SEGMENT` cmsg, which the kernel cuts back into datagrams.

use std::io;
use std::mem::zeroed;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::sys::{self, MonoClock, RawAddr, TimerFd};
use super::{
    BUF_SIZE, IoCounters, IoKind, IoSizes, PacketIo, Readiness, RxMeta, SockId, TxBatch, TxEntry,
    TxPlanner, TxQueue,
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
    /// One iovec per queued datagram, by its index in the planned order.
    tx_iovs: Box<[libc::iovec]>,
    /// One UDP_SEGMENT cmsg buffer per message of a sendmmsg.
    tx_cmsgs: Box<[[u64; sys::GSO_CMSG_WORDS]]>,
    planner: TxPlanner,
    /// UDP GSO in use (asked for, supported, and not refused since).
    gso: bool,
    events: Vec<libc::epoll_event>,
    counters: IoCounters,
}

// SAFETY: SyscallIo holds no raw pointers across calls; mmsghdr arrays are built on the stack
// inside each call. All fds it holds are owned or outlive it (the wake fd belongs to the core's
// mailbox, which outlives the core thread).
unsafe impl Send for SyscallIo {}

impl SyscallIo {
    /// A backend whose `wait` also returns when `wake_fd` becomes readable.
    /// With `gso`, runs of equal-size datagrams to one destination go out as UDP GSO sends
    /// where the kernel supports it (probed here; no support is counted in `gso_fallbacks`).
    pub fn new(wake_fd: RawFd, sizes: IoSizes, gso: bool) -> io::Result<Self> {
        // SAFETY: no pointer arguments; non-negative return is a new fd we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: ep was just created.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let timer = TimerFd::new()?;
        let rx_count = usize::from(sizes.rx_buffers).max(BATCH);
        let gso_ok = gso && sys::udp_gso_supported();
        let slots = (sizes.tx_slots as usize).max(1);
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
            tx_iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                slots
            ]
            .into_boxed_slice(),
            tx_cmsgs: vec![[0u64; sys::GSO_CMSG_WORDS]; BATCH].into_boxed_slice(),
            planner: TxPlanner::default(),
            gso: gso_ok,
            events: Vec::with_capacity(64),
            counters: IoCounters {
                gso_fallbacks: u64::from(gso && !gso_ok),
                ..IoCounters::default()
            },
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

    /// Sends every queued datagram with sendmmsg, one call per run of the same socket; with
    /// GSO, one message per planned batch.
    fn flush(&mut self) {
        self.txq.take_queued(&mut self.tx_entries);
        if self.tx_entries.is_empty() {
            return;
        }
        let mut planner = std::mem::take(&mut self.planner);
        let batches = planner.plan(&mut self.tx_entries, self.gso);
        let mut i = 0;
        while i < batches.len() {
            let sock = self.tx_entries[batches[i].start as usize].sock;
            let mut end = i;
            while end < batches.len()
                && end - i < BATCH
                && self.tx_entries[batches[end].start as usize].sock == sock
            {
                end += 1;
            }
            self.send_run(&batches[i..end]);
            i = end;
        }
        self.planner = planner;
        for e in &self.tx_entries {
            self.txq.release(e.slot);
        }
        self.tx_entries.clear();
    }

    /// Sends up to BATCH planned batches from one socket with sendmmsg.
    fn send_run(&mut self, batches: &[TxBatch]) {
        let n = batches.len();
        // SAFETY: mmsghdr is plain data; zeroed is valid.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (k, b) in batches.iter().enumerate() {
            let start = b.start as usize;
            let count = usize::from(b.count);
            for j in start..start + count {
                let e = self.tx_entries[j];
                self.tx_iovs[j] = libc::iovec {
                    iov_base: self.txq.slot_ptr(e.slot).cast(),
                    iov_len: usize::from(e.len),
                };
            }
            let namelen = self.tx_addrs[k].set(self.tx_entries[start].dst);
            let h = &mut msgs[k].msg_hdr;
            h.msg_name = self.tx_addrs[k].as_mut_ptr();
            h.msg_namelen = namelen;
            h.msg_iov = self.tx_iovs[start..].as_mut_ptr();
            h.msg_iovlen = count as _;
            if count >= 2 {
                sys::set_gso_cmsg(h, &mut self.tx_cmsgs[k], b.seg_len);
            }
        }
        let segments: u64 = batches.iter().map(|b| u64::from(b.count)).sum();
        let Some(sock) = self.socks.get(usize::from(
            self.tx_entries[batches[0].start as usize].sock.0,
        )) else {
            self.counters.tx_errors += segments;
            return;
        };
        let fd = sock.as_raw_fd();
        let mut sent = 0;
        while sent < n {
            self.counters.syscalls += 1;
            // SAFETY: msgs[sent..n] point at live iovecs, slot buffers, addresses and cmsg
            // buffers that stay untouched for the duration of this synchronous call.
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
                let b = batches[sent];
                if b.count >= 2 && e.raw_os_error().is_some_and(sys::gso_refused) {
                    // The kernel refuses GSO here: send this batch one datagram at a time
                    // and plan without GSO from now on.
                    self.gso = false;
                    self.counters.gso_fallbacks += 1;
                    self.send_each(fd, sent, b);
                } else {
                    // The message at `sent` failed; drop it (counted) and go on with the rest.
                    self.counters.tx_errors += u64::from(b.count);
                }
                sent += 1;
            } else {
                for b in &batches[sent..sent + r as usize] {
                    self.counters.tx_packets += u64::from(b.count);
                    if b.count >= 2 {
                        self.counters.gso_sends += 1;
                        self.counters.gso_segments += u64::from(b.count);
                    }
                }
                sent += r as usize;
            }
        }
    }

    /// Sends the datagrams of batch `b` (message `k` of the run) one sendmsg each.
    fn send_each(&mut self, fd: RawFd, k: usize, b: TxBatch) {
        let start = b.start as usize;
        for j in start..start + usize::from(b.count) {
            // SAFETY: msghdr is plain data; zeroed is valid.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = self.tx_addrs[k].as_mut_ptr();
            h.msg_namelen = RawAddr::len_of(self.tx_entries[start].dst);
            h.msg_iov = &mut self.tx_iovs[j];
            h.msg_iovlen = 1;
            self.counters.syscalls += 1;
            // SAFETY: h points at a live iovec over a slot buffer and at a live address.
            let r = unsafe { libc::sendmsg(fd, &h, libc::MSG_DONTWAIT) };
            if r < 0 {
                self.counters.tx_errors += 1;
            } else {
                self.counters.tx_packets += 1;
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
