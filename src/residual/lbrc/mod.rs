//! LBRC: quantize the residual with a per-block step chosen for the target (`quantize`),
//! predict the integers (`predict`: Lorenzo subsets, least squares, chosen per block by
//! estimated bits), code the prediction residuals with an integer coder (`ints`). Non-finite
//! values are kept aside and restored exactly (`specials`).
//!
//! Payload: offset f64 | step f64 | (plane offsets f64 each, where the offset is
//! `PLANE_OFFSETS`; an origin i64 and s low bits a value, where it is `ORDERED_BITS` in an
//! `f64` block) | specials | predictor id u8 and its parameters | coded integers; read back
//! by `decode`. A block whose values all lie within the bound of `offset` is stored as a
//! constant (offset and specials only). Over a base model (block kind `BaseLbrc`): the base part
//! (`frame`), then 0 and a constant payload or 1 and an LBRC payload. `doc/format.md`
//! specifies every byte.

mod decode;
mod lattice;
mod lossless;
mod quantize;
pub use decode::{decode, decode_over_previous};
pub(crate) use decode::{
    decode_over_base, max_values, max_values_over_base, max_values_over_previous,
};
pub(crate) use lossless::prepare_lossless;
pub(super) use quantize::{grown, plateau, GROW_BELOW};

use super::predict::{self, nglr, Predictor};
use super::specials::Specials;
use super::{decoded_bytes, Base, BlockValues, Integers, OneStage, Recon, Staged};
use crate::base::frame;
use crate::bound::{finite_min_max, initial_step, BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::format::BlockKind;
use crate::params::IntCoder;
use lattice::{on_lattice, on_plane_lattices};
use quantize::{choose_step, reconstruct, reconstruct_on};

/// A block coded in one go by [`encode`].
pub enum Payload {
    /// Every finite value reconstructs as the offset.
    Constant(Vec<u8>),
    Lbrc(Vec<u8>),
}

/// The offset field of a payload whose planes each have their own offset (after the step;
/// version 13, never over a base): a quiet NaN, which no other payload's offset is.
pub(crate) const PLANE_OFFSETS: u64 = 0x7ff8_0000_0000_0000;
/// The offset field of a payload whose integers are its values' bits, ordered (lossless
/// streams, `f32` from version 14, `f64` from 15, never over a base, step 1): another quiet
/// NaN.
pub(crate) const ORDERED_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Blocks smaller than this are coded on one thread: the hand-over to another costs more than
/// it saves.
pub(crate) const PAR_MIN: usize = 1 << 16;
/// Values the check for a constant block sums between looks at its sums.
const CONSTANT_RUN: usize = 4096;

/// What the first stage made of a block.
pub(crate) enum Prepared {
    /// Done: every finite value reconstructs as the offset.
    Constant(Vec<u8>),
    /// The block's integers under each predictor worth coding (with NGLR and without).
    Residuals(Vec<Integers>),
}

/// Codes one block for `bound` in one go (`prepare`, then `Integers::finish`).
pub fn encode(
    values: &[f64],
    shape: [usize; 3],
    bound: BlockBound,
    dtype: ElementType,
    coder: IntCoder,
    par: bool,
) -> Option<(Payload, ErrorStats)> {
    let specials = Specials::of(values, dtype);
    let block = BlockValues::new(values, &specials, shape, dtype);
    let (prepared, stats, _) = prepare(&block, None, bound, par)?;
    let coded = match prepared {
        Prepared::Constant(p) => Payload::Constant(p),
        Prepared::Residuals(mut p) => Payload::Lbrc(p.swap_remove(0).finish(coder)),
    };
    Some((coded, stats))
}

/// LBRC as the pipeline's residual stage: over no base, `Constant` or `Lbrc` blocks; over the
/// base model, `BaseLbrc`; over the previous step, `Previous`.
pub(crate) struct Lbrc;

impl OneStage for Lbrc {
    fn stage(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        _beat: Option<f64>,
    ) -> Option<super::Stage> {
        let prediction = base.as_ref().map(Base::prediction);
        let (prepared, stats, recon) = prepare(block, prediction, bound, par)?;
        let Some(base) = base else {
            let staged = match prepared {
                Prepared::Constant(p) => vec![Staged::Done(BlockKind::Constant, p)],
                Prepared::Residuals(r) => r
                    .into_iter()
                    .map(|r| Staged::Ints(BlockKind::Lbrc, Vec::new(), r))
                    .collect(),
            };
            return Some((staged, stats, recon));
        };
        let mut prefix = Vec::new();
        let kind = match base {
            Base::Model(b) => {
                frame::put(b, &mut prefix);
                BlockKind::BaseLbrc
            }
            Base::Previous(code, _) => {
                prefix.push(code);
                BlockKind::Previous
            }
        };
        let staged = match prepared {
            Prepared::Constant(p) => {
                prefix.push(0);
                prefix.extend_from_slice(&p);
                vec![Staged::Done(kind, prefix)]
            }
            Prepared::Residuals(r) => {
                prefix.push(1);
                r.into_iter()
                    .map(|r| Staged::Ints(kind, prefix.clone(), r))
                    .collect()
            }
        };
        Some((staged, stats, recon))
    }
}

/// The quantization and prediction stage of a block for `bound`, with the errors of its
/// verified reconstruction (and its element bytes where `block.recon` asks for them); None
/// where lossless coding must take it. With `base` (a base
/// model's finite prediction of every value) the residual over it is coded, and the errors are
/// those of base + residual. `par` lets its steps (and the later entropy coding) use the current
/// rayon pool (the output is the same either way).
pub(crate) fn prepare(
    block: &BlockValues,
    base: Option<&[f64]>,
    bound: BlockBound,
    par: bool,
) -> Option<(Prepared, ErrorStats, Option<Recon>)> {
    let BlockValues {
        values,
        specials,
        shape,
        dtype,
        nglr,
        recon,
        range,
        ..
    } = *block;
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    let par = par && values.len() >= PAR_MIN;
    let (lo, hi) = match base {
        None => range,
        Some(b) => finite_min_max(values.iter().zip(b).map(|(&x, &b)| x - b)),
    };
    let offset = if hi >= lo {
        dtype.round(crate::bound::midpoint(lo, hi))
    } else {
        0.0
    };
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&offset.to_le_bytes());

    // All finite values within the bound of the offset: a constant block. The extreme value
    // alone lower-bounds the errors (max |x − offset| ≥ half the range, RMS ≥ that / √n), so
    // the full check runs only where it can succeed.
    let half = 0.5 * (hi - lo);
    let possible = match bound {
        BlockBound::Rms(r) => half <= r * (values.len() as f64).sqrt() * 1.001,
        BlockBound::Max(m) => half <= m * 1.001,
        BlockBound::Lossless => false,
    };
    if possible || hi < lo {
        let mut cst = ErrorStats::new(bound.unit());
        // The sums only grow: they stop, a chunk at a time, once past what the bound allows
        // (with a margin over the rounding of the RMS, so the answer is the full sums'). Most
        // blocks checked are not constant, and a large one's full check cost about as much
        // as a quantization pass.
        let past = |s: &ErrorStats| match bound {
            BlockBound::Rms(r) => {
                let r = r / s.unit;
                s.sum_sq > r * r * values.len() as f64 * (1.0 + 1e-9)
            }
            BlockBound::Max(m) => s.max_abs > m,
            BlockBound::Lossless => false,
        };
        let mut at = 0;
        while at < values.len() && !past(&cst) {
            let run = at..(at + CONSTANT_RUN).min(values.len());
            match base {
                None => values[run.clone()].iter().for_each(|&x| cst.add(x, offset)),
                Some(b) => (values[run.clone()].iter().zip(&b[run.clone()]))
                    .for_each(|(&x, &b)| cst.add(x, dtype.round(b + offset))),
            }
            at = run.end;
        }
        if cst.meets(bound) {
            specials.write(values.len(), dtype, &mut head);
            // As the decoder forms a constant block.
            let bytes = recon.then(|| {
                let n = values.len();
                match base {
                    None => decoded_bytes(n, dtype, specials, (0..n).map(|_| dtype.round(offset))),
                    Some(b) => decoded_bytes(
                        n,
                        dtype,
                        specials,
                        b.iter().map(|&b| dtype.round(b + offset)),
                    ),
                }
            });
            return Some((Prepared::Constant(head), cst, bytes));
        }
    }
    // At RMS targets, the lattice through the block's plateau, where it has one (a point-wise
    // bound's step is the same wherever the lattice sits).
    let offset = match bound {
        BlockBound::Rms(_) => quantize::plateau(values, base, initial_step(bound)),
        _ => None,
    }
    .map_or(offset, |p| dtype.round(p));
    head[..8].copy_from_slice(&offset.to_le_bytes());
    let (mut step, mut q, mut stats) = choose_step(values, base, offset, bound, dtype, par)?;
    // Data stored quantized (GRIB, packed netCDF) lie on a lattice lo + k·s. Where the bound
    // asks for a finer step than s, the lattice itself serves: exact, with fewer integers.
    if let Some((o, s, lq, ls)) = base
        .is_none()
        .then(|| on_lattice(values, lo, step, bound, dtype, par))
        .flatten()
    {
        head[..8].copy_from_slice(&o.to_le_bytes());
        (step, q, stats) = (s, lq, ls);
    }
    // Planes on lattices of their own (a stack of GRIB messages), coarser still.
    let mut offsets = None;
    if let Some((o, s, lq, ls)) = base
        .is_none()
        .then(|| on_plane_lattices(values, shape, step, bound, dtype))
        .flatten()
    {
        head[..8].copy_from_slice(&PLANE_OFFSETS.to_le_bytes());
        (step, q, stats) = (s, lq, ls);
        offsets = Some(o);
    }
    head.extend_from_slice(&step.to_le_bytes());
    for o in offsets.iter().flatten() {
        head.extend_from_slice(&o.to_le_bytes());
    }
    specials.write(values.len(), dtype, &mut head);
    let bytes = recon.then(|| {
        let offset = f64::from_le_bytes(head[..8].try_into().unwrap());
        let n = values.len();
        match (base, &offsets) {
            (None, Some(o)) => {
                let m = shape[1] * shape[2];
                let r = (q.iter().enumerate()).map(|(i, &q)| reconstruct(o[i / m], step, q, dtype));
                decoded_bytes(n, dtype, specials, r)
            }
            (None, None) => {
                let r = q.iter().map(|&q| reconstruct(offset, step, q, dtype));
                decoded_bytes(n, dtype, specials, r)
            }
            (Some(b), _) => {
                let r =
                    (b.iter().zip(&q)).map(|(&b, &q)| reconstruct_on(b, offset, step, q, dtype));
                decoded_bytes(n, dtype, specials, r)
            }
        }
    });
    let with_predictor = |mut head: Vec<u8>, p: &dyn Predictor| {
        head.push(p.id());
        p.put_params(&mut head);
        head
    };
    let classic = predict::choose(&q, shape);
    predict::fill(classic.as_ref(), &mut q, shape, specials.positions());
    let net = nglr.filter(|_| shape[1] >= 2 && shape[2] >= 2);
    let kept = net.map(|_| q.clone());
    let plain = Integers {
        head: with_predictor(head.clone(), classic.as_ref()),
        values: classic.forward(q, shape, par),
        shape,
        par,
        nglr: false,
    };
    let mut out = Vec::with_capacity(2);
    // NGLR over the block's own predictor, where its sampled cost is lower (or forced).
    if let (Some(u), Some(mut q)) = (net, kept) {
        let scale = nglr::scale_of(&plain.values, shape);
        let p = nglr::Nglr::new(u.net.clone(), classic, scale, nglr::planar(shape));
        if u.force || nglr::promising(&p, &q, &plain.values, shape, specials.positions()) {
            predict::fill(&p, &mut q, shape, specials.positions());
            out.push(Integers {
                head: with_predictor(head, &p),
                values: p.forward(q, shape, par),
                shape,
                par,
                nglr: true,
            });
            if u.force {
                return Some((Prepared::Residuals(out), stats, bytes));
            }
        }
    }
    out.push(plain);
    Some((Prepared::Residuals(out), stats, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_blocks_are_judged_on_all_their_values() {
        // Several of the check's runs long, centred on 1 so that only the values that are not 1
        // have errors: whether the block is constant is decided in its last run.
        let n = 3 * CONSTANT_RUN + 5;
        let rms = 1e-3;
        let constant = |v: &[f64]| {
            let coded = encode(
                v,
                [1, 1, n],
                BlockBound::Rms(rms),
                ElementType::F64,
                IntCoder::Context,
                false,
            );
            matches!(coded, Some((Payload::Constant(_), _)))
        };
        assert!(constant(&vec![1.0; n]));
        for (scale, want) in [(1.01, false), (0.99, true)] {
            // Two values at the end, whose errors alone make the RMS.
            let d = rms * (n as f64 / 2.0).sqrt() * scale;
            let mut v = vec![1.0; n];
            (v[n - 2], v[n - 1]) = (1.0 - d, 1.0 + d);
            assert_eq!(constant(&v), want, "outliers at {scale}");
            // Every value off by about the bound: the sums pass it only near the end.
            let v: Vec<f64> = (0..n)
                .map(|i| 1.0 + rms * scale * if i % 2 == 0 { 1.0 } else { -1.0 })
                .collect();
            assert_eq!(constant(&v), want, "spread at {scale}");
        }
    }
}
