//! `residuum train`: fits the base model (see `residuum::base`) to fields with candle, within a
//! time budget, and writes it as safetensors with its loss curve (CSV and PNG) and the rate and
//! quality it reaches through the codec's own inference.

use crate::bench::Field;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use residuum::base::{self, Model, DEPTH, HIDDEN, LATENT, LATENT_STEP_KEY, TENSORS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct TrainArgs {
    pub out: PathBuf,
    pub seconds: f64,
    pub max_steps: usize,
    pub latent_step: f32,
    pub rate_weight: f64,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
}

/// Crop edge of the training patches.
const CROP: usize = 32;

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
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in [−1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A normalised `[DEPTH, CROP, CROP]` crop of a field's 3D view (edges repeated where the field
/// is smaller), as the codec normalises blocks.
fn crop(f: &Field, rng: &mut Rng) -> Vec<f32> {
    let [a, b, c] = residuum::block::fold3(&f.dims);
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
    let norm = base::Norm::of(&v);
    v.iter()
        .map(|&x| {
            let x = if x.is_finite() { x } else { norm.mean };
            ((x - norm.mean) / norm.scale) as f32
        })
        .collect()
}

fn batch(fields: &[Field], n: usize, rng: &mut Rng, dev: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(n * DEPTH * CROP * CROP);
    for _ in 0..n {
        let f = &fields[rng.below(fields.len())];
        data.extend(crop(f, rng));
    }
    Tensor::from_vec(data, (n, DEPTH, CROP, CROP), dev)
}

pub fn run(fields: &[Field], args: &TrainArgs) -> Result<(), String> {
    let e = |e: candle_core::Error| e.to_string();
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev)).map_err(e)?;
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Candle's CPU generator cannot be seeded: initialise from ours (uniform, ±1/√fan-in).
    for (name, shape) in TENSORS {
        let fan_in: usize = if name.starts_with("dec") {
            shape[0] * 16
        } else {
            shape.iter().skip(1).product::<usize>().max(1)
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| bound * rng.uniform()).collect();
        let data = varmap.data().lock().map_err(|_| "poisoned".to_string())?;
        let var = data.get(name).ok_or(format!("no tensor {name}"))?;
        var.set(&Tensor::from_vec(v, shape, &dev).map_err(e)?)
            .map_err(e)?;
    }
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: args.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let bar = ProgressBar::new(args.max_steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
            .map_err(|e| e.to_string())?,
    );
    let start = Instant::now();
    let mut curve: Vec<(usize, f64, f64, f64)> = Vec::new();
    for step in 0..args.max_steps {
        if start.elapsed().as_secs_f64() > args.seconds {
            break;
        }
        let x = batch(fields, args.batch, &mut rng, &dev).map_err(e)?;
        let z = net.encode(&x).map_err(e)?;
        // Quantization is simulated by uniform noise of one latent step (it has no gradient).
        let noise: Vec<f32> = (0..z.elem_count())
            .map(|_| 0.5 * args.latent_step * rng.uniform())
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
        let rate = (z.abs().map_err(e)? / args.latent_step as f64)
            .map_err(e)?
            .mean_all()
            .map_err(e)?;
        let loss = (&mse + (&rate * args.rate_weight).map_err(e)?).map_err(e)?;
        opt.backward_step(&loss).map_err(e)?;
        let scalar = |t: &Tensor| t.to_scalar::<f32>().map(f64::from).map_err(e);
        let (l, m) = (scalar(&loss)?, scalar(&mse)?);
        curve.push((step, start.elapsed().as_secs_f64(), l, m));
        bar.set_position(step as u64 + 1);
        if step % 10 == 0 {
            bar.set_message(format!("loss {l:.3e}  mse {m:.3e}"));
        }
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    save(&varmap, args.latent_step, &args.out)?;
    let stem = args.out.with_extension("");
    let csv = stem.with_extension("loss.csv");
    let png = stem.with_extension("loss.png");
    let mut text = String::from("step,seconds,loss,mse\n");
    for (s, t, l, m) in &curve {
        text += &format!("{s},{t:.3},{l:.6e},{m:.6e}\n");
    }
    std::fs::write(&csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    crate::plot::loss_curve(
        &curve.iter().map(|c| (c.0, c.2, c.3)).collect::<Vec<_>>(),
        &png,
    )?;
    let model = Model::load(&args.out).map_err(|e| e.to_string())?;
    if std::env::var_os("RESIDUUM_TRAIN_DEBUG").is_some() {
        let x = batch(fields, 1, &mut rng, &dev).map_err(e)?;
        let zc: Vec<f32> = net
            .encode(&x)
            .map_err(e)?
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(e)?;
        let xv: Vec<f32> = x.flatten_all().and_then(|t| t.to_vec1()).map_err(e)?;
        let lat = model.encode_group(&xv, CROP, CROP);
        let zq: Vec<f32> = zc.iter().map(|v| (v / args.latent_step).round()).collect();
        let qz = Tensor::from_vec(
            lat.iter()
                .map(|&q| q as f32 * args.latent_step)
                .collect::<Vec<_>>(),
            (1, LATENT, CROP / 4, CROP / 4),
            &dev,
        )
        .map_err(e)?;
        let yc: Vec<f32> = net
            .decode(&qz)
            .map_err(e)?
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(e)?;
        let yo = model.decoder.decode_group(&lat, CROP / 4, CROP / 4);
        println!(
            "z candle {:?} ours {:?}\ny candle {:?} ours {:?}",
            &zq[..4],
            &lat[..4],
            &yc[..4],
            &yo[..4]
        );
    }
    println!(
        "trained {} steps in {seconds:.1} s; final loss {:.3e}; wrote {}, {}, {}",
        curve.len(),
        curve.last().map_or(f64::NAN, |c| c.2),
        args.out.display(),
        csv.display(),
        png.display()
    );
    for f in fields {
        let (bits, nrmse) = reach(&model, f);
        println!(
            "  {}: base model alone reaches NRMSE {nrmse:.3e} at {bits:.3} bits/value (latents, coded; \
             model decoder {} bytes)",
            f.name,
            model.decoder.to_bytes().len()
        );
    }
    Ok(())
}

/// The rate and quality of the base model alone on a field, through the codec's inference:
/// coded latent bits per value and NRMSE of the prediction over the field's range.
fn reach(model: &Model, f: &Field) -> (f64, f64) {
    let shape = residuum::block::fold3(&f.dims);
    let grid = residuum::block::Grid::new(shape, residuum::block::default_block(shape));
    let (mut bits, mut sq, mut n) = (0usize, 0.0, 0usize);
    let (lo, hi) = residuum::bound::finite_min_max(f.values.iter().map(|&v| v as f64));
    for i in 0..grid.len() {
        let b = grid.block(i);
        let bytes: &[u8] = bytemuck::cast_slice(&f.values);
        let raw = grid.gather_bytes(bytes, residuum::ElementType::F32, &b);
        let v = residuum::codec::raw_to_f64(&raw, residuum::ElementType::F32);
        let p = base::predict(model, &v, b.shape);
        bits += 8 * p.coded_latents.len();
        for (x, y) in v.iter().zip(&p.prediction) {
            if x.is_finite() {
                sq += (x - y) * (x - y);
                n += 1;
            }
        }
    }
    let range = if hi > lo { hi - lo } else { 1.0 };
    (
        bits as f64 / f.values.len() as f64,
        (sq / n.max(1) as f64).sqrt() / range,
    )
}

/// Writes the model's tensors (names as `residuum::base::TENSORS`) and the latent step.
fn save(varmap: &VarMap, latent_step: f32, path: &Path) -> Result<(), String> {
    let data = varmap.data().lock().map_err(|_| "poisoned".to_string())?;
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in TENSORS {
        let var = data.get(name).ok_or(format!("no tensor {name}"))?;
        let t = var.as_tensor();
        if t.dims() != shape {
            return Err(format!("{name}: shape {:?}, expected {shape:?}", t.dims()));
        }
        let v: Vec<f32> = t
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| e.to_string())?;
        bufs.push((
            name.to_string(),
            shape.to_vec(),
            bytemuck::cast_slice(&v).to_vec(),
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = bufs
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let meta = HashMap::from([(LATENT_STEP_KEY.to_string(), latent_step.to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
