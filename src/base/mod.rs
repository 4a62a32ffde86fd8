//! The base model: a small convolutional autoencoder (in the spirit of CAESAR-V, sized for
//! CPUs) whose decoder predicts a block from a few quantized latents; the residual stage then
//! codes what the prediction misses.
//!
//! A block is cut along its first axis into groups of [`DEPTH`] slices, which are the channels
//! of 2D convolutions (candle has no conv3d): two stride-2 convolutions down to [`LATENT`]
//! channels at a quarter of the resolution, two stride-2 transposed convolutions back up.
//! Values are normalised per block by its mean and range.
//!
//! The decoder runs here, in plain Rust f32 arithmetic with a fixed summation order, ReLU as
//! the only nonlinearity and no libm function: its output is bit-identical on every machine,
//! thread count and version, as the residual is coded against it. The encoder runs here too
//! (its output, the latents, is stored, so it needs no such care). Training is candle's job
//! (`residuum train`); a trained model is a safetensors file.

pub(crate) mod frame;
pub(crate) mod previous;
#[cfg(feature = "train")]
pub mod train;

use crate::entropy::ints;
use crate::error::{Error, Result};
use std::ops::Range;
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// Slices of a block per group: the channels of the 2D convolutions.
pub const DEPTH: usize = 8;
/// Channels of the hidden layers.
pub const HIDDEN: usize = 16;
/// Latent channels, at a quarter of the resolution in each direction.
pub const LATENT: usize = 4;
const K: usize = 4;

/// Tensor names and shapes of a model file (PyTorch layouts: conv [out, in, k, k], transposed
/// conv [in, out, k, k]).
pub const TENSORS: [(&str, &[usize]); 8] = [
    ("enc1.weight", &[HIDDEN, DEPTH, K, K]),
    ("enc1.bias", &[HIDDEN]),
    ("enc2.weight", &[LATENT, HIDDEN, K, K]),
    ("enc2.bias", &[LATENT]),
    ("dec1.weight", &[LATENT, HIDDEN, K, K]),
    ("dec1.bias", &[HIDDEN]),
    ("dec2.weight", &[HIDDEN, DEPTH, K, K]),
    ("dec2.bias", &[DEPTH]),
];
/// Decoder tensors: what travels in a stream.
const DECODER: std::ops::Range<usize> = 4..8;

/// Bytes of [`Decoder::bytes`]: the latent step and the decoder tensors, f32.
pub const DECODER_LEN: usize = {
    let (mut n, mut i) = (1, DECODER.start);
    while i < DECODER.end {
        let (mut p, mut d) = (1, 0);
        while d < TENSORS[i].1.len() {
            p *= TENSORS[i].1[d];
            d += 1;
        }
        n += p;
        i += 1;
    }
    4 * n
};
/// Metadata key of the latent quantization step in a model file.
pub const LATENT_STEP_KEY: &str = "latent_step";

/// A stride-2, padding-1, 4×4 convolution layer (or its transpose).
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    weight: Vec<f32>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
}

/// The decoder half: enough to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoder {
    dec1: Layer,
    dec2: Layer,
    latent_step: f32,
    /// What a stream carries of it: the content hash (xxh3, u64 little-endian) of the
    /// canonical bytes, then those bytes.
    entry: Vec<u8>,
}

/// A full model: the encoder for compressing, the decoder for both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    enc1: Layer,
    enc2: Layer,
    pub decoder: Decoder,
}

fn layer(tensors: &[Vec<f32>], i: usize) -> Layer {
    let shape = TENSORS[i].1;
    let transposed = TENSORS[i].0.starts_with("dec");
    let (cin, cout) = if transposed {
        (shape[0], shape[1])
    } else {
        (shape[1], shape[0])
    };
    Layer {
        weight: tensors[i].clone(),
        bias: tensors[i + 1].clone(),
        cin,
        cout,
    }
}

impl Decoder {
    pub fn latent_step(&self) -> f32 {
        self.latent_step
    }

    /// Canonical bytes: latent step, then the decoder tensors in order, f32 little-endian.
    pub fn bytes(&self) -> &[u8] {
        &self.entry[8..]
    }

    /// Content hash of [`Decoder::bytes`].
    pub fn hash(&self) -> u64 {
        u64::from_le_bytes(self.entry[..8].try_into().unwrap())
    }

    /// The stream's model entry: [`Decoder::hash`], then [`Decoder::bytes`].
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }

    /// Reads [`Decoder::bytes`], checking the size and that every number is finite.
    pub fn from_bytes(bytes: &[u8]) -> Result<Decoder> {
        let mut tensors = vec![Vec::new(); 4];
        if bytes.len() != DECODER_LEN {
            return Err(Error::corrupt(format!(
                "base model decoder has {} bytes, expected {DECODER_LEN}",
                bytes.len()
            )));
        }
        let mut vals = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        let latent_step = vals.next().unwrap();
        for (t, i) in tensors.iter_mut().zip(DECODER) {
            *t = vals.by_ref().take(TENSORS[i].1.iter().product()).collect();
        }
        if !(latent_step.is_finite() && latent_step > 0.0)
            || tensors.iter().flatten().any(|v| !v.is_finite())
        {
            return Err(Error::corrupt("base model decoder has non-finite weights"));
        }
        let all: Vec<Vec<f32>> = std::iter::repeat_n(Vec::new(), 4).chain(tensors).collect();
        let mut entry = xxh3_64(bytes).to_le_bytes().to_vec();
        entry.extend_from_slice(bytes);
        Ok(Decoder {
            dec1: layer(&all, 4),
            dec2: layer(&all, 6),
            latent_step,
            entry,
        })
    }

    /// The normalised prediction of one group from its latents `[LATENT, h/4, w/4]`
    /// (integers): the first `channels` of its `[DEPTH, h, w]`, each value handed to
    /// `put(channel, row, column, value)`, in a fixed order of f32 operations. By tiles of the
    /// plane: the whole group's hidden layer and output took some 50 times the block's bytes
    /// where padding dominates (a block of one row), and every value is the same sum either way.
    pub fn decode_group(
        &self,
        latents: &[i64],
        (h4, w4): (usize, usize),
        channels: usize,
        mut put: impl FnMut(usize, usize, usize, f32),
    ) {
        let z: Vec<f32> = latents
            .iter()
            .map(|&q| q as f32 * self.latent_step)
            .collect();
        let (h2, w2) = (2 * h4, 2 * w4);
        let (h, w) = (2 * h2, 2 * w2);
        // The input rows (or columns) that outputs `out` of a transposed convolution gather:
        // output y takes input (y + 1 − ky)/2 for taps ky = 0..3.
        let inputs = |out: &Range<usize>, n: usize| {
            (out.start / 2).saturating_sub(1)..(out.end / 2 + 1).min(n)
        };
        for y0 in (0..h).step_by(TILE) {
            for x0 in (0..w).step_by(TILE) {
                let out = Window::new(y0..(y0 + TILE).min(h), x0..(x0 + TILE).min(w));
                let hid = Window::new(inputs(&out.rows, h2), inputs(&out.cols, w2));
                let all_z = Window::new(0..h4, 0..w4);
                let mut hv = conv_t(&self.dec1, &z, &all_z, &hid, self.dec1.cout);
                hv.iter_mut().for_each(|v| *v = relu(*v));
                let ov = conv_t(&self.dec2, &hv, &hid, &out, channels);
                let (rows, cols) = (out.rows.len(), out.cols.len());
                for (at, &v) in ov.iter().enumerate() {
                    let (o, r, c) = (at / (rows * cols), at / cols % rows, at % cols);
                    put(o, out.rows.start + r, out.cols.start + c, v);
                }
            }
        }
    }
}

/// Output tiles of the base model's decoder: rows and columns of its `[DEPTH, h, w]`.
const TILE: usize = 64;

/// A window of a layer's plane: rows × columns (of every channel).
struct Window {
    rows: Range<usize>,
    cols: Range<usize>,
}

impl Window {
    fn new(rows: Range<usize>, cols: Range<usize>) -> Window {
        Window { rows, cols }
    }
}

/// max(v, 0), spelt out: `f32::max` leaves the sign of a zero result unspecified, and the
/// decoder's prediction must be the same bits everywhere.
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Largest weights file read (a base model or an NGLR network): ours are tens of KB.
const MAX_WEIGHTS_FILE: u64 = 64 << 20;

/// The bytes of a weights file (`model=`, `nglr=`): see [`read_small_file`].
pub(crate) fn read_weights(path: &Path) -> std::io::Result<Vec<u8>> {
    read_small_file(path, MAX_WEIGHTS_FILE, "a weights file")
}

/// The bytes of a file a setting names (weights, an ADIOS2 configuration): a regular file of at
/// most `max` bytes (`what` it is, for the error), so that one naming a device, a pipe or a
/// data file by mistake fails instead of reading without end or waiting for a writer.
pub(crate) fn read_small_file(path: &Path, max: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    // Before opening: opening a pipe waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {what} can be ({max} bytes)"),
        ));
    }
    Ok(bytes)
}

impl Model {
    /// Reads a model file written by `residuum train` (safetensors, f32 tensors named as in
    /// [`TENSORS`], the latent step in the metadata).
    pub fn load(path: &Path) -> Result<Model> {
        let bad =
            |e: &dyn std::fmt::Display| Error::Model(format!("base model {}: {e}", path.display()));
        let bytes = read_weights(path).map_err(|e| bad(&e))?;
        Model::from_safetensors(&bytes).map_err(|e| bad(&e))
    }

    pub fn from_safetensors(bytes: &[u8]) -> std::result::Result<Model, String> {
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let step: f32 = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(LATENT_STEP_KEY))
            .and_then(|v| v.parse().ok())
            .ok_or("no latent_step in the metadata")?;
        let mut tensors = Vec::new();
        for (name, shape) in TENSORS {
            let t = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(format!(
                    "tensor {name}: {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
            tensors.push(
                t.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect::<Vec<f32>>(),
            );
        }
        let mut dec = step.to_le_bytes().to_vec();
        for t in &tensors[DECODER] {
            t.iter()
                .for_each(|v| dec.extend_from_slice(&v.to_le_bytes()));
        }
        let decoder = Decoder::from_bytes(&dec).map_err(|e| e.to_string())?;
        if tensors[..4].iter().flatten().any(|v| !v.is_finite()) {
            return Err("non-finite encoder weights".into());
        }
        Ok(Model {
            enc1: layer(&tensors, 0),
            enc2: layer(&tensors, 2),
            decoder,
        })
    }

    /// The quantized latents of one normalised group `[DEPTH, h, w]` (h and w multiples of 4).
    pub fn encode_group(&self, x: &[f32], h: usize, w: usize) -> Vec<i64> {
        let mut hid = conv(&self.enc1, x, h, w);
        hid.iter_mut().for_each(|v| *v = relu(*v));
        let z = conv(&self.enc2, &hid, h / 2, w / 2);
        let inv = 1.0 / self.decoder.latent_step;
        z.iter()
            .map(|&v| {
                let t = (v * inv).clamp(-MAX_LATENT, MAX_LATENT);
                (t + 0.5f32.copysign(t)) as i64
            })
            .collect()
    }
}

/// Latents beyond this are clamped (encoder) or rejected (decoder): it bounds the arithmetic.
const MAX_LATENT: f32 = (1 << 20) as f32;

/// 4×4 convolution, stride 2, padding 1: `[cin, h, w]` → `[cout, h/2, w/2]`.
fn conv(l: &Layer, x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; l.cout * ho * wo];
    for o in 0..l.cout {
        for y in 0..ho {
            for xo in 0..wo {
                let mut acc = l.bias[o];
                for i in 0..l.cin {
                    for ky in 0..K {
                        let yi = (2 * y + ky) as isize - 1;
                        if yi < 0 || yi >= h as isize {
                            continue;
                        }
                        for kx in 0..K {
                            let xi = (2 * xo + kx) as isize - 1;
                            if xi < 0 || xi >= w as isize {
                                continue;
                            }
                            acc += l.weight[((o * l.cin + i) * K + ky) * K + kx]
                                * x[(i * h + yi as usize) * w + xi as usize];
                        }
                    }
                }
                out[(o * ho + y) * wo + xo] = acc;
            }
        }
    }
    out
}

/// The transposed convolution of [`conv`], `[cin, h, w]` → `[cout, 2h, 2w]`, over windows:
/// outputs `out` of the first `channels`, from the input window `inp` (`x` holds it, and it
/// holds every input they gather). Each output gathers its (at most 2×2 per channel) inputs
/// in a fixed order, the same whatever the windows.
fn conv_t(l: &Layer, x: &[f32], inp: &Window, out: &Window, channels: usize) -> Vec<f32> {
    let (ih, iw) = (inp.rows.len(), inp.cols.len());
    let mut v = Vec::with_capacity(channels * out.rows.len() * out.cols.len());
    for o in 0..channels {
        for y in out.rows.clone() {
            for xo in out.cols.clone() {
                let mut acc = l.bias[o];
                for i in 0..l.cin {
                    // Output y receives input yi through tap ky where 2·yi + ky − 1 = y.
                    for ky in 0..K {
                        let t = y as isize + 1 - ky as isize;
                        if t < 0 || t % 2 != 0 || !inp.rows.contains(&((t / 2) as usize)) {
                            continue;
                        }
                        let yi = (t / 2) as usize - inp.rows.start;
                        for kx in 0..K {
                            let s = xo as isize + 1 - kx as isize;
                            if s < 0 || s % 2 != 0 || !inp.cols.contains(&((s / 2) as usize)) {
                                continue;
                            }
                            let xi = (s / 2) as usize - inp.cols.start;
                            acc += l.weight[((i * l.cout + o) * K + ky) * K + kx]
                                * x[(i * ih + yi) * iw + xi];
                        }
                    }
                }
                v.push(acc);
            }
        }
    }
    v
}

/// How a block of shape `[a, b, c]` is laid out for the model: groups of [`DEPTH`] slices,
/// each padded (edge values repeated) to `[DEPTH, h, w]` with h, w multiples of 4.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub shape: [usize; 3],
    pub groups: usize,
    pub h: usize,
    pub w: usize,
}

impl Layout {
    pub fn new(shape: [usize; 3]) -> Layout {
        Layout {
            shape,
            groups: shape[0].div_ceil(DEPTH),
            h: shape[1].div_ceil(4) * 4,
            w: shape[2].div_ceil(4) * 4,
        }
    }

    /// Latents per group.
    pub fn latents_per_group(&self) -> usize {
        LATENT * (self.h / 4) * (self.w / 4)
    }

    /// Group `g` of the normalised block `x` (block order), padded.
    pub fn gather(&self, x: &[f32], g: usize) -> Vec<f32> {
        let [a, b, c] = self.shape;
        let mut out = vec![0f32; DEPTH * self.h * self.w];
        for d in 0..DEPTH {
            let i = (g * DEPTH + d).min(a - 1);
            for y in 0..self.h {
                let j = y.min(b - 1);
                for xo in 0..self.w {
                    out[(d * self.h + y) * self.w + xo] = x[(i * b + j) * c + xo.min(c - 1)];
                }
            }
        }
        out
    }
}

/// Per-block normalisation: x ↦ (x − mean) / scale, in f64, and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub mean: f64,
    pub scale: f64,
}

impl Norm {
    /// Of the finite values (scale 1 if they are constant or absent).
    pub fn of(values: &[f64]) -> Norm {
        let (mut n, mut sum) = (0usize, 0.0f64);
        values.iter().filter(|v| v.is_finite()).for_each(|&v| {
            n += 1;
            sum += v;
        });
        let (lo, hi) = crate::bound::finite_min_max_of(values);
        let range = hi - lo;
        Norm {
            mean: if n > 0 { sum / n as f64 } else { 0.0 },
            scale: if range.is_finite() && range > 0.0 {
                range
            } else {
                1.0
            },
        }
    }
}

/// What the base model makes of one block: its latents, coded, and the prediction they decode
/// to (the same on both sides).
pub struct BasePrediction {
    pub norm: Norm,
    pub coded_latents: Vec<u8>,
    pub prediction: Vec<f64>,
}

/// Runs the model over a block of `shape` (values in block order, non-finite ones predicted
/// from their replacement by the mean).
pub fn predict(model: &Model, values: &[f64], shape: [usize; 3]) -> BasePrediction {
    let norm = Norm::of(values);
    let x: Vec<f32> = values
        .iter()
        .map(|&v| {
            let v = if v.is_finite() { v } else { norm.mean };
            ((v - norm.mean) / norm.scale) as f32
        })
        .collect();
    let lay = Layout::new(shape);
    let mut latents = Vec::with_capacity(lay.groups * lay.latents_per_group());
    for g in 0..lay.groups {
        latents.extend(model.encode_group(&lay.gather(&x, g), lay.h, lay.w));
    }
    let mut coded_latents = Vec::new();
    ints::encode(&latents, latent_shape(&lay), &mut coded_latents, false);
    let prediction = reconstruct(&model.decoder, &latents, &lay, norm);
    BasePrediction {
        norm,
        coded_latents,
        prediction,
    }
}

fn latent_shape(lay: &Layout) -> [usize; 3] {
    [lay.groups * LATENT, lay.h / 4, lay.w / 4]
}

/// The prediction of a block from its latents: bit-identical wherever it runs.
fn reconstruct(dec: &Decoder, latents: &[i64], lay: &Layout, norm: Norm) -> Vec<f64> {
    let per = lay.latents_per_group();
    let [a, b, c] = lay.shape;
    let mut y = vec![0f64; a * b * c];
    for g in 0..lay.groups {
        let first = g * DEPTH;
        let channels = DEPTH.min(a - first);
        let put = |d: usize, j: usize, k: usize, v: f32| {
            if j < b && k < c {
                y[((first + d) * b + j) * c + k] = norm.mean + norm.scale * v as f64;
            }
        };
        let latents = &latents[g * per..(g + 1) * per];
        dec.decode_group(latents, (lay.h / 4, lay.w / 4), channels, put);
    }
    y
}

/// The decoder's side of [`predict`]: the prediction from the stored latents.
pub fn predict_from(
    dec: &Decoder,
    coded_latents: &[u8],
    shape: [usize; 3],
    norm: Norm,
) -> Result<Vec<f64>> {
    if !(norm.mean.is_finite() && norm.scale.is_finite() && norm.scale > 0.0) {
        return Err(Error::corrupt("bad base model normalisation"));
    }
    let lay = Layout::new(shape);
    let latents = ints::decode(coded_latents, latent_shape(&lay))?;
    if latents.iter().any(|q| q.unsigned_abs() > MAX_LATENT as u64) {
        return Err(Error::corrupt("base model latent out of range"));
    }
    let pred = reconstruct(dec, &latents, &lay, norm);
    if pred.iter().any(|v| !v.is_finite()) {
        return Err(Error::corrupt("base model prediction is not finite"));
    }
    Ok(pred)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder of fixed pseudo-random weights.
    fn decoder() -> Decoder {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut bytes = 0.05f32.to_le_bytes().to_vec();
        while bytes.len() < DECODER_LEN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5;
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        Decoder::from_bytes(&bytes).unwrap()
    }

    /// Tiles give the bits of the whole planes at once (the decoder before tiles), on planes
    /// of several tiles with partial ones at their edges.
    #[test]
    fn tiles_give_the_whole_planes_bits() {
        let dec = decoder();
        for (h4, w4) in [(1, 70), (33, 5), (20, 40)] {
            let latents: Vec<i64> = (0..LATENT * h4 * w4)
                .map(|i| (i as i64 * 7919) % 41 - 20)
                .collect();
            let z: Vec<f32> = latents
                .iter()
                .map(|&q| q as f32 * dec.latent_step)
                .collect();
            let (h2, w2, h, w) = (2 * h4, 2 * w4, 4 * h4, 4 * w4);
            let (zw, hw) = (Window::new(0..h4, 0..w4), Window::new(0..h2, 0..w2));
            let mut hid = conv_t(&dec.dec1, &z, &zw, &hw, HIDDEN);
            hid.iter_mut().for_each(|v| *v = relu(*v));
            let whole = conv_t(&dec.dec2, &hid, &hw, &Window::new(0..h, 0..w), DEPTH);
            let mut tiled = vec![f32::NAN; DEPTH * h * w];
            dec.decode_group(&latents, (h4, w4), DEPTH, |o, y, x, v| {
                tiled[(o * h + y) * w + x] = v
            });
            assert!(
                whole
                    .iter()
                    .zip(&tiled)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{h4}x{w4}"
            );
        }
    }

    /// A block of one row is padded to 8 slices of 4 rows: its hidden layer and padded output
    /// whole took some 200 bytes a value; by tiles, the prediction and the latents' values.
    #[test]
    fn decoding_a_thin_block_takes_memory_in_proportion_to_it() {
        let dec = decoder();
        let n = 1 << 16;
        let lay = Layout::new([1, 1, n]);
        let latents = vec![0i64; lay.groups * lay.latents_per_group()];
        let norm = Norm {
            mean: 1.0,
            scale: 2.0,
        };
        let (pred, peak) = crate::test_alloc::peak_of(|| reconstruct(&dec, &latents, &lay, norm));
        assert_eq!(pred.len(), n);
        assert!(peak < 16 * n, "{peak} bytes for {n} values");
    }
}
