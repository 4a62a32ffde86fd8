//! PNG plots: the rate-distortion curves of `residuum bench` (compression ratio against NRMSE
//! target, one panel per field, one line per codec), the loss curve of `residuum train` and the
//! ratios of `residuum train --nglr --each-collection` (bars per field and target).

use crate::results::Row;
use plotters::prelude::*;
use std::path::Path;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> Result<(), String> {
    let font =
        std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (install fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "cannot load the plot font".to_string())
}

/// Training loss and its MSE part against the step, log scale.
pub fn loss_curve(points: &[(usize, f64, f64)], path: &Path) -> Result<(), String> {
    register_font()?;
    let root = BitMapBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let pos = |v: f64| v.is_finite() && v > 0.0;
    let (lo, hi) = points
        .iter()
        .flat_map(|p| [p.1, p.2])
        .filter(|&v| pos(v))
        .fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (lo * 0.8, hi * 1.25)
    } else {
        (1e-6, 1.0)
    };
    let steps = points.last().map_or(1, |p| p.0 + 1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("residuum train: loss", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..steps, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()
        .map_err(err)?;
    for (i, (name, pick)) in [("loss", 0usize), ("mse", 1)].into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line = points
            .iter()
            .map(|p| (p.0 as f64, if pick == 0 { p.1 } else { p.2 }))
            .filter(|p| pos(p.1));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(|e| e.to_string())
}

pub fn rate_distortion(rows: &[Row], fields: &[String], path: &Path) -> Result<(), String> {
    register_font()?;
    let cols = 3.min(fields.len()).max(1);
    let nrows = fields.len().div_ceil(cols);
    let root =
        BitMapBackend::new(path, (420 * cols as u32, 320 * nrows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut codecs: Vec<&str> = rows
        .iter()
        .map(|r| r.codec.as_str())
        .filter(|c| *c != "residuum 2 threads")
        .collect();
    codecs.dedup();
    codecs.sort();
    codecs.dedup();
    for (panel, field) in root.split_evenly((nrows, cols)).iter().zip(fields) {
        let pts: Vec<&Row> = rows.iter().filter(|r| &r.field == field).collect();
        let (tmin, tmax) = pts.iter().fold((f64::INFINITY, 0f64), |(a, b), r| {
            (a.min(r.target), b.max(r.target))
        });
        let cmax = pts.iter().map(|r| r.cr).fold(1f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(field, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d((tmin * 0.7..tmax * 1.4).log_scale(), 0.0..cmax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("NRMSE target")
            .y_desc("compression ratio")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(err)?;
        for (i, c) in codecs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let mut line: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.codec == *c)
                .map(|r| (r.target, r.cr))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(*c)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 10))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// One group of bars per field (one bar per series, e.g. target), with a line at 1.
pub fn ratio_bars(
    groups: &[(String, [f64; 3])],
    series: &[&str; 3],
    title: &str,
    path: &Path,
) -> Result<(), String> {
    register_font()?;
    let root = BitMapBackend::new(path, (160 + 90 * groups.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let all = groups.iter().flat_map(|g| g.1);
    let (lo, hi) = all.fold((1f64, 1f64), |(a, b), v| (a.min(v), b.max(v)));
    let n = groups.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n, (lo - 0.02).min(0.98)..hi + 0.02)
        .map_err(err)?;
    let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    chart
        .configure_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            match (x.fract() - 0.5).abs() < 1e-6 {
                true => names
                    .get(i)
                    .map_or(String::new(), |s| s.chars().take(14).collect()),
                false => String::new(),
            }
        })
        .label_style(("sans-serif", 10))
        .y_desc("ratio")
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    for (s, name) in series.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let bars = groups.iter().enumerate().map(move |(i, g)| {
            let x = i as f64 + 0.15 + 0.23 * s as f64;
            Rectangle::new([(x, 1.0), (x + 0.2, g.1[s])], color.filled())
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, 1.0), (n, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(|e| e.to_string())
}
