//! SRTP protect and unprotect per suite at 172-byte (G.711, 20 ms) and 1,200-byte (video)
//! packets, in packets per second. Baselines in the same run: copying the packet (what a
//! forwarder pays anyway), and the HMAC-SHA1 of ring against RustCrypto's (the reason the CM
//! suites use RustCrypto).
//!
//! Run: `cargo bench --bench srtp`

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_engine::srtp::{SrtpContext, SrtpSuite};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::Mac;

const SUITES: [SrtpSuite; 4] = [
    SrtpSuite::AesCm128HmacSha1_80,
    SrtpSuite::AesCm128HmacSha1_32,
    SrtpSuite::AeadAes128Gcm,
    SrtpSuite::AeadAes256Gcm,
];
const SIZES: [usize; 2] = [172, 1200];
const CHUNK: u64 = 4096;

fn context(suite: SrtpSuite) -> SrtpContext {
    let key: Vec<u8> = (0..suite.master_key_len() as u8).collect();
    let salt: Vec<u8> = (0..suite.master_salt_len() as u8)
        .map(|b| b ^ 0xa5)
        .collect();
    SrtpContext::new(suite, &key, &salt).expect("valid key")
}

fn rtp(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x80;
    p[8..12].copy_from_slice(&0xcafe_babe_u32.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn set_seq(p: &mut [u8], seq: u16) {
    p[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("srtp_{size}B"));
        group.throughput(Throughput::Elements(1));
        group.measurement_time(Duration::from_secs(3));
        let plain = rtp(size);
        let mut buf = vec![0u8; size + 32];

        group.bench_function("copy_baseline", |b| {
            b.iter(|| {
                buf[..size].copy_from_slice(black_box(&plain));
                black_box(&buf);
            })
        });

        for suite in SUITES {
            let name = suite.sdes_name();
            let mut tx = context(suite);
            let mut seq = 0u16;
            group.bench_function(BenchmarkId::new("protect", name), |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    buf[..size].copy_from_slice(&plain);
                    set_seq(&mut buf, seq);
                    black_box(tx.protect_rtp(&mut buf, size).unwrap());
                })
            });

            // Unprotect needs a fresh packet index each time (the replay window rejects
            // repeats): protect chunks outside the timed part, time only the unprotects.
            let mut sender = context(suite);
            let mut receiver = context(suite);
            let mut seq = 0u16;
            group.bench_function(BenchmarkId::new("unprotect", name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let k = left.min(CHUNK);
                        let mut pkts: Vec<Vec<u8>> = (0..k)
                            .map(|_| {
                                seq = seq.wrapping_add(1);
                                let mut p = plain.clone();
                                set_seq(&mut p, seq);
                                p.resize(size + 32, 0);
                                let n = sender.protect_rtp(&mut p, size).unwrap();
                                p.truncate(n);
                                p
                            })
                            .collect();
                        let t = Instant::now();
                        for p in &mut pkts {
                            black_box(receiver.unprotect_rtp(p).unwrap());
                        }
                        total += t.elapsed();
                        left -= k;
                    }
                    total
                })
            });
        }
        group.finish();
    }

    // Why the CM suites use RustCrypto for HMAC-SHA1: the same MAC through both libraries.
    let mut group = c.benchmark_group("hmac_sha1_172B");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    let data = rtp(172);
    let key = [7u8; 20];
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
    group.bench_function("ring", |b| {
        b.iter(|| black_box(ring::hmac::sign(&ring_key, black_box(&data))))
    });
    let rc = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    group.bench_function("rustcrypto", |b| {
        b.iter(|| {
            let mut m = rc.clone();
            m.update(black_box(&data));
            black_box(m.finalize().into_bytes())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
