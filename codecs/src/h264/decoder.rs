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
