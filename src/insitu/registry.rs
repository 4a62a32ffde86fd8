//! The operator side of the hand-over: ranges handed over per variable, reports waiting to be
//! taken, and what each variable's earlier steps taught the encoder. Lives in the plugin's copy
//! of residuum.

use super::chains::{chain_key, ChainKey};
use super::{RangeUsed, Report};
use crate::codec::{Codec, CompressStats};
use crate::dtype::ElementType;
use crate::error::Result;
use crate::params::Range;
use crate::residual::LookHints;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Reports kept for an application that never takes them (oldest dropped first).
const MAX_REPORTS: usize = 4096;
/// Variables' boxes whose encoder hints are kept: all are forgotten when one more comes.
const MAX_HINTS: usize = 4096;

#[derive(Default)]
struct Registry {
    /// Threads for codecs configured with 0 (0: no hint).
    threads: usize,
    /// (engine, variable, kind) → range.
    ranges: HashMap<(String, String, RangeUsed), f64>,
    reports: VecDeque<Report>,
    /// The range kind last logged per (engine, variable): the log says when it changes.
    logged: HashMap<(String, String), RangeUsed>,
    /// (engine, variable) whose blocks went without temporal prediction for want of a start
    /// or a name (said once each).
    unplaced: HashSet<(String, String)>,
    /// What the wavelet's looks at each variable's block said (temporal prediction, which
    /// offers the previous step as a base instead, goes without).
    hints: HashMap<ChainKey, Arc<LookHints>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Registry::default))
}

pub(crate) fn set_range(engine: &str, variable: &str, kind: RangeUsed, range: f64) {
    with(|r| {
        r.ranges
            .insert((engine.to_string(), variable.to_string(), kind), range)
    });
}

pub(crate) fn set_threads(n: usize) {
    with(|r| r.threads = n);
}

/// The threads the operator's calls use where their codec leaves it open: the count
/// `set_threads` gave, else the default (`RESIDUUM_THREADS`, else the cores this rank owns).
pub(crate) fn threads() -> usize {
    match with(|r| r.threads) {
        0 => crate::pipeline::default_threads(),
        n => n,
    }
}

/// Forgets the encoder hints of `engine`'s variables (of all for None): a file opened under
/// the name of an earlier one starts without them, as its chains of steps start anew, so its
/// bytes do not depend on what was written before it.
pub(crate) fn forget_hints(engine: Option<&str>) {
    with(|r| r.hints.retain(|k, _| engine.is_some_and(|e| k.0 != e)));
}

/// Takes the reports of `engine` (all for None), leaving the others'.
pub(crate) fn take_reports(engine: Option<&str>) -> Vec<Report> {
    with(|r| {
        let (taken, kept) = r
            .reports
            .drain(..)
            .partition(|rep| engine.is_none_or(|e| rep.engine == e));
        r.reports = kept;
        taken.into()
    })
}

/// The range the operator of `variable` resolves against, and which kind it is. A handed-over
/// range narrower than the block's own is stale or wrong: the block's range is used instead,
/// so the error never exceeds the target relative to the data actually written.
fn choose(
    codec: &Codec,
    engine: &str,
    variable: &str,
    mut own: impl FnMut() -> f64,
) -> (RangeUsed, Option<f64>) {
    let cfg = codec.config();
    if !cfg.target.needs_range() {
        return (RangeUsed::None, None);
    }
    let wanted = match cfg.range {
        Range::Fixed(r) => return (RangeUsed::Fixed, Some(r)),
        Range::Block => return (RangeUsed::Block, None),
        Range::Rank => RangeUsed::Rank,
        Range::Global => RangeUsed::Global,
    };
    let key = (engine.to_string(), variable.to_string(), wanted);
    match with(|r| r.ranges.get(&key).copied()) {
        Some(range) if range >= own() => (wanted, Some(range)),
        _ => (RangeUsed::Block, Some(own())),
    }
}

/// The rank for log messages, from the MPI launcher's environment (the plugin has no MPI).
fn rank() -> Option<u64> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// Compresses for the operator of `variable` in `engine` (its block at `start`), with the range
/// its parameters ask for (and over the block's previous step, with `temporal=K`, where the
/// block has a start and its variable a name), records the report, and logs (on rank 0) which
/// range it used whenever that changes. A block without a start (a local or joined array's) is
/// known by its count alone, which the blocks of every rank, and several of one, share, and
/// without the name every variable of a box would share one chain: under temporal prediction
/// one block would be predicted from another's step, so such blocks are coded alone.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compress(
    codec: &Codec,
    engine: &str,
    variable: &str,
    start: Option<&[usize]>,
    dtype: ElementType,
    dims: &[usize],
    data: &[u8],
    out: &mut [u8],
) -> Result<CompressStats> {
    let hint = with(|r| r.threads);
    let adjusted;
    let codec = if hint > 0 && codec.config().threads == 0 && hint != codec.threads() {
        adjusted = codec.with_threads(hint)?;
        &adjusted
    } else {
        codec
    };
    let mut own = None;
    let block_range = || {
        *own.get_or_insert_with(|| {
            crate::bound::data_range(data, dtype, codec.config().fill_bits(dtype), false)
        })
    };
    let (kind, range) = choose(codec, engine, variable, block_range);
    let temporal = codec.config().temporal > 0;
    // Chains are kept per variable and block: without the variable's name (BP4 and BP3 give
    // operators none) or the block's start, blocks are coded alone.
    let placed = start.filter(|_| temporal && !variable.is_empty());
    let stats = if let Some(start) = placed {
        super::steps::compress(
            codec, engine, variable, start, dtype, dims, data, out, range,
        )?
    } else {
        let first = temporal
            && with(|r| {
                r.unplaced
                    .insert((engine.to_string(), variable.to_string()))
            });
        if first && rank().unwrap_or(0) == 0 {
            if variable.is_empty() {
                eprintln!(
                    "residuum: this engine gives operators no variable names (BP4 and BP3 do \
                     not; BP5 and SST do), so its blocks are coded without temporal prediction"
                );
            } else {
                eprintln!(
                    "residuum: variable '{variable}' in '{engine}': its blocks have no place in \
                     a global array (a local or joined array), so they are coded without \
                     temporal prediction"
                );
            }
        }
        let zeros = vec![0; dims.len()];
        let key = chain_key(engine, variable, start.unwrap_or(&zeros), dims);
        let hints = with(|r| {
            // Boxes that move (adaptive meshes) would make new keys step after step.
            if r.hints.len() >= MAX_HINTS && !r.hints.contains_key(&key) {
                r.hints.clear();
            }
            r.hints.entry(key).or_default().clone()
        });
        let step = codec.compress_step(dtype, dims, data, out, range, None, Some(&hints))?;
        step.0
    };
    let key = (engine.to_string(), variable.to_string());
    let changed = with(|r| {
        r.reports.push_back(Report {
            engine: engine.to_string(),
            variable: variable.to_string(),
            range_used: kind,
            stats,
        });
        if r.reports.len() > MAX_REPORTS {
            r.reports.pop_front();
        }
        r.logged.insert(key, kind) != Some(kind)
    });
    if changed && rank().unwrap_or(0) == 0 {
        let wanted = codec.config().range.name();
        let note = if kind == RangeUsed::Block && wanted != "block" {
            format!(" (range={wanted} asked, but no usable range was handed over for this step)")
        } else {
            String::new()
        };
        eprintln!(
            "residuum: variable '{variable}' in '{engine}': {:?} resolved against the {} range {}{note}",
            codec.config().target,
            kind.name(),
            readable(stats.range)
        );
    }
    Ok(stats)
}

/// `x` as people read it: plain where that is short, else in exponent form (a range near
/// f64::MAX would print 309 digits, a denormal one 330).
fn readable(x: f64) -> String {
    if x == 0.0 || (1e-3..1e7).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests of encoder hints: one clears all of them now and then.
    static HINTS: Mutex<()> = Mutex::new(());

    #[test]
    fn encoder_hints_stay_bounded_where_boxes_move() {
        let _one = HINTS.lock().unwrap_or_else(|e| e.into_inner());
        let codec = Codec::from_pairs([("nrmse", "1e-3")]).unwrap();
        let data: Vec<u8> = [1.5f32, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = vec![0u8; codec.max_compressed_len(ElementType::F32, &[2])];
        for i in 0..MAX_HINTS + 10 {
            // A box that moves at every step, as on an adaptive mesh.
            let (engine, f32) = ("moving-boxes", ElementType::F32);
            compress(&codec, engine, "x", Some(&[i]), f32, &[2], &data, &mut out).unwrap();
            assert!(with(|r| r.hints.len()) <= MAX_HINTS, "after {i} boxes");
        }
        take_reports(Some("moving-boxes"));
    }

    #[test]
    fn a_file_opened_again_under_its_name_starts_without_the_hints_of_the_one_before() {
        let _one = HINTS.lock().unwrap_or_else(|e| e.into_inner());
        // Terraces: the wavelet's look at them loses by far, so the same block's next step
        // skips it; at a smooth field it wins, and only a look finds that.
        let at = |f: &dyn Fn(f64, f64, f64) -> f64| -> Vec<u8> {
            let (b, c) = (48, 48);
            (0..40 * b * c)
                .map(|i| f((i / (b * c)) as f64, ((i / c) % b) as f64, (i % c) as f64) as f32)
                .flat_map(|v| v.to_le_bytes())
                .collect()
        };
        let terraces = at(&|x, y, z| ((0.13 * x + 0.21 * y + 0.17 * z) as i64 % 5) as f64);
        let smooth = at(&|x, y, z| (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0);
        let codec = Codec::from_pairs([("nrmse", "1e-5"), ("block", "40x48x48")]).unwrap();
        let dims = [40, 48, 48];
        let mut out = vec![0u8; codec.max_compressed_len(ElementType::F32, &dims)];
        let mut write = |engine: &str, data: &[u8]| {
            let f32 = ElementType::F32;
            let n = compress(
                &codec,
                engine,
                "x",
                Some(&[0; 3]),
                f32,
                &dims,
                data,
                &mut out,
            )
            .unwrap()
            .bytes_out;
            out[..n].to_vec()
        };
        let fresh = write("hints-fresh.bp", &smooth);
        for engine in ["hints-again.bp", "hints-other.bp"] {
            write(engine, &terraces);
        }
        // The writer opens hints-again.bp anew (restarting its chains forgets its hints).
        forget_hints(Some("hints-again.bp"));
        assert_eq!(write("hints-again.bp", &smooth), fresh);
        // Where the file goes on, its next step skips the look: another stream.
        assert_ne!(write("hints-other.bp", &smooth), fresh);
        take_reports(Some("hints-fresh.bp"));
        take_reports(Some("hints-again.bp"));
        take_reports(Some("hints-other.bp"));
    }

    #[test]
    fn logged_ranges_stay_short() {
        assert_eq!(readable(0.83), "0.83");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(f64::MAX), "1.7976931348623157e308");
        assert_eq!(
            readable(f32::from_bits(189) as f64),
            "2.6484540975739043e-43"
        );
    }
}
