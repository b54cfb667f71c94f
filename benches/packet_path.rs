//! The packet path: RTP packets forwarded per second by one media core, io_uring backend
//! against the batched-syscalls backend in the same run, plain RTP and SRTP (AEAD_AES_128_GCM,
//! decrypt once and encrypt for the destination).
//!
//! The engine's core runs pinned on CPU 1; the load generator (sendmmsg to the engine,
//! recvmmsg from the sink, at most WINDOW packets in flight) runs pinned on CPU 0. Besides
//! criterion's packets/s, the bench prints the engine core's CPU time per forwarded packet
//! (from its own thread CPU clock), which is what the backends are compared on.
//!
//! Run: `cargo bench --bench packet_path`

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use chorus_engine::runtime::{
    Command, CoreId, Engine, EngineConfig, Event, IoKind, LegConfig, LegId, Metric, SrtpKey,
};
use chorus_engine::srtp::{SrtpContext, SrtpSuite};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PAYLOAD: usize = 160;
const WINDOW: u64 = 256;
const BATCH: usize = 32;

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET gets an index below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn key(suite: SrtpSuite, seed: u8) -> SrtpKey {
    SrtpKey {
        suite,
        key: (0..suite.master_key_len() as u8)
            .map(|i| i ^ seed)
            .collect(),
        salt: (0..suite.master_salt_len() as u8)
            .map(|i| i.wrapping_mul(3) ^ seed)
            .collect(),
    }
}

/// Sends a batch with sendmmsg (the generator must be cheaper than the engine it measures).
fn send_batch(sock: &UdpSocket, dst: SocketAddr, pkts: &mut [Vec<u8>]) -> usize {
    let SocketAddr::V4(v4) = dst else {
        panic!("IPv4 only")
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let mut iovs: Vec<libc::iovec> = pkts
        .iter_mut()
        .map(|p| libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: plain data.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&addr as *const libc::sockaddr_in).cast_mut().cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs point at live iovecs, buffers and the address for this call.
    let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    n.max(0) as usize
}

/// Receives whatever is waiting (non-blocking), returns the count.
fn recv_batch(sock: &UdpSocket, bufs: &mut [[u8; 2048]]) -> usize {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: plain data.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs point at live iovecs over the caller's buffers.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    n.max(0) as usize
}

struct Rig {
    engine: Engine,
    gen_sock: UdpSocket,
    sink: UdpSocket,
    dst: SocketAddr,
    tx: Option<SrtpContext>,
    seq: u16,
    lost: u64,
}

impl Rig {
    fn new(io: IoKind, srtp: bool, ports: (u16, u16)) -> Rig {
        let engine = Engine::start(EngineConfig {
            cores: 1,
            io,
            media_ports: ports,
            pairs_per_core: 1,
            pin_cores: true,
            ..EngineConfig::default()
        })
        .expect("engine starts");
        let gen_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&gen_sock, &sink] {
            let size: libc::c_int = 4 << 20;
            // SAFETY: option value is a live c_int of the given size.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let suite = SrtpSuite::AeadAes128Gcm;
        let mut a = LegConfig::new(LegId(1));
        a.remote_rtp = Some(gen_sock.local_addr().unwrap());
        a.latch = false;
        let mut b = LegConfig::new(LegId(2));
        b.remote_rtp = Some(sink.local_addr().unwrap());
        b.latch = false;
        if srtp {
            a.srtp_in = Some(key(suite, 1));
            a.srtp_out = Some(key(suite, 2));
            b.srtp_in = Some(key(suite, 3));
            b.srtp_out = Some(key(suite, 4));
        }
        let core = CoreId(0);
        engine.send(core, Command::CreateLeg(Box::new(a))).unwrap();
        engine.send(core, Command::CreateLeg(Box::new(b))).unwrap();
        engine
            .send(
                core,
                Command::Connect {
                    from: LegId(1),
                    to: LegId(2),
                },
            )
            .unwrap();
        let mut dst = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while dst.is_none() && Instant::now() < deadline {
            engine.wait_events(Duration::from_millis(50));
            while let Some((_, ev)) = engine.poll_event() {
                if let Event::LegCreated {
                    id: LegId(1), rtp, ..
                } = ev
                {
                    dst = Some(rtp);
                }
            }
        }
        let k = key(suite, 1);
        Rig {
            engine,
            gen_sock,
            sink,
            dst: dst.expect("leg created"),
            tx: srtp.then(|| SrtpContext::new(k.suite, &k.key, &k.salt).unwrap()),
            seq: 0,
            lost: 0,
        }
    }

    fn packet(&mut self) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(self.seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.resize(12 + PAYLOAD, 0xd5);
        if let Some(ctx) = &mut self.tx {
            let n = p.len();
            p.resize(n + 16, 0);
            let len = ctx.protect_rtp(&mut p, n).unwrap();
            p.truncate(len);
        }
        p
    }

    /// Pushes `n` packets through the engine; returns the wall time.
    fn forward(&mut self, n: u64) -> Duration {
        let mut bufs = vec![[0u8; 2048]; BATCH];
        let (mut sent, mut got, mut lost) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        let mut last_progress = Instant::now();
        while got + lost < n {
            if sent < n && sent.saturating_sub(got + lost) < WINDOW {
                let k = (n - sent).min(BATCH as u64) as usize;
                let mut batch: Vec<Vec<u8>> = (0..k).map(|_| self.packet()).collect();
                sent += send_batch(&self.gen_sock, self.dst, &mut batch) as u64;
            }
            let r = recv_batch(&self.sink, &mut bufs) as u64;
            if r > 0 {
                got += r;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_millis(200) {
                // Whatever is still in flight was lost; count it and go on.
                lost = sent.saturating_sub(got);
                last_progress = Instant::now();
            }
        }
        self.lost += lost;
        start.elapsed()
    }

    /// (CPU ns, forwarded, loop iterations, kernel entries, user ns, system ns) of the
    /// engine core so far.
    fn cpu_and_forwarded(&self) -> [u64; 6] {
        // Counters are published once per tick.
        std::thread::sleep(Duration::from_millis(50));
        let c = self.engine.counters(CoreId(0));
        [
            c.get(Metric::CpuNs),
            c.get(Metric::Forwarded),
            c.get(Metric::Loops),
            c.get(Metric::IoSyscalls),
            c.get(Metric::CpuUserNs),
            c.get(Metric::CpuSysNs),
        ]
    }

    /// The engine's nonzero drop counters.
    fn drops(&self) -> String {
        let c = self.engine.counters(CoreId(0));
        Metric::ALL
            .iter()
            .filter(|m| {
                let n = m.name();
                (n.starts_with("drop_") || n.starts_with("rx_no") || n == "tx_errors")
                    && c.get(**m) > 0
            })
            .map(|m| format!("{}={}", m.name(), c.get(*m)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `f` on a thread pinned to CPU 0 (the load generator's CPU).
fn on_generator_cpu<T: Send>(cpus: usize, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            if cpus >= 2 {
                pin(0);
            }
            f()
        })
        .join()
        .expect("generator thread")
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaved rounds of this many packets per configuration for the CPU-per-packet figures.
const ROUND_PACKETS: u64 = 100_000;
const ROUNDS: usize = 9;

fn bench(c: &mut Criterion) {
    // The engine cores inherit CPU 1; the generator runs on CPU 0.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        pin(1);
    }
    let mut rigs = Vec::new();
    let mut port = 43_000;
    for srtp in [false, true] {
        for io in [IoKind::Syscalls, IoKind::Uring] {
            let rig = Rig::new(io, srtp, (port, port + 9));
            port += 10;
            let name = format!(
                "{}/{}",
                if srtp { "srtp_gcm" } else { "rtp" },
                rig.engine.io_kind(CoreId(0)).unwrap()
            );
            rigs.push((name, rig));
        }
    }

    // Throughput per configuration (criterion).
    let mut group = c.benchmark_group("packet_path");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, rig) in &mut rigs {
        let (tx_side, rx_side) = std::sync::mpsc::channel::<u64>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Duration>();
        std::thread::scope(|s| {
            s.spawn(move || {
                if cpus >= 2 {
                    pin(0);
                }
                for n in rx_side {
                    let _ = done_tx.send(rig.forward(n));
                }
            });
            group.bench_function(name.as_str(), |b| {
                b.iter_custom(|iters| {
                    tx_side.send(iters).unwrap();
                    done_rx.recv().unwrap()
                })
            });
            drop(tx_side);
        });
    }
    group.finish();

    // Engine CPU per forwarded packet, in interleaved rounds so that the machine's noise
    // falls on every configuration alike.
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); rigs.len()];
    let mut per_loop = vec![0f64; rigs.len()];
    let mut per_entry = vec![0f64; rigs.len()];
    let mut user_ns: Vec<Vec<f64>> = vec![Vec::new(); rigs.len()];
    let mut sys_ns: Vec<Vec<f64>> = vec![Vec::new(); rigs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, rig)) in rigs.iter_mut().enumerate() {
            let before = rig.cpu_and_forwarded();
            on_generator_cpu(cpus, || rig.forward(ROUND_PACKETS));
            let after = rig.cpu_and_forwarded();
            let d: Vec<f64> = (0..6).map(|k| (after[k] - before[k]) as f64).collect();
            let pkts = d[1].max(1.0);
            ns[i].push(d[0] / pkts);
            user_ns[i].push(d[4] / pkts);
            sys_ns[i].push(d[5] / pkts);
            per_loop[i] += pkts / d[2].max(1.0) / ROUNDS as f64;
            per_entry[i] += pkts / d[3].max(1.0) / ROUNDS as f64;
        }
    }
    eprintln!(
        "\nengine core CPU time per forwarded packet, median of {ROUNDS} interleaved rounds of \
         {ROUND_PACKETS} packets:"
    );
    for (i, (name, rig)) in rigs.iter().enumerate() {
        eprintln!(
            "  {name:<20} {:>6.0} ns/packet (user {:>5.0}, kernel {:>5.0})  {:>5.1} packets/loop  \
             {:>5.1} packets/kernel entry  ({} lost) {}",
            median(&mut ns[i].clone()),
            median(&mut user_ns[i]),
            median(&mut sys_ns[i]),
            per_loop[i],
            per_entry[i],
            rig.lost,
            rig.drops()
        );
    }
    for pair in (0..rigs.len()).collect::<Vec<_>>().chunks(2) {
        let [sys, uring] = [pair[0], pair[1]];
        let mut ratios: Vec<f64> = (0..ROUNDS).map(|r| ns[uring][r] / ns[sys][r]).collect();
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        eprintln!(
            "  {} / {}: median paired ratio {:.2} (range {:.2}-{:.2})",
            rigs[uring].0,
            rigs[sys].0,
            median(&mut ratios),
            sorted[0],
            sorted[ROUNDS - 1]
        );
    }
    for (_, rig) in rigs {
        rig.engine.shutdown();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
