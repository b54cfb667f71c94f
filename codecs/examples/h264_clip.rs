//! Encodes the load generator's simulcast clip (`ClipConfig::simulcast`: 320x180, 640x360 and
//! 1280x720 at 30 fps, a key frame every 2 s) and prints how long it took and what it holds.
//!
//! Run: `cargo run --release -p chorus-codecs --example h264_clip -- [seconds, default 10]`

use chorus_codecs::h264::{Clip, ClipConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u32 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 10,
    };
    let config = ClipConfig::simulcast(seconds);
    let clip = Clip::encode(&config)?;
    println!(
        "{seconds} s at {} fps, key frame every {} frames: encoded in {:.2} s, {} payload bytes",
        clip.fps(),
        clip.key_interval_frames(),
        clip.elapsed().as_secs_f64(),
        clip.bytes()
    );
    println!("layer       frames  keys  packets     bytes  kbit/s (target)  encode ms/frame");
    for layer in clip.layers() {
        let frames = layer.frames().len();
        let keys = layer.frames().iter().filter(|f| f.key).count();
        let kbps = layer.bytes() as f64 * 8.0 / f64::from(seconds) / 1_000.0;
        println!(
            "{:>4}x{:<5} {frames:>7} {keys:>5} {:>8} {:>9} {kbps:>7.0} ({:>5})  {:>15.2}",
            layer.spec.width,
            layer.spec.height,
            layer.packets(),
            layer.bytes(),
            layer.spec.bitrate_bps / 1_000,
            layer.encode_time().as_secs_f64() * 1_000.0 / frames as f64
        );
    }
    Ok(())
}
