//! [`Scene`]: synthetic moving content for video publishers, the same picture at any size.

use std::f64::consts::TAU;

use super::Picture;

/// Synthetic moving content: a luma gradient drifting diagonally (a triangle wave, so it has
/// both smooth ramps and turning edges), chroma waves drifting the other way, a textured
/// block bouncing off the edges, and the frame number as 16 black-or-white cells in the
/// bottom-left corner. Consecutive frames always differ and the motion is real (whole areas
/// move), so the encoder does real inter prediction. Positions are in fractions of the
/// picture, so simulcast layers show the same scene.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scene;

/// Luma gradient: cycles across the width, down the height and per second, in 1/65,536 of a
/// cycle units (x is scaled by the width, y by the height).
const GRADIENT_X_CYCLES: f64 = 1.5;
const GRADIENT_Y_CYCLES: f64 = 0.75;
const GRADIENT_CYCLES_PER_S: f64 = 0.25;
/// Bouncing block: side as a fraction of the height, crossings per second along x and y.
const BLOCK_SIDE: f64 = 0.2;
const BLOCK_X_PER_S: f64 = 0.37;
const BLOCK_Y_PER_S: f64 = 0.29;
/// Bits of the frame counter drawn.
const COUNTER_BITS: usize = 16;

/// A triangle wave of period 1 with values in 0..=1, 0 at whole numbers.
fn triangle(u: f64) -> f64 {
    1.0 - (2.0 * u.rem_euclid(1.0) - 1.0).abs()
}

impl Scene {
    /// Draws frame `frame_index` of a stream at `fps` frames per second into `picture`. A
    /// picture smaller than 16x16 (only a decoder's or a default one can be) is left as is.
    pub fn render(&self, frame_index: u64, fps: u32, picture: &mut Picture) {
        let t = frame_index as f64 / f64::from(fps.max(1));
        let (w, h) = (picture.width(), picture.height());
        if w < 16 || h < 16 {
            return;
        }
        let (cw, ch) = picture.chroma_size();
        let (y_plane, u_plane, v_plane) = picture.planes_mut();

        // Luma gradient in 16-bit fixed-point phase.
        let kx = (GRADIENT_X_CYCLES * 65_536.0 / w.max(1) as f64) as u64;
        let ky = (GRADIENT_Y_CYCLES * 65_536.0 / h.max(1) as f64) as u64;
        let kt = ((t * GRADIENT_CYCLES_PER_S).rem_euclid(1.0) * 65_536.0) as u64;
        for (y, row) in y_plane.chunks_exact_mut(w).enumerate() {
            let base = y as u64 * ky + kt;
            for (x, px) in row.iter_mut().enumerate() {
                let phase = ((x as u64 * kx + base) & 0xFFFF) as u32;
                let tri = if phase < 32_768 {
                    phase
                } else {
                    65_535 - phase
                };
                *px = (40 + tri * 150 / 32_768) as u8;
            }
        }
        // Chroma: Cb varies along x, Cr along y, both drifting.
        // INVARIANT: a picture is at least 16x16, so the Cb plane has a first row.
        let (row0, below) = u_plane.split_at_mut(cw);
        for (x, px) in row0.iter_mut().enumerate() {
            let a = TAU * (x as f64 / cw as f64 + 0.1 * t);
            *px = (128.0 + 48.0 * a.sin()) as u8;
        }
        for row in below.chunks_exact_mut(cw) {
            row.copy_from_slice(row0);
        }
        for (y, row) in v_plane.chunks_exact_mut(cw).enumerate().take(ch) {
            let a = TAU * (y as f64 / ch as f64 - 0.07 * t);
            row.fill((128.0 + 48.0 * a.cos()) as u8);
        }

        // The bouncing block, a 4x4 checkerboard of two light greys, reddish.
        let side = ((h as f64 * BLOCK_SIDE) as usize & !1).clamp(2, w.min(h));
        let bx = (triangle(t * BLOCK_X_PER_S / 2.0) * (w - side) as f64) as usize & !1;
        let by = (triangle(t * BLOCK_Y_PER_S / 2.0 + 0.3) * (h - side) as f64) as usize & !1;
        let cell = (side / 4).max(1);
        for y in by..by + side {
            let row = &mut y_plane[y * w + bx..y * w + bx + side];
            for (i, px) in row.iter_mut().enumerate() {
                *px = if ((y - by) / cell + i / cell).is_multiple_of(2) {
                    200
                } else {
                    235
                };
            }
        }
        for y in by / 2..(by + side) / 2 {
            u_plane[y * cw + bx / 2..y * cw + (bx + side) / 2].fill(90);
            v_plane[y * cw + bx / 2..y * cw + (bx + side) / 2].fill(200);
        }

        // The frame counter, least significant bit first.
        if let Some((cell, top)) = counter_layout(w, h) {
            for bit in 0..COUNTER_BITS {
                let on = frame_index >> bit & 1 == 1;
                let left = cell * (bit + 1);
                let level = if on { 235 } else { 16 };
                for y in top..top + cell {
                    y_plane[y * w + left..y * w + left + cell].fill(level);
                }
            }
        }
    }

    /// Reads the frame counter back from a picture of this scene (a decoded one, say): the
    /// frame index modulo 65,536, or None when a cell is neither clearly black nor white (not
    /// this scene, or too damaged) or the picture is too small to carry the counter.
    pub fn read_counter(&self, picture: &Picture) -> Option<u16> {
        let (w, h) = (picture.width(), picture.height());
        let (cell, top) = counter_layout(w, h)?;
        let y_plane = picture.y();
        let mut value = 0u16;
        for bit in 0..COUNTER_BITS {
            // The mean of the cell's middle half, away from edges the codec blurs.
            let left = cell * (bit + 1);
            let (x0, x1) = (left + cell / 4, left + cell - cell / 4);
            let (y0, y1) = (top + cell / 4, top + cell - cell / 4);
            let mut sum = 0u32;
            for y in y0..y1 {
                sum += y_plane[y * w + x0..y * w + x1]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>();
            }
            let mean = sum / ((x1 - x0) * (y1 - y0)).max(1) as u32;
            match mean {
                0..=70 => {}
                180..=255 => value |= 1 << bit,
                _ => return None,
            }
        }
        Some(value)
    }
}

/// The counter's cell side and top row for a picture size; None when it does not fit.
fn counter_layout(w: usize, h: usize) -> Option<(usize, usize)> {
    let cell = ((h / 24) & !1).max(4);
    (cell * (COUNTER_BITS + 2) <= w && cell * 3 <= h).then(|| (cell, h - 2 * cell))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_sizes_show_the_same_scene() {
        let scene = Scene;
        let mut a = Picture::new(320, 180).unwrap();
        let mut b = Picture::new(320, 180).unwrap();
        scene.render(10, 30, &mut a);
        scene.render(11, 30, &mut b);
        assert_ne!(a.y(), b.y());
        assert_ne!(a.u(), b.u());
        // Rendering is a function of the frame index alone.
        let mut c = Picture::new(320, 180).unwrap();
        scene.render(10, 30, &mut c);
        assert_eq!(a, c);
        // Every luma value is in video range, and both counter colours appear.
        assert!(a.y().iter().all(|&v| (16..=235).contains(&v)));
        // The same scene at twice the size: the picture downscaled by two is close.
        let mut big = Picture::new(640, 360).unwrap();
        scene.render(10, 30, &mut big);
        let mut small = Picture::new(320, 180).unwrap();
        {
            let (y, _, _) = small.planes_mut();
            for row in 0..180 {
                for col in 0..320 {
                    let at = |r: usize, c: usize| u32::from(big.y()[r * 640 + c]);
                    let sum = at(2 * row, 2 * col)
                        + at(2 * row + 1, 2 * col)
                        + at(2 * row, 2 * col + 1)
                        + at(2 * row + 1, 2 * col + 1);
                    y[row * 320 + col] = (sum / 4) as u8;
                }
            }
        }
        assert!(small.psnr_luma(&a).unwrap() > 20.0);
        // The counter reads back at every size, modulo 2^16.
        assert_eq!(Scene.read_counter(&a), Some(10));
        assert_eq!(Scene.read_counter(&big), Some(10));
        scene.render(65_536 + 0xA5C3, 30, &mut big);
        assert_eq!(Scene.read_counter(&big), Some(0xA5C3));
        // A black picture reads 0; a grey one, or one too small for the cells, not at all.
        assert_eq!(
            Scene.read_counter(&Picture::new(640, 360).unwrap()),
            Some(0)
        );
        let mut grey = Picture::new(640, 360).unwrap();
        grey.planes_mut().0.fill(128);
        assert_eq!(Scene.read_counter(&grey), None);
        assert_eq!(Scene.read_counter(&Picture::new(16, 16).unwrap()), None);
        let mut empty = Picture::default();
        scene.render(1, 30, &mut empty);
        assert_eq!(Scene.read_counter(&empty), None);
        // Odd sizes (a decoder's cropped output) render too.
        let mut odd = Picture::default();
        odd.resize(33, 21);
        scene.render(5, 30, &mut odd);
    }
}
