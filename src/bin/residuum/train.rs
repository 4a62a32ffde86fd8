//! `residuum train`: fits the base model (`residuum::internals::base::train`) to fields within a time
//! budget and writes it as safetensors with its loss curve (CSV and PNG) and the rate and
//! quality it reaches through the codec's own inference. With `--nglr`, an NGLR network
//! instead (`residuum::internals::nglr::train`), then what it saves on each field through the
//! codec.

use crate::fields::{field_files, load_fields, load_raw, mark_missing, Field};
use indicatif::{ProgressBar, ProgressStyle};
use residuum::internals::base;
use residuum::internals::base::train::{fit, Sample, TrainOptions};
use residuum::Model;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Fields: .f32 files named with their shape, .npy files, directories of them, or raw
    /// files (not directories) with --dims.
    #[arg(long, num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// Shape of raw files whose name does not carry it, e.g. 100x64x128 (f32).
    #[arg(long)]
    dims: Option<String>,
    /// Values equal to this mark missing data, as the operator's `fill=` (e.g. 1e20, -999):
    /// learnt from and measured as NaN, left out like it.
    #[arg(long, allow_negative_numbers = true)]
    fill: Option<f64>,
    #[arg(long, short)]
    pub out: PathBuf,
    /// Time budget in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// At most this many optimizer steps (default 5000; 30000 with --nglr).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Quantization step of the latents.
    #[arg(long, default_value_t = 0.05)]
    latent_step: f32,
    /// Weight of the rate term (mean latent magnitude in steps) against the MSE.
    #[arg(long, default_value_t = 1e-5)]
    rate_weight: f64,
    /// Learning rate (default 2e-3; 3e-3 with --nglr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (default 16 crops; 2048 samples with --nglr).
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Train an NGLR network (for `nglr=`) instead of a base model; --steps, --lr and --batch
    /// then default to 30000, 3e-3 and 2048.
    #[arg(long)]
    pub nglr: bool,
    /// With --nglr: one network per collection of the fields (files sharing their name's first
    /// word), each measured on its fields; --out is then a directory, with the benchmark's
    /// table as CSV and PNG.
    #[arg(long, requires = "nglr")]
    pub each_collection: bool,
    /// Hidden units of the NGLR network.
    #[arg(long, default_value_t = 8)]
    pub hidden: usize,
}

pub fn run(args: &TrainArgs) -> Result<(), String> {
    // Before the budget is spent: no output may be a field trained on.
    let inputs = field_files(&args.data)?;
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let stem = args.out.with_extension("");
    for out in [
        args.out.clone(),
        stem.with_extension("loss.csv"),
        stem.with_extension("loss.png"),
        stem.with_extension("eval.csv"),
    ] {
        crate::input::not_an_input(&out, &inputs)?;
    }
    let mut fields = match &args.dims {
        None => load_fields(&args.data)?,
        Some(d) => load_raw(&args.data, d)?,
    };
    if fields.is_empty() {
        return Err("no fields to train on".into());
    }
    mark_missing(&mut fields, args.fill);
    if args.nglr {
        return crate::train_nglr::run(args, &fields);
    }
    let options = TrainOptions {
        seconds: args.seconds,
        max_steps: args.steps.unwrap_or(5000),
        latent_step: args.latent_step,
        rate_weight: args.rate_weight,
        lr: args.lr.unwrap_or(2e-3),
        batch: args.batch.unwrap_or(16),
        seed: args.seed,
    };
    let samples: Vec<Sample> = fields
        .iter()
        .map(|f| Sample {
            values: &f.values,
            shape: residuum::internals::fold3(&f.dims),
        })
        .collect();
    let bar = steps_bar(options.max_steps)?;
    let (bytes, curve) = fit(&samples, &options, |p| {
        bar.set_position(p.step as u64 + 1);
        if p.step % 10 == 0 {
            bar.set_message(format!("loss {:.3e}  mse {:.3e}", p.loss, p.mse));
        }
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let seconds = curve.last().map_or(0.0, |p| p.seconds);
    // Loaded before it is written: a model that cannot be used leaves an earlier one in place.
    let model = Model::from_safetensors(&bytes).map_err(|e| {
        format!(
            "the trained model cannot be loaded ({e}); {} left as it was",
            args.out.display()
        )
    })?;
    crate::input::write_output(&args.out, &bytes, &inputs)?;
    let csv = stem.with_extension("loss.csv");
    let png = stem.with_extension("loss.png");
    let mut text = String::from("step,seconds,loss,mse\n");
    for p in &curve {
        text += &format!("{},{:.3},{:.6e},{:.6e}\n", p.step, p.seconds, p.loss, p.mse);
    }
    std::fs::write(&csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    let points: Vec<(usize, f64, f64)> = curve.iter().map(|p| (p.step, p.loss, p.mse)).collect();
    crate::plot::loss_curve(&points, &png)?;
    println!(
        "trained {} steps in {seconds:.1} s; final loss {:.3e}; wrote {}, {}, {}",
        curve.len(),
        curve.last().map_or(f64::NAN, |p| p.loss),
        args.out.display(),
        csv.display(),
        png.display()
    );
    for f in &fields {
        let (bits, nrmse) = reach(&model, f);
        println!(
            "  {}: base model alone reaches NRMSE {nrmse:.3e} at {bits:.3} bits/value (latents, coded; \
             model decoder {} bytes)",
            f.name,
            model.decoder.bytes().len()
        );
    }
    Ok(())
}

/// A progress bar over training steps.
pub fn steps_bar(steps: usize) -> Result<ProgressBar, String> {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
            .map_err(|e| e.to_string())?,
    );
    Ok(bar)
}

/// The rate and quality of the base model alone on a field, through the codec's inference:
/// coded latent bits per value and NRMSE of the prediction over the field's range.
fn reach(model: &Model, f: &Field) -> (f64, f64) {
    let shape = residuum::internals::fold3(&f.dims);
    let grid = residuum::internals::Grid::new(shape, residuum::internals::default_block(shape));
    let (mut bits, mut sq, mut n) = (0usize, 0.0, 0usize);
    let (lo, hi) = residuum::internals::finite_min_max(f.values.iter().map(|&v| v as f64));
    for i in 0..grid.len() {
        let b = grid.block(i);
        let bytes: &[u8] = bytemuck::cast_slice(&f.values);
        let raw = grid.gather_bytes(bytes, residuum::ElementType::F32, &b);
        let v = residuum::ElementType::F32.to_f64s(&raw);
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
