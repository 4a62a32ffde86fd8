//! `residuum train --nglr`: fits an NGLR network to a collection of fields within a time budget,
//! writes it (safetensors) with its loss curve (CSV and PNG), then compresses each field at
//! NRMSE 1e-4, 1e-5 and 1e-6 with LBRC alone and with the network (its bytes in the stream
//! included) and prints the ratio, as the codec's own integer inference gives it.

use crate::fields::Field;
use crate::train::TrainArgs;
use indicatif::{ProgressBar, ProgressStyle};
use residuum::internals::nglr::{self, train};
use residuum::Codec;

pub fn run(args: &TrainArgs, fields: &[Field]) -> Result<(), String> {
    let options = train::Options {
        hidden: args.hidden,
        seconds: args.seconds,
        max_steps: args.steps,
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
    let bar = ProgressBar::new(options.max_steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
            .map_err(|e| e.to_string())?,
    );
    let (net, curve) = train::fit(&samples, &options, |p| {
        bar.set_position(p.step as u64 + 1);
        if p.step % 20 == 0 {
            bar.set_message(format!("loss {:.4}", p.loss));
        }
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    nglr::save(&net, &args.out).map_err(|e| e.to_string())?;
    let stem = args.out.with_extension("");
    let (csv, png) = (
        stem.with_extension("loss.csv"),
        stem.with_extension("loss.png"),
    );
    let mut text = String::from("step,seconds,loss\n");
    for p in &curve {
        text += &format!("{},{:.3},{:.6e}\n", p.step, p.seconds, p.loss);
    }
    std::fs::write(&csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    let points: Vec<(usize, f64, f64)> = curve.iter().map(|p| (p.step, p.loss, f64::NAN)).collect();
    crate::plot::loss_curve(&points, &png)?;
    println!(
        "trained {} steps in {:.1} s (final loss {:.4}); network of {} hidden units, {} bytes; \
         wrote {}, {}, {}",
        curve.len(),
        curve.last().map_or(0.0, |p| p.seconds),
        curve.last().map_or(f64::NAN, |p| p.loss),
        net.hidden(),
        net.bytes().len(),
        args.out.display(),
        csv.display(),
        png.display()
    );
    let path = args.out.display().to_string();
    println!("CR with NGLR over LBRC alone (network bytes included):");
    println!("{:<40} {:>8} {:>8} {:>8}", "field", "1e-4", "1e-5", "1e-6");
    for f in fields {
        let mut row = format!("{:<40}", f.name);
        for t in ["1e-4", "1e-5", "1e-6"] {
            let size = |extra: &[(&str, &str)]| -> Result<usize, String> {
                let pairs = [("nrmse", t), ("residual", "lbrc")]
                    .into_iter()
                    .chain(extra.iter().copied());
                let codec = Codec::from_pairs(pairs).map_err(|e| e.to_string())?;
                Ok(codec
                    .compress(&f.dims, &f.values)
                    .map_err(|e| e.to_string())?
                    .len())
            };
            let ratio = size(&[])? as f64 / size(&[("nglr", &path)])? as f64;
            row += &format!(" {ratio:>8.4}");
        }
        println!("{row}");
    }
    Ok(())
}
