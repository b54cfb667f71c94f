//! Video forwarding per core: SRTP (AEAD_AES_128_GCM) H.264 from one publisher forwarded by
//! one pinned engine core to N receivers, with UDP GSO off and on, against the kernel's own
//! UDP forwarding of the same bytes (no SRTP, no SFU) on each engine I/O backend
//! (recvmmsg/sendmmsg, io_uring), with and without GSO, all in one run.
//!
//! The publisher plays a 720p clip encoded once with OpenH264 (1.5 Mbit/s, 30 fps, a key frame
//! every second), packetized into RTP payloads that make 1,200-byte SRTP packets: a frame is
//! several full FU-A fragments and a shorter last one. The engine core (or the baseline's
//! forwarding thread) runs pinned to the first CPU; the generator (publisher and receivers,
//! one batched-syscalls backend) to the second, sending as fast as a window of packets in
//! flight allows. Each variant runs `--secs` seconds per round after a warm-up; rounds
//! alternate the variants' order; the tables give medians over rounds, and ratios as the
//! median of the per-round ratios.
//!
//! The figure compared is packets per second per fully busy core: forwarded packets per
//! second divided by the forwarding thread's CPU time per second (its own thread clock,
//! which here includes softirq work done in its context), so a core the generator could not
//! saturate is not penalised for it. On loopback the sender's CPU also pays for delivering
//! each datagram to the receiving socket. (Per-CPU busy time from /proc/stat is no help on
//! this VM: it is tick-sampled, counts io_uring waits as iowait, and includes whatever else
//! shares the CPU.)
//!
//! Run: `cargo run --release -p chorus-engine --example video_forward -- [--rounds 5]
//! [--secs 1.5] [--receivers 1,4,9]` (ports 33000-34999 on 127.0.0.1).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chorus_codecs::h264::{Clip, ClipConfig, LayerSpec};
use chorus_engine::runtime::io::sys;
use chorus_engine::runtime::io::syscalls::SyscallIo;
use chorus_engine::runtime::io::{IoSizes, PacketIo, SockId, open_backend};
use chorus_engine::runtime::{CoreId, Engine, EngineConfig, IoKind, Metric, SrtpKey};
use chorus_engine::srtp::{SrtpContext, SrtpSuite};
use rig::local;

mod rig;

const SUITE: SrtpSuite = rig::SUITE;
/// SRTP packet size of a full fragment: RTP header 12 + payload + GCM tag 16.
const PACKET: usize = 1_200;
const PT: u8 = 96;
const SSRC: u32 = 0x5eed_0001;
/// Publisher packets in flight (sent, not yet seen by every receiver) at most.
const WINDOW: u64 = 512;
const ENGINE_PORTS: (u16, u16) = (33_000, 33_099);
const PUBLISHER_PORT: u16 = 34_000;
const SINK_PORT: u16 = 34_010;
const AUDIO_PORT: u16 = 34_100;
const FORWARDER_PORT: u16 = 34_200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The engine: SRTP in, SFU, SRTP out per receiver, io_uring.
    Chorus { gso: bool },
    /// Plain forwarding of the same bytes on an engine I/O backend, no SRTP, no SFU.
    Kernel { io: IoKind, gso: bool },
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Chorus { gso: false } => "chorus",
            Variant::Chorus { gso: true } => "chorus+gso",
            Variant::Kernel {
                io: IoKind::Syscalls,
                gso: false,
            } => "kernel-mmsg",
            Variant::Kernel {
                io: IoKind::Syscalls,
                gso: true,
            } => "kernel-mmsg+gso",
            Variant::Kernel {
                io: IoKind::Uring,
                gso: false,
            } => "kernel-uring",
            Variant::Kernel {
                io: IoKind::Uring,
                gso: true,
            } => "kernel-uring+gso",
        }
    }
}

const VARIANTS: [Variant; 6] = [
    Variant::Chorus { gso: false },
    Variant::Chorus { gso: true },
    Variant::Kernel {
        io: IoKind::Syscalls,
        gso: false,
    },
    Variant::Kernel {
        io: IoKind::Syscalls,
        gso: true,
    },
    Variant::Kernel {
        io: IoKind::Uring,
        gso: false,
    },
    Variant::Kernel {
        io: IoKind::Uring,
        gso: true,
    },
];

/// What one measurement window saw.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// Packets the forwarder sent per second (wall clock).
    forwarded_per_s: f64,
    /// Forwarder thread CPU seconds per second (its own thread clock).
    cpu: f64,
    /// Of `cpu`, the share in user space (the engine's own work; the rest is the kernel's).
    /// Only the engine reports it (0 for the baselines).
    user_share: f64,
    /// Datagrams per GSO send (0 without).
    seg_per_gso: f64,
    /// Packets sent by the forwarder but not received (fraction).
    loss: f64,
}

impl Sample {
    /// Packets per second per fully busy core, by the thread clock.
    fn per_core(&self) -> f64 {
        self.forwarded_per_s / self.cpu.max(1e-9)
    }
}

/// Binds 127.0.0.1:`port` with 8 MiB socket buffers. A socket an io_uring instance had
/// registered is released a moment after the ring is dropped (its teardown runs in a kernel
/// worker), so the previous run's port may still be taken for a few milliseconds.
fn bind(port: u16) -> UdpSocket {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match UdpSocket::bind(local(port)) {
            Ok(s) => {
                let _ = sys::set_socket_buffers(std::os::fd::AsRawFd::as_raw_fd(&s), 8 << 20);
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("bind {port}: {e}"),
        }
    }
}

/// The CPU the engine core (and the kernel baseline's forwarder) runs on: the first the
/// process may use, where `Engine::start` pins core 0.
fn engine_cpu() -> usize {
    sys::allowed_cpus().first().copied().unwrap_or(0)
}

/// The publisher's packets: the clip's frames as RTP, SRTP-protected when `srtp` is set
/// (plain for the kernel baseline, whose payload is then the same size).
struct Publisher {
    frames: Vec<Vec<Vec<u8>>>,
    srtp: Option<SrtpContext>,
    frame: usize,
    seq: u16,
    ts: u32,
    ts_step: u32,
}

impl Publisher {
    fn new(clip: &Clip, srtp: Option<SrtpContext>) -> Publisher {
        let layer = &clip.layers()[0];
        let frames = (layer.frames().iter())
            .map(|f| {
                (f.payloads.iter())
                    .map(|p| {
                        let mut b = vec![0x80, PT | if p.marker { 0x80 } else { 0 }];
                        b.extend_from_slice(&[0; 6]);
                        b.extend_from_slice(&SSRC.to_be_bytes());
                        b.extend_from_slice(&p.data);
                        b
                    })
                    .collect()
            })
            .collect();
        Publisher {
            frames,
            srtp,
            frame: 0,
            seq: 1,
            ts: 0,
            ts_step: clip.timestamp_step(),
        }
    }

    /// Queues the next frame's packets; returns how many.
    fn send_frame(
        &mut self,
        tx: &mut chorus_engine::runtime::io::TxQueue,
        sock: SockId,
        dst: SocketAddr,
    ) -> u64 {
        let frame = &self.frames[self.frame % self.frames.len()];
        self.frame += 1;
        let mut n = 0;
        for pkt in frame {
            let (seq, ts) = (self.seq, self.ts);
            self.seq = self.seq.wrapping_add(1);
            let srtp = &mut self.srtp;
            let queued = tx.send_with(sock, dst, |buf| {
                buf[..pkt.len()].copy_from_slice(pkt);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                buf[4..8].copy_from_slice(&ts.to_be_bytes());
                match srtp {
                    Some(c) => c.protect_rtp(buf, pkt.len()).unwrap_or(0),
                    None => pkt.len() + SUITE.rtp_overhead(),
                }
            });
            n += u64::from(queued);
        }
        self.ts = self.ts.wrapping_add(self.ts_step);
        n
    }
}

/// The generator: the publisher's socket and the N receivers' sockets on one backend.
struct Generator {
    io: SyscallIo,
    publisher: SockId,
    sinks: Vec<SockId>,
    /// Per receiver: a context to check the first packet it gets (SRTP runs), and whether
    /// it was checked.
    checks: Vec<(Option<SrtpContext>, bool)>,
    received: u64,
    bad: u64,
}

impl Generator {
    fn new(n: usize, receiver_keys: Option<&[SrtpKey]>) -> Generator {
        let wake = sys::EventFd::new(false).expect("eventfd");
        let sizes = IoSizes {
            rx_buffers: 1024,
            tx_slots: 4096,
        };
        let mut io = SyscallIo::new(std::os::fd::AsRawFd::as_raw_fd(&wake), sizes, true)
            .expect("generator backend");
        std::mem::forget(wake); // Lives as long as the process; never rung.
        let publisher = io.add_socket(bind(PUBLISHER_PORT)).expect("add socket");
        let sinks = (0..n)
            .map(|i| {
                io.add_socket(bind(SINK_PORT + i as u16))
                    .expect("add socket")
            })
            .collect();
        let checks = (0..n)
            .map(|i| (receiver_keys.map(|k| rig::ctx(&k[i])), false))
            .collect();
        Generator {
            io,
            publisher,
            sinks,
            checks,
            received: 0,
            bad: 0,
        }
    }

    /// Drives the publisher into `dst` until `stop`; calls `mark` at the start and end of
    /// the measured window. Returns (publisher packets sent, receptions) over the window.
    fn run(
        &mut self,
        publisher: &mut Publisher,
        dst: SocketAddr,
        warmup: Duration,
        window: Duration,
        mut mark: impl FnMut(),
    ) -> (u64, u64) {
        let n = self.sinks.len() as u64;
        let start = Instant::now();
        let (mut sent, mut marked, mut base) = (0u64, false, (0u64, 0u64));
        let mut last_progress = Instant::now();
        let mut written_off = 0u64;
        let mut deadline = Instant::now();
        loop {
            let now = Instant::now();
            if !marked && now >= start + warmup {
                mark();
                marked = true;
                base = (sent, self.received);
            }
            if now >= start + warmup + window {
                mark();
                return (sent - base.0, self.received - base.1);
            }
            let seen = self.received / n + written_off;
            if sent.saturating_sub(seen) < WINDOW {
                sent += publisher.send_frame(self.io.tx(), self.publisher, dst);
            } else if last_progress.elapsed() > Duration::from_millis(100) {
                // What is still in flight was lost (a full socket buffer); go on.
                written_off = sent.saturating_sub(self.received / n);
                last_progress = Instant::now();
            }
            // The deadline moves only when passed (no timer re-arm per round).
            while deadline <= now {
                deadline += Duration::from_millis(1);
            }
            let _ = self.io.wait(deadline);
            let before = self.received;
            let (sinks, checks) = (&self.sinks, &mut self.checks);
            let (received, bad) = (&mut self.received, &mut self.bad);
            self.io.drain(&mut |meta, buf, _| {
                let Some(i) = sinks.iter().position(|&s| s == meta.sock) else {
                    return; // RTCP to the publisher.
                };
                if buf.len() < 12 || buf[1] & 0x7f != PT {
                    return; // RTCP to a receiver.
                }
                *received += 1;
                let (c, checked) = &mut checks[i];
                if !*checked {
                    *checked = true;
                    let ok = match c {
                        Some(c) => c.unprotect_rtp(buf).is_ok(),
                        None => buf.len() <= PACKET,
                    };
                    *bad += u64::from(!ok);
                }
            });
            if self.received > before {
                last_progress = Instant::now();
            }
        }
    }
}

fn measure_chorus(clip: &Clip, n: usize, gso: bool, warmup: Duration, window: Duration) -> Sample {
    let engine = Engine::start(EngineConfig {
        cores: 1,
        io: IoKind::Uring,
        media_ports: ENGINE_PORTS,
        pairs_per_core: 1,
        pin_cores: true,
        gso,
        socket_buffer_bytes: 8 << 20,
        ..EngineConfig::default()
    })
    .expect("engine starts");
    let core = CoreId(0);
    let receiver_keys: Vec<SrtpKey> = (0..n).map(|i| rig::key(10 + i as u8)).collect();
    let sinks: Vec<SocketAddr> = (0..n).map(|i| local(SINK_PORT + i as u16)).collect();
    let dst = rig::video_conference(
        &engine,
        rig::Publisher {
            addr: local(PUBLISHER_PORT),
            key: rig::key(1),
            ssrc: SSRC,
            pt: PT,
        },
        &sinks,
        &receiver_keys,
        AUDIO_PORT,
    );
    let mut generator = Generator::new(n, Some(&receiver_keys));
    let mut publisher = Publisher::new(clip, Some(rig::ctx(&rig::key(1))));
    let mut marks = Vec::new();
    let (_, received) = generator.run(&mut publisher, dst, warmup, window, || {
        // Counters are published once per 20 ms tick: wait for a fresh publish.
        std::thread::sleep(Duration::from_millis(25));
        marks.push((Instant::now(), engine.counters(core)));
    });
    assert_eq!(
        generator.bad, 0,
        "a receiver got a packet that does not decrypt"
    );
    if received == 0 {
        let c = engine.counters(core);
        let nonzero: Vec<String> = (Metric::ALL.iter())
            .filter(|&&m| c.get(m) > 0)
            .map(|&m| format!("{}={}", m.name(), c.get(m)))
            .collect();
        panic!("nothing forwarded; engine counters: {}", nonzero.join(" "));
    }
    engine.shutdown();
    let [(t0, c0), (t1, c1)] = marks[..] else {
        unreachable!("two marks")
    };
    let d = |m: Metric| c1.get(m).saturating_sub(c0.get(m)) as f64;
    let secs = (t1 - t0).as_secs_f64();
    let out = d(Metric::VideoOut);
    Sample {
        forwarded_per_s: out / secs,
        cpu: d(Metric::CpuNs) / 1e9 / secs,
        user_share: d(Metric::CpuUserNs) / (d(Metric::CpuUserNs) + d(Metric::CpuSysNs)).max(1.0),
        seg_per_gso: if d(Metric::GsoSends) > 0.0 {
            d(Metric::GsoSegments) / d(Metric::GsoSends)
        } else {
            0.0
        },
        loss: 1.0 - (received as f64 / out.max(1.0)).min(1.0),
    }
}

/// The kernel baseline: a thread pinned where the engine core runs receives with recvmmsg
/// and sends each packet's bytes to every receiver with sendmmsg (the same backend code,
/// GSO per `gso`), no SRTP, no SFU.
fn measure_kernel(
    clip: &Clip,
    n: usize,
    kind: IoKind,
    gso: bool,
    warmup: Duration,
    window: Duration,
) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    let cpu = engine_cpu();
    let (stop2, stats2) = (stop.clone(), stats.clone());
    let sinks: Vec<SocketAddr> = (0..n).map(|i| local(SINK_PORT + i as u16)).collect();
    let sock = bind(FORWARDER_PORT);
    let thread = std::thread::spawn(move || {
        let _ = sys::pin_current_thread(cpu);
        let wake = sys::EventFd::new(false).expect("eventfd");
        let sizes = IoSizes::default();
        let (mut io, fallback) =
            open_backend(kind, std::os::fd::AsRawFd::as_raw_fd(&wake), sizes, gso)
                .expect("forwarder backend");
        assert!(fallback.is_none(), "{kind} unavailable: {fallback:?}");
        let id = io.add_socket(sock).expect("add socket");
        // A deadline that moves only when passed, like the engine's tick, so the timer is
        // not re-armed every round.
        let mut deadline = Instant::now();
        while !stop2.load(Ordering::Relaxed) {
            let now = Instant::now();
            while deadline <= now {
                deadline += Duration::from_millis(10);
            }
            let _ = io.wait(deadline);
            io.drain(&mut |_, buf, tx| {
                for &dst in &sinks {
                    tx.send_copy(id, dst, buf);
                }
            });
            let c = io.counters();
            stats2[0].store(c.tx_packets, Ordering::Relaxed);
            stats2[1].store(sys::thread_cpu_ns(), Ordering::Relaxed);
            stats2[2].store(c.gso_sends, Ordering::Relaxed);
            stats2[3].store(c.gso_segments, Ordering::Relaxed);
        }
        drop(wake);
    });
    let mut generator = Generator::new(n, None);
    let mut publisher = Publisher::new(clip, None);
    let mut marks = Vec::new();
    let (_, received) = generator.run(
        &mut publisher,
        local(FORWARDER_PORT),
        warmup,
        window,
        || {
            std::thread::sleep(Duration::from_millis(25));
            marks.push((
                Instant::now(),
                stats.each_ref().map(|a| a.load(Ordering::Relaxed)),
            ));
        },
    );
    stop.store(true, Ordering::Relaxed);
    thread.join().expect("forwarder thread");
    let [(t0, c0), (t1, c1)] = marks[..] else {
        unreachable!("two marks")
    };
    let d = |i: usize| c1[i].saturating_sub(c0[i]) as f64;
    let secs = (t1 - t0).as_secs_f64();
    Sample {
        forwarded_per_s: d(0) / secs,
        cpu: d(1) / 1e9 / secs,
        user_share: 0.0,
        seg_per_gso: if d(2) > 0.0 { d(3) / d(2) } else { 0.0 },
        loss: 1.0 - (received as f64 / d(0).max(1.0)).min(1.0),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    let mut rounds = 5usize;
    let mut secs = 1.5f64;
    let mut receivers = vec![1usize, 4, 9];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--rounds" => rounds = v.parse().expect("--rounds N"),
            "--secs" => secs = v.parse().expect("--secs S"),
            "--receivers" => {
                receivers = v
                    .split(',')
                    .map(|x| x.parse().expect("--receivers 1,4,9"))
                    .collect()
            }
            other => panic!("unknown argument {other} (--rounds, --secs, --receivers)"),
        }
    }
    assert!(
        receivers.iter().all(|&n| (1..=64).contains(&n)),
        "1..=64 receivers"
    );
    let cpus = sys::allowed_cpus();
    assert!(
        cpus.len() >= 2,
        "needs two CPUs: the engine core and the generator"
    );
    sys::pin_current_thread(cpus[1]).expect("pin the generator");
    let clip = Clip::encode(&ClipConfig {
        seconds: 2,
        fps: 30,
        key_interval_s: 1,
        layers: vec![LayerSpec {
            width: 1_280,
            height: 720,
            bitrate_bps: 1_500_000,
        }],
        max_payload: PACKET - 12 - SUITE.rtp_overhead(),
    })
    .expect("encode the clip");
    let layer = &clip.layers()[0];
    println!(
        "clip: 720p30 H.264 {} frames, {:.1} packets/frame, {} bytes/packet at most (SRTP GCM); \
         engine core on CPU {}, generator on CPU {}; {rounds} rounds x {secs} s",
        layer.frames().len(),
        layer.packets() as f64 / layer.frames().len() as f64,
        PACKET,
        cpus[0],
        cpus[1]
    );
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("load average at start: {}", load());
    let warmup = Duration::from_millis(300);
    let window = Duration::from_secs_f64(secs);
    // samples[n][variant] over rounds.
    let mut samples = vec![vec![Vec::<Sample>::new(); VARIANTS.len()]; receivers.len()];
    for round in 0..rounds {
        for (ni, &n) in receivers.iter().enumerate() {
            for k in 0..VARIANTS.len() {
                // Alternate the order round by round so drift does not favour one variant.
                let vi = if round % 2 == 0 {
                    k
                } else {
                    VARIANTS.len() - 1 - k
                };
                let s = match VARIANTS[vi] {
                    Variant::Chorus { gso } => measure_chorus(&clip, n, gso, warmup, window),
                    Variant::Kernel { io, gso } => {
                        measure_kernel(&clip, n, io, gso, warmup, window)
                    }
                };
                eprintln!(
                    "round {round} N={n} {:<10} {:>9.0} pkt/s at {:>4.0}% CPU = {:>9.0}/core, {:.1} seg/GSO send, loss {:.2}%",
                    VARIANTS[vi].name(),
                    s.forwarded_per_s,
                    s.cpu * 100.0,
                    s.per_core(),
                    s.seg_per_gso,
                    s.loss * 100.0
                );
                samples[ni][vi].push(s);
            }
        }
    }
    let f = |s: &Sample| s.per_core();
    println!();
    println!(
        "Packets/s per busy core, thousands (median of {rounds}), by the forwarding thread's CPU clock:"
    );
    println!();
    println!(
        "| receivers | {} | chorus GSO on/off | chorus / kernel-uring | chorus+gso / kernel-uring+gso | chorus+gso / kernel-mmsg |",
        VARIANTS.map(|v| v.name()).join(" | ")
    );
    println!("|---|{}---|---|---|---|", "---|".repeat(VARIANTS.len()));
    for (ni, &n) in receivers.iter().enumerate() {
        let per: Vec<String> = (0..VARIANTS.len())
            .map(|vi| {
                let mut v: Vec<f64> = samples[ni][vi].iter().map(f).collect();
                format!("{:.0}", median(&mut v) / 1e3)
            })
            .collect();
        // Ratios within a round (back to back), then their median.
        let ratio = |a: usize, b: usize| {
            let mut r: Vec<f64> = (samples[ni][a].iter().zip(&samples[ni][b]))
                .map(|(x, y)| f(x) / f(y).max(1.0))
                .collect();
            median(&mut r)
        };
        println!(
            "| {n} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            per.join(" | "),
            ratio(1, 0),
            ratio(0, 4),
            ratio(1, 5),
            ratio(1, 2)
        );
    }
    println!();
    println!("load average at end: {}", load());
    for (ni, &n) in receivers.iter().enumerate() {
        let all = samples[ni].iter().flatten();
        let loss = all.clone().map(|s| s.loss).fold(0.0, f64::max);
        let busy = all.map(|s| s.cpu).fold(0.0, f64::max);
        let mut seg: Vec<f64> = samples[ni][1].iter().map(|s| s.seg_per_gso).collect();
        let per_packet_us = |vi: usize| {
            let mut v: Vec<f64> = samples[ni][vi].iter().map(|s| 1e6 / s.per_core()).collect();
            let mut u: Vec<f64> = samples[ni][vi].iter().map(|s| s.user_share).collect();
            let t = median(&mut v);
            (t, t * median(&mut u))
        };
        let ((off, off_user), (on, on_user)) = (per_packet_us(0), per_packet_us(1));
        println!(
            "N={n}: CPU per forwarded packet chorus {off:.2} us ({off_user:.2} us user space), \
             chorus+gso {on:.2} us ({on_user:.2} us user space); chorus+gso {:.1} datagrams per \
             GSO send; forwarder thread at most {:.0}% busy; loss at most {:.2}%",
            median(&mut seg),
            busy * 100.0,
            loss * 100.0
        );
    }
}
