//! From a decoded image to the network's normalised input, with the paper's augmentations.

use super::Image;
use super::rng::Rng;
use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma, Pixel, Rgb};

/// A training augmentation.
#[derive(Debug, Clone, PartialEq)]
pub enum Augment {
    /// None: the image as evaluation sees it.
    None,
    /// CIFAR's: zero-pad `pad` pixels on each side, take a random crop of the input size, and
    /// flip horizontally with probability ½ when `flip`.
    PadCrop {
        /// Padding on each side.
        pad: usize,
        /// Random horizontal flip.
        flip: bool,
    },
    /// ImageNet's (torchvision `RandomResizedCrop`): a random box covering a fraction `scale` of
    /// the area with aspect ratio in `ratio` (log-uniform), resized to the input size, flipped
    /// with probability ½ when `flip`.
    RandomResizedCrop {
        /// Area fraction range, e.g. (0.08, 1.0).
        scale: (f64, f64),
        /// Aspect ratio range, e.g. (3/4, 4/3).
        ratio: (f64, f64),
        /// Random horizontal flip.
        flip: bool,
    },
}

/// Turns an [`Image`] into a normalised `C×H×W` float image of the network's input size.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Output `[H, W]`.
    pub size: [usize; 2],
    /// The augmentation (training), or [`Augment::None`] (evaluation).
    pub augment: Augment,
    /// Per-channel mean of the 0..1 pixel values, subtracted.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, divided by.
    pub std: Vec<f32>,
    /// Fraction of the resized image kept by the centre crop when an image is not already of the
    /// output size: the shorter side is resized to `size / crop`, then the centre is cropped
    /// (ImageNet evaluation: 0.875, i.e. 256 → 224). 1.0 resizes to fit.
    pub crop: f64,
}

impl Transform {
    /// Applies the transform; `seed` drives every random choice.
    pub fn apply(&self, img: &Image, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let [oh, ow] = self.size;
        let (base, pad, flip) = match &self.augment {
            Augment::RandomResizedCrop { scale, ratio, flip } => {
                let (x, y, w, h) = random_box(img.w, img.h, *scale, *ratio, &mut rng);
                (crop_resize(img, x, y, w, h, ow, oh), 0, *flip)
            }
            Augment::PadCrop { pad, flip } => (self.fit(img), *pad, *flip),
            Augment::None => (self.fit(img), 0, false),
        };
        let (dy, dx) = if pad > 0 {
            (rng.below_incl(2 * pad), rng.below_incl(2 * pad))
        } else {
            (0, 0)
        };
        let mirror = flip && rng.coin();
        let c = base.c;
        let mut out = vec![0f32; c * oh * ow];
        for ch in 0..c {
            let mean = self.mean.get(ch).copied().unwrap_or(0.0);
            let std = self.std.get(ch).copied().unwrap_or(1.0);
            let zero = -mean / std;
            for y in 0..oh {
                let sy = (y + dy) as isize - pad as isize;
                for x in 0..ow {
                    let xx = if mirror { ow - 1 - x } else { x };
                    let sx = (xx + dx) as isize - pad as isize;
                    let v = if sy < 0 || sx < 0 || sy >= base.h as isize || sx >= base.w as isize {
                        zero
                    } else {
                        let p = base.data[(sy as usize * base.w + sx as usize) * c + ch];
                        (p as f32 / 255.0 - mean) / std
                    };
                    out[(ch * oh + y) * ow + x] = v;
                }
            }
        }
        out
    }

    /// The image at the output size: unchanged when it already is, else resized so that the
    /// shorter side is `size / crop`, then centre-cropped.
    fn fit(&self, img: &Image) -> Image {
        let [oh, ow] = self.size;
        if img.h == oh && img.w == ow {
            return img.clone();
        }
        let crop = if self.crop > 0.0 && self.crop <= 1.0 {
            self.crop
        } else {
            1.0
        };
        // Scale so that both sides cover the crop, then take the centre.
        let s = (oh as f64 / img.h as f64).max(ow as f64 / img.w as f64) / crop;
        let rh = ((img.h as f64 * s).round() as usize).max(oh);
        let rw = ((img.w as f64 * s).round() as usize).max(ow);
        let resized = crop_resize(img, 0, 0, img.w, img.h, rw, rh);
        let (y, x) = ((rh - oh) / 2, (rw - ow) / 2);
        crop_resize(&resized, x, y, ow, oh, ow, oh)
    }
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at a random box, then a centre crop
/// with the ratio clamped.
fn random_box(
    w: usize,
    h: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let area = (w * h) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * (scale.0 + (scale.1 - scale.0) * rng.uniform());
        let aspect = (lr0 + (lr1 - lr0) * rng.uniform()).exp();
        let bw = (target * aspect).sqrt().round() as usize;
        let bh = (target / aspect).sqrt().round() as usize;
        if bw > 0 && bh > 0 && bw <= w && bh <= h {
            let x = rng.below_incl(w - bw);
            let y = rng.below_incl(h - bh);
            return (x, y, bw, bh);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (bw, bh) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round() as usize).clamp(1, h))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round() as usize).clamp(1, w), h)
    } else {
        (w, h)
    };
    ((w - bw) / 2, (h - bh) / 2, bw, bh)
}

fn crop_resize_px<P: Pixel<Subpixel = u8> + 'static>(
    img: &Image,
    (x, y, w, h): (usize, usize, usize, usize),
    (ow, oh): (usize, usize),
) -> Vec<u8> {
    let buf: ImageBuffer<P, Vec<u8>> =
        ImageBuffer::from_raw(img.w as u32, img.h as u32, img.data.clone())
            .expect("an Image's buffer matches its size");
    let part = imageops::crop_imm(&buf, x as u32, y as u32, w as u32, h as u32).to_image();
    if (w, h) == (ow, oh) {
        return part.into_raw();
    }
    imageops::resize(&part, ow as u32, oh as u32, FilterType::Triangle).into_raw()
}

/// The box `(x, y, w, h)` of `img`, resized (bilinear, antialiased) to `ow × oh`.
fn crop_resize(img: &Image, x: usize, y: usize, w: usize, h: usize, ow: usize, oh: usize) -> Image {
    let data = match img.c {
        1 => crop_resize_px::<Luma<u8>>(img, (x, y, w, h), (ow, oh)),
        _ => crop_resize_px::<Rgb<u8>>(img, (x, y, w, h), (ow, oh)),
    };
    Image {
        c: img.c,
        h: oh,
        w: ow,
        data,
    }
}
