//! What "encode once, loop" saves the load generator: per simulcast size (320x180, 640x360,
//! 1280x720 at 30 fps, 150/500/1,500 kbit/s), the CPU time to encode one frame with OpenH264
//! against the time to send one frame of the pre-encoded clip (write each payload behind a
//! fresh 12-byte RTP header into a packet buffer, as the generator does before SRTP), and, for
//! the subscriber side, to reassemble one frame from its packets. In frames per second.
//!
//! Before measuring, a short pass prints the encode-to-loop ratio per size.
//!
//! Times are the benchmark thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`, through
//! `cpu-time`), not wall time: the development machine is shared, and CPU time is what a
//! generator core spends. OpenH264 is built without its NASM assembly unless `nasm` is
//! installed when it is compiled, so encode times are those of its C code.
//!
//! Run: `cargo bench -p chorus-codecs --bench h264 -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_codecs::h264::{
    AccessUnit, Clip, ClipConfig, ClipLayer, Depacketizer, DepacketizerConfig, Encoder,
    EncoderConfig, Picture, Scene,
};
use cpu_time::ThreadTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const FPS: u32 = 30;
/// Pictures rendered per size and cycled through by the encoder.
const PICTURES: u64 = 30;

/// Runs `f` `iters` times and returns the CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = ThreadTime::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

/// Encodes pictures of one layer in a cycle.
struct EncodeLoop {
    encoder: Encoder,
    pictures: Vec<Picture>,
    au: AccessUnit,
    n: u64,
}

impl EncodeLoop {
    fn new(layer: &ClipLayer) -> Self {
        let spec = layer.spec;
        let encoder = Encoder::new(EncoderConfig {
            width: spec.width,
            height: spec.height,
            fps: FPS,
            bitrate_bps: spec.bitrate_bps,
        })
        .expect("valid settings");
        let pictures = (0..PICTURES)
            .map(|n| {
                let mut p = Picture::new(spec.width, spec.height).expect("valid size");
                Scene.render(n, FPS, &mut p);
                p
            })
            .collect();
        EncodeLoop {
            encoder,
            pictures,
            au: AccessUnit::default(),
            n: 0,
        }
    }

    fn step(&mut self) {
        let picture = &self.pictures[(self.n % PICTURES) as usize];
        // A key frame every 2 s, as in the clip.
        let key = self.n.is_multiple_of(u64::from(2 * FPS));
        self.encoder
            .encode(black_box(picture), key, &mut self.au)
            .expect("encodes");
        black_box(&self.au);
        self.n += 1;
    }
}

/// Sends the clip's frames of one layer in a loop: RTP header plus payload per packet.
struct SendLoop<'a> {
    layer: &'a ClipLayer,
    step: u32,
    packet: Vec<u8>,
    n: u64,
    seq: u16,
}

impl<'a> SendLoop<'a> {
    fn new(layer: &'a ClipLayer, step: u32) -> Self {
        SendLoop {
            layer,
            step,
            packet: Vec::with_capacity(1_500),
            n: 0,
            seq: 0,
        }
    }

    fn step(&mut self) {
        let ts = (self.n as u32).wrapping_mul(self.step);
        for p in &self.layer.frame(self.n).payloads {
            self.packet.clear();
            self.packet.push(0x80);
            self.packet.push(u8::from(p.marker) << 7 | 96);
            self.packet.extend_from_slice(&self.seq.to_be_bytes());
            self.packet.extend_from_slice(&ts.to_be_bytes());
            self.packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            self.packet.extend_from_slice(&p.data);
            black_box(&self.packet);
            self.seq = self.seq.wrapping_add(1);
        }
        self.n += 1;
    }
}

fn bench(c: &mut Criterion) {
    let config = ClipConfig {
        seconds: 2,
        fps: FPS,
        key_interval_s: 2,
        ..ClipConfig::simulcast(2)
    };
    let clip = Clip::encode(&config).expect("clip encodes");
    eprintln!(
        "clip: {} frames x {} layers encoded in {:.2} s, {} payload bytes",
        clip.frame_count(),
        clip.layers().len(),
        clip.elapsed().as_secs_f64(),
        clip.bytes()
    );
    let name = |l: &ClipLayer| format!("{}x{}", l.spec.width, l.spec.height);

    for layer in clip.layers() {
        let mut enc = EncodeLoop::new(layer);
        let mut send = SendLoop::new(layer, clip.timestamp_step());
        let encode = cpu_time(PICTURES, || enc.step()).as_secs_f64() / PICTURES as f64;
        let frames = 10 * clip.frame_count() as u64;
        let loop_s = cpu_time(frames, || send.step()).as_secs_f64() / frames as f64;
        eprintln!(
            "{}: encode {:.0} us/frame, loop {:.2} us/frame: encoding costs {:.0}x sending",
            name(layer),
            encode * 1e6,
            loop_s * 1e6,
            encode / loop_s
        );
    }

    let mut group = c.benchmark_group("h264_encode_frame_30fps");
    group.throughput(Throughput::Elements(1));
    for layer in clip.layers() {
        let mut enc = EncodeLoop::new(layer);
        group.bench_function(BenchmarkId::new("size", name(layer)), |b| {
            b.iter_custom(|iters| cpu_time(iters, || enc.step()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("h264_send_clip_frame");
    group.throughput(Throughput::Elements(1));
    for layer in clip.layers() {
        let mut send = SendLoop::new(layer, clip.timestamp_step());
        group.bench_function(BenchmarkId::new("size", name(layer)), |b| {
            b.iter_custom(|iters| cpu_time(iters, || send.step()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("h264_reassemble_frame");
    group.throughput(Throughput::Elements(1));
    for layer in clip.layers() {
        let mut receiver = Depacketizer::new(DepacketizerConfig::default());
        let step = clip.timestamp_step();
        let (mut n, mut seq) = (0u64, 0u16);
        let now = Instant::now();
        group.bench_function(BenchmarkId::new("size", name(layer)), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    let ts = (n as u32).wrapping_mul(step);
                    for p in &layer.frame(n).payloads {
                        receiver.handle_packet(now, seq, ts, p.marker, black_box(&p.data));
                        seq = seq.wrapping_add(1);
                    }
                    while let Some(out) = receiver.poll_frame() {
                        if let chorus_codecs::h264::Reassembled::Frame(au) = out {
                            receiver.recycle(black_box(au));
                        }
                    }
                    n += 1;
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
