//! Training an NGLR network with candle (feature `train`): samples of features and the
//! residuals of each block's own predictor from a collection of fields, quantized as LBRC quantizes them at NRMSE 1e-4, 1e-5
//! and 1e-6 (non-finite values filled as the codec fills them); a float network fitted with a
//! loss close to the bits a residual costs; then its weights in integers for [`Network`].

use super::network::MAX_HIDDEN;
use super::{Network, CLAMP, FEATURES, FRAC};
pub use crate::base::train::Sample as Field;
use crate::block::{default_block, Grid};
use crate::bound::{finite_min_max, finite_min_max_of};
use crate::dtype::ElementType;
use crate::error::{Error, Result};
use crate::residual::predict;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub hidden: usize,
    /// The optimizer's time budget (the samples are gathered before it starts).
    pub seconds: f64,
    pub max_steps: usize,
    pub lr: f64,
    pub batch: usize,
    /// At most this many samples per field and target (and 1.2 million in all).
    pub per_field: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hidden: 8,
            seconds: 30.0,
            max_steps: 30_000,
            lr: 3e-3,
            batch: 2048,
            per_field: 150_000,
            seed: 1,
        }
    }
}

/// Progress of a fit.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub step: usize,
    pub seconds: f64,
    /// Mean loss of the batch (see [`fit`]).
    pub loss: f64,
}

/// The most samples a fit keeps (21 f32 features each: 100 MB).
pub(crate) const MAX_SAMPLES: usize = 1_200_000;

/// The targets whose quantization the samples come from.
const TARGETS: [f64; 3] = [1e-4, 1e-5, 1e-6];

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("NGLR training: {e}"))
}

/// Features (as floats, 1.0 per block scale) and targets (the inner predictor's residual over
/// the scale).
fn samples(fields: &[Field], opts: &Options) -> (Vec<f32>, Vec<f32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let per_field = opts
        .per_field
        .min(MAX_SAMPLES / TARGETS.len() / fields.len().max(1));
    for f in fields {
        let (lo, hi) = finite_min_max(f.values.iter().map(|&v| v as f64));
        if hi <= lo {
            continue;
        }
        let grid = Grid::new(f.shape, default_block(f.shape));
        for t in TARGETS {
            let step = t * (hi - lo) * 12f64.sqrt();
            let per_block = (per_field / grid.len()).max(1);
            for bi in 0..grid.len() {
                let b = grid.block(bi);
                if b.shape[1] < 2 || b.shape[2] < 2 {
                    continue;
                }
                let bytes: &[u8] = bytemuck::cast_slice(f.values);
                let raw = grid.gather_bytes(bytes, ElementType::F32, &b);
                let v = ElementType::F32.to_f64s(&raw);
                let (blo, bhi) = finite_min_max_of(&v);
                let mid = 0.5 * (blo + bhi);
                let quantize = |x: f64| match x.is_finite() {
                    true => ((x - mid) / step).round() as i64,
                    false => 0,
                };
                let mut q: Vec<i64> = v.iter().map(|&x| quantize(x)).collect();
                // Masked values as the codec treats them: predicted, so their neighbours see
                // a smooth continuation; not sampled themselves.
                let masked: Vec<usize> = (0..v.len()).filter(|&i| !v[i].is_finite()).collect();
                let inner = predict::choose(&q, b.shape);
                predict::fill(inner.as_ref(), &mut q, b.shape, &masked);
                let stride = (q.len() / per_block).max(1) | 1;
                let at = (0..q.len()).step_by(stride).filter(|&i| v[i].is_finite());
                let (d, found) = super::samples(inner.as_ref(), &q, b.shape, at);
                for (feat, r) in found {
                    x.extend(feat.iter().map(|&v| v as f32 / (1 << FRAC) as f32));
                    y.push(r as f32 / d as f32);
                }
            }
        }
    }
    (x, y)
}

/// The largest shift s ≤ `max` with |v|·2^s ≤ `limit` for every v.
fn shift_for(v: &[f32], limit: f32, max: u32) -> u32 {
    let m = v.iter().fold(0f32, |a, &b| a.max(b.abs()));
    (0..=max)
        .rev()
        .find(|&s| m * (1u64 << s) as f32 <= limit)
        .unwrap_or(0)
}

/// The float network's weights in integers: layer-1 weights with shift s1 (and its biases at
/// s1 + FRAC, as the features carry FRAC), layer 2 likewise with s2. Layer 2's weights are
/// kept small enough that its sum, `hidden` activations of at most CLAMP and the bias, fits
/// i32 (at 64 units and 8191 it wrapped: the same on both sides, but a wrong bias).
fn quantize(w1: &[f32], b1: &[f32], w2: &[f32], b2: f32, hidden: usize) -> Result<Network> {
    let bias_limit = (1 << 29) as f32 / 256.0;
    let w2_limit = ((i32::MAX - (1 << 29)) / (hidden.max(1) as i32 * CLAMP)).min(8191);
    let s1 = shift_for(w1, 8191.0, 20).min(shift_for(b1, bias_limit, 20));
    let s2 = shift_for(w2, w2_limit as f32, 20).min(shift_for(&[b2], bias_limit, 20));
    let q16 = |v: f32, s: u32| (v * (1u64 << s) as f32).round() as i16;
    let q32 = |v: f32, s: u32| (v as f64 * (1u64 << (s + FRAC)) as f64).round() as i32;
    Network::new(
        hidden,
        w1.iter().map(|&w| q16(w, s1)).collect(),
        b1.iter().map(|&b| q32(b, s1)).collect(),
        s1,
        w2.iter().map(|&w| q16(w, s2)).collect(),
        q32(b2, s2),
        s2,
    )
}

/// Fits a network to `fields` within `opts`; `progress` sees every step. The loss is
/// ln(e² + 0.1) of the error e in block scales: close to the bits a residual costs (its
/// logarithm), so large residuals that cost little more do not dominate.
pub fn fit(
    fields: &[Field],
    opts: &Options,
    mut progress: impl FnMut(Point),
) -> Result<(Network, Vec<Point>)> {
    // Checked before sampling and the budget: a network of more units could not be carried,
    // and its weights are allocated at once.
    if !(1..=MAX_HIDDEN).contains(&opts.hidden) {
        return Err(Error::Model(format!(
            "NGLR training: {} hidden units (1..={MAX_HIDDEN})",
            opts.hidden
        )));
    }
    if opts.batch == 0 || !(opts.lr > 0.0 && opts.lr.is_finite()) {
        return Err(Error::Model(format!(
            "NGLR training: batch {} and learning rate {} (both positive)",
            opts.batch, opts.lr
        )));
    }
    let (xs, ys) = samples(fields, opts);
    // The budget is the optimizer's: gathering the samples (bounded by the values given) took
    // all of a 3 s budget on a loaded machine, leaving no step.
    let start = Instant::now();
    let n = ys.len();
    if n < 64 {
        return Err(Error::Model(format!(
            "NGLR training: {n} samples (fields too small or constant)"
        )));
    }
    let dev = Device::Cpu;
    let e = candle;
    let x = Tensor::from_vec(xs, (n, FEATURES), &dev).map_err(e)?;
    let y = Tensor::from_vec(ys, (n, 1), &dev).map_err(e)?;
    let h = opts.hidden;
    let mut rng = crate::base::train::Rng::new(opts.seed);
    let init: Vec<f32> = (0..FEATURES * h)
        .map(|_| rng.uniform() * (3.0 / FEATURES as f32).sqrt())
        .collect();
    let w1 =
        Var::from_tensor(&Tensor::from_vec(init, (FEATURES, h), &dev).map_err(e)?).map_err(e)?;
    let b1 = Var::zeros(h, DType::F32, &dev).map_err(e)?;
    // The output starts at zero: training starts from the inner predictor alone.
    let w2 = Var::zeros((h, 1), DType::F32, &dev).map_err(e)?;
    let b2 = Var::zeros(1, DType::F32, &dev).map_err(e)?;
    let vars = vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()];
    let mut opt = candle_nn::AdamW::new(
        vars,
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let mut curve: Vec<Point> = Vec::new();
    for step in 0..opts.max_steps {
        if start.elapsed().as_secs_f64() > opts.seconds {
            break;
        }
        let idx: Vec<u32> = (0..opts.batch.min(n))
            .map(|_| rng.below(n) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, opts.batch.min(n), &dev).map_err(e)?;
        let bx = x.index_select(&idx, 0).map_err(e)?;
        let by = y.index_select(&idx, 0).map_err(e)?;
        let hid = bx
            .matmul(&w1)
            .map_err(e)?
            .broadcast_add(&b1)
            .map_err(e)?
            .relu()
            .map_err(e)?
            .minimum(CLAMP as f32 / (1 << FRAC) as f32)
            .map_err(e)?;
        let out = hid.matmul(&w2).map_err(e)?.broadcast_add(&b2).map_err(e)?;
        let d = (out - by).map_err(e)?;
        let loss = ((d.sqr().map_err(e)? + 1e-1).map_err(e)?.log().map_err(e)?)
            .mean_all()
            .map_err(e)?;
        opt.backward_step(&loss).map_err(e)?;
        let p = Point {
            step,
            seconds: start.elapsed().as_secs_f64(),
            loss: loss.to_scalar::<f32>().map_err(e)? as f64,
        };
        progress(p);
        curve.push(p);
    }
    // Untrained, the network's output is 0: a block coded with it pays for nothing.
    if curve.is_empty() {
        return Err(Error::Model(format!(
            "NGLR training: no step within {} s ({} steps allowed)",
            opts.seconds, opts.max_steps
        )));
    }
    let flat = |v: &Var| -> Result<Vec<f32>> {
        v.as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(e)
    };
    let net = quantize(&flat(&w1)?, &flat(&b1)?, &flat(&w2)?, flat(&b2)?[0], h)?;
    Ok((net, curve))
}

/// In-situ training (`train_nglr=N`): a network fitted to the collected arrays within
/// `seconds`.
pub(crate) fn learn(
    arrays: &crate::pipeline::learn::Collected,
    seconds: f64,
) -> Result<(Network, String)> {
    let fields: Vec<Field> = arrays
        .iter()
        .map(|(v, shape)| Field {
            values: v,
            shape: *shape,
        })
        .collect();
    let opts = Options {
        seconds,
        ..Options::default()
    };
    let (net, curve) = fit(&fields, &opts, |_| {})?;
    let report = format!(
        "{} steps in {:.1} s, loss {:.4}",
        curve.len(),
        curve.last().map_or(0.0, |p| p.seconds),
        curve.last().map_or(f64::NAN, |p| p.loss)
    );
    Ok((net, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_two_sums_do_not_wrap_at_the_most_hidden_units() {
        // Every activation at its clamp, layer 2's weights and bias at their largest: the sum
        // of 64 units wrapped past i32 (a negative bias for a large positive output).
        let h = MAX_HIDDEN;
        let net = quantize(
            &vec![1.0; FEATURES * h],
            &vec![0.0; h],
            &vec![1.9997; h],
            500.0,
            h,
        )
        .unwrap();
        let want = h as f64 * 1.9997 * (CLAMP as f64 / (1 << FRAC) as f64) + 500.0;
        let got = net.bias(&[4096; FEATURES], 1) as f64;
        assert!((got / want - 1.0).abs() < 1e-2, "{got} vs {want}");
    }

    #[test]
    fn a_fit_that_ran_no_step_is_an_error() {
        // Otherwise a network of zeros, whose blocks cost more than without it.
        let values: Vec<f32> = (0..64 * 64)
            .map(|i| ((i % 64) as f32 * 0.1).sin())
            .collect();
        let fields = [Field {
            values: &values,
            shape: [1, 64, 64],
        }];
        let opts = Options {
            seconds: 0.0,
            ..Options::default()
        };
        let Err(e) = fit(&fields, &opts, |_| {}) else {
            panic!("a fit with no step ran")
        };
        assert!(e.to_string().contains("no step"), "{e}");
    }
}
