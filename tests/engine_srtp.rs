//! End to end through the media engine: legs on two cores created through the command queues,
//! SRTP between loopback peers forwarded through the engine in both I/O backends, every packet
//! checked at the far end, replayed and forged packets dropped and counted.

mod common;

use std::time::Duration;

use chorus_engine::runtime::{Command, CoreId, Event, IoKind, LegId, Metric};
use chorus_engine::srtp::SrtpSuite;
use common::{Harness, describe, rtp, set_up_call, sorted};

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

#[test]
fn srtp_through_two_cores_io_uring() {
    run(IoKind::Uring, (42_000, 42_099));
}

#[test]
fn srtp_through_two_cores_syscalls() {
    run(IoKind::Syscalls, (42_100, 42_199));
}

/// Garbage at the media ports (random bytes, truncated and bit-flipped SRTP, from the caller's
/// own address and from strangers) interleaved with a live call: every good packet still
/// arrives intact, and the garbage is dropped and counted.
#[test]
fn garbage_does_not_hurt_a_call() {
    let mut h = common::Harness::start(IoKind::Uring, (42_300, 42_399));
    let mut call = set_up_call(&mut h, CoreId(0), 60, SrtpSuite::AeadAes128Gcm, false);
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = call.a.engine_addr.unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const N: u16 = 200;
    for seq in 1..=N {
        let good = call.a.send(seq);
        for _ in 0..5 {
            let r = next();
            let bad: Vec<u8> = match r % 4 {
                // Random bytes of random length.
                0 => (0..(r >> 8) % 1400).map(|_| next() as u8).collect(),
                // The good packet truncated.
                1 => good[..(r >> 8) as usize % good.len()].to_vec(),
                // The good packet with one bit flipped.
                2 => {
                    let mut b = good.clone();
                    let i = (r >> 8) as usize % b.len();
                    b[i] ^= 1 << ((r >> 20) % 8);
                    b
                }
                // RTP-looking header with garbage after it.
                _ => {
                    let mut b = vec![0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
                    b.extend((0..(r >> 8) % 300).map(|_| next() as u8));
                    b
                }
            };
            let from = if r & 0x100 == 0 {
                &call.a.sock
            } else {
                &stranger
            };
            from.send_to(&bad, dst).unwrap();
        }
        if seq % 20 == 0 {
            let a_ssrc = call.a.ssrc;
            call.b.collect(a_ssrc);
        }
    }
    let got = call.b.receive(call.a.ssrc, N as usize);
    assert_eq!(
        sorted(got),
        (1..=N).collect::<Vec<_>>(),
        "every good packet, intact"
    );
    std::thread::sleep(Duration::from_millis(60));
    let c = h.engine.counters(CoreId(0));
    let dropped: u64 = [
        Metric::DropNotRtp,
        Metric::DropUnknownFlow,
        Metric::DropMalformed,
        Metric::DropAuthFailed,
        Metric::DropReplayed,
    ]
    .iter()
    .map(|m| c.get(*m))
    .sum();
    assert!(
        dropped >= 900,
        "garbage dropped and counted: {}",
        describe(&c)
    );
    h.engine.shutdown();
}
