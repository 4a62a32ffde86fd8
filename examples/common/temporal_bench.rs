//! The temporal prediction benchmark of the Gray-Scott example (`--temporal-bench DIR`): per
//! NRMSE target and output interval, the file written with and without `temporal=K` and the
//! compression time per output step; as a table, `DIR/temporal_bench.csv` and
//! `DIR/temporal_bench.png`.

use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One configuration's run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    pub file_bytes: u64,
    /// Compression seconds per output step (slowest rank), mean over the steps (the median
    /// over the runs).
    pub compress_s: f64,
    /// The largest NRMSE of U and V read back over the steps.
    pub nrmse: f64,
}

/// Spatial and temporal coding of one target and output interval.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub nrmse: f64,
    pub plotgap: usize,
    pub spatial: Side,
    pub temporal: Side,
}

impl Row {
    fn size_ratio(&self) -> f64 {
        self.spatial.file_bytes as f64 / self.temporal.file_bytes.max(1) as f64
    }

    fn time_ratio(&self) -> f64 {
        self.temporal.compress_s / self.spatial.compress_s.max(1e-12)
    }
}

/// Prints the table and writes the CSV and the PNG into `dir`.
pub fn report(rows: &[Row], k: usize, title: &str, dir: &Path) -> Result<(), String> {
    let mut csv = String::from(
        "nrmse,output_every,file_bytes_spatial,file_bytes_temporal,size_ratio,\
         compress_s_per_step_spatial,compress_s_per_step_temporal,time_ratio,\
         max_nrmse_spatial,max_nrmse_temporal\n",
    );
    println!("{title}");
    println!(
        "| NRMSE | output every | file without | file with temporal={k} | smaller by | \
         compression s/step without | with | time ratio | max NRMSE read back (with) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {:e} | {} | {} | {} | {:.2}x | {:.4} | {:.4} | {:.2} | {:.3e} |",
            r.nrmse,
            r.plotgap,
            r.spatial.file_bytes,
            r.temporal.file_bytes,
            r.size_ratio(),
            r.spatial.compress_s,
            r.temporal.compress_s,
            r.time_ratio(),
            r.temporal.nrmse
        );
        let _ = writeln!(
            csv,
            "{:e},{},{},{},{:.4},{:.6},{:.6},{:.4},{:.4e},{:.4e}",
            r.nrmse,
            r.plotgap,
            r.spatial.file_bytes,
            r.temporal.file_bytes,
            r.size_ratio(),
            r.spatial.compress_s,
            r.temporal.compress_s,
            r.time_ratio(),
            r.spatial.nrmse,
            r.temporal.nrmse
        );
    }
    let csv_path = dir.join("temporal_bench.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let png = dir.join("temporal_bench.png");
    plot(rows, k, title, &png)?;
    println!("wrote {} and {}", csv_path.display(), png.display());
    Ok(())
}

/// Two panels of bars per target, one bar per output interval: how much smaller the file is
/// with temporal prediction, and its compression time relative to spatial coding.
fn plot(rows: &[Row], k: usize, title: &str, path: &Path) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 16)).map_err(err)?;
    let panels = root.split_evenly((2, 1));
    let mut targets: Vec<f64> = rows.iter().map(|r| r.nrmse).collect();
    targets.dedup();
    let mut gaps: Vec<usize> = rows.iter().map(|r| r.plotgap).collect();
    gaps.sort_unstable();
    gaps.dedup();
    type Value = fn(&Row) -> f64;
    let what: [(String, Value); 2] = [
        (format!("file without / with temporal={k}"), Row::size_ratio),
        ("compression time with / without".into(), Row::time_ratio),
    ];
    for (panel, (label, value)) in panels.iter().zip(what) {
        let top = rows.iter().map(value).fold(1.0f64, f64::max) * 1.2;
        let slots = targets.len() * (gaps.len() + 1);
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..slots as f64, 0.0..top)
            .map_err(err)?;
        let per = gaps.len() + 1;
        let order: Vec<String> = targets.iter().map(|t| format!("{t:e}")).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc(format!("NRMSE {}, left to right", order.join(", ")))
            .y_desc(label.as_str())
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (g, gap) in gaps.iter().enumerate() {
            let color = Palette99::pick(g).to_rgba();
            let bars = rows.iter().filter(|r| r.plotgap == *gap).map(|r| {
                let t = targets.iter().position(|&x| x == r.nrmse).unwrap_or(0);
                let x = (t * per + g) as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, value(r))], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(format!("output every {gap} steps"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .draw_series(LineSeries::new(
                [(0.0, 1.0), (slots as f64, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 12))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(|e| e.to_string())
}
