//! `residual=auto`: LBRC, and at RMS targets the wavelet coder where it pays; per block the
//! smaller by actual bits. Where a glance at LBRC's cost ([`glance`]) and a look at the block's
//! wavelet coefficients ([`wavelet::look`]) say the transform wins by far (smooth fields at
//! loose targets), LBRC's stage is skipped: its estimate would have pruned it before entropy
//! coding, and it was a fifth to a quarter of such a block's compression. In situ, where the
//! look at a block lost, the same block's next steps skip it for a span of steps that grows
//! while it goes on losing ([`LookHint`]); there, and where a small array is one block,
//! blocks below [`MIN_OFFERED`] values are looked at too ([`MIN_IN_SERIES`]).

use super::lbrc::{self, Lbrc};
use super::predict::{self, Samples};
use super::wavelet::{self, Wavelet, MIN_OFFERED};
use super::{Base, BlockValues, OneStage, ResidualCoder, Stage};
use crate::bound::{initial_step, unit_of, BlockBound};
use crate::entropy::ints;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// The wavelet alone where its look's estimate is below this share of LBRC's glance. On
/// ../shared/data the share is 0.32-0.66 where the wavelet won (by 1.4-2.7x in the stream) and
/// 1.01-1.18 where it lost, and the glance came within 5 % of LBRC's own estimate; on a
/// synthetic field that least squares predicts well it ran up to 1.4x above it, so the wavelet
/// leads only where its estimate stays below LBRC's even then.
const LEAD: f64 = 0.7;

/// LBRC and the wavelet coder.
pub(crate) struct Auto;

impl ResidualCoder for Auto {
    fn stages(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Vec<Stage> {
        // Small blocks: LBRC's stage costs less than a look, except in a series or where the
        // block is a small array's only one.
        let n = block.values.len();
        let small = n < MIN_OFFERED;
        let offered = !small || (n >= MIN_IN_SERIES && (block.look.is_some() || block.whole));
        let looks = matches!(bound, BlockBound::Rms(_)) && base.is_none() && offered;
        let skip = looks && block.look.is_some_and(LookHint::skip);
        if skip && !small {
            return Lbrc
                .stage(block, base, bound, par, beat)
                .into_iter()
                .collect();
        }
        // A small block that skips its look is coded as where none is taken.
        let first = match bound {
            BlockBound::Rms(budget) if looks && !skip => {
                let g = glance(block, bound);
                let look = wavelet::may_beat(Some(g))
                    .then(|| wavelet::look(block, budget))
                    .flatten();
                if let Some(hint) = block.look {
                    hint.record(look.as_ref().map(|l| l.estimate() / g), small);
                }
                look.map(|look| (look, g, budget))
            }
            _ => None,
        };
        let Some((look, g, budget)) = first else {
            // As the two coders one after the other.
            let lbrc = Lbrc.stage(block, base, bound, par, beat);
            let beat = lowest(beat, lbrc.as_ref());
            let wavelet = Wavelet.stage(block, base, bound, par, beat);
            return lbrc.into_iter().chain(wavelet).collect();
        };
        if look.estimate() < LEAD * g {
            // Where no step meets the bound after all, LBRC takes the block.
            return match wavelet::finish(block, budget, par, beat, look) {
                Some(s) => vec![s],
                None => Lbrc
                    .stage(block, base, bound, par, beat)
                    .into_iter()
                    .collect(),
            };
        }
        let lbrc = Lbrc.stage(block, base, bound, par, beat);
        let beat = lowest(beat, lbrc.as_ref());
        let wavelet = match wavelet::may_beat(beat) {
            true => wavelet::finish(block, budget, par, beat, look),
            false => {
                look.drop_coefficients();
                None
            }
        };
        lbrc.into_iter().chain(wavelet).collect()
    }
}

/// On a block of [`MIN_OFFERED`] values or more, a look whose estimate is at least this many
/// times LBRC's glance lost ([`LookHint`]); on a smaller one any at or above the glance did.
/// Where the wavelet won on ../shared/data and Gray-Scott's steps the ratio was at most 0.91.
/// Gray-Scott's later steps lose by 1.2-2.3 step after step, where the look took a fifth of
/// the compression: skipping such looks, the example's 1,000 steps (96^3 and 128^3, output
/// every 10 and 20 steps, NRMSE 1e-4 to 1e-6, one core) took 6-13 % less time to write, with
/// the same bytes to within 0.002 %, than where only losses by 2x were skipped. Nearer 1 a
/// later step may still win (the fields of ../shared/data lose by 1.0-1.2): counting losses
/// from 1.0 or 1.1 instead cost up to 0.8 and 0.1 % more bytes in the same runs.
const LOST_FROM: f64 = 1.2;

/// In a series, blocks from this size up are offered the wavelet, not only those of
/// [`MIN_OFFERED`] values or more. A small block is what a rank of a finely decomposed
/// simulation hands over (32^3 values per rank, say), and smooth fields cut that small still
/// gain: in blocks of 32^3, Gray-Scott's U (at steps 50 and 100) took 1.3-2.4x fewer bytes
/// at 1e-5 and 1e-6 with the wavelet offered, loxpost 1.1-1.75x at 1e-4 to 1e-6, and the
/// Gray-Scott example on 8 ranks of 32^3 (`--L 64`) 8.0 % fewer in all. But a small block's
/// look adds up to two thirds to its compression (nyx's 32^3 fields at 1e-4: +67 %
/// instructions; ccsm cut into 32^3 blocks: +63 %, gaining nothing): an array compressed
/// once in small blocks (`block=`) is not looked at. In a series, a look that lost is skipped
/// for a span of steps that grows with each loss in a row ([`LookHint`]), so over 20 steps
/// such blocks cost 11-16 % more instructions (the fields of ../shared/data other than
/// loxpost in 32^3 blocks, at 1e-4 to 1e-6), and where it won it is taken again. A small array
/// compressed once is one block, looked at as a series' first step is: a millisecond or two
/// more (+50 % on nyx's fields and combustor, which do not change), and a 32^3 cut of loxpost
/// codes in 3.2 / 2.1 / 1.7x fewer bytes at 1e-4 / 1e-5 / 1e-6, as the operator codes it.
const MIN_IN_SERIES: usize = 1 << 12;
/// The longest span of steps a block skips the look: a block whose field turns smooth loses
/// the wavelet for at most this many steps.
const MAX_SKIPS: u8 = 7;

/// The wavelet's look at one block in a series of steps (the same block of the same variable,
/// in situ). Fields change little between output steps, so a look that lost ([`LOST_FROM`])
/// need not be repeated at each: the block skips it for 1 step, then 2, 4 and [`MAX_SKIPS`]
/// while it goes on losing, and takes it at every step again once it wins (the Gray-Scott
/// example with 32^3 per rank lost most of the gain where a first loss skipped 7 steps: its
/// early steps lose, the later ones win). A large block that skips is coded by LBRC alone, a
/// small one as where no look is taken. Only the encoder's effort changes: the stream is as
/// valid as any other choice between the coders.
#[derive(Debug)]
pub(crate) struct LookHint {
    skipped: AtomicU8,
    /// How many steps the block skips after its last look: 0 where it did not lose, 1 after
    /// one loss, doubled at each further one in a row, at most [`MAX_SKIPS`].
    span: AtomicU8,
}

impl LookHint {
    fn new() -> LookHint {
        LookHint {
            skipped: AtomicU8::new(0),
            span: AtomicU8::new(0),
        }
    }

    /// Whether this step skips the look (and counts it).
    fn skip(&self) -> bool {
        let skip = self.skipped.load(Relaxed) < self.span.load(Relaxed);
        if skip {
            self.skipped.fetch_add(1, Relaxed);
        }
        skip
    }

    /// Records this step's look: its estimate over LBRC's glance (None: none taken, which
    /// counts as no loss); `small`: a block below [`MIN_OFFERED`] values.
    fn record(&self, ratio: Option<f64>, small: bool) {
        let lost_from = if small { 1.0 } else { LOST_FROM };
        let span = match ratio.is_some_and(|r| r >= lost_from) {
            true => (self.span.load(Relaxed) * 2).clamp(1, MAX_SKIPS),
            false => 0,
        };
        self.span.store(span, Relaxed);
        self.skipped.store(0, Relaxed);
    }
}

/// The [`LookHint`]s of the blocks of one array written step after step (one variable's block
/// in situ), made for the first step's blocks.
#[derive(Debug, Default)]
pub(crate) struct LookHints(OnceLock<Vec<LookHint>>);

impl LookHints {
    /// Block `i`'s of an array cut into `n` blocks (None where an earlier step had another
    /// count: the shape changed).
    pub(crate) fn block(&self, i: usize, n: usize) -> Option<&LookHint> {
        let all = self
            .0
            .get_or_init(|| (0..n).map(|_| LookHint::new()).collect());
        (all.len() == n).then(|| &all[i])
    }
}

/// The lowest of `beat` and the estimates of `stage`'s stagings without NGLR (the wavelet sees
/// what it would see without the network, so the stream without it stays as it was).
fn lowest(beat: Option<f64>, stage: Option<&Stage>) -> Option<f64> {
    let own = stage.into_iter().flat_map(|s| &s.0);
    own.filter(|s| !s.uses_nglr())
        .map(|s| s.estimate())
        .fold(beat, |b, e| Some(b.map_or(e, |b| b.min(e))))
}

/// Samples [`glance`] looks at.
const GLANCE_SAMPLE: usize = 1 << 9;

/// A glance at LBRC's cost on a block without quantizing it: the estimated bits per value
/// ([`ints::estimate_bits`], as LBRC's own estimate) of its values quantized under the
/// predictor LBRC would choose, on a sample of positions (each quantized where needed), with
/// the step LBRC would likely settle on: `bound`'s first, on the lattice through the block's
/// plateau, grown as LBRC grows it where the sample's error leaves room (a block mostly at rest
/// spends its whole budget on the rest: 2-3x below the first step's bits on Gray-Scott).
/// Special values count as the offset.
fn glance(block: &BlockValues, bound: BlockBound) -> f64 {
    let (values, shape) = (block.values, block.shape);
    let (lo, hi) = block.range;
    let (BlockBound::Rms(budget), first) = (bound, initial_step(bound)) else {
        return 0.0;
    };
    if !(hi >= lo && first > 0.0) {
        return 0.0;
    }
    let n = values.len();
    let stride = (n / GLANCE_SAMPLE).max(1) | 1;
    let offset = lbrc::plateau(values, None, first).unwrap_or(crate::bound::midpoint(lo, hi));
    // Rounded half away from zero as LBRC rounds (without a library call).
    let at_step = |x: f64, inv: f64| {
        let t = ((x - offset) * inv).clamp(-1e15, 1e15);
        (t + 0.5f64.copysign(t)) as i64
    };
    // Errors in units of the budget (`unit_of`: the same figure, no square underflows).
    let inv_unit = 1.0 / unit_of(budget);
    let (mut sum_sq, mut finite) = (0.0, 0usize);
    for &x in values.iter().step_by(stride).filter(|x| x.is_finite()) {
        let e = (x - (offset + at_step(x, 1.0 / first) as f64 * first)) * inv_unit;
        (sum_sq, finite) = (sum_sq + e * e, finite + 1);
    }
    let used = (sum_sq / finite.max(1) as f64).sqrt() / (budget * inv_unit);
    let step = match used <= lbrc::GROW_BELOW {
        true => lbrc::grown(first, used),
        false => first,
    };
    let inv = 1.0 / step;
    let q = |at: usize| match values[at] {
        x if x.is_finite() => at_step(x, inv),
        _ => 0,
    };
    let p = predict::pick(&Samples::by(n, q, shape, stride), shape, n);
    let r = |at| {
        let (v, interior) = predict::corners_at(q, shape, at);
        p.sample(&v, interior)
    };
    let (bits, count) = ints::estimate_bits(r, shape, (0..n).step_by(stride));
    bits / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::ElementType;
    use crate::format::BlockKind;
    use crate::params::IntCoder;
    use crate::residual::Specials;

    const SHAPE: [usize; 3] = [40, 48, 48];
    /// A block below [`MIN_OFFERED`] values and of at least [`MIN_IN_SERIES`].
    const SMALL: [usize; 3] = [16, 24, 24];

    /// The kinds and payloads of what `coder` stages of `values` (f32, of [`SHAPE`]) for an RMS
    /// error of `tau` times their range.
    fn staged(coder: &dyn ResidualCoder, values: &[f64], tau: f64) -> Vec<(BlockKind, Vec<u8>)> {
        staged_in_series(coder, values, SHAPE, tau, None)
    }

    /// [`staged`] of a block of `shape`, as one step of a series where `look` is its hint.
    fn staged_in_series(
        coder: &dyn ResidualCoder,
        values: &[f64],
        shape: [usize; 3],
        tau: f64,
        look: Option<&LookHint>,
    ) -> Vec<(BlockKind, Vec<u8>)> {
        staged_as(coder, values, shape, tau, look, false)
    }

    /// [`staged_in_series`], of a block that is the whole array where `whole`.
    fn staged_as(
        coder: &dyn ResidualCoder,
        values: &[f64],
        shape: [usize; 3],
        tau: f64,
        look: Option<&LookHint>,
        whole: bool,
    ) -> Vec<(BlockKind, Vec<u8>)> {
        let specials = Specials::of(values, ElementType::F32);
        let block = BlockValues {
            look,
            whole,
            ..BlockValues::new(values, &specials, shape, ElementType::F32)
        };
        let budget = tau * (block.range.1 - block.range.0);
        let stages = coder.stages(&block, None, BlockBound::Rms(budget), false, None);
        let stagings = stages.into_iter().flat_map(|s| s.0);
        stagings.map(|s| s.finish(IntCoder::Context)).collect()
    }

    fn field(f: impl FnMut(f64, f64, f64) -> f64) -> Vec<f64> {
        field_of(SHAPE, f)
    }

    fn field_of(shape: [usize; 3], mut f: impl FnMut(f64, f64, f64) -> f64) -> Vec<f64> {
        let [_, b, c] = shape;
        (0..shape.iter().product())
            .map(|i| f((i / (b * c)) as f64, ((i / c) % b) as f64, (i % c) as f64))
            .map(|v| v as f32 as f64)
            .collect()
    }

    #[test]
    fn the_wavelet_alone_where_it_wins_by_far_and_lbrc_alone_where_it_cannot_win() {
        // Smooth at the scale of the step: the wavelet's look is a fraction of LBRC's glance,
        // and its staging is the one it makes offered alone.
        let smooth = field(|x, y, z| (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0);
        for tau in [1e-4, 1e-5] {
            let auto = staged(&Auto, &smooth, tau);
            let kinds: Vec<BlockKind> = auto.iter().map(|s| s.0).collect();
            assert_eq!(kinds, [BlockKind::Wavelet], "smooth at {tau}");
            assert_eq!(auto, staged(&Wavelet, &smooth, tau), "smooth at {tau}");
            let lbrc = staged(&Lbrc, &smooth, tau);
            assert!(auto[0].1.len() * 3 < lbrc[0].1.len() * 2, "smooth at {tau}");
        }
        // Noise: LBRC's glance is past what the transform can gain on; LBRC alone.
        let mut seed = 7u64;
        let noise = field(|_, _, _| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        });
        let auto = staged(&Auto, &noise, 1e-5);
        assert_eq!(auto, staged(&Lbrc, &noise, 1e-5), "noise");
    }

    /// The wavelet's look's estimate at `values` (of `shape`) over LBRC's glance, at an RMS
    /// error of `tau` times their range.
    fn look_ratio(values: &[f64], shape: [usize; 3], tau: f64) -> f64 {
        let specials = Specials::of(values, ElementType::F32);
        let block = BlockValues::new(values, &specials, shape, ElementType::F32);
        let budget = tau * (block.range.1 - block.range.0);
        let look = wavelet::look(&block, budget).expect("a look");
        look.estimate() / glance(&block, BlockBound::Rms(budget))
    }

    #[test]
    fn in_a_series_a_look_that_lost_is_skipped_for_ever_more_steps_with_the_same_stream() {
        // Terraces: LBRC codes their flats in a fraction of a bit, the transform pays at
        // every edge. Rough: the look loses, on a large block by less than a loss there is.
        let terraces = field(|x, y, z| ((0.13 * x + 0.21 * y + 0.17 * z) as i64 % 5) as f64);
        let rough = |shape| {
            field_of(shape, |x, y, z| {
                (0.9 * x).sin() * (1.3 * y).cos() + (0.7 * z).sin()
            })
        };
        let (rough_small, rough_large) = (rough(SMALL), rough(SHAPE));
        // Smooth: the look wins.
        let smooth = field(|x, y, z| (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0);
        assert!(look_ratio(&smooth, SHAPE, 1e-5) < 1.0);
        assert!(look_ratio(&terraces, SHAPE, 1e-5) >= LOST_FROM);
        assert!(look_ratio(&rough_small, SMALL, 1e-5) >= 1.0);
        let ratio = look_ratio(&rough_large, SHAPE, 1e-5);
        assert!((1.0..LOST_FROM).contains(&ratio), "rough: {ratio}");
        let cases = [
            ("terraces", &terraces, SHAPE, true),
            ("rough, small", &rough_small, SMALL, true),
            ("rough, large", &rough_large, SHAPE, false),
            ("smooth", &smooth, SHAPE, false),
        ];
        for (name, values, shape, lost) in cases {
            let (hint, plain) = (
                LookHint::new(),
                staged_in_series(&Auto, values, shape, 1e-5, None),
            );
            let mut looked = Vec::new();
            for step in 0..40 {
                let out = staged_in_series(&Auto, values, shape, 1e-5, Some(&hint));
                // The same stream whether the look was taken or skipped.
                assert_eq!(out, plain, "{name}, step {step}");
                if hint.skipped.load(Relaxed) == 0 {
                    looked.push(step);
                }
            }
            // Skipping 1, 2, 4, then MAX_SKIPS (7) steps after each look that lost.
            match lost {
                true => assert_eq!(looked, [0, 2, 5, 10, 18, 26, 34], "{name}"),
                false => assert_eq!(looked, (0..40).collect::<Vec<_>>(), "{name}"),
            }
        }
        // A look that wins starts the count anew.
        let smooth_small = field_of(SMALL, |x, y, z| {
            (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0
        });
        let hint = LookHint::new();
        let spans = [
            (&rough_small, 1),
            (&smooth_small, 1),
            (&smooth_small, 0),
            (&rough_small, 1),
            (&rough_small, 1),
        ];
        for (step, (values, span)) in spans.into_iter().enumerate() {
            staged_in_series(&Auto, values, SMALL, 1e-5, Some(&hint));
            assert_eq!(hint.span.load(Relaxed), span, "step {step}");
        }
        // An array cut into another number of blocks than before gets no hints.
        let hints = LookHints::default();
        assert!(hints.block(3, 4).is_some());
        assert!(hints.block(3, 5).is_none());
    }

    #[test]
    fn a_small_block_is_offered_the_wavelet_in_a_series_or_as_a_whole_array() {
        let smooth = field_of(SMALL, |x, y, z| {
            (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0
        });
        let kinds = |s: &[(BlockKind, Vec<u8>)]| s.iter().map(|s| s.0).collect::<Vec<_>>();
        let bytes = |s: &[(BlockKind, Vec<u8>)]| s.iter().map(|s| s.1.len()).min();
        for tau in [1e-4, 1e-5] {
            // Compressed once among other blocks: LBRC alone, as it costs more than a bit per
            // value here.
            let once = staged_in_series(&Auto, &smooth, SMALL, tau, None);
            assert_eq!(kinds(&once), [BlockKind::Lbrc], "at {tau}");
            // The whole array: the look wins, and the transform's coding with it.
            let whole = staged_as(&Auto, &smooth, SMALL, tau, None, true);
            assert!(kinds(&whole).contains(&BlockKind::Wavelet), "at {tau}");
            assert!(bytes(&whole) < bytes(&once), "at {tau}");
            // In a series: the look wins, at every step, and the transform's coding with it.
            let hint = LookHint::new();
            for step in 0..MAX_SKIPS as usize + 2 {
                let out = staged_in_series(&Auto, &smooth, SMALL, tau, Some(&hint));
                assert!(
                    kinds(&out).contains(&BlockKind::Wavelet),
                    "at {tau}, step {step}"
                );
                assert!(bytes(&out) < bytes(&once), "at {tau}, step {step}");
                assert_eq!(hint.skipped.load(Relaxed), 0, "at {tau}, step {step}");
            }
        }
        // Below MIN_IN_SERIES values: never looked at (a look would lose here).
        let tiny = [8, 16, 16];
        let rough = field_of(tiny, |x, y, z| {
            (0.9 * x).sin() * (1.3 * y).cos() + (0.7 * z).sin()
        });
        assert!(look_ratio(&rough, tiny, 1e-4) >= 1.0);
        let hint = LookHint::new();
        staged_in_series(&Auto, &rough, tiny, 1e-4, Some(&hint));
        assert_eq!(hint.span.load(Relaxed), 0);
    }

    #[test]
    fn the_glance_is_near_lbrcs_own_estimate() {
        // The lead trusts it to within its margin: measured here on a smooth field, a rough
        // one and noise.
        let mut seed = 3u64;
        let mut rand = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let fields = [
            field(|x, y, z| (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0),
            field(|x, y, z| (0.9 * x).sin() * (1.3 * y).cos() + (0.7 * z).sin()),
            field(|_, _, _| rand()),
        ];
        for (k, values) in fields.iter().enumerate() {
            for tau in [1e-4, 1e-5, 1e-6] {
                let specials = Specials::of(values, ElementType::F32);
                let block = BlockValues::new(values, &specials, SHAPE, ElementType::F32);
                let bound = BlockBound::Rms(tau * (block.range.1 - block.range.0));
                let stage = Lbrc.stage(&block, None, bound, false, None).unwrap();
                let own = stage.0[0].estimate();
                let g = glance(&block, bound);
                assert!(
                    (0.7 * own..1.45 * own + 0.1).contains(&g),
                    "field {k} at {tau}: glance {g}, LBRC's estimate {own}"
                );
            }
        }
    }
}
