//! CPU use of another process (the server under load), read from `/proc/<pid>/stat`.
//!
//! `ProcCpu` keeps the previous reading of the process's user + system time and turns the
//! difference into percent of one core over the wall time between two samples; the caller
//! passes `now`, so the figure is over exactly the interval the caller reports on.
//!
//! ```text
//! let pid = proc_cpu::find_pid_listening(5060).context("no process on UDP 5060")?;
//! let mut cpu = ProcCpu::new(pid)?;
//! cpu.sample(Instant::now());          // None: the baseline
//! // ... one second later ...
//! let pct = cpu.sample(Instant::now()); // Some(percent of one core)
//! ```

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::time::Instant;

/// CPU sampler for one process, by pid.
#[derive(Debug)]
pub struct ProcCpu {
    pid: u32,
    /// Clock ticks per second (`_SC_CLK_TCK`), the unit of utime and stime.
    ticks_per_s: f64,
    /// The previous sample: when, and utime + stime in clock ticks.
    last: Option<(Instant, u64)>,
}

impl ProcCpu {
    /// A sampler for `pid`; an error if no such process can be read in `/proc`.
    pub fn new(pid: u32) -> io::Result<ProcCpu> {
        read_cpu_ticks(pid).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read CPU time of process {pid} (/proc/{pid}/stat): {e}"),
            )
        })?;
        Ok(ProcCpu {
            pid,
            ticks_per_s: clock_ticks_per_s(),
            last: None,
        })
    }

    /// Percent of one core the process used since the previous sample (200.0 is two cores
    /// busy). `None` for the first sample, when no time has passed, or when the process is
    /// gone (or its pid was reused by a process with less CPU time).
    pub fn sample(&mut self, now: Instant) -> Option<f64> {
        let Ok(ticks) = read_cpu_ticks(self.pid) else {
            self.last = None;
            return None;
        };
        let Some((then, then_ticks)) = self.last else {
            self.last = Some((now, ticks));
            return None;
        };
        let elapsed_s = now.checked_duration_since(then)?.as_secs_f64();
        if elapsed_s <= 0.0 {
            return None;
        }
        self.last = Some((now, ticks));
        let used_ticks = ticks.checked_sub(then_ticks)?;
        Some(used_ticks as f64 / self.ticks_per_s / elapsed_s * 100.0)
    }
}

/// The pid of a process holding a UDP socket bound to 127.0.0.1:`port` or 0.0.0.0:`port`,
/// found by matching the socket's inode in `/proc/net/udp` against the `socket:[inode]` links
/// in `/proc/*/fd`. `None` if there is no such socket or its owner cannot be seen (another
/// user's process when not root).
pub fn find_pid_listening(port: u16) -> Option<u32> {
    pid_holding("/proc/net/udp", port)
}

/// The pid of a process holding a TCP socket bound to 127.0.0.1:`port` or 0.0.0.0:`port`
/// (a listener, such as Janus's HTTP transport), found as [`find_pid_listening`] does
/// through `/proc/net/tcp`.
pub fn find_pid_listening_tcp(port: u16) -> Option<u32> {
    pid_holding("/proc/net/tcp", port)
}

/// The pid holding a socket of the `/proc/net/{udp,tcp}` table `table` bound to `port`.
fn pid_holding(table: &str, port: u16) -> Option<u32> {
    let table = fs::read_to_string(table).ok()?;
    let inodes = inodes_bound(&table, port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes that exit meanwhile or that we may not look into are skipped.
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path())
                && target.to_str().is_some_and(|t| wanted.contains(t))
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Inodes of the sockets in a `/proc/net/udp` (or `tcp`: the same columns) table bound to
/// 127.0.0.1 or 0.0.0.0 at `port`.
fn inodes_bound(table: &str, port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    // The first line is the column header.
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st, tx:rx queue, tr:tm->when, retrnsmt, uid,
        // timeout, inode.
        let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
            continue;
        };
        let Some((addr_hex, port_hex)) = local.split_once(':') else {
            continue;
        };
        let (Ok(addr), Ok(local_port), Ok(inode)) = (
            u32::from_str_radix(addr_hex, 16),
            u16::from_str_radix(port_hex, 16),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        // The kernel prints the address as the network-order word read as a native u32, so
        // its native bytes are the address bytes in order; the port is printed in host order.
        let ip = Ipv4Addr::from(addr.to_ne_bytes());
        if local_port == port
            && (ip == Ipv4Addr::LOCALHOST || ip == Ipv4Addr::UNSPECIFIED)
            && inode != 0
        {
            inodes.push(inode);
        }
    }
    inodes
}

/// utime + stime of `pid`, in clock ticks.
fn read_cpu_ticks(pid: u32) -> io::Result<u64> {
    let line = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&line).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

/// utime + stime (fields 14 and 15, proc(5)) from a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields
/// after it are counted from the last ')'.
fn parse_stat_ticks(line: &str) -> Option<u64> {
    let (_, after_comm) = line.rsplit_once(')')?;
    let mut fields = after_comm.split_whitespace();
    // After the comm come field 3 (state) onwards: utime is field 14, the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, the unit of the stat times; 100 if the system will not say.
fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a system constant; it takes no pointers and has no
    // preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn stat_line_with_parentheses_and_spaces_in_comm() {
        // pid, comm "(a) b)", then fields 3.. with utime 1234 (field 14) and stime 56 (15).
        let line = "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 1 0 \
                    12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 \
                    0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_stat_ticks(line), Some(1234 + 56));
    }

    #[test]
    fn stat_line_cut_short_is_none() {
        assert_eq!(parse_stat_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_ticks("no parenthesis here"), None);
    }

    #[test]
    fn own_process_spinning_shows_cpu() {
        let mut cpu = ProcCpu::new(std::process::id()).expect("our own /proc/self/stat");
        assert_eq!(
            cpu.sample(Instant::now()),
            None,
            "the first sample is the baseline"
        );
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        let pct = cpu
            .sample(Instant::now())
            .expect("a second sample has a figure");
        assert!(pct > 0.0, "spinning for 200 ms used {pct}% of a core");
    }

    #[test]
    fn missing_process_is_an_error_naming_it() {
        // Above any pid_max Linux allows (2^22).
        let err = ProcCpu::new(4_000_000_000).expect_err("no such process");
        assert!(err.to_string().contains("4000000000"), "{err}");
    }

    #[test]
    fn finds_own_udp_socket() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        let port = socket.local_addr().expect("bound address").port();
        assert_eq!(find_pid_listening(port), Some(std::process::id()));
    }

    #[test]
    fn udp_table_matches_loopback_and_any_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             1: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 111 2 0000000000000000 0\n\
             2: 00000000:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 222 2 0000000000000000 0\n\
             3: 0200007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 333 2 0000000000000000 0\n\
             4: 0100007F:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 444 2 0000000000000000 0\n";
        // 0x13C4 = 5060; the table's addresses are little-endian words.
        if cfg!(target_endian = "little") {
            assert_eq!(inodes_bound(table, 5060), vec![111, 222]);
        }
    }
}
