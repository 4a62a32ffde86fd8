//! `residuum bench`: residuum against SZ3 (interpolation and Lorenzo+regression), ZFP and SPERR
//! (point-wise error and PSNR modes) on the same fields and NRMSE targets, in one run. Each peer
//! gets its best chance: the largest error bound (for SPERR's PSNR mode, the lowest PSNR) whose
//! global NRMSE stays within the target. Prints a table; writes a CSV and a PNG.

#[cfg(not(feature = "peers"))]
use crate::fields::Sample as Elem;
use crate::fields::{load_any, mark_missing, AnyField, Field, Sample};
#[cfg(feature = "peers")]
use crate::peers::{Peer, PeerSample as Elem};
use crate::results::{write_csv, Row};
use indicatif::{ProgressBar, ProgressStyle};
use residuum::internals::quality;
use residuum::internals::{fold3, Grid};
use residuum::Codec;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A codec's compression and decompression of one field at one setting, as closures that the
/// timing rounds call (their outputs were checked when the row was made).
struct Timed<'a> {
    compress: Box<dyn FnMut() -> Result<(), String> + 'a>,
    decompress: Box<dyn FnMut() -> Result<(), String> + 'a>,
}

/// Best of `reps` timings of each codec's compression and decompression, in seconds, taken in
/// rounds that run every codec once: a slow spell of the machine then falls on all of them
/// alike, where timing one codec's repetitions after another's put it on one (speeds of the
/// same binary moved by 10-20 % between runs).
fn time_interleaved(jobs: &mut [Timed], reps: usize) -> Result<Vec<(f64, f64)>, String> {
    let mut best = vec![(f64::INFINITY, f64::INFINITY); jobs.len()];
    for _ in 0..reps.max(1) {
        for (job, best) in jobs.iter_mut().zip(&mut best) {
            let t = Instant::now();
            (job.compress)()?;
            best.0 = best.0.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            (job.decompress)()?;
            best.1 = best.1.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(best)
}

/// A row's speeds from the times of its field's compression and decompression.
fn set_speeds(row: &mut Row, bytes: usize, (tc, td): (f64, f64)) {
    let mb = bytes as f64 / 1e6;
    row.compress_mbs = mb / tc;
    row.decompress_mbs = mb / td;
}

#[cfg(feature = "peers")]
fn global_nrmse<T: Sample>(orig: &[T], back: &[T], range: f64) -> f64 {
    let (mut sq, mut n) = (0.0, 0usize);
    for (&x, &y) in orig.iter().zip(back) {
        if x.is_finite() {
            let d = x.to_f64() - y.to_f64();
            sq += d * d;
            n += 1;
        }
    }
    // As `quality` measures residuum: the RMSE itself where the range is 0 (any error shows).
    let rms = if n == 0 { 0.0 } else { (sq / n as f64).sqrt() };
    let specials_changed = orig
        .iter()
        .zip(back)
        .any(|(x, y)| !x.is_finite() && x.bits() != y.bits());
    if specials_changed {
        // Missing data lost: no bound is met.
        f64::INFINITY
    } else if range > 0.0 {
        rms / range
    } else {
        rms
    }
}

/// residuum on `threads` threads (compression and decompression), with more parameters and
/// a label for variants: its row (speeds still to time) and its timing closures.
fn measure_residuum<'a, T: Elem>(
    f: &'a Field<T>,
    target: f64,
    threads: usize,
    variant: Option<(&str, &[(&str, String)])>,
) -> Result<(Row, Timed<'a>), String> {
    let mut params = vec![
        ("nrmse", target.to_string()),
        ("threads", threads.to_string()),
    ];
    params.extend(variant.iter().flat_map(|v| v.1.iter().cloned()));
    let codec = Codec::from_pairs(params).map_err(|e| e.to_string())?;
    let s = codec
        .compress(&f.dims, &f.values)
        .map_err(|e| e.to_string())?;
    let info = residuum::stream_info(&s).map_err(|e| e.to_string())?;
    let bytes = s.len();
    // Decoding on the codec's threads, into a new array as the peers' decoders do.
    let decode = {
        let codec = codec.clone();
        move || {
            let mut back = vec![T::default(); f.values.len()];
            codec
                .decode_into(&s, bytemuck::cast_slice_mut(&mut back))
                .map(|_| back)
                .map_err(|e| e.to_string())
        }
    };
    let back = decode()?;
    let o: Vec<f64> = f.values.iter().map(|v| v.to_f64()).collect();
    let b: Vec<f64> = back.iter().map(|v| v.to_f64()).collect();
    let q = quality(&o, &b, &Grid::new(fold3(&f.dims), info.block));
    // The peers' rows meet the target by their search; residuum's are held to it as well.
    let worst = q.worst_block_nrmse;
    if q.specials_changed > 0 || worst.is_nan() || worst > target * (1.0 + 1e-9) {
        return Err(format!(
            "{}: residuum missed NRMSE {target} (worst block {:e}, {} special values changed)",
            f.name, worst, q.specials_changed
        ));
    }
    let row = Row {
        field: f.name.clone(),
        target,
        codec: match (variant, threads) {
            (Some((label, _)), _) => label.to_string(),
            (None, 1) => "residuum".into(),
            (None, _) => format!("residuum {threads} threads"),
        },
        bytes,
        cr: size_of_val(&f.values[..]) as f64 / bytes as f64,
        nrmse: q.nrmse,
        worst_block: q.worst_block_nrmse,
        compress_mbs: f64::NAN,
        decompress_mbs: f64::NAN,
        bound: target,
        blocks: info.grid().len(),
    };
    let timed = Timed {
        compress: Box::new(move || {
            codec
                .compress(&f.dims, &f.values)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        decompress: Box::new(move || decode().map(drop)),
    };
    Ok((row, timed))
}

/// A peer at the largest bound whose global NRMSE is within `target`.
#[cfg(feature = "peers")]
fn measure_peer<T: Elem>(
    peer: Peer,
    f: &Field<T>,
    target: f64,
    range: f64,
) -> Result<(Row, Timed<'_>), String> {
    let eval = |eb: f64| -> Result<(usize, f64), String> {
        let c = peer.compress(&f.values, &f.dims, eb)?;
        let back: Vec<T> = peer.decompress(&c, f.values.len(), &f.dims, eb)?;
        Ok((c.len(), global_nrmse(&f.values, &back, range)))
    };
    // Bracket, then bisect geometrically. Where the range is 0 (a constant field, or none of
    // it finite) every bound meets the target: the peers get one at the values' own precision
    // (a bound of 0 is an error for some of them), and no search.
    let scale = f
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.to_f64().abs()));
    // The type's precision: an f32's ulp over an f64's is 2^29.
    let epsilon = if size_of::<T>() == 4 {
        f64::from(f32::EPSILON)
    } else {
        f64::EPSILON
    };
    let mut eb = if range > 0.0 {
        target * range * 3f64.sqrt()
    } else {
        (scale * epsilon).max(1e-300)
    };
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    for _ in 0..60 {
        let (_, n) = eval(eb)?;
        if n <= target {
            good = Some(eb);
            if bad.is_some() || range == 0.0 {
                break;
            }
            eb *= 2.0;
        } else {
            bad = Some(eb);
            if good.is_some() {
                break;
            }
            eb *= 0.5;
        }
    }
    let mut good = good.ok_or(format!("{}: no bound meets NRMSE {target}", peer.name()))?;
    if let Some(mut bad) = bad {
        for _ in 0..10 {
            let mid = (good * bad).sqrt();
            if eval(mid)?.1 <= target {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    let c = peer.compress(&f.values, &f.dims, good)?;
    let back: Vec<T> = peer.decompress(&c, f.values.len(), &f.dims, good)?;
    let row = Row {
        field: f.name.clone(),
        target,
        codec: peer.name().into(),
        bytes: c.len(),
        cr: size_of_val(&f.values[..]) as f64 / c.len() as f64,
        nrmse: global_nrmse(&f.values, &back, range),
        worst_block: f64::NAN,
        compress_mbs: f64::NAN,
        decompress_mbs: f64::NAN,
        bound: good,
        blocks: 0,
    };
    let timed = Timed {
        compress: Box::new(move || peer.compress(&f.values, &f.dims, good).map(drop)),
        decompress: Box::new(move || {
            peer.decompress::<T>(&c, f.values.len(), &f.dims, good)
                .map(drop)
        }),
    };
    Ok((row, timed))
}

/// The data's own storage step: the smallest gap between distinct finite values (0 if none).
fn storage_step<T: Sample>(v: &[T]) -> f64 {
    // f32 widens exactly: the same gaps.
    let mut s: Vec<f64> = v
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| x.to_f64())
        .collect();
    s.sort_by(f64::total_cmp);
    s.dedup();
    s.windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min)
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Fields: .f32 and .f64 files named with their shape (e.g. x_100x64x128.f32), .npy files
    /// (float32 or float64), or directories of them.
    #[arg(default_value = "../shared/data")]
    inputs: Vec<PathBuf>,
    /// NRMSE targets.
    #[arg(long, value_delimiter = ',', default_value = "1e-4,1e-5,1e-6")]
    targets: Vec<f64>,
    /// Where bench.csv and rate_distortion.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Timing rounds, each timing every codec once (the best of each counts).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// A base model (`residuum train`): also measure base+LBRC, base+GAE, GAE alone and the
    /// codec's own per-block choice.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Values equal to this mark missing data, as the operator's `fill=` (e.g. 1e20, -999):
    /// every codec gets them as NaN (exact, outside the range and the error), not as data.
    #[arg(long, allow_negative_numbers = true)]
    fill: Option<f64>,
}

/// The variants measured with a base model: label and parameters (model bytes are in the
/// streams, so in every ratio).
fn variants(model: &Path) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let m = ("model", model.display().to_string());
    vec![
        ("residuum GAE", vec![("residual", "gae".into())]),
        (
            "residuum base+LBRC",
            vec![m.clone(), ("base", "model".into())],
        ),
        (
            "residuum base+GAE",
            vec![
                m.clone(),
                ("base", "model".into()),
                ("residual", "gae".into()),
            ],
        ),
        ("residuum base auto", vec![m]),
    ]
}

/// What every field's measurement shares.
struct Run<'a> {
    args: &'a BenchArgs,
    variants: &'a [(&'static str, Vec<(&'static str, String)>)],
    bar: ProgressBar,
    rows: Vec<Row>,
    floors: Vec<(String, f64, f64)>,
}

impl Run<'_> {
    /// Every codec on field `f` at every target, timed in rounds per target.
    fn field<T: Elem>(&mut self, f: &Field<T>) -> Result<(), String> {
        let range = residuum::internals::finite_range(f.values.iter().map(|v| v.to_f64()));
        let step = storage_step(&f.values);
        for &t in &self.args.targets {
            // Below the data's own storage step every codec turns lossless: flagged in the table
            // (and still counted).
            if t * range * 12f64.sqrt() < step {
                self.floors.push((f.name.clone(), t, step));
            }
            let bar = &self.bar;
            let mut here = Vec::new();
            for threads in [1, 2] {
                bar.set_message(format!("{} {t:e} residuum {threads}T", f.name));
                here.push(measure_residuum(f, t, threads, None)?);
                bar.inc(1);
            }
            for (label, params) in self.variants {
                bar.set_message(format!("{} {t:e} {label}", f.name));
                here.push(measure_residuum(f, t, 1, Some((label, params)))?);
                bar.inc(1);
            }
            #[cfg(feature = "peers")]
            for peer in Peer::ALL {
                bar.set_message(format!("{} {t:e} {}", f.name, peer.name()));
                here.push(measure_peer(peer, f, t, range)?);
                bar.inc(1);
            }
            bar.set_message(format!("{} {t:e} timing", f.name));
            let (mut here, mut jobs): (Vec<Row>, Vec<Timed>) = here.into_iter().unzip();
            let times = time_interleaved(&mut jobs, self.args.reps)?;
            for (row, time) in here.iter_mut().zip(times) {
                set_speeds(row, size_of_val(&f.values[..]), time);
            }
            self.rows.append(&mut here);
        }
        Ok(())
    }
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    if !cfg!(feature = "peers") {
        eprintln!("residuum: built without the `peers` feature: measuring residuum alone");
    }
    let mut fields = load_any(&args.inputs)?;
    if fields.is_empty() {
        return Err("no .f32, .f64 or .npy fields found".into());
    }
    // Rows, table and plot know a field by its name.
    for (i, f) in fields.iter().enumerate() {
        // SZ3, ZFP and SPERR take at least 2 values (SZ3 throws a C++ exception at 1, which
        // aborts the run midway).
        if f.len() < 2 {
            return Err(format!(
                "field {}: {} value(s); the peers compress 2 or more",
                f.name(),
                f.len()
            ));
        }
        if fields[..i].iter().any(|g| g.name() == f.name()) {
            return Err(format!(
                "two fields are named {}: rename one (the table tells fields by name)",
                f.name()
            ));
        }
    }
    // Before hours of measuring, not after.
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for f in &mut fields {
        match f {
            AnyField::F32(f) => mark_missing(std::slice::from_mut(f), args.fill),
            AnyField::F64(f) => mark_missing(std::slice::from_mut(f), args.fill),
        }
    }
    #[cfg(feature = "peers")]
    let peers = Peer::ALL.len();
    #[cfg(not(feature = "peers"))]
    let peers = 0;
    let variants = args.model.as_deref().map(variants).unwrap_or_default();
    let per = 2 + peers + variants.len();
    let bar = ProgressBar::new((fields.len() * args.targets.len() * per) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}").unwrap(),
    );
    let mut run = Run {
        args,
        variants: &variants,
        bar,
        rows: Vec::new(),
        floors: Vec::new(),
    };
    for f in &fields {
        match f {
            AnyField::F32(f) => run.field(f)?,
            AnyField::F64(f) => run.field(f)?,
        }
    }
    run.bar.finish_and_clear();
    let (rows, floors) = (run.rows, run.floors);
    let csv = args.out.join("bench.csv");
    write_csv(&rows, &csv)?;
    let png = args.out.join("rate_distortion.png");
    crate::plot::rate_distortion(
        &rows,
        &fields
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>(),
        &png,
    )?;
    print!("{}", report(&rows, &args.targets, &floors));
    if !variants.is_empty() {
        print!("{}", report_variants(&rows, &args.targets));
    }
    println!("wrote {} and {}", csv.display(), png.display());
    Ok(())
}

fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// The comparison table and per-target summary.
/// The fields measured at target `t`, in order.
fn fields_at(rows: &[Row], t: f64) -> Vec<&str> {
    let mut fields: Vec<&str> = rows
        .iter()
        .filter(|r| r.target == t)
        .map(|r| r.field.as_str())
        .collect();
    fields.dedup();
    fields
}

fn find<'a>(rows: &'a [Row], field: &str, t: f64, codec: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.field == field && r.target == t && r.codec == codec)
}

/// With a base model: each variant's ratio, speeds, and LBRC against GAE on the same base.
fn report_variants(rows: &[Row], targets: &[f64]) -> String {
    let names = [
        "residuum",
        "residuum base+LBRC",
        "residuum base+GAE",
        "residuum GAE",
        "residuum base auto",
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nbase model variants (CR; compress/decompress MB/s, 1 thread; model bytes included):"
    );
    let _ = writeln!(
        s,
        "{:<34} {:>7} {:>18} {:>18} {:>18} {:>18} {:>18} {:>8}",
        "field",
        "target",
        "LBRC alone",
        "base+LBRC",
        "base+GAE",
        "GAE alone",
        "base auto",
        "best peer"
    );
    for &t in targets {
        let mut lbrc_over_gae = Vec::new();
        let mut base_over_alone = Vec::new();
        for f in fields_at(rows, t) {
            let get = |c: &str| find(rows, f, t, c);
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    get(n).map_or("-".into(), |r| {
                        format!("{:.3} {:.0}/{:.0}", r.cr, r.compress_mbs, r.decompress_mbs)
                    })
                })
                .collect();
            let best = rows
                .iter()
                .filter(|r| r.field == f && r.target == t && !r.codec.starts_with("residuum"))
                .map(|r| r.cr)
                .fold(f64::NAN, f64::max);
            let _ = writeln!(
                s,
                "{f:<34} {t:>7.0e} {:>18} {:>18} {:>18} {:>18} {:>18} {best:>8.3}",
                cells[0], cells[1], cells[2], cells[3], cells[4]
            );
            if let (Some(a), Some(b), Some(alone)) = (get(names[1]), get(names[2]), get(names[0])) {
                lbrc_over_gae.push(a.cr / b.cr);
                base_over_alone.push(a.cr / alone.cr);
            }
        }
        let _ = writeln!(
            s,
            "  {t:.0e}: base+LBRC / base+GAE geomean {:.3}; base+LBRC / LBRC alone geomean {:.3}",
            geomean(&lbrc_over_gae),
            geomean(&base_over_alone)
        );
    }
    s
}

fn report(rows: &[Row], targets: &[f64], floors: &[(String, f64, f64)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<34} {:>7} {:>8} {:>8} {:<24} {:>6} {:>9} {:>9} {:>7}",
        "field", "target", "CR", "best", "best peer", "ratio", "comp x", "decomp x", "2T/1T"
    );
    // Per target: CR ratios, compression and decompression speed ratios, 2-thread scaling.
    type Summary = (f64, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut summary: Vec<Summary> = Vec::new();
    for &t in targets {
        let (mut ratios, mut comp, mut decomp, mut scale) = (vec![], vec![], vec![], vec![]);
        for f in fields_at(rows, t) {
            let get = |c: &str| find(rows, f, t, c);
            let (Some(one), Some(two)) = (get("residuum"), get("residuum 2 threads")) else {
                continue;
            };
            let peers: Vec<&Row> = rows
                .iter()
                .filter(|r| r.field == f && r.target == t && !r.codec.starts_with("residuum"))
                .collect();
            let best = peers.iter().max_by(|a, b| a.cr.total_cmp(&b.cr));
            // Speed against SZ3 in the mode that compresses best, when it stayed lossy (where no
            // bound meets the target SZ3 falls back to lossless coding: another job).
            let sz3 = peers
                .iter()
                .filter(|r| r.codec.starts_with("SZ3") && r.nrmse > 0.0)
                .max_by(|a, b| a.cr.total_cmp(&b.cr));
            let floor = floors.iter().any(|(n, ft, _)| n == f && *ft == t);
            let ratio = best.map(|b| one.cr / b.cr);
            let (cx, dx) = sz3.map_or((f64::NAN, f64::NAN), |z| {
                (
                    one.compress_mbs / z.compress_mbs,
                    one.decompress_mbs / z.decompress_mbs,
                )
            });
            let _ = writeln!(
                s,
                "{:<34} {:>7.0e} {:>8.3} {:>8.3} {:<24} {:>6.3} {:>9.2} {:>9.2} {:>7.2}{}",
                f,
                t,
                one.cr,
                best.map_or(f64::NAN, |b| b.cr),
                best.map_or("-", |b| b.codec.as_str()),
                ratio.unwrap_or(f64::NAN),
                cx,
                dx,
                two.compress_mbs / one.compress_mbs,
                if floor {
                    "  (target below the data's storage step)"
                } else {
                    ""
                }
            );
            // Every field counts, those stored quantized too: they are what users have.
            if let Some(r) = ratio {
                ratios.push(r);
            }
            if cx.is_finite() {
                comp.push(cx);
                decomp.push(dx);
            }
            // Scaling needs work to share: fields of at least two blocks per thread.
            if one.blocks >= 4 {
                scale.push(two.compress_mbs / one.compress_mbs);
            }
        }
        summary.push((t, ratios, comp, decomp, scale));
    }
    // Each figure says over how many fields it is taken: the speeds need SZ3 to have stayed
    // lossy, the scaling blocks to share.
    let _ = writeln!(s, "\nper target (the CR ratio over every field):");
    for (t, r, c, d, sc) in summary {
        let min = r.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            s,
            "  {t:.0e}: CR vs best peer ({} fields): min {min:.3}, geomean {:.3}; 1-core speed vs lossy SZ3 ({} fields): compress {:.2}x, decompress {:.2}x (geomean); 2 threads vs 1 ({} fields of >= 4 blocks): {:.2}x",
            r.len(),
            geomean(&r),
            c.len(),
            geomean(&c),
            geomean(&d),
            sc.len(),
            geomean(&sc)
        );
    }
    s
}
