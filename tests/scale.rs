//! Scale: the engine holds its design target of legs without a socket per leg. Alone in its
//! test binary, so that counting this process's descriptors is not disturbed by other tests.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chorus_engine::runtime::{Command, CoreId, Event, IoKind, LegConfig, LegId, Metric};
use chorus_engine::srtp::SrtpSuite;
use common::{Harness, set_up_call, sorted};

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
