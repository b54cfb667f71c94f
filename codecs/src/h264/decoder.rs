//! [`Decoder`]: OpenH264's decoder, to confirm that reassembled access units decode.

use openh264::decoder::Decoder as OpenH264Decoder;
use openh264::formats::YUVSource;

use super::{AccessUnit, H264Error, Picture};

/// An OpenH264 decoder fed whole access units. The load generator uses it to check that a
/// subscriber's reassembled frames are real H.264 (a sample of them: decoding costs far more
/// than reassembly).
pub struct Decoder {
    inner: OpenH264Decoder,
    /// The access unit as an Annex B byte stream, reused.
    annex_b: Vec<u8>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

/// Copies `rows` rows of `width` bytes from a plane with `stride` bytes per row into `dst`.
fn copy_plane(src: &[u8], stride: usize, width: usize, rows: usize, dst: &mut [u8]) {
    for (r, out) in dst.chunks_exact_mut(width).take(rows).enumerate() {
        if let Some(row) = src.get(r * stride..r * stride + width) {
            out.copy_from_slice(row);
        }
    }
}

impl Decoder {
    /// A decoder waiting for a key frame.
    pub fn new() -> Result<Self, H264Error> {
        let inner = OpenH264Decoder::new().map_err(|e| H264Error::Library(e.to_string()))?;
        Ok(Decoder {
            inner,
            annex_b: Vec::new(),
        })
    }

    /// Decodes `au`; when a picture comes out, copies it into `picture` (resized to the
    /// stream's size) and returns true. A corrupt or undecodable access unit (for instance a
    /// delta frame before any key frame) is an error.
    pub fn decode(&mut self, au: &AccessUnit, picture: &mut Picture) -> Result<bool, H264Error> {
        self.annex_b.clear();
        au.write_annex_b(&mut self.annex_b);
        let decoded = self
            .inner
            .decode(&self.annex_b)
            .map_err(|e| H264Error::Library(e.to_string()))?;
        let Some(yuv) = decoded else {
            return Ok(false);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        picture.resize(w, h);
        let (cw, ch) = picture.chroma_size();
        let (y, u, v) = picture.planes_mut();
        copy_plane(yuv.y(), sy, w, h, y);
        copy_plane(yuv.u(), su, cw, ch, u);
        copy_plane(yuv.v(), sv, cw, ch, v);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::{
        Depacketizer, DepacketizerConfig, Encoder, EncoderConfig, Packetizer, Payload, Reassembled,
        Scene,
    };
    use super::*;

    /// Encode -> packetize -> reassemble -> decode, 20 frames at 15 fps with key frames at 0
    /// and 10; returns the lowest and mean luma PSNR against the source.
    fn round_trip(width: u32, height: u32, bitrate_bps: u32) -> (f64, f64) {
        let fps = 15;
        let mut encoder = Encoder::new(EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps,
        })
        .unwrap();
        let packetizer = Packetizer::new(1_200).unwrap();
        let mut receiver = Depacketizer::new(DepacketizerConfig::default());
        let mut decoder = Decoder::new().unwrap();
        let mut source = Picture::new(width, height).unwrap();
        let mut decoded = Picture::default();
        let mut au = AccessUnit::default();
        let mut payloads: Vec<Payload> = Vec::new();
        let mut seq = 65_530u16; // wraps during the test
        let (mut lowest, mut sum) = (f64::INFINITY, 0.0);
        let now = Instant::now();
        for n in 0..20u64 {
            Scene.render(n, fps, &mut source);
            encoder.encode(&source, n % 10 == 0, &mut au).unwrap();
            payloads.clear();
            packetizer.packetize(&au, &mut payloads).unwrap();
            assert!(payloads.iter().all(|p| p.data.len() <= 1_200));
            let markers: Vec<bool> = payloads.iter().map(|p| p.marker).collect();
            assert_eq!(markers.iter().filter(|&&m| m).count(), 1);
            assert_eq!(markers.last(), Some(&true));
            for p in &payloads {
                receiver.handle_packet(now, seq, au.timestamp, p.marker, &p.data);
                seq = seq.wrapping_add(1);
            }
            let Some(Reassembled::Frame(frame)) = receiver.poll_frame() else {
                panic!("{width}x{height} frame {n} not reassembled");
            };
            assert_eq!(frame, au);
            assert!(decoder.decode(&frame, &mut decoded).unwrap(), "frame {n}");
            assert_eq!(
                (decoded.width(), decoded.height()),
                (width as usize, height as usize)
            );
            assert_eq!(Scene.read_counter(&decoded), Some(n as u16));
            let psnr = decoded.psnr_luma(&source).unwrap();
            lowest = lowest.min(psnr);
            sum += psnr;
            receiver.recycle(frame);
        }
        assert_eq!(receiver.stats().broken_frames, 0);
        (lowest, sum / 20.0)
    }

    #[test]
    fn round_trips_at_three_sizes_decode_close_to_the_source() {
        for (w, h, bps) in [
            (320, 180, 150_000),
            (640, 360, 500_000),
            (1_280, 720, 1_500_000),
        ] {
            let (lowest, mean) = round_trip(w, h, bps);
            eprintln!("{w}x{h} at {bps} bit/s: luma PSNR lowest {lowest:.1} dB, mean {mean:.1} dB");
            assert!(lowest > 35.0, "{w}x{h}: {lowest:.1} dB");
        }
    }

    #[test]
    fn a_delta_frame_without_its_key_frame_does_not_decode() {
        let mut encoder = Encoder::new(EncoderConfig {
            width: 320,
            height: 180,
            fps: 15,
            bitrate_bps: 150_000,
        })
        .unwrap();
        let mut source = Picture::new(320, 180).unwrap();
        let mut au = AccessUnit::default();
        let mut decoded = Picture::default();
        Scene.render(0, 15, &mut source);
        encoder.encode(&source, true, &mut au).unwrap();
        Scene.render(1, 15, &mut source);
        encoder.encode(&source, false, &mut au).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let out = decoder.decode(&au, &mut decoded);
        assert!(!matches!(out, Ok(true)), "{out:?}");
    }
}
