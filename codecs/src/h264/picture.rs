//! [`Picture`]: an 8-bit I420 (4:2:0 planar) image, what the encoder takes and the decoder
//! gives back.

use super::H264Error;

/// Largest width the encoder takes, in pixels.
pub(crate) const MAX_WIDTH: u32 = 3_840;
/// Largest height the encoder takes, in pixels.
pub(crate) const MAX_HEIGHT: u32 = 2_160;
/// Smallest width or height, in pixels (one macroblock).
pub(crate) const MIN_SIDE: u32 = 16;

/// An I420 image: a full-size luma plane then two chroma planes at half width and height,
/// packed without padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picture {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// Checks a picture size: even, 16..=3840 wide and 16..=2160 high.
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), H264Error> {
    let ok = width.is_multiple_of(2)
        && height.is_multiple_of(2)
        && (MIN_SIDE..=MAX_WIDTH).contains(&width)
        && (MIN_SIDE..=MAX_HEIGHT).contains(&height);
    if ok {
        Ok(())
    } else {
        Err(H264Error::Size { width, height })
    }
}

impl Picture {
    /// A black picture of `width` x `height` (both even, 16..=3840 by 16..=2160).
    pub fn new(width: u32, height: u32) -> Result<Self, H264Error> {
        check_size(width, height)?;
        let mut p = Picture::default();
        p.resize(width as usize, height as usize);
        let luma = p.width * p.height;
        // Black in video range: luma 16, chroma 128.
        p.data[..luma].fill(16);
        p.data[luma..].fill(128);
        Ok(p)
    }

    /// Changes its size (keeping the buffer's capacity); the contents are then unspecified.
    /// Odd sizes are for decoded pictures only: chroma planes round up.
    pub(crate) fn resize(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        let chroma = width.div_ceil(2) * height.div_ceil(2);
        self.data.resize(width * height + 2 * chroma, 0);
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Width and height of each chroma plane.
    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// The luma plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    /// The Cb plane, `chroma_size().0` bytes per row.
    pub fn u(&self) -> &[u8] {
        let (luma, chroma) = self.plane_sizes();
        &self.data[luma..luma + chroma]
    }

    /// The Cr plane, `chroma_size().0` bytes per row.
    pub fn v(&self) -> &[u8] {
        let (luma, chroma) = self.plane_sizes();
        &self.data[luma + chroma..]
    }

    /// The three planes to write into: luma, Cb, Cr.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (luma, chroma) = self.plane_sizes();
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(chroma);
        (y, u, v)
    }

    /// Luma PSNR against `other` in dB (peak 255); None when the sizes differ. Identical
    /// pictures give infinity.
    pub fn psnr_luma(&self, other: &Picture) -> Option<f64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let sse: u64 = self
            .y()
            .iter()
            .zip(other.y())
            .map(|(&a, &b)| {
                let d = i64::from(a) - i64::from(b);
                (d * d) as u64
            })
            .sum();
        let mse = sse as f64 / (self.width * self.height).max(1) as f64;
        Some(10.0 * (255.0 * 255.0 / mse).log10())
    }

    fn plane_sizes(&self) -> (usize, usize) {
        let (cw, ch) = self.chroma_size();
        (self.width * self.height, cw * ch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_planes_laid_out() {
        assert!(Picture::new(15, 16).is_err());
        assert!(Picture::new(0, 16).is_err());
        assert!(Picture::new(3_842, 16).is_err());
        let mut p = Picture::new(32, 16).unwrap();
        assert_eq!(p.y().len(), 512);
        assert_eq!((p.u().len(), p.v().len()), (128, 128));
        assert!(p.y().iter().all(|&b| b == 16));
        let q = p.clone();
        assert_eq!(p.psnr_luma(&q), Some(f64::INFINITY));
        p.planes_mut().0[0] = 26;
        let psnr = p.psnr_luma(&q).unwrap();
        // One pixel off by 10 in 512: MSE 100/512.
        assert!((psnr - 10.0 * (65_025.0f64 * 512.0 / 100.0).log10()).abs() < 1e-9);
        assert_eq!(p.psnr_luma(&Picture::new(16, 16).unwrap()), None);
    }
}
