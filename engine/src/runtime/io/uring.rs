//! The io_uring backend.
//!
//! - Receive: one multishot `recvmsg` per socket selecting buffers from a provided-buffer ring
//!   (kernel 6.0+). Each completion names the buffer; the buffer goes back to the ring after
//!   the core has handled the packet. When the ring runs dry the kernel ends the multishot
//!   request (ENOBUFS, counted) and it is re-armed at the next `wait`.
//! - Send: one `sendmsg` per queued datagram, all pushed before a single submit; the transmit
//!   slot, its iovec, msghdr and address stay owned by the in-flight operation until its
//!   completion arrives.
//! - UDP GSO (when on): the queued datagrams are planned by [`TxPlanner`]; a run of two or
//!   more equal-size datagrams from one socket to one destination becomes one `sendmsg` with
//!   an iovec per datagram and a `UDP_SEGMENT` cmsg, built in a [`GsoOp`] from a fixed pool
//!   that, with the slots it covers, stays owned by the send until its completion. A kernel
//!   that refuses GSO gets the datagrams again one per send, and GSO is turned off.
//! - The tick: an absolute `timeout` on CLOCK_MONOTONIC, so ticks do not drift.
//! - The wake eventfd: a `read` into a buffer owned by the backend, re-armed after each wake.
//!
//! One `io_uring_enter` per loop iteration does both the submit and the wait.

use std::io;
use std::mem::zeroed;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::sys::{self, MonoClock, RawAddr};
use super::{
    BUF_SIZE, GSO_MAX_SEGMENTS, IoCounters, IoKind, IoSizes, PacketIo, Readiness, RxMeta, SockId,
    TxEntry, TxPlanner, TxQueue,
};

const TAG_SHIFT: u32 = 56;
const TAG_RECV: u64 = 1;
const TAG_SEND: u64 = 2;
const TAG_WAKE: u64 = 3;
const TAG_TIMEOUT: u64 = 4;
const TAG_SEND_GSO: u64 = 5;
/// GSO sends in flight at most; a batch finding the pool empty goes out one datagram per send.
const GSO_OPS: usize = 256;
const BUF_GROUP: u16 = 0;
/// Slots in the registered-file table (sockets a core can serve).
const MAX_SOCKETS: u32 = 256;
/// Bytes before the payload in a multishot recvmsg buffer: the io_uring_recvmsg_out header
/// (16 bytes) and the fixed-size name field.
const RECV_HEADER: usize = 16 + RawAddr::CAPACITY as usize;

fn user_data(tag: u64, value: u64) -> u64 {
    (tag << TAG_SHIFT) | value
}

/// The provided-buffer ring: a page-aligned array of ring entries shared with the kernel, and
/// the packet buffers it points at.
struct BufRing {
    entries: *mut types::BufRingEntry,
    map_len: usize,
    count: u16,
    tail: u16,
    buffers: Box<[u8]>,
}

impl BufRing {
    fn new(count: u16) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 32_768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive buffer count must be a power of two up to 32768",
            ));
        }
        let map_len = usize::from(count) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: anonymous private mapping; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut ring = BufRing {
            entries: ptr.cast(),
            map_len,
            count,
            tail: 0,
            buffers: vec![0u8; usize::from(count) * BUF_SIZE].into_boxed_slice(),
        };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Puts buffer `bid` at the tail (visible to the kernel after `publish`).
    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers[usize::from(bid) * BUF_SIZE..].as_mut_ptr() as u64;
        // SAFETY: idx < count, inside the mapping; the kernel only reads entries between its
        // head and the published tail, and this entry is past the published tail.
        let entry = unsafe { &mut *self.entries.add(idx) };
        entry.set_addr(addr);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes pushed buffers to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved field inside the mapping;
        // it is only written here and read by the kernel, so an atomic store is sound.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn buffer_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = usize::from(bid) * BUF_SIZE;
        // INVARIANT: bid < count (the kernel only returns ids we pushed) and len <= BUF_SIZE.
        &mut self.buffers[start..start + len.min(BUF_SIZE)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in new(); the ring that used it is gone
        // (UringIo drops `ring` before `bufs`, see field order).
        unsafe { libc::munmap(self.entries.cast(), self.map_len) };
    }
}

/// One GSO send in flight: its message, an iovec per segment, the UDP_SEGMENT cmsg, the
/// destination, and the transmit slots it holds until its completion.
struct GsoOp {
    msg: libc::msghdr,
    iovs: [libc::iovec; GSO_MAX_SEGMENTS],
    cmsg: [u64; sys::GSO_CMSG_WORDS],
    addr: RawAddr,
    slots: [u32; GSO_MAX_SEGMENTS],
    count: u16,
    sock: SockId,
}

struct RxDone {
    sock: SockId,
    bid: u16,
    offset: u16,
    len: u16,
    src: std::net::SocketAddr,
}

struct Socket {
    /// Owned here so the descriptor stays open; the ring uses it by its registered index.
    _sock: UdpSocket,
    /// The msghdr template of the multishot recvmsg (boxed: its address is handed to the kernel).
    msghdr: Box<libc::msghdr>,
    armed: bool,
}

/// io_uring backend.
pub struct UringIo {
    // Field order matters for Drop: the ring must close before the memory it points at.
    ring: IoUring,
    bufs: BufRing,
    socks: Vec<Socket>,
    wake_fd: RawFd,
    wake_buf: Box<u64>,
    wake_armed: bool,
    clock: MonoClock,
    timeout_ts: Box<types::Timespec>,
    /// Deadline of the pending timeout, if one is in flight.
    armed: Option<Instant>,
    timeouts_in_flight: u32,
    rx_done: Vec<RxDone>,
    txq: TxQueue,
    tx_entries: Vec<TxEntry>,
    tx_msgs: Box<[libc::msghdr]>,
    tx_iovs: Box<[libc::iovec]>,
    tx_addrs: Box<[RawAddr]>,
    planner: TxPlanner,
    /// UDP GSO in use (asked for, supported, and not refused since).
    gso: bool,
    gso_ops: Box<[GsoOp]>,
    gso_free: Vec<u32>,
    /// GSO sends the kernel refused, to send again one datagram per send.
    gso_retry: Vec<u32>,
    counters: IoCounters,
}

// SAFETY: the raw pointers inside (ring mapping, msghdr templates, per-slot msghdrs) point at
// memory owned by this struct; the backend is created and then used by exactly one thread at a
// time (moved into its core thread before first use).
unsafe impl Send for UringIo {}

impl UringIo {
    /// Sets up the ring and its provided-buffer ring. Errors mean io_uring is unusable here.
    /// With `gso`, runs of equal-size datagrams to one destination go out as UDP GSO sends
    /// where the kernel supports it (probed here; no support is counted in `gso_fallbacks`).
    pub fn new(wake_fd: RawFd, sizes: IoSizes, gso: bool) -> io::Result<Self> {
        let sq = 1024u32;
        // Single issuer + deferred task work: completions are posted only when this thread
        // enters the kernel to wait, instead of interrupting it (kernel 6.1+); older kernels
        // get a plain ring.
        let ring = IoUring::builder()
            .setup_cqsize(sq * 8)
            .setup_single_issuer()
            .setup_coop_taskrun()
            .build(sq)
            .or_else(|_| IoUring::builder().setup_cqsize(sq * 8).build(sq))?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for code in [
            opcode::RecvMsgMulti::CODE,
            opcode::SendMsg::CODE,
            opcode::Timeout::CODE,
            opcode::Read::CODE,
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring opcode {code} not supported by this kernel"),
                ));
            }
        }
        // Sockets are used as registered files: no fd lookup and refcount per operation.
        ring.submitter().register_files_sparse(MAX_SOCKETS)?;
        let bufs = BufRing::new(sizes.rx_buffers)?;
        // SAFETY: the entries mapping is page-aligned (mmap), holds `count` entries, and lives
        // in `bufs`, which is dropped after `ring` (field order).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                bufs.count,
                BUF_GROUP,
                0,
            )?
        };
        let slots = sizes.tx_slots as usize;
        let gso_ok = gso && sys::udp_gso_supported();
        let gso_ops = if gso_ok { GSO_OPS } else { 0 };
        Ok(UringIo {
            ring,
            bufs,
            socks: Vec::new(),
            wake_fd,
            wake_buf: Box::new(0),
            wake_armed: false,
            clock: MonoClock::new(),
            timeout_ts: Box::new(types::Timespec::new()),
            armed: None,
            timeouts_in_flight: 0,
            rx_done: Vec::with_capacity(usize::from(sizes.rx_buffers)),
            txq: TxQueue::new(slots),
            tx_entries: Vec::with_capacity(slots),
            // SAFETY: msghdr and iovec are plain data; zeroed is valid.
            tx_msgs: (0..slots).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            tx_iovs: (0..slots).map(|_| unsafe { zeroed() }).collect(),
            tx_addrs: vec![RawAddr::zeroed(); slots].into_boxed_slice(),
            planner: TxPlanner::default(),
            gso: gso_ok,
            gso_ops: (0..gso_ops)
                .map(|_| GsoOp {
                    // SAFETY: msghdr and iovec are plain data; zeroed is valid.
                    msg: unsafe { zeroed() },
                    // SAFETY: as above.
                    iovs: unsafe { zeroed() },
                    cmsg: [0; sys::GSO_CMSG_WORDS],
                    addr: RawAddr::zeroed(),
                    slots: [0; GSO_MAX_SEGMENTS],
                    count: 0,
                    sock: SockId(0),
                })
                .collect(),
            gso_free: (0..gso_ops as u32).rev().collect(),
            gso_retry: Vec::with_capacity(gso_ops),
            counters: IoCounters {
                gso_fallbacks: u64::from(gso && !gso_ok),
                ..IoCounters::default()
            },
        })
    }

    /// Pushes an entry, submitting first if the submission queue is full.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built in this file points only at memory owned by `self`
            // that stays valid and untouched until the entry's completion (see call sites).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.counters.syscalls += 1;
            self.ring.submit()?;
        }
    }

    fn arm_recvs(&mut self) -> io::Result<()> {
        for i in 0..self.socks.len() {
            if self.socks[i].armed {
                continue;
            }
            let s = &self.socks[i];
            let entry = opcode::RecvMsgMulti::new(
                types::Fixed(i as u32),
                &*s.msghdr as *const libc::msghdr,
                BUF_GROUP,
            )
            .build()
            .user_data(user_data(TAG_RECV, i as u64));
            self.push(entry)?;
            self.socks[i].armed = true;
        }
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        if self.wake_armed {
            return Ok(());
        }
        let ptr = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        // The eventfd is blocking, so the read parks in the kernel until the doorbell rings;
        // wake_buf stays owned by this backend until the completion arrives.
        let entry = opcode::Read::new(types::Fd(self.wake_fd), ptr, 8)
            .build()
            .user_data(user_data(TAG_WAKE, 0));
        self.push(entry)?;
        self.wake_armed = true;
        Ok(())
    }

    fn arm_timeout(&mut self, deadline: Instant) -> io::Result<()> {
        if self.armed.is_some_and(|d| d <= deadline) {
            return Ok(());
        }
        let (sec, nsec) = self.clock.to_timespec(deadline);
        *self.timeout_ts = types::Timespec::new().sec(sec).nsec(nsec);
        // The kernel copies the timespec when the entry is submitted, which happens in this
        // same `wait` call, before timeout_ts can be written again.
        let entry = opcode::Timeout::new(&*self.timeout_ts)
            .flags(types::TimeoutFlags::ABS)
            .build()
            .user_data(user_data(TAG_TIMEOUT, 0));
        self.push(entry)?;
        self.armed = Some(deadline);
        self.timeouts_in_flight += 1;
        Ok(())
    }

    fn queue_sends(&mut self) -> io::Result<()> {
        self.retry_refused_gso()?;
        self.txq.take_queued(&mut self.tx_entries);
        if self.tx_entries.is_empty() {
            return Ok(());
        }
        let mut planner = std::mem::take(&mut self.planner);
        let batches = planner.plan(&mut self.tx_entries, self.gso);
        let mut result = Ok(());
        for b in batches {
            let start = b.start as usize;
            let count = usize::from(b.count);
            let e = self.tx_entries[start];
            if usize::from(e.sock.0) >= self.socks.len() {
                self.counters.tx_errors += count as u64;
                for j in start..start + count {
                    self.txq.release(self.tx_entries[j].slot);
                }
                continue;
            }
            let r = match (count >= 2).then(|| self.gso_free.pop()).flatten() {
                Some(op) => self.queue_gso(op, start, count, b.seg_len),
                None => (start..start + count).try_for_each(|j| {
                    let e = self.tx_entries[j];
                    self.queue_one(e.slot, e.sock, e.dst, e.len)
                }),
            };
            if r.is_err() {
                result = r;
                break;
            }
        }
        self.planner = planner;
        self.tx_entries.clear();
        result
    }

    /// Queues one datagram in transmit slot `slot`.
    fn queue_one(
        &mut self,
        slot: u32,
        sock: SockId,
        dst: std::net::SocketAddr,
        len: u16,
    ) -> io::Result<()> {
        let i = slot as usize;
        let namelen = self.tx_addrs[i].set(dst);
        self.tx_iovs[i] = libc::iovec {
            iov_base: self.txq.slot_ptr(slot).cast(),
            iov_len: usize::from(len),
        };
        let msg = &mut self.tx_msgs[i];
        msg.msg_name = self.tx_addrs[i].as_mut_ptr();
        msg.msg_namelen = namelen;
        msg.msg_iov = &mut self.tx_iovs[i];
        msg.msg_iovlen = 1;
        msg.msg_control = std::ptr::null_mut();
        msg.msg_controllen = 0;
        // The slot's buffer, iovec, msghdr and address belong to this send until its
        // completion releases the slot.
        let entry = opcode::SendMsg::new(types::Fixed(u32::from(sock.0)), &self.tx_msgs[i])
            .build()
            .user_data(user_data(TAG_SEND, u64::from(slot)));
        self.push(entry)
    }

    /// Queues planned entries `start..start + count` as one GSO send built in `op`.
    fn queue_gso(&mut self, op: u32, start: usize, count: usize, seg_len: u16) -> io::Result<()> {
        let first = self.tx_entries[start];
        // INVARIANT: op came from gso_free, which only holds indices of gso_ops.
        let g = &mut self.gso_ops[op as usize];
        for k in 0..count {
            let e = self.tx_entries[start + k];
            g.slots[k] = e.slot;
            g.iovs[k] = libc::iovec {
                iov_base: self.txq.slot_ptr(e.slot).cast(),
                iov_len: usize::from(e.len),
            };
        }
        g.count = count as u16;
        g.sock = first.sock;
        g.msg.msg_namelen = g.addr.set(first.dst);
        g.msg.msg_name = g.addr.as_mut_ptr();
        g.msg.msg_iov = g.iovs.as_mut_ptr();
        g.msg.msg_iovlen = count as _;
        sys::set_gso_cmsg(&mut g.msg, &mut g.cmsg, seg_len);
        // The op (message, iovecs, cmsg, address) and its slots belong to this send until
        // its completion gives them back.
        let entry = opcode::SendMsg::new(types::Fixed(u32::from(first.sock.0)), &g.msg)
            .build()
            .user_data(user_data(TAG_SEND_GSO, u64::from(op)));
        self.push(entry)
    }

    /// Sends the datagrams of GSO sends the kernel refused again, one per send, in the order
    /// the refusals completed (the order the sends were submitted in).
    fn retry_refused_gso(&mut self) -> io::Result<()> {
        if self.gso_retry.is_empty() {
            return Ok(());
        }
        let mut retry = std::mem::take(&mut self.gso_retry);
        let mut result = Ok(());
        for &op in &retry {
            // INVARIANT: ops in gso_retry are indices of gso_ops (from completions).
            let g = &self.gso_ops[op as usize];
            let (count, sock, dst) = (usize::from(g.count), g.sock, g.addr.get());
            for k in 0..count {
                let g = &self.gso_ops[op as usize];
                let (slot, len) = (g.slots[k], g.iovs[k].iov_len as u16);
                match dst {
                    Some(dst) if result.is_ok() => {
                        if let Err(e) = self.queue_one(slot, sock, dst, len) {
                            // Not queued: the slot is free again.
                            self.counters.tx_errors += 1;
                            self.txq.release(slot);
                            result = Err(e);
                        }
                    }
                    _ => {
                        self.counters.tx_errors += 1;
                        self.txq.release(slot);
                    }
                }
            }
            self.gso_free.push(op);
        }
        retry.clear();
        self.gso_retry = retry;
        result
    }

    fn reap(&mut self, ready: &mut Readiness) {
        let mut recycled = false;
        // Collect first: the completion queue borrows the ring.
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let tag = ud >> TAG_SHIFT;
            let value = ud & ((1 << TAG_SHIFT) - 1);
            let res = cqe.result();
            let flags = cqe.flags();
            match tag {
                TAG_RECV => {
                    let idx = value as usize;
                    if !cqueue::more(flags)
                        && let Some(s) = self.socks.get_mut(idx)
                    {
                        s.armed = false;
                    }
                    if res < 0 {
                        if -res == libc::ENOBUFS {
                            self.counters.rx_no_buffers += 1;
                        }
                        continue;
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        continue;
                    };
                    let Some(sock) = self.socks.get(idx) else {
                        self.bufs.push(bid);
                        recycled = true;
                        continue;
                    };
                    let buf = self.bufs.buffer_mut(bid, res as usize);
                    match types::RecvMsgOut::parse(buf, &sock.msghdr) {
                        Ok(out) if !out.is_payload_truncated() && !out.is_name_data_truncated() => {
                            match RawAddr::from_bytes(out.name_data()) {
                                Some(src) => {
                                    self.counters.rx_packets += 1;
                                    self.rx_done.push(RxDone {
                                        sock: SockId(idx as u16),
                                        bid,
                                        offset: RECV_HEADER as u16,
                                        len: out.payload_data().len() as u16,
                                        src,
                                    });
                                }
                                None => {
                                    self.bufs.push(bid);
                                    recycled = true;
                                }
                            }
                        }
                        _ => {
                            self.counters.rx_truncated += 1;
                            self.bufs.push(bid);
                            recycled = true;
                        }
                    }
                }
                TAG_SEND => {
                    if res < 0 {
                        self.counters.tx_errors += 1;
                    } else {
                        self.counters.tx_packets += 1;
                    }
                    self.txq.release(value as u32);
                }
                TAG_SEND_GSO => {
                    let op = value as usize;
                    let Some(g) = self.gso_ops.get(op) else {
                        continue;
                    };
                    let count = u64::from(g.count);
                    if res < 0 && sys::gso_refused(-res) {
                        // The kernel refuses GSO here: send these again one by one (slots
                        // stay held) and plan without GSO from now on.
                        self.gso = false;
                        self.counters.gso_fallbacks += 1;
                        self.gso_retry.push(op as u32);
                        continue;
                    }
                    if res < 0 {
                        self.counters.tx_errors += count;
                    } else {
                        self.counters.tx_packets += count;
                        self.counters.gso_sends += 1;
                        self.counters.gso_segments += count;
                    }
                    for &slot in &g.slots[..usize::from(g.count)] {
                        self.txq.release(slot);
                    }
                    self.gso_free.push(op as u32);
                }
                TAG_WAKE => {
                    self.wake_armed = false;
                    ready.woken = true;
                }
                TAG_TIMEOUT => {
                    self.timeouts_in_flight = self.timeouts_in_flight.saturating_sub(1);
                    if self.timeouts_in_flight == 0 {
                        self.armed = None;
                    }
                    ready.timed_out = true;
                }
                _ => {}
            }
        }
        if recycled {
            self.bufs.publish();
        }
    }
}

impl PacketIo for UringIo {
    fn kind(&self) -> IoKind {
        IoKind::Uring
    }

    fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SockId> {
        socket.set_nonblocking(true)?;
        let idx = self.socks.len();
        if idx >= MAX_SOCKETS as usize {
            return Err(io::Error::other("too many sockets for one core"));
        }
        let id = u16::try_from(idx).map_err(|_| io::Error::other("too many sockets"))?;
        self.ring
            .submitter()
            .register_files_update(idx as u32, &[socket.as_raw_fd()])?;
        // SAFETY: plain data; zeroed is valid.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { zeroed() });
        msghdr.msg_namelen = RawAddr::CAPACITY;
        self.socks.push(Socket {
            _sock: socket,
            msghdr,
            armed: false,
        });
        Ok(SockId(id))
    }

    fn wait(&mut self, deadline: Instant) -> io::Result<Readiness> {
        let mut ready = Readiness::default();
        self.queue_sends()?;
        self.arm_recvs()?;
        self.arm_wake()?;
        self.arm_timeout(deadline)?;
        self.counters.syscalls += 1;
        let has_completions = !self.ring.completion().is_empty();
        let r = if has_completions {
            self.ring.submit()
        } else {
            self.ring.submit_and_wait(1)
        };
        match r {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        self.reap(&mut ready);
        Ok(ready)
    }

    fn drain(&mut self, handler: &mut dyn FnMut(RxMeta, &mut [u8], &mut TxQueue)) {
        if self.rx_done.is_empty() {
            return;
        }
        let UringIo {
            bufs, rx_done, txq, ..
        } = self;
        for d in rx_done.iter() {
            let start = usize::from(d.offset);
            let end = start + usize::from(d.len);
            let buf = bufs.buffer_mut(d.bid, end);
            handler(
                RxMeta {
                    sock: d.sock,
                    src: d.src,
                },
                &mut buf[start..],
                txq,
            );
            bufs.push(d.bid);
        }
        rx_done.clear();
        bufs.publish();
    }

    fn tx(&mut self) -> &mut TxQueue {
        &mut self.txq
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

impl Drop for UringIo {
    /// Cancels every request in flight and waits (bounded) for their completions, so the kernel
    /// no longer references this backend's buffers when their memory is freed.
    fn drop(&mut self) {
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(0);
        if self.push(cancel).is_err() {
            return;
        }
        // Refused GSO sends wait for no completion: their slots are free now.
        while let Some(op) = self.gso_retry.pop() {
            if let Some(g) = self.gso_ops.get(op as usize) {
                for &slot in &g.slots[..usize::from(g.count)] {
                    self.txq.release(slot);
                }
            }
        }
        let ts = types::Timespec::new().nsec(20_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        for _ in 0..50 {
            let busy = self.socks.iter().any(|s| s.armed)
                || self.wake_armed
                || self.timeouts_in_flight > 0
                || self.txq.free_slots() < self.tx_msgs.len();
            if !busy {
                break;
            }
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let mut ready = Readiness::default();
            self.reap(&mut ready);
            self.rx_done.clear();
        }
    }
}
