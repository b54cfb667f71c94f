//! What GSO planning costs a core per loop iteration: `TxPlanner::plan` over a transmit
//! queue, against leaving the queue as it is (GSO off: one send per datagram, the planner
//! only lists them), in the same run.
//!
//! - `audio_tick`: the mix tick of 1,000 legs, one 172-byte datagram to each (no two to one
//!   destination, so nothing is regrouped): the audio path's added cost.
//! - `video_frame`: one forwarded frame, 6 packets (5 x 1,200 bytes and a 700-byte tail) to
//!   each of 9 receivers, queued as the router fans out (packet 1 to each, packet 2 to
//!   each...): regrouped into 9 GSO sends.
//!
//! Throughput is datagrams planned per second.
//!
//! Run: `cargo bench -p chorus-engine --bench tx_plan -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;

use chorus_engine::runtime::io::{SockId, TxEntry, TxPlanner};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn entry(slot: u32, port: u16, len: u16) -> TxEntry {
    TxEntry {
        slot,
        sock: SockId(0),
        dst: SocketAddr::from(([10, 0, (port >> 8) as u8, port as u8], port)),
        len,
    }
}

fn bench(c: &mut Criterion) {
    let audio: Vec<TxEntry> = (0..1_000)
        .map(|i| entry(i, 20_000 + i as u16, 172))
        .collect();
    let video: Vec<TxEntry> = (0..6u32)
        .flat_map(|p| {
            (0..9u32).map(move |r| {
                entry(
                    p * 9 + r,
                    30_000 + r as u16,
                    if p < 5 { 1_200 } else { 700 },
                )
            })
        })
        .collect();
    for (name, queue) in [("audio_tick", &audio), ("video_frame", &video)] {
        let mut g = c.benchmark_group(format!("tx_plan/{name}"));
        g.throughput(Throughput::Elements(queue.len() as u64));
        for gso in [false, true] {
            let mut planner = TxPlanner::default();
            let mut q = queue.clone();
            g.bench_function(if gso { "gso_on" } else { "gso_off" }, |b| {
                b.iter(|| {
                    q.clear();
                    q.extend_from_slice(queue);
                    black_box(planner.plan(&mut q, gso).len())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
