//! Comparing output configurations of a simulation over repeated, interleaved runs: medians
//! of the wall time with their spread, the overhead over running without output (with a 95 %
//! bootstrap interval, and per round), where each configuration's time goes, and a PNG of per-step
//! compute and output time per configuration (from each one's median run).

use plotters::prelude::*;
use std::path::Path;

/// One configuration's runs.
pub struct Runs<'a> {
    pub label: &'a str,
    /// Wall time of each run, in the order run.
    pub totals: Vec<f64>,
    /// Each run's seconds computing, handing steps over to output and waiting in the writer's
    /// `close` (the rest of its wall time: barriers, and steps after the last output step).
    pub parts: Vec<[f64; 3]>,
    /// (step, seconds computing since the previous output step, seconds the simulation spent
    /// on output) of the median run.
    pub steps: Vec<(usize, f64, f64)>,
    pub file_bytes: u64,
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// Index of the run whose wall time is the median (the lower one for an even count).
pub fn median_run(totals: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..totals.len()).collect();
    order.sort_by(|&a, &b| totals[a].total_cmp(&totals[b]));
    order[(order.len().saturating_sub(1)) / 2]
}

/// The median over rounds of each run's wall time over the no-output run of the same round
/// (`none`), in percent, with the lowest and highest. Rounds run back to back, so a slow spell
/// of the machine longer than a round falls on both runs of a pair.
pub fn paired(totals: &[f64], none: &[f64]) -> (f64, f64, f64) {
    let pct: Vec<f64> = totals
        .iter()
        .zip(none)
        .map(|(t, n)| 100.0 * (t / n - 1.0))
        .collect();
    let (lo, hi) = pct
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &p| {
            (a.min(p), b.max(p))
        });
    (median(&pct), lo, hi)
}

/// Resamples behind [`interval`].
const RESAMPLES: usize = 10_000;

/// A 95 % interval of the overhead of runs `totals` over runs `none` as the ratio of their
/// medians, in percent: the 2.5th and 97.5th percentiles over bootstrap resamples (each side's
/// runs drawn with replacement). On a shared machine whose slow spells move whole runs by 20 %
/// and more, it says which overheads a set of runs can tell apart from the goal and which it
/// cannot. The generator's seed is fixed: a log summarizes alike every time.
pub fn interval(totals: &[f64], none: &[f64]) -> (f64, f64) {
    if totals.is_empty() || none.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    // splitmix64: a few lines instead of a dependency, and the same draws on every machine.
    let mut pick = |n: usize| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let (mut a, mut b) = (vec![0.0; totals.len()], vec![0.0; none.len()]);
    let mut draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            a.iter_mut().for_each(|x| *x = totals[pick(totals.len())]);
            b.iter_mut().for_each(|x| *x = none[pick(none.len())]);
            100.0 * (median(&a) / median(&b) - 1.0)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    (draws[RESAMPLES / 40], draws[RESAMPLES - 1 - RESAMPLES / 40])
}

/// Prints the medians with their spread (min to max), the overhead of each configuration over
/// the first (no output in a comparison; named by its label), as the ratio of medians with its
/// 95 % interval ([`interval`]) and as the median ratio of each round's pair ([`paired`]), and
/// the file size.
pub fn summarize(runs: &[Runs]) {
    let Some(first) = runs.first() else {
        return;
    };
    let none = median(&first.totals);
    let n = runs.iter().map(|r| r.totals.len()).max().unwrap_or(0);
    println!(
        "comparison (wall time of the whole run, median of {n} interleaved runs, min..max; overhead with its 95 % bootstrap interval):"
    );
    for r in runs {
        let (lo, hi) = r
            .totals
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
        let m = median(&r.totals);
        let (p, plo, phi) = paired(&r.totals, &first.totals);
        let (ilo, ihi) = interval(&r.totals, &first.totals);
        println!(
            "  {:<30} {:8.3} s  ({lo:.3}..{hi:.3})  overhead vs {} {:+7.2}% [{ilo:+.1}..{ihi:+.1}]  paired {p:+7.2}% ({plo:+.1}..{phi:+.1})  file {:>12} bytes",
            r.label,
            m,
            first.label,
            100.0 * (m - none) / none,
            r.file_bytes
        );
    }
    // Where a writer's cost goes, each part as its median over the runs, against no output's
    // median: computing more slowly beside the writer, handing steps over (the copy, and waits
    // for a full queue), and waiting in close for the last steps.
    println!(
        "where the time goes (medians over runs, % of {}'s median):",
        first.label
    );
    let part = |r: &Runs, i: usize| median(&r.parts.iter().map(|p| p[i]).collect::<Vec<_>>());
    let computing = part(first, 0);
    for r in runs.iter().skip(1) {
        let pct = |x: f64| 100.0 * x / none;
        println!(
            "  {:<30} computing {:+6.2}% ({:.3} s, {} {computing:.3} s)  handing over {:5.2}%  close {:5.2}%",
            r.label,
            pct(part(r, 0) - computing),
            part(r, 0),
            first.label,
            pct(part(r, 1)),
            pct(part(r, 2))
        );
    }
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font the plots use (once per process).
pub fn register_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let font =
            std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (install fonts-dejavu-core)"))?;
        let font: &'static [u8] = Box::leak(font.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, font)
            .map_err(|_| "cannot load the plot font".to_string())
    })
    .clone()
}

/// Per output step, the compute time since the previous one (top) and the time the simulation
/// spent on output (bottom), one line per configuration (its median run).
pub fn plot(runs: &[Runs], title: &str, path: &Path) -> Result<(), String> {
    register_font()?;
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 16)).map_err(err)?;
    let panels = root.split_evenly((2, 1));
    let last = runs
        .iter()
        .flat_map(|r| r.steps.iter().map(|s| s.0))
        .max()
        .unwrap_or(1) as f64;
    for (panel, (what, pick)) in panels.iter().zip([("compute s", 1usize), ("output s", 2)]) {
        let value = |s: &(usize, f64, f64)| if pick == 1 { s.1 } else { s.2 };
        let top = runs
            .iter()
            .flat_map(|r| r.steps.iter().map(value))
            .fold(1e-6f64, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..last * 1.02, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(what)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (i, r) in runs.iter().enumerate().filter(|(_, r)| !r.steps.is_empty()) {
            let color = Palette99::pick(i).to_rgba();
            let line: Vec<(f64, f64)> = r.steps.iter().map(|s| (s.0 as f64, value(s))).collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(r.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` runs around `center`, spread evenly over `spread` of it (in a shuffled order: 8 and
    /// the counts used are coprime).
    fn runs(center: f64, spread: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| center * (1.0 + spread * ((i * 8 % n) as f64 / n as f64 - 0.5)))
            .collect()
    }

    #[test]
    fn interval_holds_the_overhead_and_tells_a_shift_from_the_spread() {
        let none = runs(5.0, 0.04, 21);
        // 10 % slower with the same spread: the interval holds +10 % and not 0.
        let slow: Vec<f64> = none.iter().map(|t| t * 1.1).collect();
        let (lo, hi) = interval(&slow, &none);
        assert!(
            lo > 5.0 && lo < 10.0 && hi > 10.0 && hi < 15.0,
            "{lo}..{hi}"
        );
        // The same runs in another order: 0 inside, and narrower than the 4 % spread.
        let mut same = none.clone();
        same.reverse();
        let (lo, hi) = interval(&same, &none);
        assert!(lo < 0.0 && hi > 0.0 && hi - lo < 4.0, "{lo}..{hi}");
        // Wider where the runs spread more, and alike on every call (a fixed seed).
        let (wlo, whi) = interval(&runs(5.0, 0.4, 21), &none);
        assert!(
            whi - wlo > 2.0 * (hi - lo),
            "{wlo}..{whi} against {lo}..{hi}"
        );
        assert_eq!(interval(&slow, &none), interval(&slow, &none));
        assert!(interval(&[], &none).0.is_nan());
    }
}
