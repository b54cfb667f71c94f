//! End to end through the media engine: legs on two cores created through the command queues,
//! SRTP between loopback peers forwarded through the engine in both I/O backends, every packet
//! checked at the far end, replayed and forged packets dropped and counted.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use chorus_engine::runtime::{
    Command, CoreId, Engine, EngineConfig, Event, IoKind, LegConfig, LegId, LegStats, Metric,
    SrtpKey,
};
use chorus_engine::srtp::{SrtpContext, SrtpSuite};

/// Deterministic key material, distinct per (leg, direction).
fn key(suite: SrtpSuite, seed: u8) -> SrtpKey {
    let mk = |len: usize, salt: u8| -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7) ^ salt)
            .collect()
    };
    SrtpKey {
        suite,
        key: mk(suite.master_key_len(), 0),
        salt: mk(suite.master_salt_len(), 0x5a),
    }
}

fn ctx(k: &SrtpKey) -> SrtpContext {
    SrtpContext::new(k.suite, &k.key, &k.salt).expect("valid keys")
}

/// An RTP packet with a payload that names its sender and sequence number.
fn rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u16 ^ seq ^ ssrc as u16) as u8));
    p
}

/// A loopback caller: its socket and its two SRTP contexts.
struct Peer {
    sock: UdpSocket,
    ssrc: u32,
    tx: SrtpContext,
    rx: SrtpContext,
    /// Where the engine listens for this peer's leg.
    engine_addr: Option<SocketAddr>,
    /// Sequence numbers received and verified so far.
    got: Vec<u16>,
    /// RTCP reports received from the engine (verified SRTCP).
    rtcp: u32,
}

impl Peer {
    fn new(ssrc: u32, to_engine: &SrtpKey, from_engine: &SrtpKey) -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Peer {
            sock,
            ssrc,
            tx: ctx(to_engine),
            rx: ctx(from_engine),
            engine_addr: None,
            got: Vec::new(),
            rtcp: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Protects and sends packet `seq`; returns the wire bytes (for replaying them later).
    fn send(&mut self, seq: u16) -> Vec<u8> {
        let mut buf = rtp(self.ssrc, seq, 160);
        let n = buf.len();
        buf.resize(n + 32, 0);
        let len = self.tx.protect_rtp(&mut buf, n).unwrap();
        buf.truncate(len);
        self.sock
            .send_to(&buf, self.engine_addr.expect("leg created"))
            .unwrap();
        buf
    }

    /// Receives until `want` packets arrived in all, or `quiet` passes without one; checks
    /// each packet and returns every sequence number received so far.
    fn receive_for(&mut self, from_ssrc: u32, want: usize, quiet: Duration) -> Vec<u16> {
        let mut buf = [0u8; 2048];
        let mut last = Instant::now();
        while self.got.len() < want && last.elapsed() < quiet {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            last = Instant::now();
            if (200..=206).contains(&buf[1]) {
                // The engine's periodic RTCP report: must be valid SRTCP from this leg's keys.
                self.rx
                    .unprotect_rtcp(&mut buf[..n])
                    .expect("engine RTCP must authenticate with the leg's keys");
                self.rtcp += 1;
                continue;
            }
            let len = self
                .rx
                .unprotect_rtp(&mut buf[..n])
                .expect("engine output must authenticate with the leg's keys");
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            assert_eq!(
                &buf[..len],
                &rtp(from_ssrc, seq, 160)[..],
                "packet {seq} arrived altered"
            );
            self.got.push(seq);
        }
        std::mem::take(&mut self.got)
    }

    fn receive(&mut self, from_ssrc: u32, want: usize) -> Vec<u16> {
        self.receive_for(from_ssrc, want, Duration::from_secs(1))
    }

    /// Takes what has arrived so far without waiting long, keeping it for `receive`.
    fn collect(&mut self, from_ssrc: u32) {
        let got = self.receive_for(from_ssrc, usize::MAX, Duration::from_millis(1));
        self.got = got;
    }
}

struct Harness {
    engine: Engine,
    created: HashMap<LegId, SocketAddr>,
}

impl Harness {
    fn start(io: IoKind, ports: (u16, u16)) -> Harness {
        let engine = Engine::start(EngineConfig {
            cores: 2,
            io,
            media_ports: ports,
            pairs_per_core: 1,
            pin_cores: false,
            ..EngineConfig::default()
        })
        .expect("engine starts");
        assert_eq!(engine.core_count(), 2);
        // io_uring is available on this kernel; the test must exercise the backend it asked for.
        assert_eq!(engine.io_kind(CoreId(0)), Some(io));
        Harness {
            engine,
            created: HashMap::new(),
        }
    }

    fn send(&self, core: CoreId, cmd: Command) {
        self.engine.send(core, cmd).expect("queue has room");
    }

    /// Waits for an event matching `pred`, keeping LegCreated addresses on the way.
    fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            while let Some((_, ev)) = self.engine.poll_event() {
                if let Event::LegCreated { id, rtp, .. } = &ev {
                    self.created.insert(*id, *rtp);
                }
                if pred(&ev) {
                    return ev;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.engine.wait_events(Duration::from_millis(50));
        }
    }

    fn create(&mut self, core: CoreId, cfg: LegConfig) -> SocketAddr {
        let id = cfg.id;
        self.send(core, Command::CreateLeg(Box::new(cfg)));
        match self.wait_for("LegCreated", |e| {
            matches!(e, Event::LegCreated { id: i, .. } | Event::LegRejected { id: i, .. } if *i == id)
        }) {
            Event::LegCreated { rtp, core: c, .. } => {
                assert_eq!(c, core);
                rtp
            }
            other => panic!("leg {id} not created: {other:?}"),
        }
    }

    fn stats(&mut self, core: CoreId, id: LegId) -> LegStats {
        self.send(core, Command::QueryLeg(id));
        match self.wait_for(
            "LegStats",
            |e| matches!(e, Event::LegStats { id: i, .. } if *i == id),
        ) {
            Event::LegStats { stats, .. } => stats,
            _ => unreachable!(),
        }
    }
}

/// One bridged call on one core: peers A and B, legs `base` and `base + 1`.
struct Call {
    core: CoreId,
    a: Peer,
    b: Peer,
    leg_a: LegId,
    leg_b: LegId,
}

fn set_up_call(h: &mut Harness, core: CoreId, base: u32, suite: SrtpSuite, latch_b: bool) -> Call {
    let seed = base as u8;
    let (a_in, a_out) = (key(suite, seed), key(suite, seed + 1));
    let (b_in, b_out) = (key(suite, seed + 2), key(suite, seed + 3));
    let mut a = Peer::new(0xa000_0000 + base, &a_in, &a_out);
    let mut b = Peer::new(0xb000_0000 + base, &b_in, &b_out);
    let (leg_a, leg_b) = (LegId(base), LegId(base + 1));
    let mut cfg_a = LegConfig::new(leg_a);
    cfg_a.remote_rtp = Some(a.addr());
    cfg_a.srtp_in = Some(a_in);
    cfg_a.srtp_out = Some(a_out);
    cfg_a.latch = false;
    let mut cfg_b = LegConfig::new(leg_b);
    // B is "behind NAT": the engine learns its address from its first authenticated packet.
    cfg_b.remote_rtp = if latch_b { None } else { Some(b.addr()) };
    cfg_b.srtp_in = Some(b_in);
    cfg_b.srtp_out = Some(b_out);
    a.engine_addr = Some(h.create(core, cfg_a));
    b.engine_addr = Some(h.create(core, cfg_b));
    h.send(
        core,
        Command::Connect {
            from: leg_a,
            to: leg_b,
        },
    );
    h.send(
        core,
        Command::Connect {
            from: leg_b,
            to: leg_a,
        },
    );
    // Commands are handled in order: once this answer arrives, both connects are in place.
    h.stats(core, leg_b);
    if latch_b {
        // B speaks first; the engine latches to it and forwards to A.
        b.send(0);
        h.wait_for(
            "Latched",
            |e| matches!(e, Event::Latched { id, remote } if *id == leg_b && *remote == b.addr()),
        );
        assert_eq!(a.receive(b.ssrc, 1), vec![0]);
    }
    Call {
        core,
        a,
        b,
        leg_a,
        leg_b,
    }
}

fn run(io: IoKind, ports: (u16, u16)) {
    let mut h = Harness::start(io, ports);
    let mut calls = vec![
        set_up_call(&mut h, CoreId(0), 10, SrtpSuite::AesCm128HmacSha1_80, false),
        set_up_call(&mut h, CoreId(0), 20, SrtpSuite::AesCm128HmacSha1_32, true),
        set_up_call(&mut h, CoreId(1), 30, SrtpSuite::AeadAes128Gcm, true),
        set_up_call(&mut h, CoreId(1), 40, SrtpSuite::AeadAes256Gcm, false),
    ];
    const N: u16 = 300;
    let mut wire_a: Vec<Vec<u8>> = Vec::new();
    // Both directions of every call at once, paced in bursts of 20 so loopback buffers hold.
    for chunk in (1..=N).collect::<Vec<_>>().chunks(20) {
        for c in &mut calls {
            for &seq in chunk {
                let w = c.a.send(seq);
                if c.leg_a == LegId(10) {
                    wire_a.push(w);
                }
                c.b.send(seq);
            }
        }
        for c in &mut calls {
            let (a_ssrc, b_ssrc) = (c.a.ssrc, c.b.ssrc);
            c.a.collect(b_ssrc);
            c.b.collect(a_ssrc);
        }
    }
    for c in &mut calls {
        let at_b = c.b.receive(c.a.ssrc, N as usize);
        let at_a = c.a.receive(c.b.ssrc, N as usize);
        let all: Vec<u16> = (1..=N).collect();
        let counters = describe(&h.engine.counters(c.core));
        assert_eq!(
            sorted(at_b),
            all,
            "{io}: A->B on {} lost or duplicated packets; {counters}",
            c.core
        );
        assert_eq!(
            sorted(at_a),
            all,
            "{io}: B->A on {} lost or duplicated packets; {counters}",
            c.core
        );
    }

    // Replays: 10 packets A already sent, sent again verbatim.
    let c0 = &mut calls[0];
    let dst = c0.a.engine_addr.unwrap();
    for w in wire_a.iter().take(10) {
        c0.a.sock.send_to(w, dst).unwrap();
    }
    // Forgeries: valid packets with one payload byte flipped after protection.
    for seq in N + 1..=N + 10 {
        let mut w = rtp(c0.a.ssrc, seq, 160);
        let n = w.len();
        w.resize(n + 32, 0);
        let len = c0.a.tx.protect_rtp(&mut w, n).unwrap();
        w[20] ^= 0x01;
        c0.a.sock.send_to(&w[..len], dst).unwrap();
    }
    // Then one good packet, which must still get through: bad input did not hurt the call.
    c0.a.send(N + 11);
    assert_eq!(
        c0.b.receive(c0.a.ssrc, 2),
        vec![N + 11],
        "{io}: only the good packet"
    );

    let sa = h.stats(CoreId(0), LegId(10));
    assert_eq!(sa.replayed, 10, "{io}: replays counted on the leg");
    assert_eq!(sa.auth_failed, 10, "{io}: forgeries counted on the leg");
    assert_eq!(sa.rtp_in, u64::from(N) + 1);
    let sb = h.stats(CoreId(0), LegId(11));
    assert_eq!(sb.rtp_out, u64::from(N) + 1);
    assert_eq!(sb.replayed + sb.auth_failed, 0);

    // Core counters are published each tick.
    std::thread::sleep(Duration::from_millis(60));
    let c = h.engine.counters(CoreId(0));
    assert_eq!(c.get(Metric::DropReplayed), 10);
    assert_eq!(c.get(Metric::DropAuthFailed), 10);
    assert!(c.get(Metric::Forwarded) >= 4 * u64::from(N));
    assert!(c.get(Metric::Ticks) > 0);
    assert_eq!(c.get(Metric::Legs), 4);

    // Removing legs reports their final counters.
    for c in &calls {
        h.send(c.core, Command::RemoveLeg(c.leg_a));
        h.send(c.core, Command::RemoveLeg(c.leg_b));
    }
    let mut left: Vec<LegId> = calls.iter().flat_map(|c| [c.leg_a, c.leg_b]).collect();
    while !left.is_empty() {
        if let Event::LegRemoved { id, .. } =
            h.wait_for("LegRemoved", |e| matches!(e, Event::LegRemoved { .. }))
        {
            left.retain(|l| *l != id);
        }
    }
    h.engine.shutdown();
}

/// The nonzero counters of a core, for failure messages.
fn describe(c: &chorus_engine::runtime::Counters) -> String {
    Metric::ALL
        .iter()
        .filter(|m| c.get(**m) != 0)
        .map(|m| format!("{}={}", m.name(), c.get(*m)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v
}

#[test]
fn srtp_through_two_cores_io_uring() {
    run(IoKind::Uring, (42_000, 42_099));
}

#[test]
fn srtp_through_two_cores_syscalls() {
    run(IoKind::Syscalls, (42_100, 42_199));
}

/// 10,000 legs (the target per server) on two cores: each core serves them from a few
/// sockets, far inside the 20,000 open-file limit, and media still flows.
#[test]
fn ten_thousand_legs_fit_in_a_few_sockets() {
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    let mut h = Harness::start(IoKind::Uring, (42_200, 42_299));
    const LEGS: u32 = 10_000;
    let mut pending = 0;
    for i in 0..LEGS {
        let mut cfg = LegConfig::new(LegId(1000 + i));
        // Distinct remote addresses across 127.0.0.0/8; no traffic goes to them.
        let ip = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250) as u8 + 1);
        cfg.remote_rtp = Some(SocketAddr::from((ip, 40_000)));
        cfg.latch = false;
        h.send(CoreId((i % 2) as u16), Command::CreateLeg(Box::new(cfg)));
        pending += 1;
        // Keep within the queue capacity: wait for a batch to be created.
        if pending == 2000 {
            while h.created.len() < (i + 1) as usize {
                h.wait_for("LegCreated", |e| matches!(e, Event::LegCreated { .. }));
            }
            pending = 0;
        }
    }
    while h.created.len() < LEGS as usize {
        h.wait_for("LegCreated", |e| matches!(e, Event::LegCreated { .. }));
    }
    // Media still flows with all of them present.
    let mut call = set_up_call(&mut h, CoreId(1), 50, SrtpSuite::AeadAes128Gcm, false);
    for seq in 1..=20 {
        call.a.send(seq);
    }
    assert_eq!(
        sorted(call.b.receive(call.a.ssrc, 20)),
        (1..=20).collect::<Vec<_>>()
    );
    let opened = fds() - before;
    // Per core: 2 sockets (one RTP/RTCP pair), eventfd, ring or epoll+timerfd; plus the
    // test's own peer sockets.
    assert!(opened < 32, "{opened} descriptors for 10,000 legs");
    std::thread::sleep(Duration::from_millis(60));
    let legs: u64 = (0..2)
        .map(|c| h.engine.counters(CoreId(c)).get(Metric::Legs))
        .sum();
    assert_eq!(legs, u64::from(LEGS) + 2);
    h.engine.shutdown();
}
