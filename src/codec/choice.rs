//! The stream-level choice: which tables (the base model's decoder, the NGLR network, the
//! previous step's reconstruction) a stream carries, and so which of each block's codings it
//! writes: the smallest stream wins. Before it, each block's best coding per set of tables
//! (the pipeline's second stage).

use super::{Block, Recon, PRUNE};
use crate::bound::ErrorStats;
use crate::dtype::ElementType;
use crate::entropy::{encode_bytes, ByteCoding};
use crate::error::Result;
use crate::format::BlockKind;
use crate::params::IntCoder;

/// A coded block: how, its payload, its errors, and where at hand its reconstruction's element
/// bytes (see [`crate::residual::Stage`]).
pub(super) type CodedBlock = (BlockKind, Vec<u8>, ErrorStats, Option<Recon>);

/// Stream tables a block may need: the base model's decoder, the NGLR network, the previous
/// step's reconstruction (kept by the reader, named by the step entry).
pub(super) const MODEL: usize = 1;
pub(super) const NGLR: usize = 2;
pub(super) const PREVIOUS: usize = 4;
pub(super) const TABLES: usize = 3;
pub(super) const SETS: usize = 1 << TABLES;

/// A block's best coding for each set of stream tables it may use (index: the set): the
/// first, without any, always there; the others where smaller than it (or forced).
pub(super) struct Choice {
    pub(super) best: [Option<CodedBlock>; SETS],
}

/// The stream tables to carry for the smallest stream, the blocks choosing by [`pick`];
/// `costs`: the bytes each table available adds to the stream (index: its bit); `forced`: the
/// tables every block that can use them must (`base=model`, `residual=nglr`).
pub(super) fn carried(coded: &[Choice], costs: [Option<usize>; TABLES], forced: usize) -> usize {
    let available = (0..TABLES)
        .filter(|&b| costs[b].is_some())
        .fold(0, |a, b| a | 1 << b);
    let serves = coded.iter().fold(0, |a, c| {
        a | (1..SETS)
            .filter(|&t| c.best[t].is_some())
            .fold(0, |x, t| x | t)
    });
    let total = |carried: usize| -> usize {
        let blocks: usize = coded.iter().map(|c| pick(c, carried, forced).1.len()).sum();
        let tables = (0..TABLES).filter(|&b| carried & 1 << b != 0);
        blocks + tables.map(|b| costs[b].unwrap_or(0)).sum::<usize>()
    };
    let must = forced & available & serves;
    (0..SETS)
        .filter(|t| t & !(available & serves) == 0 && t & must == must)
        .min_by_key(|&t| total(t))
        .unwrap_or(0)
}

/// A block's coding where the stream carries the tables `carried`: the smallest of those they
/// allow, one using the `forced` tables first.
pub(super) fn pick(c: &Choice, carried: usize, forced: usize) -> &CodedBlock {
    c.best[picked(c, carried, forced)]
        .as_ref()
        .expect("a picked coding is there")
}

/// The set of tables of [`pick`]'s coding.
pub(super) fn picked(c: &Choice, carried: usize, forced: usize) -> usize {
    let want = forced & carried;
    (0..SETS)
        .filter(|t| t & !carried == 0)
        .filter_map(|t| Some((t, c.best[t].as_ref()?)))
        .min_by_key(|(t, b)| ((want & !t).count_ones(), b.1.len()))
        .map(|(t, _)| t)
        .expect("every block has a coding without tables")
}

/// The pipeline's second stage: integer coding of every candidate, and the smallest with
/// and without the base model; lossless coding where no lossy payload is smaller than the
/// raw block (or no step met the bound), or where the target is `lossless` (its candidates,
/// integers of a lattice, can take most of the raw bytes where zstd takes few).
pub(super) fn finish(
    s: Block,
    dtype: ElementType,
    coder: IntCoder,
    level: i32,
    forced: usize,
    lossless: bool,
) -> Result<Choice> {
    let mut best: [Option<CodedBlock>; SETS] = Default::default();
    // Pruned against the best estimate among the candidates needing the same tables (so
    // that a block codes as it would without them), NGLR's also against those without it.
    let mut lowest = [f64::INFINITY; SETS];
    for c in &s.candidates {
        lowest[c.tables] = lowest[c.tables].min(c.estimate);
    }
    for c in s.candidates {
        if c.estimate > PRUNE * lowest[c.tables].min(lowest[c.tables & !NGLR]) {
            continue;
        }
        let (kind, payload) = c.staged.finish(coder);
        let slot = &mut best[c.tables];
        if slot.as_ref().is_none_or(|b| payload.len() < b.1.len()) {
            *slot = Some((kind, payload, c.errors, c.recon));
        }
    }
    let raw = s.raw;
    let raw_len = raw.len();
    // A lossy payload of less than half the raw bytes wins outright; above that, lossless
    // coding may cost less (noisy blocks at tight targets), so it is tried too. Where only
    // a coding over the previous step was staged and wins so, the stream carries it (it
    // costs no table), and the fallback needs no zstd.
    let exact = ErrorStats::exact(raw.len() / dtype.size());
    let outright = |c: &Option<CodedBlock>| c.as_ref().is_some_and(|p| 2 * p.1.len() < raw_len);
    let plain = match best[0].take() {
        Some(p) if 2 * p.1.len() < raw.len() && !lossless => p,
        None if outright(&best[PREVIOUS]) => (BlockKind::Raw, raw, exact, None),
        lossy => {
            // Stored exactly: no error (counted over all values, as NaNs round-trip too).
            let exact = match encode_bytes(&raw, level)? {
                ByteCoding::Zstd(z) => (BlockKind::Zstd, z, exact, None),
                ByteCoding::Raw => (BlockKind::Raw, raw, exact, None),
            };
            match lossy {
                Some(p) if p.1.len() < exact.1.len() => p,
                _ => exact,
            }
        }
    };
    // Forced, a table's coding is kept even where larger, but never beyond the raw block:
    // `max_compressed_len` holds.
    for (tables, slot) in best.iter_mut().enumerate().skip(1) {
        let keep = |m: &CodedBlock| {
            m.1.len() < plain.1.len() || (tables & forced != 0 && m.1.len() <= raw_len)
        };
        *slot = slot.take().filter(keep);
    }
    best[0] = Some(plain);
    Ok(Choice { best })
}
