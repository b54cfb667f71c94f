//! Shared harness of the end-to-end tests: loopback SRTP peers and a driver for the engine's
//! command and event queues; `sip` runs the `chorus` binary and sipp.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use chorus_engine::runtime::{
    Command, CoreId, Engine, EngineConfig, Event, IoKind, LegConfig, LegId, LegStats, Metric,
    SrtpKey,
};
use chorus_engine::srtp::{SrtpContext, SrtpSuite};

pub mod baresip;
pub mod sip;

/// Deterministic key material, distinct per (leg, direction).
pub fn key(suite: SrtpSuite, seed: u8) -> SrtpKey {
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

pub fn ctx(k: &SrtpKey) -> SrtpContext {
    SrtpContext::new(k.suite, &k.key, &k.salt).expect("valid keys")
}

/// An RTP packet with a payload that names its sender and sequence number.
pub fn rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u16 ^ seq ^ ssrc as u16) as u8));
    p
}

/// A loopback caller: its socket and its two SRTP contexts.
pub struct Peer {
    pub sock: UdpSocket,
    pub ssrc: u32,
    pub tx: SrtpContext,
    pub rx: SrtpContext,
    /// Where the engine listens for this peer's leg.
    pub engine_addr: Option<SocketAddr>,
    /// Sequence numbers received and verified so far.
    pub got: Vec<u16>,
    /// RTCP reports received from the engine (verified SRTCP).
    pub rtcp: u32,
    /// The SSRC the engine sends this peer's leg its media with (the leg's own).
    pub leg_ssrc: u32,
}

impl Peer {
    pub fn new(ssrc: u32, to_engine: &SrtpKey, from_engine: &SrtpKey) -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Peer {
            sock,
            ssrc,
            tx: ctx(to_engine),
            rx: ctx(from_engine),
            engine_addr: None,
            leg_ssrc: 0,
            got: Vec::new(),
            rtcp: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Protects and sends packet `seq`; returns the wire bytes (for replaying them later).
    pub fn send(&mut self, seq: u16) -> Vec<u8> {
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
    pub fn receive_for(&mut self, from_ssrc: u32, want: usize, quiet: Duration) -> Vec<u16> {
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
            // Payload and numbering of the sender, under the SSRC of this peer's own leg.
            let mut want = rtp(from_ssrc, seq, 160);
            want[8..12].copy_from_slice(&self.leg_ssrc.to_be_bytes());
            assert_eq!(&buf[..len], &want[..], "packet {seq} arrived altered");
            self.got.push(seq);
        }
        std::mem::take(&mut self.got)
    }

    pub fn receive(&mut self, from_ssrc: u32, want: usize) -> Vec<u16> {
        self.receive_for(from_ssrc, want, Duration::from_secs(1))
    }

    /// Takes what has arrived so far without waiting long, keeping it for `receive`.
    pub fn collect(&mut self, from_ssrc: u32) {
        let got = self.receive_for(from_ssrc, usize::MAX, Duration::from_millis(1));
        self.got = got;
    }
}

pub struct Harness {
    pub engine: Engine,
    pub created: HashMap<LegId, SocketAddr>,
}

impl Harness {
    pub fn start(io: IoKind, ports: (u16, u16)) -> Harness {
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

    pub fn send(&self, core: CoreId, cmd: Command) {
        self.engine.send(core, cmd).expect("queue has room");
    }

    /// Waits for an event matching `pred`, keeping LegCreated addresses on the way.
    pub fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
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

    pub fn create(&mut self, core: CoreId, cfg: LegConfig) -> SocketAddr {
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

    pub fn stats(&mut self, core: CoreId, id: LegId) -> LegStats {
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
pub struct Call {
    pub core: CoreId,
    pub a: Peer,
    pub b: Peer,
    pub leg_a: LegId,
    pub leg_b: LegId,
}

pub fn set_up_call(
    h: &mut Harness,
    core: CoreId,
    base: u32,
    suite: SrtpSuite,
    latch_b: bool,
) -> Call {
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
    a.leg_ssrc = cfg_a.local_ssrc;
    b.leg_ssrc = cfg_b.local_ssrc;
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

/// The nonzero counters of a core, for failure messages.
pub fn describe(c: &chorus_engine::runtime::Counters) -> String {
    Metric::ALL
        .iter()
        .filter(|m| c.get(**m) != 0)
        .map(|m| format!("{}={}", m.name(), c.get(*m)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v
}
