//! End to end over 127.0.0.1: a publisher's H.264 frames (several equal-size FU-A packets
//! each, SRTP AEAD_AES_128_GCM) forwarded by a running engine to two receivers, with UDP
//! GSO on and off. Each receiver must decrypt every packet, in order, unchanged; with GSO on,
//! the core must have sent frames as GSO sends, and with it off, none.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use chorus_codecs::h264::{AccessUnit, Packetizer};
use chorus_engine::runtime::io::syscalls::SyscallIo;
use chorus_engine::runtime::io::{IoSizes, PacketIo, sys};
use chorus_engine::runtime::{CoreId, Engine, EngineConfig, Metric, SrtpKey};

#[path = "../examples/video_forward/rig.rs"]
mod rig;

const PT: u8 = 96;
const SSRC: u32 = 0x0bad_cafe;
const FRAMES: usize = 8;

/// The plain RTP packets of the test's frames: an IDR, then P frames of growing size, each
/// packetized into FU-A fragments that make 1,200-byte SRTP packets (the last shorter).
fn frames() -> Vec<Vec<Vec<u8>>> {
    let packetizer = Packetizer::new(1_200 - 12 - rig::SUITE.rtp_overhead()).unwrap();
    let mut seq = 7u16;
    (0..FRAMES)
        .map(|k| {
            let mut nal = vec![if k == 0 { 0x65 } else { 0x41 }];
            nal.extend((0..3_000 + 500 * k).map(|i| (i * 31 + k) as u8));
            let mut au = AccessUnit::default();
            au.push_nal(&nal);
            let mut payloads = Vec::new();
            packetizer.packetize(&au, &mut payloads).unwrap();
            (payloads.iter())
                .map(|p| {
                    let mut b = vec![0x80, PT | if p.marker { 0x80 } else { 0 }];
                    b.extend_from_slice(&seq.to_be_bytes());
                    b.extend_from_slice(&(3_000 * k as u32).to_be_bytes());
                    b.extend_from_slice(&SSRC.to_be_bytes());
                    b.extend_from_slice(&p.data);
                    seq = seq.wrapping_add(1);
                    b
                })
                .collect()
        })
        .collect()
}

/// Runs the frames through an engine; returns, per receiver, the RTP packets it decrypted,
/// and the engine core's (gso_sends, gso_segments, tx_errors).
fn forward(gso: bool, base: u16) -> (Vec<Vec<Vec<u8>>>, [u64; 3]) {
    let engine = Engine::start(EngineConfig {
        cores: 1,
        media_ports: (base, base + 9),
        pairs_per_core: 1,
        pin_cores: false,
        gso,
        ..EngineConfig::default()
    })
    .unwrap();
    let receivers: Vec<UdpSocket> = (0..2)
        .map(|i| {
            let s = UdpSocket::bind(rig::local(base + 11 + i)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .collect();
    let addrs: Vec<SocketAddr> = receivers.iter().map(|s| s.local_addr().unwrap()).collect();
    let keys: Vec<SrtpKey> = vec![rig::key(21), rig::key(22)];
    let publisher = rig::Publisher {
        addr: rig::local(base + 10),
        key: rig::key(20),
        ssrc: SSRC,
        pt: PT,
    };
    let mut up = rig::ctx(&publisher.key);
    let dst = rig::video_conference(&engine, publisher, &addrs, &keys, base + 20);
    // The publisher sends each frame in one GSO send itself, so a whole frame reaches the
    // engine's socket at once, as from a real encoder's burst.
    let wake = sys::EventFd::new(true).unwrap();
    let mut sender = SyscallIo::new(wake.as_raw_fd(), IoSizes::default(), true).unwrap();
    let sock = sender
        .add_socket(UdpSocket::bind(rig::local(base + 10)).unwrap())
        .unwrap();
    let frames = frames();
    for frame in &frames {
        for pkt in frame {
            assert!(sender.tx().send_with(sock, dst, |buf| {
                buf[..pkt.len()].copy_from_slice(pkt);
                up.protect_rtp(buf, pkt.len()).unwrap()
            }));
        }
        sender.wait(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let total: usize = frames.iter().map(Vec::len).sum();
    let mut got = vec![Vec::new(), Vec::new()];
    let mut buf = [0u8; 2048];
    for (r, s) in receivers.iter().enumerate() {
        let mut down = rig::ctx(&keys[r]);
        while got[r].len() < total {
            let n = s
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("receiver {r}: {} of {total}: {e}", got[r].len()));
            if buf[1] & 0x7f != PT {
                continue; // RTCP.
            }
            let m = down.unprotect_rtp(&mut buf[..n]).expect("decrypts");
            got[r].push(buf[..m].to_vec());
        }
    }
    std::thread::sleep(Duration::from_millis(60)); // A tick publishes the counters.
    let c = engine.counters(CoreId(0));
    let counters = [
        c.get(Metric::GsoSends),
        c.get(Metric::GsoSegments),
        c.get(Metric::TxErrors),
    ];
    engine.shutdown();
    (got, counters)
}

#[test]
fn video_frames_forwarded_with_and_without_gso_arrive_whole_and_in_order() {
    let sent: Vec<Vec<u8>> = frames().into_iter().flatten().collect();
    for (gso, base) in [(true, 33_500), (false, 33_540)] {
        let (got, [sends, segments, errors]) = forward(gso, base);
        for (r, packets) in got.iter().enumerate() {
            assert_eq!(packets.len(), sent.len(), "gso={gso} receiver {r}");
            let mut last_seq = None;
            for (k, (p, s)) in packets.iter().zip(&sent).enumerate() {
                // The consumer rewrites SSRC and sequence numbers, nothing else.
                assert_eq!(p.len(), s.len(), "gso={gso} receiver {r} packet {k}");
                assert_eq!(
                    p[1], s[1],
                    "gso={gso} receiver {r} packet {k}: PT and marker"
                );
                assert_eq!(
                    p[4..8],
                    s[4..8],
                    "gso={gso} receiver {r} packet {k}: timestamp"
                );
                assert_eq!(
                    p[12..],
                    s[12..],
                    "gso={gso} receiver {r} packet {k}: payload"
                );
                let seq = u16::from_be_bytes([p[2], p[3]]);
                if let Some(l) = last_seq {
                    assert_eq!(
                        seq,
                        u16::wrapping_add(l, 1),
                        "gso={gso} receiver {r}: in order"
                    );
                }
                last_seq = Some(seq);
            }
        }
        assert_eq!(errors, 0, "gso={gso}");
        if gso {
            assert!(sends >= 1, "frames went out as GSO sends");
            // Most of what was forwarded left inside GSO sends (a frame's packets to one
            // receiver together), not one datagram per send.
            let forwarded: u64 = got.iter().map(|r| r.len() as u64).sum();
            assert!(
                2 * segments >= forwarded,
                "{segments} of {forwarded} datagrams in {sends} GSO sends"
            );
        } else {
            assert_eq!(
                (sends, segments),
                (0, 0),
                "GSO off sends one datagram per send"
            );
        }
    }
}
