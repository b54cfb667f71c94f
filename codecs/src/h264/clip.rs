//! [`Clip`]: the synthetic scene encoded once at several sizes (simulcast) and packetized,
//! for a load generator to loop without encoding at run time.

use std::time::{Duration, Instant};

use super::{
    AccessUnit, Encoder, EncoderConfig, H264Error, Packetizer, Payload, Picture, RTP_CLOCK_RATE,
    Scene,
};

/// One simulcast layer's size and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
}

/// What to encode into a [`Clip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipConfig {
    /// Length in seconds; a whole number of key-frame intervals, so the loop point (back to
    /// frame 0) keeps the key-frame cadence.
    pub seconds: u32,
    /// Frames per second (dividing 90,000).
    pub fps: u32,
    /// Seconds between key frames, the same frames in every layer.
    pub key_interval_s: u32,
    /// The simulcast layers, usually smallest first.
    pub layers: Vec<LayerSpec>,
    /// Largest RTP payload in bytes.
    pub max_payload: usize,
}

impl ClipConfig {
    /// The usual three-layer simulcast: 320x180 at 150 kbit/s, 640x360 at 500 kbit/s and
    /// 1280x720 at 1.5 Mbit/s, 30 fps, a key frame every 2 s, 1,200-byte payloads, `seconds`
    /// long.
    pub fn simulcast(seconds: u32) -> Self {
        ClipConfig {
            seconds,
            fps: 30,
            key_interval_s: 2,
            layers: vec![
                LayerSpec {
                    width: 320,
                    height: 180,
                    bitrate_bps: 150_000,
                },
                LayerSpec {
                    width: 640,
                    height: 360,
                    bitrate_bps: 500_000,
                },
                LayerSpec {
                    width: 1_280,
                    height: 720,
                    bitrate_bps: 1_500_000,
                },
            ],
            max_payload: 1_200,
        }
    }

    fn validate(&self) -> Result<(), H264Error> {
        if self.layers.is_empty() {
            return Err(H264Error::Clip("no layers"));
        }
        if self.seconds == 0 || self.key_interval_s == 0 {
            return Err(H264Error::Clip("zero length or key-frame interval"));
        }
        if !self.seconds.is_multiple_of(self.key_interval_s) {
            return Err(H264Error::Clip(
                "length is not a whole number of key-frame intervals",
            ));
        }
        Ok(())
    }
}

/// One frame of one layer, packetized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipFrame {
    /// Whether it is a key frame (IDR with SPS and PPS).
    pub key: bool,
    /// Its RTP payloads in order, the last with the marker bit.
    pub payloads: Vec<Payload>,
}

impl ClipFrame {
    /// Payload bytes of the frame.
    pub fn bytes(&self) -> usize {
        self.payloads.iter().map(|p| p.data.len()).sum()
    }
}

/// One simulcast layer of a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipLayer {
    /// Its size and target bitrate.
    pub spec: LayerSpec,
    frames: Vec<ClipFrame>,
    encode_time: Duration,
}

impl ClipLayer {
    /// Its frames in order.
    pub fn frames(&self) -> &[ClipFrame] {
        &self.frames
    }

    /// Frame `n` of the endless loop (frame `n` modulo the clip's length).
    pub fn frame(&self, n: u64) -> &ClipFrame {
        // INVARIANT: a clip has at least one frame per layer (validated length > 0).
        &self.frames[(n % self.frames.len() as u64) as usize]
    }

    /// Payload bytes of all its frames.
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(ClipFrame::bytes).sum()
    }

    /// RTP payloads of all its frames.
    pub fn packets(&self) -> usize {
        self.frames.iter().map(|f| f.payloads.len()).sum()
    }

    /// Wall time of this layer's encoder calls (rendering and packetizing excluded).
    pub fn encode_time(&self) -> Duration {
        self.encode_time
    }
}

/// The synthetic scene encoded once per layer and packetized: every layer has the same
/// number of frames, key frames on the same frames (frame 0 and every `key_interval_s`), so
/// a sender loops `frame(n)` forever and a switch between layers at a key frame is clean. The
/// sender writes the RTP headers: sequence numbers run on across the loop, and the timestamp
/// advances by [`Clip::timestamp_step`] per frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    fps: u32,
    key_interval_frames: u32,
    layers: Vec<ClipLayer>,
    elapsed: Duration,
}

impl Clip {
    /// Renders and encodes the clip (this takes a while: see [`Clip::elapsed`]).
    pub fn encode(config: &ClipConfig) -> Result<Clip, H264Error> {
        config.validate()?;
        let started = Instant::now();
        let packetizer = Packetizer::new(config.max_payload)?;
        let frame_count = u64::from(config.seconds) * u64::from(config.fps);
        let key_interval_frames = config.key_interval_s * config.fps;
        let mut layers = Vec::with_capacity(config.layers.len());
        let mut au = AccessUnit::default();
        for spec in &config.layers {
            let mut encoder = Encoder::new(EncoderConfig {
                width: spec.width,
                height: spec.height,
                fps: config.fps,
                bitrate_bps: spec.bitrate_bps,
            })?;
            let mut picture = Picture::new(spec.width, spec.height)?;
            let mut frames = Vec::with_capacity(frame_count as usize);
            let mut encode_time = Duration::ZERO;
            for n in 0..frame_count {
                Scene.render(n, config.fps, &mut picture);
                let force_key = n % u64::from(key_interval_frames) == 0;
                let t = Instant::now();
                let key = encoder.encode(&picture, force_key, &mut au)?;
                encode_time += t.elapsed();
                if key != force_key {
                    return Err(H264Error::Clip("encoder put a key frame off the grid"));
                }
                let mut payloads = Vec::new();
                packetizer.packetize(&au, &mut payloads)?;
                frames.push(ClipFrame { key, payloads });
            }
            layers.push(ClipLayer {
                spec: *spec,
                frames,
                encode_time,
            });
        }
        Ok(Clip {
            fps: config.fps,
            key_interval_frames,
            layers,
            elapsed: started.elapsed(),
        })
    }

    /// Frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Frames per loop.
    pub fn frame_count(&self) -> usize {
        self.layers.first().map_or(0, |l| l.frames.len())
    }

    /// Frames between key frames.
    pub fn key_interval_frames(&self) -> u32 {
        self.key_interval_frames
    }

    /// RTP timestamp increment per frame (90 kHz clock).
    pub fn timestamp_step(&self) -> u32 {
        RTP_CLOCK_RATE / self.fps
    }

    /// The layers in the configured order.
    pub fn layers(&self) -> &[ClipLayer] {
        &self.layers
    }

    /// Payload bytes held, all layers.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(ClipLayer::bytes).sum()
    }

    /// Wall time the whole encode took (rendering, encoding, packetizing).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decoder, Depacketizer, DepacketizerConfig, Reassembled};
    use super::*;

    /// Two seconds at 15 fps with a key frame every second, encoded once for all tests.
    fn small_clip() -> &'static Clip {
        static CLIP: std::sync::OnceLock<Clip> = std::sync::OnceLock::new();
        CLIP.get_or_init(|| {
            let config = ClipConfig {
                seconds: 2,
                fps: 15,
                key_interval_s: 1,
                ..ClipConfig::simulcast(2)
            };
            Clip::encode(&config).unwrap()
        })
    }

    #[test]
    fn layouts_are_checked() {
        let ok = ClipConfig::simulcast(4);
        for bad in [
            ClipConfig {
                seconds: 3,
                ..ok.clone()
            },
            ClipConfig {
                seconds: 0,
                ..ok.clone()
            },
            ClipConfig {
                key_interval_s: 0,
                ..ok.clone()
            },
            ClipConfig {
                layers: vec![],
                ..ok.clone()
            },
            ClipConfig {
                max_payload: 2,
                ..ok.clone()
            },
            ClipConfig {
                fps: 7,
                ..ok.clone()
            },
        ] {
            assert!(Clip::encode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn simulcast_layers_align_key_frames_and_loop_at_one() {
        let clip = small_clip();
        let total_s = clip.elapsed().as_secs_f64();
        eprintln!(
            "2 s clip, 15 fps, 3 layers: encoded in {total_s:.2} s, {} bytes",
            clip.bytes()
        );
        assert_eq!(clip.frame_count(), 30);
        assert_eq!(clip.key_interval_frames(), 15);
        assert_eq!(clip.timestamp_step(), 6_000);
        assert_eq!(clip.layers().len(), 3);
        for layer in clip.layers() {
            let keys: Vec<usize> = (0..30).filter(|&n| layer.frames()[n].key).collect();
            assert_eq!(keys, [0, 15], "{:?}", layer.spec);
            for f in layer.frames() {
                assert!(f.payloads.iter().all(|p| p.data.len() <= 1_200));
                let markers: Vec<bool> = f.payloads.iter().map(|p| p.marker).collect();
                assert_eq!(markers.iter().filter(|&&m| m).count(), 1);
                assert_eq!(markers.last(), Some(&true));
            }
            // The loop point: the frame after the last is frame 0, a key frame.
            assert!(layer.frame(30).key);
            assert_eq!(layer.frame(31), &layer.frames()[1]);
            let bps = layer.bytes() as f64 * 8.0 / 2.0;
            eprintln!(
                "  {}x{}: {} packets, {} bytes ({:.0} kbit/s for {} kbit/s asked), encode {:.0} ms",
                layer.spec.width,
                layer.spec.height,
                layer.packets(),
                layer.bytes(),
                bps / 1_000.0,
                layer.spec.bitrate_bps / 1_000,
                layer.encode_time().as_secs_f64() * 1_000.0
            );
            let target = f64::from(layer.spec.bitrate_bps);
            assert!(bps > target / 3.0 && bps < target * 2.0, "{bps}");
        }
    }

    #[test]
    fn looping_the_clip_plays_on_across_the_loop_point() {
        let clip = small_clip();
        let step = clip.timestamp_step();
        for layer in clip.layers() {
            let mut receiver = Depacketizer::new(DepacketizerConfig::default());
            let mut decoder = Decoder::new().unwrap();
            let mut picture = Picture::default();
            let now = Instant::now();
            let mut seq = 0xFFF0u16;
            // Twice and a half through the loop, numbering on as a sender does.
            for n in 0..75u64 {
                let ts = 0xFFFF_0000u32.wrapping_add(n as u32 * step);
                for p in &layer.frame(n).payloads {
                    receiver.handle_packet(now, seq, ts, p.marker, &p.data);
                    seq = seq.wrapping_add(1);
                }
                let Some(Reassembled::Frame(au)) = receiver.poll_frame() else {
                    panic!("frame {n} not reassembled");
                };
                assert_eq!(au.timestamp, ts);
                assert_eq!(au.is_key(), n % 15 == 0);
                assert!(decoder.decode(&au, &mut picture).unwrap(), "frame {n}");
                assert_eq!(picture.width(), layer.spec.width as usize);
                assert_eq!(picture.height(), layer.spec.height as usize);
                // The picture shown is the clip's frame n modulo its length.
                assert_eq!(Scene.read_counter(&picture), Some((n % 30) as u16));
                if au.is_key() {
                    let sps = au.sequence_parameter_set().unwrap();
                    assert_eq!(
                        (sps.width, sps.height),
                        (layer.spec.width, layer.spec.height)
                    );
                }
                receiver.recycle(au);
            }
        }
    }
}
