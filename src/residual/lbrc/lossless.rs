//! LBRC for lossless streams (version 14): a block's values as integers that give every value
//! back bit for bit. Two mappings: the integers of a lattice the values lie on (packed GRIB or
//! netCDF, `f32` values within a few binades: [`on_lattice`]), where the decoder's
//! reconstruction repeats each value's bits; and, for `f32`, the values' bits read as ordered
//! integers ([`ORDERED_BITS`]: monotone in the value, as fpzip maps them), which serves values
//! over any number of binades. Each is predicted as any LBRC block; the codec keeps the
//! smaller coding, or zstd's.

use super::lattice::{on_lattice, on_plane_lattices};
use super::quantize::reconstruct;
use super::{ORDERED_BITS, PLANE_OFFSETS};
use crate::bound::BlockBound;
use crate::dtype::ElementType;
use crate::residual::predict;
use crate::residual::{BlockValues, Integers};

/// The block's integers under each mapping that gives every finite value back bit for bit
/// (the special values are restored from their own list), predicted, with their payload heads.
pub(crate) fn prepare_lossless(block: &BlockValues, par: bool) -> Vec<Integers> {
    let BlockValues {
        values,
        specials,
        shape,
        dtype,
        range,
        ..
    } = *block;
    let par = par && values.len() >= super::PAR_MIN;
    let ordered = (dtype == ElementType::F32).then(|| {
        let q = values.iter().map(|&x| match x.is_finite() {
            true => ordered_bits(x as f32),
            false => 0,
        });
        (ORDERED_BITS, 1.0, Vec::new(), q.collect())
    });
    (lattice(values, shape, dtype, range, par).into_iter())
        .chain(ordered)
        .map(|(offset, step, offsets, mut q)| {
            // Offset, step, plane offsets, special values, predictor (`doc/format.md` §5.5).
            let mut head = offset.to_le_bytes().to_vec();
            head.extend_from_slice(&step.to_le_bytes());
            offsets
                .iter()
                .for_each(|o: &f64| head.extend_from_slice(&o.to_le_bytes()));
            specials.write(q.len(), dtype, &mut head);
            let p = predict::choose(&q, shape);
            predict::fill(p.as_ref(), &mut q, shape, specials.positions());
            head.push(p.id());
            p.put_params(&mut head);
            Integers {
                head,
                values: p.forward(q, shape, par),
                shape,
                par,
                nglr: false,
            }
        })
        .collect()
}

/// A lattice the finite values lie on, where its reconstruction repeats every value's bits
/// and its integers span fewer than the element's bits (more, as a lattice as fine as the
/// finest spacing of values over many binades, would not code smaller than the bytes): the
/// offset field's bits (the plane offsets' marker where the planes have their own), the step,
/// the plane offsets, the integers.
fn lattice(
    values: &[f64],
    shape: [usize; 3],
    dtype: ElementType,
    (lo, hi): (f64, f64),
    par: bool,
) -> Option<(u64, f64, Vec<f64>, Vec<i64>)> {
    let bound = BlockBound::Lossless;
    // Any lattice is coarser than no step; planes of their own coarser than the block's.
    let block = on_lattice(values, lo, 0.0, bound, dtype, par);
    let beat = block.as_ref().map_or(0.0, |b| b.1);
    let (offset, step, offsets, q) = match on_plane_lattices(values, shape, beat, bound, dtype) {
        Some((o, s, q, _)) => (PLANE_OFFSETS, s, o, q),
        None => block.map(|(o, s, q, _)| (o.to_bits(), s, Vec::new(), q))?,
    };
    let narrow = (hi - lo) / step < 2f64.powi(8 * dtype.size() as i32);
    let m = shape[1] * shape[2];
    let offset_at = |i: usize| match offsets.is_empty() {
        true => f64::from_bits(offset),
        false => offsets[i / m],
    };
    // A zero error does not see the sign of a zero: the bits are compared.
    let repeats = (values.iter().zip(&q).enumerate()).all(|(i, (&x, &k))| {
        !x.is_finite() || reconstruct(offset_at(i), step, k, dtype).to_bits() == x.to_bits()
    });
    (narrow && repeats).then_some((offset, step, offsets, q))
}

/// An `f32`'s bits as an integer that orders as the values do: non-negative ones as they are,
/// negative ones (−0.0 among them, as −1) below zero.
pub(crate) fn ordered_bits(x: f32) -> i64 {
    let b = x.to_bits();
    match b >> 31 {
        0 => b as i64,
        _ => -((b & 0x7fff_ffff) as i64) - 1,
    }
}

/// The `f32` bits of an [`ordered_bits`] integer; None outside the 32 bits' range.
pub(crate) fn from_ordered_bits(q: i64) -> Option<u32> {
    if (0..=i32::MAX as i64).contains(&q) {
        Some(q as u32)
    } else if (-(1i64 << 31)..0).contains(&q) {
        Some(0x8000_0000 | (-(q + 1)) as u32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::IntCoder;
    use crate::residual::specials::Specials;

    /// A block of `v` (f32 values as f64) coded losslessly: its payloads, the lattice's (where
    /// there is one) first.
    fn payloads(v: &[f64], shape: [usize; 3]) -> Vec<Vec<u8>> {
        let specials = Specials::of(v, ElementType::F32);
        let block = BlockValues::new(v, &specials, shape, ElementType::F32);
        (prepare_lossless(&block, false).into_iter())
            .map(|i| i.finish(IntCoder::Context))
            .collect()
    }

    #[test]
    fn ordered_bits_come_back_bit_for_bit_and_only_where_the_stream_allows_them() {
        // Over many binades, both signs, a -0.0, denormals, a NaN: no lattice serves.
        let mut v: Vec<f64> = (0..4096)
            .map(|i| ((i as f64 * 0.05).sin() * 10f64.powi(i % 23 - 11)) as f32 as f64)
            .collect();
        (v[3], v[9], v[40]) = (-0.0, 1e-45f32 as f64, f64::NAN);
        let shape = [4, 32, 32];
        let p = payloads(&v, shape);
        assert_eq!(p.len(), 1, "no lattice: ordered bits alone");
        assert_eq!(p[0][..8], ORDERED_BITS.to_le_bytes());
        let decode = |p: &[u8], dtype, version| {
            super::super::decode(p, None, None, shape, dtype, false, version)
        };
        let out = decode(&p[0], ElementType::F32, 14).unwrap();
        for (x, b) in v.iter().zip(out.chunks_exact(4)) {
            let y = f32::from_le_bytes(b.try_into().unwrap());
            assert!(
                x.is_nan() && y.is_nan() || (*x as f32).to_bits() == y.to_bits(),
                "{x} {y}"
            );
        }
        // Not in f64 blocks, before version 14, with another step.
        assert!(decode(&p[0], ElementType::F64, 14).is_err());
        assert!(decode(&p[0], ElementType::F32, 13).is_err());
        let mut step = p[0].clone();
        step[8..16].copy_from_slice(&2f64.to_le_bytes());
        assert!(decode(&step, ElementType::F32, 14).is_err());
        // Integers beyond f32's 32 bits: refused, not wrapped, but at a special value's
        // position, where they are the predictor's fill (a fill next to f32::MAX overshot
        // once, found by fuzzing) and the special value replaces them.
        let coded = |q: Vec<i64>, v: &[f64]| {
            let mut head = ORDERED_BITS.to_le_bytes().to_vec();
            head.extend_from_slice(&1f64.to_le_bytes());
            Specials::of(v, ElementType::F32).write(64, ElementType::F32, &mut head);
            let p = predict::choose(&q, [1, 1, 64]);
            head.push(p.id());
            p.put_params(&mut head);
            let ints = Integers {
                head,
                values: p.forward(q, [1, 1, 64], false),
                shape: [1, 1, 64],
                par: false,
                nglr: false,
            };
            let s = ints.finish(IntCoder::Context);
            super::super::decode(&s, None, None, [1, 1, 64], ElementType::F32, false, 14)
        };
        let mut q = vec![ordered_bits(f32::MAX); 64];
        let mut v = vec![f32::MAX as f64; 64];
        q[5] = 1 << 31;
        let e = coded(q.clone(), &v).unwrap_err();
        assert!(e.to_string().contains("beyond f32"), "{e}");
        v[5] = f64::NAN;
        let out = coded(q, &v).unwrap();
        assert!(f32::from_le_bytes(out[20..24].try_into().unwrap()).is_nan());
        assert_eq!(
            f32::from_le_bytes(out[24..28].try_into().unwrap()),
            f32::MAX
        );
    }

    #[test]
    fn a_lattice_is_offered_only_where_it_gives_every_bit_back() {
        // On a lattice of 1/64: both mappings; with a -0.0 (the lattice's zero is +0.0), the
        // ordered bits alone.
        let mut v: Vec<f64> = (0..4096)
            .map(|i| ((i as f64 * 0.01).sin() * 64.0 * 20.0).round() / 64.0)
            .collect();
        let shape = [4, 32, 32];
        let p = payloads(&v, shape);
        assert_eq!(p.len(), 2);
        assert!(f64::from_le_bytes(p[0][..8].try_into().unwrap()).is_finite());
        let zero = v.iter().position(|&x| x == 0.0).unwrap();
        v[zero] = -0.0;
        assert_eq!(payloads(&v, shape).len(), 1);
    }

    #[test]
    fn ordered_bits_order_as_the_values_and_come_back() {
        let xs = [
            f32::MIN,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
        ];
        let q: Vec<i64> = xs.iter().map(|&x| ordered_bits(x)).collect();
        assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        assert_eq!((ordered_bits(-0.0), ordered_bits(0.0)), (-1, 0));
        for (&x, &k) in xs.iter().zip(&q) {
            assert_eq!(from_ordered_bits(k), Some(x.to_bits()));
        }
        assert_eq!(from_ordered_bits(1 << 31), None);
        assert_eq!(from_ordered_bits(-(1 << 31) - 1), None);
        assert_eq!(from_ordered_bits(-(1 << 31)), Some(0xffff_ffff));
    }
}
