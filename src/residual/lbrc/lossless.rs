//! LBRC for lossless streams: a block's values as integers that give every value back bit for
//! bit. Two mappings: the integers of a lattice the values lie on (packed GRIB or netCDF, `f32`
//! values within a few binades: [`on_lattice`]; version 14), where the decoder's
//! reconstruction repeats each value's bits; and the values' bits read as ordered integers
//! ([`ORDERED_BITS`]: monotone in the value, as fpzip maps them; `f32` from version 14, `f64`
//! from 15), which serves values over any number of binades (an `f64`'s above the block's least,
//! in steps of 2^s that keep them within LBRC's reach, the s low bits stored as they are). Each
//! is predicted as any LBRC block; the codec keeps the smaller coding, or zstd's.

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
    (lattice(values, shape, dtype, range, par).into_iter())
        .map(|(offset, step, offsets, q)| {
            let offsets = offsets.iter().flat_map(|o: &f64| o.to_le_bytes()).collect();
            (offset, step, offsets, q)
        })
        .chain(Some(ordered(values, dtype)))
        .map(|(offset, step, between, mut q)| {
            // Offset, step, plane offsets or the bits' origin and low bits, special values,
            // predictor (`doc/format.md` §5.5).
            let mut head = offset.to_le_bytes().to_vec();
            head.extend_from_slice(&step.to_le_bytes());
            head.extend_from_slice(&between);
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

/// The values' bits as ordered integers: an `f32`'s as they are (step 1); an `f64`'s above
/// the block's least (its origin, after the step) in steps of 2^s, the least s that keeps them
/// below 2^50, as the predictors and the coder take them (the step is 2^s), their s low bits
/// stored as they are after the origin ([`LowBits`]): in values computed in `f64` those are
/// noise, which no coding shrinks.
fn ordered(values: &[f64], dtype: ElementType) -> (u64, f64, Vec<u8>, Vec<i64>) {
    let finite = || values.iter().filter(|x| x.is_finite());
    let bits = |x: f64| ordered_bits(x, dtype);
    if dtype == ElementType::F32 {
        let q = values
            .iter()
            .map(|&x| if x.is_finite() { bits(x) } else { 0 });
        return (ORDERED_BITS, 1.0, Vec::new(), q.collect());
    }
    let origin = finite().map(|&x| bits(x)).min().unwrap_or(0);
    // The span as unsigned: it can exceed i64's.
    let above = |x: f64| (bits(x) as u64).wrapping_sub(origin as u64);
    let span = finite().map(|&x| above(x)).max().unwrap_or(0);
    let s = (64 - span.leading_zeros()).saturating_sub(ORDERED_SPAN_BITS);
    let mut between = origin.to_le_bytes().to_vec();
    let mut low = LowBits::new(s, values.len());
    let q = values.iter().map(|&x| {
        let d = if x.is_finite() { above(x) } else { 0 };
        low.push(d);
        (d >> s) as i64
    });
    let q = q.collect();
    between.extend_from_slice(&low.finish());
    (ORDERED_BITS, (1u64 << s) as f64, between, q)
}

/// The integers of `f64` ordered bits stay below 2^this: within the predictors' and the
/// coder's reach, as a lattice's.
pub(super) const ORDERED_SPAN_BITS: u32 = 50;

/// The s low bits of each value's ordered bits above the origin, packed from the least
/// significant bit of the first byte on (`doc/format.md` §5.5).
struct LowBits {
    s: u32,
    bytes: Vec<u8>,
    acc: u64,
    held: u32,
}

impl LowBits {
    fn new(s: u32, n: usize) -> LowBits {
        let mut bytes = Vec::new();
        bytes.reserve_exact((n * s as usize).div_ceil(8));
        LowBits {
            s,
            bytes,
            acc: 0,
            held: 0,
        }
    }

    fn push(&mut self, d: u64) {
        if self.s == 0 {
            return;
        }
        self.acc |= (d & ((1 << self.s) - 1)) << self.held;
        self.held += self.s;
        while self.held >= 8 {
            self.bytes.push(self.acc as u8);
            (self.acc, self.held) = (self.acc >> 8, self.held - 8);
        }
    }

    /// The packed bits, the last byte's high bits 0.
    fn finish(mut self) -> Vec<u8> {
        if self.held > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
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

/// A value's bits (as its element type) as an integer that orders as the values do:
/// non-negative ones as they are, negative ones (−0.0 among them, as −1) below zero. Every
/// `f64` bit pattern has one, and every `i64` is one's.
fn ordered_bits(x: f64, dtype: ElementType) -> i64 {
    let (b, sign) = match dtype {
        ElementType::F32 => ((x as f32).to_bits() as u64, 1 << 31),
        ElementType::F64 => (x.to_bits(), 1 << 63),
    };
    match b & sign {
        0 => b as i64,
        _ => -((b & (sign - 1)) as i64) - 1,
    }
}

/// The bits (as its element type) of an [`ordered_bits`] integer; None outside an `f32`'s 32
/// bits.
pub(crate) fn from_ordered_bits(q: i64, dtype: ElementType) -> Option<u64> {
    let sign = match dtype {
        ElementType::F32 => 1u64 << 31,
        ElementType::F64 => 1u64 << 63,
    };
    if q >= 0 {
        ((q as u64) < sign).then_some(q as u64)
    } else {
        // -(q + 1) never overflows: q + 1 <= 0.
        let m = -(q + 1) as u64;
        (m < sign).then_some(sign | m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::IntCoder;
    use crate::residual::specials::Specials;

    /// A block of `v` (values of `dtype` as f64) coded losslessly: its payloads, the lattice's
    /// (where there is one) first.
    fn payloads(v: &[f64], shape: [usize; 3], dtype: ElementType) -> Vec<Vec<u8>> {
        let specials = Specials::of(v, dtype);
        let block = BlockValues::new(v, &specials, shape, dtype);
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
        let p = payloads(&v, shape, ElementType::F32);
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
        // Not before version 14, nor with another step; an f64 block's only from version 15.
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
        let mut q = vec![ordered_bits(f32::MAX as f64, ElementType::F32); 64];
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
        let p = payloads(&v, shape, ElementType::F32);
        assert_eq!(p.len(), 2);
        assert!(f64::from_le_bytes(p[0][..8].try_into().unwrap()).is_finite());
        let zero = v.iter().position(|&x| x == 0.0).unwrap();
        v[zero] = -0.0;
        assert_eq!(payloads(&v, shape, ElementType::F32).len(), 1);
    }

    #[test]
    fn f64_bits_come_back_over_all_64_bits_from_version_15() {
        // Computed in f64 (no lattice), then the extremes: both signs' largest values next to
        // each other (differences wrap), the smallest denormals, zeros of both signs, NaN, ∞.
        let mut v: Vec<f64> = (0..4096)
            .map(|i| (i as f64 * 0.013).sin() * (i as f64 * 0.0007).exp() / 3.0)
            .collect();
        let extremes = [
            f64::MAX,
            -f64::MAX,
            f64::MAX,
            5e-324,
            -5e-324,
            -0.0,
            0.0,
            f64::NAN,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -1e300,
        ];
        v[100..100 + extremes.len()].copy_from_slice(&extremes);
        v[4000] = f64::MAX;
        let shape = [4, 32, 32];
        let p = payloads(&v, shape, ElementType::F64);
        assert_eq!(p.len(), 1, "no lattice: ordered bits alone");
        assert_eq!(p[0][..8], ORDERED_BITS.to_le_bytes());
        let decode = |version| {
            super::super::decode(&p[0], None, None, shape, ElementType::F64, false, version)
        };
        let decode_at = |p: &[u8], shape| {
            super::super::decode(p, None, None, shape, ElementType::F64, false, 15)
        };
        let out = decode(15).unwrap();
        for (x, b) in v.iter().zip(out.chunks_exact(8)) {
            let y = f64::from_le_bytes(b.try_into().unwrap());
            assert!(
                x.is_nan() && y.is_nan() || x.to_bits() == y.to_bits(),
                "{x} {y}"
            );
        }
        let e = decode(14).unwrap_err();
        assert!(
            e.to_string().contains("ordered bits in a version 14"),
            "{e}"
        );
        // Far fewer bytes than the values' for the smooth part.
        assert!(p[0].len() < 8 * v.len() * 7 / 8, "{}", p[0].len());
        // The span of both signs' largest: steps of 2^14, the most; any other step refused.
        assert_eq!(p[0][8..16], 16384f64.to_le_bytes());
        for step in [3.0, 32768.0, 0.5] {
            let mut bad = p[0].clone();
            bad[8..16].copy_from_slice(&f64::to_le_bytes(step));
            assert!(decode_at(&bad, shape).is_err(), "{step}");
        }
        assert!(decode_at(&p[0][..p[0].len() / 2], shape).is_err());
        // Integers beyond the span the encoder keeps (2^50), or whose value would pass the
        // largest ordered bits: refused, but at a special value's position.
        let coded = |q: Vec<i64>, origin: i64, v: &[f64]| {
            let mut head = ORDERED_BITS.to_le_bytes().to_vec();
            head.extend_from_slice(&4f64.to_le_bytes());
            head.extend_from_slice(&origin.to_le_bytes());
            head.extend_from_slice(&[0xff; 16]);
            Specials::of(v, ElementType::F64).write(64, ElementType::F64, &mut head);
            let p = predict::choose(&q, [1, 1, 64]);
            head.push(p.id());
            p.put_params(&mut head);
            let values = p.forward(q, [1, 1, 64], false);
            let ints = Integers {
                head,
                values,
                shape: [1, 1, 64],
                par: false,
                nglr: false,
            };
            decode_at(&ints.finish(IntCoder::Context), [1, 1, 64])
        };
        let ones = vec![1.0; 64];
        let origin = ordered_bits(1.0, ElementType::F64);
        let out = coded(vec![0; 64], origin, &ones).unwrap();
        // Each value 1.0's bits plus its two low bits: 3.
        assert!(out
            .chunks(8)
            .all(|b| b == (1f64.to_bits() + 3).to_le_bytes()));
        let mut q = vec![0; 64];
        q[7] = 1 << 50;
        let e = coded(q.clone(), origin, &ones).unwrap_err();
        assert!(e.to_string().contains("beyond the block's span"), "{e}");
        let mut nan = ones.clone();
        nan[7] = f64::NAN;
        assert!(coded(q, origin, &nan).unwrap()[56..64] == f64::NAN.to_le_bytes());
        let e = coded(vec![0; 64], i64::MAX - 1, &ones).unwrap_err();
        assert!(e.to_string().contains("beyond the block's span"), "{e}");
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
        let f32s = ElementType::F32;
        let q: Vec<i64> = xs.iter().map(|&x| ordered_bits(x as f64, f32s)).collect();
        assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        assert_eq!((q[4], q[5]), (-1, 0));
        for (&x, &k) in xs.iter().zip(&q) {
            assert_eq!(from_ordered_bits(k, f32s), Some(x.to_bits() as u64));
        }
        assert_eq!(from_ordered_bits(1 << 31, f32s), None);
        assert_eq!(from_ordered_bits(-(1 << 31) - 1, f32s), None);
        assert_eq!(from_ordered_bits(-(1 << 31), f32s), Some(0xffff_ffff));
        // f64: every bit pattern an integer and back, in the values' order.
        let f64s = ElementType::F64;
        let xs = [f64::MIN, -1.5, -5e-324, -0.0, 0.0, 5e-324, 1.0, f64::MAX];
        let q: Vec<i64> = xs.iter().map(|&x| ordered_bits(x, f64s)).collect();
        assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        for (&x, &k) in xs.iter().zip(&q) {
            assert_eq!(from_ordered_bits(k, f64s), Some(x.to_bits()));
        }
        for k in [i64::MIN, -1, 0, i64::MAX] {
            let b = from_ordered_bits(k, f64s).unwrap();
            assert_eq!(ordered_bits(f64::from_bits(b), f64s), k);
        }
    }
}
