//! `residuum train --nglr`: fits an NGLR network to a collection of fields within a time budget,
//! writes it (safetensors) with its loss curve (CSV and PNG), then compresses each field at
//! NRMSE 1e-4, 1e-5 and 1e-6 with LBRC alone and with the network (its bytes in the stream
//! included), on one thread, and reports the ratio and the speeds as the codec's own integer
//! inference gives them. `--each-collection` does so for every collection among the fields
//! (the files that share the name's first word: `nyx_*`, `loxpost_*`, ...), one network each,
//! into a directory: the NGLR benchmark (table, CSV, PNG).

use crate::fields::Field;
use crate::train::TrainArgs;
use residuum::internals::nglr::{self, train};
use residuum::Codec;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const TARGETS: [&str; 3] = ["1e-4", "1e-5", "1e-6"];

/// One field at one target: LBRC alone against LBRC with the network.
pub struct Row {
    pub collection: String,
    pub field: String,
    pub target: &'static str,
    pub lbrc_bytes: usize,
    pub nglr_bytes: usize,
    /// Whether the stream with the network offered carries it.
    pub carried: bool,
    /// MB/s on one thread: compression and decompression, LBRC alone and with the network.
    pub speeds: [f64; 4],
    pub train_seconds: f64,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.lbrc_bytes as f64 / self.nglr_bytes as f64
    }
}

pub fn run(args: &TrainArgs, fields: &[Field]) -> Result<(), String> {
    if !args.each_collection {
        let all: Vec<&Field> = fields.iter().collect();
        let rows = fit_and_measure("all", args, &all, &args.out)?;
        print_table(&rows);
        let csv = args.out.with_extension("").with_extension("eval.csv");
        return write_csv(&rows, &csv);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut names: Vec<&str> = fields.iter().map(|f| collection(&f.name)).collect();
    names.sort_unstable();
    names.dedup();
    let mut rows = Vec::new();
    for name in names {
        let members: Vec<&Field> = fields
            .iter()
            .filter(|f| collection(&f.name) == name)
            .collect();
        println!("collection {name}: {} fields", members.len());
        let out = args.out.join(format!("{name}.safetensors"));
        rows.extend(fit_and_measure(name, args, &members, &out)?);
    }
    print_table(&rows);
    write_csv(&rows, &args.out.join("nglr_bench.csv"))?;
    let bars: Vec<(String, [f64; 3])> = rows
        .chunks(TARGETS.len())
        .map(|r| (r[0].field.clone(), std::array::from_fn(|t| r[t].ratio())))
        .collect();
    let png = args.out.join("nglr_bench.png");
    crate::plot::ratio_bars(&bars, &TARGETS, "CR with NGLR / LBRC alone", &png)?;
    println!(
        "wrote {}, {}",
        args.out.join("nglr_bench.csv").display(),
        png.display()
    );
    Ok(())
}

/// A field's collection: its name's first word.
fn collection(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

/// Trains one network on `fields` into `out`, then measures every field with it.
fn fit_and_measure(
    name: &str,
    args: &TrainArgs,
    fields: &[&Field],
    out: &Path,
) -> Result<Vec<Row>, String> {
    let options = train::Options {
        hidden: args.hidden,
        seconds: args.seconds,
        max_steps: args.steps.unwrap_or(30_000),
        lr: args.lr.unwrap_or(3e-3),
        batch: args.batch.unwrap_or(2048),
        seed: args.seed,
        ..train::Options::default()
    };
    let samples: Vec<train::Field> = fields
        .iter()
        .map(|f| train::Field {
            values: &f.values,
            shape: residuum::internals::fold3(&f.dims),
        })
        .collect();
    let bar = crate::train::steps_bar(options.max_steps)?;
    let start = Instant::now();
    let (net, curve) = train::fit(&samples, &options, |p| {
        bar.set_position(p.step as u64 + 1);
        if p.step % 20 == 0 {
            bar.set_message(format!("loss {:.4}", p.loss));
        }
    })
    .map_err(|e| e.to_string())?;
    let train_seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    nglr::save(&net, out).map_err(|e| e.to_string())?;
    let stem = out.with_extension("");
    let (csv, png) = (
        stem.with_extension("loss.csv"),
        stem.with_extension("loss.png"),
    );
    let mut text = String::from("step,seconds,loss\n");
    for p in &curve {
        let _ = writeln!(text, "{},{:.3},{:.6e}", p.step, p.seconds, p.loss);
    }
    std::fs::write(&csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    let points: Vec<(usize, f64, f64)> = curve.iter().map(|p| (p.step, p.loss, f64::NAN)).collect();
    crate::plot::loss_curve(&points, &png)?;
    println!(
        "trained {} steps in {train_seconds:.1} s (samples and fit; final loss {:.4}); network \
         of {} hidden units, {} bytes; wrote {}, {}, {}",
        curve.len(),
        curve.last().map_or(f64::NAN, |p| p.loss),
        net.hidden(),
        net.bytes().len(),
        out.display(),
        csv.display(),
        png.display()
    );
    let path = out.display().to_string();
    let mut rows = Vec::new();
    for f in fields {
        for target in TARGETS {
            let (lbrc, lc, ld) = measure(f, target, None)?;
            let (with, nc, nd) = measure(f, target, Some(&path))?;
            let carried = residuum::internals::format::parse(&with)
                .and_then(|p| p.nglr().map(|n| n.is_some()))
                .map_err(|e| e.to_string())?;
            rows.push(Row {
                collection: name.to_string(),
                field: f.name.clone(),
                target,
                lbrc_bytes: lbrc.len(),
                nglr_bytes: with.len(),
                carried,
                speeds: [lc, nc, ld, nd],
                train_seconds,
            });
        }
    }
    Ok(rows)
}

/// The stream of `f` at `target` with LBRC (and the network at `net`) on one thread, and its
/// compression and decompression MB/s (best of three: the machine's noise only slows).
fn measure(f: &Field, target: &str, net: Option<&str>) -> Result<(Vec<u8>, f64, f64), String> {
    let mut pairs = vec![("nrmse", target), ("residual", "lbrc"), ("threads", "1")];
    pairs.extend(net.map(|n| ("nglr", n)));
    let codec = Codec::from_pairs(pairs).map_err(|e| e.to_string())?;
    let mb = (f.values.len() * 4) as f64 / 1e6;
    let (mut stream, mut best) = (Vec::new(), [f64::INFINITY; 2]);
    let mut out = vec![0u8; f.values.len() * 4];
    for _ in 0..3 {
        let t = Instant::now();
        stream = codec
            .compress(&f.dims, &f.values)
            .map_err(|e| e.to_string())?;
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        codec
            .decode_into(&stream, &mut out)
            .map_err(|e| e.to_string())?;
        best[1] = best[1].min(t.elapsed().as_secs_f64());
    }
    Ok((stream, mb / best[0], mb / best[1]))
}

fn print_table(rows: &[Row]) {
    println!(
        "CR with NGLR over LBRC alone (network bytes included), MB/s on one thread \
         (compress LBRC / NGLR, decompress LBRC / NGLR):"
    );
    println!(
        "{:<36} {:>6} {:>8} {:>7}  {:>13}  {:>13}",
        "field", "target", "ratio", "carried", "compress", "decompress"
    );
    for r in rows {
        println!(
            "{:<36} {:>6} {:>8.4} {:>7}  {:>6.1}/{:<6.1}  {:>6.1}/{:<6.1}",
            r.field,
            r.target,
            r.ratio(),
            if r.carried { "yes" } else { "no" },
            r.speeds[0],
            r.speeds[1],
            r.speeds[2],
            r.speeds[3]
        );
    }
    for target in TARGETS {
        let at: Vec<&Row> = rows.iter().filter(|r| r.target == target).collect();
        let geo = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0), |(s, n), x| (s + x.ln(), n + 1));
            (s / n.max(1) as f64).exp()
        };
        let ratio = geo(&mut at.iter().map(|r| r.ratio()));
        let min = at.iter().map(|r| r.ratio()).fold(f64::INFINITY, f64::min);
        let dec = geo(&mut at.iter().map(|r| r.speeds[3]));
        println!(
            "nrmse {target}: geometric mean {ratio:.4}, lowest {min:.4}, NGLR decompression \
             {dec:.1} MB/s (geometric mean)"
        );
    }
}

fn write_csv(rows: &[Row], path: &Path) -> Result<(), String> {
    let mut s = String::from(
        "collection,field,target,lbrc_bytes,nglr_bytes,ratio,carried,compress_lbrc_mb_s,\
         compress_nglr_mb_s,decompress_lbrc_mb_s,decompress_nglr_mb_s,train_seconds\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.4},{},{:.1},{:.1},{:.1},{:.1},{:.1}",
            r.collection,
            r.field,
            r.target,
            r.lbrc_bytes,
            r.nglr_bytes,
            r.ratio(),
            r.carried,
            r.speeds[0],
            r.speeds[1],
            r.speeds[2],
            r.speeds[3],
            r.train_seconds
        );
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}
