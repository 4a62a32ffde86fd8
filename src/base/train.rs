//! Training the base model with candle (feature `train`): used by `residuum train` and by the
//! operator's `train=N` option, which learns from the first arrays of a running simulation.
//!
//! The convolutions are written as a gather of the zero-padded input and a matrix product,
//! exactly the sums the plain-Rust inference in `super` computes (candle's own CPU
//! convolutions disagreed with a direct evaluation of these layers).

use super::{Norm, DEPTH, HIDDEN, LATENT, LATENT_STEP_KEY, TENSORS};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW, VarBuilder, VarMap};
use std::collections::HashMap;
use std::time::Instant;

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Time budget.
    pub seconds: f64,
    pub max_steps: usize,
    /// Quantization step of the latents.
    pub latent_step: f32,
    /// Weight of the rate term (mean latent magnitude in steps) against the MSE.
    pub rate_weight: f64,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seconds: 60.0,
            max_steps: 5000,
            latent_step: 0.05,
            rate_weight: 1e-5,
            lr: 2e-3,
            batch: 16,
            seed: 1,
        }
    }
}

/// A field to learn from: values in C order over its 3D view.
pub struct Sample<'a> {
    pub values: &'a [f32],
    pub shape: [usize; 3],
}

/// One optimizer step of the loss curve.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub step: usize,
    pub seconds: f64,
    pub loss: f64,
    pub mse: f64,
}

/// Edge of the square training crops.
pub const CROP: usize = 32;

/// A 4×4, stride-2, padding-1 convolution or its transpose, evaluated as a gather of the
/// zero-padded input followed by a matrix product: exactly the sums `residuum::base` computes.
/// (candle's own CPU convolutions disagreed with a direct evaluation of these layers, so the
/// training uses this form, whose meaning is plain.)
struct Layer {
    weight: Tensor,
    bias: Tensor,
    cin: usize,
    cout: usize,
    transposed: bool,
}

impl Layer {
    fn new(
        vb: &VarBuilder,
        name: &str,
        cin: usize,
        cout: usize,
        transposed: bool,
    ) -> candle_core::Result<Layer> {
        let shape = if transposed {
            (cin, cout, 4, 4)
        } else {
            (cout, cin, 4, 4)
        };
        let vb = vb.pp(name);
        Ok(Layer {
            weight: vb.get(shape, "weight")?,
            bias: vb.get(cout, "bias")?,
            cin,
            cout,
            transposed,
        })
    }

    /// Index of every (input channel, tap) for every output position into the flattened
    /// padded input; padded position (i, 0, 0), always zero, stands for "no input".
    fn gather_index(&self, h: usize, w: usize) -> Vec<u32> {
        let (hp, wp) = (h + 2, w + 2);
        let (ho, wo) = if self.transposed {
            (2 * h, 2 * w)
        } else {
            (h / 2, w / 2)
        };
        let mut idx = Vec::with_capacity(self.cin * 16 * ho * wo);
        for i in 0..self.cin {
            for ky in 0..4 {
                for kx in 0..4 {
                    for y in 0..ho {
                        for x in 0..wo {
                            let at = |py: usize, px: usize| ((i * hp + py) * wp + px) as u32;
                            idx.push(if self.transposed {
                                let (t, u) =
                                    (y as isize + 1 - ky as isize, x as isize + 1 - kx as isize);
                                if t >= 0
                                    && u >= 0
                                    && t % 2 == 0
                                    && u % 2 == 0
                                    && ((t / 2) as usize) < h
                                    && ((u / 2) as usize) < w
                                {
                                    at(t as usize / 2 + 1, u as usize / 2 + 1)
                                } else {
                                    at(0, 0)
                                }
                            } else {
                                at(2 * y + ky, 2 * x + kx)
                            });
                        }
                    }
                }
            }
        }
        idx
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let (ho, wo) = if self.transposed {
            (2 * h, 2 * w)
        } else {
            (h / 2, w / 2)
        };
        let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let flat = padded.reshape((n, self.cin * (h + 2) * (w + 2)))?;
        let idx = Tensor::from_vec(self.gather_index(h, w), self.cin * 16 * ho * wo, x.device())?;
        let cols = flat
            .index_select(&idx, 1)?
            .reshape((n, self.cin * 16, ho * wo))?;
        // Weights as [cout, cin·16] in the (i, ky, kx) order of the columns.
        let wm = if self.transposed {
            self.weight.permute((1, 0, 2, 3))?.contiguous()?
        } else {
            self.weight.clone()
        }
        .reshape((self.cout, self.cin * 16))?;
        let out = wm.broadcast_matmul(&cols)?;
        out.broadcast_add(&self.bias.reshape((1, self.cout, 1))?)?
            .reshape((n, self.cout, ho, wo))
    }
}

struct Net {
    enc1: Layer,
    enc2: Layer,
    dec1: Layer,
    dec2: Layer,
}

impl Net {
    fn new(vb: VarBuilder) -> candle_core::Result<Net> {
        Ok(Net {
            enc1: Layer::new(&vb, "enc1", DEPTH, HIDDEN, false)?,
            enc2: Layer::new(&vb, "enc2", HIDDEN, LATENT, false)?,
            dec1: Layer::new(&vb, "dec1", LATENT, HIDDEN, true)?,
            dec2: Layer::new(&vb, "dec2", HIDDEN, DEPTH, true)?,
        })
    }

    fn encode(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.enc2.forward(&self.enc1.forward(x)?.relu()?)
    }

    fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.dec2.forward(&self.dec1.forward(z)?.relu()?)
    }
}

/// A small deterministic generator for crop positions and noise seeds.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in [−1, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A normalised `[DEPTH, CROP, CROP]` crop of a field's 3D view (edges repeated where the field
/// is smaller), as the codec normalises blocks.
fn crop(f: &Sample, rng: &mut Rng) -> Vec<f32> {
    let [a, b, c] = f.shape;
    let (i0, j0, k0) = (
        rng.below(a.saturating_sub(DEPTH) + 1),
        rng.below(b.saturating_sub(CROP) + 1),
        rng.below(c.saturating_sub(CROP) + 1),
    );
    let mut v = Vec::with_capacity(DEPTH * CROP * CROP);
    for d in 0..DEPTH {
        let i = (i0 + d).min(a - 1);
        for y in 0..CROP {
            let j = (j0 + y).min(b - 1);
            for x in 0..CROP {
                v.push(f.values[(i * b + j) * c + (k0 + x).min(c - 1)] as f64);
            }
        }
    }
    let norm = Norm::of(&v);
    v.iter()
        .map(|&x| {
            let x = if x.is_finite() { x } else { norm.mean };
            ((x - norm.mean) / norm.scale) as f32
        })
        .collect()
}

fn batch(fields: &[Sample], n: usize, rng: &mut Rng, dev: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(n * DEPTH * CROP * CROP);
    for _ in 0..n {
        let f = &fields[rng.below(fields.len())];
        data.extend(crop(f, rng));
    }
    Tensor::from_vec(data, (n, DEPTH, CROP, CROP), dev)
}

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("base model training: {e}"))
}

/// Crops a training batch holds at most: each takes about 5 MB while training (the
/// transposed convolutions' gathered columns and their gradients; 0.66 GB at 128 crops).
const MAX_BATCH: usize = 256;

/// Trains a model on random crops of `fields` within the budget; returns the model file's
/// bytes (safetensors, loadable with [`super::Model::from_safetensors`]) and the loss curve.
/// `on_step` sees every point as it is made.
pub fn fit(
    fields: &[Sample],
    opts: &TrainOptions,
    mut on_step: impl FnMut(&Point),
) -> Result<(Vec<u8>, Vec<Point>)> {
    if fields.is_empty() || fields.iter().any(|f| f.values.is_empty()) {
        return Err(Error::Model("base model training: no data".into()));
    }
    // Settings checked before the budget is spent: a batch is allocated at once (MAX_BATCH),
    // and a latent step the model file cannot carry would be found only at loading.
    let bad = |what: String| Err(Error::Model(format!("base model training: {what}")));
    if !(1..=MAX_BATCH).contains(&opts.batch) {
        return bad(format!("a batch of {} crops (1..={MAX_BATCH})", opts.batch));
    }
    if !(opts.latent_step > 0.0 && opts.latent_step.is_finite()) {
        return bad(format!(
            "latent step {} (a positive number)",
            opts.latent_step
        ));
    }
    if !(opts.lr > 0.0 && opts.lr.is_finite()) {
        return bad(format!("learning rate {} (a positive number)", opts.lr));
    }
    // A NaN weight made every loss NaN, and the model was refused only when loaded.
    if !(opts.rate_weight >= 0.0 && opts.rate_weight.is_finite()) {
        return bad(format!("rate weight {} (0 or more)", opts.rate_weight));
    }
    // Crops fill non-finite values with their mean: without any finite value the model would
    // learn zeros, and report a loss as if it had learned something.
    if !fields
        .iter()
        .any(|f| f.values.iter().any(|x| x.is_finite()))
    {
        return Err(Error::Model(
            "base model training: no finite values to learn from".into(),
        ));
    }
    let e = candle;
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev)).map_err(e)?;
    let mut rng = Rng::new(opts.seed);
    // Candle's CPU generator cannot be seeded: initialise from ours (uniform, ±1/√fan-in).
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Internal("poisoned".into()))?;
        for (name, shape) in TENSORS {
            let fan_in: usize = if name.starts_with("dec") {
                shape[0] * 16
            } else {
                shape.iter().skip(1).product::<usize>().max(1)
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| bound * rng.uniform()).collect();
            let var = data
                .get(name)
                .ok_or_else(|| Error::Internal(format!("no tensor {name}")))?;
            var.set(&Tensor::from_vec(v, shape, &dev).map_err(e)?)
                .map_err(e)?;
        }
    }
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let start = Instant::now();
    let mut curve = Vec::new();
    for step in 0..opts.max_steps {
        if start.elapsed().as_secs_f64() > opts.seconds {
            break;
        }
        let x = batch(fields, opts.batch.max(1), &mut rng, &dev).map_err(e)?;
        let z = net.encode(&x).map_err(e)?;
        // Quantization is simulated by uniform noise of one latent step (it has no gradient).
        let noise: Vec<f32> = (0..z.elem_count())
            .map(|_| 0.5 * opts.latent_step * rng.uniform())
            .collect();
        let noise = Tensor::from_vec(noise, z.shape(), &dev).map_err(e)?;
        let y = net.decode(&(&z + noise).map_err(e)?).map_err(e)?;
        let mse = (&y - &x)
            .map_err(e)?
            .sqr()
            .map_err(e)?
            .mean_all()
            .map_err(e)?;
        // Rate proxy: small latents cost few bits under the adaptive coder.
        let rate = (z.abs().map_err(e)? / opts.latent_step as f64)
            .map_err(e)?
            .mean_all()
            .map_err(e)?;
        let loss = (&mse + (&rate * opts.rate_weight).map_err(e)?).map_err(e)?;
        opt.backward_step(&loss).map_err(e)?;
        let scalar = |t: &Tensor| t.to_scalar::<f32>().map(f64::from).map_err(e);
        let p = Point {
            step,
            seconds: start.elapsed().as_secs_f64(),
            loss: scalar(&loss)?,
            mse: scalar(&mse)?,
        };
        on_step(&p);
        curve.push(p);
    }
    // Untrained, the model is its random start: refused rather than written as if learned.
    if curve.is_empty() {
        return bad(format!(
            "no step within {} s ({} steps allowed)",
            opts.seconds, opts.max_steps
        ));
    }
    Ok((serialize(&varmap, opts.latent_step)?, curve))
}

/// The model's tensors (names as [`TENSORS`]) and latent step, as safetensors bytes.
fn serialize(varmap: &VarMap, latent_step: f32) -> Result<Vec<u8>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Internal("poisoned".into()))?;
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in TENSORS {
        let var = data
            .get(name)
            .ok_or_else(|| Error::Internal(format!("no tensor {name}")))?;
        let v: Vec<f32> = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(candle)?;
        bufs.push((
            name.to_string(),
            shape.to_vec(),
            bytemuck::cast_slice(&v).to_vec(),
        ));
    }
    let views = bufs
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Model(format!("base model: {e}")))?;
    let meta = HashMap::from([(LATENT_STEP_KEY.to_string(), latent_step.to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Model(format!("base model: {e}")))
}

/// In-situ training (`train=N`): a model fitted to the collected arrays within `seconds`.
pub(crate) fn learn(
    arrays: &crate::pipeline::learn::Collected,
    seconds: f64,
) -> Result<(super::Model, String)> {
    let samples: Vec<Sample> = arrays
        .iter()
        .map(|(v, shape)| Sample {
            values: v,
            shape: *shape,
        })
        .collect();
    let opts = TrainOptions {
        seconds,
        ..TrainOptions::default()
    };
    let (bytes, curve) = fit(&samples, &opts, |_| {})?;
    let m = super::Model::from_safetensors(&bytes).map_err(Error::Model)?;
    let report = format!(
        "{} steps in {:.1} s, loss {:.3e}",
        curve.len(),
        curve.last().map_or(0.0, |p| p.seconds),
        curve.last().map_or(f64::NAN, |p| p.loss)
    );
    Ok((m, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_without_finite_values_are_declined() {
        let nan = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        let fields = [Sample {
            values: &nan,
            shape: [1, 2, 2],
        }];
        let e = fit(&fields, &TrainOptions::default(), |_| {}).unwrap_err();
        assert!(e.to_string().contains("no finite values"), "{e}");
    }
}
