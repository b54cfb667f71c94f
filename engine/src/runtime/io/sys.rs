//! Thin, safe wrappers over the Linux calls the runtime needs: eventfd, timerfd, socket
//! addresses in C form, socket buffer sizes, CPU pinning and thread CPU time.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Reads the 8-byte counter of an eventfd or timerfd; None if nothing was there.
pub(crate) fn read_counter(fd: RawFd) -> Option<u64> {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from a descriptor the caller owns.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), size_of::<u64>()) };
    (n == size_of::<u64>() as isize).then_some(v)
}

/// A non-blocking eventfd: the doorbell between the control side and a core.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new close-on-exec eventfd. A blocking one suits io_uring, whose read then waits in
    /// the kernel; `drain` must only be called on a blocking one after readiness was seen.
    pub fn new(nonblocking: bool) -> io::Result<Self> {
        let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
        // SAFETY: eventfd has no pointer arguments; a non-negative return is a new fd we own.
        let fd = cvt(unsafe { libc::eventfd(0, flags) })?;
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Rings the doorbell (adds 1). Never blocks; a saturated counter is already "rung".
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own fd.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                size_of::<u64>(),
            )
        };
    }

    /// Clears the counter; returns whether it was rung.
    pub fn drain(&self) -> bool {
        read_counter(self.0.as_raw_fd()).is_some_and(|v| v > 0)
    }

    /// Blocks up to `timeout` until the doorbell rings (does not clear it).
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(n > 0)
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Converts `Instant`s to CLOCK_MONOTONIC timespecs (Rust's `Instant` is that clock on Linux),
/// for absolute kernel timeouts that do not drift.
#[derive(Clone, Copy, Debug)]
pub struct MonoClock {
    base: Instant,
    base_ns: u128,
}

impl MonoClock {
    /// Pairs `Instant::now()` with the kernel's monotonic clock.
    pub fn new() -> Self {
        let mut ts: libc::timespec = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let base = Instant::now();
        MonoClock {
            base,
            base_ns: ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128,
        }
    }

    /// The monotonic time of `at`, in (seconds, nanoseconds).
    pub fn to_timespec(&self, at: Instant) -> (u64, u32) {
        let ns = if at >= self.base {
            self.base_ns + (at - self.base).as_nanos()
        } else {
            self.base_ns.saturating_sub((self.base - at).as_nanos())
        };
        ((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A non-blocking timerfd on CLOCK_MONOTONIC, armed with absolute deadlines.
#[derive(Debug)]
pub struct TimerFd(OwnedFd);

impl TimerFd {
    /// A new disarmed timer.
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointer arguments; a non-negative return is a new fd we own.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just created.
        Ok(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Arms the timer to fire once at the absolute monotonic time (sec, nsec).
    pub fn arm_at(&self, (sec, nsec): (u64, u32)) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: sec as libc::time_t,
                // A zero value would disarm the timer; the earliest real deadline is 1 ns.
                tv_nsec: nsec.max(u32::from(sec == 0)) as libc::c_long,
            },
        };
        // SAFETY: valid itimerspec; old value not requested.
        cvt(unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Consumes expirations; returns whether any had happened.
    pub fn drain(&self) -> bool {
        read_counter(self.0.as_raw_fd()).is_some()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A socket address in the kernel's form, large enough for IPv4 and IPv6.
#[derive(Clone, Copy)]
#[repr(C)]
pub union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// Size reserved for an address (the IPv6 form).
    pub const CAPACITY: libc::socklen_t = size_of::<libc::sockaddr_in6>() as libc::socklen_t;

    /// An all-zero address (family AF_UNSPEC).
    pub fn zeroed() -> Self {
        // SAFETY: all-zero bytes are a valid sockaddr_in6.
        unsafe { zeroed() }
    }

    /// Writes `addr`; returns the length to pass to the kernel.
    pub fn set(&mut self, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                self.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                self.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The length `set` returns for `addr`.
    pub fn len_of(addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(_) => size_of::<libc::sockaddr_in>() as libc::socklen_t,
            SocketAddr::V6(_) => size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        }
    }

    /// Pointer for the kernel.
    pub fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        (self as *mut RawAddr).cast()
    }

    /// Reads the address the kernel wrote, if it is IPv4 or IPv6.
    pub fn get(&self) -> Option<SocketAddr> {
        // SAFETY: every variant starts with the family field; reading it is always defined.
        let family = unsafe { self.v4.sin_family } as libc::c_int;
        match family {
            libc::AF_INET => {
                // SAFETY: the family says the v4 variant was written.
                let a = unsafe { self.v4 };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the v6 variant was written.
                let a = unsafe { self.v6 };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Parses an address from raw bytes the kernel wrote (io_uring's recvmsg name field).
    pub fn from_bytes(bytes: &[u8]) -> Option<SocketAddr> {
        let mut raw = RawAddr::zeroed();
        let n = bytes.len().min(size_of::<RawAddr>());
        // SAFETY: copies at most size_of::<RawAddr>() bytes into raw, a plain-old-data union.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut raw as *mut RawAddr).cast(), n)
        };
        raw.get()
    }
}

/// Sets SO_RCVBUF and SO_SNDBUF (the kernel caps them at its rmem_max/wmem_max).
pub fn set_socket_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: option value is a live c_int of the given size.
        cvt(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// `UDP_SEGMENT` (linux/udp.h): the GSO segment size, as a socket option or a cmsg (the libc
/// crate defines it only for uClibc).
pub const UDP_SEGMENT: libc::c_int = 103;

/// Bytes of the control buffer a UDP_SEGMENT cmsg needs (CMSG_SPACE of a u16), rounded up to
/// whole u64s so buffers of `[u64; GSO_CMSG_WORDS]` are aligned for `cmsghdr`.
pub const GSO_CMSG_WORDS: usize = 3;

/// Whether this kernel takes UDP GSO (Linux 4.18+): setting `UDP_SEGMENT` on a UDP socket.
pub fn udp_gso_supported() -> bool {
    // SAFETY: no pointer arguments; a non-negative return is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd was just created.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let seg: libc::c_int = 1_200;
    // SAFETY: option value is a live c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&seg as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// Whether a failed GSO send means the kernel or device refuses GSO (fall back to one
/// datagram per send) rather than a per-datagram error.
pub fn gso_refused(errno: i32) -> bool {
    matches!(errno, libc::EIO | libc::EINVAL | libc::EOPNOTSUPP)
}

/// Writes a UDP_SEGMENT cmsg carrying `seg_len` into `buf` and points `msg` at it.
pub fn set_gso_cmsg(msg: &mut libc::msghdr, buf: &mut [u64; GSO_CMSG_WORDS], seg_len: u16) {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= size_of::<[u64; GSO_CMSG_WORDS]>());
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` writable, u64-aligned bytes, so CMSG_FIRSTHDR
    // returns a header inside `buf` with room for the header and a u16 of data.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), seg_len);
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: valid out pointer and size for pid 0 (this thread).
    let ok = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as in allowed_cpus; CPU_SET is given an index checked below.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu < CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: valid set pointer and size.
    cvt(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User and system CPU time of the calling thread, in nanoseconds (microsecond resolution):
/// how much of a core's time is the engine's own work and how much the kernel's.
pub fn thread_cpu_split_ns() -> (u64, u64) {
    // SAFETY: rusage is plain data; zeroed is valid and getrusage fills it.
    let mut ru: libc::rusage = unsafe { zeroed() };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return (0, 0);
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

/// The kernel thread id of the calling thread.
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addr_round_trips() {
        for s in ["127.0.0.1:5060", "[::1]:40000", "[fe80::1%2]:9"] {
            let a: SocketAddr = s.parse().unwrap();
            let mut r = RawAddr::zeroed();
            r.set(a);
            assert_eq!(r.get(), Some(a), "{s}");
        }
        assert_eq!(RawAddr::zeroed().get(), None);
        assert_eq!(RawAddr::from_bytes(&[]), None);
    }

    #[test]
    fn eventfd_rings_and_clears() {
        let e = EventFd::new(true).unwrap();
        assert!(!e.drain());
        e.notify();
        e.notify();
        assert!(e.wait_readable(Duration::from_millis(0)).unwrap());
        assert!(e.drain());
        assert!(!e.drain());
    }

    #[test]
    fn timerfd_fires_at_absolute_deadline() {
        let clock = MonoClock::new();
        let t = TimerFd::new().unwrap();
        let start = Instant::now();
        t.arm_at(clock.to_timespec(start + Duration::from_millis(20)))
            .unwrap();
        assert!(!t.drain());
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.drain());
    }
}
